"""Multi-head attention, self and cross, with a KV cache and per-head views of its weights.

One head h has four maps (the book's names, with TransformerLens's tensor shapes):
    W_Q[h]  (d_model,   d_head)   query:      q = x @ W_Q[h]
    W_K[h]  (d_context, d_head)   key:        k = c @ W_K[h]
    W_V[h]  (d_context, d_head)   value-down: v = c @ W_V[h]
    W_O[h]  (d_head,    d_model)  value-up:   the head's proposed change = pattern @ v @ W_O[h]
where c = x for self-attention and c = context for cross-attention. In code "the value matrix"
usually means the value-down part W_V; the value-ups of all heads stacked are the block's output
matrix (``out_proj``). All heads are computed at once as (B, H, T, d_head) tensors.

The weights are stored the way GPT-2 and nanoGPT store them, so that one matrix product computes
the queries, keys and values of every head:
    self-attention   qkv_proj  (n_heads + 2 n_kv_heads) * d_head rows: all W_Q, then all W_K, then
                               all W_V (as nn.Linear weights, i.e. transposed)
    cross-attention  q_proj    n_heads * d_head rows (the queries read x)
                     kv_proj   2 n_kv_heads * d_head rows: all W_K, then all W_V (they read the context)
    both             out_proj  the stacked value-ups
The per-head views above are views of slices of these weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _validate as V
from .attention import _attend

__all__ = ["MultiHeadAttention", "KVCache"]


class KVCache:
    """Keys and values of the positions seen so far, for one attention layer.

    ``update(k, v)`` appends the new positions (B, H, T_new, d_head) and returns all of them, so a
    decoding step computes keys and values for the new token only. A bad update raises before the
    cache changes: the cache is never left holding keys without their values.
    """

    def __init__(self):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append k (..., T_new, d) and v (..., T_new, d_v); return all keys and values."""
        self.k, self.v = self.extended(k, v)
        return self.k, self.v

    def extended(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What ``update(k, v)`` would return, without changing the cache."""
        who = "KVCache.update"
        for name, t in (("k", k), ("v", v)):
            V.tensor(who, name, t, floating=True)
            if t.ndim < 2:
                raise ValueError(f"{who}: {name} must have shape (..., T_new, d), got {tuple(t.shape)}")
        if k.shape[:-1] != v.shape[:-1]:
            raise ValueError(
                f"{who}: k and v must have the same (..., T_new) dims (one value per key), got "
                f"k {tuple(k.shape)} and v {tuple(v.shape)}"
            )
        if k.dtype != v.dtype or k.device != v.device:
            raise TypeError(f"{who}: k and v must have one dtype and device, got k {k.dtype} on {k.device} "
                            f"and v {v.dtype} on {v.device}")
        if self.k is None:
            return k, v
        for name, new, old in (("k", k, self.k), ("v", v, self.v)):
            if new.shape[:-2] != old.shape[:-2] or new.shape[-1] != old.shape[-1]:
                want = tuple(old.shape[:-2]) + ("T_new", old.shape[-1])
                raise ValueError(
                    f"{who}: {name} must have shape {want} to extend the cache of "
                    f"{tuple(old.shape)}, got {tuple(new.shape)}"
                )
            if new.dtype != old.dtype or new.device != old.device:
                raise TypeError(
                    f"{who}: {name} must be {old.dtype} on {old.device} like the cache, got "
                    f"{new.dtype} on {new.device}"
                )
        return torch.cat([self.k, k], dim=-2), torch.cat([self.v, v], dim=-2)


class MultiHeadAttention(nn.Module):
    """Multi-head attention block: n_heads heads in parallel, their changes summed by W_O.

    Args:
        d_model: width of the residual stream (input and output).
        n_heads: number of heads.
        d_head: width of one head's queries, keys and values; default d_model // n_heads.
        bias: add biases to the four projections.
        dropout: dropout on the attention weights and on the output, in training mode only.
        d_context: width of the context for cross-attention. Giving it (even equal to d_model)
            builds a cross-attention block: ``q_proj`` for the queries and one ``kv_proj`` for the
            context's keys and values. Without it the block is built for self-attention, with one
            ``qkv_proj``. Either block computes both (a self-attention block may be given a context
            of width d_model; a cross-attention block with d_context = d_model may be given none).
        n_kv_heads: number of key/value heads; default n_heads (every head has its own keys and
            values). Fewer, dividing n_heads, gives grouped-query attention (GQA: each group of
            n_heads / n_kv_heads query heads shares one key/value head); 1 gives multi-query
            attention (MQA). The key and value projections and the KV cache shrink by that factor.
    """

    #: set by ``attnlib.hooks.record_patterns``: called with every pattern this module uses
    _pattern_sink = None

    def __init__(self, d_model: int, n_heads: int, d_head: int | None = None, bias: bool = False,
                 dropout: float = 0.0, *, d_context: int | None = None, n_kv_heads: int | None = None):
        super().__init__()
        who = "MultiHeadAttention"
        d_model = V.positive_int(who, "d_model", d_model)
        n_heads = V.positive_int(who, "n_heads", n_heads)
        d_head = V.optional_positive_int(who, "d_head", d_head)
        d_context = V.optional_positive_int(who, "d_context", d_context)
        n_kv_heads = V.optional_positive_int(who, "n_kv_heads", n_kv_heads)
        if n_kv_heads is not None and n_heads % n_kv_heads != 0:
            raise ValueError(
                f"{who}: n_kv_heads must divide n_heads={n_heads} (each key/value head serves a group "
                f"of query heads), got {n_kv_heads}"
            )
        dropout = V.probability(who, "dropout", dropout)
        if not isinstance(bias, bool):
            raise TypeError(f"{who}: bias must be a bool, got {V.describe(bias)}")
        if d_head is None:
            if d_model % n_heads != 0:
                raise ValueError(
                    f"MultiHeadAttention: d_model={d_model} is not divisible by n_heads={n_heads}; "
                    "pick n_heads dividing d_model or pass d_head explicitly"
                )
            d_head = d_model // n_heads
        self.cross = d_context is not None  # the layout of the weights: see the module docstring
        d_context = d_model if d_context is None else d_context
        self.d_model, self.n_heads, self.d_head, self.d_context = d_model, n_heads, d_head, d_context
        self.n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        self.dropout = dropout
        inner = n_heads * d_head
        kv_inner = self.n_kv_heads * d_head
        self._sizes = (inner, kv_inner, kv_inner)  # rows of W_Q, W_K, W_V in the fused weights
        if self.cross:
            self.q_proj = nn.Linear(d_model, inner, bias=bias)  # all heads' W_Q
            # all key/value heads' W_K, then their value-downs W_V
            self.kv_proj = _fused_linear(d_context, [kv_inner, kv_inner], bias)
        else:  # all heads' W_Q, then all key/value heads' W_K, then their value-downs W_V
            self.qkv_proj = _fused_linear(d_model, [inner, kv_inner, kv_inner], bias)
        self.out_proj = nn.Linear(inner, d_model, bias=bias)  # the stacked value-ups W_O
        # built only when it drops something: a Dropout(0.0) would cost a module call per forward
        self.resid_dropout = nn.Dropout(dropout) if dropout > 0 else None

    # ---- per-head views (views of the parameters: editing them in place edits the module)
    def _rows(self, which: int) -> torch.Tensor:
        """The nn.Linear-shaped weight (rows, d_in) of W_Q (0), W_K (1) or W_V (2): a slice (a view)
        of the parameter that holds it, so writing into it writes into the module."""
        if self.cross and which == 0:
            return self.q_proj.weight
        w = self.kv_proj.weight if self.cross else self.qkv_proj.weight
        start = sum(self._sizes[1 if self.cross else 0:which])
        return w[start:start + self._sizes[which]]

    @property
    def W_Q(self) -> torch.Tensor:
        """(n_heads, d_model, d_head)"""
        return self._rows(0).view(self.n_heads, self.d_head, self.d_model).transpose(1, 2)

    @property
    def W_K(self) -> torch.Tensor:
        """(n_kv_heads, d_context, d_head); n_kv_heads = n_heads unless the module uses GQA/MQA"""
        return self._rows(1).view(self.n_kv_heads, self.d_head, self.d_context).transpose(1, 2)

    @property
    def W_V(self) -> torch.Tensor:
        """value-down, (n_kv_heads, d_context, d_head)"""
        return self._rows(2).view(self.n_kv_heads, self.d_head, self.d_context).transpose(1, 2)

    @property
    def W_O(self) -> torch.Tensor:
        """value-up, (n_heads, d_head, d_model); stacked over heads it is ``out_proj``."""
        return self.out_proj.weight.view(self.d_model, self.n_heads, self.d_head).permute(1, 2, 0)

    def fused_parts(self) -> dict[str, tuple[int, ...]]:
        """The fused projections, by parameter name, with the rows of each part (W_Q, W_K, W_V or
        W_K, W_V): what separate q/k/v projections would have. Used to initialise them part by part."""
        if self.cross:
            return {"kv_proj.weight": self._sizes[1:]}
        return {"qkv_proj.weight": self._sizes}

    def _project(self, x: torch.Tensor, context: torch.Tensor | None):
        """q (B, T_q, H*dh), k and v (B, T_k, H_kv*dh): one matrix product where the layout allows."""
        inner, kv_inner, _ = self._sizes
        if self.cross:
            q = self.q_proj(x)
            k, v = self.kv_proj(x if context is None else context).split([kv_inner, kv_inner], dim=-1)
        elif context is None:  # self-attention: one product for all three
            q, k, v = self.qkv_proj(x).split(self._sizes, dim=-1)
        else:  # a self-attention block given a context: the queries' rows read x, the others it
            w, b = self.qkv_proj.weight, self.qkv_proj.bias
            q = F.linear(x, w[:inner], None if b is None else b[:inner])
            kv = F.linear(context, w[inner:], None if b is None else b[inner:])
            k, v = kv.split([kv_inner, kv_inner], dim=-1)
        return q, k, v

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A state dict saved before the projections were fused has q_proj, k_proj and v_proj: their
        # rows are concatenated into this layout (W_Q, W_K, W_V in that order), so old checkpoints
        # load. Shapes that do not fit are left for load_state_dict to report.
        fused = "kv_proj" if self.cross else "qkv_proj"
        names = ["k", "v"] if self.cross else ["q", "k", "v"]
        for kind in ("weight", "bias"):
            keys = [f"{prefix}{n}_proj.{kind}" for n in names]
            new = f"{prefix}{fused}.{kind}"
            if new in state_dict or not all(k in state_dict for k in keys):
                continue
            parts = [state_dict[k] for k in keys]
            if len({tuple(t.shape[1:]) for t in parts}) == 1:
                state_dict[new] = torch.cat([state_dict.pop(k) for k in keys])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _check_inputs(self, x, context, kv_cache) -> None:
        """forward's arguments: shapes, widths, batch sizes, the cache only for self-attention."""
        w = self.out_proj.weight
        V.stream("MultiHeadAttention", "x", x, self.d_model, w)
        if context is None and self.d_context != self.d_model:
            raise ValueError(
                f"MultiHeadAttention: d_context={self.d_context} differs from d_model={self.d_model}, so "
                "self-attention is impossible; pass context (B, T_k, d_context)"
            )
        if context is not None:
            V.stream("MultiHeadAttention", "context", context, self.d_context, w)
            if context.shape[0] != x.shape[0]:
                raise ValueError(
                    f"MultiHeadAttention: x has batch {x.shape[0]} but context has batch {context.shape[0]}"
                )
        if kv_cache is not None:
            if context is not None:
                raise ValueError("MultiHeadAttention: kv_cache is for self-attention; the keys and values "
                                 "of a fixed context need no cache")
            if not isinstance(kv_cache, KVCache):
                raise TypeError(f"MultiHeadAttention: kv_cache must be a KVCache or None, got "
                                f"{V.describe(kv_cache)}")

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, *, mask=None,
                is_causal: bool = False, return_weights: bool = False, kv_cache: KVCache | None = None):
        """x (B, T_q, d_model); context (B, T_k, d_context) or None for self-attention.

        ``mask`` (keyword-only) broadcasts to (B, n_heads, T_q, T_k) (True = may attend). With ``kv_cache`` the
        new keys/values are appended to the cache and the queries attend to all cached positions.
        Returns y (B, T_q, d_model), or ``(y, weights)`` with weights (B, n_heads, T_q, T_k).
        """
        self._check_inputs(x, context, kv_cache)
        if not (type(is_causal) is type(return_weights) is bool):
            V.flags("MultiHeadAttention", is_causal=is_causal, return_weights=return_weights)
        q, k, v = self._project(x, context)
        n_heads, n_kv_heads, d_head = self.n_heads, self.n_kv_heads, self.d_head
        B, T_q, _ = q.shape
        T_k = k.shape[1]
        q = q.view(B, T_q, n_heads, d_head).transpose(1, 2)  # (B, H, T_q, dh)
        k = k.view(B, T_k, n_kv_heads, d_head).transpose(1, 2)  # (B, H_kv, T_k, dh)
        v = v.view(B, T_k, n_kv_heads, d_head).transpose(1, 2)  # (B, H_kv, T_k, dh)
        if kv_cache is not None:
            k, v = kv_cache.extended(k, v)  # (B, H_kv, T_cached + T_q, dh)
        p = self.dropout if self.training else 0.0
        sink = self._pattern_sink
        need = return_weights or sink is not None  # the pattern is asked for: explicit path
        # q, k and v come from this module's projections of checked inputs, so attention's own
        # checks of them are skipped (the mask is still checked)
        res = _attend(q, k, v, mask, is_causal, None, p, need, n_kv_heads != n_heads, "MultiHeadAttention")
        if kv_cache is not None:  # stored only once attention has accepted every input
            kv_cache.k, kv_cache.v = k, v
        out, weights = res if need else (res, None)
        if sink is not None:
            sink(weights)
        y = self.out_proj(out.transpose(1, 2).reshape(B, T_q, n_heads * d_head))  # sum of the heads' changes
        if self.resid_dropout is not None:
            y = self.resid_dropout(y)
        return (y, weights) if return_weights else y

    def extra_repr(self) -> str:
        kv = "" if self.n_kv_heads == self.n_heads else f", n_kv_heads={self.n_kv_heads}"
        return f"d_model={self.d_model}, n_heads={self.n_heads}, d_head={self.d_head}{kv}"


def _fused_linear(d_in: int, sizes: list[int], bias: bool) -> nn.Linear:
    """One nn.Linear(d_in, sum(sizes)) whose row blocks are initialised as separate
    nn.Linear(d_in, n) built one after another would be: the same random draws, in the same order,
    on the default device (nothing is drawn on "meta"). So a seeded model has the weights it had
    when its q, k and v projections were separate modules."""
    device = torch.empty(()).device  # the default device (a ``with torch.device(...)`` block too)
    lin = nn.Linear(d_in, sum(sizes), bias=bias, device="meta").to_empty(device=device)
    weights = lin.weight.detach().split(sizes)
    biases = lin.bias.detach().split(sizes) if bias else [None] * len(sizes)
    bound = 1 / math.sqrt(d_in)
    with torch.no_grad():
        for w, b in zip(weights, biases, strict=True):  # what nn.Linear.reset_parameters does
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            if b is not None:
                nn.init.uniform_(b, -bound, bound)
    return lin

"""Multi-head attention, self and cross, with a KV cache and per-head views of its weights.

One head h has four maps (the book's names, with TransformerLens's tensor shapes):
    W_Q[h]  (d_model,   d_head)   query:      q = x @ W_Q[h]
    W_K[h]  (d_context, d_head)   key:        k = c @ W_K[h]
    W_V[h]  (d_context, d_head)   value-down: v = c @ W_V[h]
    W_O[h]  (d_head,    d_model)  value-up:   the head's proposed change = pattern @ v @ W_O[h]
where c = x for self-attention and c = context for cross-attention. In code "the value matrix"
usually means the value-down part W_V; the value-ups of all heads stacked are the block's output
matrix (``out_proj``). All heads are computed at once as (B, H, T, d_head) tensors.
"""

from __future__ import annotations

import torch
from torch import nn

from . import _validate as V
from .attention import attention

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
        d_context: width of the context for cross-attention; default d_model.
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
        d_context = d_model if d_context is None else d_context
        self.d_model, self.n_heads, self.d_head, self.d_context = d_model, n_heads, d_head, d_context
        self.n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        self.dropout = dropout
        inner = n_heads * d_head
        kv_inner = self.n_kv_heads * d_head
        self.q_proj = nn.Linear(d_model, inner, bias=bias)  # all heads' W_Q
        self.k_proj = nn.Linear(d_context, kv_inner, bias=bias)  # all key/value heads' W_K
        self.v_proj = nn.Linear(d_context, kv_inner, bias=bias)  # all key/value heads' value-down W_V
        self.out_proj = nn.Linear(inner, d_model, bias=bias)  # the stacked value-ups W_O
        self.resid_dropout = nn.Dropout(dropout)

    # ---- per-head views (views of the parameters: editing them in place edits the module)
    @property
    def W_Q(self) -> torch.Tensor:
        """(n_heads, d_model, d_head)"""
        return self.q_proj.weight.view(self.n_heads, self.d_head, self.d_model).transpose(1, 2)

    @property
    def W_K(self) -> torch.Tensor:
        """(n_kv_heads, d_context, d_head); n_kv_heads = n_heads unless the module uses GQA/MQA"""
        return self.k_proj.weight.view(self.n_kv_heads, self.d_head, self.d_context).transpose(1, 2)

    @property
    def W_V(self) -> torch.Tensor:
        """value-down, (n_kv_heads, d_context, d_head)"""
        return self.v_proj.weight.view(self.n_kv_heads, self.d_head, self.d_context).transpose(1, 2)

    @property
    def W_O(self) -> torch.Tensor:
        """value-up, (n_heads, d_head, d_model); stacked over heads it is ``out_proj``."""
        return self.out_proj.weight.view(self.d_model, self.n_heads, self.d_head).permute(1, 2, 0)

    def _split(self, t: torch.Tensor, n_heads: int) -> torch.Tensor:  # (B, T, H*dh) -> (B, H, T, dh)
        B, T, _ = t.shape
        return t.view(B, T, n_heads, self.d_head).transpose(1, 2)

    def _check(self, name: str, t, width: int) -> None:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"MultiHeadAttention: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 3 or t.shape[-1] != width:
            raise ValueError(
                f"MultiHeadAttention: {name} must have shape (batch, T, {width}), got {tuple(t.shape)}"
            )

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, mask=None,
                is_causal: bool = False, return_weights: bool = False, kv_cache: KVCache | None = None):
        """x (B, T_q, d_model); context (B, T_k, d_context) or None for self-attention.

        ``mask`` broadcasts to (B, n_heads, T_q, T_k) (True = may attend). With ``kv_cache`` the
        new keys/values are appended to the cache and the queries attend to all cached positions.
        Returns y (B, T_q, d_model), or ``(y, weights)`` with weights (B, n_heads, T_q, T_k).
        """
        self._check("x", x, self.d_model)
        if context is None and self.d_context != self.d_model:
            raise ValueError(
                f"MultiHeadAttention: d_context={self.d_context} differs from d_model={self.d_model}, so "
                "self-attention is impossible; pass context (B, T_k, d_context)"
            )
        src = x if context is None else context
        if context is not None:
            self._check("context", context, self.d_context)
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
        q = self._split(self.q_proj(x), self.n_heads)  # (B, H, T_q, dh)
        k = self._split(self.k_proj(src), self.n_kv_heads)  # (B, H_kv, T_k, dh)
        v = self._split(self.v_proj(src), self.n_kv_heads)  # (B, H_kv, T_k, dh)
        if kv_cache is not None:
            k, v = kv_cache.extended(k, v)  # (B, H_kv, T_cached + T_q, dh)
        p = self.dropout if self.training else 0.0
        sink = self._pattern_sink
        need = return_weights or sink is not None  # the pattern is asked for: explicit path
        res = attention(q, k, v, mask, is_causal=is_causal, dropout_p=p, return_weights=need,
                        enable_gqa=self.n_kv_heads != self.n_heads)
        if kv_cache is not None:  # stored only once attention has accepted every input
            kv_cache.k, kv_cache.v = k, v
        out, weights = res if need else (res, None)
        if sink is not None:
            sink(weights)
        B, H, T_q, dh = out.shape
        y = out.transpose(1, 2).reshape(B, T_q, H * dh)  # heads side by side
        y = self.resid_dropout(self.out_proj(y))  # (B, T_q, d_model): sum of the heads' changes
        return (y, weights) if return_weights else y

    def extra_repr(self) -> str:
        kv = "" if self.n_kv_heads == self.n_heads else f", n_kv_heads={self.n_kv_heads}"
        return f"d_model={self.d_model}, n_heads={self.n_heads}, d_head={self.d_head}{kv}"

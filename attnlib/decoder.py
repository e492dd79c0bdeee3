"""A GPT-style decoder (and a small encoder for cross-attention), in the spirit of nanoGPT.

    tokens -> token embedding + position embedding -> n_layers x DecoderBlock -> LayerNorm -> logits

Every block is pre-LayerNorm and adds to the residual stream:
    x = x + self_attn(ln_1(x))                    causal: a position sees itself and earlier ones
    x = x + cross_attn(ln_c(x), context)          only in encoder-decoder models
    x = x + mlp(ln_2(x))
"""

from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from . import _validate as V
from .mlp import MLP
from .multihead import KVCache, MultiHeadAttention

__all__ = ["DecoderConfig", "DecoderBlock", "Encoder", "Decoder", "TINY", "GPT3"]


@dataclass(frozen=True)
class DecoderConfig:
    """Shape of a decoder (or encoder). ``d_head`` defaults to d_model // n_heads, ``d_mlp`` to 4 d_model."""

    vocab_size: int = 64
    context_len: int = 32
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_head: int | None = None
    d_mlp: int | None = None
    dropout: float = 0.0
    bias: bool = False
    tie_embeddings: bool = True  # the unembedding reuses the token embedding (GPT-2/GPT-3)
    cross_attention: bool = False  # add a cross-attention sub-layer to every block
    n_kv_heads: int | None = None  # key/value heads; None = n_heads; fewer = GQA, 1 = MQA

    def __post_init__(self):
        for name in ("vocab_size", "context_len", "d_model", "n_layers", "n_heads"):
            V.positive_int("DecoderConfig", name, getattr(self, name))
        for name in ("d_head", "d_mlp", "n_kv_heads"):
            V.optional_positive_int("DecoderConfig", name, getattr(self, name))
        if self.n_kv_heads is not None and self.n_heads % self.n_kv_heads != 0:
            raise ValueError(
                f"DecoderConfig: n_kv_heads must divide n_heads={self.n_heads} (each key/value head "
                f"serves a group of query heads), got {self.n_kv_heads}"
            )
        V.probability("DecoderConfig", "dropout", self.dropout)
        for name in ("bias", "tie_embeddings", "cross_attention"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"DecoderConfig: {name} must be a bool, got {V.describe(getattr(self, name))}")
        if self.d_head is None and self.d_model % self.n_heads != 0:
            raise ValueError(
                f"DecoderConfig: d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                "choose n_heads dividing d_model or set d_head"
            )

    def __repr__(self) -> str:
        # n_kv_heads is shown only when it is set, so a config without GQA prints as it always has
        items = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                 if f.name != "n_kv_heads" or self.n_kv_heads is not None]
        return f"DecoderConfig({', '.join(items)})"

    @property
    def head_dim(self) -> int:
        return self.d_head if self.d_head is not None else self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    @property
    def mlp_dim(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model

    def replace(self, **changes) -> DecoderConfig:
        """A copy with some fields changed (checked like a new config)."""
        names = [f.name for f in fields(self)]
        unknown = [k for k in changes if k not in names]
        if unknown:
            raise TypeError(f"DecoderConfig.replace: {unknown[0]!r} is not a field of DecoderConfig; the "
                            f"fields are {', '.join(names)}")
        return replace(self, **changes)


#: Trains in seconds on a CPU.
TINY = DecoderConfig(vocab_size=64, context_len=32, d_model=64, n_layers=2, n_heads=4)
#: GPT-3 175B (Brown et al., 2020): build it on the "meta" device to count parameters for free.
GPT3 = DecoderConfig(vocab_size=50257, context_len=2048, d_model=12288, n_layers=96, n_heads=96,
                     d_head=128, d_mlp=4 * 12288)


def _legacy_block(d_model, n_heads, d_head=None, d_mlp=None, dropout=0.0, bias=False,
                  cross_attention=False, causal=True, *, n_kv_heads=None):
    """The arguments DecoderBlock took before it took a DecoderConfig (only bound, never called)."""


def _legacy_block_args(d_model, args: tuple, is_causal: bool, cross_attention, given: dict):
    """(config, is_causal, cross_attention) from the deprecated ``DecoderBlock(d_model, n_heads, ...)``."""
    who = "DecoderBlock"
    V.deprecation(f"{who}(d_model, n_heads, ...) is deprecated; pass a DecoderConfig: "
                  f"{who}(DecoderConfig(d_model=..., n_heads=...), is_causal=...)")
    if cross_attention is not None:
        given = {**given, "cross_attention": cross_attention}
    try:
        bound = inspect.signature(_legacy_block).bind(d_model, *args, **given)
    except TypeError as e:
        raise TypeError(f"{who}: {e}") from None
    bound.apply_defaults()
    a = bound.arguments
    config = DecoderConfig(d_model=d_model, n_heads=a["n_heads"], d_head=a["d_head"], d_mlp=a["d_mlp"],
                           dropout=a["dropout"], bias=a["bias"], n_kv_heads=a["n_kv_heads"])
    return config, a["causal"] if len(args) >= 7 else is_causal, a["cross_attention"]


def _block_args(config, args: tuple, is_causal, cross_attention, given: dict):
    """(config, is_causal, cross_attention) of a DecoderBlock, checked; the deprecated forms warn."""
    who = "DecoderBlock"
    is_causal = V.renamed(who, given, "causal", "is_causal", is_causal, True)
    if isinstance(config, DecoderConfig):
        if args:
            raise TypeError(f"{who}: with a DecoderConfig, is_causal and cross_attention are keyword-only; "
                            f"got {len(args)} more positional argument(s)")
        V.no_other_keywords(who, given)
    elif isinstance(config, numbers.Integral) and not isinstance(config, bool):
        config, is_causal, cross_attention = _legacy_block_args(config, args, is_causal, cross_attention,
                                                                given)
    else:
        raise TypeError(f"{who}: config must be a DecoderConfig, got {V.describe(config)}")
    cross_attention = config.cross_attention if cross_attention is None else cross_attention
    for name, val in (("is_causal", is_causal), ("cross_attention", cross_attention)):
        if not isinstance(val, bool):
            raise TypeError(f"{who}: {name} must be True or False, got {V.describe(val)}")
    return config, is_causal, cross_attention


class DecoderBlock(nn.Module):
    """Pre-LayerNorm transformer block: attention, optional cross-attention, MLP, each added to x.

    ``DecoderBlock(config, *, is_causal=True, cross_attention=None)`` takes its shape from the
    ``DecoderConfig`` (d_model, n_heads, d_head, d_mlp, dropout, bias, n_kv_heads);
    ``cross_attention`` defaults to ``config.cross_attention``. With ``is_causal=False`` and no
    cross-attention this is an encoder block.

    Deprecated, still accepted with a DeprecationWarning: the earlier form ``DecoderBlock(d_model,
    n_heads, d_head, d_mlp, dropout, bias, cross_attention, causal, *, n_kv_heads)`` and the name
    ``causal`` (keyword and attribute) for ``is_causal``.
    """

    def __init__(self, config: DecoderConfig, *args, is_causal: bool = True,
                 cross_attention: bool | None = None, **deprecated):
        super().__init__()
        c, is_causal, cross_attention = _block_args(config, args, is_causal, cross_attention, deprecated)
        self.config, self.is_causal = c, is_causal
        self.ln_1 = nn.LayerNorm(c.d_model, bias=c.bias)
        self.attn = MultiHeadAttention(c.d_model, c.n_heads, c.d_head, bias=c.bias, dropout=c.dropout,
                                       n_kv_heads=c.n_kv_heads)
        self.ln_c = nn.LayerNorm(c.d_model, bias=c.bias) if cross_attention else None
        # d_context given: built for cross-attention (q_proj for the queries, kv_proj for the context)
        self.cross_attn = (MultiHeadAttention(c.d_model, c.n_heads, c.d_head, bias=c.bias, dropout=c.dropout,
                                              d_context=c.d_model, n_kv_heads=c.n_kv_heads)
                           if cross_attention else None)
        self.ln_2 = nn.LayerNorm(c.d_model, bias=c.bias)
        self.mlp = MLP(c.d_model, c.d_mlp, bias=c.bias, dropout=c.dropout)

    @property
    def causal(self) -> bool:
        """Deprecated name of ``is_causal``."""
        V.deprecation("DecoderBlock: .causal is deprecated; use .is_causal instead (same meaning)")
        return self.is_causal

    def forward(self, x, context=None, *, mask=None, context_mask=None, kv_cache=None, **removed):
        """x (B, T, d_model) -> (B, T, d_model).

        ``mask`` is the self-attention's (combined by AND with the causal mask when ``is_causal``),
        ``context_mask`` the cross-attention's; each broadcasts to (B, n_heads, T_q, T_k), True =
        may attend. ``kv_cache`` (a KVCache) is the self-attention's. To see the patterns, use
        ``attnlib.record_patterns(block)``.
        """
        if removed:
            V.no_return_weights("DecoderBlock.forward", removed, "block", "attn")
            V.no_other_keywords("DecoderBlock.forward", removed)
        V.stream("DecoderBlock", "x", x, self.config.d_model, self.ln_2.weight)
        cross = self.cross_attn
        if cross is None and (context is not None or context_mask is not None):
            raise ValueError(
                "DecoderBlock: context (or context_mask) was given but this block has no "
                "cross-attention; build it with cross_attention=True"
            )
        if cross is not None and context is None:
            raise ValueError("DecoderBlock: this block has cross-attention; pass context")
        x = x + self.attn(self.ln_1(x), mask=mask, is_causal=self.is_causal, kv_cache=kv_cache)
        if cross is not None:
            x = x + cross(self.ln_c(x), context=context, mask=context_mask)
        return x + self.mlp(self.ln_2(x))


def _init_weights(model: nn.Module, n_layers: int) -> None:
    """GPT-2 initialisation: N(0, 0.02), residual output projections scaled by 1/sqrt(2 n_layers).

    A fused projection (``qkv_proj``, ``kv_proj``) is drawn part by part, W_Q, W_K, W_V, as the
    separate projections were: a seeded model keeps its weights (and leaves the generator where it
    left it)."""
    parts = {f"{m_name}.{p_name}" if m_name else p_name: sizes
             for m_name, m in model.named_modules() if isinstance(m, MultiHeadAttention)
             for p_name, sizes in m.fused_parts().items()}
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            std = 0.02 / math.sqrt(2 * n_layers) if name.endswith(("out_proj.weight", "down.weight")) else 0.02
            for part in p.detach().split(parts.get(name, p.shape[0])):
                nn.init.normal_(part, mean=0.0, std=std)
        elif name.endswith("bias"):
            nn.init.zeros_(p)


class _Embed(nn.Module):
    """Token embedding plus learned absolute position embedding."""

    def __init__(self, cfg: DecoderConfig, who: str):
        super().__init__()
        if not isinstance(cfg, DecoderConfig):
            raise TypeError(f"{who}: config must be a DecoderConfig, e.g. DecoderConfig(d_model=64, "
                            f"n_heads=4), got {V.describe(cfg)}")
        self.cfg, self.who = cfg, who
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.context_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else None  # none that drops nothing

    def check(self, tokens: torch.Tensor, start: int = 0, bounds: tuple[int, int] | None = None,
              who: str | None = None) -> None:
        """Token ids (B, T) in [0, vocab_size) that fit in the context after ``start`` positions;
        errors name ``who`` (default: the model)."""
        who = who or self.who
        V.token_ids(who, "tokens", tokens, self.cfg.vocab_size, bounds)
        device = self.tok.weight.device
        if tokens.device != device:
            raise ValueError(f"{who}: tokens are on {tokens.device} but the model is on {device}; move "
                             f"them with tokens.to({str(device)!r})")
        T = tokens.shape[1]
        if start + T > self.cfg.context_len:
            raise ValueError(
                f"{who}: sequence of length {start + T} is longer than context_len="
                f"{self.cfg.context_len}; crop it"
                + (" (generate() does this for you)" if self.who == "Decoder" else "")
            )

    def forward(self, tokens: torch.Tensor, start: int = 0, *, positions: torch.Tensor | None = None,
                check: bool = True) -> torch.Tensor:
        """Positions start, start + 1, ... for every row, or ``positions`` (B, T) given."""
        if check:  # Decoder.forward has checked them already (with everything else)
            self.check(tokens, start)
        if positions is None:
            T = tokens.shape[1]
            positions = torch.arange(start, start + T, device=tokens.device)
        x = self.tok(tokens) + self.pos(positions)  # (B, T, d_model)
        return x if self.drop is None else self.drop(x)


class Encoder(nn.Module):
    """Non-causal transformer encoder: every position attends to every (unpadded) position.

    forward(tokens (B, T), *, mask=None) -> (B, T, d_model); mask broadcasts to (B, H, T, T), for
    example ``padding_mask(lengths, T)``.
    """

    def __init__(self, config: DecoderConfig):
        super().__init__()
        c = self.config = config
        self.embed = _Embed(c, "Encoder")
        self.blocks = nn.ModuleList(
            DecoderBlock(c, is_causal=False, cross_attention=False) for _ in range(c.n_layers)
        )
        self.ln_f = nn.LayerNorm(c.d_model, bias=c.bias)
        _init_weights(self, c.n_layers)

    def forward(self, tokens: torch.Tensor, *, mask=None, **removed):
        V.no_return_weights("Encoder.forward", removed, "encoder")
        V.no_other_keywords("Encoder.forward", removed)
        self.embed.check(tokens)
        if mask is not None:  # named here, not by the attention that would read it
            B, T = tokens.shape
            V.mask(mask, (B, self.config.n_heads, T, T), tokens.device, "Encoder.forward")
        x = self.embed(tokens, check=False)
        for block in self.blocks:
            x = block(x, mask=mask)
        return self.ln_f(x)


class Decoder(nn.Module):
    """GPT-style decoder-only model (or the decoder half of an encoder-decoder when
    ``config.cross_attention`` is True, in which case ``context`` is the encoder's output).

    The KV cache has one name at every level, ``kv_cache``, so that the keyword a reader met on
    ``MultiHeadAttention`` is the one to look for here: one ``KVCache`` for a layer
    (MultiHeadAttention, DecoderBlock), a list of them, one per layer, for ``Decoder.forward``, and
    for ``generate`` (which builds its own) whether to keep one. The earlier names ``kv_caches``
    (forward) and ``use_cache`` (generate) are still accepted with a DeprecationWarning.
    """

    def __init__(self, config: DecoderConfig):
        super().__init__()
        c = self.config = config
        self.embed = _Embed(c, "Decoder")
        self.blocks = nn.ModuleList(DecoderBlock(c, is_causal=True) for _ in range(c.n_layers))
        self.ln_f = nn.LayerNorm(c.d_model, bias=c.bias)
        self.unembed = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_embeddings:
            self.unembed.weight = self.embed.tok.weight
        _init_weights(self, c.n_layers)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None, *, mask=None, context=None,
                context_mask=None, kv_cache=None, **deprecated):
        """tokens (B, T) -> ``(logits, loss)`` with logits (B, T, vocab_size).

        loss is the mean next-token cross-entropy against ``targets`` (B, T), or None. To see every
        head's pattern, run the model inside ``with attnlib.record_patterns(model) as patterns:``
        (patterns["blocks.0.attn"] is layer 0's self-attention, (B, H, T, T)).
        ``kv_cache`` (a list of one KVCache per layer) makes the call a decoding step after the
        cached positions.

        ``mask`` (B, T) bool, True = a real token, False = padding (with ``kv_cache``: (B, T_cached +
        T), every position so far), batches prompts of different lengths: padded keys are never
        attended to, and a token's position is the number of real tokens before it in its row, so
        each row of a left-padded batch gets the logits of its prompt run alone. The logits at
        padded positions are meaningless (but finite).
        Every argument is checked before anything is computed or any cache changes.
        """
        if deprecated:
            V.no_return_weights("Decoder.forward", deprecated, "model")
            kv_cache = V.renamed("Decoder", deprecated, "kv_caches", "kv_cache", kv_cache, None)
            V.no_other_keywords("Decoder", deprecated)
        start = self._check_forward(tokens, targets, context, context_mask, kv_cache, mask)
        self_mask = positions = None
        if mask is not None:
            positions = (mask.cumsum(-1) - 1).clamp_min(0)[:, start:]  # (B, T)
            self_mask = mask[:, None, None, :]  # (B, 1, 1, T_cached + T): the keys that are real
        x = self.embed(tokens, start, positions=positions, check=False)  # (B, T, d_model): the stream
        for i, block in enumerate(self.blocks):
            cache = None if kv_cache is None else kv_cache[i]
            x = block(x, context, mask=self_mask, context_mask=context_mask, kv_cache=cache)
        logits = self.unembed(self.ln_f(x))  # (B, T, vocab_size)
        loss = None
        if targets is not None:
            flat = targets.reshape(-1)
            if flat.dtype != torch.long:  # int32 targets: cross_entropy takes long (or byte) only
                flat = flat.long()
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), flat, ignore_index=-100)
        return logits, loss

    def _check_forward(self, tokens, targets, context, context_mask, kv_cache, mask=None) -> int:
        """Validate forward()'s arguments; return the number of cached positions."""
        c = self.config
        # the lowest and highest token id and target, read at once (one synchronisation, not two);
        # None unless both are non-empty id tensors of one dtype and device
        bounds = V.id_bounds(tokens, targets) if targets is not None else None
        # A training step's case first, in one test (this runs at every step, where the itemised
        # checks below cost as much as a small model's Python): no cache, mask or context, ids and
        # targets of one shape that fits the context, every entry an id. Anything else, including a
        # target to ignore, takes the itemised checks, which name what is wrong.
        if (bounds is not None and kv_cache is None and mask is None and context is None
                and context_mask is None and not c.cross_attention and tokens.ndim == 2
                and tokens.shape[1] <= c.context_len and targets.shape == tokens.shape
                and tokens.device == self.unembed.weight.device):
            (lo, hi), (t_lo, t_hi) = bounds
            if 0 <= min(lo, t_lo) and max(hi, t_hi) < c.vocab_size:
                return 0
        start = self._check_caches(kv_cache)
        self.embed.check(tokens, start, bounds and bounds[0])
        if start:
            self._check_cache_contents(kv_cache, tokens.shape[0])
        if mask is not None:
            B, T = tokens.shape
            what = f" (the {start} cached positions and the {T} new ones)" if start else " like tokens"
            V.token_mask("Decoder", mask, (B, start + T), tokens.device, what)
        if not c.cross_attention and (context is not None or context_mask is not None):
            raise ValueError(
                "Decoder: context (or context_mask) was given but config.cross_attention is False, so "
                "the model has no cross-attention to read it; build it with cross_attention=True"
            )
        if c.cross_attention:
            self._check_context(tokens, context)
        if targets is not None:
            V.targets("Decoder", targets, tuple(tokens.shape), c.vocab_size, bounds=bounds and bounds[1])
        return start

    def _check_caches(self, kv_cache) -> int:
        """kv_cache: None or one KVCache per layer, all of one length; returns that length."""
        if kv_cache is None:
            return 0
        n = self.config.n_layers
        if not isinstance(kv_cache, (list, tuple)) or not all(isinstance(x, KVCache) for x in kv_cache):
            raise TypeError(
                f"Decoder: kv_cache must be a list of {n} KVCache (one per layer), got {V.describe(kv_cache)}"
            )
        if len(kv_cache) != n:
            raise ValueError(f"Decoder: kv_cache must hold one KVCache per layer ({n}), got {len(kv_cache)}")
        if len({id(x) for x in kv_cache}) != n:  # [KVCache()] * n: every layer would append to one cache
            raise ValueError(f"Decoder: kv_cache must hold {n} different KVCache objects, one per layer, "
                             "got the same one more than once (build them with [KVCache() for _ in range(n)])")
        lengths = sorted({len(x) for x in kv_cache})
        if len(lengths) > 1:
            raise ValueError(f"Decoder: the layers' caches hold different numbers of positions {lengths}")
        return lengths[0] if lengths else 0

    def _check_cache_contents(self, kv_cache, batch: int) -> None:
        """Filled caches that this model, on this batch, can extend: checked for every layer before
        the first one runs, so that a bad cache of layer 2 cannot leave layer 0's cache extended."""
        c = self.config
        want = (batch, c.kv_heads, c.head_dim)
        first = kv_cache[0]
        for i, cache in enumerate(kv_cache):
            if cache.k is None:
                continue
            got = (cache.k.shape[0], cache.k.shape[1], cache.k.shape[-1])
            if cache.k.ndim != 4 or got != want or cache.v.shape != cache.k.shape:
                raise ValueError(
                    f"Decoder: kv_cache[{i}] holds keys {tuple(cache.k.shape)} and values "
                    f"{tuple(cache.v.shape)}; this model on a batch of {batch} needs (batch={batch}, "
                    f"kv_heads={c.kv_heads}, T_cached, head_dim={c.head_dim}) for both"
                )
            if (cache.k.dtype, cache.k.device) != (first.k.dtype, first.k.device):
                raise TypeError(
                    f"Decoder: kv_cache[{i}] holds {cache.k.dtype} on {cache.k.device} but kv_cache[0] "
                    f"{first.k.dtype} on {first.k.device}; the layers' caches must agree"
                )

    def _check_context(self, tokens, context) -> None:
        d = self.config.d_model
        if context is None:
            raise ValueError(
                "Decoder: config.cross_attention is True, so every block has cross-attention; pass "
                f"context (batch, T_context, {d}), e.g. an Encoder's output"
            )
        V.tensor("Decoder", "context", context, ndim=3, floating=True, shape_doc=f"(batch, T_context, {d})")
        if context.shape[0] != tokens.shape[0] or context.shape[-1] != d:
            raise ValueError(
                f"Decoder: context must have shape ({tokens.shape[0]}, T_context, {d}) for "
                f"tokens of shape {tuple(tokens.shape)}, got {tuple(context.shape)}"
            )

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, *, kv_cache: bool = True, mask=None, context=None,
                 context_mask=None, generator=None, **deprecated) -> torch.Tensor:
        """Append ``max_new_tokens`` sampled tokens to ``tokens`` (B, T) and return (B, T + new).

        temperature 0 picks the most likely token (greedy); ``top_k`` keeps the k most likely.
        Only the last ``context_len`` tokens are fed to the model. With ``kv_cache`` each step
        computes the new token only, reusing cached keys and values; once the window has to slide,
        positions shift and the cache is rebuilt, so the result equals ``kv_cache=False``.

        ``mask`` (B, T) bool (True = a real token) generates from a batch of left-padded prompts:
        each row continues as its prompt would alone (the padding stays in the output). Padding
        must be on the left: every row's last token is real. ``generator`` is a torch.Generator,
        or a list of B of them, one per row: row b then samples what its prompt alone would with
        ``generator[b]``.
        """
        who = "Decoder.generate"
        if deprecated:
            kv_cache = V.renamed(who, deprecated, "use_cache", "kv_cache", kv_cache, True)
            V.no_other_keywords(who, deprecated)
        max_new_tokens = V.nonneg_int(who, "max_new_tokens", max_new_tokens)
        temperature = V.finite_float(who, "temperature", temperature, low=0.0)
        top_k = V.optional_positive_int(who, "top_k", top_k)
        if not isinstance(kv_cache, bool):
            raise TypeError(f"{who}: kv_cache must be True or False, got {V.describe(kv_cache)}")
        L = self.config.context_len
        is_ids = isinstance(tokens, torch.Tensor) and tokens.ndim == 2
        if mask is not None:
            self._check_prompt_mask(tokens, mask)
        self._check_forward(tokens[:, -L:] if is_ids else tokens, None, context, context_mask, None,
                            None if mask is None else mask[:, -L:])
        if tokens.shape[1] == 0:
            raise ValueError(f"{who}: tokens must hold a prompt of at least one token per row to "
                             f"continue, got shape {tuple(tokens.shape)}")
        _check_generator(who, generator, tokens.shape[0])
        was_training = self.training
        self.eval()
        try:
            return self._generate(tokens, max_new_tokens, temperature, top_k, kv_cache, context,
                                  context_mask, mask, generator)
        finally:  # also when sampling raises (or is interrupted): the model's mode is restored
            self.train(was_training)

    def _check_prompt_mask(self, tokens, mask) -> None:
        """generate's mask: (B, T) bool like tokens, a real token in every row, padding on the left."""
        who = "Decoder.generate"
        V.token_ids(who, "tokens", tokens, self.config.vocab_size)
        V.token_mask(who, mask, tuple(tokens.shape), tokens.device, " like tokens")
        ends_padded = ~mask[:, -1]
        if bool(ends_padded.any()):
            row = int(ends_padded.nonzero()[0, 0])
            raise ValueError(
                f"{who}: mask must pad on the left only (each new token follows its row's last "
                f"position, which must be a real token), got row {row} ending in padding"
            )

    def _generate(self, tokens, max_new_tokens, temperature, top_k, use_cache, context, context_mask,
                  mask, generator) -> torch.Tensor:
        L = self.config.context_len
        caches = None
        for _ in range(max_new_tokens):
            if use_cache and caches is not None and len(caches[0]) < L:
                step_mask = None if mask is None else mask[:, -(len(caches[0]) + 1):]
                logits, _ = self(tokens[:, -1:], context=context, context_mask=context_mask,
                                 mask=step_mask, kv_cache=caches)
            else:  # first step, no cache, or the window slid: run the whole (cropped) window
                window = tokens[:, -L:]
                caches = [KVCache() for _ in self.blocks] if use_cache else None
                logits, _ = self(window, context=context, context_mask=context_mask,
                                 mask=None if mask is None else mask[:, -L:], kv_cache=caches)
            next_tok = _sample(logits[:, -1, :].float(), temperature, top_k, generator)
            tokens = torch.cat([tokens, next_tok], dim=1)
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        return tokens


def _check_generator(who: str, generator, batch: int) -> None:
    """None, a torch.Generator, or a list of ``batch`` of them (one per row)."""
    if generator is None or isinstance(generator, torch.Generator):
        return
    if not isinstance(generator, (list, tuple)) or not all(isinstance(g, torch.Generator) for g in generator):
        raise TypeError(
            f"{who}: generator must be a torch.Generator, a list of {batch} (one per row) or None, got "
            f"{V.describe(generator)}"
        )
    if len(generator) != batch:
        raise ValueError(
            f"{who}: generator must hold one torch.Generator per row ({batch}), got {len(generator)}"
        )


def _sample(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> torch.Tensor:
    """logits (B, vocab) -> next token ids (B, 1); ``generator`` may be one per row (a list)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    # the largest logit first becomes 0: a small temperature then sends the others to -inf, never
    # the largest to +inf (inf - inf would make the softmax NaN); at temperature 1 nothing changes.
    # A temperature below the dtype's smallest normal number would round to 0 (0 / 0 = NaN): at
    # that one the pattern is already its limit (all weight on the largest logits).
    temperature = max(temperature, torch.finfo(logits.dtype).tiny)
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if isinstance(generator, (list, tuple)):  # row b draws as it would alone with generator[b]
        rows = zip(probs, generator, strict=True)
        return torch.cat([torch.multinomial(p[None], 1, generator=g) for p, g in rows])
    return torch.multinomial(probs, 1, generator=generator)

"""Checkers for chapter 11 (what attention costs): the FLOP crossover, the memory of the attention
patterns and the memory of a grouped-query KV cache."""

from __future__ import annotations

import torch

from ._core import CheckFailure, Mistake, NumberSpec, as_number, checker, fail

__all__ = [
    "check_crossover",
    "check_pattern_memory",
    "check_kv_cache_memory",
]


# --------------------------------------------------------------------------- FLOP crossover


def _crossover(d_model, n_heads, d_mlp):
    """Attention's 4 T d_model equals the projections' 8 d_model^2 plus the MLP's 4 d_model d_mlp."""
    return 2 * d_model + d_mlp


def _crossover_cases():
    out = []
    for d, H, m in [(768, 12, 3072), (256, 4, 512), (1000, 8, 2730), (96, 3, 96),
                    (12288, 96, 49152), (4096, 32, 11008), (64, 1, 300)]:
        out.append((f"d_model={d}, {H} head{'s' if H > 1 else ''}, d_mlp={m}", (d, H, m), {}))
    return out


def _gpt3_answer(raw, args):
    """Name an answer hard-coded to GPT-3's crossover, which the chapter prints above."""
    gpt3 = _crossover(12288, 96, 49152)
    try:
        value = as_number(raw)
    except CheckFailure:
        return  # the number checker names a bad answer itself
    if value == gpt3 and _crossover(*args) != gpt3:
        fail(f"{gpt3:,} is GPT-3's crossover, printed above, but this is another model: your "
             "function is hard-coded to GPT-3's answer. Compute T from d_model and d_mlp")


@checker(NumberSpec(
    "FLOP crossover", _crossover_cases(), _crossover, [
        Mistake("that is twice the crossover: your attention count is half of 4 T d_model. "
                "Did you count the scores q . k (2 T d_model) but not the weighted sum of the "
                "values (another 2 T d_model), count a multiply-add as one FLOP in attention "
                "only, or halve it for the causal mask? The chapter counts all T keys",
                lambda d, H, m: 2 * (2 * d + m)),
        Mistake("that is four times the crossover: you counted only the scores q . k, at one "
                "FLOP per multiply-add. Attention costs 2 x 2 x T x d_model per token: the "
                "scores and the weighted sum of the values, two FLOPs per multiply-add",
                lambda d, H, m: 4 * (2 * d + m)),
        Mistake("that is half the crossover: you counted a multiply-add as one FLOP in the "
                "projections and the MLP but as two in attention. Use one convention on both "
                "sides (the chapter's: two FLOPs per multiply-add)",
                lambda d, H, m: (2 * d + m) / 2),
        Mistake("you used d_head where d_model belongs in attention's count: the heads together "
                "are d_model wide, so summed over the heads the scores and the weighted sums "
                "cost 4 T d_model, not 4 T d_head",
                lambda d, H, m: H * (2 * d + m)),
        Mistake("you used d_head where d_model belongs: the projections are d_model x d_model "
                "maps and the heads together are d_model wide. The number of heads changes none "
                "of the three counts",
                lambda d, H, m: 2 * (d / H) + m),
        Mistake("you forgot the MLP: its two maps (d_model -> d_mlp -> d_model) cost "
                "2 x 2 x d_model x d_mlp FLOPs per token, usually more than the projections",
                lambda d, H, m: 2 * d),
        Mistake("you forgot the projections: the query, key, value and output maps cost "
                "4 x 2 x d_model^2 FLOPs per token",
                lambda d, H, m: m),
        Mistake("you counted three projections (query, key, value): the output map W_O is a "
                "fourth d_model x d_model product, 2 d_model^2 FLOPs more",
                lambda d, H, m: 1.5 * d + m),
        Mistake("that is 6 d_model, which holds only when d_mlp = 4 d_model: use the d_mlp "
                "argument (the MLP costs 2 x 2 x d_model x d_mlp FLOPs per token)",
                lambda d, H, m: 6 * d),
        Mistake("you counted one of the MLP's two maps: it goes up (d_model -> d_mlp) and back "
                "down (d_mlp -> d_model), 2 x d_model x d_mlp FLOPs each",
                lambda d, H, m: 2 * d + m / 2),
    ], pre=_gpt3_answer))
def check_crossover(fn):
    """Check fn(d_model, n_heads, d_mlp) -> the context length where attention's FLOPs equal the rest.

    Per token and block, counting a multiply-add as two FLOPs (``efficient.flops_per_token``):
    attention's scores and weighted sums cost 4 T d_model, the four projections 8 d_model^2 and
    the MLP 4 d_model d_mlp; the two sides are equal at T = 2 d_model + d_mlp, whatever n_heads.
    """


# --------------------------------------------------------------------------- pattern memory


def _size(dtype):
    return torch.empty((), dtype=dtype).element_size()


def _memory(context_len, n_heads, n_layers, dtype, batch=1):
    return batch * n_layers * n_heads * context_len * context_len * _size(dtype)


def _memory_cases():
    out = []
    for T, H, L, dt, B in [(256, 4, 3, torch.bfloat16, 8), (2048, 96, 96, torch.float16, 1),
                           (1024, 12, 12, torch.float32, 1), (7, 1, 1, torch.float64, 1),
                           (100, 6, 5, torch.float16, 3)]:
        label = f"T={T}, heads={H}, layers={L}, {str(dt).replace('torch.', '')}, batch={B}"
        out.append((label, (T, H, L, dt), {"batch": B} if B != 1 else {}))
    return out


def _m(formula):
    """A mistake formula of (T, H, L, B, size), with the reader's signature."""
    def wrong(context_len, n_heads, n_layers, dtype, batch=1):
        return formula(context_len, n_heads, n_layers, batch, _size(dtype))
    return wrong


@checker(NumberSpec(
    "pattern memory", _memory_cases(), _memory, [
        Mistake("you counted entries, not bytes: multiply by the size of one entry "
                "(torch.empty((), dtype=dtype).element_size())",
                _m(lambda T, H, L, B, s: B * L * H * T * T)),
        Mistake("that is bits, not bytes: do not multiply by 8",
                _m(lambda T, H, L, B, s: B * L * H * T * T * s * 8)),
        Mistake("you forgot the heads: every head has its own pattern",
                _m(lambda T, H, L, B, s: B * L * T * T * s)),
        Mistake("you forgot the layers: every layer has its own patterns",
                _m(lambda T, H, L, B, s: B * H * T * T * s)),
        Mistake("you forgot the batch: every sequence has its own patterns",
                _m(lambda T, H, L, B, s: L * H * T * T * s)),
        Mistake("the pattern of one head is context_len x context_len, not context_len: every "
                "query has a weight for every key", _m(lambda T, H, L, B, s: B * L * H * T * s)),
        Mistake("the causal mask zeroes the upper triangle but the explicit path still stores the "
                "full square pattern", _m(lambda T, H, L, B, s: B * L * H * T * (T + 1) // 2 * s)),
        Mistake("you assumed 4 bytes per entry; the size depends on the dtype "
                "(torch.empty((), dtype=dtype).element_size())",
                _m(lambda T, H, L, B, s: B * L * H * T * T * 4)),
    ]))
def check_pattern_memory(fn):
    """Check fn(context_len, n_heads, n_layers, dtype, batch=1) -> bytes of every attention pattern."""


# --------------------------------------------------------------------------- KV cache memory


def _kv(context_len, n_layers, n_heads, n_kv_heads, d_head, dtype, batch=1):
    return 2 * batch * n_layers * n_kv_heads * context_len * d_head * _size(dtype)


def _kv_cases():
    out = []
    for T, L, H, H_kv, dh, dt, B in [(2048, 96, 96, 8, 128, torch.float16, 1),
                                     (512, 6, 8, 2, 64, torch.float32, 4),
                                     (100, 3, 12, 12, 32, torch.bfloat16, 1),
                                     (33, 2, 6, 1, 16, torch.float64, 3),
                                     (4096, 32, 32, 8, 128, torch.bfloat16, 2)]:
        label = (f"T={T}, layers={L}, heads={H}, kv heads={H_kv}, d_head={dh}, "
                 f"{str(dt).replace('torch.', '')}, batch={B}")
        out.append((label, (T, L, H, H_kv, dh, dt), {"batch": B} if B != 1 else {}))
    return out


def _mk(formula):
    """A mistake formula of (T, L, H, H_kv, d_head, B, size), with the reader's signature."""
    def wrong(context_len, n_layers, n_heads, n_kv_heads, d_head, dtype, batch=1):
        return formula(context_len, n_layers, n_heads, n_kv_heads, d_head, batch, _size(dtype))
    return wrong


@checker(NumberSpec(
    "KV cache memory", _kv_cases(), _kv, [
        Mistake("you cached the keys only: every position keeps a key AND a value vector, so "
                "multiply by 2", _mk(lambda T, L, H, Hk, dh, B, s: B * L * Hk * T * dh * s)),
        Mistake("you counted the query heads: the cache holds only the n_kv_heads key/value heads, "
                "which the query heads share", _mk(lambda T, L, H, Hk, dh, B, s: 2 * B * L * H * T * dh * s)),
        Mistake("you counted the group size n_heads // n_kv_heads as the number of cached heads; "
                "the cache holds n_kv_heads heads",
                _mk(lambda T, L, H, Hk, dh, B, s: 2 * B * L * (H // Hk) * T * dh * s)),
        Mistake("you forgot the layers: every layer caches its own keys and values",
                _mk(lambda T, L, H, Hk, dh, B, s: 2 * B * Hk * T * dh * s)),
        Mistake("you forgot the batch: every sequence has its own cache",
                _mk(lambda T, L, H, Hk, dh, B, s: 2 * L * Hk * T * dh * s)),
        Mistake("you counted numbers, not bytes: multiply by the size of one number "
                "(torch.empty((), dtype=dtype).element_size())",
                _mk(lambda T, L, H, Hk, dh, B, s: 2 * B * L * Hk * T * dh)),
        Mistake("that is bits, not bytes: do not multiply by 8",
                _mk(lambda T, L, H, Hk, dh, B, s: 16 * B * L * Hk * T * dh * s)),
        Mistake("you assumed 4 bytes per number; the size depends on the dtype "
                "(torch.empty((), dtype=dtype).element_size())",
                _mk(lambda T, L, H, Hk, dh, B, s: 8 * B * L * Hk * T * dh)),
        Mistake("the cache grows with context_len, not its square: one key and one value per "
                "position, not one per (query, key) pair",
                _mk(lambda T, L, H, Hk, dh, B, s: 2 * B * L * Hk * T * T * dh * s)),
    ]))
def check_kv_cache_memory(fn):
    """Check fn(context_len, n_layers, n_heads, n_kv_heads, d_head, dtype, batch=1) -> KV cache bytes.

    Every layer keeps, for every position of every sequence, one key and one value vector of d_head
    numbers per key/value head: 2 x batch x n_layers x n_kv_heads x context_len x d_head numbers of
    dtype's size. n_heads does not appear: the query heads share the cached heads.
    """

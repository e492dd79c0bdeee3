"""Attention at scale: memory-efficient exact attention, sparse masks, and cost arithmetic.

    tiled_attention(q, k, v) == softmax(q @ k^T * scale) @ v      (the same numbers as SDPA)

The explicit path of ``attnlib.attention`` writes the whole pattern, a (T_q, T_k) tensor per head,
to memory. ``tiled_attention`` computes the same result one tile of keys at a time with an *online
softmax* (the idea behind FlashAttention): for every query it keeps

  * ``m``  the running maximum of the scores seen so far            (..., T_q, 1)
  * ``l``  the running sum of exp(score - m)                        (..., T_q, 1)
  * ``acc`` the running sum of exp(score - m) * value               (..., T_q, d_v)

and when a new tile raises the maximum from m to m', it multiplies ``l`` and ``acc`` by
exp(m - m') before adding the tile's own terms. At the end ``acc / l`` is the attention output.
At most (T_q, block_size) scores exist at any moment; the T_q x T_k pattern is never stored.

Sparse attention is shown as boolean masks (True = may attend, the book's convention):
``sliding_window_mask`` (each query sees a local window of keys) and ``block_sparse_mask``
(a fixed block pattern in the style of the Sparse Transformer). ``count_attended`` counts the
(query, key) pairs a mask allows, which is what a sparse kernel would have to compute;
``block_sparse_count`` gives the block pattern's count by arithmetic.

Measuring helpers for the book: ``pattern_bytes`` and ``kv_cache_bytes`` (exact arithmetic of the
pattern's and the KV cache's sizes), ``LargestTensor`` (records the largest tensor any PyTorch
operation allocates inside a ``with`` block, a deterministic stand-in for peak memory on the CPU,
and counts the operations), ``benchmark`` (median wall time) and ``flops_per_token`` (the forward
FLOPs of one token in one block, split into projections, MLP and the T-dependent attention part).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from . import _validate as V
from .attention import causal_mask

__all__ = [
    "tiled_attention",
    "sliding_window_mask",
    "block_sparse_mask",
    "count_attended",
    "block_sparse_count",
    "pattern_bytes",
    "kv_cache_bytes",
    "FlopCount",
    "flops_per_token",
    "LargestTensor",
    "benchmark",
]


# --------------------------------------------------------------------------- tiled attention


def tiled_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    block_size: int = 128,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact attention computed over tiles of keys with an online softmax.

    Args:
        q: queries (..., T_q, d).
        k: keys (..., T_k, d).
        v: values (..., T_k, d_v).
        is_causal: lower-right aligned causal mask, as in ``attnlib.attention`` (query i sees keys
            0 .. i + T_k - T_q).
        scale: multiplier of the scores; default 1/sqrt(d).
        block_size: number of keys per tile; need not divide T_k (the last tile is shorter).
        mask: optional bool mask (True = may attend) broadcastable to (..., T_q, T_k), combined
            with ``is_causal`` by AND. It is read one tile of columns at a time.

    Returns:
        out (..., T_q, d_v) in the dtype of ``v``. The arithmetic runs in
        ``torch.promote_types(dtype, torch.float32)`` (float32, or float64 for float64). A query with no
        key to attend to gets a zero output (and zero gradient), like ``attnlib.attention``.

    Memory: besides the inputs and the output, the forward pass holds the running statistics
    (..., T_q, 1), the accumulator (..., T_q, d_v) and one tile of scores (..., T_q, block_size).
    Autograd still keeps every tile for the backward pass; FlashAttention avoids that by
    recomputing the tiles in a hand-written backward, which this teaching version does not do.
    """
    V.qkv(q, k, v, "tiled_attention")
    block_size = V.positive_int("tiled_attention", "block_size", block_size)
    T_q, T_k = q.shape[-2], k.shape[-2]
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    else:
        scale = V.finite_float("tiled_attention", "scale", scale)
    if mask is not None:
        V.mask(mask, tuple(q.shape[:-1]) + (T_k,), q.device, "tiled_attention", bool_only=True)
        if mask.ndim < 2:
            mask = mask.reshape((1,) * (2 - mask.ndim) + tuple(mask.shape))
        mask = mask.expand(*mask.shape[:-2], mask.shape[-2], T_k)  # a view: no copy

    ct = torch.float64 if q.dtype == torch.float64 else torch.float32  # promote_types(dtype, fp32)
    q32 = q.to(ct) * scale  # (..., T_q, d)
    lead = tuple(q.shape[:-1])  # (..., T_q)
    m = q32.new_full(lead + (1,), float("-inf"))  # running max of the scores
    l = q32.new_zeros(lead + (1,))  # running sum of exp(score - m)
    acc = q32.new_zeros(lead + (v.shape[-1],))  # running sum of exp(score - m) * value
    q_pos = torch.arange(T_q, device=q.device).unsqueeze(1) + (T_k - T_q)  # (T_q, 1), lower-right

    for start in range(0, T_k, block_size):
        stop = min(start + block_size, T_k)
        kb = k[..., start:stop, :].to(ct)  # (..., B, d)
        vb = v[..., start:stop, :].to(ct)  # (..., B, d_v)
        s = torch.matmul(q32, kb.transpose(-2, -1))  # (..., T_q, B): one tile of scores
        allowed = None
        if is_causal:
            allowed = torch.arange(start, stop, device=q.device).unsqueeze(0) <= q_pos  # (T_q, B)
        if mask is not None:
            mb = mask[..., start:stop]
            allowed = mb if allowed is None else allowed & mb
        if allowed is not None:
            s = s.masked_fill(~allowed, float("-inf"))

        # The output does not depend on the value of the max (it cancels), so no gradient flows
        # through it; detaching keeps autograd from differentiating a constant.
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True)).detach()
        m_safe = m_new.masked_fill(m_new == float("-inf"), 0.0)  # rows that have seen no key yet
        alpha = torch.exp(m - m_safe)  # rescales the old statistics to the new max (0 if m = -inf)
        p = torch.exp(s - m_safe)  # (..., T_q, B), unnormalised weights of this tile
        l = l * alpha + p.sum(dim=-1, keepdim=True)
        acc = acc * alpha + torch.matmul(p, vb)
        m = m_new

    seen = l > 0  # False for queries whose keys were all masked
    out = acc / torch.where(seen, l, torch.ones_like(l))
    out = torch.where(seen, out, torch.zeros_like(out))
    return out.to(v.dtype)


# --------------------------------------------------------------------------- sparse masks


def sliding_window_mask(T: int, window: int, *, causal: bool = True, device=None) -> torch.Tensor:
    """Local attention: bool mask (T, T), True = may attend.

    With ``causal=True`` (the default, for a decoder) query i sees the ``window`` most recent keys,
    itself included: keys j with i - window < j <= i. With ``causal=False`` it sees every key
    within distance window - 1 on either side: |i - j| < window. ``window >= T`` (causal) gives
    the full causal mask.
    """
    V.positive_int("sliding_window_mask", "T", T)
    V.positive_int("sliding_window_mask", "window", window)
    i = torch.arange(T, device=device).unsqueeze(1)  # queries (T, 1)
    j = torch.arange(T, device=device).unsqueeze(0)  # keys (1, T)
    if causal:
        return (j <= i) & (j > i - window)
    return (i - j).abs() < window


def block_sparse_mask(
    T: int, block: int, *, n_summary: int = 1, causal: bool = True, device=None
) -> torch.Tensor:
    """A fixed block-sparse pattern: bool mask (T, T), True = may attend.

    Positions are cut into blocks of ``block`` consecutive tokens. Query i sees
      * every key in its own block (local attention), and
      * the last ``n_summary`` positions of every block (the "summary" keys through which
        information travels between blocks),
    and, with ``causal=True``, only keys j <= i. This is the "fixed" pattern of the Sparse
    Transformer (Child et al., 2019). The last block may be shorter when ``block`` does not divide T.

    Causal, one summary key per block and ``block`` dividing T, the mask keeps T (block + T/block) / 2
    entries: a triangle of block (block + 1) / 2 per block, and every query of block b also sees the
    b summary keys before it. ``block_sparse_count`` counts any case without building the mask.
    """
    V.positive_int("block_sparse_mask", "T", T)
    V.positive_int("block_sparse_mask", "block", block)
    if V.nonneg_int("block_sparse_mask", "n_summary", n_summary) > block:
        raise ValueError(
            f"block_sparse_mask: n_summary must be an int in [0, block={block}], got {n_summary!r}"
        )
    i = torch.arange(T, device=device).unsqueeze(1)
    j = torch.arange(T, device=device).unsqueeze(0)
    same_block = (i // block) == (j // block)
    summary = (j % block) >= (block - n_summary)  # (1, T)
    allowed = same_block | summary
    if causal:
        allowed = allowed & causal_mask(T, device=device)
    return allowed


def count_attended(mask: torch.Tensor) -> int:
    """Number of (query, key) pairs a bool mask allows (its True entries), as a Python int."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(
            "count_attended: mask must be a bool tensor (True = may attend), got "
            f"{getattr(mask, 'dtype', type(mask).__name__)}"
        )
    return int(mask.sum().item())


def block_sparse_count(T: int, block: int, *, n_summary: int = 1, causal: bool = True) -> int:
    """Number of True entries of ``block_sparse_mask(T, block, ...)``, without building the mask.

    One term per block of queries (cheap for T in the millions). Block b (of n_b queries) sees its
    own block, a triangle of n_b (n_b + 1) / 2 when causal (n_b^2 otherwise), plus the summary keys
    of the other blocks: the b * n_summary before it when causal, all of them otherwise.
    """
    V.positive_int("block_sparse_count", "T", T)
    V.positive_int("block_sparse_count", "block", block)
    if not isinstance(causal, bool):
        raise TypeError(f"block_sparse_count: causal must be True or False, got {causal!r}")
    if V.nonneg_int("block_sparse_count", "n_summary", n_summary) > block:
        raise ValueError(
            f"block_sparse_count: n_summary must be an int in [0, block={block}], got {n_summary!r}"
        )
    sizes = [min(block, T - start) for start in range(0, T, block)]  # queries per block
    # summary keys of each block: its positions with (j % block) >= block - n_summary
    summaries = [max(0, n - (block - n_summary)) for n in sizes]
    total = 0
    for b, n in enumerate(sizes):
        if causal:  # earlier blocks are full, each with n_summary summary keys
            total += n * (n + 1) // 2 + n * b * n_summary
        else:
            total += n * (n + sum(summaries) - summaries[b])
    return total


# --------------------------------------------------------------------------- measuring


def pattern_bytes(
    context_len: int,
    *,
    n_heads: int = 1,
    n_layers: int = 1,
    batch: int = 1,
    dtype: torch.dtype = torch.float32,
) -> int:
    """Bytes needed to store every attention pattern explicitly: batch x layers x heads x T^2 x size.

    Exact arithmetic, no tensor is allocated. GPT-3 (T = 2048, 96 heads, 96 layers) in fp16:
    ``pattern_bytes(2048, n_heads=96, n_layers=96, dtype=torch.float16)``.
    """
    for name, val in (("context_len", context_len), ("n_heads", n_heads), ("n_layers", n_layers),
                      ("batch", batch)):
        V.positive_int("pattern_bytes", name, val)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"pattern_bytes: dtype must be a torch.dtype, got {dtype!r}")
    itemsize = torch.empty((), dtype=dtype).element_size()
    return batch * n_layers * n_heads * context_len * context_len * itemsize


def kv_cache_bytes(
    context_len: int,
    *,
    n_layers: int,
    n_heads: int,
    d_head: int,
    batch: int = 1,
    dtype: torch.dtype = torch.float32,
    n_kv_heads: int | None = None,
) -> int:
    """Bytes of a full KV cache: a key and a value vector per position, KV head, layer and sequence.

    2 x batch x layers x kv_heads x context_len x d_head x size. Exact arithmetic; it grows linearly
    with the context, while the explicit pattern grows with its square. With grouped-query
    (1 < n_kv_heads < n_heads) or multi-query attention (n_kv_heads = 1) only the key/value heads
    are cached; ``n_kv_heads=None`` means every head has its own (n_kv_heads = n_heads).
    """
    for name, val in (("context_len", context_len), ("n_layers", n_layers), ("n_heads", n_heads),
                      ("d_head", d_head), ("batch", batch)):
        V.positive_int("kv_cache_bytes", name, val)
    if n_kv_heads is None:
        n_kv_heads = n_heads
    V.positive_int("kv_cache_bytes", "n_kv_heads", n_kv_heads)
    if n_heads % n_kv_heads != 0:
        raise ValueError(
            f"kv_cache_bytes: n_kv_heads must divide n_heads={n_heads} (each key/value head serves "
            f"a group of query heads), got {n_kv_heads}"
        )
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"kv_cache_bytes: dtype must be a torch.dtype, got {dtype!r}")
    itemsize = torch.empty((), dtype=dtype).element_size()
    return 2 * batch * n_layers * n_kv_heads * context_len * d_head * itemsize


@dataclass(frozen=True)
class FlopCount:
    """Forward FLOPs of one token in one transformer block, by part (see ``flops_per_token``)."""

    projections: int  # the query, key, value and output maps: 4 (d_model x d_model) products
    mlp: int  # the MLP's two maps, d_model -> d_mlp -> d_model
    attention: int  # the token's scores against T keys and the weighted sum of T values

    @property
    def total(self) -> int:
        return self.projections + self.mlp + self.attention

    @property
    def attention_share(self) -> float:
        """The T-dependent part's share of the block's compute."""
        return self.attention / self.total


def flops_per_token(d_model: int, context_len: int, *, d_mlp: int | None = None) -> FlopCount:
    """Forward FLOPs of one token in one block of width d_model, attending to context_len keys.

    Convention: a multiply-add counts as 2 FLOPs, so a (1, k) @ (k, n) product costs 2 k n. The
    heads together are d_model wide (n_heads * d_head = d_model); d_mlp defaults to 4 d_model.
        projections  2 * 4 * d_model^2           (Q, K, V, O)       =  8 d^2
        mlp          2 * 2 * d_model * d_mlp      (up and down)      = 16 d^2 for d_mlp = 4 d
        attention    2 * 2 * context_len * d_model (q.k and w @ v)  =  4 T d
    Only matrix products are counted (not the softmax, LayerNorm, biases or the embeddings), as
    ``torch.utils.flop_counter.FlopCounterMode`` does. ``attention`` counts every key, which is
    what a dense kernel computes even under a causal mask (the last query of a causal sequence
    sees all T keys; averaged over the sequence a kernel that skips the future does about half).
    """
    V.positive_int("flops_per_token", "d_model", d_model)
    V.positive_int("flops_per_token", "context_len", context_len)
    d_mlp = 4 * d_model if d_mlp is None else V.positive_int("flops_per_token", "d_mlp", d_mlp)
    return FlopCount(
        projections=2 * 4 * d_model * d_model,
        mlp=2 * 2 * d_model * d_mlp,
        attention=2 * 2 * context_len * d_model,
    )


class LargestTensor(TorchDispatchMode):
    """Record the largest tensor that any PyTorch operation creates inside a ``with`` block.

        with LargestTensor() as tracker:
            attention(q, k, v, return_weights=True)
        tracker.nbytes, tracker.shape, tracker.op, tracker.n_ops

    ``n_ops`` counts the PyTorch (aten) operations run inside the block. Every operation's outputs are inspected (views, which allocate nothing, are skipped). This is
    deterministic, unlike the process's memory, and it is the quantity the argument is about: the
    explicit path allocates a (T_q, T_k) score tensor, the tiled path at most (T_q, block_size).
    It cannot see buffers a fused kernel allocates internally (SDPA's own kernels), only the
    tensors that kernel returns.
    """

    def __init__(self):
        super().__init__()
        self.nbytes = 0
        self.shape: tuple = ()
        self.op = ""
        self.n_ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.n_ops += 1
        if not getattr(func, "is_view", False):
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    n = t.numel() * t.element_size()
                    if n > self.nbytes:
                        self.nbytes, self.shape, self.op = n, tuple(t.shape), str(func)
        return out


def benchmark(fn, *args, repeats: int = 5, warmup: int = 1, **kwargs) -> float:
    """Median wall-clock seconds of ``fn(*args, **kwargs)`` over ``repeats`` runs.

    Runs ``warmup`` untimed calls first and synchronises CUDA around each call, so GPU timings
    measure the work and not just the launch. Timings vary from run to run and machine to machine.
    """
    V.positive_int("benchmark", "repeats", repeats)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    with torch.no_grad():
        for _ in range(warmup):
            fn(*args, **kwargs)
        times = []
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            fn(*args, **kwargs)
            sync()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)

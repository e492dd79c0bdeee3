"""Attention at scale: memory-efficient exact attention, sparse masks, and cost arithmetic.

    tiled_attention(q, k, v) == softmax(q @ k^T * scale) @ v      (the same numbers as SDPA)

The explicit path of ``attnlib.attention`` writes the whole pattern, a (T_q, T_k) tensor per head,
to memory. ``tiled_attention`` computes the same result one (query tile, key tile) pair at a time
with an *online softmax* (the idea behind FlashAttention), skipping the pairs a causal or
block-sparse mask blocks entirely and counting its slow-memory traffic (``TileStats``; the
explicit path's is ``explicit_slow_memory``). For every query it keeps

  * ``m``  the running maximum of the scores seen so far            (..., T_q, 1)
  * ``l``  the running sum of exp(score - m)                        (..., T_q, 1)
  * ``acc`` the running sum of exp(score - m) * value               (..., T_q, d_v)

and when a new tile raises the maximum from m to m', it multiplies ``l`` and ``acc`` by
exp(m - m') before adding the tile's own terms. At the end ``acc / l`` is the attention output.
At most (block_q, block_k) scores per head exist at any moment; the T_q x T_k pattern is never
stored.

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
    "TileStats",
    "explicit_slow_memory",
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


@dataclass
class TileStats:
    """What one ``tiled_attention`` call did, counted (``return_stats=True``).

    Tiles are (query tile, key tile) pairs: ``tiles_computed + tiles_skipped == n_q_tiles *
    n_k_tiles``. A pair is skipped when the causal mask or the boolean mask blocks every entry of
    it for every batch element and head; nothing of it is loaded or computed.

    The ``*_reads`` and ``out_writes`` fields count **elements** (multiply by the element size for
    bytes) moved between "slow memory" (a GPU's HBM; here the tensors q, k, v, mask and out) and
    "fast memory" (on-chip SRAM, where a fused kernel keeps one query tile's running statistics
    and one tile of scores), counted as the FlashAttention paper counts HBM accesses. Scores,
    weights, the running max ``m``, the running sum ``l`` and the accumulator never leave fast
    memory, so they are not counted. See ``tiled_attention`` for the formula and
    ``explicit_slow_memory`` for the explicit path's count.

    The count assumes that one query tile's state (its q tile, ``m``, ``l``, ``acc`` and a tile of
    scores, about block_q (d + d_v + block_k + 2) numbers per head) fits in fast memory. Larger
    query tiles read k and v fewer times, so ``block_q=None`` (every query in one tile) gives the
    smallest count of all, but at long T no GPU's on-chip memory holds that state; a fused kernel
    sizes block_q to its fast memory, which is what the 2-D tiling models.
    """

    block_q: int = 0  # queries per tile actually used (T_q when block_q=None)
    block_k: int = 0
    n_q_tiles: int = 0
    n_k_tiles: int = 0
    tiles_computed: int = 0
    tiles_skipped: int = 0
    q_reads: int = 0  # elements of q loaded: each query tile once, if any of its pairs is computed
    k_reads: int = 0  # elements of k loaded: the key tile again for every computed pair (GQA: per group)
    v_reads: int = 0  # elements of v loaded: likewise
    mask_reads: int = 0  # entries of a boolean mask read (as stored: broadcast dims count once)
    out_writes: int = 0  # elements of the output written: every query tile once

    @property
    def tiles(self) -> int:
        """Every (query tile, key tile) pair, computed or skipped."""
        return self.tiles_computed + self.tiles_skipped

    @property
    def reads(self) -> int:
        """Elements read from slow memory: q, k, v and mask."""
        return self.q_reads + self.k_reads + self.v_reads + self.mask_reads

    @property
    def writes(self) -> int:
        """Elements written to slow memory: the output only."""
        return self.out_writes


def explicit_slow_memory(T_q: int, T_k: int, d: int, d_v: int | None = None, *, batch: int = 1) -> tuple[int, int]:
    """(reads, writes) in elements of the explicit path, counted as in the FlashAttention paper's
    standard attention (its Algorithm 0), without a mask:

      1. read Q and K, compute S = Q K^T, write S:         reads T_q d + T_k d,    writes T_q T_k
      2. read S, compute P = softmax(S), write P:          reads T_q T_k,          writes T_q T_k
      3. read P and V, compute O = P V, write O:           reads T_q T_k + T_k d_v, writes T_q d_v

    so reads = batch (T_q d + T_k d + 2 T_q T_k + T_k d_v) and writes = batch (2 T_q T_k + T_q d_v),
    where ``batch`` is the number of (batch element, head) pairs. The (T_q, T_k) matrix is written
    twice and read twice; a causal mask changes none of it (the blocked scores are still written).
    Exact arithmetic; no tensor is allocated.
    """
    who = "explicit_slow_memory"
    T_q, T_k = V.positive_int(who, "T_q", T_q), V.positive_int(who, "T_k", T_k)
    d = V.positive_int(who, "d", d)
    d_v = d if d_v is None else V.positive_int(who, "d_v", d_v)
    batch = V.positive_int(who, "batch", batch)
    reads = batch * (T_q * d + T_k * d + 2 * T_q * T_k + T_k * d_v)
    writes = batch * (2 * T_q * T_k + T_q * d_v)
    return reads, writes


def tiled_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    block_size: int | None = None,
    block_q: int | None = None,
    block_k: int | None = None,
    return_stats: bool = False,
    enable_gqa: bool = False,
):
    """Exact attention computed tile by tile (queries x keys) with an online softmax.

    The queries are cut into tiles of ``block_q`` and the keys into tiles of ``block_k``. For each
    query tile the loop visits the key tiles in order and keeps, for the tile's queries only,

      * ``m``   the running maximum of the scores seen so far            (..., block_q, 1)
      * ``l``   the running sum of exp(score - m)                        (..., block_q, 1)
      * ``acc`` the running sum of exp(score - m) * value               (..., block_q, d_v)

    rescaling ``l`` and ``acc`` by exp(m - m') whenever a key tile raises the maximum to m'. When
    its last key tile is done, the query tile's output ``acc / l`` is written once.

    A (query tile, key tile) pair that the mask blocks entirely is **skipped**: with ``is_causal``
    a tile that lies wholly above the (lower-right) diagonal, with a boolean ``mask`` a tile where
    ``not mask_tile.any()`` (over every batch element and head; with ``is_causal`` too, the AND of
    the two on the tile). Its keys and values are not
    loaded and its scores not computed. A partly blocked tile is computed with its blocked scores
    set to -inf, so the result is exact. A query none of whose keys may be attended to gets a zero
    output (and a zero gradient), like ``attnlib.attention``.

    Args:
        q: queries (..., T_q, d).
        k: keys (..., T_k, d).
        v: values (..., T_k, d_v).
        mask: optional bool mask (True = may attend) broadcastable to (..., T_q, T_k), combined
            with ``is_causal`` by AND. It is read one tile at a time.
        is_causal: lower-right aligned causal mask, as in ``attnlib.attention`` (query i sees keys
            0 .. i + T_k - T_q).
        scale: multiplier of the scores; default 1/sqrt(d).
        block_q: queries per tile; ``None`` (the default) puts every query in one tile, which is
            the keys-only tiling of chapter 12 (no causal tile is then ever wholly blocked).
        block_k: keys per tile (default 128).
        block_size: the earlier name of ``block_k``; give one or the other, not both.
            Block sizes need not divide T (the last tile is shorter).
        return_stats: also return a ``TileStats`` with the counts below.
        enable_gqa: grouped-query attention, as in ``attnlib.attention`` and SDPA: q has H heads
            (dim -3), k and v have H_kv heads dividing H, and query head h reads key/value head
            h // (H / H_kv). The heads are not repeated: the G = H / H_kv query heads of a group
            share each key/value tile.

    Returns:
        out (..., T_q, d_v) in the dtype of ``v``, or ``(out, stats)`` with ``return_stats``. The
        arithmetic runs in ``torch.promote_types(dtype, torch.float32)`` (float32, or float64 for
        float64 inputs).

    Slow-memory traffic (``TileStats``, in elements). With N the number of (batch element, head)
    pairs (the product of the leading dims), Q_i the query tiles, K_j the key tiles, C the set of
    computed pairs (i, j) and I the query tiles with at least one computed pair:

        q_reads    = N d   * sum over i in I      of |Q_i|
        k_reads    = N d   * sum over (i, j) in C of |K_j|
        v_reads    = N d_v * sum over (i, j) in C of |K_j|
        out_writes = N d_v * T_q                       (every query tile once, zeros included)
        mask_reads = the mask entries of every tile that is not already skipped by is_causal

    With ``enable_gqa`` N counts (batch element, query head) pairs in q_reads and out_writes, but
    k_reads and v_reads count N_kv = N / G (batch element, key/value head) pairs: a GQA kernel
    processes a group's G query tiles together, so each key and value tile is loaded once per
    group (the fast memory then holds G query tiles' state).

    so without a mask reads = N T_q d + N ceil(T_q / block_q) T_k (d + d_v), and causal with
    T_q = T_k = T and block_q = block_k = B dividing T (n = T / B tiles a side, n (n + 1) / 2 of the
    n^2 pairs computed) reads = N T d + N (d + d_v) T (T + B) / (2 B). The explicit path moves
    about 4 N T_q T_k elements (``explicit_slow_memory``): it writes and reads the (T_q, T_k)
    matrix twice. The tiled path moves the keys and values once per query tile instead, a factor
    of about 4 block_q / (d + d_v) less, and the masked tiles not at all.

    Memory: besides the inputs and the output, the forward pass holds one query tile's running
    statistics, its accumulator and one (..., block_q, block_k) tile of scores. Autograd still
    keeps every tile for the backward pass; FlashAttention avoids that by recomputing the tiles in
    a hand-written backward, which this teaching version does not do.
    """
    is_causal, return_stats, enable_gqa = V.flags("tiled_attention", is_causal=is_causal, return_stats=return_stats,
                                                  enable_gqa=enable_gqa).values()
    mask, scale, bq, block_k = _tiled_args(q, k, v, mask, scale, block_size, block_q, block_k, enable_gqa)
    T_q, T_k = q.shape[-2], k.shape[-2]
    d, d_v = q.shape[-1], v.shape[-1]
    n_batch = math.prod(q.shape[:-2])  # (batch element, query head) pairs
    grouped = enable_gqa and q.shape[-3] != k.shape[-3]  # query heads share key/value heads
    if grouped:
        q, k, v, mask = _grouped(q, k, v, mask)
    n_kv = math.prod(k.shape[:-2])  # (batch element, key/value head) pairs
    stats = TileStats(block_q=bq, block_k=block_k, n_q_tiles=-(-T_q // bq), n_k_tiles=-(-T_k // block_k))

    ct = torch.promote_types(q.dtype, torch.float32)  # float32, or float64 for float64 inputs
    lead = tuple(q.shape[:-2])
    out = v.new_empty(lead + (T_q, d_v))
    offset = T_k - T_q  # lower-right causal: query i sits at position i + offset

    for qs in range(0, T_q, bq):
        qe = min(qs + bq, T_q)
        q_tile = m = l = acc = None  # loaded and created at the tile's first computed pair
        for ks in range(0, T_k, block_k):
            ke = min(ks + block_k, T_k)
            blocked, allowed = _tile_mask(mask, is_causal, offset, qs, qe, ks, ke, q.device, stats)
            if blocked:  # the mask (or the causal diagonal) blocks the whole tile: skip it
                stats.tiles_skipped += 1
                continue
            stats.tiles_computed += 1
            if q_tile is None:
                q_tile = q[..., qs:qe, :].to(ct) * scale  # (..., bq, d), loaded once per query tile
                stats.q_reads += n_batch * (qe - qs) * d
                m = q_tile.new_full(lead + (qe - qs, 1), float("-inf"))
                l = q_tile.new_zeros(lead + (qe - qs, 1))
                acc = q_tile.new_zeros(lead + (qe - qs, d_v))
            kb = k[..., ks:ke, :].to(ct)  # (..., bk, d)
            vb = v[..., ks:ke, :].to(ct)  # (..., bk, d_v)
            stats.k_reads += n_kv * (ke - ks) * d
            stats.v_reads += n_kv * (ke - ks) * d_v
            s = torch.matmul(q_tile, kb.transpose(-2, -1))  # (..., bq, bk): one tile of scores
            if allowed is not None:
                s = s.masked_fill(~allowed, float("-inf"))

            # The output does not depend on the value of the max (it cancels), so no gradient flows
            # through it; detaching keeps autograd from differentiating a constant.
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True)).detach()
            m_safe = m_new.masked_fill(m_new == float("-inf"), 0.0)  # rows that have seen no key yet
            alpha = torch.exp(m - m_safe)  # rescales the old statistics to the new max (0 if m = -inf)
            p = torch.exp(s - m_safe)  # (..., bq, bk), unnormalised weights of this tile
            l = l * alpha + p.sum(dim=-1, keepdim=True)
            acc = acc * alpha + torch.matmul(p, vb)
            m = m_new

        if q_tile is None:  # every key tile of these queries was skipped: they attend to nothing
            out[..., qs:qe, :] = 0
        else:
            seen = l > 0  # False for queries whose keys were all masked
            o = acc / torch.where(seen, l, torch.ones_like(l))
            out[..., qs:qe, :] = torch.where(seen, o, torch.zeros_like(o))
        stats.out_writes += n_batch * (qe - qs) * d_v

    if grouped:  # (..., H_kv, G, T_q, d_v) -> (..., H, T_q, d_v)
        out = out.flatten(-4, -3)
    return (out, stats) if return_stats else out


def _grouped(q, k, v, mask):
    """GQA without repeating k and v: q (..., H, T_q, d) -> (..., H_kv, G, T_q, d) and k, v
    (..., H_kv, T_k, .) -> (..., H_kv, 1, T_k, .), so that the G query heads of a group broadcast
    against their key/value head (query head h = kv_head * G + g); the mask likewise."""
    H, H_kv = q.shape[-3], k.shape[-3]
    q = q.unflatten(-3, (H_kv, H // H_kv))
    k, v = k.unsqueeze(-3), v.unsqueeze(-3)
    if mask is not None and mask.ndim >= 3:  # a head dim of H, or of 1 (broadcast)
        mask = mask.unflatten(-3, (H_kv, H // H_kv)) if mask.shape[-3] == H else mask.unsqueeze(-3)
    return q, k, v, mask


def _tiled_args(q, k, v, mask, scale, block_size, block_q, block_k, enable_gqa=False):
    """The checked arguments of :func:`tiled_attention`: (mask, scale, block_q, block_k), with the
    mask at least 2-D, the default scale 1/sqrt(d), block_q the queries per tile actually used
    (every query when None) and block_k from either of its two names (default 128)."""
    who = "tiled_attention"
    V.qkv(q, k, v, who, gqa=enable_gqa)
    if block_size is not None and block_k is not None:
        raise ValueError(f"{who}: give block_k or its earlier name block_size, not both")
    if block_size is not None:
        block_k = V.positive_int(who, "block_size", block_size)
    else:
        block_k = 128 if block_k is None else V.positive_int(who, "block_k", block_k)
    block_q = V.optional_positive_int(who, "block_q", block_q)
    T_q, T_k = q.shape[-2], k.shape[-2]
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    else:
        scale = V.finite_float(who, "scale", scale)
    if mask is not None:
        V.mask(mask, tuple(q.shape[:-1]) + (T_k,), q.device, who, bool_only=True)
        if mask.ndim < 2:
            mask = mask.reshape((1,) * (2 - mask.ndim) + tuple(mask.shape))
    block_q = max(T_q, 1) if block_q is None else block_q
    return mask, scale, block_q, block_k


def _tile_mask(mask, is_causal, offset, qs, qe, ks, ke, device, stats):
    """(blocked, allowed) for the pair (queries qs..qe, keys ks..ke) of :func:`tiled_attention`:
    ``blocked`` when no entry of the tile may be attended to, else ``allowed`` the bool tile (True =
    may attend), or None when every entry may. Reads the mask's tile (counted in ``stats``) unless
    the causal diagonal already blocks the whole tile."""
    causal_part = False  # does the causal diagonal cut through this tile?
    if is_causal:
        if ks > qe - 1 + offset:  # even the tile's last query sees none of these keys
            return True, None
        causal_part = ke - 1 > qs + offset  # the tile's first query misses some key
    allowed = None  # None: every entry of the tile may be attended to
    if causal_part:
        allowed = torch.arange(ks, ke, device=device) <= (
            torch.arange(qs, qe, device=device).unsqueeze(1) + offset
        )  # (bq, bk); not all False: the tile's last query sees key ks
    if mask is not None:
        mb = mask[..., _tile(mask, -2, qs, qe), _tile(mask, -1, ks, ke)]
        stats.mask_reads += mb.numel()
        allowed = mb if allowed is None else allowed & mb
        if not allowed.any():  # the mask (with the diagonal) blocks the whole tile
            return True, None
    return False, allowed


def _tile(mask: torch.Tensor, dim: int, start: int, stop: int) -> slice:
    """The slice of ``mask`` along ``dim`` for positions start..stop: all of it (one entry) where
    the mask broadcasts along that dim."""
    return slice(None) if mask.shape[dim] == 1 else slice(start, stop)

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
    causal = V.flags("sliding_window_mask", causal=causal)["causal"]
    V.device("sliding_window_mask", "device", device)
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
    causal = V.flags("block_sparse_mask", causal=causal)["causal"]
    V.device("block_sparse_mask", "device", device)
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
    causal = V.flags("block_sparse_count", causal=causal)["causal"]
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

    def __post_init__(self):
        for name in ("projections", "mlp", "attention"):
            V.nonneg_int("FlopCount", name, getattr(self, name))

    @property
    def total(self) -> int:
        return self.projections + self.mlp + self.attention

    @property
    def attention_share(self) -> float:
        """The T-dependent part's share of the block's compute."""
        if self.total == 0:
            raise ValueError("FlopCount.attention_share: the block has no FLOPs (every part is 0), so "
                             "attention has no share of them")
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
    if not callable(fn):
        raise TypeError(f"benchmark: fn must be a function to time, got {V.describe(fn)}")
    V.positive_int("benchmark", "repeats", repeats)
    V.nonneg_int("benchmark", "warmup", warmup)
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

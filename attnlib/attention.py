"""Scaled dot-product attention: one mask front end, two paths.

    attention(q, k, v) = softmax(q @ k^T * scale + mask) @ v,   scale = 1 / sqrt(d)

Shapes (any number of leading batch dims, usually (B, H)):
    q (..., T_q, d)   k (..., T_k, d)   v (..., T_k, d_v)   ->   out (..., T_q, d_v)
    pattern (the attention weights) (..., T_q, T_k): row i holds query i's weights over the keys.

Two paths share one mask front end (`_mask_front_end`):
  * the explicit path writes the scores and the softmax out as tensors, so the pattern can be
    returned and looked at (used whenever ``return_weights=True``);
  * the fast path calls ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels).

Conventions (see the book's guide):
  * boolean masks: True = may attend (PyTorch SDPA's convention); float masks are added to the scores;
  * ``is_causal`` aligns the last query with the last key (lower-right), so fewer queries than keys
    (KV-cache decoding) is handled correctly;
  * a query row whose keys are all masked gets zero weights and a zero output, with a finite
    gradient, on both paths: such rows are neutralised *before* the softmax, not scrubbed after;
  * the explicit path computes in ``torch.promote_types(dtype, torch.float32)``: float32 for
    half precision (fp16, bf16) and float32 inputs, float64 for float64 inputs.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

__all__ = ["attention", "causal_mask", "padding_mask", "from_mha_mask", "softmax"]


# --------------------------------------------------------------------------- masks


def causal_mask(T_q: int, T_k: int | None = None, device=None) -> torch.Tensor:
    """Boolean causal mask of shape (T_q, T_k); True = may attend.

    Lower-right aligned: the last query sits at the last key's position, so query i may see keys
    0 .. i + (T_k - T_q). With T_q == T_k this is the usual lower triangle; with T_q == 1 (one new
    token decoded against a KV cache) the single query sees every key.
    """
    T_k = T_q if T_k is None else T_k
    for name, val in (("T_q", T_q), ("T_k", T_k)):
        if isinstance(val, bool) or not isinstance(val, numbers.Integral) or val < 1:
            raise ValueError(f"causal_mask: {name} must be a positive int, got {val!r}")
    return _causal(int(T_q), int(T_k), device)


def _causal(T_q: int, T_k: int, device=None) -> torch.Tensor:
    """causal_mask without the checks; also defined for empty sequences (T_q or T_k = 0)."""
    q_pos = torch.arange(T_q, device=device).unsqueeze(1) + (T_k - T_q)  # (T_q, 1)
    k_pos = torch.arange(T_k, device=device).unsqueeze(0)  # (1, T_k)
    return k_pos <= q_pos


def padding_mask(lengths, T: int) -> torch.Tensor:
    """Key-padding mask of shape (B, 1, 1, T) from the true lengths of B padded sequences.

    True where the key position is a real token (position < length). The shape broadcasts against
    patterns of shape (B, H, T_q, T). `lengths` is a 1-D int tensor or a list of ints.
    """
    lengths = torch.as_tensor(lengths)
    if lengths.ndim != 1 or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(
            f"padding_mask: lengths must be a 1-D integer tensor or list, got dtype {lengths.dtype} "
            f"and shape {tuple(lengths.shape)}"
        )
    if (lengths < 0).any() or (lengths > T).any():
        raise ValueError(f"padding_mask: every length must lie in [0, T={T}], got {lengths.tolist()}")
    pos = torch.arange(T, device=lengths.device)
    return (pos.unsqueeze(0) < lengths.unsqueeze(1))[:, None, None, :]


def from_mha_mask(mask: torch.Tensor) -> torch.Tensor:
    """Convert a ``torch.nn.MultiheadAttention``-style mask to attnlib's convention.

    ``nn.MultiheadAttention`` reads a boolean ``attn_mask`` / ``key_padding_mask`` as True = *blocked*;
    ``F.scaled_dot_product_attention`` and attnlib read True = *may attend*. A boolean mask is
    therefore inverted. A float mask is additive in both conventions and is returned unchanged.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"from_mha_mask: mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype == torch.bool:
        return ~mask
    if mask.is_floating_point():
        return mask
    raise TypeError(f"from_mha_mask: mask must be bool or floating point, got dtype {mask.dtype}")


# --------------------------------------------------------------------------- checks


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def _check_inputs(q, k, v, who: str = "attention") -> None:
    """Validate q, k, v; ``who`` names the calling function in the error messages."""
    # Happy path first: one combined test (about half the cost of the itemised checks below, which
    # matters for short sequences, where SDPA itself takes only ~100 us); the itemised checks only
    # run when something is wrong, to name the problem.
    if isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor) and isinstance(v, torch.Tensor):
        qs, ks, vs = q.shape, k.shape, v.shape
        if (q.dtype == k.dtype == v.dtype and q.is_floating_point() and q.device == k.device == v.device
                and len(qs) == len(ks) == len(vs) >= 2 and qs[-1] == ks[-1] and ks[-2] == vs[-2]
                and qs[:-2] == ks[:-2] == vs[:-2]):
            return
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{who}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{who}: {name} must be floating point, got dtype {t.dtype}")
        if t.ndim < 2:
            raise ValueError(
                f"{who}: {name} must have at least 2 dims (..., T, d), got shape {_shape(t)}"
            )
    if not (q.ndim == k.ndim == v.ndim):
        raise ValueError(
            f"{who}: q, k and v must have the same number of dims, got "
            f"q {_shape(q)}, k {_shape(k)}, v {_shape(v)}"
        )
    if not (q.device == k.device == v.device):
        raise ValueError(
            f"{who}: q, k and v must be on one device, got q on {q.device}, k on {k.device}, "
            f"v on {v.device}"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(
            f"{who}: q, k and v must share a dtype, got q {q.dtype}, k {k.dtype}, v {v.dtype}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"{who}: q and k must have the same last dim d (queries are dotted with keys), got "
            f"q {_shape(q)} (d={q.shape[-1]}) and k {_shape(k)} (d={k.shape[-1]})"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{who}: k and v must have the same number of positions T_k, got "
            f"k {_shape(k)} (T_k={k.shape[-2]}) and v {_shape(v)} (T_k={v.shape[-2]})"
        )
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(
            f"{who}: q, k and v must have the same batch dims (...), got "
            f"q {_shape(q)}, k {_shape(k)}, v {_shape(v)}"
        )


def _check_mask(mask, target: tuple, device, who: str = "attention") -> None:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{who}: mask must be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(
            f"{who}: mask must be bool (True = may attend) or float (added to the scores), got "
            f"dtype {mask.dtype}; for a 0/1 integer mask use mask.bool()"
        )
    try:
        fits = torch.broadcast_shapes(mask.shape, target) == torch.Size(target)
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"{who}: mask of shape {_shape(mask)} does not broadcast to the pattern's shape "
            f"{target} (..., T_q, T_k)"
        )
    if mask.device != device:
        raise ValueError(f"{who}: mask is on {mask.device} but q is on {device}")


# --------------------------------------------------------------------------- mask front end


def _mask_front_end(mask, is_causal: bool, q: torch.Tensor, k: torch.Tensor, fused_causal_ok: bool):
    """Turn (mask, is_causal) into what both paths consume.

    Returns ``(m, keep, sdpa_causal)``:
      * ``m``: None, a bool tensor (True = may attend) or a float tensor (added to the scores, -inf
        where blocked), broadcastable to (..., T_q, T_k). Rows with no allowed key are already
        neutralised (made to allow every key) so that the softmax stays finite;
      * ``keep``: None, or a bool tensor (..., T_q, 1) that is False on those fully masked rows; the
        caller multiplies the output (and the weights) by it, which gives exact zeros and zero,
        finite gradients;
      * ``sdpa_causal``: True when the only mask is a square causal one and the fast path may use
        SDPA's own ``is_causal`` (which is top-left aligned, the same thing when T_q == T_k).
    """
    if mask is None and not is_causal:  # the common cases return before any work
        return None, None, False
    T_q, T_k = q.shape[-2], k.shape[-2]
    if mask is None and T_q == T_k and fused_causal_ok:
        return None, None, True
    if mask is not None:
        _check_mask(mask, tuple(q.shape[:-1]) + (T_k,), q.device)

    allowed = None
    bias = None
    if is_causal:
        allowed = _causal(T_q, T_k, device=q.device)
    if mask is not None and mask.dtype == torch.bool:
        allowed = mask if allowed is None else allowed & mask
    elif mask is not None:
        # read the float mask in the working dtype, as SDPA will: a float32 -1e9 is -inf in fp16, so
        # a row of them must count as fully masked here too (else the two paths disagree)
        bias = mask.to(q.dtype)
        if allowed is not None:
            bias = bias.masked_fill(~allowed, float("-inf"))
        allowed = bias > float("-inf")

    dead = ~allowed.any(dim=-1, keepdim=True)  # (..., T_q, 1): rows with no key to attend to
    keep = ~dead
    if bias is None:
        m = allowed | dead  # a dead row may see everything; its output is zeroed by `keep`
    else:
        m = bias.masked_fill(dead, 0.0)
    # Only T_q > T_k causal masks or user masks can create dead rows; skip `keep` when impossible.
    if mask is None and T_q <= T_k:
        keep = None
    return m, keep, False


# --------------------------------------------------------------------------- softmax and attention


def softmax(scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax, written out: subtract the row max, exponentiate, normalise.

    Equal to ``torch.softmax``; exists so the book can show every step. Rows that are entirely -inf
    are the caller's job (the attention front end never produces them).
    """
    shifted = scores - scores.amax(dim=dim, keepdim=True)
    e = shifted.exp()
    return e / e.sum(dim=dim, keepdim=True)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
    return_weights: bool = False,
):
    """Scaled dot-product attention.

    Args:
        q: queries (..., T_q, d).
        k: keys (..., T_k, d).
        v: values (..., T_k, d_v).
        mask: None, a bool tensor (True = may attend) or a float tensor added to the scores; it must
            broadcast to (..., T_q, T_k).
        is_causal: apply a lower-right aligned causal mask (combined with ``mask`` by AND).
        scale: multiplier of the scores; default 1/sqrt(d).
        dropout_p: dropout probability on the weights (pass 0.0 at evaluation time).
        return_weights: also return the pattern (..., T_q, T_k); this selects the explicit path.

    Returns:
        out (..., T_q, d_v), or ``(out, weights)`` when ``return_weights`` is True.
    """
    _check_inputs(q, k, v)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"attention: dropout_p must lie in [0, 1), got {dropout_p}")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])

    m, keep, sdpa_causal = _mask_front_end(mask, is_causal, q, k, fused_causal_ok=not return_weights)

    if not return_weights:  # fast path
        if m is not None and m.dtype != torch.bool:
            m = m.to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=m, dropout_p=dropout_p, is_causal=sdpa_causal, scale=scale
        )
        return out if keep is None else torch.where(keep, out, out.new_zeros(()))

    # explicit path: every intermediate is an ordinary tensor, in float32 or (for float64) float64
    ct = torch.promote_types(q.dtype, torch.float32)
    scores = torch.matmul(q.to(ct), k.to(ct).transpose(-2, -1)) * scale  # (..., T_q, T_k)
    if m is not None:
        scores = scores.masked_fill(~m, float("-inf")) if m.dtype == torch.bool else scores + m.to(ct)
    weights = torch.softmax(scores, dim=-1)
    if keep is not None:
        weights = weights * keep
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = torch.matmul(weights, v.to(ct)).to(v.dtype)  # (..., T_q, d_v)
    return out, weights.to(q.dtype)

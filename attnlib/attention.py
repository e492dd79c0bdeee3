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

import torch
import torch.nn.functional as F

from . import _validate as V

__all__ = ["attention", "causal_mask", "padding_mask", "from_mha_mask", "softmax", "repeat_kv"]


def _sdpa_has_gqa() -> bool:
    """Whether this torch's SDPA takes ``enable_gqa`` (torch >= 2.5); attnlib admits torch >= 2.1."""
    t = torch.zeros(1, 2, 1, 1)
    kw = {"enable_gqa": True}  # passed as a dict: on older torch only this call may fail
    try:
        F.scaled_dot_product_attention(t, t[:, :1], t[:, :1], **kw)
    except TypeError:
        return False
    return True


_SDPA_GQA = _sdpa_has_gqa()
_NO_KW: dict = {}
_GQA_KW = {"enable_gqa": True}


def repeat_kv(t: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(..., H_kv, T, d) -> (..., H_kv * n_rep, T, d): every key/value head repeated for the n_rep
    query heads of its group (head h of the result is head h // n_rep of ``t``)."""
    if n_rep == 1:
        return t
    *lead, H, T, d = t.shape
    return t.unsqueeze(-3).expand(*lead, H, n_rep, T, d).reshape(*lead, H * n_rep, T, d)


# --------------------------------------------------------------------------- masks


def causal_mask(T_q: int, T_k: int | None = None, device=None) -> torch.Tensor:
    """Boolean causal mask of shape (T_q, T_k); True = may attend.

    Lower-right aligned: the last query sits at the last key's position, so query i may see keys
    0 .. i + (T_k - T_q). With T_q == T_k this is the usual lower triangle; with T_q == 1 (one new
    token decoded against a KV cache) the single query sees every key.
    """
    T_q = V.positive_int("causal_mask", "T_q", T_q)
    T_k = T_q if T_k is None else V.positive_int("causal_mask", "T_k", T_k)
    return _causal(T_q, T_k, V.device("causal_mask", "device", device))


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
    T = V.nonneg_int("padding_mask", "T", T)
    if isinstance(lengths, (list, tuple)) and not lengths:  # no sequences: an empty batch
        lengths = torch.zeros(0, dtype=torch.long)
    if not isinstance(lengths, torch.Tensor):
        try:
            lengths = torch.as_tensor(lengths)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"padding_mask: lengths must be a 1-D integer tensor or list, got {V.describe(lengths)}"
            ) from None
    if lengths.ndim != 1 or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(
            f"padding_mask: lengths must be a 1-D integer tensor or list, got dtype {lengths.dtype} "
            f"and shape {tuple(lengths.shape)}"
        )
    if lengths.device.type != "meta" and ((lengths < 0).any() or (lengths > T).any()):  # meta: no values
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


# --------------------------------------------------------------------------- mask front end


def _mask_front_end(mask, is_causal: bool, q: torch.Tensor, k: torch.Tensor, fused_causal_ok: bool,
                    who: str = "attention"):
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
        V.mask(mask, tuple(q.shape[:-1]) + (T_k,), q.device, who)

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
        V.float_mask_values(bias, who, q.dtype)
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


def _is_dim(dim, ndim: int) -> bool:
    return isinstance(dim, int) and not isinstance(dim, bool) and -max(ndim, 1) <= dim < max(ndim, 1)


def softmax(scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax, written out: subtract the row max, exponentiate, normalise.

    Equal to ``torch.softmax``; exists so the book can show every step. Rows that are entirely -inf
    are the caller's job (the attention front end never produces them).
    """
    V.tensor("softmax", "scores", scores, floating=True)
    if not _is_dim(dim, scores.ndim):
        raise ValueError(f"softmax: dim must be an int in [-{scores.ndim}, {scores.ndim}) (a dim of scores "
                         f"{tuple(scores.shape)}), got {dim!r}")
    if scores.numel() == 0:  # nothing to normalise (a row of no entries, or no rows)
        return scores.clone()
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
    enable_gqa: bool = False,
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
        enable_gqa: grouped-query attention: q has H heads (dim -3), k and v have H_kv heads with
            H_kv dividing H; query head h reads key/value head h // (H / H_kv). Same as SDPA's
            ``enable_gqa`` (used when this torch has it; else the heads are repeated).

    Returns:
        out (..., T_q, d_v), or ``(out, weights)`` when ``return_weights`` is True.
    """
    V.qkv(q, k, v, "attention", gqa=enable_gqa)
    if not (type(is_causal) is type(return_weights) is type(enable_gqa) is bool):
        V.flags("attention", is_causal=is_causal, return_weights=return_weights, enable_gqa=enable_gqa)
    if type(dropout_p) is not float or dropout_p != 0.0:
        dropout_p = V.probability("attention", "dropout_p", dropout_p)
    if scale is not None:
        scale = V.finite_float("attention", "scale", scale)
    return _attend(q, k, v, mask, is_causal, scale, dropout_p, return_weights, enable_gqa)


def _attend(q, k, v, mask, is_causal: bool, scale: float | None, dropout_p: float, return_weights: bool,
            enable_gqa: bool, who: str = "attention"):
    """``attention`` once its q, k, v, scale and dropout_p are known to be valid (the mask is still
    checked, by the front end, whose errors name ``who``). ``MultiHeadAttention`` calls it with the
    q, k and v its own projections made, which cannot be malformed once its input has passed its own
    checks."""
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    m, keep, sdpa_causal = _mask_front_end(mask, is_causal, q, k, fused_causal_ok=not return_weights, who=who)
    gqa_kw = _NO_KW
    if enable_gqa and q.shape[-3] != k.shape[-3]:
        if return_weights or not _SDPA_GQA:  # explicit path, or a torch without enable_gqa
            n_rep = q.shape[-3] // k.shape[-3]
            k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        else:
            gqa_kw = _GQA_KW

    if not return_weights:  # fast path
        if m is not None and m.dtype != torch.bool:
            m = m.to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=m, dropout_p=dropout_p, is_causal=sdpa_causal, scale=scale, **gqa_kw
        )
        return out if keep is None else torch.where(keep, out, out.new_zeros(()))

    # explicit path: every intermediate is an ordinary tensor, in float32 or (for float64) float64
    ct = torch.float64 if q.dtype == torch.float64 else torch.float32  # promote_types(dtype, fp32)
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

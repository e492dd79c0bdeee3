"""Argument checks shared by attnlib's modules: one place, one style of message.

Every check takes ``who`` (the public function or class the reader called) and ``name`` (the
argument), and raises before anything is computed or changed:

  * ``TypeError`` when the argument has the wrong kind (a float where an int is needed, a list
    where a tensor is needed, an integer tensor where a float one is needed);
  * ``ValueError`` when the kind is right but the value is not (0 heads, NaN, a shape that does
    not fit).

The message always reads ``"<who>: <name> must be <what is expected>, got <what came>"``. The
checks return the (converted) value, so a caller writes ``n = positive_int("f", "n", n)``.
Tensor checks that need a reduction (``mask`` values, token ids) cost one pass over the tensor;
the common path through ``qkv`` costs a few attribute reads.
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings

import torch

__all__ = [
    "describe", "positive_int", "nonneg_int", "optional_positive_int", "real", "finite_float",
    "probability", "flags", "unit_interval", "index", "non_empty", "tensor", "device", "autocast_on", "stream", "qkv", "mask", "id_bounds", "token_ids", "targets",
    "token_mask", "renamed", "deprecation", "no_other_keywords", "words", "seed",
]


def describe(val) -> str:
    """A short description of a value for an error message: the repr of a small value, the type,
    shape and dtype of a tensor, the type name of anything else."""
    if isinstance(val, torch.Tensor):
        return f"a {val.dtype} tensor of shape {tuple(val.shape)}"
    if val is None or isinstance(val, (bool, numbers.Number, str)):
        text = repr(val)
        return text if len(text) <= 40 else f"{text[:37]}..."
    return f"a {type(val).__name__}"


def _is_int(val) -> bool:
    return isinstance(val, numbers.Integral) and not isinstance(val, bool)


# --------------------------------------------------------------------------- numbers


def positive_int(who: str, name: str, val) -> int:
    """An int >= 1 (not a bool, not a float such as 2.0)."""
    if not _is_int(val):
        raise TypeError(f"{who}: {name} must be a positive int, got {describe(val)}")
    if val < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {val!r}")
    return int(val)


def optional_positive_int(who: str, name: str, val) -> int | None:
    """None (meaning "the default") or an int >= 1."""
    if val is None:
        return None
    if not _is_int(val):
        raise TypeError(f"{who}: {name} must be a positive int or None, got {describe(val)}")
    if val < 1:
        raise ValueError(f"{who}: {name} must be a positive int or None, got {val!r}")
    return int(val)


def nonneg_int(who: str, name: str, val) -> int:
    """An int >= 0."""
    if not _is_int(val):
        raise TypeError(f"{who}: {name} must be a non-negative int, got {describe(val)}")
    if val < 0:
        raise ValueError(f"{who}: {name} must be a non-negative int, got {val!r}")
    return int(val)


def real(who: str, name: str, val) -> float:
    """A real number (int, float, numpy scalar or a one-element tensor), returned as a float. Not a
    bool; NaN and infinities pass (use ``finite_float`` to refuse them)."""
    if isinstance(val, torch.Tensor) and val.numel() == 1 and not val.dtype.is_complex:
        val = val.item()
    if not isinstance(val, numbers.Real) or isinstance(val, bool):
        raise TypeError(f"{who}: {name} must be a real number, got {describe(val)}")
    return float(val)


def finite_float(who: str, name: str, val, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> float:
    """A finite real number, optionally within [low, high] (or (low, high] with ``low_open``)."""
    x = real(who, name, val)
    lo = "" if low is None else (f" > {low}" if low_open else f" >= {low}")
    hi = "" if high is None else f" <= {high}"
    what = f"a finite number{lo}{' and' if lo and hi else ''}{hi}"
    if not math.isfinite(x):
        raise ValueError(f"{who}: {name} must be {what}, got {val!r}")
    if low is not None and (x <= low if low_open else x < low):
        raise ValueError(f"{who}: {name} must be {what}, got {val!r}")
    if high is not None and x > high:
        raise ValueError(f"{who}: {name} must be {what}, got {val!r}")
    return x


def probability(who: str, name: str, val) -> float:
    """A dropout probability: a real number in [0, 1) (p = 1 would drop everything)."""
    if type(val) is float and 0.0 <= val < 1.0:  # the common case, without a function call
        return val
    x = real(who, name, val)
    if not 0.0 <= x < 1.0:  # also False for NaN
        raise ValueError(f"{who}: {name} must lie in [0, 1), got {val!r}")
    return x


_BOOLS = ("bool", "bool_")  # Python's and numpy's (numpy.bool_, named numpy.bool in numpy 2)


def flags(who: str, **given) -> dict[str, bool]:
    """Switches (``is_causal=...``): each True or False (a Python or numpy bool), returned as bools.
    An int or a string would be read by its truth value, so ``"no"`` would mean yes: refused."""
    out = {}
    for name, val in given.items():
        numpy_bool = type(val).__module__ == "numpy" and type(val).__name__ in _BOOLS
        if not (isinstance(val, bool) or numpy_bool):
            raise TypeError(f"{who}: {name} must be True or False, got {describe(val)}")
        out[name] = bool(val)
    return out


def unit_interval(who: str, name: str, val) -> float:
    """A probability that may be 0 or 1 (the chance of a coin, not a dropout rate): a real number
    in [0, 1]."""
    x = real(who, name, val)
    if not 0.0 <= x <= 1.0:  # also False for NaN
        raise ValueError(f"{who}: {name} must be a probability in [0, 1], got {val!r}")
    return x


def index(who: str, name: str, val, n: int, what: str = "") -> int:
    """An int in [0, n): no negative indices (Python's wrap-around would pick another item)."""
    if not _is_int(val):
        raise TypeError(f"{who}: {name} must be an int, got {describe(val)}")
    if not 0 <= val < n:
        of = f" ({what})" if what else ""
        raise ValueError(f"{who}: {name} must lie in [0, {n}){of}, got {val!r}")
    return int(val)


def non_empty(who: str, name: str, seq):
    """A sequence (list, tuple, tensor) with at least one item; returned unchanged."""
    try:
        n = len(seq)
    except TypeError:
        raise TypeError(f"{who}: {name} must be a list or another sequence, got {describe(seq)}") from None
    if n == 0:
        raise ValueError(f"{who}: {name} must not be empty")
    return seq


# --------------------------------------------------------------------------- tensors


def tensor(who: str, name: str, t, *, ndim: int | None = None, shape_doc: str = "",
           floating: bool = False) -> torch.Tensor:
    """A torch.Tensor, optionally floating point and with ``ndim`` dims (described by shape_doc)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{who}: {name} must be a torch.Tensor, got {describe(t)}")
    if floating and not t.is_floating_point():
        raise TypeError(f"{who}: {name} must be floating point, got dtype {t.dtype}")
    if ndim is not None and t.ndim != ndim:
        doc = shape_doc or f"{ndim} dims"
        raise ValueError(f"{who}: {name} must have shape {doc}, got {tuple(t.shape)}")
    return t


def device(who: str, name: str, val) -> torch.device | None:
    """None (the default device), a torch.device, or a name such as "cpu", "cuda" or "cuda:1"."""
    if val is None or isinstance(val, torch.device):
        return val
    if isinstance(val, str):
        try:
            return torch.device(val)
        except RuntimeError:
            pass
    raise (TypeError if not isinstance(val, str) else ValueError)(
        f"{who}: {name} must be None, a torch.device or a device name like 'cpu' or 'cuda', got {describe(val)}"
    )


def autocast_on(device_type: str) -> bool:
    """Whether autocast is on for this device type (there an input may differ in dtype from the
    weights: autocast casts both)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no device type: one function per device
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()


def stream(who: str, name: str, t, width: int, weight: torch.Tensor, *, ndim: int | None = 3) -> None:
    """Activations for a module whose parameters include ``weight``: a floating-point tensor of shape
    (batch, T, width) (with ``ndim=None``: (..., width)), on the weights' device and, outside
    autocast, in their dtype. Only a failing test pays for the message."""
    if (isinstance(t, torch.Tensor) and (ndim is None or t.ndim == ndim) and t.ndim >= 1
            and t.shape[-1] == width and t.dtype == weight.dtype and t.device == weight.device):
        return
    shape = f"(batch, T, {width})" if ndim == 3 else f"(..., {width})"
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{who}: {name} must be a torch.Tensor of shape {shape}, got {describe(t)}")
    if (ndim is not None and t.ndim != ndim) or t.ndim < 1 or t.shape[-1] != width:
        raise ValueError(f"{who}: {name} must have shape {shape}, got {tuple(t.shape)}")
    if t.device != weight.device:
        raise ValueError(f"{who}: {name} is on {t.device} but the weights are on {weight.device}; move one "
                         "of them with .to(...)")
    if not t.is_floating_point():
        raise TypeError(f"{who}: {name} must be floating point (activations, not token ids), got {t.dtype}")
    if not autocast_on(t.device.type):
        raise TypeError(f"{who}: {name} must be {weight.dtype} like the weights, got {t.dtype}; convert "
                        f"one of them (x.to({weight.dtype}) or module.to({t.dtype}))")


def qkv(q, k, v, who: str, *, gqa: bool = False) -> None:
    """Queries (..., T_q, d), keys (..., T_k, d), values (..., T_k, d_v): one dtype (floating
    point), one device, the same batch dims, d >= 1. With ``gqa`` (grouped-query attention) the
    head dim (-3) of k and v may be any divisor of q's."""
    # Happy path first: one combined test (about half the cost of the itemised checks below, which
    # matters for short sequences, where SDPA itself takes only ~100 us); the itemised checks only
    # run when something is wrong, to name the problem.
    if not gqa and isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor) and isinstance(v, torch.Tensor):
        qs, ks, vs = q.shape, k.shape, v.shape
        if (q.dtype == k.dtype == v.dtype and q.is_floating_point() and q.device == k.device == v.device
                and len(qs) == len(ks) == len(vs) >= 2 and qs[-1] == ks[-1] > 0 and ks[-2] == vs[-2]
                and qs[:-2] == ks[:-2] == vs[:-2]):
            return
    _qkv_kinds(q, k, v, who)
    _qkv_shapes(q, k, v, who, gqa)


def _qkv_kinds(q, k, v, who: str) -> None:
    """Tensors, floating point, at least 2-D, one device and one dtype."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        tensor(who, name, t, floating=True)
        if t.ndim < 2:
            raise ValueError(f"{who}: {name} must have at least 2 dims (..., T, d), got shape {tuple(t.shape)}")
    if not (q.ndim == k.ndim == v.ndim):
        raise ValueError(
            f"{who}: q, k and v must have the same number of dims, got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if not (q.device == k.device == v.device):
        raise ValueError(
            f"{who}: q, k and v must be on one device, got q on {q.device}, k on {k.device}, v on {v.device}"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"{who}: q, k and v must share a dtype, got q {q.dtype}, k {k.dtype}, v {v.dtype}")


def _qkv_shapes(q, k, v, who: str, gqa: bool) -> None:
    """d of q and k equal and >= 1, T_k of k and v equal, batch (and head) dims that fit."""
    shapes = f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"{who}: q and k must have the same last dim d (queries are dotted with keys), got "
            f"q {tuple(q.shape)} (d={q.shape[-1]}) and k {tuple(k.shape)} (d={k.shape[-1]})"
        )
    if q.shape[-1] == 0:
        raise ValueError(f"{who}: the head size d (last dim of q and k) must be >= 1, got {shapes}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{who}: k and v must have the same number of positions T_k, got "
            f"k {tuple(k.shape)} (T_k={k.shape[-2]}) and v {tuple(v.shape)} (T_k={v.shape[-2]})"
        )
    if not gqa:
        if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
            raise ValueError(f"{who}: q, k and v must have the same batch dims (...), got {shapes}")
        return
    if q.ndim < 3:
        raise ValueError(f"{who}: enable_gqa needs a head dim: q, k, v of shape (..., H, T, d), got {shapes}")
    H, H_kv = q.shape[-3], k.shape[-3]
    if q.shape[:-3] == k.shape[:-3] == v.shape[:-3] and H_kv == v.shape[-3] >= 1 and H % H_kv != 0:
        raise ValueError(
            f"{who}: with enable_gqa, the key/value heads (dim -3 of k and v) must divide the "
            f"{H} query heads (dim -3 of q), got {H_kv} key/value heads: {shapes}"
        )
    if not (q.shape[:-3] == k.shape[:-3] == v.shape[:-3] and k.shape[-3] == v.shape[-3]
            and k.shape[-3] >= 1 and q.shape[-3] % k.shape[-3] == 0):
        raise ValueError(
            f"{who}: with enable_gqa, k and v must have the same dims as q except the head dim "
            f"(-3), which must divide q's ({q.shape[-3]} query heads), got {shapes}"
        )


def mask(m, target: tuple, device, who: str, *, bool_only: bool = False) -> None:
    """An attention mask: bool (True = may attend) or, unless ``bool_only``, float (added to the
    scores; finite values or -inf, never NaN or +inf), broadcastable to ``target`` (..., T_q, T_k)
    and on ``device``."""
    if not isinstance(m, torch.Tensor):
        raise TypeError(f"{who}: mask must be a torch.Tensor or None, got {describe(m)}")
    if bool_only and m.dtype != torch.bool:
        raise TypeError(f"{who}: mask must be a bool tensor (True = may attend), got dtype {m.dtype}")
    if m.dtype != torch.bool and not m.is_floating_point():
        raise TypeError(
            f"{who}: mask must be bool (True = may attend) or float (added to the scores), got "
            f"dtype {m.dtype}; for a 0/1 integer mask use mask.bool()"
        )
    try:
        fits = torch.broadcast_shapes(m.shape, target) == torch.Size(target)
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"{who}: mask of shape {tuple(m.shape)} does not broadcast to the pattern's shape "
            f"{target} (..., T_q, T_k)"
        )
    if m.device != device:
        raise ValueError(f"{who}: mask is on {m.device} but q is on {device}")


def float_mask_values(bias: torch.Tensor, who: str, dtype: torch.dtype) -> None:
    """A float mask (already in the working ``dtype``) holds finite values or -inf only: NaN or +inf
    would turn whole rows of the output into NaN."""
    if not bool((bias < math.inf).all()):  # False for NaN and +inf, True for -inf
        n_nan = int((bias != bias).sum())  # NaN is the one value unequal to itself
        n_inf = int((bias == math.inf).sum())
        raise ValueError(
            f"{who}: a float mask must hold finite numbers or -inf (blocked), got {n_nan} NaN and "
            f"{n_inf} +inf entries (read in {dtype}: values beyond the dtype's range become inf)"
        )


ID_DTYPES = (torch.long, torch.int32)  #: the integer dtypes taken as token ids


def id_bounds(*tensors) -> list[tuple[int, int]] | None:
    """(lowest, highest) entry of each of several non-empty integer tensors on one device, read
    with one synchronisation (on a GPU each read stalls the queue); None when any of them is
    something else, and then each check reads its own (and names what is wrong)."""
    first = tensors[0]
    for t in tensors:  # a loop, not set comprehensions: this runs at every training step
        if (not isinstance(t, torch.Tensor) or t.dtype not in ID_DTYPES or not t.numel()
                or t.dtype != first.dtype or t.device != first.device):
            return None
    flat = torch.stack([m for t in tensors for m in torch.aminmax(t)]).tolist()
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def token_ids(who: str, name: str, t, vocab_size: int, bounds: tuple[int, int] | None = None) -> torch.Tensor:
    """Token ids: an integer tensor of shape (batch, T) with every id in [0, vocab_size).
    ``bounds``: its (lowest, highest) id, when :func:`id_bounds` has read them already."""
    if not isinstance(t, torch.Tensor) or t.dtype not in ID_DTYPES:
        got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
        raise TypeError(f"{who}: {name} must be an integer (long) tensor, got {got}")
    if t.ndim != 2:
        raise ValueError(f"{who}: {name} must have shape (batch, T), got {tuple(t.shape)}")
    if t.numel():
        lo, hi = bounds if bounds is not None else torch.stack(torch.aminmax(t)).tolist()
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{who}: every id of {name} must lie in [0, vocab_size={vocab_size}), got {bad}"
            )
    return t


def targets(who: str, t, shape: tuple, vocab_size: int, ignore_index: int = -100,
            bounds: tuple[int, int] | None = None, like: str = "tokens") -> torch.Tensor:
    """Next-token targets: an integer tensor of ``shape`` (batch, T); each entry is an id in
    [0, vocab_size) or ``ignore_index`` (not scored), and at least one is scored. ``bounds``: the
    lowest and highest entry, when :func:`id_bounds` has read them already. ``like``: the argument
    whose shape they must have, as the message names it."""
    if not isinstance(t, torch.Tensor) or t.dtype not in ID_DTYPES:
        got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
        raise TypeError(f"{who}: targets must be an integer (long) tensor, got {got}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(
            f"{who}: targets must have the shape of {like} {tuple(shape)} (batch, T), got {tuple(t.shape)}"
        )
    if t.numel() and not 0 <= ignore_index < vocab_size:  # the usual case (-100): one reduction
        lo, hi = bounds if bounds is not None else torch.stack(torch.aminmax(t)).tolist()
        if 0 <= lo and hi < vocab_size:
            return t  # every entry is an id, so every entry is scored (and there is at least one)
    scored = t != ignore_index
    bad = scored & ((t < 0) | (t >= vocab_size))
    n_scored, n_bad = torch.stack([scored.sum(), bad.sum()]).tolist()  # one synchronisation
    if n_scored == 0:
        raise ValueError(
            f"{who}: every target is ignore_index={ignore_index}, so there is no loss to compute "
            "(the mean over zero positions is NaN)"
        )
    if n_bad:
        raise ValueError(
            f"{who}: every target must lie in [0, vocab_size={vocab_size}) or be ignore_index="
            f"{ignore_index}, got {int(t[bad][0])}"
        )
    return t


def token_mask(who: str, m, shape: tuple, device, what: str = "") -> torch.Tensor:
    """A padding mask over token positions: a bool tensor of ``shape`` (batch, T), True = a real
    token, False = padding, on ``device``, with at least one real token in every row."""
    doc = f"a bool tensor of shape {tuple(shape)}{what} (True = a real token, False = padding)"
    if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
        raise TypeError(f"{who}: mask must be {doc}, got {describe(m)}")
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"{who}: mask must be {doc}, got shape {tuple(m.shape)}")
    if m.device != device:
        raise ValueError(f"{who}: mask must be on {device} like tokens, got {m.device}")
    empty = ~m.any(dim=-1)
    if bool(empty.any()):
        row = int(empty.nonzero()[0, 0])
        raise ValueError(f"{who}: every row of mask needs a real token (a True), got row {row} all False")
    return m


def renamed(who: str, given: dict, old: str, new: str, value, default):
    """The value of keyword ``new``, whose earlier name ``old`` may still be in ``given`` (popped
    from it, with a DeprecationWarning that names ``new``). Both given with different values is a
    TypeError."""
    if old not in given:
        return value
    got = given.pop(old)
    if value is not default and value != got:
        raise TypeError(f"{who}: got {new}={value!r} and its deprecated name {old}={got!r}; give {new} only")
    deprecation(f"{who}: {old}= is deprecated; use {new}= instead (same meaning)")
    return got


def deprecation(message: str) -> None:
    """A DeprecationWarning attributed to the first caller outside attnlib and torch (the reader's
    code, where Python shows it by default), whatever the depth of the call inside them."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__", "").startswith(("attnlib.", "torch.")):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)


def no_return_weights(who: str, given: dict, name: str, first: str = "blocks.0.attn") -> None:
    """``return_weights`` stayed on ``attention`` and ``MultiHeadAttention`` only (attnlib 0.2): a
    model or block asked for it gets a TypeError that shows the one way to collect its patterns."""
    if "return_weights" in given:
        raise TypeError(
            f"{who}: return_weights is not an argument of models and blocks (since attnlib 0.2; it stays "
            f"on attention and MultiHeadAttention); to collect every head's pattern, run "
            f"`with attnlib.record_patterns({name}) as patterns: {name}(...)`; each pattern is "
            f"named like its module, e.g. patterns[{first!r}]"
        )


def no_other_keywords(who: str, given: dict) -> None:
    """What is left of a ``**kwargs`` after the deprecated names are taken: nothing, or a TypeError
    as Python's own for an unknown keyword."""
    if given:
        raise TypeError(f"{who}: got an unexpected keyword argument {next(iter(given))!r}")


def words(who: str, name: str, val, *, what: str = "words", item: str = "word", hint: str = "") -> list[str]:
    """A list (or another iterable) of strings, returned as a list. A bare str is refused: iterating
    it would give its characters, one "word" each. ``what`` and ``item`` name the strings in the
    message (e.g. "texts" and "text"); ``hint`` ends the message for a bare str (e.g. "; pass [text]")."""
    if isinstance(val, str):
        raise TypeError(f"{who}: {name} must be a list of {what}, got the string {describe(val)} (which "
                        f"would be read as its characters){hint}")
    try:
        out = list(val)
    except TypeError:
        raise TypeError(f"{who}: {name} must be a list of {what}, got {describe(val)}") from None
    for w in out:
        if not isinstance(w, str):
            raise TypeError(f"{who}: every {item} of {name} must be a str, got {describe(w)}")
    return out


SEED_LIMIT = 2**64  #: torch's seeds are 64-bit: torch.manual_seed takes 0 .. 2**64 - 1 (and negatives)


def seed(who: str, name: str, val) -> int:
    """A seed for torch's generators: an int in [0, 2**64) (torch refuses larger ones with an
    "Overflow when unpacking long long")."""
    val = nonneg_int(who, name, val)
    if val >= SEED_LIMIT:
        raise ValueError(f"{who}: {name} must be a non-negative int below 2**64 (torch's seeds are 64-bit), "
                         f"got {val}")
    return val

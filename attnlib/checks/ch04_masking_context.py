"""Checkers for chapter 4 (masking and context): attention, causality, masks, causal SDPA.

Every checker prints ``✓ ...`` or ``✗ ...: diagnosis`` and returns a silent verdict (``_core``).
The reference is attnlib itself (:func:`attnlib.attention`, :func:`attnlib.causal_mask`,
:func:`attnlib.padding_mask`, :func:`attnlib.softmax`). Conventions, as everywhere in the book:
rows are queries, columns are keys; a bool mask reads True = may attend.
"""

from __future__ import annotations

import math

import torch

from .. import _validate as V
from ..attention import attention, causal_mask, padding_mask
from ._core import (
    Case,
    CheckFailure,
    Mistake,
    TensorSpec,
    call,
    case,
    checker,
    fail,
    leak_message,
    randn,
    run_check,
    shape_str,
    tensor_output,
)

__all__ = [
    "check_attention",
    "check_causality",
    "check_combined_mask",
    "check_shift_targets",
    "check_padding_mask",
    "check_attention_weights",
    "check_causal_sdpa",
]

INF = float("inf")


# --------------------------------------------------------------------------- attention


def _variant(q, k, v, mask=None, *, dim=-1, scale=None, transpose=False, flip=False, fill=-INF,
             mode="fill", weights=False, values=None, one_max=False, after=False, hard=False):
    """Attention with one deliberate mistake, computed in float64 (the mistakes below)."""
    dtype = v.dtype
    q, k, v = q.double(), k.double(), (v if values is None else values).double()
    d = q.shape[-1]
    s = (k @ q.transpose(-2, -1)) if transpose else (q @ k.transpose(-2, -1))
    if not after:
        s = s * (1 / math.sqrt(d) if scale is None else scale)
    m = None if mask is None else (~mask if flip else mask)
    if m is not None and mode == "fill":
        s = s.masked_fill(~m, fill)
    elif m is not None and mode == "add":
        s = s + (~m).double() * fill
    if one_max:
        e = (s - s.max()).exp()
        w = e / e.sum(dim=-1, keepdim=True)
    elif hard:
        w = torch.nn.functional.one_hot(s.argmax(-1), s.shape[-1]).double()
    else:
        w = torch.softmax(s, dim=dim)
    if after:
        w = w / math.sqrt(d)
    if m is not None and mode == "after":
        w = w * m
    return (w if weights else w @ v).to(dtype)


_FINITE_FILL = (
    "masked keys still get weight: a finite mask value such as -1e4 is not negative enough when "
    "the real scores are large (here about -2e4, in float16). Use float('-inf'), or "
    "torch.finfo(scores.dtype).min, which is safe in float16 too"
)


def _masked(q, k, v, mask):
    return mask is not None


def _differs(size_of):
    return lambda q, k, v, mask=None: size_of(q, k, v) != q.shape[-1]


ATTENTION_MISTAKES = [
    # the ones only the float16 case and the far-apart rows reveal come first
    Mistake(_FINITE_FILL, lambda q, k, v, mask=None: _variant(q, k, v, mask, fill=-1e4),
            when=_masked),
    Mistake(_FINITE_FILL, lambda q, k, v, mask=None: _variant(q, k, v, mask, fill=-1e4,
                                                              mode="add"), when=_masked),
    Mistake("you subtracted one max for the whole tensor before exp: a query whose scores are far "
            "below the largest score anywhere underflows to 0 / 0 = nan. Subtract each row's own "
            "max (amax(dim=-1, keepdim=True)), or use torch.softmax",
            lambda q, k, v, mask=None: _variant(q, k, v, mask, one_max=True)),
    Mistake("the weights do not sum to 1 over the keys - you took the softmax over dim=-2 (the "
            "queries); take it over dim=-1 (the keys)",
            lambda q, k, v, mask=None: _variant(q, k, v, mask, dim=-2)),
    Mistake("you forgot to scale the scores by 1/sqrt(d), d = q.shape[-1]",
            lambda q, k, v, mask=None: _variant(q, k, v, mask, scale=1.0)),
    Mistake("you divided the scores by d instead of sqrt(d) (d = q.shape[-1])",
            lambda q, k, v, mask=None: _variant(q, k, v, mask, scale=1 / q.shape[-1])),
    Mistake("you divided by an integer square root (int(d ** 0.5) or math.isqrt(d)); d need not "
            "be a perfect square: use math.sqrt(d)",
            lambda q, k, v, mask=None: _variant(q, k, v, mask, scale=1 / math.isqrt(q.shape[-1])),
            when=lambda q, k, v, mask=None: math.isqrt(q.shape[-1]) ** 2 != q.shape[-1]),
    Mistake("you scaled after the softmax (weights / sqrt(d)): the scale divides the SCORES, "
            "before the softmax, so that the weights still sum to 1",
            lambda q, k, v, mask=None: _variant(q, k, v, mask, after=True)),
    Mistake("you computed k @ q^T, a transposed grid: the scores are q @ k.transpose(-2, -1), rows "
            "= queries, columns = keys", lambda q, k, v, mask=None: _variant(q, k, v, mask,
                                                                              transpose=True)),
    Mistake("you returned the attention weights (..., T_q, T_k); the output is weights @ v, of "
            "shape (..., T_q, d_v)", lambda q, k, v, mask=None: _variant(q, k, v, mask,
                                                                          weights=True)),
    Mistake("you averaged the keys (weights @ k); the output averages the values, weights @ v",
            lambda q, k, v, mask=None: _variant(q, k, v, mask, values=k)),
    Mistake("you took a hard argmax (one-hot weights) instead of the softmax: every key gets "
            "weight exp(score) / sum of exp over the row",
            lambda q, k, v, mask=None: _variant(q, k, v, mask, hard=True)),
    Mistake("you scaled by 1/sqrt(d_v) (v.shape[-1]); d is the size of the queries and keys, "
            "q.shape[-1]", lambda q, k, v, mask=None: _variant(q, k, v, mask,
                                                               scale=1 / math.sqrt(v.shape[-1])),
            when=_differs(lambda q, k, v: v.shape[-1])),
    Mistake("you scaled by 1/sqrt(T_k), the number of keys; d is the size of the queries and keys, "
            "q.shape[-1]", lambda q, k, v, mask=None: _variant(q, k, v, mask,
                                                               scale=1 / math.sqrt(k.shape[-2])),
            when=_differs(lambda q, k, v: k.shape[-2])),
    Mistake("your mask's polarity is flipped: True means 'may attend', so block the positions "
            "where the mask is False, e.g. scores.masked_fill(~mask, float('-inf'))",
            lambda q, k, v, mask=None: _variant(q, k, v, mask, flip=True), when=_masked),
    Mistake("you ignored the mask: the masked keys still get weight",
            lambda q, k, v, mask=None: _variant(q, k, v), when=_masked),
    Mistake("you applied the mask after the softmax, so the remaining weights no longer sum to 1; "
            "mask the scores (set them to -inf) before the softmax",
            lambda q, k, v, mask=None: _variant(q, k, v, mask, mode="after"), when=_masked),
    Mistake("masked scores were set to 0 (filled with 0 or multiplied by the mask), but exp(0) = 1 "
            "still gives those keys weight; fill them with float('-inf')",
            lambda q, k, v, mask=None: _variant(q, k, v, mask, fill=0.0), when=_masked),
]


def _fp16_large_scores():
    """A float16 case whose allowed scores are -2e4 and masked ones large (exact in float16).

    A correct mask (-inf, finfo.min, or a bool mask) gives each query the mean of its allowed
    values; a fill of -1e4 (or adding -1e4) leaves the masked keys on top. (A fill of -1e9 cannot be
    stored in float16 at all: ``masked_fill`` raises, which the exception hint explains.)
    """
    mask = torch.tensor([[True, True, False, False], [False, True, True, False]])
    q = torch.zeros(1, 2, 4)
    q[0, 0, 0] = q[0, 1, 1] = 100.0
    k = torch.zeros(1, 4, 4)
    # scores = 50 * these; the two masked keys of each query differ (+2e4 and +1.5e4)
    k[0, :, 0] = torch.tensor([-400.0, -400.0, 400.0, 300.0])  # query 0: keys 0, 1 allowed
    k[0, :, 1] = torch.tensor([400.0, -400.0, -400.0, 300.0])  # query 1: keys 1, 2 allowed
    v = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 2.0], [3.0, -2.0]]])
    return q.half(), k.half(), v.half(), mask


def _attention_reference(q, k, v, mask=None):
    return attention(q, k, v, mask, return_weights=True)[0]


def _attention_cases():
    g = torch.Generator().manual_seed(7)
    rnd = torch.rand(4, 5, generator=g) > 0.5
    rnd[:, 0] = True  # every row keeps a key and blocks one, in both polarities
    rnd[:, 1] = False
    dead = causal_mask(4, 6).clone()
    dead[2] = False  # query 2 may see nothing: its output is a convention, not checked
    far = randn(2, 3, 10, seed=35)
    far[:, 0] *= 3000.0  # query 0's scores are in the thousands, query 2's near 0
    far[:, 2] *= 0.01
    inputs = [
        ("batch 2, 4 tokens, d = 10, d_v = 3, no mask",
         randn(2, 4, 10, seed=20), randn(2, 4, 10, seed=21), randn(2, 4, 3, seed=22), None),
        ("2 heads, 3 queries, 6 keys, d = 6, no mask",
         randn(2, 2, 3, 6, seed=23), randn(2, 2, 6, 6, seed=24), randn(2, 2, 6, 5, seed=25), None),
        ("a bool mask (4 queries x 5 keys)",
         randn(2, 4, 10, seed=26), randn(2, 5, 10, seed=27), randn(2, 5, 3, seed=28), rnd),
        ("causal mask (5, 5) broadcast over batch and heads",
         randn(2, 2, 5, 7, seed=29), randn(2, 2, 5, 7, seed=30), randn(2, 2, 5, 4, seed=31),
         causal_mask(5)),
        ("padding mask (B, 1, 1, T_k), lengths [5, 3]",
         randn(2, 2, 4, 8, seed=32), randn(2, 2, 5, 8, seed=33), randn(2, 2, 5, 4, seed=34),
         padding_mask([5, 3], 5)),
        ("queries of very different scale (scores in the thousands and near 0)",
         far, randn(2, 5, 10, seed=36), randn(2, 5, 3, seed=37), None),
        ("float16 with large scores", *_fp16_large_scores()),
        ("a fully masked row (query 2 sees no key; its output is not checked)",
         randn(4, 6, seed=38), randn(6, 6, seed=39), randn(6, 2, seed=40), dead),
    ]
    cases = []
    for name, q, k, v, mask in inputs:
        kwargs = {} if mask is None else {"mask": mask}
        post = None
        if mask is not None and not mask.any(-1).all():
            live = mask.any(-1, keepdim=True)
            def post(out, live=live):
                return out.double().masked_fill(~live, 0.0)
        expected = _attention_reference(q, k, v, mask)
        if post is not None:
            expected = post(expected)
        cases.append(Case(name, (q, k, v), expected, kwargs=kwargs, post=post))
    return cases


@checker(TensorSpec(
    "attention", _attention_cases, ATTENTION_MISTAKES, reference=_attention_reference,
    allow_tuple=True, layout="(..., T_q, d_v)",
    otherwise="the output is wrong: expected softmax(q @ k^T / sqrt(d), masked) @ v",
    nonfinite=("your output contains nan/inf - is a whole row masked (mask polarity: True = may "
               "attend)? Or did the scores overflow?"),
    hint=("shapes: q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v); scores = q @ "
          "k.transpose(-2, -1) is (..., T_q, T_k); the mask (True = may attend) broadcasts to it")))
def check_attention(fn):
    """Check fn(q, k, v, mask=None) -> scaled dot-product attention, (..., T_q, d_v)."""


# --------------------------------------------------------------------------- masks


def _padding_cases():
    return [Case(f"lengths {lengths}, T = {T}", (torch.tensor(lengths), T),
                 padding_mask(torch.tensor(lengths), T))
            for lengths, T in [([3, 5, 1], 5), ([0, 2], 4), ([4], 4), ([2, 6, 4], 6)]]


@checker(TensorSpec(
    "padding mask", _padding_cases, [
        Mistake("the polarity is flipped: True must mark real tokens (position < length), which "
                "may be attended", lambda lengths, T: ~padding_mask(lengths, T)),
        Mistake("off by one: position == length is already padding; use position < length",
                lambda lengths, T: (torch.arange(T)[None, :] <= lengths[:, None])[:, None, None]),
        Mistake("off by one: the last real token (position length - 1) is masked; use position < "
                "length", lambda lengths, T: (torch.arange(T)[None, :] < lengths[:, None] - 1)
                [:, None, None]),
        Mistake("right values, but shape (B, T) would broadcast against the queries, not the "
                "batch: return shape (B, 1, 1, T), e.g. mask[:, None, None, :]",
                lambda lengths, T: padding_mask(lengths, T)[:, 0, 0]),
    ], reference=padding_mask, layout="(B, 1, 1, T)", otherwise="the mask is wrong",
    hint="compare positions torch.arange(T) with the lengths: torch.arange(T)[None, :] < "
         "lengths[:, None]"))
def check_padding_mask(fn):
    """Check fn(lengths, T) -> a bool key-padding mask of shape (B, 1, 1, T), True = real token."""


# --------------------------------------------------------------------------- causality


def _infer_input(model, d_model, vocab_size, T):
    if vocab_size is None and d_model is None:
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "vocab_size"):
            vocab_size = config.vocab_size
            T = min(T, getattr(config, "context_len", T))
        elif isinstance(getattr(model, "d_model", None), int):
            d_model = model.d_model
        else:
            fail("say what the function takes: check_causality(fn, d_model=...) for inputs of "
                 "shape (B, T, d_model), or check_causality(fn, vocab_size=...) for token ids (B, T)")
    return d_model, vocab_size, T


def _probe_device(module, device) -> torch.device:
    """Where the causality probe's inputs live: ``device``, else the module's, else the CPU."""
    dev = torch.device("cpu") if device is None else torch.device(device)
    if device is None and module is not None:
        dev = next(iter(module.parameters()), torch.empty(0)).device
    return dev


def _base_output(fn, x, batch: int, t: int) -> torch.Tensor:
    """fn(x): a finite (B, T, ...) tensor (the first item of a tuple output)."""
    base = tensor_output(call(fn, x), allow_tuple=True)
    if base.ndim < 2 or tuple(base.shape[:2]) != (batch, t):
        fail(f"expected an output of shape (B, T, ...) = ({batch}, {t}, ...), "
             f"got {shape_str(base.shape)}")
    if not torch.isfinite(base).all():
        fail("your output contains nan/inf - is a whole row masked (polarity flipped, "
             "True = may attend)?")
    return base


def _dependence(fn, x, base, vs, dm, g, tol):
    """Change the input at each position j in turn and see which outputs move (beyond ``tol``).

    Returns (leaks, moved_self, backward): the pairs (i, j) where output i moved when input j > i
    changed, whether some output moved with its own input, and whether one moved with an earlier
    input. Token ids (``vs`` = vocab size) are shifted, float inputs (width ``dm``) redrawn from ``g``.
    """
    batch, t = x.shape[0], x.shape[1]
    leaks = []  # (i, j): output i moved when input j > i changed
    moved_self = backward = False
    for j in range(t):
        x2 = x.clone()
        if vs is not None:
            x2[:, j] = (x2[:, j] + 1 + j) % vs
        else:
            x2[:, j] = torch.randn(batch, dm, generator=g).to(x.device)
        out = tensor_output(call(fn, x2), allow_tuple=True)
        if out.shape != base.shape:
            fail(f"the output shape changed from {shape_str(base.shape)} to "
                 f"{shape_str(out.shape)} when one input changed")
        moved = [not torch.allclose(out[:, i].double(), base[:, i].double(), atol=tol,
                                    rtol=0) for i in range(t)]
        leaks += [(i, j) for i in range(j) if moved[i]]
        moved_self = moved_self or moved[j]
        backward = backward or any(moved[j + 1:])
    return leaks, moved_self, backward


def _causality_args(d_model, vocab_size, T, batch, device, atol) -> None:
    """The keyword arguments of :func:`check_causality`: a caller's error is raised (before the
    module's mode changes), never printed as a verdict on ``fn``."""
    who = "check_causality"
    V.optional_positive_int(who, "d_model", d_model)
    V.optional_positive_int(who, "vocab_size", vocab_size)
    if d_model is not None and vocab_size is not None:
        raise TypeError(f"{who}: give d_model= (inputs of shape (B, T, d_model)) or vocab_size= (token ids "
                        f"(B, T)), not both; got d_model={d_model!r}, vocab_size={vocab_size!r}")
    V.positive_int(who, "T", T)
    V.positive_int(who, "batch", batch)
    V.device(who, "device", device)
    if atol is not None:
        V.finite_float(who, "atol", atol, low=0.0)


def check_causality(fn, *, d_model: int | None = None, vocab_size: int | None = None, T: int = 6,
                    batch: int = 2, device=None, atol: float | None = None) -> bool:
    """Check that ``fn`` is causal: output position i never depends on inputs at positions j > i.

    ``fn`` maps (B, T, d_model) floats -> (B, T, ...), or token ids (B, T) -> logits (B, T, V);
    a module works too (it is put in eval mode for the check and restored). Give ``d_model=`` or
    ``vocab_size=``; for attnlib modules they are read from ``.d_model`` or ``.config``. A tuple
    output (e.g. ``(logits, loss)``) is fine: its first item is used.
    The inputs are made on ``device`` (default: the module's device, else the CPU).
    For each j, the input at position j is changed and every earlier output must stay put (within
    ``atol``: 1e-5 on the CPU, 1e-4 on an accelerator), while outputs at j and later should move. Diagnoses: the future leaks (which
    positions, and whether it looks like no mask at all or a mask one step too wide), nan output,
    outputs that ignore the input. A bad keyword argument (``T=0``, both ``d_model`` and
    ``vocab_size``) raises a TypeError or ValueError: it is the caller's error, not the answer's.
    """
    _causality_args(d_model, vocab_size, T, batch, device, atol)

    def body():
        dm, vs, t = _infer_input(fn, d_model, vocab_size, T)
        g = torch.Generator().manual_seed(3)
        if vs is not None:
            x = torch.randint(0, vs, (batch, t), generator=g)
        else:
            x = torch.randn(batch, t, dm, generator=g)
        module = fn if isinstance(fn, torch.nn.Module) else None
        dev = _probe_device(module, device)
        tol = atol if atol is not None else (1e-5 if dev.type == "cpu" else 1e-4)
        x = x.to(dev)
        was_training = module.training if module is not None else False
        if module is not None:
            module.eval()
        try:
            with torch.no_grad():
                base = _base_output(fn, x, batch, t)
                leaks, moved_self, backward = _dependence(fn, x, base, vs, dm, g, tol)
        finally:
            if module is not None:
                module.train(was_training)
        if leaks:
            fail(leak_message(sorted(leaks), t, backward))
        if not moved_self:
            fail("no output moved when its own input changed: does your function use its input?")
        return t

    return run_check("causality", body, unit="positions")


# --------------------------------------------------------------------------- weights


def _expanded_mask(mask, w):
    """(mask expanded to the weights' shape, or None; the rows with at least one allowed key)."""
    if mask is None:
        return None, torch.ones(w.shape[:-1], dtype=torch.bool)
    m = tensor_output(mask, what="as the mask, you", verb="passed")
    if m.dtype != torch.bool:
        fail(f"the mask must be a bool tensor (True = may attend), got dtype {m.dtype}")
    try:
        m = m.expand(w.shape)
    except RuntimeError:
        fail(f"the mask of shape {shape_str(m.shape)} does not broadcast to the weights' "
             f"shape {shape_str(w.shape)}")
    return m, m.any(dim=-1)


def _check_rows_sum_to_one(w, wl, masked: bool) -> None:
    """The live rows ``wl`` of the weights ``w`` sum to 1 (a softmax over the queries named)."""
    rows = wl.sum(dim=-1)
    if not torch.allclose(rows, torch.ones_like(rows), atol=1e-3):
        cols = w.sum(dim=-2)
        if not masked and torch.allclose(cols, torch.ones_like(cols), atol=1e-3):
            fail("the columns sum to 1, not the rows - did you take the softmax over dim=-2 "
                 "(the queries) instead of dim=-1 (the keys)?")
        worst = (rows - 1).abs().argmax().item()
        fail(f"the rows of the pattern must sum to 1 over the keys (dim=-1); one sums to "
             f"{rows[worst].item():.4g}")


def _check_masked_are_zero(w, m, live) -> None:
    """The weights are exactly 0 (below 1e-6) where the mask ``m`` is False, in the live rows."""
    blocked = w[~m & live.unsqueeze(-1).expand(w.shape)]
    if blocked.numel() and blocked.max() > 1e-6:
        on_allowed = w[m & live.unsqueeze(-1).expand(w.shape)]
        if on_allowed.numel() and (on_allowed.abs() < 1e-6).all():
            fail("the weights sit exactly where the mask is False: the polarity is flipped "
                 "(True = may attend)")
        fail(f"masked positions get weight up to {blocked.max().item():.3g}; they must get "
             "exactly 0 - fill masked scores with float('-inf') before the softmax")


def check_attention_weights(weights, mask=None) -> bool:
    """Check a pattern the reader computed: ``weights`` (..., T_q, T_k), rows = queries.

    Checks: a float tensor, finite and non-negative, each row sums to 1 over the keys (dim=-1),
    and, if ``mask`` (bool, True = may attend, broadcastable to the weights) is given, exactly 0
    (below 1e-6) wherever the mask is False. Rows whose keys are all masked are not checked (their
    value is a convention). Diagnoses: columns summing to 1 (softmax over the queries), flipped
    mask polarity, masked weights that are small but not zero (a finite fill such as -1e4).
    """

    def body():
        w = tensor_output(weights, what="you", verb="passed")
        if not w.is_floating_point():
            fail(f"expected floating-point weights, got dtype {w.dtype}")
        if w.ndim < 2:
            fail(f"expected weights of shape (..., T_q, T_k), got {shape_str(w.shape)}")
        w = w.double()
        m, live = _expanded_mask(mask, w)
        wl = w[live]  # (rows, T_k): the rows that have at least one allowed key
        if not torch.isfinite(wl).all():
            fail("the weights contain nan or inf")
        if (wl < 0).any():
            fail(f"some weights are negative (min {wl.min().item():.3g}): a softmax is never negative")
        _check_rows_sum_to_one(w, wl, masked=mask is not None)
        if m is not None:
            _check_masked_are_zero(w, m, live)
        return 4 if m is None else 5

    return run_check("attention weights", body, unit="checks")


# --------------------------------------------------------------------------- chapter 4 exercises


def _shift(ids):
    return ids[..., :-1], ids[..., 1:]


def shift_mistakes(ids: str = "ids", inputs: str = "inputs", targets: str = "targets"):
    """The mistakes of the next-token pairs, worded with the exercise's own names."""
    x, y = f"{inputs} = {ids}[..., :-1]", f"{targets} = {ids}[..., 1:]"
    last_only = (f"you kept only the last position's target; every position predicts its next "
                 f"token, {y}")
    return [
        Mistake(f"there is no shift: the target of each position is the NEXT token, so {y} and "
                f"{x}", lambda t: (t, t)),
        Mistake(f"{inputs} and {targets} are swapped: {x} (the first T - 1 tokens) and {y} (the "
                "last T - 1); the model predicts the future from the past",
                lambda t: _shift(t)[::-1]),
        Mistake(f"you shifted along the batch dim (rows are sequences): shift along the last dim, "
                f"{x} and {y}", lambda t: (t[:-1], t[1:]),
                when=lambda t: t.ndim == 2 and t.shape[0] > 1),
        Mistake(f"torch.roll wraps around: the last target is then the FIRST token, which does not "
                f"follow; drop the last input instead, {x}, {y}",
                lambda t: (t, torch.roll(t, -1, dims=-1))),
        Mistake(f"you shifted by two; the target is the very next token, {y}",
                lambda t: (t[..., :-2], t[..., 2:]), when=lambda t: t.shape[-1] > 2),
        Mistake(last_only, lambda t: (t[..., :-1], t[..., -1:]), when=lambda t: t.shape[-1] > 2),
        Mistake(last_only, lambda t: (t[..., :-1], t[..., -1]), when=lambda t: t.shape[-1] > 2),
    ]


def _shift_cases():
    inputs = [("one sequence of 6", torch.tensor([5, 1, 4, 1, 5, 9])),
              ("a batch of 3 x 4", torch.tensor([[1, 2, 3, 4], [9, 8, 7, 6], [0, 3, 0, 3]])),
              ("two tokens", torch.tensor([7, 2])),
              ("2 windows of 9 tokens", torch.randint(0, 50, (2, 9),
                                                      generator=torch.Generator().manual_seed(3)))]
    return [Case(name, (ids,), _shift(ids)) for name, ids in inputs]


SHIFT_SPEC = TensorSpec(
    "next-token inputs and targets", _shift_cases, shift_mistakes(), outputs=("inputs", "targets"),
    reference=_shift, hint="fn(ids) returns a tuple (inputs, targets)",
    otherwise="wrong pairs: target t must be the token that follows input t "
              "(inputs = ids[..., :-1], targets = ids[..., 1:])")


@checker(SHIFT_SPEC)
def check_shift_targets(fn):
    """Check fn(ids) -> (inputs, targets): each position paired with the token that follows it."""


def check_combined_mask(fn) -> bool:
    """Check ``fn(lengths, T) -> mask``: causal AND key padding, a bool (B, 1, T, T) mask.

    Query i of sequence b may attend to key j when j <= i (causal) and j < lengths[b] (a real
    token, not padding). Rows of padded queries may either follow the same rule or be masked
    entirely (their outputs are never used): both are accepted. (With right padding and a causal
    mask a real query never reaches a padded key anyway, so masking the padded query rows alone is
    also right here.) Diagnoses: OR instead of AND, only one of the two masks, flipped polarity, a
    float mask, a mask that does not broadcast to (B, 1, T, T).
    """

    def body():
        inputs = [([4, 2, 1], 4), ([5, 5], 5), ([3], 5)]
        for lengths, T in inputs:
            with case(f"lengths {lengths}, T = {T}"):
                lt = torch.tensor(lengths)
                B = len(lengths)
                causal = causal_mask(T)  # (T, T)
                pad = padding_mask(lt, T)  # (B, 1, 1, T)
                expected = causal & pad  # (B, 1, T, T)
                rows = pad.transpose(-1, -2)  # (B, 1, T, 1): real queries
                also_rows = expected & rows
                out = tensor_output(call(fn, lt, T, hint=(
                    "combine attnlib.causal_mask(T) (T, T) and attnlib.padding_mask(lengths, T) "
                    "(B, 1, 1, T) with &")))
                try:
                    out = out.expand(B, 1, T, T) if out.ndim <= 4 else out
                except RuntimeError:
                    fail(f"your mask of shape {shape_str(out.shape)} does not broadcast to "
                         f"(B, 1, T, T) = {shape_str((B, 1, T, T))}")
                if out.shape != (B, 1, T, T):
                    fail(f"expected a mask broadcastable to (B, 1, T, T) = {shape_str((B, 1, T, T))}, "
                         f"got {shape_str(out.shape)}")
                if out.dtype != torch.bool:
                    fail(f"expected a bool mask (True = may attend), got dtype {out.dtype}")
                if torch.equal(out, expected) or torch.equal(out, also_rows):
                    continue
                wrong = [
                    ("the polarity is flipped: True must mean 'may attend'", ~expected),
                    ("you combined with OR (|): a key must pass BOTH masks, so use &",
                     causal | pad),
                    ("the padding is missing: keys at positions >= length must be blocked too",
                     causal.expand(B, 1, T, T)),
                    ("the causal part is missing: query i must not see keys after position i",
                     pad.expand(B, 1, T, T)),
                ]
                for message, w in wrong:
                    if torch.equal(out, w.expand(B, 1, T, T)):
                        fail(message)
                fail("the mask is wrong: expected causal_mask(T) & padding_mask(lengths, T)")
        return len(inputs)

    return run_check("combined mask", body)


# --------------------------------------------------------------------------- SDPA, lower-right


def _sdpa_masked(q, k, v, allowed):
    """F.scaled_dot_product_attention with a bool mask (True = may attend), as a reader calls it."""
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


def _band(q, k, lower: bool, shift: int = 0) -> torch.Tensor:
    """(T_q, T_k): tril (lower) or triu of ones, its diagonal moved ``shift`` past lower-right."""
    T_q, T_k = q.shape[-2], k.shape[-2]
    ones = torch.ones(T_q, T_k, dtype=torch.bool)
    offset = T_k - T_q + shift
    return ones.tril(diagonal=offset) if lower else ones.triu(diagonal=offset)


def _fewer_queries(q, k, v):
    return q.shape[-2] < k.shape[-2]


def _several_queries(q, k, v):
    return q.shape[-2] > 1


TOP_LEFT = (
    "your last query sees only the first T_q keys: the mask is aligned top-left, which is what "
    "is_causal=True gives in F.scaled_dot_product_attention when T_q < T_k. The T_q queries are the "
    "newest positions of the sequence (query i sits at position i + T_k - T_q), so the last query "
    "must see every key"
)

CAUSAL_SDPA_MISTAKES = [
    Mistake(TOP_LEFT, lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(
        q, k, v, is_causal=True), when=_fewer_queries),
    Mistake("your mask's polarity is flipped: in F.scaled_dot_product_attention a bool attn_mask "
            "reads True = may attend (nn.MultiheadAttention reads it the other way). Each query "
            "now sees only the keys AFTER it, and the last query none at all",
            lambda q, k, v: _sdpa_masked(q, k, v, ~_band(q, k, lower=True))),
    Mistake("your mask is an upper triangle (triu): each query sees its own position and the "
            "keys after it, the future. Keep the keys at or before the query (tril)",
            lambda q, k, v: _sdpa_masked(q, k, v, _band(q, k, lower=False)), when=_several_queries),
    Mistake("your mask is an upper triangle (triu): each query sees its own position and the "
            "keys after it, the future. Keep the keys at or before the query (tril)",
            lambda q, k, v: _sdpa_masked(q, k, v, _band(q, k, lower=False, shift=q.shape[-2]
                                                         - k.shape[-2])), when=_several_queries),
    Mistake("the diagonal is hidden: each query is blocked from its own key, but a token may "
            "attend to itself. The mask's diagonal is one step too low",
            lambda q, k, v: _sdpa_masked(q, k, v, _band(q, k, lower=True, shift=-1))),
    Mistake("leak by one: each query also sees the key just after its own position, one step "
            "into the future. The mask's diagonal is one step too high",
            lambda q, k, v: _sdpa_masked(q, k, v, _band(q, k, lower=True, shift=1)),
            when=_several_queries),
    Mistake("there is no causal mask at all: every query sees every key, the future too",
            lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v),
            when=_several_queries),
]


def _causal_sdpa_reference(q, k, v):
    return attention(q, k, v, is_causal=True)


def _causal_sdpa_cases():
    shapes = [  # (name, q shape, T_k, d_v)
        ("3 queries, 7 keys, batch 2, 3 heads, d = 6", (2, 3, 3, 6), 7, 4),
        ("T_q = T_k = 5, batch 2, 2 heads, d = 10", (2, 2, 5, 10), 5, 3),
        ("one query (a decoding step), 6 keys, 4 heads, d = 7", (1, 4, 1, 7), 6, 5),
        ("2 queries, 9 keys, batch 3, no head dim, d = 5", (3, 2, 5), 9, 2),
    ]
    cases = []
    for n, (name, q_shape, T_k, d_v) in enumerate(shapes):
        *lead, _, d = q_shape
        q = randn(*q_shape, seed=60 + 3 * n)
        k = randn(*lead, T_k, d, seed=61 + 3 * n)
        v = randn(*lead, T_k, d_v, seed=62 + 3 * n)
        cases.append(Case(name, (q, k, v), _causal_sdpa_reference(q, k, v)))
    return cases


_SIZE_ERRORS = ("must match the size", "size of tensor", "shape mismatch", "expand")
_BOTH = "attn_mask should not be set when is_causal"


class _CausalSdpaSpec(TensorSpec):
    """TensorSpec whose exceptions from SDPA's mask are named: a mask of the wrong size, or
    is_causal=True together with an attn_mask."""

    def check_case(self, fn, c, seen):
        try:
            super().check_case(fn, c, seen)
        except CheckFailure as err:
            text = str(err)
            if not text.startswith("your code raised"):
                raise
            first = text.split("\n")[0]  # "your code raised RuntimeError: <torch's words>"
            T_q, T_k = c.args[0].shape[-2], c.args[1].shape[-2]
            if _BOTH in first:
                fail("F.scaled_dot_product_attention takes either is_causal=True or an attn_mask, "
                     "not both; and is_causal=True is the wrong alignment when T_q < T_k: pass "
                     "your own mask alone")
            if any(s in first for s in _SIZE_ERRORS):
                fail(f"your mask does not fit the scores ({first.split(': ', 1)[-1]}): it needs "
                     f"one row per query and one column per key, shape (T_q, T_k) = ({T_q}, "
                     f"{T_k}) here, with T_q = q.shape[-2] and T_k = k.shape[-2]; SDPA "
                     "broadcasts it over the batch and the heads")
            raise


CAUSAL_SDPA_SPEC = _CausalSdpaSpec(
    "causal SDPA", _causal_sdpa_cases, CAUSAL_SDPA_MISTAKES,
    reference=_causal_sdpa_reference, layout="(..., T_q, d_v)",
    otherwise="the output is wrong: query i may see the keys 0 .. i + T_k - T_q (the last query "
              "sees every key)",
    nonfinite="your output contains nan: a query whose keys are all masked gets nan from SDPA. "
              "Every query may see at least the first key",
    hint="q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v); the mask is (T_q, T_k), True = "
         "may attend")


@checker(CAUSAL_SDPA_SPEC)
def check_causal_sdpa(fn):
    """Check fn(q, k, v) -> causal attention through SDPA, last query aligned with the last key."""

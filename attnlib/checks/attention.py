"""Checkers for the core of attention: softmax, scaled scores, masks, attention itself, causality.

Every checker prints ``✓ ...`` or ``✗ ...: diagnosis`` and returns True/False (see ``_core``).
The reference is attnlib itself (:func:`attnlib.attention`, :func:`attnlib.causal_mask`,
:func:`attnlib.padding_mask`, :func:`attnlib.softmax`). Conventions, as everywhere in the book:
rows are queries, columns are keys; a bool mask reads True = may attend.
"""

from __future__ import annotations

import math

import torch

from ..attention import attention, causal_mask, padding_mask
from ._core import (
    Case,
    call,
    case,
    compare,
    fail,
    randn,
    run_cases,
    run_check,
    shape_str,
    tensor_output,
)

__all__ = [
    "check_attention",
    "check_causality",
    "check_padding_mask",
    "check_attention_weights",
]

INF = float("inf")


# --------------------------------------------------------------------------- attention


def _variant(q, k, v, mask=None, *, dim=-1, scale=None, transpose=False, flip=False, fill=-INF,
             mode="fill", weights=False):
    """attention with one deliberate mistake, computed in float64 (the diagnose catalogue)."""
    q, k, v = q.double(), k.double(), v.double()
    d = q.shape[-1]
    s = (k @ q.transpose(-2, -1)) if transpose else (q @ k.transpose(-2, -1))
    s = s * (1 / math.sqrt(d) if scale is None else scale)
    m = None if mask is None else (~mask if flip else mask)
    if m is not None and mode == "fill":
        s = s.masked_fill(~m, fill)
    elif m is not None and mode == "add":
        s = s + (~m).double() * fill
    w = torch.softmax(s, dim=dim)
    if m is not None and mode == "after":
        w = w * m
    return w if weights else w @ v


_FINITE_FILL = (
    "masked keys still get weight: a finite mask value such as -1e4 is not negative enough when "
    "the real scores are large (here about -2e4, in float16). Use float('-inf'), or "
    "torch.finfo(scores.dtype).min, which is safe in float16 too"
)


def _attention_mistakes(q, k, v, mask):
    # the -1e4 variants come first: in the float16 case they differ from the correct answer only
    # (a flipped mask is caught by an earlier case)
    d = q.shape[-1]
    out = [
        ("the weights do not sum to 1 over the keys - did you take the softmax over dim=-2 (the "
         "queries) instead of dim=-1 (the keys)?", lambda: _variant(q, k, v, mask, dim=-2)),
        (f"you forgot to scale the scores by 1/sqrt(d) (d = q.shape[-1] = {d})",
         lambda: _variant(q, k, v, mask, scale=1.0)),
        (f"you divided the scores by d = {d} instead of sqrt(d) = {math.sqrt(d):g}",
         lambda: _variant(q, k, v, mask, scale=1 / d)),
        ("you computed k @ q^T, a transposed grid: the scores are q @ k.transpose(-2, -1), rows = "
         "queries, columns = keys", lambda: _variant(q, k, v, mask, transpose=True)),
        ("you returned the attention weights (..., T_q, T_k); the output is weights @ v, of shape "
         "(..., T_q, d_v)", lambda: _variant(q, k, v, mask, weights=True)),
        ("you averaged the keys (weights @ k); the output averages the values, weights @ v",
         lambda: _variant(q, k, k, mask)),
    ]
    for what, size in (("v.shape[-1] (d_v)", v.shape[-1]), ("q.shape[-2] (T_q)", q.shape[-2]),
                       ("k.shape[-2] (T_k)", k.shape[-2])):
        if size != d:
            out.append((f"you scaled by 1/sqrt({what} = {size}); d is the size of the queries and "
                        f"keys, q.shape[-1] = {d}",
                        lambda size=size: _variant(q, k, v, mask, scale=1 / math.sqrt(size))))
    if mask is not None:
        out += [
            (_FINITE_FILL, lambda: _variant(q, k, v, mask, fill=-1e4)),
            (_FINITE_FILL, lambda: _variant(q, k, v, mask, fill=-1e4, mode="add")),
            ("your mask's polarity is flipped: True means 'may attend', so block the positions "
             "where the mask is False, e.g. scores.masked_fill(~mask, float('-inf'))",
             lambda: _variant(q, k, v, mask, flip=True)),
            ("you ignored the mask: the masked keys still get weight",
             lambda: _variant(q, k, v)),
            ("you applied the mask after the softmax, so the remaining weights no longer sum to 1; "
             "mask the scores (set them to -inf) before the softmax",
             lambda: _variant(q, k, v, mask, mode="after")),
            ("masked scores were set to 0 (filled with 0 or multiplied by the mask), but exp(0) = 1 "
             "still gives those keys weight; fill them with float('-inf')",
             lambda: _variant(q, k, v, mask, fill=0.0)),
        ]
    return out


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


def check_attention(fn) -> bool:
    """Check ``fn(q, k, v, mask=None) -> output``: scaled dot-product attention.

    Shapes: q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v) -> output (..., T_q, d_v), any
    number of batch dims. ``mask`` is None or a bool tensor broadcastable to (..., T_q, T_k),
    True = may attend. Returning ``(output, weights)`` is accepted too (the first item is checked).
    The cases: no mask; T_q != T_k with heads; a bool mask; a causal (T, T) mask broadcast over
    batch and heads; a (B, 1, 1, T_k) padding mask; a float16 case with large scores. Every
    mask row keeps at least one key (fully masked rows are a convention, not checked here).
    Diagnoses: softmax over the wrong axis, missing or wrong scale, k @ q^T, returning the weights,
    flipped mask polarity, ignored mask, mask applied after the softmax, masked scores set to 0,
    a finite fill such as -1e4 that large scores defeat (and -1e9, which float16 cannot hold).

    What float16 can and cannot reveal: ``scores.masked_fill(~mask, -1e9)`` on float16 scores raises
    (the value does not fit), which is diagnosed; ``scores + (~mask) * -1e9`` silently becomes -inf
    in float16 (or float32 by type promotion) and masks correctly, so it passes; -1e4 masks fine
    with ordinary scores and fails only when the real scores are about -1e4 or below (or the masked
    ones large), which the float16 case arranges.
    """

    def body():
        g = torch.Generator().manual_seed(7)
        rnd = torch.rand(4, 5, generator=g) > 0.5
        rnd[:, 0] = True  # every row keeps a key and blocks one, in both polarities
        rnd[:, 1] = False
        pad = padding_mask([5, 3], 5)
        inputs = [
            ("batch 2, 4 tokens, d = 16, d_v = 3, no mask",
             randn(2, 4, 16, seed=20), randn(2, 4, 16, seed=21), randn(2, 4, 3, seed=22), None),
            ("2 heads, 3 queries, 6 keys, no mask",
             randn(2, 2, 3, 8, seed=23), randn(2, 2, 6, 8, seed=24), randn(2, 2, 6, 5, seed=25), None),
            ("a bool mask (4 queries x 5 keys)",
             randn(2, 4, 16, seed=26), randn(2, 5, 16, seed=27), randn(2, 5, 3, seed=28), rnd),
            ("causal mask (5, 5) broadcast over batch and heads",
             randn(2, 2, 5, 8, seed=29), randn(2, 2, 5, 8, seed=30), randn(2, 2, 5, 4, seed=31),
             causal_mask(5)),
            ("padding mask (B, 1, 1, T_k), lengths [5, 3]",
             randn(2, 2, 4, 8, seed=32), randn(2, 2, 5, 8, seed=33), randn(2, 2, 5, 4, seed=34), pad),
            ("float16 with large scores", *_fp16_large_scores()),
        ]
        cases = []
        for name, q, k, v, mask in inputs:
            expected = attention(q, k, v, mask, return_weights=True)[0]
            cases.append(Case(
                name, (q, k, v), expected, kwargs={} if mask is None else {"mask": mask},
                mistakes=_attention_mistakes(q, k, v, mask),
                otherwise="the output is wrong: expected softmax(q @ k^T / sqrt(d), masked) @ v",
                nonfinite=("your output contains nan/inf - is a whole row masked (mask polarity: "
                           "True = may attend)? Or did the scores overflow?"),
            ))
        return run_cases(fn, cases, allow_tuple=True, hint=(
            "shapes: q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v); scores = q @ "
            "k.transpose(-2, -1) is (..., T_q, T_k); the mask (True = may attend) broadcasts to it"))

    return run_check("attention", body)


# --------------------------------------------------------------------------- masks


def _as_bool_mask(out: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """Accept only a bool tensor; name the problem when a float/int tensor holds the right pattern."""
    if out.dtype == torch.bool:
        return out
    if out.shape == expected.shape:
        if out.is_floating_point() and torch.equal(out.isinf(), ~expected) and (out[expected] == 0).all():
            fail("you returned an additive float mask (0 = attend, -inf = blocked); this exercise "
                 "wants a bool tensor, True = may attend")
        if torch.equal(out != 0, expected):
            fail(f"right pattern, but a {out.dtype} tensor: return a bool tensor (True = may "
                 "attend), e.g. straight from a comparison, or with .bool()")
        if torch.equal(out == 0, expected):
            fail(f"a {out.dtype} tensor with 0 where keys may be seen: return a bool tensor with "
                 "True = may attend")
    fail(f"expected a bool tensor (True = may attend), got dtype {out.dtype}")


def check_padding_mask(fn) -> bool:
    """Check ``fn(lengths, T) -> mask``: a bool key-padding mask broadcastable to (B, 1, 1, T).

    ``lengths`` is a 1-D int tensor of the B true lengths; position t of sequence b is a real
    token (True = may attend) when t < lengths[b]. The usual answer has shape (B, 1, 1, T) so that
    it broadcasts against patterns (B, H, T_q, T). Cases include lengths 0 and T.
    Diagnoses: flipped polarity, off by one (either way), shape (B, T), float/int mask.
    """

    def body():
        inputs = [([3, 5, 1], 5), ([0, 2], 4), ([4], 4)]
        for lengths, T in inputs:
            with case(f"lengths {lengths}, T = {T}"):
                lengths_t = torch.tensor(lengths)
                expected = padding_mask(lengths_t, T)
                B = len(lengths)
                out = tensor_output(call(fn, lengths_t, T, hint=(
                    "compare positions torch.arange(T) with the lengths: "
                    "torch.arange(T)[None, :] < lengths[:, None]")))
                pos = torch.arange(T)[None, :]
                col = lengths_t[:, None]
                if out.shape == (B, T):
                    if torch.equal(out.bool(), expected[:, 0, 0, :]):
                        fail(f"right values, but shape (B, T) = {shape_str(out.shape)} would "
                             "broadcast against the queries, not the batch: return shape "
                             "(B, 1, 1, T), e.g. mask[:, None, None, :]")
                try:
                    fits = torch.broadcast_shapes(out.shape, expected.shape) == expected.shape
                except RuntimeError:
                    fits = False
                if not fits:
                    fail(f"expected a mask of shape (B, 1, 1, T) = {shape_str(expected.shape)}, "
                         f"got {shape_str(out.shape)}")
                out = out.expand(expected.shape)
                if out.dtype != torch.bool:
                    _as_bool_mask(out, expected)
                mistakes = [
                    ("the polarity is flipped: True must mark real tokens (position < length), "
                     "which may be attended", ~expected),
                    ("off by one: position == length is already padding; use position < length",
                     (pos <= col)[:, None, None, :]),
                    ("off by one: the last real token (position length - 1) is masked; use "
                     "position < length", (pos < col - 1)[:, None, None, :]),
                ]
                compare(out, expected, mistakes=mistakes, otherwise="the mask is wrong")
        return len(inputs)

    return run_check("padding mask", body)


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
    outputs that ignore the input.
    """

    def body():
        dm, vs, t = _infer_input(fn, d_model, vocab_size, T)
        g = torch.Generator().manual_seed(3)
        if vs is not None:
            x = torch.randint(0, vs, (batch, t), generator=g)
        else:
            x = torch.randn(batch, t, dm, generator=g)
        module = fn if isinstance(fn, torch.nn.Module) else None
        dev = torch.device("cpu") if device is None else torch.device(device)
        if device is None and module is not None:
            dev = next(iter(module.parameters()), torch.empty(0)).device
        tol = atol if atol is not None else (1e-5 if dev.type == "cpu" else 1e-4)
        x = x.to(dev)
        was_training = module.training if module is not None else False
        if module is not None:
            module.eval()
        try:
            with torch.no_grad():
                base = tensor_output(call(fn, x), allow_tuple=True)
                if base.ndim < 2 or tuple(base.shape[:2]) != (batch, t):
                    fail(f"expected an output of shape (B, T, ...) = ({batch}, {t}, ...), "
                         f"got {shape_str(base.shape)}")
                if not torch.isfinite(base).all():
                    fail("your output contains nan/inf - is a whole row masked (polarity flipped, "
                         "True = may attend)?")
                leaks = []  # (i, j): output i moved when input j > i changed
                moved_self = False
                for j in range(t):
                    x2 = x.clone()
                    if vs is not None:
                        x2[:, j] = (x2[:, j] + 1 + j) % vs
                    else:
                        x2[:, j] = torch.randn(batch, dm, generator=g).to(dev)
                    out = tensor_output(call(fn, x2), allow_tuple=True)
                    if out.shape != base.shape:
                        fail(f"the output shape changed from {shape_str(base.shape)} to "
                             f"{shape_str(out.shape)} when one input changed")
                    moved = [not torch.allclose(out[:, i].double(), base[:, i].double(), atol=tol,
                                                rtol=0) for i in range(t)]
                    leaks += [(i, j) for i in range(j) if moved[i]]
                    moved_self = moved_self or moved[j]
        finally:
            if module is not None:
                module.train(was_training)
        if leaks:
            i, j = leaks[0]
            pairs = t * (t - 1) // 2
            if len(leaks) == pairs:
                kind = "every position sees every later one: is a causal mask applied at all?"
            elif all(j == i + 1 for i, j in leaks):
                kind = ("each position sees exactly one token ahead: the mask is off by one "
                        "(torch.tril(..., diagonal=1)?)")
            else:
                kind = f"{len(leaks)} of the {pairs} (earlier, later) pairs leak"
            fail(f"position {i} changed when token {j} > {i} was changed: the future leaks ({kind})")
        if not moved_self:
            fail("no output moved when its own input changed: does your function use its input?")
        return t

    return run_check("causality", body, unit="positions")


# --------------------------------------------------------------------------- weights


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
        live = torch.ones(w.shape[:-1], dtype=torch.bool)
        m = None
        if mask is not None:
            m = tensor_output(mask, what="as the mask, you", verb="passed")
            if m.dtype != torch.bool:
                fail(f"the mask must be a bool tensor (True = may attend), got dtype {m.dtype}")
            try:
                m = m.expand(w.shape)
            except RuntimeError:
                fail(f"the mask of shape {shape_str(m.shape)} does not broadcast to the weights' "
                     f"shape {shape_str(w.shape)}")
            live = m.any(dim=-1)
        wl = w[live]  # (rows, T_k): the rows that have at least one allowed key
        if not torch.isfinite(wl).all():
            fail("the weights contain nan or inf")
        if (wl < 0).any():
            fail(f"some weights are negative (min {wl.min().item():.3g}): a softmax is never negative")
        rows = wl.sum(dim=-1)
        if not torch.allclose(rows, torch.ones_like(rows), atol=1e-3):
            cols = w.sum(dim=-2)
            if mask is None and torch.allclose(cols, torch.ones_like(cols), atol=1e-3):
                fail("the columns sum to 1, not the rows - did you take the softmax over dim=-2 "
                     "(the queries) instead of dim=-1 (the keys)?")
            worst = (rows - 1).abs().argmax().item()
            fail(f"the rows of the pattern must sum to 1 over the keys (dim=-1); one sums to "
                 f"{rows[worst].item():.4g}")
        if m is not None:
            blocked = w[~m & live.unsqueeze(-1).expand(w.shape)]
            if blocked.numel() and blocked.max() > 1e-6:
                on_allowed = w[m & live.unsqueeze(-1).expand(w.shape)]
                if on_allowed.numel() and (on_allowed.abs() < 1e-6).all():
                    fail("the weights sit exactly where the mask is False: the polarity is flipped "
                         "(True = may attend)")
                fail(f"masked positions get weight up to {blocked.max().item():.3g}; they must get "
                     "exactly 0 - fill masked scores with float('-inf') before the softmax")
        return 4 if m is None else 5

    return run_check("attention weights", body, unit="checks")

"""attnlib.checks: the package assembly, the shared machinery and the attention checkers.

For every checker: correct answers in at least two styles pass, each typical mistake is rejected
with its own diagnosis (asserted on key words of the printed line), a NotImplementedError stub
reads "not implemented", and bad outputs (None, numpy arrays, wrong shapes, tuples, exceptions)
give a failure, never an exception.
"""

from __future__ import annotations

import importlib
import math
import pkgutil

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib import checks
from attnlib.checks import _core

INF = float("inf")


def run(capsys, checker, *args, **kwargs):
    """Run a checker; return (its verdict, its printed output)."""
    ok = checker(*args, **kwargs)
    out = capsys.readouterr().out
    assert isinstance(ok, checks.CheckResult)
    assert out.count("\n") >= 1
    return ok, out


def passes(capsys, checker, *args, **kwargs):
    ok, out = run(capsys, checker, *args, **kwargs)
    assert ok, out
    assert out.startswith("✓") and "passed" in out, out


def fails(capsys, checker, *args, words=(), **kwargs):
    ok, out = run(capsys, checker, *args, **kwargs)
    assert not ok, out
    assert out.startswith("✗"), out
    for w in words:
        assert w.lower() in out.lower(), f"{w!r} not in: {out}"
    return out


def stub(*args, **kwargs):
    raise NotImplementedError


# --------------------------------------------------------------------------- the package


def test_package_reexports_every_public_module():
    expected = {"CheckResult"}
    for info in pkgutil.iter_modules(checks.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"attnlib.checks.{info.name}")
        assert hasattr(module, "__all__"), info.name
        for name in module.__all__:
            assert getattr(checks, name) is getattr(module, name)
            expected.add(name)
    assert set(checks.__all__) == expected
    assert len(checks.__all__) == len(set(checks.__all__))


def test_attention_checkers_are_exported():
    for name in ["check_softmax", "check_scaled_scores", "check_attention", "check_causal_mask",
                 "check_causality", "check_padding_mask", "check_attention_weights"]:
        assert callable(getattr(checks, name))
        assert getattr(checks, name).__doc__


# --------------------------------------------------------------------------- _core


def test_core_run_check_and_call(capsys):
    def body():
        _core.call(stub, torch.zeros(1))
        return 1

    assert not _core.run_check("demo", body)
    assert "not implemented yet" in capsys.readouterr().out

    def in_a_case():
        with _core.case("first"):
            _core.call(stub)
        return 1

    assert not _core.run_check("demo", in_a_case)
    assert capsys.readouterr().out.startswith("✗ demo: not implemented yet: replace the TODO")

    def boom(x):
        raise ValueError("bad input")

    assert not _core.run_check("demo", lambda: _core.call(boom, 1))
    out = capsys.readouterr().out
    assert "ValueError" in out and "bad input" in out

    assert _core.run_check("demo", lambda: 3)
    assert capsys.readouterr().out == "✓ demo: all 3 cases passed\n"

    def buggy():
        raise KeyError("oops")

    assert not _core.run_check("demo", buggy)  # even a checker bug does not raise
    assert "unexpected KeyError" in capsys.readouterr().out


def test_core_call_names_an_in_place_edit_and_keeps_the_input():
    x = torch.ones(3)

    def scale(scores):
        return scores.mul_(5)

    with pytest.raises(_core.CheckFailure, match="changed its input `scores` in place"):
        _core.call(scale, x)
    assert torch.equal(x, torch.ones(3))
    assert _core.call(lambda t: t * 5, x).sum().item() == 15


def test_core_tensor_output_and_compare():
    with pytest.raises(_core.CheckFailure, match="None"):
        _core.tensor_output(None)
    with pytest.raises(_core.CheckFailure, match="numpy"):
        _core.tensor_output(torch.zeros(2).numpy())
    with pytest.raises(_core.CheckFailure, match="tuple of 2"):
        _core.tensor_output((torch.zeros(1), torch.zeros(1)))
    assert _core.tensor_output((torch.ones(1), None), allow_tuple=True).item() == 1
    with pytest.raises(_core.CheckFailure, match=r"shape \(2, 5, 5\), got \(2, 5\)"):
        _core.compare(torch.zeros(2, 5), torch.zeros(2, 5, 5))
    with pytest.raises(_core.CheckFailure, match="you doubled"):
        _core.compare(torch.full((2,), 2.0), torch.ones(2), mistakes=[("you doubled", lambda: torch.ones(2) * 2)])
    with pytest.raises(_core.CheckFailure, match="nan"):
        _core.compare(torch.tensor([math.nan]), torch.ones(1))
    _core.compare(torch.ones(2) + 1e-7, torch.ones(2))
    assert _core.diagnose(torch.ones(1), [("broken", lambda: 1 / 0), ("ones", torch.ones(1))]) == "ones"
    assert not _core.close(torch.ones(2, dtype=torch.bool), torch.ones(2))


# --------------------------------------------------------------------------- softmax


def softmax_manual(x):
    e = (x - x.max(dim=-1, keepdim=True).values).exp()
    return e / e.sum(dim=-1, keepdim=True)


@pytest.mark.parametrize("fn", [
    lambda x: torch.softmax(x, dim=-1),
    lambda x: F.softmax(x, dim=-1),
    softmax_manual,
    lambda x: torch.exp(x - torch.logsumexp(x, dim=-1, keepdim=True)),
    lambda x: attnlib.softmax(x),
])
def test_softmax_accepts_correct(capsys, fn):
    passes(capsys, checks.check_softmax, fn)


@pytest.mark.parametrize("fn, words", [
    (lambda x: torch.softmax(x, dim=-2), ["dim=-2", "the queries"]),
    (lambda x: torch.softmax(x, dim=0), ["do not sum to 1", "dim="]),
    (lambda x: x.exp() / x.exp().sum(dim=-1, keepdim=True), ["nan", "max", "overflow"]),
    (lambda x: x.exp(), ["without normalising"]),
    (lambda x: (x - x.max()).exp() / (x - x.max()).exp().sum(-1, keepdim=True), ["own max", "0 / 0"]),
    (lambda x: (x - x.max(dim=-1)).exp(), ["returns a pair", "amax"]),
    (lambda x: torch.log_softmax(x, dim=-1), ["log-softmax"]),
    (lambda x: x.exp() / x.exp().sum(), ["sum of all entries"]),
    (lambda x: (x - x.amax(-1, keepdim=True)).exp() / (x - x.amax(-1, keepdim=True)).exp().sum(-1),
     ["keepdim"]),
    (lambda x: (x - x.amax(-2, keepdim=True)).exp()
     / (x - x.amax(-2, keepdim=True)).exp().sum(-1, keepdim=True), ["max over the wrong axis"]),
])
def test_softmax_diagnoses(capsys, fn, words):
    fails(capsys, checks.check_softmax, fn, words=words)


# --------------------------------------------------------------------------- shared bad outputs


BAD_OUTPUTS = [
    (stub, ["not implemented"]),
    (lambda *a, **k: None, ["returned None", "TODO", "return"]),
    (lambda *a, **k: a[0].numpy(), ["numpy"]),
    (lambda *a, **k: "hello", ["str"]),
    (lambda *a, **k: torch.zeros(2, 5), ["shape", "got (2, 5)"]),
    (lambda *a, **k: 1 / 0, ["ZeroDivisionError"]),
]
CHECKERS_OF_FUNCTIONS = [
    checks.check_softmax, checks.check_scaled_scores, checks.check_attention,
    checks.check_causal_mask, checks.check_padding_mask,
]


@pytest.mark.parametrize("checker", CHECKERS_OF_FUNCTIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("bad, words", BAD_OUTPUTS, ids=["stub", "none", "numpy", "str", "shape", "raises"])
def test_checkers_never_raise_on_bad_output(capsys, checker, bad, words):
    if checker in (checks.check_causal_mask, checks.check_padding_mask) and "numpy" in words:
        bad = lambda *a, **k: torch.zeros(2).numpy()  # noqa: E731 - these take ints, not tensors
    fails(capsys, checker, bad, words=words)


@pytest.mark.parametrize("checker", CHECKERS_OF_FUNCTIONS, ids=lambda c: c.__name__)
def test_checkers_reject_non_callables(capsys, checker):
    fails(capsys, checker, 42, words=["expected a function"])


# --------------------------------------------------------------------------- scaled scores


@pytest.mark.parametrize("fn", [
    lambda q, k: q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]),
    lambda q, k: torch.einsum("...qd,...kd->...qk", q, k) * q.shape[-1] ** -0.5,
    lambda q, k: torch.matmul(q / q.size(-1) ** 0.5, k.mT),
])
def test_scaled_scores_accepts_correct(capsys, fn):
    passes(capsys, checks.check_scaled_scores, fn)


@pytest.mark.parametrize("fn, words", [
    (lambda q, k: q @ k.mT, ["forgot the scale", "sqrt(d)"]),
    (lambda q, k: q @ k.mT / q.shape[-1], ["divided by d"]),
    (lambda q, k: q @ k.mT * math.sqrt(q.shape[-1]), ["multiplied by sqrt(d)"]),
    (lambda q, k: k @ q.mT / math.sqrt(q.shape[-1]), ["k @ q^T", "transposed"]),
    (lambda q, k: q @ k.mT / math.sqrt(q.shape[-2]), ["sqrt(T_q)", "q.shape[-1]"]),
    (lambda q, k: q @ k.mT / 8, ["sqrt(64)", "1/sqrt(d)"]),  # e.g. a global d_model = 64
    (lambda q, k: q @ k.mT / 4, ["sqrt(16)", "q.shape[-1] = 10"]),  # hard-coded for a d = 16
    (lambda q, k: q @ k.transpose(0, 1) / math.sqrt(q.shape[-1]), ["raised", "transpose(-2, -1)"]),
])
def test_scaled_scores_diagnoses(capsys, fn, words):
    fails(capsys, checks.check_scaled_scores, fn, words=words)


# --------------------------------------------------------------------------- attention


def attn_masked_fill(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def attn_where_einsum(q, k, v, mask=None):
    s = torch.einsum("...qd,...kd->...qk", q * q.shape[-1] ** -0.5, k)
    if mask is not None:
        s = torch.where(mask, s, torch.tensor(-INF, dtype=s.dtype))
    w = softmax_manual(s)
    return torch.einsum("...qk,...kd->...qd", w, v), w  # (output, weights) is accepted


def attn_finfo_min(q, k, v, mask=None):
    s = q @ k.mT / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(mask == False, torch.finfo(s.dtype).min)  # noqa: E712
    return s.softmax(-1) @ v


def attn_float_mask(q, k, v, mask=None):
    s = q.float() @ k.float().mT / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s + torch.zeros(mask.shape).masked_fill(~mask, -INF)
    return (s.softmax(-1) @ v.float()).to(v.dtype)


@pytest.mark.parametrize("fn", [
    attn_masked_fill,
    attn_where_einsum,
    attn_finfo_min,
    attn_float_mask,
    lambda q, k, v, mask=None: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
    lambda q, k, v, mask=None: attnlib.attention(q, k, v, mask),
], ids=["masked_fill", "where_einsum", "finfo_min", "float_mask", "sdpa", "attnlib"])
def test_attention_accepts_correct(capsys, fn):
    passes(capsys, checks.check_attention, fn)


def attn_variant(*, dim=-1, scale=True, transpose=False, flip=False, fill=-INF, add=False,
                 after=False, ignore=False, weights=False):
    def fn(q, k, v, mask=None):
        s = (k @ q.mT) if transpose else (q @ k.mT)
        if scale:
            s = s / math.sqrt(q.shape[-1])
        if mask is not None and not ignore:
            m = ~mask if flip else mask
            if add:
                s = s + (~m).to(s.dtype) * fill
            elif not after:
                s = s.masked_fill(~m, fill)
        w = torch.softmax(s, dim=dim)
        if mask is not None and after:
            w = w * mask
        return w if weights else w @ v

    return fn


@pytest.mark.parametrize("fn, words", [
    (attn_variant(dim=-2), ["dim=-2", "queries"]),
    (attn_variant(scale=False), ["forgot to scale", "1/sqrt(d)"]),
    (attn_variant(transpose=True), ["k @ q^T"]),
    (attn_variant(weights=True), ["returned the attention weights", "weights @ v"]),
    (attn_variant(flip=True), ["polarity is flipped", "may attend"]),
    (attn_variant(ignore=True), ["ignored the mask"]),
    (attn_variant(after=True), ["after the softmax", "no longer sum to 1"]),
    (attn_variant(fill=0.0), ["set to 0", "-inf"]),
    (attn_variant(fill=-1e4), ["-1e4", "float16", "finfo"]),
    (attn_variant(fill=-1e4, add=True), ["-1e4", "not negative enough"]),
    (attn_variant(fill=-1e9), ["-1e9", "float16", "65504"]),  # masked_fill(-1e9) on fp16 raises
])
def test_attention_diagnoses(capsys, fn, words):
    fails(capsys, checks.check_attention, fn, words=words)


def test_attention_diagnoses_wrong_size_and_wrong_tensor(capsys):
    def scaled_by_dv(q, k, v, mask=None):
        return torch.softmax(q @ k.mT / math.sqrt(v.shape[-1]), -1) @ v

    def averages_keys(q, k, v, mask=None):
        return torch.softmax(q @ k.mT / math.sqrt(q.shape[-1]), -1) @ k

    fails(capsys, checks.check_attention, scaled_by_dv, words=["d_v", "q.shape[-1]"])
    fails(capsys, checks.check_attention, averages_keys, words=["averaged the keys", "weights @ v"])
    no_mask_arg = lambda q, k, v: attnlib.attention(q, k, v)  # noqa: E731
    fails(capsys, checks.check_attention, no_mask_arg, words=["unexpected keyword", "signature"])

    def if_mask(q, k, v, mask=None):
        s = q @ k.mT / math.sqrt(q.shape[-1])
        if mask:
            s = s.masked_fill(~mask, -INF)
        return s.softmax(-1) @ v

    fails(capsys, checks.check_attention, if_mask, words=["if mask is not None"])


def test_attention_additive_minus_1e9_masks_correctly(capsys):
    # Honest limit: adding -1e9 overflows to -inf in float16 (or promotes to float32), which masks
    # correctly, so there is nothing wrong to detect.
    passes(capsys, checks.check_attention, attn_variant(fill=-1e9, add=True))


def test_attention_reports_hint_on_shape_errors(capsys):
    fails(capsys, checks.check_attention, lambda q, k, v, mask=None: torch.softmax(q @ k.mT, -1) @ v.mT,
          words=["raised", "hint"])


# --------------------------------------------------------------------------- causal mask


@pytest.mark.parametrize("fn", [
    lambda T_q, T_k: torch.ones(T_q, T_k, dtype=torch.bool).tril(diagonal=T_k - T_q),
    lambda T_q, T_k: torch.arange(T_k)[None, :] <= torch.arange(T_q)[:, None] + (T_k - T_q),
    lambda T_q, T_k: attnlib.causal_mask(T_q, T_k),
])
def test_causal_mask_accepts_correct(capsys, fn):
    passes(capsys, checks.check_causal_mask, fn)


def tril(T_q, T_k, diagonal):
    return torch.ones(T_q, T_k, dtype=torch.bool).tril(diagonal)


@pytest.mark.parametrize("fn, words", [
    (lambda a, b: ~tril(a, b, b - a), ["polarity is flipped"]),
    (lambda a, b: torch.ones(a, b, dtype=torch.bool).triu(b - a), ["future is allowed"]),
    (lambda a, b: tril(a, b, b - a - 1), ["diagonal is hidden"]),
    (lambda a, b: tril(a, b, 0), ["upper-left", "T_k - T_q"]),
    (lambda a, b: tril(a, b, b - a).float(), ["bool", "float32"]),
    (lambda a, b: tril(a, b, b - a).long(), ["bool", "int64"]),
    (lambda a, b: torch.zeros(a, b).masked_fill(~tril(a, b, b - a), -INF), ["additive float mask"]),
    (lambda a, b: tril(b, a, a - b), ["rows must be queries"]),
])
def test_causal_mask_diagnoses(capsys, fn, words):
    fails(capsys, checks.check_causal_mask, fn, words=words)


# --------------------------------------------------------------------------- padding mask


@pytest.mark.parametrize("fn", [
    lambda L, T: (torch.arange(T)[None, :] < L[:, None])[:, None, None, :],
    lambda L, T: (torch.arange(T) < L.unsqueeze(-1)).view(len(L), 1, 1, T),
    lambda L, T: attnlib.padding_mask(L, T),
])
def test_padding_mask_accepts_correct(capsys, fn):
    passes(capsys, checks.check_padding_mask, fn)


@pytest.mark.parametrize("fn, words", [
    (lambda L, T: (torch.arange(T)[None, :] >= L[:, None])[:, None, None, :], ["polarity is flipped"]),
    (lambda L, T: (torch.arange(T)[None, :] <= L[:, None])[:, None, None, :], ["off by one", "position < length"]),
    (lambda L, T: (torch.arange(T)[None, :] < L[:, None] - 1)[:, None, None, :], ["off by one", "last real token"]),
    (lambda L, T: torch.arange(T)[None, :] < L[:, None], ["(B, 1, 1, T)", "broadcast"]),
    (lambda L, T: (torch.arange(T)[None, :] < L[:, None])[:, None, None, :].float(), ["bool", "float32"]),
    (lambda L, T: (torch.arange(T)[None, :] < L[:, None])[None, None], ["shape"]),
])
def test_padding_mask_diagnoses(capsys, fn, words):
    fails(capsys, checks.check_padding_mask, fn, words=words)


# --------------------------------------------------------------------------- causality


@pytest.fixture
def mha():
    torch.manual_seed(0)
    return attnlib.MultiHeadAttention(16, 2)


def test_causality_accepts_causal(capsys, mha):
    passes(capsys, checks.check_causality, lambda x: mha(x, is_causal=True), d_model=16)
    passes(capsys, checks.check_causality, lambda x: x.cumsum(dim=1), d_model=4)
    torch.manual_seed(0)
    model = attnlib.Decoder(attnlib.TINY.replace(n_layers=1))
    model.train()
    passes(capsys, checks.check_causality, model)  # tokens -> (logits, loss); vocab from config
    assert model.training  # the mode is restored


def test_causality_diagnoses(capsys, mha):
    fails(capsys, checks.check_causality, lambda x: mha(x), d_model=16,
          words=["position 0 changed when the input at position 1", "no causal mask is applied"])
    one_ahead = lambda x: mha(x, mask=torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).tril(1))  # noqa: E731
    fails(capsys, checks.check_causality, one_ahead, d_model=16, words=["leak by one", "diagonal=1"])
    fails(capsys, checks.check_causality, lambda x: x.flip(1).cumsum(1).flip(1), d_model=4,
          words=["upper triangle", "not the past"])
    leak_3_to_5 = lambda x: x + (torch.arange(x.shape[1]) == 3)[None, :, None] * x[:, 5:6]  # noqa: E731
    fails(capsys, checks.check_causality, leak_3_to_5, d_model=4,
          words=["position 3 changed when the input at position 5", "(1 of the 15"])
    fails(capsys, checks.check_causality, lambda x: torch.zeros_like(x), d_model=4,
          words=["use its input"])
    fails(capsys, checks.check_causality, lambda x: x * math.nan, d_model=4, words=["nan"])
    fails(capsys, checks.check_causality, lambda x: x[:, 0], d_model=4, words=["shape"])
    fails(capsys, checks.check_causality, stub, d_model=4, words=["not implemented"])
    fails(capsys, checks.check_causality, lambda x: None, d_model=4, words=["None"])
    fails(capsys, checks.check_causality, lambda x: x, words=["d_model=", "vocab_size="])


# --------------------------------------------------------------------------- weights


def pattern(mask=None, seed=0, shape=(2, 4, 8)):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(*shape, generator=g) for _ in range(3))
    return attnlib.attention(q, k, v, mask, return_weights=True)[1]


def test_attention_weights_accepts_correct(capsys):
    passes(capsys, checks.check_attention_weights, pattern())
    mask = attnlib.causal_mask(4)
    passes(capsys, checks.check_attention_weights, pattern(mask), mask)
    pm = attnlib.padding_mask([4, 2], 4)
    passes(capsys, checks.check_attention_weights, pattern(pm, shape=(2, 3, 4, 8)), pm)
    lengths0 = attnlib.padding_mask([4, 0], 4)  # a fully masked sequence: its rows are not checked
    passes(capsys, checks.check_attention_weights, pattern(lengths0, shape=(2, 1, 4, 8)), lengths0)


def test_attention_weights_diagnoses(capsys):
    mask = attnlib.causal_mask(4)
    fails(capsys, checks.check_attention_weights, pattern().mT.contiguous(), words=["columns", "dim=-2"])
    fails(capsys, checks.check_attention_weights, pattern() * 2, words=["sum to 1"])
    mixed = torch.tensor([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.bool)
    fails(capsys, checks.check_attention_weights, pattern(~mixed), mixed, words=["polarity is flipped"])
    scores = torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(1))
    leaky = torch.softmax(scores.masked_fill(~mask, -12.0), dim=-1)  # a finite fill, not -inf
    fails(capsys, checks.check_attention_weights, leaky, mask, words=["masked positions get weight", "-inf"])
    fails(capsys, checks.check_attention_weights, -pattern(), words=["negative"])
    fails(capsys, checks.check_attention_weights, pattern() * math.nan, words=["nan"])
    fails(capsys, checks.check_attention_weights, None, words=["None"])
    fails(capsys, checks.check_attention_weights, pattern().numpy(), words=["numpy"])
    fails(capsys, checks.check_attention_weights, pattern(), torch.ones(3, 3, dtype=torch.bool), words=["broadcast"])
    fails(capsys, checks.check_attention_weights, torch.ones(4, 4, dtype=torch.long), words=["floating"])


def test_a_long_verdict_wraps_at_the_page_width(capsys, monkeypatch):
    from attnlib.checks import _core

    monkeypatch.setattr(_core, "LINE_WIDTH", 85)
    words = " ".join(f"word{i}" for i in range(40))

    def body():
        raise _core.CheckFailure(words)

    result = _core.run_check("demo", body)
    out = capsys.readouterr().out
    assert len(out.splitlines()) > 1
    assert all(len(line) <= 85 for line in out.splitlines()), out
    assert out.rstrip("\n").replace("\n  ", " ") == result.line

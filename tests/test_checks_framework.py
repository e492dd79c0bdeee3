"""The checker framework: every listed mistake gets its own message, the probes run for every
checker, and a verdict shows nothing but its printed line in a notebook.

For every public checker built on a spec (``check.spec``) the tests generate, from the spec
itself: the reference answer (must pass), every known mistake (must fail with that mistake's own
message), an in-place edit of the reference (named as such), an answer hard-coded to the first
case, a function that raises, and a stub.
"""

from __future__ import annotations

import fractions
import math
import re

import numpy as np
import pytest
import torch

from attnlib import checks
from attnlib.checks import _core

SPEC_CHECKERS = [getattr(checks, n) for n in checks.__all__ if hasattr(getattr(checks, n), "spec")]
TENSOR_CHECKERS = [c for c in SPEC_CHECKERS if isinstance(c.spec, _core.TensorSpec)]
NUMBER_CHECKERS = [c for c in SPEC_CHECKERS if isinstance(c.spec, _core.NumberSpec)]
MISTAKES = [(c, i) for c in SPEC_CHECKERS for i in range(len(c.spec.mistakes))]


def name(c):
    return c.__name__


def verdict(capsys, checker, *answer):
    result = checker(*answer)
    out = capsys.readouterr().out
    assert isinstance(result, checks.CheckResult)
    assert out == result.line + "\n", out  # exactly one line, the verdict
    return result


def test_every_notebook_checker_is_on_the_framework():
    assert len(SPEC_CHECKERS) >= 3
    for c in SPEC_CHECKERS:
        assert c.__doc__ and c.__doc__.strip().splitlines()[0].startswith("Check "), c.__name__


@pytest.mark.parametrize("checker", SPEC_CHECKERS, ids=name)
def test_reference_passes(capsys, checker):
    r = verdict(capsys, checker, checker.spec.reference)
    assert r and r.line.startswith("✓"), r.line


@pytest.mark.parametrize("checker, i", MISTAKES,
                         ids=[f"{c.__name__}-{i}" for c, i in MISTAKES])
def test_each_mistake_gets_its_own_message(capsys, checker, i):
    mistake = checker.spec.mistakes[i]
    r = verdict(capsys, checker, mistake.fn)
    assert not r, f"accepted: {mistake.expect}"
    assert mistake.expect in r.message, r.message


def _first_tensor(args):
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
    return None


def _inplace(reference):
    def answer(*args, **kwargs):
        out = reference(*args, **kwargs)
        out = out.clone() if isinstance(out, torch.Tensor) else out
        t = _first_tensor(args)
        if t.dtype == torch.bool:
            t.logical_not_()
        else:
            t.add_(torch.ones((), dtype=t.dtype))
        return out
    return answer


@pytest.mark.parametrize("checker", [c for c in SPEC_CHECKERS if any(
    _first_tensor(a) is not None for a in (
        [x.args for x in c.spec.cases()] if isinstance(c.spec, _core.TensorSpec)
        else [x[1] for x in c.spec.cases]))], ids=name)
def test_an_in_place_edit_is_named(capsys, checker):
    r = verdict(capsys, checker, _inplace(checker.spec.reference))
    assert not r and "in place" in r.message, r.message


@pytest.mark.parametrize("checker", TENSOR_CHECKERS, ids=name)
def test_an_answer_hard_coded_to_one_case_is_named(capsys, checker):
    first = checker.spec.cases()[0]
    expected = first.expected
    answer = tuple(e.clone() for e in expected) if isinstance(expected, tuple) else expected.clone()
    r = verdict(capsys, checker, lambda *a, **k: answer)
    # the first case's answer may also be what a known mistake gives on the second case
    assert not r and ("hard-coded" in r.message or any(
        m.expect in r.message for m in checker.spec.mistakes)), r.message


@pytest.mark.parametrize("checker", NUMBER_CHECKERS, ids=name)
def test_a_number_hard_coded_to_one_case_is_named(capsys, checker):
    label, args, kwargs = checker.spec.cases[0]
    answer = checker.spec.reference(*args, **kwargs)
    r = verdict(capsys, checker, lambda *a, **k: answer)
    assert not r and "hard-coded" in r.message, r.message


@pytest.mark.parametrize("checker", SPEC_CHECKERS, ids=name)
def test_exceptions_and_stubs_become_messages(capsys, checker):
    def stub(*args, **kwargs):
        raise NotImplementedError

    def broken(*args, **kwargs):
        return {}["missing"]

    assert "not implemented yet" in verdict(capsys, checker, stub).message
    r = verdict(capsys, checker, broken)
    assert not r and "your code raised KeyError" in r.message
    assert "expected a function" in verdict(capsys, checker, 42).message
    assert "returned None" in verdict(capsys, checker, lambda *a, **k: None).message


@pytest.mark.parametrize("checker", NUMBER_CHECKERS, ids=name)
@pytest.mark.parametrize("convert", [np.int64, np.float64, lambda n: torch.tensor(n),
                                     lambda n: np.array(n), fractions.Fraction],
                         ids=["np.int64", "np.float64", "tensor", "0-d array", "Fraction"])
def test_numeric_answers_accept_any_real_number(capsys, checker, convert):
    ref = checker.spec.reference

    def answer(*args, **kwargs):
        out = ref(*args, **kwargs)
        if isinstance(out, tuple):
            return tuple(convert(o) for o in out)
        return convert(out)

    if convert in (fractions.Fraction, np.int64) and not checker.spec.integral:
        pytest.skip("a float answer is not an integer")
    r = verdict(capsys, checker, answer)
    assert r, r.message


@pytest.mark.parametrize("checker", NUMBER_CHECKERS, ids=name)
def test_number_mistakes_never_coincide(checker):
    """No two known mistakes (nor a mistake and the answer) agree on every case."""
    spec = checker.spec

    def outputs(f):
        return tuple(f(*a, **k) for _, a, k in spec.cases)

    seen = {outputs(spec.reference): "the reference"}
    for m in spec.mistakes:
        out = outputs(m.fn)
        assert out not in seen, f"{m.message!r} coincides with {seen[out]!r}"
        seen[out] = m.message


# --------------------------------------------------------------------------- the pieces


def test_as_number_converts_once_for_every_kind():
    assert _core.as_number(np.int32(7)) == 7 and isinstance(_core.as_number(np.int32(7)), int)
    assert _core.as_number(torch.tensor(2.5)) == 2.5
    assert _core.as_number(12.0, integral=True) == 12
    assert isinstance(_core.as_number(12.0, integral=True), int)
    for bad, words in [(None, "None"), (True, "bool"), ("3", "str"), ([1, 2], "list of 2"),
                       (torch.ones(3), "shape (3,)"), (math.nan, "finite"), (np.bool_(True), "bool")]:
        with pytest.raises(_core.CheckFailure, match=re.escape(words)):
            _core.as_number(bad)


def test_a_verdict_is_truthy_and_shows_nothing_in_ipython(capsys):
    from IPython.core.formatters import DisplayFormatter

    ok = _core.run_check("demo", lambda: 2)
    bad = _core.run_check("demo", lambda: _core.fail("wrong"))
    assert capsys.readouterr().out == "✓ demo: all 2 cases passed\n✗ demo: wrong\n"
    assert ok and not bad and ok == True and bad == False  # noqa: E712 - the old bool contract
    assert DisplayFormatter().format(ok) == ({}, {})  # the cell shows the printed line only
    assert ok.message == "all 2 cases passed" and bad.line == "✗ demo: wrong"


def test_the_causality_probe_names_each_kind_of_leak():
    def run(mask):
        def fn(x):
            w = torch.softmax(torch.zeros(x.shape[0], x.shape[0]).masked_fill(~mask, -math.inf), -1)
            return (w @ x).nan_to_num(0.0)
        x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
        try:
            _core.causality_probe(lambda a: fn(*a), (x,), _core.Causal(0, -2, -2), fn(x))
        except _core.CheckFailure as err:
            return str(err)
        return "causal"

    ones = torch.ones(5, 5, dtype=torch.bool)
    assert run(ones.tril()) == "causal"
    assert "leak by one" in run(ones.tril(1))
    assert "no causal mask" in run(ones)
    assert "upper triangle" in run(ones.triu())
    assert "(2 of the 10" in run(ones.tril() | torch.eye(5, dtype=torch.bool).roll(3, 1).triu())


# --------------------------------------------------------------------------- correct variants


def _float64_inside(reference):
    """The reference computed in float64 and cast back: a correct answer in another style."""
    def answer(*args, **kwargs):
        dtype = next(a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point())
        up = [a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
              for a in args]
        kw = {k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
              for k, v in kwargs.items()}
        return reference(*up, **kw).to(dtype)
    return answer


FLOAT_CHECKERS = [c for c in TENSOR_CHECKERS if not c.spec.outputs and all(
    not isinstance(a, torch.nn.Module) for x in c.spec.cases() for a in x.args) and any(
    isinstance(a, torch.Tensor) and a.is_floating_point() for a in c.spec.cases()[0].args)]


@pytest.mark.parametrize("checker", FLOAT_CHECKERS, ids=name)
def test_float64_inside_passes(capsys, checker):
    r = verdict(capsys, checker, _float64_inside(checker.spec.reference))
    assert r, r.message


def softmax_rows(scores):
    flat = scores.reshape(-1, scores.shape[-1])
    rows = []
    for row in flat:
        m = row.max()
        e = torch.exp(row - m) if torch.isfinite(m) else torch.zeros_like(row)
        rows.append(e / e.sum().clamp_min(1e-30))
    return torch.stack(rows).reshape(scores.shape)


def attention_loop(q, k, v, mask=None):
    d = q.shape[-1]
    out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=v.dtype)
    s = torch.einsum("...qd,...kd->...qk", q.float(), k.float()) / math.sqrt(d)
    if mask is not None:
        s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
    w = torch.softmax(s, dim=-1)
    for i in range(q.shape[-2]):  # one query at a time
        out[..., i, :] = (w[..., i, :, None] * v.float()).sum(-2).to(v.dtype)
    return out


def head_loop(x, W_Q, W_K, W_V, W_O):
    q, k, v = x @ W_Q, x @ W_K, x @ W_V
    outs = []
    for i in range(x.shape[-2]):  # position i sees positions 0 .. i
        s = q[..., i : i + 1, :] @ k[..., : i + 1, :].transpose(-2, -1) / q.shape[-1] ** 0.5
        outs.append(torch.softmax(s, -1) @ v[..., : i + 1, :])
    return torch.cat(outs, dim=-2) @ W_O


def layernorm_loop(x, weight, bias, eps=1e-5):
    flat = x.reshape(-1, x.shape[-1]).double()
    rows = [(r - r.mean()) / torch.sqrt(((r - r.mean()) ** 2).mean() + eps) for r in flat]
    return (torch.stack(rows).reshape(x.shape) * weight + bias).to(x.dtype)


def block_by_hand(x, block):
    h = x + block.attn(block.ln_1(x), mask=torch.ones(x.shape[1], x.shape[1]).tril().bool())
    return h + block.mlp(block.ln_2(h))


@pytest.mark.parametrize("checker, answer", [
    (checks.check_softmax, softmax_rows),
    (checks.check_attention, attention_loop),
    (checks.check_head, head_loop),
    (checks.check_layernorm, layernorm_loop),
    (checks.check_block, block_by_hand),
    (checks.check_cosine_similarity, lambda a, b: torch.einsum("...d,...d->...", a, b)
     / (a.pow(2).sum(-1).sqrt() * b.pow(2).sum(-1).sqrt())),
    (checks.check_causal_mask, lambda T_q, T_k: torch.tensor(
        [[j <= i + T_k - T_q for j in range(T_k)] for i in range(T_q)]).reshape(T_q, T_k)),
    (checks.check_qk_parameters, lambda d, dh, H, L: np.int64(2) * d * dh * H * L),
    (checks.check_param_count, lambda d, H, dh, L: sum(4 * d * dh for _ in range(H * L))),
    (checks.check_window_count, lambda T, w: int(sum(min(i + 1, w) for i in range(T)))),
], ids=lambda v: getattr(v, "__name__", "answer"))
def test_correct_variants_pass(capsys, checker, answer):
    r = verdict(capsys, checker, answer)
    assert r, r.message


def test_every_notebook_check_name_is_importable():
    import pathlib

    names = set()
    for nb in pathlib.Path(__file__).parent.parent.glob("notebooks/*.ipynb"):
        names |= set(re.findall(r"checks\.(check_\w+)", nb.read_text()))
    assert names, "no checker calls found in the notebooks"
    assert names <= set(checks.__all__), names - set(checks.__all__)
    for n in checks.__all__:
        if n.startswith("check_"):
            doc = getattr(checks, n).__doc__.strip().splitlines()
            assert doc[0].startswith("Check ") and len(doc[0]) <= 100, (n, doc[0])


# --------------------------------------------------------------------------- the other checkers


def test_in_place_edits_are_named_by_the_other_checkers(capsys):
    from attnlib.attention import causal_mask, padding_mask

    def combined(lengths, T):
        out = causal_mask(T) & padding_mask(lengths, T)
        lengths -= 1  # spoils the caller's lengths
        return out

    r = verdict(capsys, checks.check_combined_mask, combined)
    assert not r and "changed its input `lengths` in place" in r.message

    def update(m, l, acc, scores, values, spoil):
        m_new = torch.maximum(m, scores.amax(-1, keepdim=True))
        a = torch.exp(m - m_new).nan_to_num(0.0)
        p = torch.exp(scores - m_new)
        l.mul_(a).add_(p.sum(-1, keepdim=True))  # updating the running state in place is fine
        acc.mul_(a).add_(p @ values)
        if spoil:
            scores.zero_()
        return m_new, l, acc

    assert verdict(capsys, checks.check_online_softmax, lambda *a: update(*a, spoil=False))
    r = verdict(capsys, checks.check_online_softmax, lambda *a: update(*a, spoil=True))
    assert not r and "in place" in r.message


def test_a_previous_token_head_is_not_a_verb_head(capsys):
    from attnlib import example

    names = list(example.SEMANTIC) + list(example.POSITION)
    W_Q, W_K = example.previous_token_head()[:2]
    r = verdict(capsys, checks.check_verb_head, W_Q, W_K)
    assert not r and "previous-token head" in r.message, r.message
    W_Q = torch.zeros(example.D_MODEL, 4)
    W_K = torch.zeros(example.D_MODEL, 4)
    W_Q[names.index("verb"), 0] = W_K[names.index("noun"), 0] = 3.0
    assert verdict(capsys, checks.check_verb_head, W_Q, W_K)


def test_the_leak_detector_must_try_every_position(capsys):
    def first_pair_only(head, x):  # the classic: perturb position 1, look at position 0
        x2 = x.clone()
        x2[1] += 1.0
        return not torch.allclose(head(x2)[0], head(x)[0], atol=1e-6)

    r = verdict(capsys, checks.check_leak_detector, first_pair_only)
    assert not r and "position 3 sees position 5" in r.message, r.message


# --------------------------------------------------------------------------- the reader's RNG


def _reach_answer(model, ids, position):
    return list(range(position, ids.shape[1]))


def _stub(*args, **kwargs):
    raise NotImplementedError


def _non_spec_answers():
    """An answer (right or wrong: the RNG must be restored either way) for each checker that has no
    spec, as the arguments of its call."""
    import attnlib
    from attnlib import example

    zeros = torch.zeros(example.D_MODEL, 4)
    return {
        "check_sharp_temperature": (0.1,),
        "check_verb_head": (zeros, zeros),
        "check_predicted_winners": (["a"] * 8, zeros, zeros),
        "check_causality": (lambda x: x.cumsum(dim=1),),
        "check_combined_mask": (lambda L, T: attnlib.causal_mask(T) & attnlib.padding_mask(L, T),),
        "check_attention_weights": (torch.full((3, 3), 1 / 3),),
        "check_colour_values": (_stub,),
        "check_leak_detector": (lambda head, x: False,),
        "check_cross_attention_mask": (_stub,),
        "check_reach": (_reach_answer,),
        "check_train_step": (checks.check_train_step.reference,),
        "check_cached_step": (checks.check_cached_step.reference,),
        "check_online_softmax": (_stub,),
    }


CHECKER_NAMES = [n for n in checks.__all__ if n.startswith("check_")]


def _answer(checker_name):
    c = getattr(checks, checker_name)
    if hasattr(c, "spec"):
        return (c.spec.reference,), {}
    return _non_spec_answers()[checker_name], ({"d_model": 4} if checker_name == "check_causality" else {})


def test_every_checker_has_an_answer_for_the_rng_test():
    missing = [n for n in CHECKER_NAMES if not hasattr(getattr(checks, n), "spec") and n not in _non_spec_answers()]
    assert not missing, f"add an answer for {missing} to _non_spec_answers"


@pytest.mark.parametrize("checker_name", CHECKER_NAMES)
def test_a_checker_leaves_the_readers_rng_as_it_found_it(capsys, checker_name):
    """check_block and check_reach seeded the global generator, check_ablation drew from it (a
    MultiHeadAttention's initialisation): after them a notebook's torch.rand(1) was the same whatever
    its seed. Every checker now runs inside run_check, which restores the generator."""
    args, kwargs = _answer(checker_name)
    torch.manual_seed(12345)
    torch.rand(3)  # a state no checker's seed could give back
    before = torch.get_rng_state()
    getattr(checks, checker_name)(*args, **kwargs)
    capsys.readouterr()
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("checker_name", ["check_block", "check_reach", "check_train_step", "check_cached_step"])
def test_a_checker_leaves_the_accelerators_generators_alone(capsys, monkeypatch, checker_name):
    """torch.manual_seed also reseeds every GPU's generator, which run_check does not restore: the
    checkers seed the CPU generator only (the one their CPU models draw from)."""
    seeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: seeded.append(seed))
    args, kwargs = _answer(checker_name)
    assert getattr(checks, checker_name)(*args, **kwargs)
    capsys.readouterr()
    assert seeded == []


def test_check_causality_of_a_module_leaves_every_rng_as_it_found_it(capsys):
    """The audit's "check_causality(MultiHeadAttention(8, 2)) moves the RNG" was its own call building
    the module (its initialisation draws) inside the measured call: on a module built before, the
    checker (which puts it in eval mode, probes its device and draws its inputs from a seeded
    generator) leaves torch's, Python's and numpy's generators as it found them."""
    import random

    from attnlib import MultiHeadAttention

    module = MultiHeadAttention(8, 2)
    torch.manual_seed(12345)
    torch.rand(3)
    before = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    checks.check_causality(module)
    capsys.readouterr()
    assert torch.equal(torch.get_rng_state(), before[0])
    assert random.getstate() == before[1] and np.array_equal(np.random.get_state()[1], before[2])


def test_a_checker_still_sees_the_readers_rng_inside():
    """Restoring the generator afterwards does not reseed it before: an answer that draws (dropout, a
    random probe) draws from the reader's stream as without the fork."""
    drawn = []

    def answer(x):  # any checker: draw once, then give up
        drawn.append(torch.rand(1))
        raise NotImplementedError

    torch.manual_seed(7)
    expected = torch.rand(1)
    torch.manual_seed(7)
    checks.check_softmax(answer)
    assert torch.equal(drawn[0], expected)


# --------------------------------------------------------------------------- a checker's own arguments


_ZEROS = torch.zeros(20, 4)
_OWN_ARGUMENTS = [
    ("verb-threshold-nan", lambda: checks.check_verb_head(_ZEROS, _ZEROS, threshold=math.nan), ValueError,
     r"^check_verb_head: threshold must be an attention weight in \(0, 1\), got nan$"),
    ("verb-threshold-negative", lambda: checks.check_verb_head(_ZEROS, _ZEROS, threshold=-1), ValueError,
     r"^check_verb_head: threshold must be an attention weight in \(0, 1\), got -1$"),
    ("verb-threshold-0", lambda: checks.check_verb_head(_ZEROS, _ZEROS, threshold=0), ValueError,
     r"^check_verb_head: threshold must be an attention weight in \(0, 1\), got 0$"),
    ("verb-threshold-1", lambda: checks.check_verb_head(_ZEROS, _ZEROS, threshold=1.0), ValueError,
     r"^check_verb_head: threshold must be an attention weight in \(0, 1\), got 1.0$"),
    ("verb-threshold-str", lambda: checks.check_verb_head(_ZEROS, _ZEROS, threshold="0.5"), TypeError,
     r"^check_verb_head: threshold must be a real number, got '0.5'$"),
    ("causality-T-0", lambda: checks.check_causality(lambda x: x, d_model=4, T=0), ValueError,
     r"^check_causality: T must be a positive int, got 0$"),
    ("causality-batch-0", lambda: checks.check_causality(lambda x: x, d_model=4, batch=0), ValueError,
     r"^check_causality: batch must be a positive int, got 0$"),
    ("causality-T-float", lambda: checks.check_causality(lambda x: x, d_model=4, T=6.0), TypeError,
     r"^check_causality: T must be a positive int, got 6.0$"),
    ("causality-d_model-0", lambda: checks.check_causality(lambda x: x, d_model=0), ValueError,
     r"^check_causality: d_model must be a positive int or None, got 0$"),
    ("causality-vocab-float", lambda: checks.check_causality(lambda x: x, vocab_size=20.0), TypeError,
     r"^check_causality: vocab_size must be a positive int or None, got 20.0$"),
    ("causality-both", lambda: checks.check_causality(lambda x: x, d_model=4, vocab_size=20), TypeError,
     r"^check_causality: give d_model= \(inputs of shape \(B, T, d_model\)\) or vocab_size= \(token ids "
     r"\(B, T\)\), not both; got d_model=4, vocab_size=20$"),
    ("causality-device", lambda: checks.check_causality(lambda x: x, d_model=4, device="gpu"), ValueError,
     r"^check_causality: device must be None, a torch.device or a device name like 'cpu' or 'cuda', "
     r"got 'gpu'$"),
    ("causality-atol-negative", lambda: checks.check_causality(lambda x: x, d_model=4, atol=-1e-5), ValueError,
     r"^check_causality: atol must be a finite number >= 0.0, got -1e-05$"),
    ("causality-atol-nan", lambda: checks.check_causality(lambda x: x, d_model=4, atol=math.nan), ValueError,
     r"^check_causality: atol must be a finite number >= 0.0, got nan$"),
]


@pytest.mark.parametrize("call, exc, message", [pytest.param(c, e, m, id=i) for i, c, e, m in _OWN_ARGUMENTS])
def test_a_checkers_own_bad_argument_is_raised_not_judged(capsys, call, exc, message):
    """A bad threshold or T is the caller's error, not the answer's: it raises, and no verdict is
    printed (a NaN threshold passed a head of zeros; T=0 printed "does your function use its
    input?")."""
    with pytest.raises(exc, match=message):
        call()
    assert capsys.readouterr().out == ""


def test_check_causality_refuses_its_arguments_before_the_modules_mode_changes(capsys):
    from attnlib import MultiHeadAttention

    mha = MultiHeadAttention(8, 2).train()
    with pytest.raises(ValueError, match=r"^check_causality: T must be a positive int, got 0$"):
        checks.check_causality(mha, T=0)
    assert mha.training


@pytest.mark.parametrize("threshold, passes", [(0.3, True), (np.float64(0.5), True), (torch.tensor(0.5), True),
                                               (0.99, False)], ids=["0.3", "np.float64", "tensor", "0.99"])
def test_a_valid_threshold_is_still_a_judgement(capsys, threshold, passes):
    from attnlib import example

    names = list(example.SEMANTIC) + list(example.POSITION)
    W_Q, W_K = torch.zeros(example.D_MODEL, 4), torch.zeros(example.D_MODEL, 4)
    W_Q[names.index("verb"), 0] = W_K[names.index("noun"), 0] = 3.0
    r = verdict(capsys, checks.check_verb_head, W_Q, W_K, threshold)
    assert bool(r) == passes, r.message
    if not passes:
        assert "needs > 0.99" in r.message, r.message
    assert not verdict(capsys, checks.check_verb_head, _ZEROS, _ZEROS, threshold)  # zeros: even weights

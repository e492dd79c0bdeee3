"""The chapter 10 checkers for the training step and the cached decoding step: correct answers in
several styles pass, every known mistake gets its own message, the stub reads "not implemented
yet", an in-place edit of an input is named, and odd answers give a verdict, never an exception."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib import checks
from attnlib.checks.ch10_training import CACHED_STEP_MISTAKES, TRAIN_STEP_MISTAKES


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread is faster, and the verdicts do not depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def verdict(capsys, checker, fn):
    result = checker(fn)
    out = capsys.readouterr().out
    assert isinstance(result, checks.CheckResult)
    assert out == result.line + "\n", out  # one verdict, nothing else
    return result


def passes(capsys, checker, fn):
    r = verdict(capsys, checker, fn)
    assert r and r.line.startswith("✓"), r.line


def fails(capsys, checker, fn, *words):
    r = verdict(capsys, checker, fn)
    assert not r and r.line.startswith("✗"), r.line
    for w in words:
        assert w.lower() in r.message.lower(), (w, r.message)
    return r.message


def stub(*args, **kwargs):
    raise NotImplementedError


def test_exported():
    for name in ("check_train_step", "check_cached_step", "check_next_token_targets"):
        assert name in checks.__all__ and callable(getattr(checks, name))


# --------------------------------------------------------------------------- the training step


def step_model_loss(model, opt, x, y, grad_clip):
    """The chapter's loop, one step: the model's own loss."""
    _, loss = model(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.item()


def step_reshaped(model, opt, x, y, grad_clip):
    """zero_grad first, without set_to_none; cross-entropy on reshaped tensors."""
    opt.zero_grad(set_to_none=False)
    logits, _ = model(x)  # (B, T, vocab_size)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=grad_clip)
    opt.step()
    return float(loss.detach())


def step_transposed_zero_last(model, opt, x, y, grad_clip):
    """model.train() inside, the classes on dim 1, gradients zeroed after the step."""
    model.train()
    logits, _ = model(x)
    loss = F.cross_entropy(logits.transpose(1, 2), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(model.parameters()), grad_clip)
    opt.step()
    model.zero_grad()
    return loss.item()


def step_log_softmax(model, opt, x, y, grad_clip):
    """log_softmax and nll_loss by hand; a numpy-free float32 answer."""
    model.zero_grad()
    logp = torch.log_softmax(model(x)[0], dim=-1)
    loss = -logp.gather(-1, y.unsqueeze(-1)).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.item()


@pytest.mark.parametrize("answer", [step_model_loss, step_reshaped, step_transposed_zero_last,
                                    step_log_softmax], ids=lambda f: f.__name__)
def test_train_step_correct_variants_pass(capsys, answer):
    passes(capsys, checks.check_train_step, answer)


def test_train_step_reference_passes(capsys):
    passes(capsys, checks.check_train_step, checks.check_train_step.reference)


@pytest.mark.parametrize("i", range(len(TRAIN_STEP_MISTAKES)))
def test_train_step_names_each_mistake(capsys, i):
    m = TRAIN_STEP_MISTAKES[i]
    message = fails(capsys, checks.check_train_step, m.fn)
    assert m.expect in message, message


def test_train_step_messages_are_distinct():
    names = [m.expect for m in TRAIN_STEP_MISTAKES if m.fn.__name__ != "_left_in_eval"]
    assert len(set(names)) == len(names)


def _clip_value(model, opt, x, y, grad_clip):
    _, loss = model(x, y)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)  # values, not the norm
    opt.step()
    return loss.item()


def _clip_before_backward(model, opt, x, y, grad_clip):
    _, loss = model(x, y)
    opt.zero_grad()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)  # nothing to clip yet
    loss.backward()
    opt.step()
    return loss.item()


def _detached(model, opt, x, y, grad_clip):
    return torch.tensor(step_model_loss(model, opt, x, y, grad_clip))


def _step_twice(model, opt, x, y, grad_clip):
    loss = step_model_loss(model, opt, x, y, grad_clip)
    opt.step()
    return loss


def _changes_x(model, opt, x, y, grad_clip):
    x[:, 0] = 0  # "the first token is a start token"
    return step_model_loss(model, opt, x, y, grad_clip)


def _changes_y(model, opt, x, y, grad_clip):
    loss = step_model_loss(model, opt, x, y, grad_clip)
    y.zero_()
    return loss


def _under_no_grad(model, opt, x, y, grad_clip):
    with torch.no_grad():
        return step_model_loss(model, opt, x, y, grad_clip)


def _wrong_lr(model, opt, x, y, grad_clip):
    for group in opt.param_groups:
        group["lr"] = 0.1
    return step_model_loss(model, opt, x, y, grad_clip)


@pytest.mark.parametrize("answer, words", [
    (_clip_value, ["above grad_clip", "clip_grad_norm_"]),
    (_clip_before_backward, ["above grad_clip"]),
    (_detached, ["python float", "loss.item()"]),
    (_step_twice, ["2 times"]),
    (_changes_x, ["input `x` in place"]),
    (_changes_y, ["input `y` in place"]),
    (_under_no_grad, ["does not require grad", "no torch.no_grad()"]),
    (_wrong_lr, ["parameters differ from a reference step"]),
    (lambda model, opt, x, y, grad_clip: None, ["returned none"]),
    (lambda model, opt, x, y, grad_clip: "3.2", ["python float", "str"]),
    (lambda model, opt, x: 0.0, ["signature"]),
    (stub, ["not implemented yet"]),
], ids=["clip-value", "clip-before-backward", "detached-tensor", "step-twice", "in-place-x",
        "in-place-y", "no-grad", "other-lr", "none", "string", "signature", "stub"])
def test_train_step_other_answers(capsys, answer, words):
    fails(capsys, checks.check_train_step, answer, *words)


def test_train_step_cases_defeat_the_shortcuts():
    """Every case's unclipped gradient exceeds grad_clip and 1.0 at every step (so missing,
    late and fixed clipping show); one case has dropout (so eval mode shows in the values)."""
    from attnlib.checks import ch10_training as ch10

    cases = ch10._step_cases()
    assert any(cfg.dropout > 0 for _, cfg, *_ in cases)
    assert any(cfg == attnlib.TINY for _, cfg, *_ in cases)
    for _, cfg, B, T, clip, seed in cases:
        model, opt = ch10._fresh(cfg, seed)
        for i, (x, y) in enumerate(ch10._step_batches(cfg, B, T, seed)):
            torch.manual_seed(1000 * seed + i)
            _, loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            assert norm > max(1.01, clip * 1.1), (cfg, i, norm)
            opt.step()


# --------------------------------------------------------------------------- one cached step


def cached_by_parts(model, ids, caches):
    start = len(caches[0])  # the positions already in the cache
    x = model.embed(ids[:, -1:], start)
    for block, cache in zip(model.blocks, caches, strict=True):
        x = x + block.attn(block.ln_1(x), is_causal=True, kv_cache=cache)
        x = x + block.mlp(block.ln_2(x))
    return model.unembed(model.ln_f(x))[:, -1], caches


def cached_blocks_3d(model, ids, caches):
    """Whole blocks, the logits kept as (B, 1, vocab_size), the position from ids."""
    x = model.embed(ids[:, -1:], ids.shape[1] - 1)
    for i, block in enumerate(model.blocks):
        x = block(x, kv_cache=caches[i])
    return model.unembed(model.ln_f(x)), list(caches)


def cached_no_mask(model, ids, caches):
    """One query sees every key: no mask at all is right too, and so is a lower-right mask."""
    x = model.embed(ids[:, -1:], len(caches[0]))
    for block, cache in zip(model.blocks, caches, strict=True):
        T_k = len(cache) + 1
        mask = attnlib.causal_mask(1, T_k) if block is model.blocks[0] else None
        x = x + block.attn(block.ln_1(x), mask=mask, kv_cache=cache)
        x = x + block.mlp(block.ln_2(x))
    return model.unembed(model.ln_f(x))[:, 0], tuple(caches)


def cached_forward(model, ids, caches):
    """Decoder.forward with kv_cache does the same step."""
    logits, _ = model(ids[:, -1:], kv_cache=caches)
    return logits[:, -1], caches


@pytest.mark.parametrize("answer", [cached_by_parts, cached_blocks_3d, cached_no_mask,
                                    cached_forward], ids=lambda f: f.__name__)
def test_cached_step_correct_variants_pass(capsys, answer):
    passes(capsys, checks.check_cached_step, answer)


@pytest.mark.parametrize("i", range(len(CACHED_STEP_MISTAKES)))
def test_cached_step_names_each_mistake(capsys, i):
    m = CACHED_STEP_MISTAKES[i]
    message = fails(capsys, checks.check_cached_step, m.fn)
    assert m.expect in message, message


def test_cached_step_messages_are_distinct():
    names = [m.expect for m in CACHED_STEP_MISTAKES]
    assert len(set(names)) == len(names)


def _edits_ids(model, ids, caches):
    ids[:, -1] = 0
    return cached_by_parts(model, ids, caches)


def _squeezes_ids(model, ids, caches):
    out = cached_by_parts(model, ids, caches)
    ids.add_(1).remainder_(model.config.vocab_size)
    return out


def _edits_model(model, ids, caches):
    with torch.no_grad():
        model.ln_f.weight.mul_(2)
    return cached_by_parts(model, ids, caches)


def _kv_pairs(model, ids, caches):
    logits, caches = cached_by_parts(model, ids, caches)
    return logits, [(c.k, c.v) for c in caches]


def _all_positions(model, ids, caches):
    from attnlib import KVCache
    fresh = [KVCache() for _ in model.blocks]
    logits, _ = model(ids, kv_cache=fresh)
    for c, f in zip(caches, fresh, strict=True):
        c.k, c.v = f.k, f.v
    return logits, caches


@pytest.mark.parametrize("answer, words", [
    (_edits_ids, ["input `ids` in place"]),
    (_squeezes_ids, ["input `ids` in place"]),
    (_edits_model, ["the model `model` in place (ln_f.weight"]),
    (_kv_pairs, ["attnlib.KVCache"]),
    (_all_positions, ["one row per position"]),
    (lambda model, ids, caches: (None, cached_by_parts(model, ids, caches)[1]),
     ["your logits returned none"]),
    (lambda model, ids, caches: None, ["returned none"]),
    (lambda model, ids: None, ["signature"]),
    (stub, ["not implemented yet"]),
], ids=["in-place-ids", "in-place-ids-after", "in-place-model", "kv-pairs", "all-positions",
        "no-logits", "none", "signature", "stub"])
def test_cached_step_other_answers(capsys, answer, words):
    fails(capsys, checks.check_cached_step, answer, *words)


@pytest.mark.parametrize("checker, answer", [(checks.check_train_step, step_model_loss),
                                             (checks.check_cached_step, cached_by_parts)],
                         ids=["train_step", "cached_step"])
def test_the_checkers_leave_the_global_generator_alone(capsys, checker, answer):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    passes(capsys, checker, answer)
    assert torch.equal(torch.rand(3), expected)

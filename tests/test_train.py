"""attnlib.train: the early stop (``stop``) ends the run where it says, and only there; every bad
input to train, get_batch and the checkpoints gets a clear error before anything changes."""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch

import attnlib
from attnlib.train import get_batch, load_checkpoint, map_seeds, save_checkpoint, seed_everything, train


def _setup(seed=0):
    torch.manual_seed(seed)
    model = attnlib.Decoder(attnlib.TINY.replace(vocab_size=11, context_len=8, d_model=16,
                                                 n_layers=1, n_heads=2))
    data = torch.arange(200) % 11
    g = torch.Generator().manual_seed(seed)
    return model, lambda: get_batch(data, 4, 8, generator=g)


def test_stop_ends_the_run_at_the_first_check_that_says_so():
    model, batch_fn = _setup()
    asked = []

    def stop(step):
        asked.append((step, model.training, torch.is_grad_enabled()))
        return len(asked) == 2

    hist = train(model, batch_fn, 100, val_batch_fn=batch_fn, eval_every=5, progress=False,
                 stop=stop)
    # called after steps 4 and 9 (every 5th step), in eval mode without gradients
    assert asked == [(4, False, False), (9, False, False)]
    assert hist.steps == list(range(10))
    assert hist.eval_steps == [0, 5, 9]  # the validation loss is measured where it stopped


def test_without_a_true_answer_the_run_is_complete():
    model, batch_fn = _setup()
    hist = train(model, batch_fn, 12, eval_every=5, progress=False, stop=lambda step: False)
    assert hist.steps == list(range(12))
    model2, batch_fn2 = _setup()
    hist2 = train(model2, batch_fn2, 12, eval_every=5, progress=False)
    assert hist.train_loss == hist2.train_loss  # asking does not change the training


def test_stop_must_be_callable():
    model, batch_fn = _setup()
    with pytest.raises(TypeError, match="train: stop must be a callable or None, got int"):
        train(model, batch_fn, 3, progress=False, stop=1)


# --------------------------------------------------------------------------- bad input


MODEL, BATCH_FN = _setup()
DATA = torch.arange(40) % 11
X, Y = BATCH_FN()


class _NaNAt(torch.nn.Module):
    """A model whose loss turns NaN at step ``at`` (counting forward calls)."""

    def __init__(self, at: int):
        super().__init__()
        self.w, self.at, self.calls = torch.nn.Parameter(torch.ones(3)), at, 0

    def forward(self, x, y):
        self.calls += 1
        loss = (self.w ** 2).sum()
        return None, loss * math.nan if self.calls > self.at else loss


def _plain_state_dict(tmp):
    path = tmp / "weights.pt"
    torch.save(MODEL.state_dict(), path)
    return path


TRAIN_CASES = [
    ("lr-inf", dict(lr=math.inf), ValueError, r"^train: lr must be a finite number > 0.0, got inf$"),
    ("lr-0", dict(lr=0.0), ValueError, r"^train: lr must be a finite number > 0.0, got 0.0$"),
    ("lr-negative", dict(lr=-1e-3), ValueError, r"^train: lr must be a finite number > 0.0, got -0.001$"),
    ("lr-str", dict(lr="3e-3"), TypeError, r"^train: lr must be a real number, got '3e-3'$"),
    ("weight-decay-nan", dict(weight_decay=math.nan), ValueError,
     r"^train: weight_decay must be a finite number >= 0.0, got nan$"),
    ("grad-clip-negative", dict(grad_clip=-1), ValueError,
     r"^train: grad_clip must be None \(no clipping\) or a finite number > 0, got -1$"),
    ("grad-clip-0", dict(grad_clip=0.0), ValueError, r"^train: grad_clip must be None .* got 0.0$"),
    ("eval-every-0", dict(eval_every=0, val_batch_fn=BATCH_FN), ValueError,
     r"^train: eval_every must be a positive int, got 0$"),
    ("eval-batches-0", dict(eval_batches=0, val_batch_fn=BATCH_FN), ValueError,
     r"^train: eval_batches must be a positive int, got 0$"),
    ("warmup-negative", dict(warmup=-5), ValueError, r"^train: warmup must be a non-negative int, got -5$"),
    ("steps-0", dict(steps=0), ValueError, r"^train: steps must be a positive int, got 0$"),
    ("steps-float", dict(steps=2.0), TypeError, r"^train: steps must be a positive int, got 2.0$"),
    ("batch-fn-not-callable", dict(batch_fn=(X, Y)), TypeError,
     r"^train: batch_fn must be a callable that returns a batch, got a tuple$"),
    ("val-batch-fn-not-callable", dict(val_batch_fn=[X, Y]), TypeError,
     r"^train: val_batch_fn must be a callable or None, got a list$"),
    ("model-not-module", dict(model=lambda x, y: (x, y)), TypeError,
     r"^train: model must be a torch.nn.Module, got a function$"),
    ("model-without-parameters", dict(model=torch.nn.Identity()), ValueError,
     r"^train: model has no parameters to train$"),
    ("autocast-str", dict(autocast_dtype="bfloat16"), TypeError,
     r"^train: autocast_dtype must be a torch.dtype \(e.g. torch.bfloat16\) or None, got 'bfloat16'$"),
    ("autocast-float64", dict(autocast_dtype=torch.float64), ValueError,
     r"^train: autocast_dtype must be torch.float16 or torch.bfloat16 \(the dtypes autocast computes in\) "
     r"or None \(no autocast\), got torch.float64$"),
    ("autocast-int64", dict(autocast_dtype=torch.int64), ValueError,
     r"^train: autocast_dtype must be torch.float16 or torch.bfloat16 .* got torch.int64$"),
    ("batch-fn-without-targets", dict(batch_fn=lambda: (X,)), ValueError,
     r"^train: batch_fn must return the model's inputs and targets, e.g. \(x, y\), so that the model "
     r"computes a loss; it returned 1 item\(s\): a torch.int64 tensor of shape \(4, 8\)$"),
    ("batch-fn-returns-a-tensor", dict(batch_fn=lambda: X), TypeError,
     r"^train: batch_fn must return a tuple of the model's arguments, e.g. \(x, y\), got a torch.int64 "
     r"tensor"),
]


@pytest.mark.parametrize("changes,exc,message", [pytest.param(c, e, m, id=i) for i, c, e, m in TRAIN_CASES])
def test_train_refuses_bad_input_before_changing_the_model(changes, exc, message):
    args = dict(model=MODEL, batch_fn=BATCH_FN, steps=3, progress=False) | changes
    before = {k: v.clone() for k, v in MODEL.state_dict().items()}
    with pytest.raises(exc, match=message):
        train(**args)
    assert all(torch.equal(v, before[k]) for k, v in MODEL.state_dict().items())


def test_a_val_batch_fn_without_targets_is_named():
    # found at the first evaluation, after step 0 (calling it earlier would shift its generator)
    model, batch_fn = _setup()
    message = (r"^train: val_batch_fn must return the model's inputs and targets, e.g. \(x, y\), so that "
               r"the model computes a loss; it returned 1 item")
    with pytest.raises(ValueError, match=message):
        train(model, batch_fn, 3, val_batch_fn=lambda: batch_fn()[:1], progress=False)
    assert not model.training


def test_a_non_finite_loss_stops_the_training_at_its_step_before_the_update():
    model = _NaNAt(at=2)
    message = r"^train: the loss is nan at step 2 \(of 10\); training stopped before that step changed"
    with pytest.raises(FloatingPointError, match=message):
        train(model, lambda: (None, None), 10, lr=0.1, progress=False)
    assert torch.isfinite(model.w).all() and not model.training  # two good steps, then nothing


BATCH_CASES = [
    ("data-list", lambda: get_batch(list(range(20)), 2, 4), TypeError,
     r"^get_batch: data must be a 1-D integer \(long\) tensor of token ids, got a list; "
     r"use torch.tensor\(data\)$"),
    ("data-float", lambda: get_batch(DATA.float(), 2, 4), TypeError,
     r"^get_batch: data must be a 1-D integer \(long\) tensor of token ids, got a torch.float32 tensor"),
    ("context-len-0", lambda: get_batch(DATA, 2, 0), ValueError,
     r"^get_batch: context_len must be a positive int, got 0$"),
    ("context-len-float", lambda: get_batch(DATA, 2, 4.0), TypeError,
     r"^get_batch: context_len must be a positive int, got 4.0$"),
    ("batch-size-0", lambda: get_batch(DATA, 0, 4), ValueError,
     r"^get_batch: batch_size must be a positive int, got 0$"),
    ("batch-size-negative", lambda: get_batch(DATA, -2, 4), ValueError,
     r"^get_batch: batch_size must be a positive int, got -2$"),
    ("generator-int", lambda: get_batch(DATA, 2, 4, generator=0), TypeError,
     r"^get_batch: generator must be a torch.Generator or None, got 0$"),
]


@pytest.mark.parametrize("call,exc,message", [pytest.param(c, e, m, id=i) for i, c, e, m in BATCH_CASES])
def test_get_batch_refuses_bad_input(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_load_checkpoint_explains_a_plain_state_dict(tmp_path):
    n = len(MODEL.state_dict())
    message = (rf"^load_checkpoint: .*weights.pt holds a plain state dict \({n} tensors, no 'config'\), "
               r"not what save_checkpoint writes \(\{'config'.*model.load_state_dict\(torch.load\(path\)\)$")
    with pytest.raises(ValueError, match=message):
        load_checkpoint(_plain_state_dict(tmp_path))
    other = tmp_path / "other.pt"
    torch.save({"weights": MODEL.state_dict(), "step": 3}, other)
    message = r"^load_checkpoint: .*other.pt holds a dict with keys \['step', 'weights'\]"
    with pytest.raises(ValueError, match=message):
        load_checkpoint(other)


def test_save_checkpoint_needs_a_model_with_a_config(tmp_path):
    with pytest.raises(TypeError, match=r"^save_checkpoint: model must be an attnlib model with a dataclass "
                                        r"config .* got a Linear"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


# ---------------------------------------------------------------- map_seeds

_FORKS = sys.platform == "linux" and (os.cpu_count() or 1) >= 2


def _short_run(seed):
    """Twelve training steps of a small decoder from ``seed``: its losses."""
    g = seed_everything(seed)
    model = attnlib.Decoder(attnlib.DecoderConfig(n_layers=1))
    data = torch.arange(400) % 64
    history = train(model, lambda: get_batch(data, 8, 16, generator=g), 12, progress=False)
    return history.train_loss


@pytest.fixture
def one_thread():
    """torch on one thread, as a chapter that trains sets it, after a multi-threaded product (the
    OpenMP runtime has started its threads: the case a forked worker must survive)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    torch.randn(256, 256) @ torch.randn(256, 256)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_map_seeds_gives_what_a_loop_gives(one_thread):
    assert map_seeds(_short_run, [3, 4]) == [_short_run(3), _short_run(4)]


@pytest.mark.skipif(not _FORKS, reason="map_seeds forks workers only on Linux with two or more cores")
def test_map_seeds_runs_the_seeds_in_workers_and_closures_work(one_thread):
    offset = 10  # a closure over a local: the workers are forked, nothing is pickled but results
    pids = map_seeds(lambda s: (os.getpid(), torch.get_num_threads(), s + offset), [1, 2])
    assert [(n, s) for _, n, s in pids] == [(1, 11), (1, 12)]
    assert all(pid != os.getpid() for pid, _, _ in pids)


def test_map_seeds_stays_in_this_process_with_several_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert map_seeds(lambda s: os.getpid(), [1, 2]) == [os.getpid()] * 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("kwargs", [{"device": "meta"}, {"processes": 1}])
def test_map_seeds_runs_in_turn_here_when_it_must(kwargs):
    assert map_seeds(lambda s: (os.getpid(), s), [1, 2], **kwargs) == [(os.getpid(), 1), (os.getpid(), 2)]


def test_map_seeds_raises_a_workers_error_here(one_thread):
    def fail(seed):
        raise ValueError(f"seed {seed} went wrong")

    with pytest.raises(ValueError, match="seed 2 went wrong"):
        map_seeds(lambda s: s if s == 1 else fail(s), [1, 2])


@pytest.mark.parametrize("call, exc, message", [
    (lambda: map_seeds(3, [1, 2]), TypeError, "map_seeds: fn must be a function of the seed, got"),
    (lambda: map_seeds(_short_run, "12"), TypeError, "map_seeds: seeds must be a list of ints"),
    (lambda: map_seeds(_short_run, [1, 2.5]), TypeError, r"map_seeds: seeds must be ints, got \[1, 2.5\]"),
    (lambda: map_seeds(_short_run, [1, 2], processes=0), ValueError, "map_seeds: processes"),
])
def test_map_seeds_refuses_bad_input(call, exc, message):
    with pytest.raises(exc, match=message):
        call()

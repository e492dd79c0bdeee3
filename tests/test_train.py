"""attnlib.train.train: the early stop (``stop``) ends the run where it says, and only there."""

from __future__ import annotations

import pytest
import torch

import attnlib
from attnlib.train import get_batch, train


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

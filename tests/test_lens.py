"""attnlib.lens: the residual stream after every stage and the logit lens, against the decoder's
own forward pass written out by hand (chapter 9's), with heads switched off and with
cross-attention."""

from __future__ import annotations

import pytest
import torch

import attnlib
from attnlib.hooks import ablate_heads
from attnlib.lens import logit_lens, residual_stages, stage_names

CONFIG = attnlib.TINY.replace(vocab_size=20, context_len=12, n_layers=3)


def _model(config=CONFIG, seed=0):
    torch.manual_seed(seed)
    m = attnlib.Decoder(config).eval()
    with torch.no_grad():  # larger than GPT-2's init, so that every stage writes something visible
        for p in m.parameters():
            if p.ndim >= 2:
                p.mul_(8)
    return m


def _by_hand(model, ids):
    """Chapter 9's forward pass: the stream after the embedding and after every sub-layer."""
    x = model.embed(ids)
    out = [x]
    for block in model.blocks:
        x = x + block.attn(block.ln_1(x), is_causal=True)
        out.append(x)
        x = x + block.mlp(block.ln_2(x))
        out.append(x)
    return out


def test_stages_are_the_forward_pass_and_the_last_lens_is_the_output():
    model = _model()
    ids = torch.randint(0, CONFIG.vocab_size, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        stages = residual_stages(model, ids)
        lensed = logit_lens(model, ids)
        logits, _ = model(ids)
        want = _by_hand(model, ids)
    names = ["embedding", "attention 0", "MLP 0", "attention 1", "MLP 1", "attention 2", "MLP 2"]
    assert list(stages) == list(lensed) == stage_names(model) == names
    for name, x in zip(names, want, strict=True):
        torch.testing.assert_close(stages[name], x, msg=name)
        torch.testing.assert_close(lensed[name], model.unembed(model.ln_f(x)), msg=name)
    assert torch.equal(lensed["MLP 2"], logits)
    # the stages differ from each other: the test could fail
    assert all((lensed[a] - lensed[b]).abs().max() > 1e-3 for a, b in zip(names[:-1], names[1:], strict=True))


def test_switched_off_heads_show_in_the_stages_after_them():
    model = _model()
    ids = torch.tensor([[1, 5, 7, 2, 9, 3]])
    with torch.no_grad():
        base = logit_lens(model, ids)
        with ablate_heads(model, {"blocks.1.attn": [0, 2]}):
            off = logit_lens(model, ids)
            logits_off, _ = model(ids)
    for name in ("embedding", "attention 0", "MLP 0"):
        assert torch.equal(base[name], off[name]), name
    for name in ("attention 1", "MLP 1", "attention 2", "MLP 2"):
        assert (base[name] - off[name]).abs().max() > 1e-3, name
    assert torch.equal(off["MLP 2"], logits_off)


def test_cross_attention_adds_a_stage_per_block():
    config = CONFIG.replace(n_layers=2, cross_attention=True)
    model = _model(config)
    context = torch.randn(1, 4, config.d_model, generator=torch.Generator().manual_seed(2))
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    with torch.no_grad():
        stages = residual_stages(model, ids, context=context)
        logits, _ = model(ids, context=context)
        x = model.embed(ids)
        b = model.blocks[0]
        after_attn = x + b.attn(b.ln_1(x), is_causal=True)
        after_cross = after_attn + b.cross_attn(b.ln_c(after_attn), context=context)
    assert list(stages) == ["embedding", "attention 0", "cross-attention 0", "MLP 0", "attention 1",
                            "cross-attention 1", "MLP 1"]
    torch.testing.assert_close(stages["attention 0"], after_attn)
    torch.testing.assert_close(stages["cross-attention 0"], after_cross)
    torch.testing.assert_close(model.unembed(model.ln_f(stages["MLP 1"])), logits)


def test_the_model_is_left_as_it_was():
    model = _model()
    ids = torch.tensor([[1, 2, 3]])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        logit_lens(model, ids)
        first, _ = model(ids)
    assert all(not m._forward_pre_hooks for m in model.modules())  # no hook left behind
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError):  # the model's own check of its input still runs, and the hooks go
        logit_lens(model, torch.tensor([[1, 99]]))
    assert all(not m._forward_pre_hooks for m in model.modules())
    with torch.no_grad():
        assert torch.equal(model(ids)[0], first)


@pytest.mark.parametrize("fn", [residual_stages, logit_lens])
def test_errors_name_the_function(fn):
    with pytest.raises(TypeError, match=rf"^{fn.__name__}: model must be an attnlib.Decoder .*got a Linear"):
        fn(torch.nn.Linear(2, 2), torch.tensor([[0]]))
    with pytest.raises(TypeError, match=r"^stage_names: model must be an attnlib.Decoder"):
        stage_names(attnlib.Encoder(CONFIG))

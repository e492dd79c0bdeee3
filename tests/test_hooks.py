"""attnlib.hooks: record_patterns against a forward pass run by hand, block by block, with
MultiHeadAttention(return_weights=True); layer_stack; ablate_heads against a hand-made ablation."""

from __future__ import annotations

import copy

import pytest
import torch

from attnlib import (
    Decoder,
    DecoderBlock,
    DecoderConfig,
    Encoder,
    MultiHeadAttention,
    ablate_heads,
    layer_stack,
    record_patterns,
)
from attnlib.hooks import attention_modules

CFG = DecoderConfig(vocab_size=13, context_len=10, d_model=16, n_layers=3, n_heads=4)


def tokens(B=2, T=7, seed=0):
    return torch.randint(0, CFG.vocab_size, (B, T), generator=torch.Generator().manual_seed(seed))


def model(cfg=CFG, seed=0, cls=Decoder):
    torch.manual_seed(seed)
    return cls(cfg).eval()


def test_attention_modules_names():
    m = model(CFG.replace(cross_attention=True, n_layers=2))
    assert list(attention_modules(m)) == ["blocks.0.attn", "blocks.0.cross_attn", "blocks.1.attn",
                                          "blocks.1.cross_attn"]


def by_hand(m, toks, context=None):
    """The model's forward pass written out, block by block, keeping each attention's pattern from
    MultiHeadAttention(return_weights=True): (output, {module name: pattern})."""
    x, found = m.embed(toks), {}
    for i, b in enumerate(m.blocks):
        a, found[f"blocks.{i}.attn"] = b.attn(b.ln_1(x), is_causal=b.is_causal, return_weights=True)
        x = x + a
        if b.cross_attn is not None:
            c, found[f"blocks.{i}.cross_attn"] = b.cross_attn(b.ln_c(x), context=context, return_weights=True)
            x = x + c
        x = x + b.mlp(b.ln_2(x))
    x = m.ln_f(x)
    return (m.unembed(x) if hasattr(m, "unembed") else x), found


def test_record_patterns_equals_the_patterns_of_a_forward_by_hand():
    m, toks = model(), tokens()
    logits_h, weights = by_hand(m, toks)
    with record_patterns(m) as pats:
        logits, _ = m(toks)
    assert list(pats) == [f"blocks.{i}.attn" for i in range(CFG.n_layers)]
    for name, w in weights.items():
        assert torch.equal(pats[name], w)
        assert pats[name].shape == (2, CFG.n_heads, 7, 7)
    assert torch.equal(logits, logits_h)  # the same (explicit) computation
    torch.testing.assert_close(logits, m(toks)[0], atol=1e-5, rtol=1e-5)  # and the fast path agrees
    stacked = layer_stack(pats)
    assert stacked.shape == (CFG.n_layers, 2, CFG.n_heads, 7, 7)
    assert all(torch.equal(stacked[i], weights[f"blocks.{i}.attn"]) for i in range(CFG.n_layers))


def test_record_patterns_cross_attention_and_encoder():
    cfg = CFG.replace(cross_attention=True, n_layers=2)
    dec, enc = model(cfg), model(CFG.replace(n_layers=2), cls=Encoder)
    src, tgt = tokens(T=9, seed=1), tokens(T=5, seed=2)
    _, enc_w = by_hand(enc, src)
    with record_patterns(enc) as enc_pats:
        ctx = enc(src)
    _, w = by_hand(dec, tgt, ctx)
    with record_patterns(dec) as pats:
        dec(tgt, context=ctx)
    assert pats.keys() == w.keys() and enc_pats.keys() == enc_w.keys()
    assert all(torch.equal(pats[n], w[n]) for n in w)
    assert all(torch.equal(enc_pats[n], enc_w[n]) for n in enc_w)
    assert (pats["blocks.0.attn"].triu(1) == 0).all() and (enc_pats["blocks.0.attn"].triu(1) > 0).any()
    torch.testing.assert_close(layer_stack(pats, "cross_attn"),
                               torch.stack([w["blocks.0.cross_attn"], w["blocks.1.cross_attn"]]))


def test_layer_stack_bad_input():
    with pytest.raises(TypeError, match=r"layer_stack: patterns must be the dict that record_patterns yields, got a list"):
        layer_stack([torch.ones(2, 2)])
    p = {"blocks.0.attn": torch.ones(1, 2, 3, 3), "blocks.2.attn": torch.ones(1, 2, 3, 3)}
    with pytest.raises(ValueError, match=r"layer_stack: layer 1 is missing \(blocks.1.attn\)"):
        layer_stack(p)
    with pytest.raises(ValueError, match=r"layer_stack: no pattern named blocks.<layer>.cross_attn; the patterns"):
        layer_stack(p, "cross_attn")
    with pytest.raises(ValueError, match=r"no pattern named decoder.blocks.<layer>.attn"):
        layer_stack(p, prefix="decoder.")
    with pytest.raises(TypeError, match=r"layer_stack: kind must be a str, got 0$"):
        layer_stack(p, 0)
    p["blocks.1.attn"] = torch.ones(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"layer_stack: the layers' patterns differ in shape"):
        layer_stack(p)


@pytest.mark.parametrize("who,call", [
    ("Decoder.forward", lambda: model()(tokens(), return_weights=True)),
    ("DecoderBlock.forward", lambda: DecoderBlock(CFG)(torch.zeros(1, 3, 16), return_weights=True)),
    ("Encoder.forward", lambda: model(cls=Encoder)(tokens(), return_weights=True)),
], ids=["decoder", "block", "encoder"])
def test_models_refuse_return_weights_and_say_what_to_use(who, call):
    with pytest.raises(TypeError, match=rf"{who}: return_weights is not an argument of models and blocks.*"
                                        r"attnlib.record_patterns\("):
        call()


def test_blocks_refuse_other_unknown_keywords():
    with pytest.raises(TypeError, match=r"DecoderBlock.forward: got an unexpected keyword argument 'causal'"):
        DecoderBlock(CFG)(torch.zeros(1, 3, 16), causal=True)
    with pytest.raises(TypeError, match=r"Encoder.forward: got an unexpected keyword argument 'context'"):
        model(cls=Encoder)(tokens(), context=None)


def test_record_patterns_on_a_single_module_and_names_filter():
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 5, 16)
    y_w, w = mha(x, is_causal=True, return_weights=True)
    with record_patterns(mha) as pats:
        y = mha(x, is_causal=True)
    assert list(pats) == [""] and torch.equal(pats[""], w) and torch.equal(y, y_w)
    m = model()
    with record_patterns(m, ["blocks.2.attn"]) as pats:
        m(tokens())
    assert list(pats) == ["blocks.2.attn"]


def test_record_patterns_detaches_and_restores():
    m, toks = model(), tokens()
    with record_patterns(m) as pats:
        m(toks)
    assert not pats["blocks.0.attn"].requires_grad
    with record_patterns(m, detach=False) as pats:
        m(toks)
    assert pats["blocks.0.attn"].requires_grad
    assert all(a._pattern_sink is None for a in attention_modules(m).values())
    with pytest.raises(RuntimeError, match="inside"):
        with record_patterns(m):
            raise RuntimeError("inside")
    assert all(a._pattern_sink is None for a in attention_modules(m).values())
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with record_patterns(m):
        m(toks)
    assert m.state_dict().keys() == before.keys()


def test_record_patterns_during_generate_with_cache_sees_the_last_step():
    m, toks = model(), tokens(T=3)
    with record_patterns(m) as pats:
        m.generate(toks, 2, temperature=0)
    assert pats["blocks.0.attn"].shape == (2, CFG.n_heads, 1, 4)  # the last new token over 4 keys


def _manual_ablation(m, heads):
    """Zero the ablated heads' columns of W_O (out_proj.weight) in a copy of the model."""
    m2 = copy.deepcopy(m)
    mods = dict(m2.named_modules())
    with torch.no_grad():
        for name, hs in heads.items():
            mha = mods[name]
            for h in hs:
                mha.out_proj.weight[:, h * mha.d_head:(h + 1) * mha.d_head] = 0.0
    return m2


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("heads", [{"blocks.1.attn": [0, 2]}, {"blocks.0.attn": [3], "blocks.2.attn": [0, 1, 2, 3]},
                                   {"blocks.0.attn": []}])
def test_ablate_heads_equals_zeroing_w_o_columns(heads, bias):
    m, toks = model(CFG.replace(bias=bias)), tokens()
    expected, _ = _manual_ablation(m, heads)(toks)
    plain, _ = m(toks)
    with ablate_heads(m, heads):
        got, _ = m(toks)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    if any(heads.values()):
        assert (got - plain).abs().amax() > 1e-4, "an ablation must change the output"
    torch.testing.assert_close(m(toks)[0], plain, atol=0, rtol=0)  # restored on exit


def test_ablating_every_head_of_a_block_removes_the_attention_sublayer():
    blk = DecoderBlock(DecoderConfig(d_model=16, n_heads=4)).eval()
    x = torch.randn(2, 5, 16)
    with ablate_heads(blk, {"attn": [0, 1, 2, 3]}):
        y = blk(x)
    torch.testing.assert_close(y, x + blk.mlp(blk.ln_2(x)))


def test_ablate_and_record_together():
    m, toks = model(), tokens()
    with record_patterns(m) as plain:
        m(toks)
    with ablate_heads(m, {"blocks.0.attn": [1]}), record_patterns(m) as pats:
        m(toks)
    assert torch.equal(pats["blocks.0.attn"], plain["blocks.0.attn"])  # layer 0's pattern is upstream
    assert not torch.equal(pats["blocks.1.attn"], plain["blocks.1.attn"])  # later layers see the change


def test_bad_arguments():
    m = model()
    with pytest.raises(TypeError, match=r"record_patterns: model must be a torch.nn.Module, got a list"):
        with record_patterns([m]):
            pass
    with pytest.raises(ValueError, match=r"record_patterns: model \(Linear\) contains no MultiHeadAttention"):
        with record_patterns(torch.nn.Linear(2, 2)):
            pass
    with pytest.raises(ValueError, match=r"ablate_heads: no attention module named 'blocks.9.attn'; the model has"):
        with ablate_heads(m, {"blocks.9.attn": [0]}):
            pass
    with pytest.raises(ValueError, match=r"ablate_heads: head 4 of 'blocks.0.attn' does not exist; its heads are 0 .. 3"):
        with ablate_heads(m, {"blocks.0.attn": [0, 4]}):
            pass
    with pytest.raises(TypeError, match=r"ablate_heads: the heads of 'blocks.0.attn' must be a list of ints, got 1"):
        with ablate_heads(m, {"blocks.0.attn": 1}):
            pass
    with pytest.raises(TypeError, match=r"ablate_heads: heads must be a dict of module name -> list of heads"):
        with ablate_heads(m, ["blocks.0.attn"]):
            pass
    assert not m.blocks[0].attn.out_proj._forward_pre_hooks  # nothing left behind by a failed call

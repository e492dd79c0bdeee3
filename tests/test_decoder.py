"""MLP, DecoderBlock, Encoder, Decoder: structure, causality, positions, KV cache, generation, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnlib import (
    MLP,
    TINY,
    Decoder,
    DecoderBlock,
    DecoderConfig,
    Encoder,
    KVCache,
    padding_mask,
    record_patterns,
)
from attnlib.train import get_batch, load_checkpoint, save_checkpoint, seed_everything, train

SMALL = TINY.replace(context_len=12, vocab_size=23)


def model(cfg=SMALL, seed=0, cls=Decoder):
    torch.manual_seed(seed)
    m = cls(cfg).eval()
    with torch.no_grad():  # larger weights than GPT-2's init: logits far apart, so argmax has no near-ties
        for p in m.parameters():
            if p.ndim == 2:
                p.mul_(10.0)
    return m


def tokens(B=2, T=10, vocab=SMALL.vocab_size, seed=1):
    return torch.randint(vocab, (B, T), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- MLP and block structure


def test_mlp_shape_and_gelu():
    torch.manual_seed(0)
    mlp = MLP(8)
    assert mlp.up.weight.shape == (32, 8) and mlp.down.weight.shape == (8, 32)  # d_mlp = 4 d_model
    assert MLP(8, d_mlp=5).up.weight.shape == (5, 8)
    x = torch.randn(2, 3, 8)
    y = mlp(x)
    assert y.shape == (2, 3, 8)
    hand = F.gelu(x @ mlp.up.weight.T) @ mlp.down.weight.T  # exact (erf) GELU, no biases
    torch.testing.assert_close(y, hand)
    # position-wise: each position is transformed on its own
    torch.testing.assert_close(mlp(x[:, 1:2]), y[:, 1:2])


@pytest.mark.parametrize("bias", [False, True])
def test_block_is_identity_when_outputs_are_zeroed(bias):
    torch.manual_seed(1)
    block = DecoderBlock(DecoderConfig(d_model=16, n_heads=4, bias=bias)).eval()
    x = torch.randn(2, 5, 16)
    assert not torch.allclose(block(x), x)
    with torch.no_grad():
        for lin in (block.attn.out_proj, block.mlp.down):
            lin.weight.zero_()
            if lin.bias is not None:
                lin.bias.zero_()
    torch.testing.assert_close(block(x), x)


def test_block_is_pre_layernorm_residual():
    torch.manual_seed(2)
    block = DecoderBlock(DecoderConfig(d_model=16, n_heads=4)).eval()
    x = torch.randn(2, 5, 16)
    h = x + block.attn(block.ln_1(x), is_causal=True)
    expected = h + block.mlp(block.ln_2(h))
    torch.testing.assert_close(block(x), expected)
    # the residual stream is not normalised: scaling x scales the skip path but not the LayerNorm inputs
    assert not torch.allclose(block(3 * x), 3 * block(x), atol=1e-3)


# --------------------------------------------------------------------------- causality and positions


def test_decoder_causality():
    m = model()
    toks = tokens(T=10)
    logits, _ = m(toks)
    for t in (0, 4, 9):
        changed = toks.clone()
        changed[:, t] = (changed[:, t] + 1) % SMALL.vocab_size
        new, _ = m(changed)
        torch.testing.assert_close(new[:, :t], logits[:, :t], atol=0, rtol=0)  # bit-for-bit unchanged
        assert (new[:, t:] - logits[:, t:]).abs().amax(-1).gt(1e-4).all(), (
            "the perturbed position and every later one should change"
        )


def test_decoder_attention_weights_are_causal_and_shaped():
    m = model()
    toks = tokens(T=7)
    with record_patterns(m) as w:
        logits, loss = m(toks)
    assert loss is None and logits.shape == (2, 7, SMALL.vocab_size)
    assert list(w) == [f"blocks.{i}.attn" for i in range(SMALL.n_layers)]  # no cross-attention
    for pat in w.values():
        assert pat.shape == (2, SMALL.n_heads, 7, 7)
        assert (pat.triu(1) == 0).all()
        torch.testing.assert_close(pat.sum(-1), torch.ones(2, SMALL.n_heads, 7))
    torch.testing.assert_close(logits, m(toks)[0], atol=1e-5, rtol=1e-5)  # same logits on both paths


def test_unmasked_attention_is_permutation_equivariant_but_decoder_is_not():
    m = model()
    perm = torch.tensor([3, 0, 4, 1, 2, 5])
    # the decoder has positions (and a causal mask): permuting tokens does not permute its logits
    toks = tokens(T=6)
    assert not torch.allclose(m(toks[:, perm])[0], m(toks)[0][:, perm], atol=1e-3)
    # the encoder is non-causal, so only its position embedding breaks the symmetry: zero it and
    # the whole encoder becomes permutation-equivariant
    enc = model(cls=Encoder)
    assert not torch.allclose(enc(toks[:, perm]), enc(toks)[:, perm], atol=1e-3)
    with torch.no_grad():
        enc.embed.pos.weight.zero_()
    torch.testing.assert_close(enc(toks[:, perm]), enc(toks)[:, perm], atol=1e-5, rtol=1e-5)


def test_loss_is_next_token_cross_entropy():
    m = model()
    toks = tokens(T=8)
    targets = tokens(T=8, seed=2)
    targets[0, :3] = -100  # ignored positions
    logits, loss = m(toks, targets)
    keep = targets != -100
    expected = F.cross_entropy(logits[keep], targets[keep])
    torch.testing.assert_close(loss, expected)


# --------------------------------------------------------------------------- KV cache and generation


def test_kv_cache_step_by_step_equals_full_forward():
    m = model()
    toks = tokens(T=SMALL.context_len)
    full, _ = m(toks)
    caches = [KVCache() for _ in m.blocks]
    out = [m(toks[:, :3], kv_cache=caches)[0]]  # a 3-token prompt, then one token at a time
    for t in range(3, SMALL.context_len):
        out.append(m(toks[:, t:t + 1], kv_cache=caches)[0])
    assert all(len(c) == SMALL.context_len for c in caches)
    torch.testing.assert_close(torch.cat(out, dim=1), full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("prompt_len,new", [(3, 6), (5, 20), (15, 8), (12, 1), (11, 3)],
                         ids=["short", "past-context", "prompt-longer-than-context", "full-prompt",
                              "fills-then-slides"])
def test_generate_with_cache_equals_without_greedy(prompt_len, new):
    m = model()
    prompt = tokens(T=prompt_len)
    a = m.generate(prompt, new, temperature=0, kv_cache=True)
    b = m.generate(prompt, new, temperature=0, kv_cache=False)
    assert a.shape == (2, prompt_len + new)
    assert torch.equal(a[:, :prompt_len], prompt)
    assert torch.equal(a, b)
    # greedy really is the argmax of the full (cropped) forward, one step at a time
    seq = prompt
    for _ in range(new):
        logits, _ = m(seq[:, -SMALL.context_len:])
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(a, seq)


@pytest.mark.parametrize("prompt_len,new", [(3, 6), (15, 16)], ids=["short", "past-context"])
def test_generate_with_cache_equals_without_sampling(prompt_len, new):
    m = model()
    prompt = tokens(T=prompt_len)
    a = m.generate(prompt, new, temperature=0.8, top_k=5, generator=torch.Generator().manual_seed(3))
    b = m.generate(prompt, new, temperature=0.8, top_k=5, kv_cache=False,
                   generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    c = m.generate(prompt, new, temperature=0.8, top_k=5, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(a, c), "a different seed should sample something else"


def test_generate_top_k_one_is_greedy_and_restores_training_mode():
    m = model().train()
    prompt = tokens(T=4)
    a = m.generate(prompt, 5, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, m.generate(prompt, 5, temperature=0))
    assert m.training, "generate must restore the training mode it found"
    with pytest.raises(ValueError, match=r"temperature must be a finite number >= 0.0, got -1"):
        m.generate(prompt, 1, temperature=-1)
    with pytest.raises(ValueError, match=r"top_k must be a positive int or None, got 0"):
        m.generate(prompt, 1, top_k=0)


# --------------------------------------------------------------------------- encoder and cross-attention


def test_encoder_is_not_causal_and_respects_padding():
    enc = model(cls=Encoder)
    toks = tokens(T=8)
    out = enc(toks)
    assert out.shape == (2, 8, SMALL.d_model)
    changed = toks.clone()
    changed[:, 6] = (changed[:, 6] + 1) % SMALL.vocab_size
    assert (enc(changed)[:, :6] - out[:, :6]).abs().amax() > 1e-3, "earlier positions should see later ones"
    lengths = torch.tensor([5, 8])
    mask = padding_mask(lengths, 8)
    out_m = enc(toks, mask=mask)
    changed = toks.clone()
    changed[0, 5:] = (changed[0, 5:] + 1) % SMALL.vocab_size  # only padding of sequence 0 changes
    out_c = enc(changed, mask=mask)
    torch.testing.assert_close(out_c[0, :5], out_m[0, :5], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out_c[1], out_m[1])
    with record_patterns(enc) as ws:
        enc(toks, mask=mask)
    assert len(ws) == SMALL.n_layers and (ws["blocks.0.attn"][0, :, :, 5:] == 0).all()


def test_cross_attention_uses_context_and_respects_context_mask():
    cfg = SMALL.replace(cross_attention=True)
    dec = model(cfg)
    toks = tokens(T=6)
    ctx = torch.randn(2, 9, cfg.d_model, generator=torch.Generator().manual_seed(5))
    logits, _ = dec(toks, context=ctx)
    ctx2 = ctx.clone()
    ctx2[:, 7] += 1.0
    assert (dec(toks, context=ctx2)[0] - logits).abs().amax() > 1e-3, "changing the context must matter"
    cmask = padding_mask(torch.tensor([7, 7]), 9)  # context positions 7, 8 are padding
    with record_patterns(dec) as w:
        masked, _ = dec(toks, context=ctx, context_mask=cmask)
    torch.testing.assert_close(dec(toks, context=ctx2, context_mask=cmask)[0], masked)
    cross = w["blocks.0.cross_attn"]
    assert cross.shape == (2, cfg.n_heads, 6, 9) and (cross[..., 7:] == 0).all()
    # cross-attention is not causal over the context, and generation with a cache still matches
    a = dec.generate(toks[:, :3], 12, temperature=0, context=ctx, context_mask=cmask)
    b = dec.generate(toks[:, :3], 12, temperature=0, context=ctx, context_mask=cmask, kv_cache=False)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"config.cross_attention is True, so every block has cross-attention; pass"):
        dec(toks)


# --------------------------------------------------------------------------- bad input


def test_bad_config():
    with pytest.raises(ValueError, match=r"d_model=30 is not divisible by n_heads=4; choose n_heads dividing"):
        DecoderConfig(d_model=30, n_heads=4)
    DecoderConfig(d_model=30, n_heads=4, d_head=8)  # fine with an explicit d_head
    with pytest.raises(ValueError, match=r"context_len must be a positive int, got 0"):
        TINY.replace(context_len=0)


def test_bad_tokens():
    m = model()
    L = SMALL.context_len
    with pytest.raises(ValueError, match=rf"sequence of length {L + 1} is longer than context_len={L}; crop"):
        m(tokens(T=L + 1))
    with pytest.raises(TypeError, match=r"tokens must be an integer \(long\) tensor, got torch.float32"):
        m(torch.zeros(1, 3))
    with pytest.raises(TypeError, match=r"tokens must be an integer \(long\) tensor, got list"):
        m([[1, 2]])
    with pytest.raises(ValueError, match=r"tokens must have shape \(batch, T\), got \(5,\)"):
        m(torch.zeros(5, dtype=torch.long))
    caches = [KVCache() for _ in m.blocks]
    m(tokens(T=L), kv_cache=caches)
    with pytest.raises(ValueError, match=rf"sequence of length {L + 1} is longer than context_len"):
        m(tokens(T=1), kv_cache=caches)  # a full cache has no room for another position
    enc = model(cls=Encoder)
    with pytest.raises(ValueError, match=r"Encoder: sequence of length 13 is longer than context_len=12"):
        enc(tokens(T=13))


# --------------------------------------------------------------------------- training and checkpoints


def test_training_reduces_loss_and_checkpoint_round_trips(tmp_path):
    gen = seed_everything(0)
    cfg = TINY.replace(vocab_size=8, context_len=16, n_layers=1, d_model=32)
    dec = Decoder(cfg)
    data = torch.arange(400) % 8  # a periodic stream: easy to learn
    hist = train(dec, lambda: get_batch(data, 8, cfg.context_len, generator=gen), 30, lr=1e-2,
                 progress=False)
    assert len(hist.train_loss) == 30
    assert hist.train_loss[-1] < 0.5 * hist.train_loss[0]
    path = tmp_path / "ckpt.pt"
    save_checkpoint(dec, path)
    again = load_checkpoint(path)
    assert again.config == cfg
    x = data[:16][None]
    torch.testing.assert_close(again(x)[0], dec(x)[0])

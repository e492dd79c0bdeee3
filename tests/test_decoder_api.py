"""The model API of attnlib 0.2: blocks built from the config, keyword-only masks, one spelling for
is_causal and kv_cache (the old names warn), and a padding mask for batched prompts in Decoder."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from torch import nn

import attnlib
from attnlib import (
    Decoder,
    DecoderBlock,
    DecoderConfig,
    Encoder,
    KVCache,
    MultiHeadAttention,
    record_patterns,
)
from attnlib import decoder as D

CFG = DecoderConfig(vocab_size=13, context_len=10, d_model=16, n_layers=2, n_heads=4)
CONFIGS = {
    "plain": CFG,
    "gqa-bias-mlp": CFG.replace(n_kv_heads=2, bias=True, d_mlp=24, d_head=3),
    "dropout": CFG.replace(dropout=0.1),
}


def seeded(cls, *args, seed=0, **kwargs):
    torch.manual_seed(seed)
    return cls(*args, **kwargs)


def same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- blocks from the config


class OldDecoder(nn.Module):
    """Decoder.__init__ as it was before blocks took the config (six ints per block)."""

    def __init__(self, c: DecoderConfig):
        super().__init__()
        self.config = c
        self.embed = D._Embed(c, "Decoder")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self.blocks = nn.ModuleList(
                DecoderBlock(c.d_model, c.n_heads, c.d_head, c.d_mlp, c.dropout, c.bias,
                             cross_attention=c.cross_attention, causal=True, n_kv_heads=c.n_kv_heads)
                for _ in range(c.n_layers))
        self.ln_f = nn.LayerNorm(c.d_model, bias=c.bias)
        self.unembed = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_embeddings:
            self.unembed.weight = self.embed.tok.weight
        D._init_weights(self, c.n_layers)


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_seeded_decoder_weights_are_unchanged(name, cross):
    cfg = CONFIGS[name].replace(cross_attention=cross)
    new = seeded(Decoder, cfg)
    after_new = torch.rand(3)
    old = seeded(OldDecoder, cfg)
    after_old = torch.rand(3)
    assert same_state(new, old) and torch.equal(after_new, after_old)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_block_from_config_equals_the_int_form(name):
    c = CONFIGS[name]
    new = seeded(DecoderBlock, c, is_causal=False, cross_attention=True)
    with pytest.warns(DeprecationWarning, match=r"DecoderBlock\(d_model, n_heads, \.\.\.\) is deprecated; "
                                                 r"pass a DecoderConfig"):
        old = seeded(DecoderBlock, c.d_model, c.n_heads, c.d_head, c.d_mlp, c.dropout, c.bias, True, False,
                     n_kv_heads=c.n_kv_heads)
    assert same_state(new, old)
    assert (new.is_causal, old.is_causal) == (False, False)
    assert new.cross_attn is not None and old.cross_attn is not None
    assert new.attn.n_kv_heads == c.kv_heads and new.mlp.up.out_features == c.mlp_dim


def test_block_defaults_follow_the_config():
    blk = DecoderBlock(CFG)
    assert blk.is_causal and blk.cross_attn is None and blk.config is CFG
    assert DecoderBlock(CFG.replace(cross_attention=True)).cross_attn is not None
    assert DecoderBlock(CFG.replace(cross_attention=True), cross_attention=False).cross_attn is None
    assert all(not b.is_causal for b in Encoder(CFG).blocks)
    assert all(b.is_causal for b in Decoder(CFG).blocks)


def test_chapter_11_int_form_still_works_with_a_warning():
    with pytest.warns(DeprecationWarning, match=r"DecoderConfig") as rec:
        blk = seeded(DecoderBlock, 32, n_heads=4)
    assert rec[0].filename == __file__  # attributed to the caller, where Python shows it by default
    want = seeded(DecoderBlock, DecoderConfig(d_model=32, n_heads=4))
    assert same_state(blk, want)
    x = torch.randn(1, 3, 32)
    torch.testing.assert_close(blk(x), want(x))


def test_causal_keyword_and_attribute_are_deprecated():
    with pytest.warns(DeprecationWarning, match=r"DecoderBlock: causal= is deprecated; use is_causal= instead"):
        blk = DecoderBlock(CFG, causal=False)
    assert blk.is_causal is False
    with pytest.warns(DeprecationWarning, match=r"DecoderBlock: \.causal is deprecated; use \.is_causal instead"):
        assert blk.causal is False
    with pytest.warns(DeprecationWarning) as rec:
        assert DecoderBlock(16, 4, causal=False).is_causal is False
    assert sorted(str(w.message).split(" is deprecated")[0] for w in rec) == [
        "DecoderBlock(d_model, n_heads, ...)", "DecoderBlock: causal="]


@pytest.mark.parametrize("make,exc,msg", [
    (lambda: DecoderBlock("16"), TypeError, r"DecoderBlock: config must be a DecoderConfig, got '16'"),
    (lambda: DecoderBlock(True), TypeError, r"DecoderBlock: config must be a DecoderConfig, got True"),
    (lambda: DecoderBlock(CFG, 4), TypeError,
     r"DecoderBlock: with a DecoderConfig, is_causal and cross_attention are keyword-only; got 1 more"),
    (lambda: DecoderBlock(CFG, n_heads=4), TypeError, r"DecoderBlock: got an unexpected keyword argument 'n_heads'"),
    (lambda: DecoderBlock(CFG, is_causal=1), TypeError, r"DecoderBlock: is_causal must be True or False, got 1"),
    (lambda: DecoderBlock(CFG, cross_attention="no"), TypeError,
     r"DecoderBlock: cross_attention must be True or False, got 'no'"),
    (lambda: DecoderBlock(CFG, is_causal=False, causal=True), TypeError,
     r"DecoderBlock: got is_causal=False and its deprecated name causal=True; give is_causal only"),
    (lambda: DecoderBlock(16, 4, colour=3), TypeError, r"DecoderBlock: got an unexpected keyword argument 'colour'"),
    (lambda: DecoderBlock(16), TypeError, r"DecoderBlock: missing a required argument: 'n_heads'"),
    (lambda: DecoderBlock(16, 4, d_mlp=0), ValueError, r"DecoderConfig: d_mlp must be a positive int or None, got 0"),
], ids=["str", "bool", "extra-positional", "old-keyword-with-config", "is-causal-int", "cross-str",
        "both-names", "unknown-keyword", "int-form-missing-heads", "int-form-bad-width"])
def test_bad_block_arguments(make, exc, msg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(exc, match=msg):
            make()


# --------------------------------------------------------------------------- keyword-only masks


@pytest.mark.parametrize("fn,names", [
    (MultiHeadAttention.forward, ["mask", "is_causal", "return_weights", "kv_cache"]),
    (DecoderBlock.forward, ["mask", "context_mask", "kv_cache"]),
    (Encoder.forward, ["mask"]),
    (Decoder.forward, ["mask", "context", "context_mask", "kv_cache"]),
    (Decoder.generate, ["kv_cache", "mask", "context", "context_mask", "generator"]),
], ids=["mha", "block", "encoder", "decoder", "generate"])
def test_masks_and_flags_are_keyword_only(fn, names):
    params = inspect.signature(fn).parameters
    assert all(params[n].kind is inspect.Parameter.KEYWORD_ONLY for n in names)


def test_a_positional_mask_is_refused():
    x, m = torch.randn(1, 3, 16), torch.ones(3, 3, dtype=torch.bool)
    toks = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(TypeError):
        MultiHeadAttention(16, 4)(x, None, m)
    with pytest.raises(TypeError):
        DecoderBlock(CFG)(x, None, m)
    with pytest.raises(TypeError):
        Encoder(CFG)(toks, m)
    with pytest.raises(TypeError):
        Decoder(CFG)(toks, None, m)


# --------------------------------------------------------------------------- one spelling for the cache


def test_kv_caches_keyword_is_deprecated_and_means_kv_cache():
    m = seeded(Decoder, CFG).eval()
    toks = torch.randint(0, 13, (2, 6), generator=torch.Generator().manual_seed(0))
    new, old = [KVCache() for _ in m.blocks], [KVCache() for _ in m.blocks]
    a, _ = m(toks, kv_cache=new)
    with pytest.warns(DeprecationWarning, match=r"Decoder: kv_caches= is deprecated; use kv_cache= instead") as rec:
        b, _ = m(toks, kv_caches=old)
    assert rec[0].filename == __file__  # through nn.Module.__call__, still the caller's line
    assert torch.equal(a, b) and all(torch.equal(x.k, y.k) for x, y in zip(new, old, strict=True))


def test_use_cache_keyword_is_deprecated_and_means_kv_cache():
    m = seeded(Decoder, CFG).eval()
    toks = torch.randint(0, 13, (2, 4), generator=torch.Generator().manual_seed(1))
    with pytest.warns(DeprecationWarning, match=r"Decoder.generate: use_cache= is deprecated; use kv_cache=") as rec:
        a = m.generate(toks, 9, temperature=0, use_cache=False)
    assert rec[0].filename == __file__
    assert torch.equal(a, m.generate(toks, 9, temperature=0, kv_cache=False))
    assert torch.equal(a, m.generate(toks, 9, temperature=0))


@pytest.mark.parametrize("call,msg", [
    (lambda m, t: m(t, kv_cache=[KVCache(), KVCache()], kv_caches=[KVCache(), KVCache()]),
     r"Decoder: got kv_cache=\[.*\] and its deprecated name kv_caches="),
    (lambda m, t: m.generate(t, 2, kv_cache=False, use_cache=True),
     r"Decoder.generate: got kv_cache=False and its deprecated name use_cache=True; give kv_cache only"),
    (lambda m, t: m(t, caches=[]), r"Decoder: got an unexpected keyword argument 'caches'"),
    (lambda m, t: m.generate(t, 2, cache=True), r"Decoder.generate: got an unexpected keyword argument 'cache'"),
    (lambda m, t: m.generate(t, 2, kv_cache=1), r"Decoder.generate: kv_cache must be True or False, got 1"),
], ids=["forward-both", "generate-both", "forward-unknown", "generate-unknown", "generate-not-bool"])
def test_bad_cache_keywords(call, msg):
    m = Decoder(CFG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(TypeError, match=msg):
            call(m, torch.zeros(1, 2, dtype=torch.long))


# --------------------------------------------------------------------------- padding mask


LENGTHS = [5, 3, 1, 4]
PAD = 7  # any valid id: the padded positions must not matter


def prompts(lengths=LENGTHS, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 13, (n,), generator=g) for n in lengths]


def left_padded(ps, pad=PAD, T=None):
    T = T or max(len(p) for p in ps)
    toks = torch.full((len(ps), T), pad, dtype=torch.long)
    mask = torch.zeros(len(ps), T, dtype=torch.bool)
    for b, p in enumerate(ps):
        toks[b, T - len(p):], mask[b, T - len(p):] = p, True
    return toks, mask


@pytest.mark.parametrize("name", ["plain", "gqa-bias-mlp"])
def test_padded_batch_gives_each_prompt_its_own_logits(name):
    m = seeded(Decoder, CONFIGS[name]).eval()
    ps = prompts()
    toks, mask = left_padded(ps)
    logits, _ = m(toks, mask=mask)
    for b, p in enumerate(ps):
        alone, _ = m(p[None])
        torch.testing.assert_close(logits[b, mask[b]], alone[0], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(logits).all()
    other, _ = m(torch.where(mask, toks, (toks + 5) % 13), mask=mask)  # other pad ids: same real logits
    torch.testing.assert_close(other[mask], logits[mask], atol=1e-6, rtol=1e-6)


def test_padded_keys_are_never_attended_to():
    m = seeded(Decoder, CFG).eval()
    toks, mask = left_padded(prompts())
    with record_patterns(m) as pats:
        m(toks, mask=mask)
    for w in pats.values():  # (B, H, T, T)
        assert torch.all(w.masked_select(~mask[:, None, None, :].expand_as(w)) == 0)
        real = w[mask[:, None, :, None].expand_as(w)].view(-1, toks.shape[1])
        torch.testing.assert_close(real.sum(-1), torch.ones(real.shape[0]))


def test_all_true_mask_equals_no_mask_and_right_padding_is_fine_in_forward():
    m = seeded(Decoder, CFG).eval()
    toks = torch.randint(0, 13, (3, 6), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(m(toks, mask=torch.ones(3, 6, dtype=torch.bool))[0], m(toks)[0],
                               atol=1e-6, rtol=1e-6)
    ps = prompts([6, 2, 4])
    right = torch.full((3, 6), PAD, dtype=torch.long)
    rmask = torch.zeros(3, 6, dtype=torch.bool)
    for b, p in enumerate(ps):
        right[b, :len(p)], rmask[b, :len(p)] = p, True
    logits, _ = m(right, mask=rmask)
    for b, p in enumerate(ps):
        torch.testing.assert_close(logits[b, :len(p)], m(p[None])[0][0], atol=1e-5, rtol=1e-5)


def test_padding_mask_with_targets_and_cross_attention():
    cfg = CFG.replace(cross_attention=True)
    m = seeded(Decoder, cfg).eval()
    ps = prompts()
    toks, mask = left_padded(ps)
    ctx = torch.randn(4, 3, 16, generator=torch.Generator().manual_seed(3))
    targets = torch.where(mask, toks, torch.full_like(toks, -100))  # the padding is not scored
    logits, loss = m(toks, targets, mask=mask, context=ctx)
    for b, p in enumerate(ps):
        torch.testing.assert_close(logits[b, mask[b]], m(p[None], context=ctx[b:b + 1])[0][0],
                                   atol=1e-5, rtol=1e-5)
    assert torch.isfinite(loss)


def test_padding_mask_with_the_kv_cache_step_by_step():
    m = seeded(Decoder, CFG).eval()
    toks, mask = left_padded(prompts([7, 5, 4, 6]))
    full, _ = m(toks, mask=mask)
    caches = [KVCache() for _ in m.blocks]
    steps = [m(toks[:, :4], mask=mask[:, :4], kv_cache=caches)[0]]  # every row has a real token by then
    for t in range(4, 7):
        steps.append(m(toks[:, t:t + 1], mask=mask[:, :t + 1], kv_cache=caches)[0])
    got = torch.cat(steps, dim=1)
    torch.testing.assert_close(got[mask], full[mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kv_cache", [True, False])
@pytest.mark.parametrize("new", [4, 12])  # 12: the windows slide (context_len 10)
@pytest.mark.parametrize("name", ["plain", "gqa-bias-mlp"])
def test_generate_from_padded_prompts_greedy_equals_each_alone(kv_cache, new, name):
    m = seeded(Decoder, CONFIGS[name]).eval()
    ps = prompts()
    toks, mask = left_padded(ps)
    out = m.generate(toks, new, temperature=0, mask=mask, kv_cache=kv_cache)
    assert out.shape == (4, toks.shape[1] + new) and torch.equal(out[:, :toks.shape[1]], toks)
    for b, p in enumerate(ps):
        alone = m.generate(p[None], new, temperature=0, kv_cache=kv_cache)
        assert torch.equal(out[b, toks.shape[1]:], alone[0, len(p):]), b


@pytest.mark.parametrize("kv_cache", [True, False])
@pytest.mark.parametrize("top_k", [None, 4])
def test_generate_from_padded_prompts_sampling_with_one_generator_per_row(kv_cache, top_k):
    m = seeded(Decoder, CFG).eval()
    ps = prompts()
    toks, mask = left_padded(ps)
    gens = [torch.Generator().manual_seed(10 + b) for b in range(4)]
    out = m.generate(toks, 12, temperature=1.0, top_k=top_k, mask=mask, kv_cache=kv_cache, generator=gens)
    for b, p in enumerate(ps):
        alone = m.generate(p[None], 12, temperature=1.0, top_k=top_k, kv_cache=kv_cache,
                           generator=torch.Generator().manual_seed(10 + b))
        assert torch.equal(out[b, toks.shape[1]:], alone[0, len(p):]), b


def test_generator_list_without_a_mask():
    m = seeded(Decoder, CFG).eval()
    toks = torch.randint(0, 13, (2, 3), generator=torch.Generator().manual_seed(4))
    out = m.generate(toks, 6, generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    for b in range(2):
        alone = m.generate(toks[b:b + 1], 6, generator=torch.Generator().manual_seed(b + 1))
        assert torch.equal(out[b], alone[0])


def _bad_mask_cases():
    toks, mask = left_padded(prompts())
    empty = mask.clone()
    empty[2] = False
    right = torch.ones_like(mask)
    right[1, -1] = False
    return [
        ("forward-int", lambda m: m(toks, mask=mask.long()), TypeError,
         r"Decoder: mask must be a bool tensor of shape \(4, 5\) like tokens \(True = a real token, False = "
         r"padding\), got a torch.int64 tensor of shape \(4, 5\)"),
        ("forward-list", lambda m: m(toks, mask=[[True] * 5] * 4), TypeError,
         r"Decoder: mask must be a bool tensor of shape \(4, 5\) like tokens .*got a list"),
        ("forward-shape", lambda m: m(toks, mask=mask[:, None, None, :]), ValueError,
         r"Decoder: mask must be a bool tensor of shape \(4, 5\) like tokens .*got shape \(4, 1, 1, 5\)"),
        ("forward-empty-row", lambda m: m(toks, mask=empty), ValueError,
         r"Decoder: every row of mask needs a real token \(a True\), got row 2 all False"),
        ("forward-cache-shape", lambda m: m(toks[:, :1], mask=mask[:, :1], kv_cache=_filled(m, toks[:, :3])),
         ValueError, r"Decoder: mask must be a bool tensor of shape \(4, 4\) \(the 3 cached positions and the 1 "
                     r"new ones\).*got shape \(4, 1\)"),
        ("generate-int", lambda m: m.generate(toks, 2, mask=mask.int()), TypeError,
         r"Decoder.generate: mask must be a bool tensor of shape \(4, 5\) like tokens"),
        ("generate-shape", lambda m: m.generate(toks, 2, mask=mask[:, 1:]), ValueError,
         r"Decoder.generate: mask must be a bool tensor of shape \(4, 5\) like tokens .*got shape \(4, 4\)"),
        ("generate-empty-row", lambda m: m.generate(toks, 2, mask=empty), ValueError,
         r"Decoder.generate: every row of mask needs a real token \(a True\), got row 2 all False"),
        ("generate-right-padding", lambda m: m.generate(toks, 2, mask=right), ValueError,
         r"Decoder.generate: mask must pad on the left only \(each new token follows its row's last position, "
         r"which must be a real token\), got row 1 ending in padding"),
        ("generator-length", lambda m: m.generate(toks, 2, generator=[torch.Generator()]), ValueError,
         r"Decoder.generate: generator must hold one torch.Generator per row \(4\), got 1"),
        ("generator-type", lambda m: m.generate(toks, 2, generator=[1, 2, 3, 4]), TypeError,
         r"Decoder.generate: generator must be a torch.Generator, a list of 4 \(one per row\) or None, got a list"),
        ("generator-int", lambda m: m.generate(toks, 2, generator=3), TypeError,
         r"Decoder.generate: generator must be a torch.Generator, a list of 4 \(one per row\) or None, got 3"),
    ]


def _filled(m, toks):
    caches = [KVCache() for _ in m.blocks]
    m(toks, kv_cache=caches)
    return caches


@pytest.mark.parametrize("case", _bad_mask_cases(), ids=lambda c: c[0])
def test_bad_padding_masks(case):
    _, call, exc, msg = case
    m = seeded(Decoder, CFG).train()
    with pytest.raises(exc, match=msg):
        call(m)
    assert m.training


def test_a_bad_mask_leaves_the_cache_unchanged():
    m = seeded(Decoder, CFG).eval()
    toks, mask = left_padded(prompts())
    caches = _filled(m, toks[:, :3])
    before = [(c.k, c.v) for c in caches]
    with pytest.raises(ValueError, match="mask must be"):
        m(toks[:, 3:4], mask=mask[:, :3], kv_cache=caches)
    assert all(c.k is k and c.v is v for c, (k, v) in zip(caches, before, strict=True))


def test_block_refuses_a_context_before_touching_its_cache():
    blk = DecoderBlock(CFG)
    cache = KVCache()
    with pytest.raises(ValueError, match="DecoderBlock: context .* this block has no cross-attention"):
        blk(torch.randn(1, 2, 16), torch.randn(1, 3, 16), kv_cache=cache)
    assert len(cache) == 0
    assert attnlib.DecoderBlock is DecoderBlock

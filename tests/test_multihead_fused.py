"""The fused projections of MultiHeadAttention (qkv_proj; q_proj and kv_proj for cross-attention):
equal to three separate projections and SDPA, gradients included; initialised as the separate ones
were; old state dicts (q_proj, k_proj, v_proj) load; Dropout modules exist only when p > 0."""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attnlib
from attnlib import MLP, Decoder, DecoderConfig, Encoder, MultiHeadAttention
from attnlib.train import load_checkpoint, save_checkpoint

M = sys.modules["attnlib.multihead"]
DEC = sys.modules["attnlib.decoder"]
D, H = 16, 4
PATHS = [pytest.param(False, id="fast"), pytest.param(True, id="explicit")]


def separate(m: MultiHeadAttention) -> dict[str, nn.Linear]:
    """Three independent nn.Linear holding m's W_Q, W_K, W_V rows (and biases), plus its out_proj."""
    inner, kv_inner = m.n_heads * m.d_head, m.n_kv_heads * m.d_head
    if m.cross:
        ws = [m.q_proj.weight, *m.kv_proj.weight.split([kv_inner, kv_inner])]
        bs = None if m.q_proj.bias is None else [m.q_proj.bias, *m.kv_proj.bias.split([kv_inner] * 2)]
    else:
        ws = m.qkv_proj.weight.split([inner, kv_inner, kv_inner])
        bs = None if m.qkv_proj.bias is None else m.qkv_proj.bias.split([inner, kv_inner, kv_inner])
    out = {}
    for i, name in enumerate("qkv"):
        lin = nn.Linear(ws[i].shape[1], ws[i].shape[0], bias=bs is not None, dtype=ws[i].dtype)
        with torch.no_grad():
            lin.weight.copy_(ws[i])
            if bs is not None:
                lin.bias.copy_(bs[i])
        out[name] = lin
    return out


def by_separate_projections(m, lins, x, context, is_causal):
    """The block's output computed with three separate matmuls and torch's SDPA."""
    src = x if context is None else context
    B, T_q, _ = x.shape
    q = lins["q"](x).view(B, T_q, m.n_heads, m.d_head).transpose(1, 2)
    k, v = (lins[n](src).view(B, src.shape[1], m.n_kv_heads, m.d_head).transpose(1, 2) for n in "kv")
    rep = m.n_heads // m.n_kv_heads
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    a = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    return m.out_proj(a.transpose(1, 2).reshape(B, T_q, m.n_heads * m.d_head))


CASES = [  # (built for cross-attention, d_context, called with a context)
    pytest.param(False, None, False, id="built-self-called-self"),
    pytest.param(False, None, True, id="built-self-called-with-context"),
    pytest.param(True, D, False, id="built-cross-called-self"),
    pytest.param(True, D, True, id="built-cross-called-with-context"),
    pytest.param(True, 10, True, id="built-cross-d_context-10"),
]


@pytest.mark.parametrize("explicit", PATHS)
@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("built_cross,d_context,with_context", CASES)
def test_fused_equals_three_projections_and_sdpa(built_cross, d_context, with_context, bias,
                                                 n_kv_heads, explicit):
    torch.manual_seed(0)
    m = MultiHeadAttention(D, H, bias=bias, n_kv_heads=n_kv_heads, d_context=d_context).double()
    assert m.cross is built_cross
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
    lins = separate(m)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, D, generator=g, dtype=torch.float64, requires_grad=True)
    c = (torch.randn(2, 7, d_context or D, generator=g, dtype=torch.float64, requires_grad=True)
         if with_context else None)
    causal = not with_context
    got = m(x, context=c, is_causal=causal, return_weights=explicit)
    got = got[0] if explicit else got
    want = by_separate_projections(m, lins, x, c, causal)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    # the gradients: the fused weight's are the three projections' side by side
    g_out = torch.randn(want.shape, generator=g, dtype=torch.float64)
    inputs = [x] + ([c] if c is not None else [])
    fused = m.kv_proj if built_cross else m.qkv_proj
    names = "kv" if built_cross else "qkv"
    got_grads = torch.autograd.grad(got, [*inputs, fused.weight], g_out)
    want_grads = torch.autograd.grad(want, [*inputs, *(lins[n].weight for n in names)], g_out)
    n_in = len(inputs)
    for a, b in zip(got_grads[:n_in], want_grads[:n_in], strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(got_grads[n_in], torch.cat(want_grads[n_in:]), atol=1e-12, rtol=1e-12)


def test_one_matmul_for_self_attention():
    """The self-attention block runs one input projection, not three."""
    m = MultiHeadAttention(D, H)
    calls = []
    handles = [mod.register_forward_hook(lambda mod, a, y, name=name: calls.append(name))
               for name, mod in m.named_modules() if isinstance(mod, nn.Linear)]
    m(torch.randn(1, 3, D))
    assert calls == ["qkv_proj", "out_proj"]
    for h in handles:
        h.remove()
    assert [n for n, _ in MultiHeadAttention(D, H, d_context=8).named_children()] == \
        ["q_proj", "kv_proj", "out_proj"]


# --------------------------------------------------------------------------- initialisation


@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("sizes", [[16, 16, 16], [12, 4, 4], [5, 3, 3], [6, 6]])
def test_fused_linear_draws_what_separate_linears_drew(sizes, bias):
    torch.manual_seed(3)
    fused = M._fused_linear(7, sizes, bias)
    after = torch.rand(3)
    torch.manual_seed(3)
    parts = [nn.Linear(7, n, bias=bias) for n in sizes]
    assert torch.equal(fused.weight, torch.cat([p.weight for p in parts]))
    if bias:
        assert torch.equal(fused.bias, torch.cat([p.bias for p in parts]))
    assert torch.equal(after, torch.rand(3)), "the generator must be left where separate Linears left it"
    assert type(fused) is nn.Linear and fused.weight.shape == (sum(sizes), 7)


def test_fused_linear_on_the_meta_device_allocates_nothing():
    with torch.device("meta"):
        m = MultiHeadAttention(12288, 96, d_head=128)
    assert m.qkv_proj.weight.device.type == "meta" and m.qkv_proj.weight.shape == (3 * 12288, 12288)


def test_decoder_draws_the_fused_weights_part_by_part():
    """GPT-2's normal init, drawn for W_Q, W_K and W_V rows in turn (as separate projections were):
    for sizes that are not multiples of 16, torch's normal_ draws differently for one big tensor."""
    cfg = DecoderConfig(vocab_size=11, context_len=5, d_model=10, n_layers=2, n_heads=2, d_head=3,
                        n_kv_heads=1, cross_attention=True, bias=True)
    model = Decoder(cfg)
    torch.manual_seed(4)
    DEC._init_weights(model, cfg.n_layers)
    after = torch.rand(3)
    torch.manual_seed(4)
    for name, p in model.named_parameters():
        if p.ndim < 2:
            want = torch.zeros_like(p) if name.endswith("bias") else p
        else:
            std = 0.02 / math.sqrt(2 * cfg.n_layers) if name.endswith(("out_proj.weight", "down.weight")) else 0.02
            rows = {"qkv_proj.weight": [6, 3, 3], "kv_proj.weight": [3, 3]}.get(name.split("attn.")[-1],
                                                                               [p.shape[0]])
            want = torch.cat([torch.empty(r, p.shape[1]).normal_(0.0, std) for r in rows])
        assert torch.equal(p, want), name
    assert torch.equal(after, torch.rand(3))


# --------------------------------------------------------------------------- old state dicts


def old_state(model) -> dict:
    """model's state dict as attnlib saved it before the projections were fused: q_proj, k_proj and
    v_proj in every attention module."""
    out = dict(model.state_dict())
    for name, m in model.named_modules():
        if not isinstance(m, MultiHeadAttention):
            continue
        inner, kv_inner = m.n_heads * m.d_head, m.n_kv_heads * m.d_head
        fused, names, sizes = (("kv_proj", "kv", [kv_inner] * 2) if m.cross else
                               ("qkv_proj", "qkv", [inner, kv_inner, kv_inner]))
        for kind in ("weight", "bias"):
            key = f"{name}.{fused}.{kind}"
            if key in out:
                for n, part in zip(names, out.pop(key).split(sizes), strict=True):
                    out[f"{name}.{n}_proj.{kind}"] = part.clone()
    return out


CONFIGS = {
    "tiny": attnlib.TINY,
    "bias-cross-gqa": DecoderConfig(vocab_size=13, context_len=6, d_model=12, n_layers=2, n_heads=4,
                                    n_kv_heads=2, d_head=2, bias=True, cross_attention=True),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_old_state_dicts_load_by_concatenating(name, tmp_path):
    cfg = CONFIGS[name]
    torch.manual_seed(5)
    trained = Decoder(cfg).eval()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.1 * torch.randn_like(p))  # far from the init, so a wrong load shows
    old = old_state(trained)
    assert any(k.endswith("attn.k_proj.weight") for k in old) and not any("qkv" in k for k in old)
    toks = torch.randint(0, cfg.vocab_size, (2, cfg.context_len), generator=torch.Generator().manual_seed(6))
    kw = {"context": torch.randn(2, 3, cfg.d_model)} if cfg.cross_attention else {}
    want, _ = trained(toks, **kw)

    fresh = Decoder(cfg).eval()
    fresh.load_state_dict(old)  # strict: every key used, none missing
    torch.testing.assert_close(fresh(toks, **kw)[0], want, atol=0, rtol=0)
    assert old.keys() == old_state(trained).keys(), "loading must not change the caller's dict"

    path = tmp_path / "old.pt"  # what save_checkpoint wrote before the change
    save_checkpoint(trained, path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"] = old
    torch.save(ckpt, path)
    loaded = load_checkpoint(path).eval()
    torch.testing.assert_close(loaded(toks, **kw)[0], want, atol=0, rtol=0)
    for (k, a), (_, b) in zip(loaded.state_dict().items(), trained.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_new_checkpoints_round_trip(tmp_path):
    torch.manual_seed(7)
    m = Decoder(CONFIGS["bias-cross-gqa"])
    save_checkpoint(m, tmp_path / "new.pt")
    back = load_checkpoint(tmp_path / "new.pt")
    assert back.state_dict().keys() == m.state_dict().keys()
    assert "blocks.0.attn.qkv_proj.weight" in m.state_dict()
    assert "blocks.0.cross_attn.kv_proj.weight" in m.state_dict()
    assert "blocks.0.cross_attn.q_proj.weight" in m.state_dict()


def test_old_state_dict_of_another_shape_is_reported():
    small = MultiHeadAttention(8, 2)
    old = {"q_proj.weight": torch.zeros(8, 8), "k_proj.weight": torch.zeros(8, 8),
           "v_proj.weight": torch.zeros(8, 8), "out_proj.weight": torch.zeros(8, 8)}
    with pytest.raises(RuntimeError, match=r"size mismatch for qkv_proj.weight"):
        MultiHeadAttention(16, 2).load_state_dict({**old, "out_proj.weight": torch.zeros(16, 16)})
    small.load_state_dict(old)  # the same shapes load
    assert torch.equal(small.qkv_proj.weight, torch.zeros(24, 8))


# --------------------------------------------------------------------------- dropout modules


def dropouts(model) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Dropout)]


def test_no_dropout_module_when_p_is_zero():
    for model in (Decoder(attnlib.TINY), Decoder(attnlib.TINY.replace(cross_attention=True)),
                  Encoder(attnlib.TINY), MultiHeadAttention(D, H), MLP(D)):
        assert dropouts(model) == [], type(model).__name__
        assert "Dropout" not in repr(model)
    with_p = Decoder(attnlib.TINY.replace(dropout=0.1, n_layers=1, cross_attention=True))
    assert dropouts(with_p) == ["embed.drop", "blocks.0.attn.resid_dropout",
                                "blocks.0.cross_attn.resid_dropout", "blocks.0.mlp.dropout"]
    assert all(m.p == 0.1 for m in with_p.modules() if isinstance(m, nn.Dropout))


def test_p_zero_trains_deterministically():
    torch.manual_seed(8)
    model = Decoder(attnlib.TINY)
    toks = torch.randint(0, 64, (2, 9))
    a, _ = model.train()(toks)
    b, _ = model.train()(toks)
    c, _ = model.eval()(toks)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_dropout_is_applied_when_p_is_positive_in_training_only():
    torch.manual_seed(9)
    mlp = MLP(D, dropout=0.5)
    x = torch.randn(4, 50, D)
    clean = mlp.eval()(x)
    noisy = mlp.train()(x)
    kept = noisy != 0
    assert 0.4 < kept.float().mean() < 0.6  # about half the entries dropped
    torch.testing.assert_close(noisy[kept], 2 * clean[kept])  # the others scaled by 1 / (1 - p)
    torch.manual_seed(10)
    mha = MultiHeadAttention(D, H, dropout=0.5)
    ref = MultiHeadAttention(D, H)
    ref.load_state_dict(mha.state_dict())
    torch.testing.assert_close(mha.eval()(x, is_causal=True), ref.eval()(x, is_causal=True))
    y = mha.train()(x, is_causal=True)
    assert 0.4 < (y == 0).float().mean() < 0.6  # resid_dropout zeroes whole entries of the output
    assert not torch.equal(y, mha.train()(x, is_causal=True))
    dec = Decoder(attnlib.TINY.replace(dropout=0.3))
    toks = torch.randint(0, 64, (2, 9))
    assert not torch.equal(dec.train()(toks)[0], dec.train()(toks)[0])
    assert torch.equal(dec.eval()(toks)[0], dec.eval()(toks)[0])

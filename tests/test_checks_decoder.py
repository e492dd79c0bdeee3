"""attnlib.checks.decoder: correct answers (in several styles) pass; each typical mistake gets its
own diagnosis; stubs and odd outputs give a failure, never an exception."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib import checks
from attnlib.data import adjective_mass

INF = float("inf")


def run(capsys, checker, fn):
    ok = checker(fn)
    out = capsys.readouterr().out
    assert isinstance(ok, checks.CheckResult) and out.strip(), out
    return ok, out


def passes(capsys, checker, fn):
    ok, out = run(capsys, checker, fn)
    assert ok and out.startswith("✓"), out


def fails(capsys, checker, fn, *words):
    ok, out = run(capsys, checker, fn)
    assert not ok and out.startswith("✗"), out
    for w in words:
        assert w.lower() in out.lower(), (w, out)
    return out


def stub(*args, **kwargs):
    raise NotImplementedError


def test_exported():
    for name in ("check_layernorm", "check_block", "check_block_parameters", "check_next_token_targets",
                 "check_top_k", "check_adjective_mass"):
        assert callable(getattr(checks, name))


# ---------------------------------------------------------------- layer norm


def ln_manual(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def test_layernorm_correct(capsys):
    passes(capsys, checks.check_layernorm, ln_manual)
    passes(capsys, checks.check_layernorm, lambda x, w, b, eps=1e-5: F.layer_norm(x, x.shape[-1:], w, b, eps))
    passes(capsys, checks.check_layernorm,
           lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True))
           * torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + eps) * w + b)


@pytest.mark.parametrize("fn, words", [
    (lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + eps) * w + b,
     ["unbiased"]),
    (lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True)) / torch.sqrt(
        x.var(-1, keepdim=True, unbiased=False) + eps), ["scale and shift"]),
    (lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True, unbiased=False) + eps)
     * w + b, ["inside the square root"]),
    (lambda x, w, b, eps=1e-5: x / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps) * w + b,
     ["subtract the mean"]),
    (lambda x, w, b, eps=1e-5: (x - x.mean(-2, keepdim=True)) / torch.sqrt(
        x.var(-2, keepdim=True, unbiased=False) + eps) * w + b, ["wrong axis"]),
    (lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True)) / torch.sqrt(
        x.var(-1, keepdim=True, unbiased=False) + eps) * w, ["shift"]),
    (lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True, unbiased=False) * w + b,
     ["nan", "eps"]),
])
def test_layernorm_mistakes(capsys, fn, words):
    fails(capsys, checks.check_layernorm, fn, *words)


def test_layernorm_stub_and_bad_output(capsys):
    fails(capsys, checks.check_layernorm, stub, "not implemented")
    fails(capsys, checks.check_layernorm, lambda x, w, b, eps=1e-5: None, "none")
    fails(capsys, checks.check_layernorm, lambda x, w, b: x, "signature")


# ---------------------------------------------------------------- block


def block_ok(x, block):
    x = x + block.attn(block.ln_1(x), is_causal=True)
    return x + block.mlp(block.ln_2(x))


def block_ok_mask(x, block):
    T = x.shape[1]
    h = block.ln_1(x)
    a = block.attn(h, mask=attnlib.causal_mask(T))
    x = a + x
    return x + block.mlp(block.ln_2(x))


def test_block_correct(capsys):
    passes(capsys, checks.check_block, block_ok)
    passes(capsys, checks.check_block, block_ok_mask)
    passes(capsys, checks.check_block, lambda x, block: block(x))


def _post_ln(x, b):
    h = b.ln_1(x + b.attn(x, is_causal=True))
    return b.ln_2(h + b.mlp(h))


def _no_res(x, b):
    h = b.attn(b.ln_1(x), is_causal=True)
    return h + b.mlp(b.ln_2(h))


def _mlp_first(x, b):
    h = x + b.mlp(b.ln_2(x))
    return h + b.attn(b.ln_1(h), is_causal=True)


def _not_causal(x, b):
    h = x + b.attn(b.ln_1(x))
    return h + b.mlp(b.ln_2(h))


def _parallel(x, b):
    return x + b.attn(b.ln_1(x), is_causal=True) + b.mlp(b.ln_2(x))


def _no_mlp_res(x, b):
    h = x + b.attn(b.ln_1(x), is_causal=True)
    return b.mlp(b.ln_2(h))


def _swapped(x, b):
    h = x + b.attn(b.ln_2(x), is_causal=True)
    return h + b.mlp(b.ln_1(h))


@pytest.mark.parametrize("fn, words", [
    (_post_ln, ["post-LN"]), (_no_res, ["residual", "around attention"]), (_mlp_first, ["before attention"]),
    (_not_causal, ["causal"]), (_parallel, ["parallel"]), (_no_mlp_res, ["around the MLP"]),
    (_swapped, ["swapped"]),
])
def test_block_mistakes(capsys, fn, words):
    fails(capsys, checks.check_block, fn, *words)


def test_block_stub(capsys):
    fails(capsys, checks.check_block, stub, "not implemented")
    fails(capsys, checks.check_block, lambda x, b: (x, None), "tuple")


# ---------------------------------------------------------------- parameters


def params_ok(d_model, n_heads, d_head, d_mlp):
    return 4 * n_heads * d_model * d_head + 2 * d_model * d_mlp + 2 * d_model


def test_block_parameters(capsys):
    passes(capsys, checks.check_block_parameters, params_ok)
    passes(capsys, checks.check_block_parameters, lambda *a: float(params_ok(*a)))
    fails(capsys, checks.check_block_parameters,
          lambda dm, nh, dh, dmlp: 3 * nh * dm * dh + 2 * dm * dmlp + 2 * dm, "four")
    fails(capsys, checks.check_block_parameters,
          lambda dm, nh, dh, dmlp: 4 * nh * dm * dh + 2 * dm * dmlp, "LayerNorm")
    fails(capsys, checks.check_block_parameters,
          lambda dm, nh, dh, dmlp: 4 * dm * dh + 2 * dm * dmlp + 2 * dm, "n_heads")
    fails(capsys, checks.check_block_parameters,
          lambda dm, nh, dh, dmlp: 4 * nh * dm * dh + dm * dmlp + 2 * dm, "two matrices")
    fails(capsys, checks.check_block_parameters,
          lambda dm, nh, dh, dmlp: 4 * nh * dm * dh + 2 * dm * dmlp + 4 * dm, "shift")
    fails(capsys, checks.check_block_parameters, lambda *a: "many", "return one number")
    fails(capsys, checks.check_block_parameters, stub, "not implemented")


# ---------------------------------------------------------------- next-token targets


def test_next_token_targets(capsys):
    passes(capsys, checks.check_next_token_targets, lambda t: (t[..., :-1], t[..., 1:]))
    passes(capsys, checks.check_next_token_targets, lambda t: [t.narrow(-1, 0, t.shape[-1] - 1),
                                                               t.narrow(-1, 1, t.shape[-1] - 1)])
    fails(capsys, checks.check_next_token_targets, lambda t: (t, t), "there is no shift")
    fails(capsys, checks.check_next_token_targets, lambda t: (t[..., 1:], t[..., :-1]), "swapped")
    fails(capsys, checks.check_next_token_targets, lambda t: (t, torch.roll(t, -1, dims=-1)), "wraps")
    fails(capsys, checks.check_next_token_targets, lambda t: (t[..., :-1], t[..., -1]), "last position")
    fails(capsys, checks.check_next_token_targets, lambda t: (t[..., :-2], t[..., 2:]), "by two")
    fails(capsys, checks.check_next_token_targets, lambda t: t[..., 1:], "pair")
    fails(capsys, checks.check_next_token_targets, stub, "not implemented")


# ---------------------------------------------------------------- top-k


def top_k_ok(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return torch.where(logits >= kth, logits, torch.full_like(logits, -INF))


def top_k_sort(logits, k):
    kth = logits.sort(dim=-1, descending=True).values[..., k - 1:k]
    return logits.masked_fill(logits < kth, float("-inf"))


def test_top_k(capsys):
    passes(capsys, checks.check_top_k, top_k_ok)
    passes(capsys, checks.check_top_k, top_k_sort)
    fails(capsys, checks.check_top_k, lambda x, k: torch.where(top_k_ok(x, k) == -INF, 0.0, x), "to 0")
    fails(capsys, checks.check_top_k, lambda x, k: torch.softmax(top_k_ok(x, k), -1), "probabilities")
    fails(capsys, checks.check_top_k, lambda x, k: top_k_ok(x, k + 1) if k < x.shape[-1] else x, "k + 1")
    fails(capsys, checks.check_top_k, lambda x, k: top_k_ok(x, max(k - 1, 1)) if k > 1 else top_k_ok(x, 1),
          "k - 1")
    fails(capsys, checks.check_top_k, lambda x, k: x.masked_fill(
        x > torch.topk(x, k, dim=-1, largest=False).values[..., -1:], -INF), "smallest")
    fails(capsys, checks.check_top_k, stub, "not implemented")


# ---------------------------------------------------------------- adjective mass


def mass_loop(weights, pairs):
    L, H = len(weights), weights[0].shape[1]
    out = torch.zeros(L, H)
    for b, q, k, _ in pairs.tolist():
        for layer in range(L):
            out[layer] += weights[layer][b, :, q, k]
    return out / len(pairs)


def test_adjective_mass(capsys):
    passes(capsys, checks.check_adjective_mass, adjective_mass)
    passes(capsys, checks.check_adjective_mass, mass_loop)
    fails(capsys, checks.check_adjective_mass,
          lambda w, p: torch.stack(w).permute(1, 4, 3, 0, 2)[p[:, 0], p[:, 1], p[:, 2]].mean(0), "rows are queries")
    fails(capsys, checks.check_adjective_mass, lambda w, p: mass_loop(w, p) * len(p), "mean")
    fails(capsys, checks.check_adjective_mass, lambda w, p: mass_loop(w, p).T, "(n_layers, n_heads)")
    fails(capsys, checks.check_adjective_mass, stub, "not implemented")


# --------------------------------------------------------------------------- ex-09-reach


def _moved(model, ids, position):
    other = ids.clone()
    other[0, position] = (other[0, position] + 1) % model.config.vocab_size
    with torch.no_grad():
        a, _ = model(ids)
        b, _ = model(other)
    return (a - b).abs().amax(dim=-1)[0] > 1e-6  # (T,) bool


@pytest.mark.parametrize("answer", [
    lambda m, ids, p: _moved(m, ids, p).nonzero().flatten().tolist(),  # a list
    lambda m, ids, p: _moved(m, ids, p),  # a bool mask
    lambda m, ids, p: _moved(m, ids, p).nonzero().flatten(),  # a tensor of positions
    lambda m, ids, p: range(p, ids.shape[1]),  # predicted without running the model: also right
], ids=["list", "mask", "tensor", "range"])
def test_reach_accepts_every_right_form(capsys, answer):
    passes(capsys, checks.check_reach, answer)


def _inplace(model, ids, position):
    ids[0, position] = (ids[0, position] + 1) % model.config.vocab_size
    return list(range(position, ids.shape[1]))


@pytest.mark.parametrize("answer, words", [
    (lambda m, ids, p: [p], ["only position", "every later position"]),
    (lambda m, ids, p: list(range(p + 1, ids.shape[1])), ["left out position", "its own token"]),
    (lambda m, ids, p: [], ["no position moved", "different id"]),
    (lambda m, ids, p: list(range(p + 1)), ["before", "causal mask", "flows forward"]),
    (lambda m, ids, p: list(range(ids.shape[1])), ["cannot move", "causal"]),
    (lambda m, ids, p: list(range(p, ids.shape[1] - 1)), ["missing"]),
    (lambda m, ids, p: [ids.shape[1]], ["positions run from 0"]),
    (lambda m, ids, p: "2..9", ["list of ints"]),
    (lambda m, ids, p: [True, False], ["one entry per position"]),
    (_inplace, ["in place"]),
    (stub, ["not implemented"]),
], ids=["self-only", "after", "empty", "backward", "all", "short", "out-of-range", "string", "short-mask",
        "in-place", "stub"])
def test_reach_names_each_mistake(capsys, answer, words):
    fails(capsys, checks.check_reach, answer, *words)

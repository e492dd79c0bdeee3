"""Checkers of chapters 1-4 (attnlib.checks.embeddings, grid, scaling, masking).

For every checker: correct answers in two styles pass, each typical mistake gets its own diagnosis
(asserted on key words of the printed line), and a NotImplementedError stub reads "not implemented".
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib import checks
from attnlib import example as ex


def run(capsys, checker, *args, **kwargs):
    ok = checker(*args, **kwargs)
    out = capsys.readouterr().out
    assert isinstance(ok, checks.CheckResult)
    return ok, out


def passes(capsys, checker, *args, **kwargs):
    ok, out = run(capsys, checker, *args, **kwargs)
    assert ok and out.startswith("✓"), out


def fails(capsys, checker, *args, words=(), **kwargs):
    ok, out = run(capsys, checker, *args, **kwargs)
    assert not ok and out.startswith("✗"), out
    for w in words:
        assert w.lower() in out.lower(), f"{w!r} not in: {out}"
    return out


def stub(*args, **kwargs):
    raise NotImplementedError


# --------------------------------------------------------------------------- chapter 1


def test_embedding_lookup(capsys):
    passes(capsys, checks.check_embedding_lookup, lambda ids, table: table[ids])
    passes(capsys, checks.check_embedding_lookup, lambda ids, table: F.one_hot(ids, table.shape[0]).float() @ table)
    passes(capsys, checks.check_embedding_lookup, lambda ids, table: F.embedding(ids, table))
    fails(capsys, checks.check_embedding_lookup, stub, words=["not implemented"])
    fails(capsys, checks.check_embedding_lookup, lambda ids, t: t.T[ids], words=["columns"])
    fails(capsys, checks.check_embedding_lookup, lambda ids, t: t[:, ids].T, words=["columns"])
    fails(capsys, checks.check_embedding_lookup, lambda ids, t: F.one_hot(ids, t.shape[0]).float(),
          words=["one-hot"])
    fails(capsys, checks.check_embedding_lookup, lambda ids, t: t[(ids + 1) % t.shape[0]], words=["shifted"])
    fails(capsys, checks.check_embedding_lookup, lambda ids, t: t[ids].mean(-2), words=["averaged"])


def test_cosine_similarity(capsys):
    passes(capsys, checks.check_cosine_similarity,
           lambda a, b: (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)))
    passes(capsys, checks.check_cosine_similarity, lambda a, b: F.cosine_similarity(a, b, dim=-1))
    passes(capsys, checks.check_cosine_similarity, ex.cosine_similarity)
    fails(capsys, checks.check_cosine_similarity, stub, words=["not implemented"])
    fails(capsys, checks.check_cosine_similarity, lambda a, b: (a * b).sum(-1), words=["dot product"])
    fails(capsys, checks.check_cosine_similarity, lambda a, b: (a * b).sum(-1) / a.norm(dim=-1),
          words=["|a| only"])
    fails(capsys, checks.check_cosine_similarity,
          lambda a, b: 1 - F.cosine_similarity(a, b, dim=-1), words=["distance"])
    fails(capsys, checks.check_cosine_similarity,
          lambda a, b: (a * b).sum(-1) / (a.pow(2).sum(-1) * b.pow(2).sum(-1)), words=["squared"])
    fails(capsys, checks.check_cosine_similarity, lambda a, b: F.cosine_similarity(a, b, dim=0),
          words=["wrong dim"])


def _pe_interleaved(T, d):
    pos = torch.arange(T).float().unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
    pe = torch.zeros(T, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


def _pe_loops(T, d):
    pe = torch.zeros(T, d)
    for p in range(T):
        for i in range(d // 2):
            angle = p / 10000 ** (2 * i / d)
            pe[p, 2 * i], pe[p, 2 * i + 1] = math.sin(angle), math.cos(angle)
    return pe


def test_positional_encoding(capsys):
    passes(capsys, checks.check_positional_encoding, _pe_interleaved)
    passes(capsys, checks.check_positional_encoding, _pe_loops)
    fails(capsys, checks.check_positional_encoding, stub, words=["not implemented"])

    def swapped(T, d):
        pe = _pe_interleaved(T, d)
        return torch.stack([pe[:, 1::2], pe[:, 0::2]], dim=-1).reshape(T, d)

    def halves(T, d):
        pe = _pe_interleaved(T, d)
        return torch.cat([pe[:, 0::2], pe[:, 1::2]], dim=1)

    fails(capsys, checks.check_positional_encoding, swapped, words=["swapped"])
    fails(capsys, checks.check_positional_encoding, halves, words=["interleaved"])
    fails(capsys, checks.check_positional_encoding, lambda T, d: _pe_interleaved(T + 1, d)[1:],
          words=["start at 1"])
    fails(capsys, checks.check_positional_encoding, lambda T, d: _pe_interleaved(T, d).T, words=["shape"])

    def half_exponent(T, d):
        pe = torch.zeros(T, d)
        for p in range(T):
            for i in range(d // 2):
                a = p / 10000 ** (i / d)
                pe[p, 2 * i], pe[p, 2 * i + 1] = math.sin(a), math.cos(a)
        return pe

    fails(capsys, checks.check_positional_encoding, half_exponent, words=["2i / d_model"])


# --------------------------------------------------------------------------- chapter 2


def test_score_grid(capsys):
    passes(capsys, checks.check_score_grid, lambda x, wq, wk: (x @ wq) @ (x @ wk).transpose(-2, -1))
    passes(capsys, checks.check_score_grid, lambda x, wq, wk: torch.einsum("...id,...jd->...ij", x @ wq, x @ wk))
    fails(capsys, checks.check_score_grid, stub, words=["not implemented"])
    fails(capsys, checks.check_score_grid, lambda x, wq, wk: (x @ wk) @ (x @ wq).transpose(-2, -1),
          words=["transposed"])
    fails(capsys, checks.check_score_grid, lambda x, wq, wk: (x @ wq) @ (x @ wq).transpose(-2, -1),
          words=["W_Q for the keys"])
    fails(capsys, checks.check_score_grid, lambda x, wq, wk: x @ x.transpose(-2, -1), words=["directly"])
    fails(capsys, checks.check_score_grid,
          lambda x, wq, wk: (x @ wq) @ (x @ wk).transpose(-2, -1) / math.sqrt(wq.shape[1]), words=["chapter 3"])


def _verb_head(d_head=4, strength=3.0):
    W_Q, W_K = torch.zeros(ex.D_MODEL, d_head), torch.zeros(ex.D_MODEL, d_head)
    W_Q[ex.SEMANTIC.index("verb"), 0] = strength
    W_K[ex.SEMANTIC.index("noun"), 0] = strength
    return W_Q, W_K


def test_verb_head(capsys):
    passes(capsys, checks.check_verb_head, *_verb_head())
    # another design: a different column, d_head 2, the directions read through direction()
    d = 2
    W_Q = 4 * torch.outer(ex.direction("verb"), torch.tensor([0.0, 1.0]))
    W_K = 4 * torch.outer(ex.direction("noun"), torch.tensor([0.0, 1.0]))
    assert W_Q.shape == (ex.D_MODEL, d)
    passes(capsys, checks.check_verb_head, W_Q, W_K)
    W_Q, W_K = _verb_head()
    fails(capsys, checks.check_verb_head, W_K, W_Q, words=["swapped"])
    fails(capsys, checks.check_verb_head, *_verb_head(strength=0.8), words=["larger"])
    fails(capsys, checks.check_verb_head, W_Q[:10], W_K[:10], words=["shape"])
    fails(capsys, checks.check_verb_head, *ex.adjective_head()[:2], words=["roamed"])
    fails(capsys, checks.check_verb_head, torch.zeros(ex.D_MODEL, 4), torch.zeros(ex.D_MODEL, 4), words=["evenly"])


def test_qk_parameters(capsys):
    passes(capsys, checks.check_qk_parameters, lambda d, h, n, L: 2 * d * h * n * L)
    passes(capsys, checks.check_qk_parameters, lambda d, h, n, L: sum(2 * d * h for _ in range(n * L)))
    fails(capsys, checks.check_qk_parameters, stub, words=["not implemented"])
    fails(capsys, checks.check_qk_parameters, lambda d, h, n, L: d * h * n * L, words=["one matrix"])
    fails(capsys, checks.check_qk_parameters, lambda d, h, n, L: 2 * d * h * L, words=["heads"])
    fails(capsys, checks.check_qk_parameters, lambda d, h, n, L: 2 * d * h * n, words=["layers"])
    fails(capsys, checks.check_qk_parameters, lambda d, h, n, L: 2 * d * d * n * L, words=["d_model x d_head"])
    passes(capsys, checks.check_qk_parameters, lambda d, h, n, L: 2.0 * d * h * n * L)  # any real number


# --------------------------------------------------------------------------- chapter 3


def test_temperature_softmax(capsys):
    passes(capsys, checks.check_temperature_softmax, lambda s, t: torch.softmax(s / t, dim=-1))

    def written(s, t):
        z = s / t
        e = (z - z.amax(dim=-1, keepdim=True)).exp()
        return e / e.sum(dim=-1, keepdim=True)

    passes(capsys, checks.check_temperature_softmax, written)
    fails(capsys, checks.check_temperature_softmax, stub, words=["not implemented"])
    fails(capsys, checks.check_temperature_softmax, lambda s, t: torch.softmax(s * t, dim=-1), words=["multiplied"])
    fails(capsys, checks.check_temperature_softmax, lambda s, t: torch.softmax(s, dim=-1), words=["no effect"])
    fails(capsys, checks.check_temperature_softmax, lambda s, t: (s / t).exp() / (s / t).exp().sum(-1, keepdim=True),
          words=["overflow"])
    fails(capsys, checks.check_temperature_softmax, lambda s, t: torch.softmax(s / t, dim=0), words=["last dim"])


def test_stable_softmax_half(capsys):
    passes(capsys, checks.check_stable_softmax_half, lambda s: torch.softmax(s.float(), dim=-1).to(s.dtype))

    def written(s):
        z = s.float()
        e = (z - z.amax(dim=-1, keepdim=True)).exp()
        return (e / e.sum(dim=-1, keepdim=True)).to(s.dtype)

    passes(capsys, checks.check_stable_softmax_half, written)
    passes(capsys, checks.check_stable_softmax_half, lambda s: attnlib.softmax(s.float()).to(s.dtype))
    fails(capsys, checks.check_stable_softmax_half, stub, words=["not implemented"])

    def no_max_half(s):
        e = s.exp()
        return e / e.sum(dim=-1, keepdim=True)

    def half_sum(s):
        e = (s - s.amax(dim=-1, keepdim=True)).exp()
        return e / e.sum(dim=-1, keepdim=True, dtype=s.dtype)

    fails(capsys, checks.check_stable_softmax_half, no_max_half, words=["11.09"])
    fails(capsys, checks.check_stable_softmax_half, half_sum, words=["65504"])
    fails(capsys, checks.check_stable_softmax_half, lambda s: torch.softmax(s.float(), dim=-1), words=["dtype"])
    fails(capsys, checks.check_stable_softmax_half, lambda s: torch.softmax(s.float(), dim=0).to(s.dtype),
          words=["last dim"])


def test_logsumexp(capsys):
    passes(capsys, checks.check_logsumexp, lambda s: torch.logsumexp(s, dim=-1))

    def written(s):
        m = s.amax(dim=-1, keepdim=True)
        return (m + (s - m).exp().sum(dim=-1, keepdim=True).log()).squeeze(-1)

    passes(capsys, checks.check_logsumexp, written)
    fails(capsys, checks.check_logsumexp, stub, words=["not implemented"])
    fails(capsys, checks.check_logsumexp, lambda s: s.exp().sum(-1).log(), words=["overflow"])
    fails(capsys, checks.check_logsumexp, lambda s: (s - s.amax(-1, keepdim=True)).exp().sum(-1).log(),
          words=["add the max back"])
    fails(capsys, checks.check_logsumexp, lambda s: torch.logsumexp(s, dim=-1, keepdim=True), words=["keepdim"])


# --------------------------------------------------------------------------- chapter 4


def test_shift_targets(capsys):
    passes(capsys, checks.check_shift_targets, lambda ids: (ids[..., :-1], ids[..., 1:]))
    passes(capsys, checks.check_shift_targets, lambda ids: (ids.narrow(-1, 0, ids.shape[-1] - 1),
                                                            ids.narrow(-1, 1, ids.shape[-1] - 1)))
    fails(capsys, checks.check_shift_targets, stub, words=["not implemented"])
    fails(capsys, checks.check_shift_targets, lambda ids: (ids[..., 1:], ids[..., :-1]), words=["swapped"])
    fails(capsys, checks.check_shift_targets, lambda ids: (ids, ids), words=["no shift"])
    fails(capsys, checks.check_shift_targets, lambda ids: (ids[:-1], ids[1:]), words=["batch dim"])
    fails(capsys, checks.check_shift_targets, lambda ids: ids[..., 1:], words=["tuple"])


def test_combined_mask(capsys):
    passes(capsys, checks.check_combined_mask, lambda L, T: attnlib.causal_mask(T) & attnlib.padding_mask(L, T))

    def loops(L, T):
        m = torch.zeros(len(L), 1, T, T, dtype=torch.bool)
        for b, n in enumerate(L.tolist()):
            for i in range(T):
                for j in range(T):
                    m[b, 0, i, j] = j <= i and j < n and i < n  # padded query rows masked too
        return m

    passes(capsys, checks.check_combined_mask, loops)
    fails(capsys, checks.check_combined_mask, stub, words=["not implemented"])
    causal = attnlib.causal_mask
    pad = attnlib.padding_mask
    fails(capsys, checks.check_combined_mask, lambda L, T: causal(T) | pad(L, T), words=["OR"])
    fails(capsys, checks.check_combined_mask, lambda L, T: ~(causal(T) & pad(L, T)), words=["polarity"])
    fails(capsys, checks.check_combined_mask, lambda L, T: causal(T).expand(len(L), 1, T, T),
          words=["padding is missing"])
    fails(capsys, checks.check_combined_mask, lambda L, T: pad(L, T).expand(len(L), 1, T, T),
          words=["causal part"])
    # right padding + causal: masking the padded query rows is equivalent, and accepted
    passes(capsys, checks.check_combined_mask, lambda L, T: causal(T) & pad(L, T).transpose(-1, -2))
    fails(capsys, checks.check_combined_mask, lambda L, T: (causal(T) & pad(L, T)).float(), words=["bool"])


@pytest.mark.parametrize("name", ["check_embedding_lookup", "check_cosine_similarity", "check_positional_encoding",
                                  "check_score_grid", "check_qk_parameters", "check_temperature_softmax",
                                  "check_stable_softmax_half", "check_logsumexp", "check_shift_targets", "check_combined_mask"])
def test_bad_outputs_never_raise(capsys, name):
    checker = getattr(checks, name)
    for bad in (lambda *a: None, lambda *a: "text", lambda *a: 1 / 0):
        fails(capsys, checker, bad)

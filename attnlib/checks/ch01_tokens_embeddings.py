"""Checkers for chapter 1 (tokens and embeddings): an embedding lookup, cosine similarity, the
sinusoidal position encoding."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._core import Case, Mistake, TensorSpec, checker, randn

__all__ = ["check_embedding_lookup", "check_cosine_similarity", "check_positional_encoding"]


# --------------------------------------------------------------------------- embedding lookup


def _lookup(ids, table):
    return table[ids]


SHIFTED = "your ids are shifted by one: token id i is row i of the table (rows count from 0)"


def _lookup_cases():
    table = randn(7, 5, seed=40)
    inputs = [
        # square first: indexing the columns (table.T[ids]) only runs when V == d_model
        ("a square 5 x 5 table", torch.tensor([4, 0, 2]), randn(5, 5, seed=41)),
        ("a sentence of 4 ids", torch.tensor([3, 0, 6, 3]), table),
        ("a batch of 2 x 3 ids", torch.tensor([[1, 2, 3], [6, 5, 4]]), table),
        ("a single id", torch.tensor([2]), table),
    ]
    return [Case(name, (ids, t), t[ids]) for name, ids, t in inputs]


@checker(TensorSpec(
    "embedding lookup", _lookup_cases, [
        Mistake("you picked COLUMNS of the table: each row of the (V, d_model) table is one "
                "token's vector, so use table[ids]", lambda ids, t: t.T[ids]),
        Mistake("you returned the one-hot vectors; multiply them by the table (one_hot @ table) "
                "to pick the rows", lambda ids, t: F.one_hot(ids, t.shape[0]).float()),
        Mistake(SHIFTED, lambda ids, t: t[(ids + 1) % t.shape[0]]),
        Mistake(SHIFTED, lambda ids, t: t[(ids - 1) % t.shape[0]]),
        Mistake("you summed the vectors of all tokens; the lookup gives one row per token",
                lambda ids, t: t[ids].sum(-2)),
        Mistake("you averaged the vectors of all tokens; the lookup gives one row per token",
                lambda ids, t: t[ids].mean(-2)),
    ], reference=_lookup, layout="ids.shape + (d_model,)",
    otherwise="wrong vectors: token id i should get row i of the table, table[i]",
    hint="fn(ids, table): ids holds integer token ids, table is (V, d_model)"))
def check_embedding_lookup(fn):
    """Check fn(ids, table) -> the rows of table for the ids, shape ids.shape + (d_model,)."""


# --------------------------------------------------------------------------- cosine similarity


def _cos(a, b):
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def _cos_cases():
    inputs = [
        ("two vectors, d = 6", randn(6, seed=50), randn(6, seed=51) * 3),
        ("a batch of 4 pairs, d = 5", randn(4, 5, seed=52) * 2, randn(4, 5, seed=53)),
        ("the same vector twice", torch.tensor([1.0, 2.0, 2.0]), torch.tensor([1.0, 2.0, 2.0])),
        ("a vector and its negative", torch.tensor([3.0, 0.0, 4.0]),
         torch.tensor([-3.0, 0.0, -4.0])),
        ("a batch of 3 pairs of very different lengths, d = 4",
         randn(3, 4, seed=54) * torch.tensor([[100.0], [1.0], [0.01]]), randn(3, 4, seed=55)),
    ]
    return [Case(name, (a, b), _cos(a, b)) for name, a, b in inputs]


@checker(TensorSpec(
    "cosine similarity", _cos_cases, [
        Mistake("you returned the plain dot product a . b; divide it by |a| |b| so the length of "
                "the vectors drops out", lambda a, b: (a * b).sum(-1)),
        Mistake("you divided by |a| only; divide by the product of both lengths |a| |b|",
                lambda a, b: (a * b).sum(-1) / a.norm(dim=-1)),
        Mistake("you divided by |b| only; divide by the product of both lengths |a| |b|",
                lambda a, b: (a * b).sum(-1) / b.norm(dim=-1)),
        Mistake("you divided by the squared lengths |a|^2 |b|^2; use the lengths themselves "
                "(a.norm(dim=-1), a square root of a . a)",
                lambda a, b: (a * b).sum(-1) / (a.norm(dim=-1) ** 2 * b.norm(dim=-1) ** 2)),
        Mistake("you returned 1 - cosine (the cosine distance); return the similarity itself",
                lambda a, b: 1 - _cos(a, b)),
        Mistake("you returned the angle (arccos); return the cosine itself",
                lambda a, b: torch.arccos(_cos(a, b).clamp(-1, 1))),
        Mistake("you compared along the wrong dim: the vectors lie along the LAST dim (dim=-1)",
                lambda a, b: F.cosine_similarity(a, b, dim=0), when=lambda a, b: a.ndim > 1),
        Mistake("you divided by one norm for the whole batch (a.norm() without dim=-1): every pair "
                "needs its own lengths, a.norm(dim=-1)",
                lambda a, b: (a * b).sum(-1) / (a.norm() * b.norm()), when=lambda a, b: a.ndim > 1),
    ], reference=_cos, layout="a.shape[:-1]",
    otherwise="the similarity is wrong: expected a . b / (|a| |b|) along dim=-1",
    hint="fn(a, b) takes two tensors of shape (..., d)"))
def check_cosine_similarity(fn):
    """Check fn(a, b) -> the cosine similarity of a and b over the last dim."""


# --------------------------------------------------------------------------- position encoding


def _sinusoidal(T, d, *, start=0, exponent=2, swap=False, halves=False):
    p = torch.arange(start, start + T, dtype=torch.float64)[:, None]  # (T, 1)
    i = torch.arange(0, d, 2, dtype=torch.float64)[None, :] * exponent / 2  # (1, d/2): 2i
    angle = p / 10000 ** (i / d)  # (T, d/2)
    sin, cos = (torch.cos(angle), torch.sin(angle)) if swap else (torch.sin(angle), torch.cos(angle))
    if halves:
        return torch.cat([sin, cos], dim=1).float()
    pe = torch.zeros(T, d, dtype=torch.float64)
    pe[:, 0::2] = sin
    pe[:, 1::2] = cos
    return pe.float()


def _pe(T, d_model):
    return _sinusoidal(T, d_model)


@checker(TensorSpec(
    "positional encoding",
    lambda: [Case(f"T = {T}, d_model = {d}", (T, d), _sinusoidal(T, d))
             for T, d in [(6, 8), (1, 4), (10, 16)]], [
        Mistake("sin and cos are swapped: sines go in the even columns (0, 2, ...), cosines in "
                "the odd ones", lambda T, d: _sinusoidal(T, d, swap=True)),
        Mistake("you put all the sines first and all the cosines after; that layout also works "
                "in a model, but this exercise asks for them interleaved: pe[:, 0::2] = sin, "
                "pe[:, 1::2] = cos", lambda T, d: _sinusoidal(T, d, halves=True)),
        Mistake("your positions start at 1; the first token is position 0",
                lambda T, d: _sinusoidal(T, d, start=1)),
        Mistake("the exponent should be 2i / d_model (the even column index over d_model), not "
                "i / d_model", lambda T, d: _sinusoidal(T, d, exponent=1)),
        Mistake("expected shape (T, d_model): one row per position (your result is transposed)",
                lambda T, d: _sinusoidal(T, d).T, when=lambda T, d: T != d),
    ], reference=_pe, layout="(T, d_model)",
    otherwise="the encoding is wrong: pe[p, 2i] = sin(p / 10000**(2i/d_model)), "
              "pe[p, 2i+1] = cos(same angle)",
    hint="fn(T, d_model) returns a (T, d_model) tensor"))
def check_positional_encoding(fn):
    """Check fn(T, d_model) -> the sinusoidal position encoding, (T, d_model)."""

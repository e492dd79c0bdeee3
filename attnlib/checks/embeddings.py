"""Checkers for chapter 1: embedding lookup, cosine similarity, sinusoidal position encoding.

Every checker prints ``✓ ...`` or ``✗ ...: diagnosis`` and returns True/False (see ``_core``).
"""

from __future__ import annotations

import torch

from ._core import (
    Case,
    call,
    case,
    compare,
    fail,
    randn,
    run_cases,
    run_check,
    shape_str,
    tensor_output,
)

__all__ = ["check_embedding_lookup", "check_cosine_similarity", "check_positional_encoding"]


# --------------------------------------------------------------------------- embedding lookup


def check_embedding_lookup(fn) -> bool:
    """Check ``fn(ids, table) -> vectors``: look token ids up in an embedding table.

    ``table`` is (V, d_model), one row per vocabulary entry; ``ids`` is an integer tensor of any
    shape (T,) or (B, T); the answer has shape ``ids.shape + (d_model,)`` and holds row ``ids[...]``
    of the table. Any correct way passes (``table[ids]``, ``F.embedding``, one-hot @ table,
    ``index_select``). Diagnoses: columns instead of rows, ids shifted by one, the one-hot vectors
    returned instead of the rows, summing or averaging the rows.
    """

    def mistakes(ids, table):
        V = table.shape[0]
        return [
            ("you picked COLUMNS of the table: each row of the (V, d_model) table is one token's "
             "vector, so use table[ids]", lambda: table.T[ids]),
            ("you returned the one-hot vectors; multiply them by the table (one_hot @ table) to "
             "pick the rows", lambda: torch.nn.functional.one_hot(ids, V).float()),
            ("your ids are shifted by one: token id i is row i of the table (rows count from 0)",
             lambda: table[(ids + 1) % V]),
            ("your ids are shifted by one: token id i is row i of the table (rows count from 0)",
             lambda: table[(ids - 1) % V]),
            ("you summed the vectors of all tokens; the lookup gives one row per token",
             lambda: table[ids].sum(-2)),
            ("you averaged the vectors of all tokens; the lookup gives one row per token",
             lambda: table[ids].mean(-2)),
        ]

    def body():
        table = randn(7, 5, seed=40)
        inputs = [
            # square first: indexing the columns (table.T[ids]) only runs, and only shows, when V == d_model
            ("a square 5 x 5 table", torch.tensor([4, 0, 2]), randn(5, 5, seed=41)),
            ("a sentence of 4 ids", torch.tensor([3, 0, 6, 3]), table),
            ("a batch of 2 x 3 ids", torch.tensor([[1, 2, 3], [6, 5, 4]]), table),
            ("a single id", torch.tensor([2]), table),
        ]
        cases = [Case(name, (ids, t), t[ids], mistakes=mistakes(ids, t),
                      otherwise="wrong vectors: token id i should get row i of the table, table[i]")
                 for name, ids, t in inputs]
        return run_cases(fn, cases, hint="fn(ids, table): ids holds integer token ids, table is (V, d_model)")

    return run_check("embedding lookup", body)


# --------------------------------------------------------------------------- cosine similarity


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def check_cosine_similarity(fn) -> bool:
    """Check ``fn(a, b) -> similarity``: cosine similarity over the last dim.

    ``a`` and ``b`` have the same shape (..., d); the answer has shape (...): a . b / (|a| |b|), a
    number in [-1, 1] per pair of vectors. Any correct way passes (written out, ``F.cosine_similarity``
    with ``dim=-1``, normalising first). Diagnoses: the plain dot product, dividing by one norm only,
    squared norms, 1 - similarity (the cosine distance), the angle, the wrong dim.
    """

    def body():
        inputs = [
            ("two vectors, d = 6", randn(6, seed=50), randn(6, seed=51) * 3),
            ("a batch of 4 pairs, d = 5", randn(4, 5, seed=52) * 2, randn(4, 5, seed=53)),
            ("the same vector twice", torch.tensor([1.0, 2.0, 2.0]), torch.tensor([1.0, 2.0, 2.0])),
            ("a vector and its negative", torch.tensor([3.0, 0.0, 4.0]), torch.tensor([-3.0, 0.0, -4.0])),
        ]
        cases = []
        for name, a, b in inputs:
            c = _cos(a, b)
            cases.append(Case(name, (a, b), c, mistakes=[
                ("you returned the plain dot product a . b; divide it by |a| |b| so the length of the "
                 "vectors drops out", (a * b).sum(-1)),
                ("you divided by |a| only; divide by the product of both lengths |a| |b|",
                 (a * b).sum(-1) / a.norm(dim=-1)),
                ("you divided by |b| only; divide by the product of both lengths |a| |b|",
                 (a * b).sum(-1) / b.norm(dim=-1)),
                ("you divided by the squared lengths |a|^2 |b|^2; use the lengths themselves "
                 "(a.norm(dim=-1), a square root of a . a)",
                 (a * b).sum(-1) / (a.norm(dim=-1) ** 2 * b.norm(dim=-1) ** 2)),
                ("you returned 1 - cosine (the cosine distance); return the similarity itself",
                 1 - c),
                ("you returned the angle (arccos); return the cosine itself", lambda c=c: torch.arccos(c.clamp(-1, 1))),
                ("you compared along the wrong dim: the vectors lie along the LAST dim (dim=-1)",
                 lambda a=a, b=b: torch.nn.functional.cosine_similarity(a, b, dim=0)),
            ], otherwise="the similarity is wrong: expected a . b / (|a| |b|) along dim=-1"))
        return run_cases(fn, cases, hint="fn(a, b) takes two tensors of shape (..., d)")

    return run_check("cosine similarity", body)


# --------------------------------------------------------------------------- position encoding


def _sinusoidal(T: int, d: int, base: float = 10000.0, start: int = 0) -> torch.Tensor:
    p = torch.arange(start, start + T, dtype=torch.float64)[:, None]  # (T, 1)
    i = torch.arange(0, d, 2, dtype=torch.float64)[None, :]  # (1, d/2): 2i
    angle = p / base ** (i / d)  # (T, d/2)
    pe = torch.zeros(T, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.float()


def check_positional_encoding(fn) -> bool:
    """Check ``fn(T, d_model) -> pe``: the sinusoidal position encoding of Vaswani et al. (2017).

    pe has shape (T, d_model) (d_model even); for position p = 0 .. T-1 and i = 0 .. d_model/2 - 1:
    ``pe[p, 2i] = sin(p / 10000**(2i / d_model))`` and ``pe[p, 2i+1] = cos(p / 10000**(2i / d_model))``
    (sines in the even columns, cosines in the odd ones). Diagnoses: sin and cos swapped, the sines
    and cosines in two halves instead of interleaved (another valid layout, but not this one),
    positions counted from 1, the exponent i / d_model instead of 2i / d_model, a transposed result.
    """

    def body():
        sizes = [(6, 8), (1, 4), (10, 16)]
        for T, d in sizes:
            with case(f"T = {T}, d_model = {d}"):
                expected = _sinusoidal(T, d)
                out = tensor_output(call(fn, T, d, hint="fn(T, d_model) returns a (T, d_model) tensor"))
                if out.shape == (d, T) and T != d:
                    fail(f"expected shape (T, d_model) = {shape_str((T, d))}, got {shape_str(out.shape)}: "
                         "one row per position")
                half = torch.cat([expected[:, 0::2], expected[:, 1::2]], dim=1)
                p = torch.arange(T, dtype=torch.float64)[:, None]
                i = torch.arange(d // 2, dtype=torch.float64)[None, :]
                wrong_exp = torch.zeros(T, d, dtype=torch.float64)
                wrong_exp[:, 0::2] = torch.sin(p / 10000 ** (i / d))
                wrong_exp[:, 1::2] = torch.cos(p / 10000 ** (i / d))
                swapped = torch.zeros_like(expected)
                swapped[:, 0::2], swapped[:, 1::2] = expected[:, 1::2], expected[:, 0::2]
                compare(out.float(), expected, atol=1e-5, rtol=1e-4, mistakes=[
                    ("sin and cos are swapped: sines go in the even columns (0, 2, ...), cosines in "
                     "the odd ones", swapped),
                    ("you put all the sines first and all the cosines after; that layout also works in "
                     "a model, but this exercise asks for them interleaved: pe[:, 0::2] = sin, "
                     "pe[:, 1::2] = cos", half),
                    ("your positions start at 1; the first token is position 0",
                     _sinusoidal(T, d, start=1)),
                    ("the exponent should be 2i / d_model (the even column index over d_model), "
                     "not i / d_model", wrong_exp.float()),
                ], otherwise="the encoding is wrong: pe[p, 2i] = sin(p / 10000**(2i/d_model)), "
                             "pe[p, 2i+1] = cos(same angle)")
        return len(sizes)

    return run_check("positional encoding", body)

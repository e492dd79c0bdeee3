"""Checkers for chapter 10 (training): next-token targets, top-k filtering, and the attention
mass on the adjectives (the reference is :func:`attnlib.data.adjective_mass`)."""

from __future__ import annotations

import torch

from ..data import adjective_mass
from ._core import Case, Mistake, TensorSpec, checker, randn
from .ch04_masking_context import _shift, _shift_cases, shift_mistakes

__all__ = ["check_next_token_targets", "check_top_k", "check_adjective_mass"]

INF = float("inf")


@checker(TensorSpec(
    "next-token targets", _shift_cases, shift_mistakes("tokens", "x", "y"), outputs=("x", "y"),
    reference=_shift,
    hint="fn(tokens) returns a pair (x, y)",
    otherwise="expected x = tokens[..., :-1], y = tokens[..., 1:]"))
def check_next_token_targets(fn):
    """Check fn(tokens) -> (x, y): inputs and next-token targets, y[..., t] follows x[..., t]."""


# --------------------------------------------------------------------------- top-k


def _top_k_ref(logits: torch.Tensor, k: int) -> torch.Tensor:
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, -INF)


def _top_k_cases():
    shifted = randn(2, 6, seed=50) * 2 + torch.tensor([[5.0], [0.0]])  # row 0 holds the top 2
    inputs = [("2 rows, vocab 6, k = 2", shifted, 2),
              ("one row, k = 1 (greedy)", randn(1, 5, seed=51), 1),
              ("batch 2 x 3 positions, vocab 7, k = 3", randn(2, 3, 7, seed=52), 3),
              ("k = vocab keeps everything", randn(2, 4, seed=53), 4),
              ("rows of very different scale (x 100 and x 0.01), k = 2",
               randn(3, 5, seed=54) * torch.tensor([[100.0], [1.0], [0.01]]), 2)]
    return [Case(name, (x, k), _top_k_ref(x, k)) for name, x, k in inputs]


@checker(TensorSpec(
    "top-k filter", _top_k_cases, [
        Mistake("you set the removed logits to 0; set them to -inf (float('-inf')) so that softmax "
                "gives them probability exactly 0",
                lambda x, k: torch.where(_top_k_ref(x, k) == -INF, 0.0, x),
                when=lambda x, k: k < x.shape[-1]),
        Mistake("you kept the k SMALLEST logits; keep the largest (torch.topk's default, "
                "largest=True)", lambda x, k: x.masked_fill(
                    x > torch.topk(x, k, dim=-1, largest=False).values[..., -1:], -INF),
                when=lambda x, k: k < x.shape[-1]),
        Mistake("you returned probabilities; return the filtered logits (apply softmax later)",
                lambda x, k: torch.softmax(_top_k_ref(x, k), dim=-1)),
        Mistake("you kept k - 1 logits per row (off by one): keep the k largest, values >= the "
                "k-th largest", lambda x, k: _top_k_ref(x, k - 1), when=lambda x, k: k > 1),
        Mistake("you kept k + 1 logits per row (off by one): keep the k largest, values >= the "
                "k-th largest", lambda x, k: _top_k_ref(x, k + 1),
                when=lambda x, k: k < x.shape[-1]),
        Mistake("you took the top k along the wrong axis; use dim=-1 (the vocabulary)",
                lambda x, k: x.masked_fill(x < torch.topk(x, k, dim=-2).values[..., -1:, :], -INF),
                when=lambda x, k: x.ndim >= 2 and x.shape[-2] >= k),
        Mistake("one threshold for the whole tensor: each ROW keeps its own k largest logits "
                "(torch.topk(logits, k, dim=-1).values[..., -1:])",
                lambda x, k: x.masked_fill(x < torch.topk(x.flatten(), k).values[-1], -INF),
                when=lambda x, k: x.ndim >= 2 and x.shape[0] > 1),
    ], reference=_top_k_ref, layout="logits.shape",
    hint="torch.topk(logits, k, dim=-1).values[..., -1:] is each row's k-th largest"))
def check_top_k(fn):
    """Check fn(logits, k) -> logits with all but each row's k largest set to -inf."""


# --------------------------------------------------------------------------- adjective mass


def _mass_cases():
    g = torch.Generator().manual_seed(60)
    cases = []
    for name, (L, B, H, T, P) in (("2 layers, 3 heads, 4 windows of 8", (2, 4, 3, 8, 7)),
                                  ("1 layer, 2 heads, 2 windows of 6", (1, 2, 2, 6, 3)),
                                  ("3 layers, 2 heads, 3 windows of 7", (3, 3, 2, 7, 5))):
        scores = torch.randn(L, B, H, T, T, generator=g)
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), -INF)
        w = torch.softmax(scores, dim=-1)
        rows = []
        for _ in range(P):
            b = int(torch.randint(B, (1,), generator=g))
            q = int(torch.randint(2, T, (1,), generator=g))
            k = int(torch.randint(0, q, (1,), generator=g))
            rows.append((b, q, k, len(rows) % 2))
        pairs = torch.tensor(rows)
        cases.append(Case(name, (list(w), pairs), adjective_mass(list(w), pairs)))
    return cases


def _stacked(weights, pairs):
    w = torch.stack(list(weights))  # (L, B, H, T, T)
    return w, pairs[:, 0], pairs[:, 1], pairs[:, 2]


def _column(weights, pairs):
    w, bi, qi, ki = _stacked(weights, pairs)
    return w.permute(1, 4, 3, 0, 2)[bi, qi, ki].mean(0)


def _summed(weights, pairs):
    w, bi, qi, ki = _stacked(weights, pairs)
    return w.permute(1, 3, 4, 0, 2)[bi, qi, ki].sum(0)


def _every_query(weights, pairs):
    w, bi, _, ki = _stacked(weights, pairs)
    return w.permute(1, 4, 0, 2, 3)[bi, ki].mean(dim=(0, -1))


@checker(TensorSpec(
    "adjective mass", _mass_cases, [
        Mistake("you read weights[..., key, query]: rows are queries and columns keys, so take "
                "w[window, head, query_pos, key_pos]", _column),
        Mistake("you summed over the pairs; take the mean so that 1.0 means 'all of the "
                "attention'", _summed),
        Mistake("you averaged over every query position; only the needs-it positions "
                "(pairs[:, 1]) count", _every_query),
        Mistake("your answer is (n_heads, n_layers); return (n_layers, n_heads)",
                lambda w, p: adjective_mass(w, p).T, when=lambda w, p: len(w) != w[0].shape[1]),
    ], reference=adjective_mass, layout="(n_layers, n_heads)",
    hint="stack the layers with torch.stack(weights): (L, B, H, T, T)"))
def check_adjective_mass(fn):
    """Check fn(weights, pairs) -> (n_layers, n_heads): mean attention from needs-it rows to adjectives."""

"""Checkers for chapter 5 (values): the value update, a projection, the value map's parameters.

Conventions: x (..., T, d_model); pattern (..., T, T) with rows = queries; W_down (d_model, d_head),
W_up (d_head, d_model).
"""

from __future__ import annotations

import torch

from ._core import Case, Mistake, NumberSpec, TensorSpec, checker, fail, randn

__all__ = ["check_value_update", "check_projection", "check_value_params"]


def _update(x, pattern, W_down, W_up):
    return x + pattern @ (x @ W_down) @ W_up


VALUE_UPDATE_MISTAKES = [
    Mistake("you returned only the change; the update is ADDED to the embedding: return x + change",
            lambda x, p, Wd, Wu: p @ (x @ Wd) @ Wu),
    Mistake("the pattern is transposed: row i of the pattern holds query i's weights over the "
            "keys, so the change of token i is pattern[i] @ values (pattern @ values, not "
            "pattern.T @ values)", lambda x, p, Wd, Wu: x + p.transpose(-2, -1) @ (x @ Wd) @ Wu),
    Mistake("every token got the plain sum of all values: weight the values by the pattern",
            lambda x, p, Wd, Wu: x + torch.ones_like(p) @ (x @ Wd) @ Wu),
    Mistake("each token moved by its own value only: the pattern must mix the values of all "
            "tokens", lambda x, p, Wd, Wu: x + x @ Wd @ Wu),
    Mistake("you added the embedding twice (x + x + change)",
            lambda x, p, Wd, Wu: 2 * x + p @ (x @ Wd) @ Wu),
    Mistake("value-down and value-up are used in the wrong order: values = x @ W_down @ W_up "
            "(d_model -> d_head -> d_model)", lambda x, p, Wd, Wu: x + p @ (x @ Wu.T) @ Wd.T),
    Mistake("the change has d_head columns: you forgot value-up (@ W_up) to return to d_model",
            lambda x, p, Wd, Wu: p @ (x @ Wd)),
]


def _value_update_cases():
    cases = []
    for name, lead, T, d, dh, seed in (("5 tokens, d_model = 6, d_head = 2", (), 5, 6, 2, 0),
                                       ("a batch of 2, d_model = 8, d_head = 3", (2,), 4, 8, 3, 10)):
        x = randn(*lead, T, d, seed=seed)
        pattern = torch.softmax(randn(*lead, T, T, seed=seed + 1), dim=-1)
        Wd, Wu = randn(d, dh, seed=seed + 2), randn(dh, d, seed=seed + 3)
        cases.append(Case(name, (x, pattern, Wd, Wu), _update(x, pattern, Wd, Wu)))
    return cases


@checker(TensorSpec(
    "value update", _value_update_cases, VALUE_UPDATE_MISTAKES, reference=_update,
    layout="(..., T, d_model)",
    hint="values = x @ W_down @ W_up has shape (..., T, d_model)"))
def check_value_update(fn):
    """Check fn(x, pattern, W_down, W_up) -> x + pattern @ (x @ W_down) @ W_up."""


# --------------------------------------------------------------------------- projection


def _projection(v, u):
    return (v @ u / u.norm()).item()


def _not_a_vector(out, args):
    v = args[0]
    if isinstance(out, torch.Tensor) and out.numel() == v.numel() and out.numel() > 1:
        fail("you returned a vector; return the number v . u / |u| (the length of the shadow of "
             "v along u), not the projected vector")


@checker(NumberSpec(
    "projection", [
        ("unit direction", (torch.tensor([3.0, 4.0]), torch.tensor([1.0, 0.0])), {}),
        ("long direction", (torch.tensor([3.0, 4.0]), torch.tensor([0.0, 2.0])), {}),
        ("opposite", (torch.tensor([1.0, 2.0, 2.0]), torch.tensor([-2.0, -4.0, -4.0])), {}),
        ("random", (randn(16, seed=5), randn(16, seed=6)), {}),
    ], _projection, [
        Mistake("you returned the plain dot product; divide by the length of the direction, |u|, "
                "or a longer direction would give a bigger number", lambda v, u: (v @ u).item()),
        Mistake("you divided by |u|^2; that gives the coefficient of the projected vector, divide "
                "by |u| once for a length", lambda v, u: (v @ u / (u @ u)).item()),
        Mistake("the sign is lost; a vector pointing against u has a negative projection",
                lambda v, u: abs((v @ u / u.norm()).item())),
        Mistake("you divided by |v|, the length of the vector itself; divide by the length of the "
                "direction, |u|", lambda v, u: (v @ u / v.norm()).item()),
    ], integral=False, rel=1e-4, pre=_not_a_vector))
def check_projection(fn):
    """Check fn(v, direction) -> the signed length of v along direction, v . u / |u|."""


# --------------------------------------------------------------------------- parameters


@checker(NumberSpec(
    "value map parameters", [("d_model=12288, d_head=128", (12288, 128), {}),
                             ("d_model=64, d_head=16", (64, 16), {}),
                             ("d_model=5, d_head=3", (5, 3), {})],
    lambda d, dh: (d * d, 2 * d * dh), [
        Mistake("you counted one of the two factors; value-down (d_model x d_head) AND value-up "
                "(d_head x d_model) make the factored map", lambda d, dh: (d * d, d * dh)),
        Mistake("the full map is d_model x d_model (it maps a d_model vector to a d_model "
                "vector)", lambda d, dh: (d * dh, 2 * d * dh)),
        Mistake("the two numbers are swapped: return (full, factored)",
                lambda d, dh: (2 * d * dh, d * d)),
        Mistake("the factors are d_model x d_head and d_head x d_model, not d_head x d_head",
                lambda d, dh: (d * d, 2 * dh * dh)),
    ]))
def check_value_params(fn):
    """Check fn(d_model, d_head) -> (full value map's parameters, factored map's parameters)."""

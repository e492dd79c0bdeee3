"""Checkers for chapter 5 (values): the value update, a projection, designing a value map that
passes on colour but not texture.

``check_value_params`` (the value map's parameters) no longer has an exercise in chapter 5 (the
book keeps one parameter count, chapter 9's); it stays importable so that older copies run.

Conventions: x (..., T, d_model); pattern (..., T, T) with rows = queries; W_down (d_model, d_head),
W_up (d_head, d_model).
"""

from __future__ import annotations

import torch

from ._core import (
    Case,
    CheckFailure,
    Mistake,
    NumberSpec,
    TensorSpec,
    call,
    case,
    checker,
    fail,
    randn,
    run_check,
    shape_str,
)

__all__ = ["check_value_update", "check_projection", "check_colour_values", "check_value_params"]


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
    Mistake("value-down and value-up are used in the wrong order: the values are x @ W_down "
            "(d_model -> d_head), the proposed changes values @ W_up (back to d_model)", lambda x, p, Wd, Wu: x + p @ (x @ Wu.T) @ Wd.T),
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
    hint="the proposed changes (x @ W_down) @ W_up have shape (..., T, d_model)"))
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


# --------------------------------------------------------------------------- design: colour only

COLOURS = ("blue", "green")
LEAK_TOL = 0.05  # the most any coordinate but a colour may move, texture first
MIN_STRENGTH = 0.5  # every token takes at least this share of the colour it attends to


def _colour_cases():
    """(name, tokens or None, x (..., T, d_model), pattern (..., T, T)), float64."""
    from .. import example
    from ..attention import attention

    cases = []
    tokens, x = example.embed(example.PHRASE)
    W_Q, W_K = example.adjective_head()[:2]
    pattern = attention(x @ W_Q, x @ W_K, x @ W_K, is_causal=True, return_weights=True)[1]
    cases.append(("the running phrase, with the adjective head's pattern", tokens, x, pattern))
    T = len(tokens)
    average = torch.ones(T, T).tril()
    cases.append(("the running phrase, each token averaging the tokens up to it", tokens, x,
                  average / average.sum(-1, keepdim=True)))
    tokens, x = example.embed("a soft green owl slept")
    T = len(tokens)
    previous = torch.eye(T).roll(-1, dims=1).tril()
    previous[0, 0] = 1.0
    cases.append(("'a soft green owl slept', each token attending to the one before it", tokens,
                  x, previous))
    tokens, x = example.embed("the royal king ruled the blue river")
    T = len(tokens)
    scores = randn(T, T, seed=50) * 2
    scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    cases.append(("'the royal king ruled the blue river', a random causal pattern", tokens, x,
                  scores.softmax(-1)))
    cases.append(("random embeddings (a batch of 2 x 6 tokens), random patterns", None,
                  randn(2, 6, example.D_MODEL, seed=51), randn(2, 6, 6, seed=52).mul(2).softmax(-1)))
    return [(n, t, x.double(), p.double()) for n, t, x, p in cases]


def _where(tokens, row: int, case_name: str) -> str:
    """'creature' in the running phrase ..., or 'a token' for random inputs."""
    if tokens is None:
        return "a token of random embeddings"
    return f"{tokens[row]!r} in {case_name.split(',')[0]}"


def _inplace_names(err: CheckFailure) -> str | None:
    text = str(err)
    if "in place" not in text or "changed its input" not in text:
        return None
    return text.split("changed its input ", 1)[1].split(" in place", 1)[0]


def _check_pair_of_matrices(out) -> None:
    """The reader's answer is a pair (W_down, W_up) of 2-D tensors."""
    if out is None:
        fail("your function returned None - is the TODO still open, or is a `return` missing?")
    if isinstance(out, torch.Tensor):
        shape = shape_str(out.shape)
        fail(f"you returned one tensor of shape {shape}; return the pair (W_down, W_up): a "
             "value-down (d_model, d_head) and a value-up (d_head, d_model), whose product is "
             "the value map")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        got = type(out).__name__ + (f" of {len(out)} items" if isinstance(out, (tuple, list)) else "")
        fail(f"return a pair (W_down, W_up), got a {got}")
    for name, w in zip(("W_down", "W_up"), out, strict=True):
        if not isinstance(w, torch.Tensor):
            fail(f"{name} must be a torch.Tensor, got {type(w).__module__.split('.')[0]}."
                 f"{type(w).__name__}")
        if w.ndim != 2:
            fail(f"{name} must be a matrix (2 dims), got shape {shape_str(w.shape)}")


def _value_maps(out):
    """The reader's (W_down, W_up) as float64 tensors, or a diagnosis of their form and shapes."""
    from .. import example

    d = example.D_MODEL
    _check_pair_of_matrices(out)
    W_down, W_up = (w.detach().cpu().double() for w in out)
    if W_down.shape[0] != d and W_down.shape[1] == d and W_up.shape[0] == d:
        fail(f"value-down and value-up are swapped or transposed: yours have shapes "
             f"{shape_str(W_down.shape)} and {shape_str(W_up.shape)}. Value-down maps d_model to "
             f"d_head, (d_model, d_head) = ({d}, d_head); value-up maps back, (d_head, d_model); "
             "return them in that order: (W_down, W_up)")
    if W_down.shape[0] != d:
        fail(f"W_down must have shape (d_model, d_head) = ({d}, d_head), got "
             f"{shape_str(W_down.shape)}")
    if W_up.shape[1] != d:
        fail(f"W_up must have shape (d_head, d_model) = (d_head, {d}), got {shape_str(W_up.shape)}")
    if W_down.shape[1] != W_up.shape[0]:
        fail(f"W_down has {W_down.shape[1]} columns but W_up has {W_up.shape[0]} rows: both sizes "
             "are d_head, the width of the bottleneck between them")
    if not (torch.isfinite(W_down).all() and torch.isfinite(W_up).all()):
        fail("your maps contain nan or inf")
    return W_down, W_up


def _source(M: torch.Tensor, target: int, skip: int | None = None) -> int:
    """The coordinate that feeds ``target`` most in the value map M (d_model, d_model)."""
    col = M[:, target].abs().clone()
    if skip is not None:
        col[skip] = -1
    return int(col.argmax())


def _diagnose_leak(M, names, tokens, name, flat_d, others, moved, tex, identity) -> None:
    """Say what moves a coordinate other than the colours (``moved``: the largest change of each
    of ``others``; ``tex``: the texture's coordinate); always fails."""
    j = others[int(moved.argmax())] if moved[others.index(tex)] <= LEAK_TOL else tex
    row = int(flat_d[:, j].abs().argmax())
    if tokens is not None and "creature" in tokens:  # name "creature" if it moved
        mine = tokens.index("creature")
        row = mine if abs(float(flat_d[mine, j])) > LEAK_TOL else row
    where = _where(tokens, row, name)
    got = float(flat_d[row, j])
    src = _source(M, j)
    if identity:
        fail(f"your value map is the identity (W_down W_up = I, or a multiple): it "
             f"passes on every coordinate, the texture too ({where} gains {got:.2f} "
             "along `texture`, and noun, animal, ... move as well). Read only `blue` "
             "and `green` and write each back into its own coordinate")
    if j == tex and src == tex:
        fail(f"your map still copies the texture: {where} gains {got:.2f} along "
             "`texture`. Leave it out: no column of value-down may read `texture` "
             "(or value-up must write nothing into it)")
    if names[src] in COLOURS:
        fail(f"the colour read from `{names[src]}` is written into `{names[j]}` "
             f"({where} gains {got:.2f} there): value-up must write each colour back "
             "into its own coordinate")
    fail(f"your map writes into `{names[j]}` what it reads from `{names[src]}` "
         f"({where} gains {got:.2f} along `{names[j]}`): a colour head writes "
         "nothing but `blue` and `green`")


def _check_colour_arrives(M, names, tokens, name, c, d, a) -> None:
    """Colour ``c`` arrives in proportion to the colour attended to: the change ``d`` along it is
    a multiple of at least MIN_STRENGTH of ``a``, what each token attends to along it."""
    strength = float(d @ a / (a @ a))
    miss = (d - strength * a).abs()
    if float(miss.max()) > LEAK_TOL * max(1.0, abs(strength)):
        row = int(miss.argmax())
        src = _source(M, c, skip=c)
        where = _where(tokens, row, name)
        if names[src] in COLOURS and abs(float(M[c, c])) < 1e-3:
            fail(f"the colours are crossed: `{names[c]}` receives what your map reads "
                 f"from `{names[src]}` ({where}). Write each colour back into its own "
                 "coordinate: the column that reads `blue` must write `blue`")
        if names[src] in COLOURS:
            fail(f"`{names[c]}` also receives what your map reads from "
                 f"`{names[src]}` ({where}): the two colours share a column, or "
                 "value-up crosses them. Give each colour its own column and write "
                 "it back into its own coordinate")
        fail(f"your map writes into `{names[c]}` what it reads from "
             f"`{names[src]}`, so a token takes that colour from words that have "
             f"none ({where} gets {float(d[row]):.2f} of {names[c]} where it "
             f"attends to {float(a[row]):.2f}). A token's colour is its own `blue` "
             "and `green`: read those")
    if strength < MIN_STRENGTH:
        fail(_weak(names[c], strength, float(M[c, c])))


def _judge_colour_maps(M: torch.Tensor, names: list[str]) -> int:
    """Run the value map M = W_down W_up on every case; fail with the first mistake found."""
    tex = names.index("texture")
    colours = [names.index(c) for c in COLOURS]
    others = [j for j in range(len(names)) if j not in colours]  # texture included
    identity = bool((M - torch.diag(M.diagonal())).abs().max() < 1e-6
                    and (M.diagonal() > MIN_STRENGTH).sum() > len(colours) + 1)
    cases = _colour_cases()
    for name, tokens, x, pattern in cases:
        with case(name):
            delta = pattern @ x @ M  # (..., T, d_model): the change each token receives
            att = pattern @ x  # (..., T, d_model): what each token attends to
            flat_d = delta.reshape(-1, delta.shape[-1])
            flat_a = att.reshape(-1, att.shape[-1])
            # 1. texture (and, 2., every other coordinate but the colours) must not move
            moved = flat_d[:, others].abs().amax(0)  # (len(others),)
            if float(moved.max()) > LEAK_TOL:
                _diagnose_leak(M, names, tokens, name, flat_d, others, moved, tex, identity)
            # 3. each colour arrives, in proportion to the colour attended to
            for c in colours:
                _check_colour_arrives(M, names, tokens, name, c, flat_d[:, c], flat_a[:, c])
    return len(cases)


def _weak(colour: str, strength: float, own: float) -> str:
    """The message for a colour passed on too weakly (``own``: the map's entry colour -> colour)."""
    if abs(own) < 1e-3:
        who = ("'creature' takes nothing from 'blue'" if colour == "blue"
               else "'forest' takes nothing from 'verdant'")
        return (f"your map passes on no `{colour}` ({who}). Copy `{colour}` as well: read it "
                "in one column of value-down and write it back in the same row of value-up")
    if strength < 0:
        return (f"your map moves tokens AWAY from `{colour}` (strength {strength:.2f}): "
                "the entries that read and write it must give a positive product")
    return (f"your map passes on only {strength:.2f} of the `{colour}` a token attends to; "
            f"pass on at least {MIN_STRENGTH} of it (entries of 1, as in the adjective head, pass "
            "it on unchanged)")


def check_colour_values(fn):
    """Check fn(W_V, W_O) -> (W_down, W_up): a value map that passes on colour but not texture.

    ``fn`` gets the adjective head's value-down and value-up (``attnlib.example``) and returns a
    new pair, shapes (d_model, d_head) and (d_head, d_model) for any d_head, leaving its inputs
    unchanged. The value path ``pattern @ x @ W_down @ W_up`` runs on the running phrase (with the
    adjective head's pattern and with a plain average), on two other sentences and on random
    embeddings with random patterns: every token must take ``blue`` and ``green`` in proportion to the colour it attends to, at least
    MIN_STRENGTH of it; ``texture`` and every other coordinate must stay within LEAK_TOL of zero.
    Diagnoses: an in-place edit of W_V or W_O, down and up swapped or transposed, wrong shapes,
    the identity map, the texture still copied, a colour written into the wrong coordinate, a
    coordinate written from the wrong source (e.g. `adjective` read into `blue`), the two colours
    mixed in one column, a colour missing, too weak or negative.
    """
    from .. import example

    names = list(example.SEMANTIC + example.POSITION)

    def body():
        W_V, W_O = example.adjective_head()[2:]
        try:
            out = call(fn, W_V, W_O)
        except CheckFailure as err:
            which = _inplace_names(err)
            if which is None:
                raise
            fail(f"your function changed {which} in place: the chapter's adjective head would "
                 "change with it (the next cell that uses W_V or W_O gets your edit). Start from "
                 "a copy, e.g. `W_down = W_V.clone()`, or from zeros")
        W_down, W_up = _value_maps(out)
        return _judge_colour_maps(W_down @ W_up, names)

    return run_check("colour-only value map", body)

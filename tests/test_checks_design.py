"""The checkers of the predict-and-design exercises: chapter 2's predicted winners and chapter 5's
colour-only value map.

Every correct form the exercises allow passes; every listed mistake gets its own message (asserted
on key words of the printed line); stubs read "not implemented yet"; nothing raises.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlib import checks
from attnlib import example as ex

NAMES = list(ex.SEMANTIC + ex.POSITION)
TOKENS = ex.embed(ex.PHRASE)[0]


def run(capsys, checker, *args):
    ok = checker(*args)
    out = capsys.readouterr().out
    assert isinstance(ok, checks.CheckResult)
    assert " ".join(out.split()) == " ".join(ok.line.split()), out  # one verdict, nothing else
    return ok, out


def passes(capsys, checker, *args):
    ok, out = run(capsys, checker, *args)
    assert ok and out.startswith("✓"), out


def fails(capsys, checker, *args, words=()):
    ok, out = run(capsys, checker, *args)
    assert not ok and out.startswith("✗"), out
    flat = " ".join(out.split())
    for w in words:
        assert w.lower() in flat.lower(), f"{w!r} not in: {out}"
    return flat


# --------------------------------------------------------------------------- chapter 2


def roles_head():
    """The head of ex-02-predict (notebooks/02_queries_keys.ipynb builds the same one)."""
    W_Q, W_K = torch.zeros(ex.D_MODEL, 4), torch.zeros(ex.D_MODEL, 4)
    W_Q[NAMES.index("noun"), 0] = 3.0
    W_K[NAMES.index("place"), 0] = 3.0
    W_Q[NAMES.index("adjective"), 1] = 3.0
    W_Q[NAMES.index("verb"), 1] = 3.0
    W_K[NAMES.index("animal"), 1] = 3.0
    W_Q[NAMES.index("function"), 2] = 3.0
    W_K[NAMES.index("verb"), 2] = 3.0
    for word_class in ("noun", "adjective", "verb", "function"):
        W_Q[NAMES.index(word_class), 3] = 2.0
    W_K[NAMES.index("function"), 3] = -2.0
    return W_Q, W_K


RIGHT = {"a": "roamed", "fluffy": "creature", "blue": "creature", "creature": "forest",
         "roamed": "creature", "the": "roamed", "verdant": "creature", "forest": "forest"}


def predict(capsys, prediction, words=None):
    W_Q, W_K = roles_head()
    if words is None:
        return passes(capsys, checks.check_predicted_winners, prediction, W_Q, W_K)
    return fails(capsys, checks.check_predicted_winners, prediction, W_Q, W_K, words=words)


def test_the_prediction_the_solution_gives_is_the_grid_argmax():
    W_Q, W_K = roles_head()
    tokens, x = ex.embed(ex.PHRASE)
    scores = (x @ W_Q) @ (x @ W_K).T
    assert [tokens[j] for j in scores.argmax(-1)] == list(RIGHT.values())
    top2 = scores.topk(2, dim=-1).values
    assert (top2[:, 0] - top2[:, 1]).min() > 4  # every row has a clear winner
    assert (scores.argmax(-1) != torch.arange(len(tokens))).sum() == 7  # not the diagonal


@pytest.mark.parametrize("form", [
    RIGHT,
    list(RIGHT.values()),
    tuple(RIGHT.values()),
    [TOKENS.index(w) for w in RIGHT.values()],
    {i: TOKENS.index(w) for i, w in enumerate(RIGHT.values())},
    {q.upper(): f" {k.capitalize()} " for q, k in RIGHT.items()},
    np.array([TOKENS.index(w) for w in RIGHT.values()]),
    torch.tensor([TOKENS.index(w) for w in RIGHT.values()]),
    [np.int64(TOKENS.index(w)) for w in RIGHT.values()],
    dict(reversed(list(RIGHT.items()))),  # any order of the queries
], ids=["dict", "list", "tuple", "positions", "dict of positions", "capitals and spaces",
        "numpy array", "tensor", "numpy ints", "another order"])
def test_a_right_prediction_passes_in_every_allowed_form(capsys, form):
    predict(capsys, form)


def test_the_stub_reads_not_implemented(capsys):
    predict(capsys, {t: ... for t in TOKENS}, words=["not implemented yet"])
    predict(capsys, [...] * 8, words=["not implemented yet"])
    predict(capsys, {**RIGHT, "roamed": ...}, words=["no prediction yet for 'roamed'"])


def test_each_token_scoring_itself_is_named(capsys):
    out = predict(capsys, list(TOKENS), words=["themselves", "raw-similarity", "1 of 8 right"])
    assert "'forest'" not in out.split("score THEMSELVES")[0]  # forest's own winner is itself
    predict(capsys, {**RIGHT, "roamed": "roamed", "the": "the", "verdant": "verdant"},
            words=["themselves", "'roamed', 'the', 'verdant'"])


def test_the_lowest_score_is_named(capsys):
    predict(capsys, ["the"] * 8, words=["lowest", "0 of 8 right"])
    predict(capsys, ["a", "the", "a", "the", "the", "a", "the", "a"], words=["lowest"])


def test_the_grid_read_transposed_is_named(capsys):
    transposed = {**RIGHT, "creature": "fluffy", "roamed": "a", "forest": "creature"}
    predict(capsys, transposed, words=["transposed", "QUERY looks for", "5 of 8 right"])
    predict(capsys, {**RIGHT, "creature": "verdant"}, words=["transposed", "7 of 8 right"])


def test_a_causal_mask_applied_too_early_is_named(capsys):
    masked = {**RIGHT, "a": "a", "fluffy": "fluffy", "blue": "fluffy", "creature": "blue"}
    predict(capsys, masked, words=["no mask", "'a', 'fluffy', 'blue', 'creature'"])


def test_the_adjective_heads_winners_are_named(capsys):
    predict(capsys, {**RIGHT, "creature": "blue", "forest": "verdant"},
            words=["adjective head", "'forest' -> 'verdant'"])


def test_other_wrong_rows_are_listed_without_the_answer(capsys):
    out = predict(capsys, {**RIGHT, "fluffy": "forest", "verdant": "blue"},
                  words=["6 of 8 right", "wrong: 'fluffy', 'verdant'", "W_Q"])
    assert "creature" not in out  # the message does not give the answer away


@pytest.mark.parametrize("bad, words", [
    (list(RIGHT.values())[:5], ["expected 8 predictions", "got 5", "'creature'"]),
    ({**RIGHT, "a": "cat"}, ["'cat' is not a token", "'verdant', 'forest'"]),
    ({**RIGHT, "cat": "a"}, ["'cat' is not a token"]),
    ([9] * 8, ["position 9 is out of range", "0 to 7"]),
    ({"a": "roamed", "fluffy": "creature"}, ["no prediction for", "'blue'", "'forest'"]),
    ({**RIGHT, "a": 2.5}, ["got float 2.5"]),
    ({**RIGHT, "a": True}, ["got bool"]),
    ({**RIGHT, 0: "roamed"}, ["names the query 'a' twice"]),
    (None, ["None"]),
    (3.0, ["expected a dict"]),
    ("roamed creature", ["expected a dict"]),
    ({**RIGHT, "a": object()}, ["expected a word"]),
])
def test_bad_forms_get_a_clear_message(capsys, bad, words):
    predict(capsys, bad, words=words)


def test_the_head_must_be_the_exercises_shape(capsys):
    W_Q, W_K = roles_head()
    fails(capsys, checks.check_predicted_winners, RIGHT, W_Q.T, W_K, words=["(20, d_head)", "(4, 20)"])
    fails(capsys, checks.check_predicted_winners, RIGHT, W_Q, W_K[:, :3], words=["same shape"])
    fails(capsys, checks.check_predicted_winners, RIGHT, "W_Q", W_K, words=["got str"])


def test_ties_accept_either_key(capsys):
    """A head whose row has two equal winners accepts both (here: zero maps, all scores 0)."""
    zero = torch.zeros(ex.D_MODEL, 2)
    passes(capsys, checks.check_predicted_winners, list(TOKENS), zero, zero)
    passes(capsys, checks.check_predicted_winners, ["a"] * 8, zero, zero)


def test_the_old_parameter_checker_stays_importable():
    from attnlib.checks import check_qk_parameters, check_value_params

    assert callable(check_qk_parameters) and callable(check_value_params)
    assert {"check_qk_parameters", "check_value_params"} <= set(checks.__all__)


# --------------------------------------------------------------------------- chapter 5


def colour_maps(d_head=2, strength=1.0, colours=("blue", "green")):
    W_down, W_up = torch.zeros(ex.D_MODEL, d_head), torch.zeros(d_head, ex.D_MODEL)
    for col, name in enumerate(colours):
        W_down[NAMES.index(name), col] = strength
        W_up[col, NAMES.index(name)] = 1.0
    return W_down, W_up


def without_texture_read(W_V, W_O):
    W_down = W_V.clone()
    W_down[NAMES.index("texture")] = 0.0
    return W_down, W_O


def without_texture_written(W_V, W_O):
    W_up = W_O.clone()
    W_up[:, NAMES.index("texture")] = 0.0
    return W_V, W_up


def drop_the_texture_column(W_V, W_O):
    keep = [c for c in range(W_V.shape[1]) if W_V[NAMES.index("texture"), c] == 0]
    return W_V[:, keep], W_O[keep]


@pytest.mark.parametrize("answer", [
    lambda W_V, W_O: colour_maps(),
    lambda W_V, W_O: colour_maps(d_head=4),
    lambda W_V, W_O: colour_maps(strength=3.0),
    lambda W_V, W_O: colour_maps(strength=0.5),
    lambda W_V, W_O: tuple(w.double() for w in colour_maps()),
    lambda W_V, W_O: [*colour_maps()],
    lambda W_V, W_O: colour_maps(colours=("green", "blue")),
    without_texture_read,
    without_texture_written,
    drop_the_texture_column,
], ids=["from zeros", "d_head 4", "strength 3", "half strength", "float64", "a list",
        "other column order", "texture row of W_V zeroed", "texture column of W_O zeroed",
        "texture column dropped"])
def test_colour_only_maps_pass(capsys, answer):
    passes(capsys, checks.check_colour_values, answer)


def test_an_in_place_edit_of_the_heads_maps_is_named(capsys):
    def zero_in_place(W_V, W_O):
        W_V[NAMES.index("texture")] = 0.0  # no clone: the chapter's head changes too
        return W_V, W_O

    def zero_up_in_place(W_V, W_O):
        W_O[:, NAMES.index("texture")].zero_()
        return W_V, W_O

    fails(capsys, checks.check_colour_values, zero_in_place, words=["changed `W_V` in place", "clone()"])
    fails(capsys, checks.check_colour_values, zero_up_in_place, words=["changed `W_O` in place"])


def test_down_and_up_swapped_or_transposed_are_named(capsys):
    fails(capsys, checks.check_colour_values, lambda W_V, W_O: colour_maps()[::-1],
          words=["swapped or transposed", "(2, 20) and (20, 2)"])
    fails(capsys, checks.check_colour_values, lambda W_V, W_O: tuple(w.T for w in colour_maps()),
          words=["swapped or transposed"])


@pytest.mark.parametrize("answer, words", [
    (lambda W_V, W_O: (W_V, W_O), ["still copies the texture", "'creature'", "0.45"]),
    (lambda W_V, W_O: (torch.eye(ex.D_MODEL), torch.eye(ex.D_MODEL)), ["identity", "texture"]),
    (lambda W_V, W_O: (torch.eye(ex.D_MODEL)[:, :15], 2 * torch.eye(ex.D_MODEL)[:15]), ["identity"]),
])
def test_maps_that_pass_on_the_texture_are_named(capsys, answer, words):
    fails(capsys, checks.check_colour_values, answer, words=words)


def _edit(fn):
    def answer(W_V, W_O):
        W_down, W_up = colour_maps()
        fn(W_down, W_up)
        return W_down, W_up
    return answer


def _into(name):
    def edit(W_down, W_up):
        W_up[0].zero_()
        W_up[0, NAMES.index(name)] = 1.0
    return edit


def _read(name, col=0):
    def edit(W_down, W_up):
        W_down[:, col] = 0.0
        W_down[NAMES.index(name), col] = 1.0
    return edit


def _also_read(name, col=0):
    def edit(W_down, W_up):
        W_down[NAMES.index(name), col] = 1.0
    return edit


def _cross(W_down, W_up):
    W_up[:] = W_up.flip(0)


@pytest.mark.parametrize("answer, words", [
    (_edit(_into("adjective")), ["read from `blue` is written into `adjective`", "'creature'"]),
    (_edit(_into("texture")), ["read from `blue` is written into `texture`"]),
    (_edit(_cross), ["crossed", "`blue` receives what your map reads from `green`"]),
    (_edit(_read("adjective")), ["writes into `blue` what it reads from `adjective`", "none"]),
    (_edit(_read("royalty")), ["passes on no `blue`"]),
    (_edit(_also_read("royalty")), ["royal king", "writes into `blue` what it reads from `royalty`"]),
    (_edit(_read("person", col=1)), ["writes into `green` what it reads from `person`"]),
    (lambda W_V, W_O: colour_maps(colours=("blue",), d_head=1), ["passes on no `green`", "'verdant'"]),
    (lambda W_V, W_O: colour_maps(colours=("green",), d_head=1), ["passes on no `blue`", "'creature'"]),
    (lambda W_V, W_O: colour_maps(strength=-1.0), ["AWAY from `blue`"]),
    (lambda W_V, W_O: colour_maps(strength=0.3), ["only 0.30", "at least 0.5"]),
])
def test_each_wrong_colour_map_gets_its_own_message(capsys, answer, words):
    fails(capsys, checks.check_colour_values, answer, words=words)


def test_one_column_for_both_colours_is_named(capsys):
    def shared(W_V, W_O):
        W_down, W_up = torch.zeros(ex.D_MODEL, 1), torch.zeros(1, ex.D_MODEL)
        for name in ("blue", "green"):
            W_down[NAMES.index(name), 0] = W_up[0, NAMES.index(name)] = 1.0
        return W_down, W_up

    fails(capsys, checks.check_colour_values, shared, words=["share a column", "its own column"])


def test_an_answer_right_on_the_running_phrase_only_fails_elsewhere(capsys):
    """Reading `royalty` changes nothing in the running phrase: the other sentences catch it."""
    out = fails(capsys, checks.check_colour_values, _edit(_also_read("royalty", col=0)))
    assert "running phrase" not in out and "'king'" in out, out
    out = fails(capsys, checks.check_colour_values, _edit(_also_read("medicine", col=1)))
    assert "running phrase" not in out and "random embeddings" in out, out


@pytest.mark.parametrize("answer, words", [
    (lambda W_V, W_O: None, ["returned None"]),
    (lambda W_V, W_O: W_V @ W_O, ["one tensor of shape (20, 20)", "pair (W_down, W_up)"]),
    (lambda W_V, W_O: (W_V,), ["pair", "tuple of 1 items"]),
    (lambda W_V, W_O: (W_V.numpy(), W_O), ["numpy.ndarray"]),
    (lambda W_V, W_O: (W_V, W_O[:3]), ["4 columns but W_up has 3 rows"]),
    (lambda W_V, W_O: (W_V[:5], W_O), ["W_down must have shape (d_model, d_head)", "(5, 4)"]),
    (lambda W_V, W_O: (W_V, W_O[:, :5]), ["W_up must have shape (d_head, d_model)"]),
    (lambda W_V, W_O: (W_V[0], W_O), ["2 dims"]),
    (lambda W_V, W_O: (W_V * float("nan"), W_O), ["nan"]),
    (lambda W_V, W_O: 1 / 0, ["raised ZeroDivisionError"]),
    (lambda W_V: W_V, ["signature"]),
    (42, ["expected a function"]),
])
def test_bad_returns_get_a_clear_message(capsys, answer, words):
    fails(capsys, checks.check_colour_values, answer, words=words)


def test_the_colour_stub_reads_not_implemented(capsys):
    def colour_only(W_V, W_O):
        raise NotImplementedError

    fails(capsys, checks.check_colour_values, colour_only, words=["not implemented yet"])

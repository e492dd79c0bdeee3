"""Checkers for chapter 2 (queries and keys): the grid of query-key dot products, designing a
head, predicting a head's winners before computing them.

``check_qk_parameters`` (counting W_Q/W_K) no longer has an exercise in chapter 2 (the book keeps
one parameter count, chapter 9's); it stays importable so that older copies of the chapter run.
"""

from __future__ import annotations

import math

import torch

from .. import _validate as V
from ..attention import attention
from ._core import (
    Case,
    Mistake,
    NotImplementedYet,
    NumberSpec,
    TensorSpec,
    case,
    checker,
    fail,
    randn,
    run_check,
    shape_str,
)

__all__ = [
    "check_score_grid", "check_verb_head", "check_predicted_winners", "check_qk_parameters",
]


def _grid(x, W_Q, W_K):
    return (x @ W_Q) @ (x @ W_K).transpose(-2, -1)


def _grid_cases():
    inputs = [
        ("5 tokens, d_model = 8, d_head = 3", randn(5, 8, seed=60), randn(8, 3, seed=61),
         randn(8, 3, seed=62)),
        ("a batch of 2 x 4 tokens, d_model = 6, d_head = 5",
         randn(2, 4, 6, seed=63), randn(6, 5, seed=64), randn(6, 5, seed=65)),
    ]
    return [Case(name, (x, wq, wk), _grid(x, wq, wk)) for name, x, wq, wk in inputs]


@checker(TensorSpec(
    "score grid", _grid_cases, [
        Mistake("your grid is transposed: rows must be queries and columns keys, so compute "
                "q @ k.transpose(-2, -1), not k @ q^T",
                lambda x, wq, wk: _grid(x, wq, wk).transpose(-2, -1)),
        Mistake("you used W_Q for the keys as well: keys are x @ W_K",
                lambda x, wq, wk: _grid(x, wq, wq)),
        Mistake("you used W_K for the queries as well: queries are x @ W_Q",
                lambda x, wq, wk: _grid(x, wk, wk)),
        Mistake("you dotted the embeddings directly (x @ x^T); map them first: q = x @ W_Q, "
                "k = x @ W_K", lambda x, wq, wk: x @ x.transpose(-2, -1)),
        Mistake("you scaled by 1/sqrt(d_head); that comes in chapter 3 - here return the raw dot "
                "products", lambda x, wq, wk: _grid(x, wq, wk) / math.sqrt(wq.shape[-1])),
    ], reference=_grid, layout="(..., T, T)",
    otherwise="the grid is wrong: expected (x @ W_Q) @ (x @ W_K)^T",
    hint="shapes: x (..., T, d_model), W_Q and W_K (d_model, d_head)"))
def check_score_grid(fn):
    """Check fn(x, W_Q, W_K) -> the raw grid of query-key dot products, queries as rows."""


_VERB_SENTENCES = (
    ("a fluffy blue creature roamed the verdant forest", "roamed", "creature"),
    ("the fox slept", "slept", "fox"),
    ("the royal king ruled", "ruled", "king"),
    ("a soft owl slept", "slept", "owl"),
    ("the fox of one slept", "slept", "fox"),  # the subject is NOT the previous token
)


def _causal_pattern(wq, wk, x):
    """The causal attention pattern of the head (wq, wk) on embeddings x (T, d_model)."""
    q, k = x @ wq, x @ wk
    return attention(q, k, k, is_causal=True, return_weights=True)[1]


def _check_qk_shapes(W_Q, W_K, d_model: int) -> None:
    """W_Q and W_K: tensors of one shape (d_model, d_head)."""
    for name, w in (("W_Q", W_Q), ("W_K", W_K)):
        if not isinstance(w, torch.Tensor):
            fail(f"{name} must be a torch.Tensor, got {type(w).__name__}")
        if w.ndim != 2 or w.shape[0] != d_model:
            fail(f"{name} must have shape (d_model, d_head) = ({d_model}, d_head), got "
                 f"{shape_str(w.shape)}")
    if W_Q.shape != W_K.shape:
        fail(f"W_Q and W_K must have the same shape (queries are dotted with keys), got "
             f"{shape_str(W_Q.shape)} and {shape_str(W_K.shape)}")


def _diagnose_verb(wq, wk, x, toks, verb, subject, threshold) -> None:
    """Say why ``verb`` does not attend to ``subject`` with weight > threshold (always fails)."""
    w = _causal_pattern(wq, wk, x)[toks.index(verb)]
    got = float(w[toks.index(subject)])
    swapped = float(_causal_pattern(wk, wq, x)[toks.index(verb), toks.index(subject)])
    if swapped > threshold:
        fail("the roles of W_Q and W_K are swapped: the verb ASKS (its query, x @ W_Q, "
             "should read the verb direction) and the noun ANSWERS (its key, x @ W_K, "
             "should read the noun direction)")
    visible = w[: toks.index(verb) + 1]
    if float(visible.max() - visible.min()) < 1e-4:
        fail(f"{verb!r} spreads its weight evenly over every word it can see: all its "
             "scores are equal (a head of zeros does that). Set entries so that a verb's "
             "query matches a noun's key")
    top = int(w.argmax())
    if top == toks.index(verb) - 1 and toks[top] != subject:
        fail(f"{verb!r} attends to the token right before it ({toks[top]!r}), not to "
             f"its subject {subject!r}: a previous-token head only looks right when "
             "the subject happens to come just before the verb. Match a verb's query "
             "with a NOUN's key (read 'verb' in W_Q and 'noun' in W_K)")
    if toks[top] == subject:
        fail(f"{verb!r} attends most to {subject!r}, but only with weight {got:.2f} "
             f"(needs > {threshold}): make the matching weights larger")
    fail(f"{verb!r} puts weight {got:.2f} on {subject!r} and {float(w[top]):.2f} on "
         f"{toks[top]!r}; its query should match the key of a noun (read 'verb' in W_Q "
         "and 'noun' in W_K in the same column)")


def _weight_threshold(who: str, val) -> float:
    """A checker's ``threshold`` on an attention weight: a number in (0, 1). At 0 or below a head of
    zeros would pass (its uniform weights lie above), at 1 or above no head could (no weight does)."""
    x = V.real(who, "threshold", val)
    if not 0.0 < x < 1.0:  # also False for NaN
        raise ValueError(f"{who}: threshold must be an attention weight in (0, 1), got {val!r}")
    return x


def check_verb_head(W_Q, W_K, threshold: float = 0.5):
    """Check a designed head (W_Q, W_K): every verb attends to its subject with weight > threshold.

    ``W_Q`` and ``W_K`` are (d_model, d_head) for ``attnlib.example`` (d_model = 20, any d_head).
    The pattern is ``attnlib.attention`` with the causal mask and the 1/sqrt(d_head) scale on
    ``example.embed(sentence)`` (tokens plus positions). Sentences: the running phrase ("roamed" ->
    "creature"), "the fox slept", "the royal king ruled", "a soft owl slept".
    Diagnoses: wrong shapes, the roles of W_Q and W_K swapped, a verb attending to something else
    (named, with its weight), the right key but too weakly. ``threshold`` must lie in (0, 1) (else
    a ValueError: at 0 or below a head of zeros would pass).
    """
    from .. import example

    threshold = _weight_threshold("check_verb_head", threshold)  # the caller's error: raised, not judged

    def body():
        _check_qk_shapes(W_Q, W_K, example.D_MODEL)
        wq, wk = W_Q.detach().float(), W_K.detach().float()
        for sentence, verb, subject in _VERB_SENTENCES:
            with case(sentence):
                toks, x = example.embed(sentence)
                w = _causal_pattern(wq, wk, x)[toks.index(verb)]
                if float(w[toks.index(subject)]) <= threshold:
                    _diagnose_verb(wq, wk, x, toks, verb, subject, threshold)
        return len(_VERB_SENTENCES)

    return run_check("verb head", body, unit="sentences")


@checker(NumberSpec(
    "query/key parameters", [
        ("d_model=16, d_head=4, n_heads=1, n_layers=1", (16, 4, 1, 1), {}),
        ("d_model=20, d_head=4, n_heads=3, n_layers=2", (20, 4, 3, 2), {}),
        ("d_model=12288, d_head=128, n_heads=96, n_layers=96", (12288, 128, 96, 96), {}),
        ("d_model=30, d_head=7, n_heads=5, n_layers=3", (30, 7, 5, 3), {}),
    ], lambda d, dh, H, L: 2 * d * dh * H * L, [
        Mistake("you counted one matrix; each head has both a W_Q and a W_K",
                lambda d, dh, H, L: d * dh * H * L),
        Mistake("you left out the heads: every head has its own W_Q and W_K",
                lambda d, dh, H, L: 2 * d * dh * L),
        Mistake("you left out the layers: every layer has its own heads",
                lambda d, dh, H, L: 2 * d * dh * H),
        Mistake("you counted one head of one layer; multiply by the heads and the layers",
                lambda d, dh, H, L: 2 * d * dh),
        Mistake("W_Q and W_K map d_model to d_head, so each has d_model x d_head entries, not "
                "d_model x d_model", lambda d, dh, H, L: 2 * d * d * H * L),
        Mistake("you counted all four matrices of a head (W_Q, W_K, W_V, W_O); this asks for the "
                "queries and keys only", lambda d, dh, H, L: 4 * d * dh * H * L),
    ], hint="fn(d_model, d_head, n_heads, n_layers) returns a number"))
def check_qk_parameters(fn):
    """Check fn(d_model, d_head, n_heads, n_layers) -> the query and key parameters of a model."""


# --------------------------------------------------------------------------- predict, then compute


def _phrase_grid(W_Q, W_K):
    """(tokens, scores (T, T)) of a head on the running phrase, tokens plus positions, no mask."""
    from .. import example

    tokens, x = example.embed(example.PHRASE)
    x = x.double()
    return tokens, (x @ W_Q.detach().double()) @ (x @ W_K.detach().double()).T


def _quoted(words) -> str:
    return ", ".join(repr(w) for w in words)


def _position(item, tokens: list[str], what: str) -> int:
    """One item of a prediction (a word of the phrase, or its position) as a position."""
    if isinstance(item, torch.Tensor) and item.numel() == 1 and not item.is_floating_point():
        item = item.item()
    if type(item).__module__ == "numpy" and hasattr(item, "item"):
        item = item.item()
    if isinstance(item, str):
        word = item.strip().strip("'\"").lower()
        if word not in tokens:
            fail(f"{what}: {item!r} is not a token of the phrase; the tokens are "
                 f"{_quoted(tokens)}")
        return tokens.index(word)
    if isinstance(item, int) and not isinstance(item, bool):
        if not 0 <= item < len(tokens):
            fail(f"{what}: position {item} is out of range; the phrase has positions 0 to "
                 f"{len(tokens) - 1} ({_quoted(tokens)})")
        return item
    fail(f"{what}: expected a word of the phrase (or its position, 0 to {len(tokens) - 1}), "
         f"got {type(item).__name__} {item!r}")


def _by_query(prediction: dict, tokens: list[str]) -> list:
    """The values of a dict prediction {query: key} in the phrase's order, every query once."""
    by_query: dict[int, object] = {}
    for q, v in prediction.items():
        i = _position(q, tokens, "a query of your dict")
        if i in by_query:
            fail(f"your dict names the query {tokens[i]!r} twice")
        by_query[i] = v
    missing = [tokens[i] for i in range(len(tokens)) if i not in by_query]
    if missing:
        fail(f"no prediction for {_quoted(missing)}: give every query of the phrase "
             f"({_quoted(tokens)}) the key you expect it to score highest")
    return [by_query[i] for i in range(len(tokens))]


def _as_prediction(prediction, tokens: list[str]) -> list[int]:
    """The reader's prediction as one key position per query, or a diagnosis.

    Accepted: a dict {query: key} with all the queries (words or positions on either side), or a
    list/tuple (or 1-D tensor/array) of one key per query, in the phrase's order.
    """
    T = len(tokens)
    if prediction is None:
        fail("your prediction is None: write one key per query, as {query word: key word}")
    if hasattr(prediction, "tolist") and not isinstance(prediction, (list, tuple, dict)):
        prediction = prediction.tolist()
    if isinstance(prediction, dict):
        items = list(prediction.values())
    elif isinstance(prediction, (list, tuple)):
        items = list(prediction)
    else:
        fail(f"expected a dict {{query word: key word}} or a list of {T} key words, got "
             f"{type(prediction).__name__}")
    if items and all(v is Ellipsis for v in items):
        raise NotImplementedYet("not implemented yet: replace each ... with the key word you "
                                "predict")
    if isinstance(prediction, dict):
        items = _by_query(prediction, tokens)
    elif len(items) != T:
        fail(f"expected {T} predictions, one per query ({_quoted(tokens)}), got {len(items)}")
    blank = [tokens[i] for i, v in enumerate(items) if v is Ellipsis]
    if blank:
        fail(f"no prediction yet for {_quoted(blank)}: replace each ... with a word")
    return [_position(v, tokens, f"the prediction for {tokens[i]!r}") for i, v in enumerate(items)]


def _near(values: torch.Tensor, target: float, tol: float) -> set[int]:
    return {int(j) for j in torch.nonzero((values - target).abs() <= tol).flatten()}


def _check_exercise_head(W_Q, W_K, d_model: int) -> None:
    """The exercise's W_Q and W_K: tensors of one shape (d_model, d_head)."""
    for name, w in (("W_Q", W_Q), ("W_K", W_K)):
        if not isinstance(w, torch.Tensor) or w.ndim != 2 or w.shape[0] != d_model:
            got = shape_str(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            fail(f"pass the exercise's {name}, a (d_model, d_head) = ({d_model}, "
                 f"d_head) tensor, got {got}")
    if W_Q.shape != W_K.shape:
        fail(f"W_Q and W_K must have the same shape, got {shape_str(W_Q.shape)} and "
             f"{shape_str(W_K.shape)}")


def check_predicted_winners(prediction, W_Q, W_K):
    """Check a prediction of the key each query of the running phrase scores highest.

    ``prediction`` is a dict {query word: key word} for all the tokens of ``example.PHRASE`` (words
    or positions on either side), or a list of one key per query in the phrase's order. The grid
    is ``(x @ W_Q) @ (x @ W_K).T`` on ``example.embed(example.PHRASE)`` (tokens plus positions, no
    mask, no scale); keys within a tenth of the grid's range of a row's best count as ties.
    Diagnoses, each with its own message: each token predicted to score itself (the raw-similarity
    intuition), the lowest score of each row, the grid read transposed (a key's row instead of
    the query's), the causal mask applied too early, the chapter's adjective head's winners, and
    wrong forms (length, unknown words, positions out of range, missing queries).
    """
    from .. import example

    def body():
        _check_exercise_head(W_Q, W_K, example.D_MODEL)
        tokens, s = _phrase_grid(W_Q, W_K)
        pred = _as_prediction(prediction, tokens)
        T = len(tokens)
        tol = 0.1 * float(s.max() - s.min())
        best = [_near(s[i], float(s[i].max()), tol) for i in range(T)]
        wrong = [i for i in range(T) if pred[i] not in best[i]]
        if not wrong:
            return T
        # what each known misreading would have given, row by row
        low = [_near(s[i], float(s[i].min()), tol) for i in range(T)]
        col = [_near(s[:, i], float(s[:, i].max()), tol) for i in range(T)]
        row_clear = [float(s[i].median() - s[i].min()) > 2 * tol for i in range(T)]
        col_clear = [float(s[:, i].max() - s[:, i].median()) > 2 * tol for i in range(T)]
        _, s_adj = _phrase_grid(*example.adjective_head()[:2])
        tol_adj = 0.1 * float(s_adj.max() - s_adj.min())
        adj = [_near(s_adj[i], float(s_adj[i].max()), tol_adj) for i in range(T)]
        adj_clear = [float(s_adj[i].max() - s_adj[i].median()) > 2 * tol_adj for i in range(T)]
        pairs = ", ".join(f"{tokens[i]!r} -> {tokens[pred[i]]!r}" for i in wrong[:3])
        n_right = f"{T - len(wrong)} of {T} right"

        ahead = [i for i in wrong if max(best[i]) > i >= pred[i]]
        if ahead and len(ahead) == len(wrong):
            fail(f"{n_right}: for {_quoted(tokens[i] for i in ahead)} you picked a token at or "
                 "before the query, but these raw scores have no mask: every query scores every "
                 "key, the later ones too (chapter 4 hides the future)")
        selfish = [i for i in wrong if pred[i] == i]
        if len(selfish) * 2 >= len(wrong):
            others = len(wrong) - len(selfish)
            fail(f"{n_right}: you predicted that {_quoted(tokens[i] for i in selfish)} score "
                 "THEMSELVES highest, the raw-similarity intuition (x_i . x_i is the largest dot "
                 "product of the embeddings). But q_i = x_i W_Q and k_i = x_i W_K read different "
                 "coordinates, so a token need not answer its own question: for each query, see "
                 "which coordinates W_Q reads, and which key has the ones W_K reads"
                 + (f" ({others} other {'row is' if others == 1 else 'rows are'} wrong too)" if others
                    else ""))
        if all(pred[i] in low[i] for i in wrong) and any(row_clear[i] for i in wrong):
            fail(f"{n_right}: you picked the LOWEST score of each row ({pairs}). The winner is "
                 "the key with the largest, most positive q . k; a negative product counts "
                 "against a key")
        if all(pred[i] in col[i] for i in wrong) and any(col_clear[i] for i in wrong):
            fail(f"{n_right}: for {pairs} you picked a token whose QUERY looks for the query "
                 "token, which reads the grid transposed (a column instead of a row, or W_Q and "
                 "W_K swapped). Row i lists the keys that answer query i: take the token's own "
                 "query, x_i W_Q, and find the key x_j W_K that matches it best")
        like_adj = [i for i in wrong if adj_clear[i]]
        if like_adj and all(pred[i] in adj[i] for i in like_adj):
            shown = ", ".join(f"{tokens[i]!r} -> {tokens[pred[i]]!r}" for i in like_adj)
            fail(f"{n_right}: {shown} is what the chapter's adjective head does; this head reads "
                 "other coordinates. Start from its own entries of W_Q and W_K")
        fail(f"{n_right}; wrong: {_quoted(tokens[i] for i in wrong)}. For each of them, write out "
             "its query: which of the token's coordinates does W_Q read, into which column? Then "
             "find the key with the largest entry in the same column (example.word_features "
             "lists a word's coordinates)")

    return run_check("predicted winners", body, unit="predictions")

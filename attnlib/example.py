"""The book's running example: a tiny vocabulary, a hand-built embedding space and hand-set heads.

Everything here is built by hand, not learned. Each coordinate of the embedding space has a name,
so the reader can read every vector and every weight. Real models learn their embeddings, and their
meaningful directions are not lined up with the coordinate axes; the arithmetic is the same.

The embedding space (``D_MODEL = 20`` coordinates):

* 14 *semantic* directions, one per coordinate (``SEMANTIC``): the word classes ``noun``,
  ``adjective``, ``verb``, ``function`` (determiners, prepositions, numerals), the topics
  ``animal``, ``place``, ``person``, ``chemistry``, ``medicine``, the properties ``blue``, ``green``,
  ``texture``, ``royalty`` and a signed ``gender`` direction (+1 male, -1 female);
* 6 *position* coordinates (``POSITION``): ``position_encoding`` writes sines and cosines of the
  position there, at three hand-picked frequencies (periods of 16, 6 and 4 positions), in the
  spirit of the sinusoidal encoding of Vaswani et al. (2017). Token embeddings leave these
  coordinates (almost) empty, so ``embed(text)`` = token embedding + position encoding keeps the
  two kinds of information apart.

Token embeddings are a sum of named directions with hand-picked strengths plus a little seeded
Gaussian noise (std ``NOISE``), so no two vectors are exactly orthogonal and nothing is exactly
round. An ambiguous word is a blend: "mole" is part animal, part chemistry, part medicine.

Hand-set heads (``Head`` = (W_Q, W_K, W_V, W_O), shapes (d_model, d_head) x 3 and (d_head, d_model),
``D_HEAD = 4``, used as ``q = x @ W_Q`` with rows = positions):

* ``adjective_head``: nouns query for adjectives (and prefer nearby ones); the value maps copy the
  colour and texture of the adjectives into the noun. "creature" attends to "fluffy" and "blue",
  "forest" to "verdant".
* ``topic_head``: nouns query for topic words (shrew, carbon, biopsy, ...), and the value maps copy
  the topic; it moves the ambiguous "mole" toward its meaning in context.
* ``previous_token_head``: every position attends to the one before it, using position information
  only; its values copy the previous token's word class at half strength.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from . import _validate as V
from .tokenizer import Tokenizer

__all__ = [
    "PHRASE", "MOLE_SENTENCES", "SEMANTIC", "POSITION", "D_MODEL", "D_HEAD", "NOISE", "SEED",
    "FREQUENCIES", "vocabulary", "tokenizer", "word_features", "direction", "embedding_table",
    "token_embedding", "position_encoding", "embed", "Head", "adjective_head", "topic_head",
    "previous_token_head", "nearest", "cosine_similarity",
]

PHRASE = "a fluffy blue creature roamed the verdant forest"
MOLE_SENTENCES = ("american shrew mole", "one mole of carbon dioxide", "take a biopsy of the mole")

SEMANTIC = ("noun", "adjective", "verb", "function", "animal", "place", "person", "chemistry",
            "medicine", "blue", "green", "texture", "royalty", "gender")
FREQUENCIES = (2 * math.pi / 16, 2 * math.pi / 6, 2 * math.pi / 4)  # radians per position
POSITION = tuple(f"{fn}{i}" for i in range(len(FREQUENCIES)) for fn in ("sin", "cos"))
D_MODEL = len(SEMANTIC) + len(POSITION)  # 20
D_HEAD = 4
NOISE = 0.05
SEED = 0

# Each word: its named features and their strengths (every other coordinate is 0 before noise).
_WORDS: dict[str, dict[str, float]] = {
    # function words
    "a": {"function": 1.0},
    "the": {"function": 1.0},
    "one": {"function": 1.0},
    "of": {"function": 1.0},
    # adjectives
    "fluffy": {"adjective": 1.0, "texture": 1.0},
    "soft": {"adjective": 1.0, "texture": 0.8},
    "blue": {"adjective": 1.0, "blue": 1.0},
    "green": {"adjective": 1.0, "green": 1.0},
    "verdant": {"adjective": 1.0, "green": 0.9, "place": 0.3},
    "american": {"adjective": 1.0, "place": 0.4},
    "royal": {"adjective": 1.0, "royalty": 1.0},
    # nouns
    "creature": {"noun": 1.0, "animal": 0.8},
    "forest": {"noun": 1.0, "place": 1.0},
    "meadow": {"noun": 1.0, "place": 1.0, "green": 0.2},
    "river": {"noun": 1.0, "place": 0.9, "blue": 0.2},
    "shrew": {"noun": 1.0, "animal": 1.0},
    "fox": {"noun": 1.0, "animal": 1.0},
    "owl": {"noun": 1.0, "animal": 1.0},
    "mole": {"noun": 1.0, "animal": 0.3, "chemistry": 0.3, "medicine": 0.3},
    "carbon": {"noun": 1.0, "chemistry": 1.0},
    "dioxide": {"noun": 1.0, "chemistry": 1.0},
    "biopsy": {"noun": 1.0, "medicine": 1.0},
    "doctor": {"noun": 1.0, "medicine": 0.8, "person": 1.0},
    "king": {"noun": 1.0, "person": 1.0, "royalty": 1.0, "gender": 1.0},
    "queen": {"noun": 1.0, "person": 1.0, "royalty": 1.0, "gender": -1.0},
    "man": {"noun": 1.0, "person": 1.0, "gender": 1.0},
    "woman": {"noun": 1.0, "person": 1.0, "gender": -1.0},
    # verbs
    "roamed": {"verb": 1.0, "place": 0.2},
    "slept": {"verb": 1.0},
    "take": {"verb": 1.0},
    "ruled": {"verb": 1.0, "royalty": 0.5},
}


def vocabulary() -> list[str]:
    """The words of the example, in a fixed order (their ids)."""
    return list(_WORDS)


def tokenizer() -> Tokenizer:
    """An ``attnlib.Tokenizer`` over ``vocabulary()`` (no unknown token: unknown words raise)."""
    return Tokenizer(vocabulary())


def _index(name: str) -> int:
    names = SEMANTIC + POSITION
    if name not in names:
        raise ValueError(f"direction: unknown direction {name!r}; the directions are {list(names)}")
    return names.index(name)


def direction(name: str) -> torch.Tensor:
    """Unit vector (D_MODEL,) of the named direction (a semantic one or a position coordinate)."""
    v = torch.zeros(D_MODEL)
    v[_index(name)] = 1.0
    return v


def word_features(word: str) -> dict[str, float]:
    """The named features a word was built from, e.g. ``{"adjective": 1.0, "blue": 1.0}``."""
    if not isinstance(word, str):
        raise TypeError(f"word_features: word must be a str, got {V.describe(word)}")
    if word not in _WORDS:
        raise KeyError(f"word_features: {word!r} is not in the example's vocabulary")
    return dict(_WORDS[word])


def embedding_table(noise: float = NOISE, seed: int = SEED) -> tuple[list[str], torch.Tensor]:
    """The embedding table: ``(tokens, E)`` with E (V, D_MODEL); row i is the vector of tokens[i].

    Row = sum of the word's named directions times their strengths, plus Gaussian noise of std
    ``noise`` drawn from a generator seeded with ``seed`` (the same table every call).
    """
    V.finite_float("embedding_table", "noise", noise, low=0.0)
    seed = V.seed("embedding_table", "seed", seed)  # an int: torch refuses numpy ints
    words = vocabulary()
    E = torch.zeros(len(words), D_MODEL)
    for i, w in enumerate(words):
        for name, strength in _WORDS[w].items():
            E[i, _index(name)] = strength
    if noise:
        g = torch.Generator().manual_seed(seed)
        E = E + noise * torch.randn(E.shape, generator=g)
    return words, E


def token_embedding(text) -> tuple[list[str], torch.Tensor]:
    """Look the tokens of ``text`` (a string or a list of words) up: ``(tokens, x)``, x (T, D_MODEL).
    A word outside the vocabulary raises a ``KeyError`` naming it (as the tokenizer does)."""
    return _lookup("token_embedding", text)


def _lookup(who: str, text) -> tuple[list[str], torch.Tensor]:
    """token_embedding, its checks named after ``who`` (the function the reader called)."""
    tok = tokenizer()
    if not isinstance(text, (str, list, tuple)):
        raise TypeError(f"{who}: text must be a str or a list of words, got {V.describe(text)}")
    words = tok.split(text) if isinstance(text, str) else V.words(who, "text", text)
    unknown = tok.unknown(words)
    if unknown:
        raise KeyError(f"{who}: {unknown[0]!r} is not in the example's vocabulary (example.vocabulary())")
    ids = tok.encode(text)
    _, E = embedding_table()
    return tok.tokens(ids), E[torch.tensor(ids, dtype=torch.long)]


def position_encoding(T: int, offset: int = 0) -> torch.Tensor:
    """Position information (T, D_MODEL): zero on the semantic coordinates; on the position ones,
    ``sin(w * p)`` and ``cos(w * p)`` of the position p = offset .. offset+T-1 for each w in FREQUENCIES.

    A shift by one position is a fixed rotation of each (sin, cos) pair, which is what lets a head
    find "the previous token" with a fixed linear map (``previous_token_head``).
    """
    V.positive_int("position_encoding", "T", T)
    offset = V.nonneg_int("position_encoding", "offset", offset)
    p = torch.arange(offset, offset + T, dtype=torch.float32)
    pe = torch.zeros(T, D_MODEL)
    for i, w in enumerate(FREQUENCIES):
        pe[:, _index(f"sin{i}")] = torch.sin(w * p)
        pe[:, _index(f"cos{i}")] = torch.cos(w * p)
    return pe


def embed(text, positions: bool = True) -> tuple[list[str], torch.Tensor]:
    """``(tokens, x)`` with x (T, D_MODEL): token embeddings, plus the position encoding when
    ``positions`` is True (the input a transformer's first layer sees)."""
    V.flags("embed", positions=positions)
    tokens, x = _lookup("embed", text)
    if positions:
        x = x + position_encoding(len(tokens))
    return tokens, x


class Head(NamedTuple):
    """One attention head's four maps; unpack as ``W_Q, W_K, W_V, W_O = head``.

    W_Q, W_K, W_V (D_MODEL, D_HEAD) act on rows: ``q = x @ W_Q``. W_O (D_HEAD, D_MODEL) is the value-up
    map: the head's proposed change is ``pattern @ (x @ W_V) @ W_O``.
    """

    W_Q: torch.Tensor
    W_K: torch.Tensor
    W_V: torch.Tensor
    W_O: torch.Tensor


def _zeros() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.zeros(D_MODEL, D_HEAD), torch.zeros(D_MODEL, D_HEAD), torch.zeros(D_MODEL, D_HEAD),
            torch.zeros(D_HEAD, D_MODEL))


def adjective_head(strength: float = 3.0, nearby: float = 2.0) -> Head:
    """A head in which nouns look for adjectives, preferring nearby ones.

    Query/key columns (D_HEAD = 4):
      0: query = ``strength`` x noun-ness, key = ``strength`` x adjective-ness, so a noun's query
         meets an adjective's key with a score of about strength**2 = 9 (before the 1/sqrt(d_head));
      1: unused (zero);
      2, 3: query and key both read the slowest (sin, cos) position pair times ``nearby``, adding
         nearby**2 * cos(2 pi (i - j) / 16): largest for nearby positions. Without position
         information in x (``embed(..., positions=False)``) these columns see only noise.
    Value-down/up: columns 0, 1, 2 copy the ``blue``, ``green`` and ``texture`` coordinates, so the
    proposed change of a noun is the colour and texture of the adjectives it attends to.
    """
    V.finite_float("adjective_head", "strength", strength)
    V.finite_float("adjective_head", "nearby", nearby)
    W_Q, W_K, W_V, W_O = _zeros()
    W_Q[_index("noun"), 0] = strength
    W_K[_index("adjective"), 0] = strength
    for col, name in ((2, "sin0"), (3, "cos0")):
        W_Q[_index(name), col] = nearby
        W_K[_index(name), col] = nearby
    for col, name in enumerate(("blue", "green", "texture")):
        W_V[_index(name), col] = 1.0
        W_O[col, _index(name)] = 1.0
    return Head(W_Q, W_K, W_V, W_O)


def topic_head(strength: float = 3.0) -> Head:
    """A head in which nouns look for topic words and copy their topic.

    Column 0: query = ``strength`` x noun-ness, key = ``strength`` x (animal + chemistry + medicine).
    Value-down/up: columns 0, 1, 2 copy ``animal``, ``chemistry`` and ``medicine``. The ambiguous
    "mole" is a weak blend of the three topics, so it attends mostly to the clear topic words around
    it and moves toward their topic. It needs to see those words: in "one mole of carbon dioxide"
    they come *after* "mole", so use it without a causal mask to resolve that sentence.
    """
    V.finite_float("topic_head", "strength", strength)
    W_Q, W_K, W_V, W_O = _zeros()
    W_Q[_index("noun"), 0] = strength
    for col, name in enumerate(("animal", "chemistry", "medicine")):
        W_K[_index(name), 0] = strength
        W_V[_index(name), col] = 1.0
        W_O[col, _index(name)] = 1.0
    return Head(W_Q, W_K, W_V, W_O)


def previous_token_head(strength: float = 2.5) -> Head:
    """A head in which every position attends to the position just before it.

    It reads only the two fastest position pairs (periods 6 and 4). The query keeps a position's
    (sin, cos) pairs; the key rotates each pair one step forward, so the key of position j looks
    like position j + 1, and the query of i matches it best when j = i - 1. The score is
    strength**2 * (cos(w1 (i-j-1)) + cos(w2 (i-j-1))), which peaks at j = i - 1 with a margin of at
    least 1.5 * strength**2 over every other key for sequences of up to 12 tokens.
    Value-down/up: columns 0-3 copy the previous token's word class (noun, adjective, verb,
    function) at half strength. The first position has no previous token; under a causal mask it
    attends to itself.
    """
    V.finite_float("previous_token_head", "strength", strength)
    W_Q, W_K, W_V, W_O = _zeros()
    for pair, i in enumerate((1, 2)):
        w = FREQUENCIES[i]
        s, c = _index(f"sin{i}"), _index(f"cos{i}")
        cq, sq = 2 * pair, 2 * pair + 1  # query/key columns of this pair
        # query: (sin wi, cos wi); key: rotated by +w: (sin w(j+1), cos w(j+1))
        W_Q[s, cq] = strength
        W_Q[c, sq] = strength
        # sin(a + w) = sin a cos w + cos a sin w ; cos(a + w) = cos a cos w - sin a sin w
        W_K[s, cq] = strength * math.cos(w)
        W_K[c, cq] = strength * math.sin(w)
        W_K[s, sq] = -strength * math.sin(w)
        W_K[c, sq] = strength * math.cos(w)
    for col, name in enumerate(("noun", "adjective", "verb", "function")):
        W_V[_index(name), col] = 1.0
        W_O[col, _index(name)] = 0.5
    return Head(W_Q, W_K, W_V, W_O)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of the last dimension: a . b / (|a| |b|), broadcasting like ``a * b``.
    a (..., d) and b (..., d): floating-point tensors with the same d, and no zero vector among them
    (a vector of length 0 has no direction, so no cosine)."""
    for name, t in (("a", a), ("b", b)):
        V.tensor("cosine_similarity", name, t, floating=True)
        if t.ndim == 0:
            raise ValueError(f"cosine_similarity: {name} must have at least 1 dim (..., d), got a 0-dim tensor")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"cosine_similarity: a and b must have the same last dim d (the length of their "
                         f"vectors), got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"cosine_similarity: a and b must be on one device, got {a.device} and {b.device}")
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(f"cosine_similarity: the batch dims of a and b must broadcast (like a * b), got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}") from None
    norm_a, norm_b = a.norm(dim=-1), b.norm(dim=-1)
    if bool((norm_a == 0).any() | (norm_b == 0).any()):  # one synchronisation when all is well
        _no_zero_vector("a", norm_a)
        _no_zero_vector("b", norm_b)
    return (a * b).sum(-1) / (norm_a * norm_b)


def _no_zero_vector(name: str, norms: torch.Tensor) -> None:
    """The lengths ``norms`` of the vectors of ``name``: none is 0 (no direction, a NaN cosine)."""
    zero = norms == 0
    if bool(zero.any()):
        where = "" if norms.ndim == 0 else f" at index {tuple(zero.nonzero()[0].tolist())}"
        raise ValueError(f"cosine_similarity: {name} holds a zero vector{where}, which has no direction, so no "
                         "cosine similarity")


def nearest(v: torch.Tensor, k: int = 3, exclude=()) -> list[tuple[str, float]]:
    """The ``k`` words of the vocabulary whose embeddings have the highest cosine similarity with
    ``v`` (D_MODEL,), skipping the words in ``exclude`` (a list of words); a list of (word, similarity)."""
    V.tensor("nearest", "v", v, ndim=1, shape_doc=f"({D_MODEL},)", floating=True)
    if v.shape[0] != D_MODEL:
        raise ValueError(f"nearest: v must have shape ({D_MODEL},), got {tuple(v.shape)}")
    finite, nonzero = torch.stack([torch.isfinite(v).all(), (v != 0).any()]).tolist()
    if not finite:
        raise ValueError(f"nearest: v must hold finite numbers, got {int((~torch.isfinite(v)).sum())} NaN or "
                         "infinite entries")
    if not nonzero:
        raise ValueError("nearest: v must not be the zero vector (it has no direction, so no cosine similarity)")
    k = V.positive_int("nearest", "k", k)
    skip = set(V.words("nearest", "exclude", exclude, hint=f"; pass [{exclude!r}]"))
    words, E = embedding_table()
    sims = cosine_similarity(E, v.unsqueeze(0))
    order = torch.argsort(sims, descending=True).tolist()
    out = [(words[i], round(float(sims[i]), 3)) for i in order if words[i] not in skip]
    return out[:k]

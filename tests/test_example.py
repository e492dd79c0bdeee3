"""The running example: shapes, determinism, the arithmetic demo and what the hand-set heads do."""

import pytest
import torch
import torch.nn.functional as F

import attnlib
from attnlib import example as ex


def test_shapes_and_determinism():
    words, E = ex.embedding_table()
    assert E.shape == (len(words), ex.D_MODEL) == (len(ex.vocabulary()), 20)
    assert torch.equal(E, ex.embedding_table()[1])  # seeded: the same table every call
    toks, x = ex.embed(ex.PHRASE)
    assert toks == ex.PHRASE.split() and x.shape == (8, ex.D_MODEL)
    for head in (ex.adjective_head(), ex.topic_head(), ex.previous_token_head()):
        W_Q, W_K, W_V, W_O = head
        assert W_Q.shape == W_K.shape == W_V.shape == (ex.D_MODEL, ex.D_HEAD)
        assert W_O.shape == (ex.D_HEAD, ex.D_MODEL)


def test_lookup_is_one_hot_times_table():
    tok = ex.tokenizer()
    words, E = ex.embedding_table()
    ids = torch.tensor(tok.encode(ex.PHRASE))
    one_hot = F.one_hot(ids, len(words)).float()
    torch.testing.assert_close(one_hot @ E, ex.token_embedding(ex.PHRASE)[1])


def test_directions_and_errors():
    assert ex.direction("noun").sum() == 1 and ex.direction("noun")[0] == 1
    with pytest.raises(ValueError, match="unknown direction"):
        ex.direction("sparkle")
    with pytest.raises(KeyError):
        ex.embed("a purple creature")
    with pytest.raises(ValueError):
        ex.position_encoding(0)


def test_vector_arithmetic():
    words, E = ex.embedding_table()
    v = E[words.index("king")] - E[words.index("man")] + E[words.index("woman")]
    assert ex.nearest(v, 1, exclude=("king", "man", "woman"))[0][0] == "queen"
    # the gender direction separates male from female words
    g = ex.direction("gender")
    for m, f in (("king", "queen"), ("man", "woman")):
        assert E[words.index(m)] @ g > 0.5 > -0.5 > E[words.index(f)] @ g


def test_mole_is_one_vector_before_attention():
    vecs = []
    for s in ex.MOLE_SENTENCES:
        toks, x = ex.embed(s, positions=False)
        vecs.append(x[toks.index("mole")])
    for a in vecs[1:]:
        assert float(ex.cosine_similarity(vecs[0], a)) == pytest.approx(1.0)


def _pattern(head, x, causal=True):
    return attnlib.attention(x @ head.W_Q, x @ head.W_K, x @ head.W_V, is_causal=causal,
                             return_weights=True)


def test_adjective_head_nouns_attend_to_their_adjectives():
    toks, x = ex.embed(ex.PHRASE)
    _, w = _pattern(ex.adjective_head(), x)
    i = toks.index
    assert w[i("creature"), i("fluffy")] + w[i("creature"), i("blue")] > 0.8
    assert w[i("forest"), i("verdant")] > 0.8
    assert torch.allclose(w.sum(-1), torch.ones(len(toks)))


def test_adjective_head_value_moves_creature_toward_its_adjectives():
    head = ex.adjective_head()
    toks, x = ex.embed(ex.PHRASE)
    out, _ = _pattern(head, x)
    change = out @ head.W_O  # (T, d_model)
    c = change[toks.index("creature")]
    assert c @ ex.direction("blue") > 0.3 and c @ ex.direction("texture") > 0.3
    assert abs(float(c @ ex.direction("noun"))) < 0.05


def test_topic_head_separates_the_moles():
    head = ex.topic_head()
    after = []
    topics = ("animal", "chemistry", "medicine")
    for s, topic in zip(ex.MOLE_SENTENCES, topics, strict=True):
        toks, x = ex.embed(s)
        out, _ = _pattern(head, x, causal=False)
        y = x + out @ head.W_O
        m = y[toks.index("mole")]
        assert max(topics, key=lambda t: float(m @ ex.direction(t))) == topic
        after.append(m)
    assert float(ex.cosine_similarity(after[0], after[2])) < 0.9


@pytest.mark.parametrize("T", [2, 5, 8, 12])
def test_previous_token_head(T):
    pe = ex.position_encoding(T)
    _, w = _pattern(ex.previous_token_head(), pe)
    assert (w.diagonal(-1) > 0.9).all()


def test_positions_break_permutation_equivariance():
    head = ex.adjective_head()
    perm = torch.tensor([3, 0, 7, 1, 6, 2, 5, 4])
    for positions, equivariant in ((False, True), (True, False)):
        toks, x = ex.embed(ex.PHRASE, positions=positions)
        xp = ex.embed([toks[j] for j in perm], positions=positions)[1]
        out = attnlib.attention(x @ head.W_Q, x @ head.W_K, x @ head.W_V)
        outp = attnlib.attention(xp @ head.W_Q, xp @ head.W_K, xp @ head.W_V)
        assert torch.allclose(outp, out[perm], atol=1e-5) == equivariant

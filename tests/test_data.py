"""The adjective language (attnlib.data): determinism, metadata, and that the answers really need
the adjectives."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

import pytest
import torch

from attnlib import data
from attnlib.train import get_batch


@pytest.fixture(scope="module")
def ds():
    return data.make_dataset(n_train=600, n_val=100, seed=0)


def test_same_seed_same_corpus_other_seed_other_corpus():
    a = data.make_dataset(n_train=50, n_val=10, seed=3)
    b = data.make_dataset(n_train=50, n_val=10, seed=3)
    c = data.make_dataset(n_train=50, n_val=10, seed=4)
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val)
    assert torch.equal(a.train_split.queries, b.train_split.queries)
    assert not torch.equal(a.train[:100], c.train[:100])
    assert [str(s) for s in a.train_stories] == [str(s) for s in b.train_stories]


def test_known_first_story_is_stable():
    # Pin the generator's output so a change to it (which would change the book's numbers) is seen.
    s = data.make_stories(1, seed=0)[0]
    assert str(s) == "the yellow fluffy mouse sang . it is yellow . the mouse feels fluffy ."
    assert (s.noun, s.queries, s.sources, s.answers, s.kinds) == (
        3, [7, 12], [1, 2], ["yellow", "fluffy"], ["colour", "texture"])


def test_train_and_val_are_different_draws(ds):
    assert not torch.equal(ds.train[: len(ds.val)], ds.val)


def test_tokenizer_round_trip_and_vocab(ds):
    tok = ds.tokenizer
    assert len(tok) == len(set(tok.vocab))
    for w in (*data.COLOURS, *data.TEXTURES, *data.SIZES, *data.NOUNS, *data.VERBS, "is", "feels", "."):
        assert w in tok.stoi
    story = ds.train_stories[0]
    assert tok.tokens(tok.encode(story.tokens)) == story.tokens
    assert tok.decode(tok.encode(str(story))) == str(story)
    assert int(ds.train.max()) < len(tok) and ds.train.dtype == torch.long


def test_metadata_points_at_the_right_tokens(ds):
    for story in ds.train_stories[:200]:
        assert story.tokens[story.noun] in data.NOUNS
        for q, a, ans, kind in zip(story.queries, story.sources, story.answers, story.kinds, strict=True):
            assert a < story.noun < q  # the adjective comes before the noun, the question after it
            assert story.tokens[q] in data.ASKS and data.ASKS[story.tokens[q]] == kind
            assert story.tokens[q + 1] == ans == story.tokens[a]
            assert ans in (data.COLOURS if kind == "colour" else data.TEXTURES)
            # the adjective is one of the words between "the" and the noun
            assert 1 <= a < story.noun


def test_stream_metadata_matches_stories(ds):
    sp, tok = ds.train_split, ds.tokenizer
    assert len(sp.starts) == len(ds.train_stories)
    for i in range(len(sp.queries)):
        q, a, k = int(sp.queries[i]), int(sp.sources[i]), int(sp.kinds[i])
        assert tok.vocab[int(sp.tokens[q + 1])] == tok.vocab[int(sp.tokens[a])]
        assert data.ASKS[tok.vocab[int(sp.tokens[q])]] == data.KINDS[k]
        s = int(sp.story_of[i])
        assert sp.starts[s] <= a < q


def test_windows_pairs(ds):
    x, pairs = ds.windows("val", context_len=32)
    assert x.shape[1] == 32 and pairs.shape[1] == 4 and len(pairs) > len(x)
    tok = ds.tokenizer
    for b, q, a, k in pairs.tolist():
        assert 0 <= a < q < 31
        assert tok.vocab[int(x[b, q + 1])] == tok.vocab[int(x[b, a])]
        assert data.ASKS[tok.vocab[int(x[b, q])]] == data.KINDS[k]
    # windows span several stories, so there are distractors: other colours before the right one
    colours = {tok.stoi[c] for c in data.COLOURS}
    has_distractor = any(
        sum(int(t) in colours for t in x[b, :a]) > 0 for b, q, a, k in pairs.tolist() if k == 0
    )
    assert has_distractor
    x5, p5 = ds.windows("train", context_len=32, n=5)
    assert x5.shape == (5, 32) and int(p5[:, 0].max()) <= 4
    with pytest.raises(ValueError, match="split"):
        ds.windows("test")


def test_answer_is_unpredictable_without_the_adjective():
    # Given everything in the story except the adjectives, the answer is uniform: the noun, verb and
    # question carry no information about it.
    stories = data.make_stories(6000, seed=1)
    by_context = defaultdict(Counter)
    for s in stories:
        for ans, kind in zip(s.answers, s.kinds, strict=True):
            by_context[(s.tokens[s.noun], kind)][ans] += 1
    for (_, kind), counts in by_context.items():
        values = data.COLOURS if kind == "colour" else data.TEXTURES
        assert set(counts) == set(values)
        n = sum(counts.values())
        # every value appears close to n / len(values) times (no value is favoured)
        assert max(counts.values()) / n < 1 / len(values) + 0.12
    # ...while the adjective determines it completely
    for s in stories[:500]:
        for a, ans in zip(s.sources, s.answers, strict=True):
            assert s.tokens[a] == ans


def test_colour_and_texture_are_independent_of_the_noun():
    rng = random.Random(0)
    pairs = Counter()
    for _ in range(4000):
        s = data.make_story(rng)
        for ans, kind in zip(s.answers, s.kinds, strict=True):
            if kind == "colour":
                pairs[ans] += 1
    assert len(pairs) == len(data.COLOURS)


def test_story_options():
    rng = random.Random(0)
    plain = [data.make_story(rng, p_size=0.0, p_place=0.0) for _ in range(50)]
    assert not any(w in data.SIZES for s in plain for w in s.tokens)
    rng = random.Random(0)
    rich = [data.make_story(rng, p_size=1.0, p_place=1.0) for _ in range(50)]
    assert all(any(w in data.SIZES for w in s.tokens) for s in rich)
    assert all(s.tokens[s.noun + 2] in ("by", "in", "near", "under") for s in rich)


def test_get_batch_works_on_the_streams(ds):
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(ds.train, 4, 32, generator=g)
    assert x.shape == y.shape == (4, 32)
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_adjective_mass():
    B, H, T = 2, 3, 6
    w = torch.zeros(2, B, H, T, T)
    pairs = torch.tensor([[0, 4, 1, 0], [1, 5, 2, 1]])
    w[1, 0, 2, 4, 1] = 1.0  # layer 1 head 2 is perfect on pair 0...
    w[1, 1, 2, 5, 2] = 0.5  # ...and half right on pair 1
    w[0, :, 0, 4, 1] = 0.2
    m = data.adjective_mass(list(w), pairs)
    assert m.shape == (2, 3)
    torch.testing.assert_close(m[1, 2], torch.tensor(0.75))
    torch.testing.assert_close(m[0, 0], torch.tensor(0.1))
    assert m[1, 0] == 0
    torch.testing.assert_close(data.adjective_mass(w, pairs[:, :3]), m)
    with pytest.raises(ValueError, match="pairs"):
        data.adjective_mass(w, torch.zeros(0, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="weights"):
        data.adjective_mass(w[0], pairs)


def test_adjective_mass_on_a_real_model(ds):
    import attnlib

    cfg = attnlib.TINY.replace(vocab_size=len(ds.tokenizer))
    model = attnlib.Decoder(cfg).eval()
    x, pairs = ds.windows("val", context_len=cfg.context_len, n=8)
    with torch.no_grad(), attnlib.record_patterns(model) as w:
        model(x)
    m = data.adjective_mass(w, pairs)
    assert m.shape == (cfg.n_layers, cfg.n_heads)
    assert ((m >= 0) & (m <= 1)).all()
    b, q, k = pairs[:, :3].unbind(1)  # by hand: layer 1, head 2
    torch.testing.assert_close(m[1, 2], w["blocks.1.attn"][b, 2, q, k].mean())
    torch.testing.assert_close(data.adjective_mass(attnlib.layer_stack(w), pairs), m)


def test_question_accuracy_counts_the_attribute_after_each_question(ds):
    x, pairs = ds.windows("val", context_len=32, n=6)
    V = len(ds.tokenizer)
    perfect = torch.nn.functional.one_hot(x.roll(-1, dims=1), V).float()  # predicts x[t + 1]
    torch.testing.assert_close(data.question_accuracy(perfect, x, pairs), torch.ones(2))
    # wrong at the colour questions only: colour accuracy 0, texture accuracy still 1
    spoiled = perfect.clone()
    w, q, _, kind = pairs.unbind(1)
    colour = kind == data.KINDS.index("colour")
    spoiled[w[colour], q[colour]] = torch.nn.functional.one_hot(x[w[colour], q[colour]], V).float()
    torch.testing.assert_close(data.question_accuracy(spoiled, x, pairs), torch.tensor([0.0, 1.0]))
    # half of the texture questions wrong
    tex = torch.nonzero(~colour).flatten()
    half = tex[: len(tex) // 2]
    spoiled[w[half], q[half]] = torch.nn.functional.one_hot(x[w[half], q[half]], V).float()
    acc = data.question_accuracy(spoiled, x, pairs)
    torch.testing.assert_close(acc[1], torch.tensor(1 - len(half) / len(tex)))
    with pytest.raises(ValueError, match=r"question_accuracy: logits must be \(B, T, vocab\)"):
        data.question_accuracy(perfect[0], x, pairs)
    with pytest.raises(ValueError, match=r"question_accuracy: pairs must be a non-empty \(P, 4\)"):
        data.question_accuracy(perfect, x, pairs[:, :3])


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_train"):
        data.make_dataset(n_train=0)


# --------------------------------------------------------------------------- bad input

_W = torch.zeros(2, 2, 3, 6, 6)  # (n_layers, B, H, T, T)
_PAIRS = torch.tensor([[0, 4, 1, 0], [1, 5, 2, 1]])
_LOGITS, _X = torch.zeros(2, 6, 5), torch.zeros(2, 6, dtype=torch.long)
_QA = torch.tensor([[0, 3, 1, 0], [1, 4, 2, 1]])  # question_accuracy reads the answer at query_pos + 1


def _row(col, value, pairs=_PAIRS):
    bad = pairs.clone()
    bad[1, col] = value
    return bad


@pytest.fixture(scope="module")
def small():
    return data.make_dataset(n_train=20, n_val=5, seed=0)


BAD = [
    ("story-p-size-2", lambda: data.make_story(random.Random(0), p_size=2), ValueError,
     r"^make_story: p_size must be a probability in \[0, 1\], got 2$"),
    ("story-p-place-negative", lambda: data.make_story(random.Random(0), p_place=-0.5), ValueError,
     r"^make_story: p_place must be a probability in \[0, 1\], got -0.5$"),
    ("story-p-size-nan", lambda: data.make_story(random.Random(0), p_size=math.nan), ValueError,
     r"^make_story: p_size must be a probability in \[0, 1\], got nan$"),
    ("story-p-size-str", lambda: data.make_story(random.Random(0), p_size="0.5"), TypeError,
     r"^make_story: p_size must be a real number, got '0.5'$"),
    ("story-rng-int", lambda: data.make_story(0), TypeError,
     r"^make_story: rng must be a random.Random \(e.g. random.Random\(0\)\), got 0$"),
    ("stories-n-negative", lambda: data.make_stories(-1), ValueError,
     r"^make_stories: n must be a positive int, got -1$"),
    ("stories-n-0", lambda: data.make_stories(0), ValueError,
     r"^make_stories: n must be a positive int, got 0$"),
    ("stories-n-float", lambda: data.make_stories(2.0), TypeError,
     r"^make_stories: n must be a positive int, got 2.0$"),
    ("stories-p-place", lambda: data.make_stories(3, p_place=1.5), ValueError,
     r"^make_stories: p_place must be a probability in \[0, 1\], got 1.5$"),
    ("dataset-n-train-float", lambda: data.make_dataset(n_train=2.5, n_val=3), TypeError,
     r"^make_dataset: n_train must be a positive int, got 2.5$"),
    ("dataset-n-val-0", lambda: data.make_dataset(n_train=3, n_val=0), ValueError,
     r"^make_dataset: n_val must be a positive int, got 0$"),
    ("dataset-p-size", lambda: data.make_dataset(n_train=3, n_val=3, p_size=-1), ValueError,
     r"^make_dataset: p_size must be a probability in \[0, 1\], got -1$"),
    ("entropy-rate-p-place-str", lambda: data.entropy_rate(p_place="0"), TypeError,
     r"^entropy_rate: p_place must be a real number, got '0'$"),
    ("mass-query-negative", lambda: data.adjective_mass(_W, _row(1, -1)), ValueError,
     r"^adjective_mass: every query_pos of pairs \(column 1\) must lie in \[0, 6\), got -1 in row 1$"),
    ("mass-key-negative", lambda: data.adjective_mass(_W, _row(2, -2)), ValueError,
     r"^adjective_mass: every key_pos of pairs \(column 2\) must lie in \[0, 6\), got -2 in row 1$"),
    ("mass-key-too-big", lambda: data.adjective_mass(list(_W), _row(2, 6)), ValueError,
     r"^adjective_mass: every key_pos of pairs \(column 2\) must lie in \[0, 6\), got 6 in row 1$"),
    ("mass-window-negative", lambda: data.adjective_mass(_W, _row(0, -1)), ValueError,
     r"^adjective_mass: every window of pairs \(column 0\) must lie in \[0, 2\), got -1 in row 1$"),
    ("mass-float-pairs", lambda: data.adjective_mass(_W, _PAIRS.float()), TypeError,
     r"^adjective_mass: pairs must be an integer tensor of rows \(window, query_pos, key_pos, kind\), "
     r"got a torch.float32 tensor"),
    ("mass-list-pairs", lambda: data.adjective_mass(_W, [[0, 4, 1]]), TypeError,
     r"^adjective_mass: pairs must be an integer tensor .* got a list$"),
    ("mass-empty-weights", lambda: data.adjective_mass([], _PAIRS), ValueError,
     r"^adjective_mass: weights must not be empty"),
    ("mass-weights-dict", lambda: data.adjective_mass({"self": list(_W)}, _PAIRS), ValueError,
     r"^adjective_mass: no pattern named blocks.<layer>.attn; the patterns are \['self'\] \(did the model "
     r"run inside record_patterns\?\)$"),
    ("mass-patterns-gap", lambda: data.adjective_mass({"blocks.1.attn": _W[1]}, _PAIRS), ValueError,
     r"^adjective_mass: layer 0 is missing \(blocks.0.attn\); record every layer"),
    ("mass-patterns-not-tensor", lambda: data.adjective_mass({"blocks.0.attn": [1.0]}, _PAIRS), TypeError,
     r"^adjective_mass: the pattern of blocks.0.attn must be a torch.Tensor, got a list$"),
    ("mass-ragged-layers", lambda: data.adjective_mass([_W[0], _W[1, ..., :5, :5]], _PAIRS), ValueError,
     r"^adjective_mass: every layer's pattern must have one shape \(B, H, T, T\), got "
     r"\[\(2, 3, 6, 6\), \(2, 3, 5, 5\)\]$"),
    ("accuracy-query-last", lambda: data.question_accuracy(_LOGITS, _X, _row(1, 5, _QA)), ValueError,
     r"^question_accuracy: every query_pos of pairs \(column 1\) must lie in \[0, 5\) \(its answer, at "
     r"query_pos \+ 1, must be in the window\), got 5 in row 1$"),
    ("accuracy-query-negative", lambda: data.question_accuracy(_LOGITS, _X, _row(1, -1, _QA)), ValueError,
     r"^question_accuracy: every query_pos of pairs \(column 1\) must lie in \[0, 5\)"),
    ("accuracy-kind", lambda: data.question_accuracy(_LOGITS, _X, _row(3, 2, _QA)), ValueError,
     r"^question_accuracy: every kind of pairs \(column 3\) must lie in \[0, 2\) \(an index into KINDS"),
    ("accuracy-window", lambda: data.question_accuracy(_LOGITS, _X, _row(0, 2, _QA)), ValueError,
     r"^question_accuracy: every window of pairs \(column 0\) must lie in \[0, 2\), got 2 in row 1$"),
    ("accuracy-int-logits", lambda: data.question_accuracy(_X[..., None], _X, _QA), TypeError,
     r"^question_accuracy: logits must be floating point, got dtype torch.int64$"),
    ("accuracy-list-x", lambda: data.question_accuracy(_LOGITS, _X.tolist(), _QA), TypeError,
     r"^question_accuracy: x must be a torch.Tensor, got a list$"),
]


@pytest.mark.parametrize("call,exc,message", [pytest.param(c, e, m, id=i) for i, c, e, m in BAD])
def test_bad_input_gets_a_clear_error(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


@pytest.mark.parametrize("kwargs,exc,message", [
    (dict(context_len=0), ValueError, r"^windows: context_len must be a positive int, got 0$"),
    (dict(context_len=32.0), TypeError, r"^windows: context_len must be a positive int, got 32.0$"),
    (dict(n=0), ValueError, r"^windows: n must be a positive int or None, got 0$"),
    (dict(n=-1), ValueError, r"^windows: n must be a positive int or None, got -1$"),
])
def test_windows_refuses_bad_counts(small, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        small.windows("val", **({"context_len": 16} | kwargs))


def test_the_probabilities_0_and_1_are_allowed():
    assert data.entropy_rate(p_size=0, p_place=1)[1] > 0
    story = data.make_story(random.Random(0), p_size=1, p_place=0)
    assert any(w in data.SIZES for w in story.tokens)


class _Recording(random.Random):
    """A random.Random that adds up -log(probability) of every choice make_story makes."""

    def __init__(self, seed):
        super().__init__(seed)
        self.nats = 0.0

    def choice(self, seq):
        picked = super().choice(seq)  # equal entries (ASK_ORDERS repeats two) are one outcome
        self.nats -= math.log(list(seq).count(picked) / len(seq))
        return picked

    def shuffle(self, x):
        self.nats += math.log(math.factorial(len(x)))
        super().shuffle(x)


@pytest.mark.parametrize("p_size, p_place", [(0.25, 0.0), (0.5, 0.3)])
def test_entropy_rate_matches_the_choices_make_story_really_makes(p_size, p_place):
    # Monte Carlo: the mean of -log p(story), where p(story) is the product of the probabilities
    # of the choices make_story drew (recorded as it runs), over the mean story length.
    rng, nats, tokens, n = _Recording(0), 0.0, 0, 20_000
    for _ in range(n):
        rng.nats = 0.0
        story = _coins(rng, p_size, p_place)
        nats += rng.nats
        tokens += len(story.tokens)
    per_token, per_story = data.entropy_rate(p_size, p_place)
    assert tokens / n == pytest.approx(per_story, rel=0.01)
    assert nats / tokens == pytest.approx(per_token, rel=0.01)


def _coins(rng: _Recording, p_size: float, p_place: float):
    """make_story with rng, charging each yes/no coin (random() < p) its probability too. (The
    coins are counted on the instance: overriding random() in the class would make choice() and
    shuffle() draw through it.)"""
    draws = []
    original = rng.random

    def random_():
        u = original()
        draws.append(u)
        return u

    rng.random = random_
    story = data.make_story(rng, p_size=p_size, p_place=p_place)
    rng.random = original
    # make_story's coins in order: size, place, then one "the noun" or "it" per question (p = 0.5)
    probs = [p_size, p_place] + [0.5] * len(story.queries)
    assert len(draws) == len(probs)
    for u, p in zip(draws, probs, strict=True):
        rng.nats -= math.log(p if u < p else 1 - p)
    return story


def test_entropy_rate_of_the_default_language():
    per_token, per_story = data.entropy_rate()
    assert per_story == 13.75
    assert 0.85 < per_token < 0.89  # the floor under chapter 10's loss curve
    with pytest.raises(ValueError, match=r"entropy_rate: p_size must be a probability in \[0, 1\], got 2"):
        data.entropy_rate(p_size=2)

"""The toy translation task of chapter 8: data invariants, alignments, the model and the metric,
and a clear error for every bad input."""

import random

import pytest
import torch

from attnlib import record_patterns
from attnlib import translation as tr
from attnlib.train import seed_everything, train

RUNNING = "a fluffy blue creature roamed the verdant forest".split()


def test_running_example_translation_and_alignment():
    p = tr.translate_words(RUNNING)
    assert p.tgt == ("un", "bestia", "pelu", "azur", "le", "silva", "verda", "vagava")
    # un<-a, bestia<-creature, pelu<-fluffy, azur<-blue, le<-the, silva<-forest, verda<-verdant, vagava<-roamed
    assert p.align == (0, 3, 1, 2, 5, 7, 6, 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pair_invariants(seed):
    roles = tr._ROLE
    for p in tr.make_pairs(300, seed=seed):
        assert len(p.src) == len(p.tgt) == len(p.align)
        assert sorted(p.align) == list(range(len(p.src)))  # one-to-one
        assert all(tr.LEXICON[p.src[a]] == t for a, t in zip(p.align, p.tgt, strict=True))
        assert roles[p.src[0]] == "det" and roles[p.src[-1]] in ("noun", "verb")
        assert roles[p.src[p.align[-1]]] == "verb"  # the verb comes last in the target
        # in the target an adjective never precedes its noun: every adjective follows a noun or an adjective
        tgt_roles = [roles[p.src[a]] for a in p.align]
        for i, r in enumerate(tgt_roles):
            if r == "adj":
                assert tgt_roles[i - 1] in ("noun", "adj")
        assert 3 <= len(p.src) <= 9


def test_word_order_differs_often():
    pairs = tr.make_pairs(500, seed=3)
    assert sum(p.align != tuple(range(len(p.src))) for p in pairs) / len(pairs) > 0.7


def test_make_pairs_is_seeded_and_exclude_works():
    a, b = tr.make_pairs(50, seed=7), tr.make_pairs(50, seed=7)
    assert a == b
    assert a != tr.make_pairs(50, seed=8)
    test = tr.make_pairs(100, seed=1)
    train_pairs = tr.make_pairs(500, seed=0, exclude=test)
    assert not {p.src for p in test} & {p.src for p in train_pairs}


def test_translate_words_rejects_bad_input():
    with pytest.raises(ValueError, match="lexicon"):
        tr.translate_words(["a", "purple", "dog", "ran"])
    with pytest.raises(ValueError, match="determiner"):
        tr.translate_words(["dog", "ran"])
    with pytest.raises(ValueError, match="no noun"):
        tr.translate_words(["the", "big", "ran"])
    with pytest.raises(ValueError, match="NP verb"):
        tr.translate_words(["the", "dog", "the", "cat"])


def test_make_batch_padding():
    pairs = [tr.translate_words(RUNNING), tr.translate_words("the dog ran".split())]
    b = tr.make_batch(pairs)
    s_tok, t_tok = tr.src_tokenizer(), tr.tgt_tokenizer()
    assert b.src.shape == (2, 8) and b.tgt_in.shape == (2, 9) and b.align.shape == (2, 9)
    assert b.src_len.tolist() == [8, 3]
    assert (b.src[1, 3:] == s_tok.stoi[tr.PAD]).all()
    assert b.tgt_in[1, :4].tolist() == t_tok.encode([tr.BOS, "le", "kane", "kurra"])
    assert b.tgt_out[1, :4].tolist() == t_tok.encode(["le", "kane", "kurra", tr.EOS])
    assert (b.tgt_out[1, 4:] == -100).all() and (b.tgt_in[1, 4:] == 0).all()
    assert b.align[1].tolist() == [0, 1, 2] + [-1] * 6
    assert b.align[0, 8].item() == -1  # the row that produces <eos> is not scored
    # the aligned source id translates the target word that position produces
    for bi, p in enumerate(pairs):
        for j, t in enumerate(p.tgt):
            assert tr.LEXICON[s_tok.vocab[b.src[bi, b.align[bi, j]].item()]] == t
            assert t_tok.vocab[b.tgt_out[bi, j].item()] == t


def test_alignment_accuracy_on_hand_made_patterns():
    align = torch.tensor([[2, 0, 1, -1], [0, 2, -1, -1]])
    perfect = torch.zeros(2, 4, 3)
    perfect[0, 0, 2] = perfect[0, 1, 0] = perfect[0, 2, 1] = 1.0
    perfect[1, 0, 0] = perfect[1, 1, 2] = 1.0
    perfect[0, 3] = torch.tensor([1.0, 0, 0])  # unscored rows may look anywhere
    assert tr.alignment_accuracy(perfect, align) == 1.0
    diagonal = torch.eye(4, 3).expand(2, 4, 3)  # attends to the same position: right 1 of 5 times
    assert tr.alignment_accuracy(diagonal, align) == pytest.approx(1 / 5)
    assert tr.alignment_accuracy(perfect[0], align[0]) == 1.0
    with pytest.raises(ValueError, match="align"):
        tr.alignment_accuracy(perfect, align[:, :3])
    with pytest.raises(ValueError, match="no scored row"):
        tr.alignment_accuracy(perfect, torch.full((2, 4), -1))


def test_seq2seq_shapes_and_cross_pattern():
    seed_everything(0)
    model = tr.Seq2Seq(tr.small_config(d_model=32, n_heads=2, d_mlp=64, n_layers=1))
    b = tr.make_batch(tr.make_pairs(5, seed=0))
    with record_patterns(model) as w:
        logits, loss = model(b.src, b.src_len, b.tgt_in, b.tgt_out)
    assert logits.shape == (*b.tgt_in.shape, len(tr.tgt_tokenizer()))
    assert loss.ndim == 0
    assert sorted(w) == ["decoder.blocks.0.attn", "decoder.blocks.0.cross_attn", "encoder.blocks.0.attn"]
    cross = w["decoder.blocks.0.cross_attn"]
    assert cross.shape == (5, 2, b.tgt_in.shape[1], b.src.shape[1])
    # no weight on padded source positions, and every row sums to one (no causal mask)
    for i, n in enumerate(b.src_len.tolist()):
        assert (cross[i, :, :, n:] == 0).all()
    torch.testing.assert_close(cross.sum(-1), torch.ones(cross.shape[:-1]))
    model.train()
    torch.testing.assert_close(model.cross_pattern(b), cross.mean(1))
    torch.testing.assert_close(model.cross_pattern(b, head=1), cross[:, 1])
    torch.testing.assert_close(model.cross_pattern(b, layer=-1), cross.mean(1))
    assert model.training  # cross_pattern runs in eval mode and gives the mode back
    with pytest.raises(TypeError, match=r"Seq2Seq.forward: return_weights is not an argument"):
        model(b.src, b.src_len, b.tgt_in, return_weights=True)


def test_padding_does_not_change_a_sentence():
    seed_everything(0)
    model = tr.Seq2Seq(tr.small_config(d_model=32, n_heads=2, d_mlp=64, n_layers=1)).eval()
    short = tr.translate_words("the dog ran".split())
    alone = tr.make_batch([short])
    padded = tr.make_batch([short, tr.translate_words(RUNNING)])
    la, _ = model(alone.src, alone.src_len, alone.tgt_in)
    lp, _ = model(padded.src, padded.src_len, padded.tgt_in)
    torch.testing.assert_close(lp[0, :4], la[0], atol=1e-5, rtol=1e-4)


def test_training_improves_loss_and_translate_runs():
    g = seed_everything(0)
    model = tr.Seq2Seq(tr.small_config(d_model=32, n_heads=2, d_mlp=64, n_layers=1))
    pairs = tr.make_pairs(200, seed=0)
    hist = train(model, tr.batch_sampler(pairs, 16, g), 60, lr=1e-2, progress=False)
    assert sum(hist.train_loss[-5:]) / 5 < 0.6 * sum(hist.train_loss[:5]) / 5
    out = model.translate(RUNNING)
    assert isinstance(out, list) and all(isinstance(w, str) for w in out)
    assert len(out) <= model.decoder.config.context_len - 1
    assert 0.0 <= tr.exact_match(model, pairs[:3]) <= 1.0


def test_sample_pair_uses_given_rng_only():
    rng = random.Random(5)
    p1 = tr.sample_pair(rng)
    random.seed(123)  # the global generator must not matter
    assert tr.sample_pair(random.Random(5)) == p1


# --------------------------------------------------------------------------- bad input

_PAIR = tr.translate_words("the dog ran".split())
_ALIGN = torch.tensor([[2, 0, 1, -1]])


def _model():
    seed_everything(0)
    return tr.Seq2Seq(tr.small_config(d_model=16, n_heads=2, d_mlp=32, n_layers=1)).eval()


MODEL = _model()
BATCH = tr.make_batch([_PAIR])

BAD = [
    ("exact-match-empty", lambda: tr.exact_match(MODEL, []), ValueError,
     r"^exact_match: pairs must not be empty$"),
    ("exact-match-not-pairs", lambda: tr.exact_match(MODEL, [("the", "dog", "ran")]), TypeError,
     r"^exact_match: every item of pairs must be a Pair, got a tuple at index 0$"),
    ("exact-match-model", lambda: tr.exact_match(None, [_PAIR]), TypeError,
     r"^exact_match: model must be a Seq2Seq, got None$"),
    ("translate-words-str", lambda: tr.translate_words("the dog ran"), TypeError,
     r"^translate_words: src must be a list of words, got the string 'the dog ran'; split it first"),
    ("translate-words-empty", lambda: tr.translate_words([]), ValueError,
     r"^translate_words: src must not be empty$"),
    ("translate-words-int", lambda: tr.translate_words(["the", 3, "ran"]), TypeError,
     r"^translate_words: every word of src must be a str, got 3$"),
    ("translate-words-generator", lambda: tr.translate_words(w for w in ["the", "dog", "ran"]), TypeError,
     r"^translate_words: src must be a list of words, got a generator$"),
    ("translate-str", lambda: MODEL.translate("the dog ran"), TypeError,
     r"^Seq2Seq.translate: src_words must be a list of words, got the string 'the dog ran'"),
    ("translate-empty", lambda: MODEL.translate([]), ValueError,
     r"^Seq2Seq.translate: src_words must not be empty$"),
    ("translate-unknown", lambda: MODEL.translate(["the", "purple", "dog", "ran", "far"]), ValueError,
     r"^Seq2Seq.translate: \['purple', 'far'\] not in the source vocabulary"),
    ("translate-max-len-0", lambda: MODEL.translate(["the", "dog", "ran"], max_len=0), ValueError,
     r"^Seq2Seq.translate: max_len must be a positive int or None, got 0$"),
    ("make-batch-empty", lambda: tr.make_batch([]), ValueError, r"^make_batch: pairs must not be empty$"),
    ("make-batch-words", lambda: tr.make_batch([_PAIR, ["the", "dog", "ran"]]), TypeError,
     r"^make_batch: every item of pairs must be a Pair, got a list at index 1$"),
    ("make-batch-one-pair", lambda: tr.make_batch(_PAIR), TypeError,
     r"^make_batch: pairs must be a list of Pair, got one Pair; pass \[pair\]$"),
    ("make-pairs-negative", lambda: tr.make_pairs(-1), ValueError,
     r"^make_pairs: n must be a positive int, got -1$"),
    ("make-pairs-float", lambda: tr.make_pairs(2.0), TypeError,
     r"^make_pairs: n must be a positive int, got 2.0$"),
    ("make-pairs-max-adjs", lambda: tr.make_pairs(3, max_adjs=11), ValueError,
     r"^make_pairs: max_adjs must be at most 10 \(the adjectives of the lexicon\), got 11$"),
    ("sample-pair-max-adjs", lambda: tr.sample_pair(random.Random(0), max_adjs=-1), ValueError,
     r"^sample_pair: max_adjs must be a non-negative int, got -1$"),
    ("sample-pair-rng", lambda: tr.sample_pair(0), TypeError,
     r"^sample_pair: rng must be a random.Random \(e.g. random.Random\(0\)\), got 0$"),
    ("batch-sampler-empty", lambda: tr.batch_sampler([], 4), ValueError,
     r"^batch_sampler: pairs must not be empty$"),
    ("batch-sampler-batch-size", lambda: tr.batch_sampler([_PAIR], 0), ValueError,
     r"^batch_sampler: batch_size must be a positive int, got 0$"),
    ("batch-sampler-generator", lambda: tr.batch_sampler([_PAIR], 2, generator=1), TypeError,
     r"^batch_sampler: generator must be a torch.Generator or None, got 1$"),
    ("alignment-too-big", lambda: tr.alignment_accuracy(torch.zeros(1, 4, 3), _ALIGN + 1), ValueError,
     r"^alignment_accuracy: every entry of align must be a key index in \[0, 3\) or -1 \(not scored\), "
     r"got 3$"),
    ("alignment-below-minus-1", lambda: tr.alignment_accuracy(torch.zeros(1, 4, 3), _ALIGN - 1), ValueError,
     r"^alignment_accuracy: every entry of align must be a key index in \[0, 3\) or -1 \(not scored\), "
     r"got -2$"),
    ("alignment-float-align", lambda: tr.alignment_accuracy(torch.zeros(1, 4, 3), _ALIGN.float()), TypeError,
     r"^alignment_accuracy: align must be an integer tensor, got dtype torch.float32$"),
    ("alignment-list-pattern", lambda: tr.alignment_accuracy([[1.0, 0.0]], torch.tensor([0])), TypeError,
     r"^alignment_accuracy: pattern must be a torch.Tensor, got a list$"),
    ("cross-pattern-head", lambda: MODEL.cross_pattern(BATCH, head=2), ValueError,
     r"^Seq2Seq.cross_pattern: head must lie in \[0, 2\) \(the heads of a layer\), got 2$"),
    ("cross-pattern-negative-head", lambda: MODEL.cross_pattern(BATCH, head=-1), ValueError,
     r"^Seq2Seq.cross_pattern: head must lie in \[0, 2\) \(the heads of a layer\), got -1$"),
    ("cross-pattern-layer", lambda: MODEL.cross_pattern(BATCH, layer=1), ValueError,
     r"^Seq2Seq.cross_pattern: layer must be an int in \[-1, 1\) \(-1 is the last layer\), got 1$"),
    ("cross-pattern-batch", lambda: MODEL.cross_pattern((BATCH.src, BATCH.src_len)), TypeError,
     r"^Seq2Seq.cross_pattern: batch must be a Batch \(from make_batch\), got a tuple$"),
    ("plot-alignment-words", lambda: tr.plot_alignment(["the", "dog", "ran"]), TypeError,
     r"^plot_alignment: pair must be a Pair \(e.g. translate_words\(words\)\), got a list$"),
]


@pytest.mark.parametrize("call,exc,message", [pytest.param(c, e, m, id=i) for i, c, e, m in BAD])
def test_bad_input_gets_a_clear_error(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_valid_calls_the_checks_let_through():
    assert MODEL.cross_pattern(BATCH, layer=0, head=1).shape == MODEL.cross_pattern(BATCH).shape
    assert len(MODEL.translate(list(_PAIR.src), max_len=2)) <= 2
    int32 = torch.tensor([[0, 1, 2, -1]], dtype=torch.int32)
    assert tr.alignment_accuracy(torch.eye(4, 3)[None], int32) == 1.0
    assert tr.make_pairs(4, max_adjs=10, seed=1) == tr.make_pairs(4, max_adjs=10, seed=1)

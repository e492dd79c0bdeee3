"""Bad input to attnlib's helpers (data, tokenizer, running example, translation, training,
efficient attention, catalog) gets a TypeError/ValueError that names the function called, the
argument, what it got and what was expected, before any state changes; valid input still works.

One table of cases, one parametrized test; the cases about state, and the valid calls next to
the refused ones, have their own tests.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import attnlib
from attnlib import Tokenizer, catalog, data
from attnlib import _validate as V
from attnlib import efficient as E
from attnlib import example as ex
from attnlib import translation as tr
from attnlib.train import get_batch, load_checkpoint, map_seeds, save_checkpoint, seed_everything, train

FOX = ex.embedding_table()[1][ex.vocabulary().index("fox")]
DS = data.make_dataset(n_train=20, n_val=5, seed=0)
PAIRS = tr.make_pairs(3, seed=0)
S2S = tr.Seq2Seq(tr.small_config()).eval()  # context_len 16 on both sides
LONG_SRC = torch.ones(1, 17, dtype=torch.long)
Q = torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(0))
TOK = Tokenizer(["the", "cat"], unk="<unk>")
SMALL = attnlib.DecoderConfig(vocab_size=11, context_len=8, d_model=16, n_layers=1, n_heads=4)
VIZ = catalog.entries("viz")
_QA = torch.tensor([[0, 0, 0, 0]])  # question_accuracy: window 0, query 0, key 0, kind 0


def _batch():
    return torch.zeros(1, 8, dtype=torch.long), torch.zeros(1, 8, dtype=torch.long)


DEVICE = r"must be None, a torch.device or a device name like 'cpu' or 'cuda', got 'bogus'$"

CASES = [
    # ---- 1. a str where a list of strings is needed: its characters would be read as the items
    ("from-texts-str", lambda: Tokenizer.from_texts("the cat sat"), TypeError,
     r"^Tokenizer.from_texts: texts must be a list of texts, got the string 'the cat sat' \(which would be "
     r"read as its characters\); pass \[text\]$"),
    ("from-texts-extra-str", lambda: Tokenizer.from_texts(["the cat"], extra="<pad>"), TypeError,
     r"^Tokenizer.from_texts: extra must be a list of words, got the string '<pad>' \(which would be read "
     r"as its characters\); pass a list, e.g. \['<pad>'\]$"),
    ("nearest-exclude-str", lambda: ex.nearest(FOX, exclude="fox"), TypeError,
     r"^nearest: exclude must be a list of words, got the string 'fox' \(which would be read as its "
     r"characters\); pass \['fox'\]$"),
    ("make-pairs-exclude-str", lambda: tr.make_pairs(2, exclude="a dog ran"), TypeError,
     r"^make_pairs: exclude must be a list of Pairs or of source sentences \(lists of words\), got the "
     r"string 'a dog ran'; split it into words and put it in a list, e.g. \[text.split\(\)\]$"),
    ("make-pairs-exclude-str-item", lambda: tr.make_pairs(2, exclude=["a dog ran"]), TypeError,
     r"^make_pairs: exclude\[0\] must be a list of words, got the string 'a dog ran'; split it first"),
    ("make-pairs-exclude-one-pair", lambda: tr.make_pairs(2, exclude=PAIRS[0]), TypeError,
     r"^make_pairs: exclude must be a list of Pairs or of source sentences \(lists of words\), got one "
     r"Pair; pass \[pair\]$"),
    ("make-pairs-exclude-int", lambda: tr.make_pairs(2, exclude=3), TypeError,
     r"^make_pairs: exclude must be a list of Pairs or of source sentences \(lists of words\), got 3$"),
    # ---- 2. counts and strengths of the running example
    ("nearest-k-negative", lambda: ex.nearest(FOX, k=-1), ValueError, r"^nearest: k must be a positive int, got -1$"),
    ("nearest-k-0", lambda: ex.nearest(FOX, k=0), ValueError, r"^nearest: k must be a positive int, got 0$"),
    ("nearest-k-float", lambda: ex.nearest(FOX, k=2.0), TypeError, r"^nearest: k must be a positive int, got 2.0$"),
    ("nearest-v-list", lambda: ex.nearest(FOX.tolist()), TypeError, r"^nearest: v must be a torch.Tensor, got a list$"),
    ("nearest-v-shape", lambda: ex.nearest(FOX[:5]), ValueError, r"^nearest: v must have shape \(20,\), got \(5,\)$"),
    ("embedding-table-nan-noise", lambda: ex.embedding_table(noise=math.nan), ValueError,
     r"^embedding_table: noise must be a finite number >= 0.0, got nan$"),
    ("embedding-table-negative-noise", lambda: ex.embedding_table(noise=-0.1), ValueError,
     r"^embedding_table: noise must be a finite number >= 0.0, got -0.1$"),
    ("embedding-table-seed-none", lambda: ex.embedding_table(seed=None), TypeError,
     r"^embedding_table: seed must be a non-negative int, got None$"),
    ("adjective-head-nan", lambda: ex.adjective_head(strength=math.nan), ValueError,
     r"^adjective_head: strength must be a finite number, got nan$"),
    ("adjective-head-nearby-inf", lambda: ex.adjective_head(nearby=math.inf), ValueError,
     r"^adjective_head: nearby must be a finite number, got inf$"),
    ("topic-head-nan", lambda: ex.topic_head(math.nan), ValueError,
     r"^topic_head: strength must be a finite number, got nan$"),
    ("previous-token-head-str", lambda: ex.previous_token_head("2"), TypeError,
     r"^previous_token_head: strength must be a real number, got '2'$"),
    ("position-encoding-float", lambda: ex.position_encoding(2.0), TypeError,
     r"^position_encoding: T must be a positive int, got 2.0$"),
    # ---- 3. more windows than the stream has
    ("windows-n-too-many", lambda: DS.windows("val", 32, n=10**6), ValueError,
     r"^windows: n must be at most 3 \(the story starts that leave 32 tokens in the val stream\), "
     r"got 1000000$"),
    # ---- 4. seeds and the options passed on to make_story
    ("stories-seed-none", lambda: data.make_stories(2, seed=None), TypeError,
     r"^make_stories: seed must be a non-negative int, got None$"),
    ("stories-seed-str", lambda: data.make_stories(2, seed="abc"), TypeError,
     r"^make_stories: seed must be a non-negative int, got 'abc'$"),
    ("stories-seed-float", lambda: data.make_stories(2, seed=1.5), TypeError,
     r"^make_stories: seed must be a non-negative int, got 1.5$"),
    ("stories-seed-bool", lambda: data.make_stories(2, seed=True), TypeError,
     r"^make_stories: seed must be a non-negative int, got True$"),
    ("stories-seed-negative", lambda: data.make_stories(2, seed=-1), ValueError,
     r"^make_stories: seed must be a non-negative int, got -1$"),
    ("stories-unknown-keyword", lambda: data.make_stories(2, foo=1), TypeError,
     r"^make_stories: got an unexpected keyword argument 'foo'$"),
    ("dataset-seed-none", lambda: data.make_dataset(3, 3, seed=None), TypeError,
     r"^make_dataset: seed must be a non-negative int, got None$"),
    ("dataset-seed-str", lambda: data.make_dataset(3, 3, seed="a"), TypeError,
     r"^make_dataset: seed must be a non-negative int, got 'a'$"),
    ("dataset-unknown-keyword", lambda: data.make_dataset(3, 3, foo=1), TypeError,
     r"^make_dataset: got an unexpected keyword argument 'foo'$"),
    ("dataset-p-place-str", lambda: data.make_dataset(3, 3, p_place="0"), TypeError,
     r"^make_dataset: p_place must be a real number, got '0'$"),
    ("make-pairs-seed-none", lambda: tr.make_pairs(2, seed=None), TypeError,
     r"^make_pairs: seed must be a non-negative int, got None$"),
    ("make-pairs-seed-float", lambda: tr.make_pairs(2, seed=0.5), TypeError,
     r"^make_pairs: seed must be a non-negative int, got 0.5$"),
    # ---- 6. device names
    ("get-batch-device", lambda: get_batch(torch.arange(50), 2, 4, device="bogus"), ValueError,
     rf"^get_batch: device {DEVICE}"),
    ("get-batch-device-int", lambda: get_batch(torch.arange(50), 2, 4, device=[0]), TypeError,
     r"^get_batch: device must be None, a torch.device or a device name like 'cpu' or 'cuda', got a list$"),
    ("windows-device", lambda: DS.windows("val", 16, device="bogus"), ValueError, rf"^windows: device {DEVICE}"),
    ("make-batch-device", lambda: tr.make_batch(PAIRS, device="bogus"), ValueError,
     rf"^make_batch: device {DEVICE}"),
    ("batch-sampler-device", lambda: tr.batch_sampler(PAIRS, 2, device="bogus"), ValueError,
     rf"^batch_sampler: device {DEVICE}"),
    ("batch-to-device", lambda: tr.make_batch(PAIRS).to("bogus"), ValueError, rf"^Batch.to: device {DEVICE}"),
    ("map-seeds-device", lambda: map_seeds(lambda s: s, [1], device="bogus"), ValueError,
     rf"^map_seeds: device {DEVICE}"),
    ("sliding-window-device", lambda: E.sliding_window_mask(4, 2, device="bogus"), ValueError,
     rf"^sliding_window_mask: device {DEVICE}"),
    ("block-sparse-device", lambda: E.block_sparse_mask(4, 2, device="bogus"), ValueError,
     rf"^block_sparse_mask: device {DEVICE}"),
    # ---- 7. the tokenizer's other inputs
    ("from-texts-int-text", lambda: Tokenizer.from_texts([1]), TypeError,
     r"^Tokenizer.from_texts: every text of texts must be a str, got 1$"),
    ("from-texts-not-iterable", lambda: Tokenizer.from_texts(5), TypeError,
     r"^Tokenizer.from_texts: texts must be a list of texts, got 5$"),
    ("from-texts-int-extra", lambda: Tokenizer.from_texts(["a"], extra=[None]), TypeError,
     r"^Tokenizer.from_texts: every word of extra must be a str, got None$"),
    ("split-int", lambda: Tokenizer.split(5), TypeError, r"^Tokenizer.split: text must be a str, got 5$"),
    ("decode-none", lambda: TOK.decode(None), TypeError,
     r"^Tokenizer.decode: ids must be a list of ints or a 1-D tensor, got None$"),
    ("tokens-int", lambda: TOK.tokens(3), TypeError,
     r"^Tokenizer.tokens: ids must be a list of ints or a 1-D tensor, got 3$"),
    ("encode-int-word", lambda: TOK.encode(["the", 1]), TypeError,
     r"^Tokenizer.encode: every word of text must be a str, got 1$"),
    ("encode-list-word", lambda: TOK.encode([["the"]]), TypeError,
     r"^Tokenizer.encode: every word of text must be a str, got a list$"),
    # ---- 8. efficient.py: switches, benchmark, FlopCount
    ("tiled-is-causal-str", lambda: E.tiled_attention(Q, Q, Q, is_causal="no"), TypeError,
     r"^tiled_attention: is_causal must be True or False, got 'no'$"),
    ("tiled-return-stats-int", lambda: E.tiled_attention(Q, Q, Q, return_stats=0), TypeError,
     r"^tiled_attention: return_stats must be True or False, got 0$"),
    ("tiled-enable-gqa-int", lambda: E.tiled_attention(Q, Q, Q, enable_gqa=1), TypeError,
     r"^tiled_attention: enable_gqa must be True or False, got 1$"),
    ("sliding-window-causal-str", lambda: E.sliding_window_mask(4, 2, causal="no"), TypeError,
     r"^sliding_window_mask: causal must be True or False, got 'no'$"),
    ("block-sparse-causal-int", lambda: E.block_sparse_mask(4, 2, causal=0), TypeError,
     r"^block_sparse_mask: causal must be True or False, got 0$"),
    ("benchmark-warmup-float", lambda: E.benchmark(lambda: 0, warmup=1.5), TypeError,
     r"^benchmark: warmup must be a non-negative int, got 1.5$"),
    ("benchmark-warmup-negative", lambda: E.benchmark(lambda: 0, warmup=-1), ValueError,
     r"^benchmark: warmup must be a non-negative int, got -1$"),
    ("benchmark-warmup-bool", lambda: E.benchmark(lambda: 0, warmup=True), TypeError,
     r"^benchmark: warmup must be a non-negative int, got True$"),
    ("benchmark-not-callable", lambda: E.benchmark(3), TypeError, r"^benchmark: fn must be a function to time, got 3$"),
    ("flop-count-share-of-nothing", lambda: E.FlopCount(0, 0, 0).attention_share, ValueError,
     r"^FlopCount.attention_share: the block has no FLOPs \(every part is 0\), so attention has no share "
     r"of them$"),
    ("flop-count-float", lambda: E.FlopCount(1.5, 0, 0), TypeError,
     r"^FlopCount: projections must be a non-negative int, got 1.5$"),
    ("flop-count-negative", lambda: E.FlopCount(1, 2, -3), ValueError,
     r"^FlopCount: attention must be a non-negative int, got -3$"),
    # ---- 9. checkpoints (the files: see test_checkpoint_files_are_checked)
    ("load-checkpoint-none", lambda: load_checkpoint(None), TypeError,
     r"^load_checkpoint: path must be a file name \(a str or a pathlib.Path\), got None$"),
    ("load-checkpoint-cls-str", lambda: load_checkpoint("x.pt", cls="Decoder"), TypeError,
     r"^load_checkpoint: cls must be a model class such as attnlib.Decoder \(the default, None\), "
     r"attnlib.Encoder or attnlib.translation.Seq2Seq, got 'Decoder'$"),
    ("load-checkpoint-cls-instance", lambda: load_checkpoint("x.pt", cls=S2S), TypeError,
     r"^load_checkpoint: cls must be a model class .* got a Seq2Seq$"),
    ("load-checkpoint-map-location", lambda: load_checkpoint("x.pt", map_location="bogus"), ValueError,
     rf"^load_checkpoint: map_location {DEVICE}"),
    ("save-checkpoint-none", lambda: save_checkpoint(S2S, None), TypeError,
     r"^save_checkpoint: path must be a file name \(a str or a pathlib.Path\), got None$"),
    # ---- 10. a source longer than the encoder's context
    ("translate-too-long", lambda: S2S.translate(["a"] + ["big"] * 40 + ["dog", "ran"]), ValueError,
     r"^Seq2Seq.translate: src_words has 43 words, more than the encoder's context_len=16$"),
    ("forward-src-too-long", lambda: S2S(LONG_SRC, torch.tensor([17]), torch.ones(1, 3, dtype=torch.long)),
     ValueError, r"^Seq2Seq.forward: src has 17 positions, more than the encoder's context_len=16$"),
    ("encode-src-too-long", lambda: S2S.encode(LONG_SRC, torch.tensor([17])), ValueError,
     r"^Seq2Seq.encode: src has 17 positions, more than the encoder's context_len=16$"),
    # ---- 11. catalog.usage's root
    ("usage-int-root", lambda: catalog.usage(3), TypeError,
     r"^usage: root must be a folder \(a str or a pathlib.Path\) or None, got 3$"),
    ("usage-root-without-notebooks", lambda: catalog.usage("/"), ValueError,
     r"^usage: root must be a checkout of the book \(a folder with a notebooks/ folder\), got '/'$"),
    # ---- 12. switches, seeds and rngs (second round)
    ("train-progress-str", lambda: train(attnlib.Decoder(SMALL), _batch, 1, progress="no"),
     TypeError, r"^train: progress must be True or False, got 'no'$"),
    ("train-progress-int", lambda: train(attnlib.Decoder(SMALL), _batch, 1, progress=1),
     TypeError, r"^train: progress must be True or False, got 1$"),
    ("seed-everything-2**64", lambda: seed_everything(2**64), ValueError,
     r"^seed_everything: seed must be a non-negative int below 2\*\*64 \(torch's seeds are 64-bit\), "
     r"got 18446744073709551616$"),
    ("embedding-table-seed-2**64", lambda: ex.embedding_table(seed=2**64), ValueError,
     r"^embedding_table: seed must be a non-negative int below 2\*\*64"),
    ("make-story-numpy-rng", lambda: data.make_story(np.random.default_rng(0)), TypeError,
     r"^make_story: rng must be a random.Random \(e.g. random.Random\(0\)\), got a Generator$"),
    ("embed-positions-str", lambda: ex.embed("a fox", positions="no"), TypeError,
     r"^embed: positions must be True or False, got 'no'$"),
    # ---- 13. the running example's words, offsets and vectors
    ("word-features-list", lambda: ex.word_features(["a"]), TypeError,
     r"^word_features: word must be a str, got a list$"),
    ("token-embedding-unknown", lambda: ex.token_embedding("a zebra"), KeyError,
     r"^\"token_embedding: 'zebra' is not in the example's vocabulary \(example.vocabulary\(\)\)\"$"),
    ("embed-unknown", lambda: ex.embed(["fox", "zebra"]), KeyError, r"^\"embed: 'zebra' is not in the example's"),
    ("token-embedding-int", lambda: ex.token_embedding(5), TypeError,
     r"^token_embedding: text must be a str or a list of words, got 5$"),
    ("token-embedding-int-word", lambda: ex.token_embedding(["fox", 1]), TypeError,
     r"^token_embedding: every word of text must be a str, got 1$"),
    ("position-encoding-offset-str", lambda: ex.position_encoding(2, offset="a"), TypeError,
     r"^position_encoding: offset must be a non-negative int, got 'a'$"),
    ("position-encoding-offset-float", lambda: ex.position_encoding(2, offset=1.5), TypeError,
     r"^position_encoding: offset must be a non-negative int, got 1.5$"),
    ("position-encoding-offset-bool", lambda: ex.position_encoding(2, offset=True), TypeError,
     r"^position_encoding: offset must be a non-negative int, got True$"),
    ("position-encoding-offset-negative", lambda: ex.position_encoding(2, offset=-1), ValueError,
     r"^position_encoding: offset must be a non-negative int, got -1$"),
    ("nearest-zero-vector", lambda: ex.nearest(torch.zeros(20)), ValueError,
     r"^nearest: v must not be the zero vector \(it has no direction, so no cosine similarity\)$"),
    ("nearest-nan", lambda: ex.nearest(torch.full((20,), math.nan)), ValueError,
     r"^nearest: v must hold finite numbers, got 20 NaN or infinite entries$"),
    ("cosine-zero-a", lambda: ex.cosine_similarity(torch.zeros(3), torch.ones(3)), ValueError,
     r"^cosine_similarity: a holds a zero vector, which has no direction, so no cosine similarity$"),
    ("cosine-zero-row-of-b", lambda: ex.cosine_similarity(torch.ones(2, 3), torch.eye(3)[[0, 2]] * torch.tensor(
        [[1.0], [0.0]])), ValueError, r"^cosine_similarity: b holds a zero vector at index \(1,\), which has no"),
    ("cosine-list", lambda: ex.cosine_similarity([1.0], [1.0]), TypeError,
     r"^cosine_similarity: a must be a torch.Tensor, got a list$"),
    ("cosine-int", lambda: ex.cosine_similarity(torch.ones(3), torch.ones(3, dtype=torch.long)), TypeError,
     r"^cosine_similarity: b must be floating point, got dtype torch.int64$"),
    ("cosine-0-dim", lambda: ex.cosine_similarity(torch.tensor(2.0), torch.ones(1)), ValueError,
     r"^cosine_similarity: a must have at least 1 dim \(..., d\), got a 0-dim tensor$"),
    ("cosine-last-dim", lambda: ex.cosine_similarity(torch.ones(3), torch.ones(4)), ValueError,
     r"^cosine_similarity: a and b must have the same last dim d \(the length of their vectors\), got \(3,\) "
     r"and \(4,\)$"),
    ("cosine-last-dim-1", lambda: ex.cosine_similarity(torch.ones(2, 1), torch.ones(2, 4)), ValueError,
     r"^cosine_similarity: a and b must have the same last dim d"),  # broadcast, it gave a cosine > 1
    ("cosine-batch-dims", lambda: ex.cosine_similarity(torch.ones(2, 3), torch.ones(5, 3)), ValueError,
     r"^cosine_similarity: the batch dims of a and b must broadcast \(like a \* b\), got \(2, 3\) and "
     r"\(5, 3\)$"),
    # ---- 14. question_accuracy's windows
    ("accuracy-float-x", lambda: data.question_accuracy(torch.randn(1, 4, 5), torch.zeros(1, 4), _QA), TypeError,
     r"^question_accuracy: x must be an integer \(long\) tensor, got torch.float32$"),
    ("accuracy-x-beyond-vocab", lambda: data.question_accuracy(torch.randn(1, 4, 5), torch.full((1, 4), 99), _QA),
     ValueError, r"^question_accuracy: every id of x must lie in \[0, vocab_size=5\), got 99$"),
    # ---- 15. hand-made pairs
    ("make-batch-unknown-src-word", lambda: tr.make_batch([PAIRS[0], tr.Pair(("zzz",), ("un",), (0,))]),
     ValueError, r"^make_batch: pairs\[1\].src has the word 'zzz', which is not in the source vocabulary "
     r"\(the lexicon\)$"),
    ("make-batch-unknown-tgt-word", lambda: tr.make_batch([tr.Pair(("a", "dog"), ("un", "dog"), (0, 1))]),
     ValueError, r"^make_batch: pairs\[0\].tgt has the word 'dog', which is not in the target vocabulary"),
    ("make-batch-short-align", lambda: tr.make_batch([tr.Pair(("a", "dog", "ran"), ("un", "kane", "kurra"), (0, 1))]),
     ValueError, r"^make_batch: pairs\[0\].align must have one source index per target word \(3\), got 2$"),
    ("make-batch-align-beyond-src", lambda: tr.make_batch([tr.Pair(("a", "dog"), ("un", "kane"), (0, 2))]),
     ValueError, r"^make_batch: every entry of pairs\[0\].align must be an index into its src, in \[0, 2\), "
     r"got 2$"),
    ("make-batch-align-float", lambda: tr.make_batch([tr.Pair(("a", "dog"), ("un", "kane"), (0, 1.0))]),
     TypeError, r"^make_batch: pairs\[0\].align must be a list of ints \(a source index per target word\), "
     r"got a tuple$"),
    ("make-batch-src-str", lambda: tr.make_batch([tr.Pair("a dog ran", ("un", "kane", "kurra"), (0, 1, 2))]),
     TypeError, r"^make_batch: pairs\[0\].src must be a list of words, got the string 'a dog ran'"),
    ("batch-sampler-short-align", lambda: tr.batch_sampler([*PAIRS, tr.Pair(("a", "dog"), ("un", "kane"), (0,))], 2),
     ValueError, r"^batch_sampler: pairs\[3\].align must have one source index per target word \(2\), got 1$"),
    ("plot-alignment-ax-str", lambda: tr.plot_alignment(PAIRS[0], ax="ax"), TypeError,
     r"^plot_alignment: ax must be a matplotlib Axes or None \(a new figure\), got 'ax'$"),
    ("plot-alignment-short-align", lambda: tr.plot_alignment(tr.Pair(("a",), ("un", "x"), (0,))), ValueError,
     r"^plot_alignment: pair.align must have one source index per target word \(2\), got 1$"),
    # ---- 16. checkpoints' classes (the files: see test_a_checkpoint_that_does_not_fit_is_named)
    ("load-checkpoint-cls-mha", lambda: load_checkpoint("x.pt", cls=attnlib.MultiHeadAttention), TypeError,
     r"^load_checkpoint: cls must be a model class built from a DecoderConfig, as cls\(config\) "
     r"\(attnlib.Decoder, attnlib.Encoder, attnlib.translation.Seq2Seq\), got MultiHeadAttention, which is "
     r"built from \(d_model, n_heads\)$"),
    # ---- 17. the catalog and parameter counts
    ("format-catalog-int-item", lambda: catalog.format_catalog([1]), TypeError,
     r"^format_catalog: every item of items must be an Entry, got 1 at index 0$"),
    ("format-catalog-str", lambda: catalog.format_catalog("viz"), TypeError,
     r"^format_catalog: items must be a list of Entry \(e.g. entries\('viz'\)\), got 'viz'$"),
    ("format-catalog-width-0", lambda: catalog.format_catalog(VIZ, width=0), ValueError,
     r"^format_catalog: width must be a positive int, got 0$"),
    ("format-catalog-width-float", lambda: catalog.format_catalog(VIZ, width=80.0), TypeError,
     r"^format_catalog: width must be a positive int, got 80.0$"),
    ("share-int", lambda: attnlib.count_parameters(torch.nn.Linear(2, 2)).share(5), TypeError,
     r"^ParameterCount.share: component must be a str such as 'attention' or 'mlp' \(the keys of "
     r"by_component\), got 5$"),
    # ---- the shared validator
    ("words-str", lambda: V.words("f", "names", "abc", hint="; pass ['abc']"), TypeError,
     r"^f: names must be a list of words, got the string 'abc' \(which would be read as its characters\); "
     r"pass \['abc'\]$"),
    ("words-not-iterable", lambda: V.words("f", "names", 3.5), TypeError, r"^f: names must be a list of words, got 3.5$"),
    ("words-item", lambda: V.words("f", "names", ["a", b"b"], what="names", item="name"), TypeError,
     r"^f: every name of names must be a str, got a bytes$"),
]


@pytest.mark.parametrize("call,exc,message", [pytest.param(c, e, m, id=i) for i, c, e, m in CASES])
def test_bad_input_gets_a_clear_error(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_the_valid_calls_next_to_the_refused_ones_still_work():
    assert V.words("f", "names", ("a", "b")) == ["a", "b"] and V.words("f", "names", iter(["c"])) == ["c"]
    assert Tokenizer.from_texts(("the cat", "a cat"), extra=["<pad>"]).vocab == ["<pad>", "the", "cat", "a"]
    assert Tokenizer.from_texts(t for t in ["the cat"]).vocab == ["the", "cat"]  # any iterable of texts
    assert [w for w, _ in ex.nearest(FOX, 2, exclude=["fox"])] == [w for w, _ in ex.nearest(FOX, 3)][1:]
    assert ex.nearest(FOX, 3, exclude=iter(())) == ex.nearest(FOX, 3)
    assert torch.equal(ex.embedding_table(noise=0)[1], ex.embedding_table(noise=0.0)[1])
    assert torch.equal(ex.adjective_head(3)[0], ex.adjective_head(3.0)[0])
    everything = DS.windows("val", 16)[0]
    assert torch.equal(DS.windows("val", 16, n=len(everything))[0], everything)  # exactly as many as exist
    assert str(data.make_stories(3, seed=np.int64(4))[2]) == str(data.make_stories(3, seed=4)[2])
    assert data.make_stories(2, seed=0, p_size=1, p_place=0)[0].tokens == data.make_stories(
        2, seed=0, p_size=1.0)[0].tokens
    assert tr.make_pairs(5, seed=2, exclude=[list(p.src) for p in PAIRS]) == tr.make_pairs(5, seed=2, exclude=PAIRS)
    assert len(S2S.translate(["the"] + ["big"] * 13 + ["dog", "ran"], max_len=1)) <= 1  # 16 words fit
    assert E.FlopCount(0, 0, 0).total == 0 and E.FlopCount(1, 1, 2).attention_share == 0.5
    assert E.benchmark(lambda: 0, warmup=0, repeats=1) >= 0
    assert E.sliding_window_mask(4, 2, causal=np.bool_(False), device=torch.device("cpu")).sum() == 10


def test_a_listed_word_is_looked_up_like_the_words_of_a_string():
    """encode(["The"]) gave the unknown token's id while encode("The") gave the word's: a str is
    lowercased, so a listed word missing from the vocabulary is looked up in lowercase too."""
    assert TOK.encode(["The", "CAT"]) == TOK.encode("The CAT") == [0, 1]
    assert TOK.encode(["dog"]) == [TOK.stoi["<unk>"]]  # unknown in either case: still the unk
    cased = Tokenizer(["The", "the"])
    assert cased.encode(["The", "the", "THE"]) == [0, 1, 1]  # a word the vocabulary has is taken as given
    with pytest.raises(KeyError, match="'Dog' is not in the vocabulary of 2 words"):
        cased.encode(["Dog"])


def test_a_checkpoint_of_another_class_is_named_before_the_model_is_built(tmp_path):
    dec = attnlib.Decoder(SMALL)
    save_checkpoint(S2S, tmp_path / "s2s.pt")
    save_checkpoint(dec, tmp_path / "dec.pt")
    save_checkpoint(attnlib.Encoder(SMALL), tmp_path / "enc.pt")
    rng = torch.get_rng_state()
    with pytest.raises(ValueError, match=r"^load_checkpoint: .*s2s.pt holds a Seq2Seq \(the names of its weights "
                                         r"say so\), but cls is Decoder \(the default\); pass "
                                         r"cls=attnlib.translation.Seq2Seq$"):
        load_checkpoint(tmp_path / "s2s.pt")
    with pytest.raises(ValueError, match=r"^load_checkpoint: .*dec.pt holds a Decoder .* but cls is Encoder; "
                                         r"pass cls=attnlib.Decoder$"):
        load_checkpoint(tmp_path / "dec.pt", cls=attnlib.Encoder)
    with pytest.raises(ValueError, match=r"^load_checkpoint: .*enc.pt holds an Encoder .* but cls is Seq2Seq; "
                                         r"pass cls=attnlib.Encoder$"):
        load_checkpoint(tmp_path / "enc.pt", cls=tr.Seq2Seq)
    assert torch.equal(torch.get_rng_state(), rng)  # no model was built (its init would draw)

    class MyDecoder(attnlib.Decoder):
        pass

    for path, cls in (("s2s.pt", tr.Seq2Seq), ("dec.pt", None), ("dec.pt", MyDecoder), ("enc.pt", attnlib.Encoder)):
        model = load_checkpoint(str(tmp_path / path), cls=cls, map_location=torch.device("cpu"))
        assert isinstance(model, cls or attnlib.Decoder)
        saved = {"s2s.pt": S2S, "dec.pt": dec}.get(path)
        if saved is not None:
            assert all(torch.equal(v, saved.state_dict()[k]) for k, v in model.state_dict().items())


def test_checkpoint_files_are_checked(tmp_path):
    folder = str(tmp_path) + "/"
    with pytest.raises(ValueError, match=rf"^save_checkpoint: path must be a file, got the folder '{folder}'; "
                                         rf"add a file name, e.g. '{tmp_path / 'model.pt'}'$"):
        save_checkpoint(S2S, folder)
    missing = tmp_path / "no" / "such" / "m.pt"
    with pytest.raises(ValueError, match=rf"^save_checkpoint: the folder of path '{missing}' does not exist; "
                                         r"create it first"):
        save_checkpoint(S2S, missing)
    assert list(tmp_path.iterdir()) == []  # nothing written
    save_checkpoint(S2S, str(tmp_path / "as-str.pt"))  # a str path, as before
    assert isinstance(load_checkpoint(tmp_path / "as-str.pt", cls=tr.Seq2Seq), tr.Seq2Seq)


def test_a_file_torch_load_cannot_read_safely_is_named(tmp_path):
    """Not a torch file, a truncated one, or a whole pickled model (code): a ValueError that says so,
    not torch's advice to load with weights_only=False."""
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    whole = tmp_path / "whole.pt"
    torch.save(attnlib.Decoder(SMALL), whole)
    truncated = tmp_path / "truncated.pt"
    save_checkpoint(attnlib.Decoder(SMALL), truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    for path in (garbage, whole, truncated):
        with pytest.raises(ValueError, match=rf"^load_checkpoint: {path} is not a checkpoint that save_checkpoint "
                                             r"wrote: torch.load with weights_only=True"):
            load_checkpoint(path)


def test_usage_takes_a_str_root(tmp_path):
    (tmp_path / "notebooks").mkdir()
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": "viz.plot_attention(p, t)"}
    (tmp_path / "notebooks" / "01_x.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}}))
    assert catalog.usage(str(tmp_path)) == catalog.usage(tmp_path) == {("viz", "plot_attention"): ["01_x"]}



# --------------------------------------------------------------------------- second round


def test_refused_calls_leave_the_model_the_rng_and_the_figures_as_they_were():
    model = attnlib.Decoder(SMALL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TypeError, match=r"^train: progress must be True or False"):
        train(model, _batch, 1, progress="no")
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # not trained
    figures = plt.get_fignums()
    with pytest.raises(ValueError, match=r"^plot_alignment: pair.align must have one source index"):
        tr.plot_alignment(tr.Pair(("a", "dog"), ("un", "kane", "x"), (0, 1)))
    assert plt.get_fignums() == figures  # checked before a figure was opened


def _checkpoint(tmp_path, change):
    """A file as save_checkpoint writes it for a Decoder(SMALL), changed by ``change(raw)``."""
    raw = {"config": dataclasses.asdict(SMALL), "state_dict": attnlib.Decoder(SMALL).state_dict()}
    change(raw)
    torch.save(raw, tmp_path / "m.pt")
    return tmp_path / "m.pt"


FIT = r"^load_checkpoint: the weights in .*m.pt do not fit the Decoder its config describes: "
BAD_FILES = [
    ("config-unknown-key", lambda raw: raw["config"].update(foo=1),
     r"^load_checkpoint: the config in .*m.pt has the key 'foo', which is not a field of DecoderConfig \(its "
     r"fields are \['vocab_size', 'context_len', .*\]\); was the file saved by another version of attnlib\?$"),
    ("config-list", lambda raw: raw.update(config=[1, 2]),
     r"^load_checkpoint: .*m.pt holds a config that is a list, not a dict of DecoderConfig's fields \(what "
     r"save_checkpoint writes\)$"),
    ("config-invalid", lambda raw: raw["config"].update(n_heads=5),
     r"^load_checkpoint: the config in .*m.pt is not a valid DecoderConfig: DecoderConfig: d_model=16 is not "
     r"divisible by n_heads=5"),
    ("state-dict-empty", lambda raw: raw.update(state_dict={}),
     r"^load_checkpoint: .*m.pt holds a config and an empty state_dict \(no weights\), not a saved model$"),
    ("state-dict-list", lambda raw: raw.update(state_dict=[1]),
     r"^load_checkpoint: .*m.pt holds a state_dict that is a list, not a dict of the model's weights \(what "
     r"save_checkpoint writes\)$"),
    ("weights-missing", lambda raw: raw["state_dict"].pop("ln_f.weight"),
     FIT + r"the file lacks weights of the model \(1 of \d+, first 'ln_f.weight'\)$"),
    ("weights-extra", lambda raw: raw["state_dict"].update(extra=torch.zeros(1)),
     FIT + r"the file has weights the model does not have \(1, first 'extra'\)$"),
    ("weights-resized", lambda raw: raw["config"].update(vocab_size=12),
     FIT + r"weights of another shape \(2, first 'embed.tok.weight': \(11, 16\) in the file, \(12, 16\) in "
     r"the model\)$"),
]


@pytest.mark.parametrize("change,message", [pytest.param(c, m, id=i) for i, c, m in BAD_FILES])
def test_a_checkpoint_that_does_not_fit_is_named_before_the_model_is_built(tmp_path, change, message):
    path = _checkpoint(tmp_path, change)
    rng = torch.get_rng_state()
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path)
    assert torch.equal(torch.get_rng_state(), rng)  # no model was built (its init would draw)


def test_the_valid_calls_next_to_the_second_round_refusals_still_work(tmp_path):
    assert isinstance(seed_everything(2**64 - 1), torch.Generator)  # the largest seed torch takes
    assert torch.equal(ex.embedding_table(seed=np.int64(1))[1], ex.embedding_table(seed=1)[1])
    assert torch.equal(ex.position_encoding(3, offset=np.int64(2)), ex.position_encoding(5)[2:])
    assert torch.equal(ex.embed("a fox", positions=np.bool_(False))[1], ex.token_embedding("a fox")[1])
    assert ex.token_embedding(("A", "Fox"))[0] == ex.embed("a fox")[0] == ["a", "fox"]  # looked up as encode does
    x = ex.token_embedding("fox owl mole")[1]  # chapter 1's all-pairs table, by broadcasting
    a, b = x[:, None, :], x[None, :, :]
    assert torch.equal(ex.cosine_similarity(a, b), (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)))
    assert data.make_story(random.Random(0)).tokens == data.make_stories(1, seed=0)[0].tokens
    as_given = tr.Pair(("The", "dog", "ran"), ("le", "kane", "kurra"), (0, 1, 2))  # a listed word in any case
    assert torch.equal(tr.make_batch([as_given]).src, tr.make_batch([tr.translate_words(["the", "dog", "ran"])]).src)
    fig, ax = plt.subplots()
    assert tr.plot_alignment(PAIRS[0], ax=ax) is ax
    plt.close(fig)
    assert catalog.format_catalog(iter(VIZ), width=60) == catalog.format_catalog(VIZ, width=60)  # read once
    assert attnlib.count_parameters(torch.nn.Linear(2, 2)).share("attention") == 0.0  # a part it lacks
    save_checkpoint(attnlib.Encoder(SMALL), tmp_path / "enc.pt")
    assert isinstance(load_checkpoint(tmp_path / "enc.pt", cls=attnlib.Encoder), attnlib.Encoder)

"""Bad input to attnlib's helpers (data, tokenizer, running example, translation, training,
efficient attention, catalog) gets a TypeError/ValueError that names the function called, the
argument, what it got and what was expected, before any state changes; valid input still works.

One table of cases, one parametrized test; the cases about state, and the valid calls next to
the refused ones, have their own tests.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import attnlib
from attnlib import Tokenizer, catalog, data
from attnlib import _validate as V
from attnlib import efficient as E
from attnlib import example as ex
from attnlib import translation as tr
from attnlib.train import get_batch, load_checkpoint, map_seeds, save_checkpoint

FOX = ex.embedding_table()[1][ex.vocabulary().index("fox")]
DS = data.make_dataset(n_train=20, n_val=5, seed=0)
PAIRS = tr.make_pairs(3, seed=0)
S2S = tr.Seq2Seq(tr.small_config()).eval()  # context_len 16 on both sides
LONG_SRC = torch.ones(1, 17, dtype=torch.long)
Q = torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(0))
TOK = Tokenizer(["the", "cat"], unk="<unk>")
SMALL = attnlib.DecoderConfig(vocab_size=11, context_len=8, d_model=16, n_layers=1, n_heads=4)
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


def test_usage_takes_a_str_root(tmp_path):
    (tmp_path / "notebooks").mkdir()
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": "viz.plot_attention(p, t)"}
    (tmp_path / "notebooks" / "01_x.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}}))
    assert catalog.usage(str(tmp_path)) == catalog.usage(tmp_path) == {("viz", "plot_attention"): ["01_x"]}


"""The checkpoint attnlib ships for chapter 9 (attnlib/checkpoints/adjective.pt): it loads, it is the
model its JSON says, it answers the adjective language's questions; the script that made it still
uses chapter 10's recipe; and (slow) that recipe, from another seed, trains a model for which
chapter 9's claims hold."""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch
from conftest import ROOT

import attnlib
from attnlib import checkpoints, data
from attnlib.lens import logit_lens
from attnlib.train import load_checkpoint

sys.path.insert(0, str(ROOT / "scripts"))
import train_checkpoint as script

PROMPT = "the fluffy blue creature roamed . it is"


def _answers(model, tok) -> dict:
    """What chapter 9 says about a trained model, measured: the top word at `is` in PROMPT, and the
    logit lens there at the embedding and at the output."""
    ids = torch.tensor([tok.encode(PROMPT)])
    with torch.no_grad():
        lensed = logit_lens(model.eval(), ids)
    top = {name: tok.vocab[int(v[0, -1].argmax())] for name, v in lensed.items()}
    return {"top": top, "stages": list(lensed)}


def test_the_checkpoint_loads_and_answers():
    ds = script.dataset()
    model = load_checkpoint(checkpoints.path("adjective")).eval()
    meta = checkpoints.info("adjective")
    assert checkpoints.available() == ["adjective"]
    assert isinstance(model, attnlib.Decoder) and model.config == script.config(ds.tokenizer)
    assert meta["made_by"] == "scripts/train_checkpoint.py" and meta["recipe"] == script.RECIPE
    assert meta["steps"] <= script.RECIPE["steps"] and meta["val_loss"] < 1.2
    # chapter 10's claims hold for it: almost every question answered (measured here, on this machine)
    accuracy = script.evaluate(model, ds)
    assert min(accuracy.values()) >= 0.95, accuracy
    assert accuracy == pytest.approx(meta["accuracy"], abs=0.01)
    # chapter 9's: the embedding of `is` names no colour, the output names the story's
    said = _answers(model, ds.tokenizer)
    assert said["top"]["embedding"] not in data.COLOURS and said["top"][said["stages"][-1]] == "blue", said
    # the weights are float32 and finite, and the file holds nothing but tensors and the config
    raw = torch.load(checkpoints.path("adjective"), weights_only=True)
    assert set(raw) == {"config", "state_dict"}
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in raw["state_dict"].values())


def test_the_script_uses_chapter_10s_recipe():
    """If chapter 10 changes its recipe, the checkpoint must be made again (and RECIPE updated)."""
    nb = json.loads((ROOT / "notebooks" / "10_training.ipynb").read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    r = script.RECIPE
    wanted = [
        rf"make_dataset\(n_train={r['n_train']}, n_val={r['n_val']}, seed={r['data_seed']}\)",
        rf"TINY\.replace\(vocab_size=len\(tok\), context_len={r['context_len']}\)\n",
        rf"steps, lr, warmup, autocast_dtype = {r['steps']}, 2e-2, {r['warmup']}, None",
        rf"else:\n(.*\n)*?    batch_size = {r['batch_size']}\n",
        rf"n={r['check_windows']}", rf">= {r['stop_accuracy']}\)\.all\(\)", rf"eval_every={r['eval_every']}",
        rf"get_batch\(ds\.val, {r['val_batch_size']}, T", r"torch\.set_num_threads\(1\)",
    ]
    assert r["lr"] == 2e-2
    missing = [w for w in wanted if not re.search(w, code)]
    assert not missing, (f"chapter 10's recipe changed ({missing}): update RECIPE in "
                         "scripts/train_checkpoint.py and run it to make the checkpoint again")


def test_checkpoint_names_are_checked():
    with pytest.raises(ValueError, match=r"^checkpoints\.path: no checkpoint named 'gpt2'; attnlib ships "
                                         r"\['adjective'\]"):
        checkpoints.path("gpt2")
    with pytest.raises(TypeError, match=r"^checkpoints\.path: name must be a str, got int$"):
        checkpoints.path(3)


@pytest.mark.slow
def test_the_recipe_trains_a_model_for_which_chapter_9s_claims_hold(tmp_path):
    """Another seed (about a minute on one CPU thread): chapter 10's claims and chapter 9's."""
    assert script.main(["--seed", "1", "--out", str(tmp_path / "other.pt")]) == 0
    meta = json.loads((tmp_path / "other.json").read_text())
    assert meta["seed"] == 1 and meta["val_loss"] < 1.2 and min(meta["accuracy"].values()) >= 0.95, meta
    model = load_checkpoint(tmp_path / "other.pt")
    said = _answers(model, data.make_tokenizer())
    assert said["top"]["embedding"] not in data.COLOURS and said["top"][said["stages"][-1]] == "blue", said

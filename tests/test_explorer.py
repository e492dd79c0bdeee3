"""ModelExplorer: the widget state (weights, shapes, config), every error message, and the JavaScript
forward pass (attnlib/static/decoder.js, run by node on the widget's own module) against
attnlib.Decoder, with and without heads switched off by attnlib.hooks.ablate_heads.

The models here are untrained (random weights, scaled up so that patterns and logits are far from
uniform): equivalence needs no training. The browser tests are in test_explorer_browser.py.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

import attnlib
from attnlib import data
from attnlib import widgets as W
from attnlib.hooks import ablate_heads, record_patterns

ROOT = Path(__file__).resolve().parents[1]
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: the explorer's JavaScript is not tested")

TOK = data.make_tokenizer()
PROMPT = "the fluffy blue creature roamed . it is"
PROMPTS = [
    PROMPT,
    "the shiny red fox slept . the fox is",
    "a tiny grey owl with",  # 'with' is not a word of the language: tested separately below
    "the big rough green frog hid near the hill . it feels",
    "the",
    # 32 words: a full context
    "the soft yellow mouse ran by the river . the mouse is yellow . a spiky brown bear sang . "
    "it feels spiky . it is brown . the small cat is",
]

# (name, config, changes to the model): several shapes of model, all decoder-only
CONFIGS = {
    "chapter10": attnlib.TINY.replace(vocab_size=len(TOK), context_len=32),
    "gqa-bias-untied": attnlib.DecoderConfig(vocab_size=len(TOK), context_len=32, d_model=24, n_layers=1,
                                             n_heads=4, n_kv_heads=2, d_head=8, d_mlp=40, bias=True,
                                             tie_embeddings=False),
    "mqa-3-layers": attnlib.DecoderConfig(vocab_size=len(TOK), context_len=32, d_model=16, n_layers=3,
                                          n_heads=2, n_kv_heads=1, d_mlp=20),
}


def _model(config, seed: int = 0, gelu: str = "none") -> attnlib.Decoder:
    """A random Decoder whose weights are large enough that patterns and logits are not uniform."""
    torch.manual_seed(seed)
    m = attnlib.Decoder(config).eval()
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]) * 1.5)
            elif name.endswith("weight"):  # LayerNorm gains
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    if gelu != "none":
        for block in m.blocks:
            block.mlp.act = nn.GELU(approximate=gelu)
    return m


def _ids(text: str) -> list[int]:
    return [TOK.stoi[w] for w in TOK.split(text) if w in TOK.stoi]


def _reference(model, ids, off=()):
    """attnlib's logits (T, V) and patterns (L, H, T, T) with the heads in ``off`` switched off."""
    heads: dict[str, list[int]] = {}
    for layer, head in off:
        heads.setdefault(f"blocks.{layer}.attn", []).append(head)
    with torch.no_grad(), record_patterns(model) as pats, ablate_heads(model, heads):
        logits, _ = model(torch.tensor([ids]))
    L = len(model.blocks)
    return logits[0], torch.stack([pats[f"blocks.{i}.attn"][0] for i in range(L)])


def _node(widget_esm: str, cases: list, tmp_path: Path) -> list:
    mod = tmp_path / "explorer.mjs"
    mod.write_text(widget_esm)
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    proc = subprocess.run([NODE, str(ROOT / "tests" / "js" / "eval_decoder.mjs"), str(mod), str(path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


# --------------------------------------------------------------------------- the JS forward pass


@needs_node
@pytest.mark.parametrize("name", list(CONFIGS))
def test_js_forward_matches_attnlib(name, tmp_path):
    """Logits and every head's pattern equal attnlib.Decoder's to 1e-5 on several prompts, with no
    head off, one head off and several heads off (attnlib.hooks.ablate_heads)."""
    config = CONFIGS[name]
    model = _model(config)
    e = W.ModelExplorer(model, TOK, PROMPT)
    L, H = config.n_layers, config.n_heads
    offs = [[], [[L - 1, H - 1]], [[0, 0]] + ([[L - 1, 1]] if H > 1 else [])]
    cases, refs = [], []
    for text in PROMPTS:
        ids = _ids(text)[: config.context_len]
        for off in offs:
            cases.append({"op": "forward", "config": e.config, "weights": e.weights, "ids": ids, "ablated": off})
            refs.append(_reference(model, ids, off))
    got = _node(e._esm, cases, tmp_path)
    assert len(_ids(PROMPTS[-1])) == 32 == config.context_len
    for case, (logits, pats), res in zip(cases, refs, got, strict=True):
        msg = f"{name}, {len(case['ids'])} tokens, off {case['ablated']}"
        torch.testing.assert_close(_t(res["logits"]), logits.double(), atol=1e-5, rtol=1e-5, msg=msg)
        torch.testing.assert_close(_t(res["patterns"]), pats.double(), atol=1e-5, rtol=1e-5, msg=msg)
    # the test can fail: switching a head off moves the logits well beyond the tolerance
    first, second = got[0]["logits"], got[1]["logits"]
    assert (_t(first) - _t(second)).abs().max() > 1e-2


@needs_node
@pytest.mark.parametrize("name", ["chapter10", "gqa-bias-untied"])
def test_js_logit_lens_matches_attnlib(name, tmp_path):
    """The lens view: at the first, a middle and the last position, the stream after every stage read
    through ln_f and the unembedding equals attnlib.lens.logit_lens to 1e-5, with heads on and off;
    its last stage is the model's logits, and a head switched off leaves the stages before it be."""
    from attnlib.lens import logit_lens

    config = CONFIGS[name]
    model = _model(config, seed=4)
    e = W.ModelExplorer(model, TOK, PROMPT)
    L = config.n_layers
    cases, refs = [], []
    for text in (PROMPT, PROMPTS[-1]):
        ids = _ids(text)[: config.context_len]
        for off in ([], [[L - 1, 0]]):
            heads = {f"blocks.{layer}.attn": [head] for layer, head in off}
            with torch.no_grad(), ablate_heads(model, heads):
                lensed = logit_lens(model, torch.tensor([ids]))
            for position in (0, len(ids) // 2, len(ids) - 1):
                cases.append({"op": "lens", "config": e.config, "weights": e.weights, "ids": ids,
                              "ablated": off, "position": position})
                refs.append((lensed, position))
    got = _node(e._esm, cases, tmp_path)
    names = ["embedding"] + [f"{kind} {i}" for i in range(L) for kind in ("attention", "MLP")]
    for case, (lensed, position), res in zip(cases, refs, got, strict=True):
        assert res["names"] == list(lensed) == names
        want = torch.stack([v[0, position] for v in lensed.values()]).double()
        msg = f"{name}, {len(case['ids'])} tokens, position {position}, off {case['ablated']}"
        torch.testing.assert_close(_t(res["logits"]), want, atol=1e-5, rtol=1e-5, msg=msg)
    # the last stage is the forward pass's logits at that position
    last = _node(e._esm, [{**cases[2], "op": "forward"}], tmp_path)[0]["logits"][cases[2]["position"]]
    assert got[2]["logits"][-1] == pytest.approx(last, abs=1e-12)
    # the stages differ (the test can fail), and switching off a head of the last layer changes only
    # the stages from that layer's attention on
    on, off = _t(got[2]["logits"]), _t(got[5]["logits"])
    assert (on[1:] - on[:-1]).abs().amax(-1).min() > 1e-3
    assert torch.equal(on[: 2 * L - 1], off[: 2 * L - 1]) and (on[2 * L - 1:] - off[2 * L - 1:]).abs().max() > 1e-3


@needs_node
def test_js_forward_matches_attnlib_in_float64(tmp_path):
    """In float64 (attnlib on the same float32 weights, cast up) the two agree to 1e-10: what is left
    at 1e-5 above is torch's float32 rounding, not a difference in the computation."""
    config = CONFIGS["gqa-bias-untied"]
    model = _model(config, seed=3)
    e = W.ModelExplorer(model, TOK, PROMPT)
    ids = _ids(PROMPTS[-1])
    off = [[0, 2]]
    got = _node(e._esm, [{"op": "forward", "config": e.config, "weights": e.weights, "ids": ids,
                          "ablated": off}], tmp_path)[0]
    logits, pats = _reference(model.double(), ids, off)
    torch.testing.assert_close(_t(got["logits"]), logits, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(_t(got["patterns"]), pats, atol=1e-10, rtol=1e-10)


@needs_node
def test_js_forward_tanh_gelu_and_float16(tmp_path):
    """A model with tanh-approximated GELU; and float16 weights (half the page), which equal attnlib
    run on the same weights rounded to float16."""
    config = CONFIGS["mqa-3-layers"]
    model = _model(config, seed=5, gelu="tanh")
    e = W.ModelExplorer(model, TOK, PROMPT)
    assert e.config["gelu"] == "tanh"
    half = W.ModelExplorer(model, TOK, PROMPT, dtype="float16")
    ids = _ids(PROMPTS[1])
    cases = [{"op": "forward", "config": x.config, "weights": x.weights, "ids": ids, "ablated": []} for x in (e, half)]
    got = _node(e._esm, cases, tmp_path)
    logits, pats = _reference(model, ids)
    torch.testing.assert_close(_t(got[0]["logits"]), logits.double(), atol=1e-5, rtol=1e-5)
    rounded = half.to_decoder()
    with torch.no_grad():
        for p in model.parameters():
            assert p.dtype == torch.float32
    logits16, pats16 = _reference(rounded, ids)
    torch.testing.assert_close(_t(got[1]["logits"]), logits16.double(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_t(got[1]["patterns"]), pats16.double(), atol=1e-5, rtol=1e-5)
    assert (logits16 - logits).abs().max() > 1e-6  # float16 really rounds


@needs_node
def test_js_greedy_generation_matches_decoder_generate(tmp_path):
    """The 'generate' button in greedy mode appends the tokens Decoder.generate(temperature=0) does,
    also past the context window and with a head off; sampling is seeded and reproducible."""
    config = CONFIGS["chapter10"].replace(context_len=12)
    model = _model(config, seed=1)
    e = W.ModelExplorer(model, TOK, PROMPT)
    ids = _ids(PROMPT)
    off = [[1, 2]]
    with torch.no_grad():
        want = model.generate(torch.tensor([ids]), 10, temperature=0)[0].tolist()
        with ablate_heads(model, {"blocks.1.attn": [2]}):
            want_off = model.generate(torch.tensor([ids]), 10, temperature=0)[0].tolist()
    base = {"op": "generate", "config": e.config, "weights": e.weights, "ids": ids, "n": 10,
            "temperature": 1.0, "seed": 7}
    got = _node(e._esm, [{**base, "greedy": True}, {**base, "greedy": True, "ablated": off},
                         {**base, "greedy": False}, {**base, "greedy": False},
                         {**base, "greedy": False, "seed": 8}], tmp_path)
    assert got[0] == want
    assert got[1] == want_off and want_off != want
    assert got[2] == got[3] and got[2] != got[4]  # same seed, same tokens; another seed, others
    e.ablated = off
    assert e.generate_greedy(10) == want_off


@needs_node
def test_js_erf_and_gelu(tmp_path):
    xs = [-7.0, -4.5, -3.0, -2.999, -1.0, -1e-3, 0.0, 0.3, 1.7, 2.999, 3.0, 3.5, 6.0, 30.0]
    e = W.ModelExplorer(_model(CONFIGS["mqa-3-layers"]), TOK, PROMPT)
    erf, exact, tanh = _node(e._esm, [{"op": "erf", "xs": xs}, {"op": "gelu", "xs": xs, "kind": "erf"},
                                      {"op": "gelu", "xs": xs, "kind": "tanh"}], tmp_path)
    x = _t(xs)
    torch.testing.assert_close(_t(erf), torch.special.erf(x), atol=1e-13, rtol=0)
    torch.testing.assert_close(_t(exact), nn.functional.gelu(x), atol=1e-13, rtol=0)
    torch.testing.assert_close(_t(tanh), nn.functional.gelu(x, approximate="tanh"), atol=1e-13, rtol=0)


@needs_node
def test_js_tokenize_matches_tokenizer_and_flags_unknown_words(tmp_path):
    e = W.ModelExplorer(_model(CONFIGS["mqa-3-layers"]), TOK, PROMPT)
    texts = ["The Fluffy, blue creature!", "a tiny grey owl with wings", "it's  big\tred", ""]
    got = _node(e._esm, [{"op": "tokenize", "text": t, "vocab": TOK.vocab} for t in texts]
                + [{"op": "tokenize", "text": texts[1], "vocab": TOK.vocab + ["<unk>"], "unk": "<unk>"}], tmp_path)
    for text, r in zip(texts, got, strict=False):
        words = TOK.split(text)
        assert r["words"] == words
        assert r["unknown"] == [w for w in words if w not in TOK.stoi]
        assert r["ids"] == [TOK.stoi[w] for w in words if w in TOK.stoi]
    assert got[1]["unknown"] == ["with", "wings"] and got[1]["known"] == [True] * 4 + [False] * 2
    unk = attnlib.Tokenizer(TOK.vocab, unk="<unk>")
    assert got[4]["ids"] == unk.encode(texts[1])


@needs_node
def test_js_rejects_weights_that_do_not_fit_the_config(tmp_path):
    e = W.ModelExplorer(_model(CONFIGS["mqa-3-layers"]), TOK, PROMPT)
    bad_shape = dict(e.weights)
    bad_shape["blocks.0.attn.qkv_proj.weight"] = e.weights["blocks.0.attn.out_proj.weight"]
    missing = {k: v for k, v in e.weights.items() if k != "ln_f.weight"}
    short = dict(e.weights)
    short["ln_f.weight"] = {**e.weights["ln_f.weight"], "data": e.weights["embed.pos.weight"]["data"]}
    got = _node(e._esm, [{"op": "build", "config": e.config, "weights": w} for w in (e.weights, bad_shape, missing, short)],
                tmp_path)
    assert got[0] == {"ok": True}
    # 2 query heads, 1 key head and 1 value head of width 8 in one projection
    assert got[1]["error"] == "blocks.0.attn.qkv_proj.weight has shape [16,16], expected [32,16]"
    assert got[2]["error"] == "the weights have no ln_f.weight"
    assert "ln_f.weight: 2048 bytes for shape [16] of float32 (expected 64)" == got[3]["error"]


@needs_node
def test_js_and_to_decoder_read_weights_exported_before_the_fused_projections(tmp_path):
    """A page built before attnlib fused q_proj, k_proj and v_proj into qkv_proj holds the three: the
    JavaScript concatenates them (and checks their shapes), and to_decoder loads them."""
    config = CONFIGS["gqa-bias-untied"]
    model = _model(config, seed=2)
    e = W.ModelExplorer(model, TOK, PROMPT)
    old = {k: v for k, v in e.weights.items() if "qkv_proj" not in k}
    inner, kv_inner = config.n_heads * config.head_dim, config.kv_heads * config.head_dim
    for name, t in model.state_dict().items():
        if "qkv_proj" in name:
            for n, part in zip("qkv", t.split([inner, kv_inner, kv_inner]), strict=True):
                old[name.replace("qkv_proj", f"{n}_proj")] = W._encode_tensor(part, "float32")
    assert "blocks.0.attn.k_proj.bias" in old and "blocks.0.attn.qkv_proj.weight" not in old
    bad = {**old, "blocks.0.attn.v_proj.weight": old["blocks.0.attn.q_proj.weight"]}
    ids = _ids(PROMPTS[0])
    case = {"op": "forward", "config": e.config, "ids": ids, "ablated": [[0, 1]]}
    new_res, old_res = _node(e._esm, [{**case, "weights": e.weights}, {**case, "weights": old}], tmp_path)
    assert old_res == new_res
    logits, _ = _reference(model, ids, [[0, 1]])
    torch.testing.assert_close(_t(old_res["logits"]), logits.double(), atol=1e-5, rtol=1e-5)
    got = _node(e._esm, [{"op": "build", "config": e.config, "weights": bad}], tmp_path)[0]
    assert got["error"] == "blocks.0.attn.v_proj.weight has shape [32,24], expected [16,24]"
    e.weights = old
    rebuilt = e.to_decoder()
    for (k, a), (_, b) in zip(rebuilt.state_dict().items(), model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


# --------------------------------------------------------------------------- the state


def test_state_round_trips_the_weights_exactly():
    """Every parameter travels with its exact shape and its exact float32 values; a tied
    unembedding is stored once; to_decoder() rebuilds the same model."""
    for name, config in CONFIGS.items():
        model = _model(config, seed=2)
        e = W.ModelExplorer(model, TOK, PROMPT)
        state = model.state_dict()
        if config.tie_embeddings:
            assert "unembed.weight" not in e.weights
            state.pop("unembed.weight")
        assert set(e.weights) == set(state), name
        for key, t in state.items():
            stored = e.weights[key]
            assert stored["dtype"] == "float32" and stored["shape"] == list(t.shape), key
            assert torch.equal(W._decode_tensor(key, stored), t), key
        rebuilt = e.to_decoder()
        ids = torch.tensor([_ids(PROMPT)])
        with torch.no_grad():
            assert torch.equal(rebuilt(ids)[0], model(ids)[0]), name
        assert rebuilt.config == config
        c = e.config
        assert (c["n_layers"], c["n_heads"], c["n_kv_heads"], c["d_model"], c["d_head"], c["d_mlp"]) == (
            config.n_layers, config.n_heads, config.kv_heads, config.d_model, config.head_dim, config.mlp_dim)
        assert (c["context_len"], c["vocab_size"], c["ln_eps"], c["gelu"], c["tie_embeddings"], c["bias"]) == (
            32, len(TOK), 1e-5, "erf", config.tie_embeddings, config.bias)
        assert e.vocab == TOK.vocab and e.unk is None


def test_state_size_per_parameter():
    """float32 costs 4 bytes a parameter, base64 makes it 16/3; JSON adds little. float16 halves it."""
    model = _model(CONFIGS["chapter10"])
    n = sum(p.numel() for p in model.parameters())
    full = W.ModelExplorer(model, TOK, PROMPT)
    half = W.ModelExplorer(model, TOK, PROMPT, dtype="float16")
    assert 16 / 3 <= full.state_bytes(module=False) / n < 16 / 3 * 1.05
    assert 8 / 3 <= half.state_bytes(module=False) / n < 8 / 3 * 1.1
    module = len(W.ModelExplorer._esm) + len(W.ModelExplorer._css)
    assert module < full.state_bytes() - full.state_bytes(module=False) < 1.1 * module  # + JSON escapes
    assert all(t["dtype"] == "float16" for t in half.weights.values())


def test_compute_equals_attnlib_and_follows_the_traits():
    model = _model(CONFIGS["chapter10"])
    e = W.ModelExplorer(model, TOK, PROMPT, layer=1, head=2, temperature=0.5, top_k=5)
    ids = _ids(PROMPT)
    logits, pats = _reference(model, ids)
    r = e.compute()
    assert r["ids"] == ids and r["words"] == TOK.split(PROMPT) and r["unknown"] == []
    torch.testing.assert_close(r["logits"], logits)
    torch.testing.assert_close(r["patterns"], pats)
    probs = torch.softmax(logits[-1].double() / 0.5, -1)
    torch.testing.assert_close(r["probs"], probs)
    assert [w for w, _ in e.top] == [TOK.vocab[i] for i in probs.argsort(descending=True, stable=True)[:5]]
    e.ablated = [[1, 2], [0, 0]]
    assert e.heads_off() == {"blocks.1.attn": [2], "blocks.0.attn": [0]}
    logits_off, _ = _reference(model, ids, [[1, 2], [0, 0]])
    torch.testing.assert_close(e.compute()["logits"], logits_off)
    assert e.top[0][1] == pytest.approx(torch.softmax(logits_off[-1].double() / 0.5, -1).max().item())
    e.prompt = "a tiny grey owl with wings"  # typed in the page: flagged, and the rest is read
    assert e.unknown == ["with", "wings"] and e.words[-2:] == ["with", "wings"]
    assert e.compute()["ids"] == _ids("a tiny grey owl")
    e.prompt = "zebra"
    assert e.top == [] and e.compute()["logits"] is None


def test_compute_lens_follows_the_query_the_word_and_the_heads():
    """compute()'s lens and the ``lens`` trait: softmax of attnlib.lens.logit_lens at the query
    position (the last when query is -1), the followed word's probability per stage, heads off."""
    from attnlib.lens import logit_lens

    model = _model(CONFIGS["chapter10"], seed=6)
    e = W.ModelExplorer(model, TOK, PROMPT, lens_word="blue", lens_stage=3, top_k=3, temperature=0.5)
    ids = _ids(PROMPT)
    blue = TOK.stoi["blue"]

    def want(position, heads=None):
        with torch.no_grad(), ablate_heads(model, heads or {}):
            lensed = logit_lens(model, torch.tensor([ids]))
        return torch.stack([torch.softmax(v[0, position].double(), -1) for v in lensed.values()])

    r = e.compute()
    assert r["stages"] == ["embedding", "attention 0", "MLP 0", "attention 1", "MLP 1"]
    assert r["position"] == len(ids) - 1 and e.lens_stage == 3
    close = {"atol": 1e-6, "rtol": 1e-6}  # compute() records patterns: the explicit attention path
    torch.testing.assert_close(r["lens"], want(len(ids) - 1), **close)
    # the last stage is the next-token distribution at temperature 1 (the lens ignores temperature)
    torch.testing.assert_close(r["lens"][-1], torch.softmax(r["logits"][-1].double(), -1))
    assert [row[0] for row in e.lens] == r["stages"]
    for row, p in zip(e.lens, r["lens"], strict=True):
        assert row[1] == TOK.vocab[int(p.argmax())] and row[2] == pytest.approx(p.max().item())
        assert row[3] == pytest.approx(p[blue].item())
    e.query = 2  # the lens moves with the query position
    torch.testing.assert_close(e.compute()["lens"], want(2), **close)
    assert e.lens[0][3] == pytest.approx(want(2)[0, blue].item()) != pytest.approx(want(len(ids) - 1)[0, blue].item())
    e.ablated = [[0, 1]]
    assert e.compute()["lens"][0].tolist() == want(2)[0].tolist()  # the embedding: untouched
    torch.testing.assert_close(e.compute()["lens"], want(2, {"blocks.0.attn": [1]}), **close)
    assert e.lens[-1][3] == pytest.approx(want(2, {"blocks.0.attn": [1]})[-1, blue].item())
    e.lens_word = ""  # follow no word
    assert all(row[3] is None for row in e.lens)
    e.prompt = "zebra"
    assert e.lens == [] and e.compute()["lens"] is None


def test_defaults_and_presets():
    e = W.ModelExplorer(_model(CONFIGS["mqa-3-layers"]), TOK, PROMPT, presets=[PROMPTS[1], PROMPT])
    assert e.presets == [PROMPT, PROMPTS[1]]
    assert (e.query, e.layer, e.head, e.ablated, e.sample, e.n_new, e.temperature) == (-1, 0, 0, [], False, 6, 1.0)
    assert (e.lens_stage, e.lens_word) == (0, "") and len(e.lens) == 7  # 3 layers: 7 stages
    e2 = W.ModelExplorer(_model(CONFIGS["mqa-3-layers"]), TOK, PROMPT, ablated=[(2, 1), (0, 0), (2, 1)], query=3)
    assert e2.ablated == [[2, 1], [0, 0]] and e2.query == 3


def test_model_on_another_dtype_is_carried_as_float32():
    model = _model(CONFIGS["mqa-3-layers"]).double()
    e = W.ModelExplorer(model, TOK, PROMPT)
    assert e.weights["ln_f.weight"]["dtype"] == "float32"
    torch.testing.assert_close(W._decode_tensor("ln_f.weight", e.weights["ln_f.weight"]),
                               model.ln_f.weight.float())


# --------------------------------------------------------------------------- errors

_SMALL = _model(CONFIGS["mqa-3-layers"])


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"model": nn.Linear(3, 3)}, TypeError, "ModelExplorer: model must be an attnlib.Decoder, got a Linear"),
    ({"model": attnlib.Encoder(CONFIGS["mqa-3-layers"])}, TypeError,
     "ModelExplorer: model must be an attnlib.Decoder, got a Encoder"),
    ({"model": attnlib.Decoder(CONFIGS["mqa-3-layers"].replace(cross_attention=True))}, ValueError,
     "ModelExplorer: model must be a decoder-only attnlib.Decoder (config.cross_attention=False), got one "
     "with cross-attention, which reads an encoder's output; the explorer runs decoder-only models"),
    ({"model": attnlib.Decoder(attnlib.TINY.replace(vocab_size=45, d_model=256, n_layers=2))}, ValueError,
     "ModelExplorer: model must have at most max_params=1,000,000 parameters (the weights travel inside the "
     "page, about 5.3 bytes each at float32), got 1,593,856; train a smaller model, or raise max_params "
     "knowing the page grows"),
    ({"max_params": 1000}, ValueError, "ModelExplorer: model must have at most max_params=1,000 parameters"),
    ({"max_params": 0}, ValueError, "ModelExplorer: max_params must be a positive int, got 0"),
    ({"tokenizer": TOK.vocab}, TypeError, "ModelExplorer: tokenizer must be an attnlib.Tokenizer, got a list"),
    ({"tokenizer": attnlib.Tokenizer(["a", "b"])}, ValueError,
     "ModelExplorer: tokenizer must have the model's vocab_size=45 words, got one with 2"),
    ({"prompt": "the fluffy zebra is"}, ValueError,
     "ModelExplorer: prompt must use only the model's 45 words, got 'zebra' in 'the fluffy zebra is'"),
    ({"prompt": "a tiny grey owl with wings"}, ValueError,
     "ModelExplorer: prompt must use only the model's 45 words, got 'with', 'wings' in "
     "'a tiny grey owl with wings'"),
    ({"prompt": "   "}, ValueError, "ModelExplorer: prompt must contain at least one word, got '   '"),
    ({"prompt": 3}, TypeError, "ModelExplorer: prompt must be a str, got 3"),
    ({"presets": "the cat"}, TypeError, "ModelExplorer: presets must be a list of prompts (str), got 'the cat'"),
    ({"presets": ["the cat", "the unicorn"]}, ValueError,
     "ModelExplorer: presets[1] must use only the model's 45 words, got 'unicorn' in 'the unicorn'"),
    ({"temperature": 0}, ValueError, "ModelExplorer: temperature must be a finite number > 0.0, got 0"),
    ({"temperature": float("nan")}, ValueError, "ModelExplorer: temperature must be a finite number > 0.0"),
    ({"top_k": 0}, ValueError, "ModelExplorer: top_k must be a positive int, got 0"),
    ({"layer": 3}, ValueError, "ModelExplorer: layer must lie in [0, 3) (a layer of the model), got 3"),
    ({"head": 2}, ValueError, "ModelExplorer: head must lie in [0, 2) (a head of the layer), got 2"),
    ({"head": 1.0}, TypeError, "ModelExplorer: head must be an int, got 1.0"),
    ({"query": 8}, ValueError, "ModelExplorer: query must lie in [0, 8) (a position of the prompt), got 8"),
    ({"ablated": {"blocks.0.attn": [0]}}, TypeError,
     "ModelExplorer: ablated must be a list of (layer, head) pairs, got a dict"),
    ({"ablated": [0, 1]}, TypeError,
     "ModelExplorer: every entry of ablated must be a (layer, head) pair of ints, got 0"),
    ({"ablated": [(0, 2)]}, ValueError,
     "ModelExplorer: ablated head (0, 2) does not exist; layers are 0 .. 2 and heads 0 .. 1"),
    ({"n_new": -1}, ValueError, "ModelExplorer: n_new must be a non-negative int, got -1"),
    ({"seed": -1}, ValueError, "ModelExplorer: seed must be a non-negative int, got -1"),
    ({"lens_stage": 7}, ValueError, "ModelExplorer: lens_stage must lie in [0, 7) (a stage of the residual "
     "stream: 0 is the embedding), got 7"),
    ({"lens_stage": -1}, ValueError, "ModelExplorer: lens_stage must lie in [0, 7)"),
    ({"lens_word": "zebra"}, ValueError, "ModelExplorer: lens_word must be one of the model's 45 words, got 'zebra'"),
    ({"lens_word": 3}, TypeError,
     "ModelExplorer: lens_word must be a word of the vocabulary (str) or None, got 3"),
    ({"dtype": "bfloat16"}, ValueError, "ModelExplorer: dtype must be 'float32' or 'float16', got 'bfloat16'"),
])
def test_errors_name_the_function_the_argument_and_what_was_expected(kwargs, exc, message):
    args = {"model": _SMALL, "tokenizer": TOK, "prompt": PROMPT, **kwargs}
    with pytest.raises(exc) as info:
        W.ModelExplorer(args.pop("model"), args.pop("tokenizer"), args.pop("prompt"), **args)
    assert str(info.value).startswith(message), str(info.value)


def test_error_for_non_finite_weights_and_mixed_layer_norms():
    model = _model(CONFIGS["mqa-3-layers"])
    with torch.no_grad():
        model.blocks[1].mlp.up.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"^ModelExplorer: model's blocks\.1\.mlp\.up\.weight must be finite, "
                                         "got nan or inf$"):
        W.ModelExplorer(model, TOK, PROMPT)
    model = _model(CONFIGS["mqa-3-layers"])
    model.ln_f.eps = 1e-6
    with pytest.raises(ValueError, match=r"^ModelExplorer: model must use one LayerNorm eps and one GELU "
                                         r"throughout, got eps \[1e-06, 1e-05\] and GELU \['none'\]$"):
        W.ModelExplorer(model, TOK, PROMPT)


def test_bad_trait_values_after_construction():
    e = W.ModelExplorer(_SMALL, TOK, PROMPT)
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        e.temperature = -1.0
    with pytest.raises(ValueError, match="^ModelExplorer: lens_word must be one of the model's 45 words, got 'zebra'$"):
        e.lens_word = "zebra"
    assert e.lens_word == ""


@needs_node
def test_module_is_self_contained_and_exports_render(tmp_path):
    """The page loads one module with no imports (nothing to fetch) that exports default {render}
    and the forward pass; the static files it is joined from are the package's own."""
    import re

    esm = W.ModelExplorer._esm
    assert not re.search(r"^\s*import[\s{*]|\bimport\(", esm, re.M)
    for part in ("math.js", "decoder.js", "ui.js", "model_explorer.js"):
        assert W._read_static(part) in esm
    assert W._read_static("model_explorer.css") in W.ModelExplorer._css
    path = tmp_path / "w.mjs"
    path.write_text(esm)
    check = tmp_path / "check.mjs"
    check.write_text(f"const m = await import({json.dumps(path.as_uri())});\n"
                     "if (typeof m.default?.render !== 'function' || typeof m.forward !== 'function') "
                     "process.exit(1);\n")
    assert subprocess.run([NODE, str(check)], capture_output=True, timeout=60).returncode == 0

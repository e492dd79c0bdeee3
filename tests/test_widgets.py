"""Tests of attnlib.widgets.

* The JavaScript math (attnlib/static/math.js, the code that runs in the browser) is evaluated with
  node on random cases and compared with attnlib.attention / attnlib.softmax / attnlib.causal_mask.
* The Python side: constructors validate their inputs (ValueError naming the argument), traits
  round-trip, ``compute()`` equals attnlib, and each widget's ES module is well formed.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import attnlib
from attnlib import example
from attnlib import widgets as W

ROOT = Path(__file__).resolve().parents[1]
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: the widget JavaScript math is not tested")

TEMPERATURES = [0.01, 0.1, 1.0, 3.0, 100.0]


def _run_node(cases: list, tmp_path: Path) -> list:
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    proc = subprocess.run([NODE, str(ROOT / "tests" / "js" / "eval_math.mjs"), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _t(a) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64)


def _reference_weights(q, k, causal, temperature, scale=None):
    """Float64 reference built from attnlib's pieces: scores, causal_mask, softmax (dead rows -> 0)."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ k.T) * scale / temperature
    if causal:
        m = attnlib.causal_mask(q.shape[0], k.shape[0])
        s = s.masked_fill(~m, float("-inf"))
    dead = torch.isinf(s).all(dim=-1, keepdim=True)
    w = attnlib.softmax(s.masked_fill(dead, 0.0), dim=-1)
    return w.masked_fill(dead, 0.0)


# --------------------------------------------------------------------------- JS math vs attnlib


@needs_node
def test_js_softmax_matches_attnlib(tmp_path):
    g = torch.Generator().manual_seed(0)
    cases, refs = [], []
    for n in (1, 2, 5, 9):
        for temp in TEMPERATURES:
            row = torch.randn(n, generator=g, dtype=torch.float64) * 3
            cases.append({"op": "softmax", "row": row.tolist(), "temperature": temp})
            refs.append(attnlib.softmax(row / temp))
    # masked entries (-inf, sent as null) get exactly zero weight
    cases.append({"op": "softmax", "row": [1.0, None, 2.0, None], "temperature": 0.5})
    refs.append(attnlib.softmax(_t([1.0, float("-inf"), 2.0, float("-inf")]) / 0.5))
    # huge scores do not overflow (stable softmax)
    cases.append({"op": "softmax", "row": [1000.0, 999.0, -1000.0], "temperature": 0.01})
    refs.append(attnlib.softmax(_t([1000.0, 999.0, -1000.0]) / 0.01))
    got = _run_node(cases, tmp_path)
    for c, g_, r in zip(cases, got, refs, strict=True):
        g_ = _t(g_)
        assert torch.isfinite(g_).all(), c
        torch.testing.assert_close(g_, r, atol=1e-6, rtol=1e-6, msg=lambda m, c=c: f"{c}: {m}")
        assert abs(g_.sum().item() - 1.0) < 1e-9


@needs_node
def test_js_all_masked_row_gives_zeros(tmp_path):
    (got,) = _run_node([{"op": "softmax", "row": [None, None], "temperature": 1.0}], tmp_path)
    assert got == [0, 0]


@needs_node
def test_js_causal_mask_matches_attnlib(tmp_path):
    shapes = [(1, 1), (3, 3), (2, 5), (5, 2), (1, 6), (4, 4)]
    got = _run_node([{"op": "causal_mask", "T_q": a, "T_k": b} for a, b in shapes], tmp_path)
    for (a, b), m in zip(shapes, got, strict=True):
        assert torch.equal(torch.tensor(m, dtype=torch.bool), attnlib.causal_mask(a, b)), (a, b)


@needs_node
def test_js_attention_matches_attnlib(tmp_path):
    """Random q, k, v with T_q == T_k and T_q != T_k (cross-attention, KV-cache shapes), causal on and
    off, temperatures from 0.01 to 100: weights and outputs match attnlib to 1e-6, with no NaN."""
    g = torch.Generator().manual_seed(1)
    cases = []
    for T_q, T_k in [(4, 4), (1, 5), (3, 6), (6, 3), (7, 7)]:
        for causal in (False, True):
            for temp in TEMPERATURES:
                d = int(torch.randint(1, 6, (1,), generator=g))
                q = torch.randn(T_q, d, generator=g, dtype=torch.float64)
                k = torch.randn(T_k, d, generator=g, dtype=torch.float64)
                v = torch.randn(T_k, 3, generator=g, dtype=torch.float64)
                cases.append({"op": "attention", "q": q.tolist(), "k": k.tolist(), "v": v.tolist(),
                              "causal": causal, "temperature": temp})
    cases.append({"op": "attention", "q": [[1.0, 2.0]], "k": [[0.5, 1.0], [2.0, -1.0]], "v": [[1.0], [2.0]],
                  "causal": False, "temperature": 1.0, "scale": 0.3})
    got = _run_node(cases, tmp_path)
    for c, r in zip(cases, got, strict=True):
        q, k, v = _t(c["q"]), _t(c["k"]), _t(c["v"])
        scale = c.get("scale", 1.0 / math.sqrt(q.shape[-1]))
        w_js, out_js = _t(r["weights"]), _t(r["out"])
        assert torch.isfinite(w_js).all() and torch.isfinite(out_js).all(), c
        # exact float64 reference from attnlib.softmax / causal_mask
        ref = _reference_weights(q, k, c["causal"], c["temperature"], scale)
        torch.testing.assert_close(w_js, ref, atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(out_js, ref @ v, atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(_t(r["scores"]), (q @ k.T) * scale, atol=1e-12, rtol=1e-12)
        # attnlib.attention itself (its explicit path computes the softmax in float32, hence the
        # tolerance grows as the temperature shrinks and amplifies float32 rounding of the scores)
        out, w = attnlib.attention(q, k, v, is_causal=c["causal"], scale=scale / c["temperature"],
                                   return_weights=True)
        tol = 1e-6 * max(1.0, 1.0 / c["temperature"])
        torch.testing.assert_close(w_js, w, atol=tol, rtol=tol)
        torch.testing.assert_close(out_js, out, atol=10 * tol, rtol=10 * tol)


@needs_node
def test_js_explorer_state_matches_compute(tmp_path):
    g = torch.Generator().manual_seed(2)
    cases, widgets = [], []
    for T, d_model, d_head in [(4, 6, 3), (1, 2, 1), (6, 4, 4)]:
        for causal in (False, True):
            for temp in (0.01, 1.0, 100.0):
                x = torch.randn(T, d_model, generator=g)
                wq, wk = torch.randn(d_model, d_head, generator=g), torch.randn(d_model, d_head, generator=g)
                e = W.AttentionExplorer([f"t{i}" for i in range(T)], x, wq, wk, temperature=temp, causal=causal)
                widgets.append(e)
                cases.append({"op": "explorer", "x": e.x, "w_q": e.w_q, "w_k": e.w_k, "causal": causal,
                              "temperature": temp})
    got = _run_node(cases, tmp_path)
    for e, r in zip(widgets, got, strict=True):
        ref = e.compute()
        tol = 1e-6 * max(1.0, 1.0 / e.temperature)
        torch.testing.assert_close(_t(r["weights"]), ref["weights"], atol=tol, rtol=tol)
        torch.testing.assert_close(_t(r["scores"]), ref["scores"], atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(_t(r["q"]), ref["q"], atol=1e-12, rtol=1e-12)
        x = _t(e.x)
        exact = _reference_weights(x @ _t(e.w_q), x @ _t(e.w_k), e.causal, e.temperature)
        torch.testing.assert_close(_t(r["weights"]), exact, atol=1e-9, rtol=1e-9)


@needs_node
def test_js_format_helpers(tmp_path):
    got = _run_node([{"op": "format", "bytes": 805306368, "int": 4194304},
                     {"op": "format", "bytes": 512, "int": 0}], tmp_path)
    assert got == [{"bytes": "768.0 MiB", "int": "4,194,304"}, {"bytes": "512 B", "int": "0"}]


@needs_node
def test_js_nice_limit_matches_viz(tmp_path):
    from attnlib.viz import nice_limit

    xs = [0.0, 0.004, 0.37, 1.0, 1.0000001192092896, 1.36, 4.53, 9.99, 12.92, 163.0, -7.31]
    (got,) = _run_node([{"op": "nice_limit", "xs": xs}], tmp_path)
    assert got == [nice_limit(x) for x in xs]


@needs_node
def test_js_explorer_grid_switch_matches_compute(tmp_path):
    """The raw / scaled / softmax switch: the grid the browser shows equals compute()'s "raw",
    "scores" and "weights" (widget.shown()), and its colour range is 0..1 for weights and symmetric
    around 0, rounded up from the largest visible |score|, for scores."""
    from attnlib.viz import nice_limit

    g = torch.Generator().manual_seed(5)
    cases, widgets = [], []
    for T, d_model, d_head in [(4, 6, 3), (1, 2, 1), (7, 5, 4)]:
        for causal in (False, True):
            for show in ("raw", "scaled", "weights"):
                temp = float(torch.empty(1).uniform_(0.2, 3.0, generator=g))
                x = torch.randn(T, d_model, generator=g) * 2
                wq, wk = torch.randn(d_model, d_head, generator=g), torch.randn(d_model, d_head, generator=g)
                e = W.AttentionExplorer([f"t{i}" for i in range(T)], x, wq, wk, temperature=temp,
                                        causal=causal, show=show)
                widgets.append(e)
                cases.append({"op": "explorer_grid", "x": e.x, "w_q": e.w_q, "w_k": e.w_k, "show": show,
                              "causal": causal, "temperature": temp})
    got = _run_node(cases, tmp_path)
    for e, r in zip(widgets, got, strict=True):
        ref = e.shown()
        torch.testing.assert_close(_t(r["values"]), ref, atol=1e-9, rtol=1e-9)
        key = {"raw": "raw", "scaled": "scores", "weights": "weights"}[e.show]
        torch.testing.assert_close(ref, e.compute()[key])
        if e.show == "weights":
            assert (r["vmin"], r["vmax"]) == (0, 1)
            if e.causal:
                assert torch.all(_t(r["values"]).triu(1) == 0)
        else:
            visible = attnlib.causal_mask(len(e.tokens)) if e.causal else torch.ones_like(ref, dtype=torch.bool)
            hi = nice_limit(float(ref[visible].abs().max()))
            assert (r["vmin"], r["vmax"]) == (-hi, hi)
    scaled = [e for e in widgets if e.show == "scaled"][0]
    d_head = len(scaled.w_q[0])
    torch.testing.assert_close(scaled.compute()["raw"] / math.sqrt(d_head), scaled.shown())


@needs_node
def test_js_query_row_matches_query_key_arrows(tmp_path):
    """Random keys, angles, lengths, d_head and causal positions: the query, dot products, scaled
    scores and softmax row the browser computes equal QueryKeyArrows.compute() (attnlib)."""
    g = torch.Generator().manual_seed(6)
    cases, refs = [], []
    for _ in range(30):
        T = int(torch.randint(1, 9, (1,), generator=g))
        keys = torch.randn(T, 2, generator=g, dtype=torch.float64) * 3
        a = W.QueryKeyArrows([f"k{j}" for j in range(T)], keys, torch.randn(2, generator=g) + 0.1,
                             d_head=int(torch.randint(1, 9, (1,), generator=g)),
                             query_index=int(torch.randint(0, T, (1,), generator=g)))
        a.causal = bool(torch.rand(1, generator=g) < 0.5)
        a.angle = float(torch.empty(1).uniform_(-180, 180, generator=g))
        a.length = float(torch.empty(1).uniform_(0, a.max_length, generator=g))
        cases.append({"op": "query_row", "keys": a.key_vectors, "angle": a.angle, "length": a.length,
                      "d_head": a.d_head, "causal": a.causal, "query_index": a.query_index})
        refs.append(a)
    got = _run_node(cases, tmp_path)
    for a, r in zip(refs, got, strict=True):
        ref = a.compute()
        for name in ("query", "dots", "scores", "weights"):
            torch.testing.assert_close(_t(r[name]), ref[name], atol=1e-12, rtol=1e-9)
            assert getattr(a, name) == ref[name].tolist()  # the synced results follow the inputs
        k, q = _t(a.key_vectors), ref["query"]
        torch.testing.assert_close(ref["dots"], torch.einsum("jd,d->j", k, q))
        assert r["visible"] == [not a.causal or j <= a.query_index for j in range(len(a.tokens))]
        if a.causal:
            assert all(w == 0 for w in r["weights"][a.query_index + 1:])
        _, w = attnlib.attention(q[None], k, k, mask=torch.tensor(r["visible"])[None],
                                 scale=1 / math.sqrt(a.d_head), return_weights=True)
        torch.testing.assert_close(_t(r["weights"]), w[0], atol=1e-6, rtol=1e-6)


@needs_node
def test_js_causal_value_update_matches_attnlib(tmp_path):
    """Chapter 5's widget under the causal mask: renormalising any query's unmasked softmax row
    over itself and the earlier keys gives attnlib.attention's causal row, and the update is that
    row times the values (attnlib's output); without the mask the row is used as it is."""
    g = torch.Generator().manual_seed(7)
    cases, refs = [], []
    for T in (1, 3, 6):
        q = torch.randn(T, 2, generator=g, dtype=torch.float64)
        k = torch.randn(T, 2, generator=g, dtype=torch.float64)
        v = torch.randn(T, 2, generator=g, dtype=torch.float64)
        pts = torch.randn(T, 2, generator=g, dtype=torch.float64)
        free = attnlib.softmax(q @ k.T / math.sqrt(2), dim=-1)  # (T_q, T_k), no mask
        out, w = attnlib.attention(q, k, v, is_causal=True, return_weights=True)
        for i in range(T):
            for causal in (True, False):
                cases.append({"op": "causal_value_update", "points": pts.tolist(), "values": v.tolist(),
                              "query": i, "raw": free[i].tolist(), "causal": causal})
                cases.append({"op": "value_weights", "raw": free[i].tolist(), "query": i, "causal": causal})
                e = W.ValueUpdateExplorer([f"t{j}" for j in range(T)], pts, v, query=i, weights=free[i])
                e.causal = causal
                refs.append((w[i] if causal else free[i], out[i] if causal else free[i] @ v, pts[i], e))
    got = _run_node(cases, tmp_path)
    for (row, delta, p, e), upd, wts in zip(refs, got[::2], got[1::2], strict=True):
        torch.testing.assert_close(_t(wts), row, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(_t(upd["delta"]), delta, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(_t(upd["updated"]), p + delta, atol=1e-6, rtol=1e-6)
        r = e.compute()  # the Python side masks the same way
        torch.testing.assert_close(r["weights"], _t(wts), atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(_t(e.updated), _t(upd["updated"]), atol=1e-12, rtol=1e-12)
    # all the weight on later keys and the mask on: nothing left, no change (and no NaN)
    (w0,) = _run_node([{"op": "value_weights", "raw": [0.0, 1.0, 2.0], "query": 0, "causal": True}], tmp_path)
    assert w0 == [0, 0, 0]


@needs_node
def test_js_labels_do_not_overlap(tmp_path):
    """placeLabels puts labels of crowded points where no two boxes overlap and all stay inside the
    picture; crowds groups the points closer than the radius (one label for a crowd)."""
    g = torch.Generator().manual_seed(8)
    cases = []
    for n in (2, 5, 9):
        pts = torch.rand(n, 2, generator=g) * 60 + 170  # n points within 60 px of one another
        items = [{"x": float(x), "y": float(y), "text": "word" * (1 + i % 3)} for i, (x, y) in enumerate(pts)]
        cases.append({"op": "place_labels", "items": items, "opts": {"width": 400, "height": 400}})
    cases.append({"op": "crowds", "points": [[0, 0], [5, 5], [100, 100], [9, 12], [300, 0]], "radius": 12})
    *placed, groups = _run_node(cases, tmp_path)
    for spots in placed:
        boxes = [s["box"] for s in spots]
        for i, a in enumerate(boxes):
            assert 0 <= a["x0"] < a["x1"] <= 400 and 0 <= a["y0"] < a["y1"] <= 400
            for b in boxes[i + 1:]:
                apart = a["x1"] <= b["x0"] or b["x1"] <= a["x0"] or a["y1"] <= b["y0"] or b["y1"] <= a["y0"]
                assert apart, (a, b)
    assert groups == [[0, 1, 3], [2], [4]]


# --------------------------------------------------------------------------- Python side


TOKENS = ["a", "fluffy", "blue", "creature"]
ALL_WIDGETS = [W.AttentionExplorer, W.QueryKeyArrows, W.SoftmaxExplorer, W.PatternViewer, W.ValueUpdateExplorer,
               W.CostExplorer, W.OnlineSoftmaxStepper, W.TileExplorer]


def _explorer(**kw):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, generator=g)
    return W.AttentionExplorer(TOKENS, x, torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g), **kw)


def test_attention_explorer_compute_equals_attnlib():
    e = _explorer(temperature=0.5, causal=True, query=2)
    x, wq, wk = _t(e.x), _t(e.w_q), _t(e.w_k)
    q, k = x @ wq, x @ wk
    _, w = attnlib.attention(q, k, k, is_causal=True, scale=1 / math.sqrt(3) / 0.5, return_weights=True)
    r = e.compute()
    torch.testing.assert_close(r["weights"], w)
    torch.testing.assert_close(_t(e.weights), w)
    torch.testing.assert_close(r["scores"], q @ k.T / math.sqrt(3))
    assert torch.all(r["weights"].triu(1) == 0)


def test_attention_explorer_traits_round_trip_and_refresh():
    e = _explorer()
    assert e.tokens == TOKENS and len(e.x) == 4 and len(e.w_q) == 6 and len(e.w_q[0]) == 3
    before = e.weights
    e.temperature = 0.05
    assert e.temperature == 0.05 and e.weights != before
    e.causal = True
    assert e.weights[0][1:] == [0.0, 0.0, 0.0]
    e.query = 3
    assert e.query == 3
    w_q = [row[:] for row in e.w_q]
    w_q[0][0] += 1.0
    e.w_q = w_q
    assert e.w_q[0][0] == w_q[0][0]
    torch.testing.assert_close(_t(e.weights), e.compute()["weights"])
    state = e.get_state()
    for name in ("tokens", "x", "w_q", "w_k", "temperature", "causal", "query", "weights", "scores",
                 "edit_matrix", "edit_row", "edit_col"):
        assert name in state, name
    # a state update as the browser sends it (JSON numbers: ints for whole floats)
    e.set_state({"temperature": 2, "weights": [[0.25] * 4] * 4})
    assert e.temperature == 2.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"tokens": ["a", "b"]}, "tokens"),
        ({"x": torch.randn(4)}, "x"),
        ({"x": [[1.0, 2.0], [3.0]]}, "x"),
        ({"x": "not numbers"}, "x"),
        ({"tokens": "abcd"}, "tokens"),
        ({"x": torch.full((4, 6), float("nan"))}, "x"),
        ({"w_q": torch.randn(5, 3)}, "w_q"),
        ({"w_k": torch.randn(6, 2)}, "w_k"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"query": 4}, "query"),
        ({"query": -1}, "query"),
        ({"dim_labels": ["a", "b"]}, "dim_labels"),
    ],
)
def test_attention_explorer_rejects_bad_inputs(kwargs, name):
    args = {"tokens": TOKENS, "x": torch.randn(4, 6), "w_q": torch.randn(6, 3), "w_k": torch.randn(6, 3)}
    args.update(kwargs)
    extra = {k: args.pop(k) for k in ("temperature", "query", "dim_labels") if k in args}
    with pytest.raises(ValueError, match=rf"^AttentionExplorer: .*{name}"):
        W.AttentionExplorer(args["tokens"], args["x"], args["w_q"], args["w_k"], **extra)


@pytest.mark.parametrize("make, who", [
    (lambda **kw: W.CostExplorer(**kw), "CostExplorer"),
    (lambda **kw: W.TileExplorer(**kw), "TileExplorer"),
    (lambda **kw: W.SoftmaxExplorer(["a", "b"], [1.0, 2.0], **kw), "SoftmaxExplorer"),
    (lambda **kw: W.AttentionExplorer(TOKENS, torch.randn(4, 6), torch.randn(6, 3), torch.randn(6, 3), **kw),
     "AttentionExplorer"),
])
def test_explorers_refuse_unknown_keywords_by_name(make, who):
    """traitlets would only warn about a keyword that is not a trait (a typo would vanish): refused,
    under the explorer's name; a real trait such as layout is still taken."""
    with pytest.raises(TypeError, match=rf"^{who}: got an unexpected keyword argument 'temprature'$"):
        make(temprature=2.0)
    assert make(layout={"width": "300px"}).layout.width == "300px"


@pytest.mark.parametrize("make, message", [
    (lambda: W.CostExplorer(n_heads=0), r"^CostExplorer: n_heads must be a positive int, got 0$"),
    (lambda: W.CostExplorer(context_lens=[4, 2]), r"^CostExplorer: context_lens must be a non-empty increasing"),
    (lambda: W.SoftmaxExplorer(["a"], [1.0], temperature=0), r"^SoftmaxExplorer: temperature must be"),
    (lambda: W.SoftmaxExplorer(["a", "b"], [1.0]), r"^SoftmaxExplorer: labels has 2 labels but 1 are needed"),
    (lambda: W.TileExplorer(T=-1), r"^TileExplorer: T must be a positive int, got -1$"),
])
def test_explorer_errors_name_the_explorer_once(make, message):
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert str(info.value).count("Explorer:") == 1


def test_attention_explorer_rejects_bad_trait_values():
    e = _explorer()
    with pytest.raises(ValueError, match="temperature"):
        e.temperature = -1.0
    with pytest.raises(ValueError, match="query"):
        e.query = 10
    with pytest.raises(ValueError, match="edit_matrix"):
        e.edit_matrix = "w_v"


def test_softmax_explorer():
    s = W.SoftmaxExplorer(["the", "cat", "sat"], torch.tensor([2.0, 1.0, -1.0]), temperature=0.5)
    torch.testing.assert_close(_t(s.weights), attnlib.softmax(_t([2.0, 1.0, -1.0]) / 0.5))
    torch.testing.assert_close(s.compute(), _t(s.weights))
    s.temperature = 100.0
    assert max(s.weights) - min(s.weights) < 0.05
    s.temperature = 0.01
    assert s.weights[0] > 0.999 and all(math.isfinite(w) for w in s.weights)
    with pytest.raises(ValueError, match="labels"):
        W.SoftmaxExplorer(["a"], [1.0, 2.0])
    with pytest.raises(ValueError, match="scores"):
        W.SoftmaxExplorer(["a", "b"], [[1.0, 2.0]])
    with pytest.raises(ValueError, match="scores"):
        W.SoftmaxExplorer(["a", "b"], [1.0, float("inf")])
    with pytest.raises(ValueError, match="temperature"):
        W.SoftmaxExplorer(["a", "b"], [1.0, 2.0], temperature=-2)


# --------------------------------------------------------------------------- the ES modules


@pytest.mark.parametrize("cls", ALL_WIDGETS)
def test_esm_is_self_contained(cls):
    esm = cls._esm
    assert esm.count("export default") == 1
    assert not re.search(r"^\s*import[\s{*]|\bimport\(", esm, re.M), "widget modules must not import anything"
    assert "fetch(" not in esm and "http://" not in esm.replace("http://www.w3.org/2000/svg", "")
    assert "attnlib-widget" in esm
    assert ".attnlib-widget" in cls._css


def test_pattern_viewer():
    g = torch.Generator().manual_seed(4)
    pats = {f"head {h}": torch.softmax(torch.randn(2, 5, generator=g), -1) for h in range(3)}
    pv = W.PatternViewer(pats, ["x", "y"], ["a", "b", "c", "d", "e"], selected="head 1")
    assert pv.names == ["head 0", "head 1", "head 2"] and pv.selected == "head 1"
    torch.testing.assert_close(pv.compute(), pats["head 1"].double())
    pv.selected = "head 2"
    torch.testing.assert_close(pv.compute(), pats["head 2"].double())
    stack = torch.stack(list(pats.values()))
    pv2 = W.PatternViewer(stack, ["x", "y"], list("abcde"))
    assert pv2.names == ["head 0", "head 1", "head 2"]
    assert (pv.vmin, pv.vmax) == (0.0, 1.0)
    sim = W.PatternViewer({"cosine": [[1.0, -0.5], [-0.5, 1.0]]}, ["x", "y"], title="Similarity",
                          row_name="token", col_name="token")
    assert (sim.vmin, sim.vmax) == (-1.0, 1.0) and sim.title == "Similarity"
    # a float32 cosine of 1.0000001192092896 must not put that number on the legend
    cos = W.PatternViewer({"c": torch.tensor([[1.0000001192092896, 0.3], [0.3, 1.0]])}, ["x", "y"])
    assert (cos.vmin, cos.vmax) == (0.0, 1.0)
    big = W.PatternViewer({"s": [[4.53, -1.36]]}, ["x"], ["a", "b"])
    assert (big.vmin, big.vmax) == (-4.6, 4.6)
    with pytest.raises(ValueError, match="vmin"):
        W.PatternViewer(pats, ["x", "y"], list("abcde"), vmin=1.0, vmax=0.0)
    with pytest.raises(ValueError, match="selected"):
        pv.selected = "head 9"
    with pytest.raises(ValueError, match="q_tokens"):
        W.PatternViewer(pats, ["x"], list("abcde"))
    with pytest.raises(ValueError, match="k_tokens"):
        W.PatternViewer(pats, ["x", "y"], list("abc"))
    with pytest.raises(ValueError, match="k_tokens"):
        W.PatternViewer(pats, ["x", "y"])  # T_k != T_q needs key labels
    with pytest.raises(ValueError, match="patterns"):
        W.PatternViewer({"a": torch.ones(2, 5), "b": torch.ones(2, 4)}, ["x", "y"], list("abcde"))
    with pytest.raises(ValueError, match="patterns"):
        W.PatternViewer({}, ["x"])
    with pytest.raises(ValueError, match="patterns"):
        W.PatternViewer(torch.ones(2, 2), ["x", "y"])


@needs_node
def test_value_update_explorer(tmp_path):
    toks = ["a", "fluffy", "blue", "creature"]
    pts = torch.tensor([[0.0, 0.0], [1.0, 2.0], [2.0, 1.5], [2.5, -0.5]])
    vals = torch.tensor([[0.1, 0.0], [0.0, 0.8], [-0.6, 0.2], [0.2, 0.1]])
    raw = [0.5, 2.0, 1.0, 0.5]
    e = W.ValueUpdateExplorer(toks, pts, vals, query=3, weights=raw)
    w = torch.tensor(raw, dtype=torch.float64) / sum(raw)
    torch.testing.assert_close(_t(e.weights), w)
    delta = w @ vals.double()
    torch.testing.assert_close(_t(e.delta), delta)
    torch.testing.assert_close(_t(e.updated), pts[3].double() + delta)
    r = e.compute()
    torch.testing.assert_close(r["updated"], _t(e.updated))
    # the browser math (math.js valueUpdate) gives the same numbers
    (got,) = _run_node([{"op": "value_update", "points": e.points, "values": e.values, "query": 3, "raw": raw}],
                       tmp_path)
    torch.testing.assert_close(_t(got["delta"]), delta, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(_t(got["updated"]), _t(e.updated), atol=1e-12, rtol=1e-12)
    e.weights = [0.0, 0.0, 1.0, 0.0]
    torch.testing.assert_close(_t(e.delta), vals[2].double())
    e.query = 0
    torch.testing.assert_close(_t(e.updated), vals[2].double())
    u = W.ValueUpdateExplorer(toks, pts, vals)
    assert u.weights == [0.25] * 4
    with pytest.raises(ValueError, match="points"):
        W.ValueUpdateExplorer(toks, torch.zeros(4, 3), vals)
    with pytest.raises(ValueError, match="values"):
        W.ValueUpdateExplorer(toks, pts, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="tokens"):
        W.ValueUpdateExplorer(toks[:3], pts, vals)
    with pytest.raises(ValueError, match="weights"):
        W.ValueUpdateExplorer(toks, pts, vals, weights=[1.0, -1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="weights"):
        W.ValueUpdateExplorer(toks, pts, vals, weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="query"):
        W.ValueUpdateExplorer(toks, pts, vals, query=7)


def _arrows(**kw):
    keys = [[3.1, 1.5], [2.9, 2.0], [0.0, 3.0], [2.8, 0.6]]
    return W.QueryKeyArrows(TOKENS, keys, [3.0, 2.0], **kw)


def test_query_key_arrows_compute_and_reset():
    a = _arrows(d_head=4, query_index=3, query_label="query of creature", axis_labels=("adjective", "position"))
    assert a.angle == pytest.approx(math.degrees(math.atan2(2.0, 3.0)))
    assert a.length == pytest.approx(math.hypot(3.0, 2.0)) and a.max_length >= a.length
    torch.testing.assert_close(_t(a.query), _t([3.0, 2.0]))
    dots = _t(a.key_vectors) @ _t([3.0, 2.0])
    torch.testing.assert_close(_t(a.dots), dots)
    torch.testing.assert_close(_t(a.scores), dots / 2)  # 1 / sqrt(d_head = 4)
    torch.testing.assert_close(_t(a.weights), attnlib.softmax(dots / 2, dim=-1))
    assert max(range(4), key=lambda j: a.weights[j]) == 1  # the key most aligned with the query
    a.angle = 90.0  # straight up: the upright key wins
    assert max(range(4), key=lambda j: a.weights[j]) == 2
    a.length = 0.0  # no query: equal weights
    assert a.weights == pytest.approx([0.25] * 4)
    a.angle = 270.0
    assert a.angle == -90.0  # angles are kept in (-180, 180]
    a.causal = True
    a.reset()
    assert (a.angle, a.length, a.causal) == (a.initial["angle"], a.initial["length"], False)
    torch.testing.assert_close(_t(a.query), _t([3.0, 2.0]))
    c = _arrows(causal=True, query_index=1)
    assert c.weights[2:] == [0.0, 0.0] and sum(c.weights) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="length"):
        a.length = a.max_length * 2
    with pytest.raises(ValueError, match="query_index"):
        _arrows().causal = True


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"tokens": ["a", "b"]}, ValueError, "tokens"),
        ({"keys": torch.randn(4, 3)}, ValueError, "keys"),
        ({"keys": [[1.0, float("nan")]] * 4}, ValueError, "keys"),
        ({"query": [1.0, 2.0, 3.0]}, ValueError, "query"),
        ({"query": [0.0, 0.0]}, ValueError, "query must not be zero"),
        ({"d_head": 0}, ValueError, "d_head"),
        ({"d_head": 2.0}, TypeError, "d_head"),
        ({"causal": 1}, TypeError, "causal"),
        ({"causal": True}, ValueError, "query_index"),
        ({"query_index": 4}, ValueError, "query_index"),
        ({"query_index": "3"}, TypeError, "query_index"),
        ({"query_label": 3}, TypeError, "query_label"),
        ({"axis_labels": "xy"}, TypeError, "axis_labels"),
        ({"axis_labels": ("x", "y", "z")}, ValueError, "axis_labels"),
        ({"max_length": 1.0}, ValueError, "max_length"),
        ({"max_length": -1.0}, ValueError, "max_length"),
        ({"title": None}, TypeError, "title"),
    ],
)
def test_query_key_arrows_rejects_bad_inputs(kwargs, error, name):
    args = {"tokens": TOKENS, "keys": torch.randn(4, 2), "query": [3.0, 2.0]}
    args.update(kwargs)
    tokens, keys, query = args.pop("tokens"), args.pop("keys"), args.pop("query")
    with pytest.raises(error, match=name):
        W.QueryKeyArrows(tokens, keys, query, **args)


def test_attention_explorer_show_and_reset():
    e = _explorer(causal=True, query=2)
    assert e.show == "weights"  # the default: as before the switch existed
    torch.testing.assert_close(e.shown(), e.compute()["weights"])
    x, wq, wk = _t(e.x), _t(e.w_q), _t(e.w_k)
    e.show = "raw"
    torch.testing.assert_close(e.shown(), (x @ wq) @ (x @ wk).T)
    e.show = "scaled"
    torch.testing.assert_close(e.shown(), (x @ wq) @ (x @ wk).T / math.sqrt(3))
    before = [row[:] for row in e.weights]
    w_q = [row[:] for row in e.w_q]
    w_q[1][2] = 9.0
    e.w_q, e.temperature, e.causal, e.query, e.edit_matrix, e.edit_row = w_q, 0.1, False, 0, "w_k", 4
    assert e.weights != before
    e.reset()
    assert (e.temperature, e.causal, e.query, e.show, e.edit_matrix, e.edit_row) == (1.0, True, 2, "weights", "w_q", 0)
    assert e.w_q == e.initial["w_q"] and e.weights == before
    with pytest.raises(ValueError, match="show"):
        e.show = "logits"
    with pytest.raises(ValueError, match="show must be one of"):
        _explorer(show="softmax")
    with pytest.raises(TypeError, match="show must be a str"):
        _explorer(show=None)


def test_value_update_explorer_causal_and_axes():
    toks = ["a", "fluffy", "blue", "creature"]
    pts = torch.tensor([[0.0, 0.0], [1.0, 2.0], [2.0, 1.5], [2.5, -0.5]])
    vals = torch.tensor([[0.1, 0.0], [0.0, 0.8], [-0.6, 0.2], [0.2, 0.1]])
    e = W.ValueUpdateExplorer(toks, pts, vals, query=1, causal=True, axis_labels=("texture", "blue"))
    assert e.weights == [0.5, 0.5, 0.0, 0.0]  # the default: uniform over what the query may see
    assert e.axis_labels == ["texture", "blue"]
    e.causal = False
    e.weights = [0.25] * 4
    torch.testing.assert_close(_t(e.delta), vals.double().mean(dim=0))
    e.causal = True  # the later keys drop out, the earlier ones are renormalised
    torch.testing.assert_close(_t(e.delta), vals[:2].double().mean(dim=0))
    torch.testing.assert_close(e.compute()["weights"], _t([0.5, 0.5, 0.0, 0.0]))
    with pytest.raises(ValueError, match="later tokens.*'blue'"):
        W.ValueUpdateExplorer(toks, pts, vals, query=1, weights=[0.2, 0.2, 0.6, 0.0], causal=True)
    with pytest.raises(TypeError, match="causal"):
        W.ValueUpdateExplorer(toks, pts, vals, causal="yes")
    with pytest.raises(TypeError, match="axis_labels"):
        W.ValueUpdateExplorer(toks, pts, vals, axis_labels=["x", 2])
    with pytest.raises(ValueError, match="axis_labels"):
        W.ValueUpdateExplorer(toks, pts, vals, axis_labels=["x"])


@needs_node
def test_cost_explorer(tmp_path):
    c = W.CostExplorer(label="GPT-3")
    assert c.context_len == 2048 and c.entries == 4_194_304
    assert c.memory_bytes == 2048**2 * 96 * 96 * 2
    r = c.compute(4096)
    assert r["per_head"] == 4096**2 and r["per_layer"] == 4096**2 * 96 and r["total"] == 4096**2 * 96 * 96
    c.context_len = 512
    assert c.entries == 512**2
    (got,) = _run_node([{"op": "cost", "n": 512, "n_heads": 96, "n_layers": 96, "bytes_per_entry": 2}], tmp_path)
    mine = c.compute()
    assert (got["perHead"], got["perLayer"], got["total"], got["bytesTotal"]) == (
        mine["per_head"], mine["per_layer"], mine["total"], mine["bytes_total"])
    with pytest.raises(ValueError, match="context_len"):
        c.context_len = 1000
    with pytest.raises(ValueError, match="context_lens"):
        W.CostExplorer(context_lens=(1024, 512))
    with pytest.raises(ValueError, match="context_lens"):
        W.CostExplorer(context_lens=())
    with pytest.raises(ValueError, match="n_heads"):
        W.CostExplorer(n_heads=0)
    with pytest.raises(ValueError, match="bytes_per_entry"):
        W.CostExplorer(bytes_per_entry=0)
    with pytest.raises(ValueError, match="context_len"):
        W.CostExplorer(context_lens=(128, 256), context_len=100)



@needs_node
@pytest.mark.parametrize("cls", ALL_WIDGETS)
def test_esm_parses_as_a_module(cls, tmp_path):
    """Each widget's module is valid JavaScript and exports default {render} (checked with node)."""
    path = tmp_path / "w.mjs"
    path.write_text(cls._esm)
    check = tmp_path / "check.mjs"
    check.write_text(
        f"const m = await import({json.dumps(path.as_uri())});\n"
        "if (typeof m.default?.render !== 'function') { console.error('no default render'); process.exit(1); }\n"
    )
    proc = subprocess.run([NODE, str(check)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- the modules in a browser
# Each widget's module is rendered in headless Chromium with a stand-in for the widget model (get,
# set, on, off, save_changes: the part of the anywidget API the modules use). The static book's
# own pages, with the real renderer, are tested in test_browser.py.

_FAKE_MODEL_PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>%(css)s</style></head>
<body><div id="host"></div><script type="module">
const state = %(state)s;
const handlers = {};
window.saves = 0;
window.model = {
  get: (k) => state[k],
  set: (k, v) => { state[k] = v; (handlers["change:" + k] || []).forEach((f) => f()); },
  on: (ev, f) => { (handlers[ev] = handlers[ev] || []).push(f); },
  off: (ev, f) => { handlers[ev] = (handlers[ev] || []).filter((g) => g !== f); },
  save_changes: () => { window.saves++; },
};
window.state = state;
const url = URL.createObjectURL(new Blob([%(esm)s], { type: "text/javascript" }));
const mod = await import(url);
mod.default.render({ model: window.model, el: document.getElementById("host") });
window.rendered = true;
</script></body></html>"""


def _widget_page(browser, widget, viewport=None):
    state = {k: v for k, v in widget.get_state().items() if not k.startswith("_") and k != "layout"}
    html = _FAKE_MODEL_PAGE % {"css": widget._css, "state": json.dumps(state), "esm": json.dumps(widget._esm)}
    page = browser.new_page(viewport=viewport or {"width": 1100, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_content(html)
    page.wait_for_function("window.rendered === true", timeout=10_000)
    return page, errors


def _slide(page, selector, value):
    page.eval_on_selector(selector, "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }",
                          str(value))


def _cases():
    g = torch.Generator().manual_seed(0)
    toks = ["a", "fluffy", "blue", "creature"]
    return {
        "attention-explorer": (
            lambda: W.AttentionExplorer(toks, torch.randn(4, 6, generator=g), torch.randn(6, 3, generator=g),
                                        torch.randn(6, 3, generator=g), query=3),
            "input.attnlib-temperature", -1.0, "temperature"),
        "query-key-arrows": (lambda: W.QueryKeyArrows(toks, torch.randn(4, 2, generator=g), [1.0, 2.0]),
                             "input.attnlib-angle", -90, "weights"),
        "softmax-explorer": (lambda: W.SoftmaxExplorer(toks, [2.0, 1.0, 0.5, -1.0]),
                             "input.attnlib-temperature", 1.5, "temperature"),
        "value-update-explorer": (
            lambda: W.ValueUpdateExplorer(toks, [[0, 0], [1, 2], [2, 1.5], [2.5, -0.5]],
                                          [[0.1, 0], [0, 0.8], [-0.6, 0.2], [0.2, 0.1]], query=3),
            "input.attnlib-weight-1", 1.0, "weights"),
        "cost-explorer": (lambda: W.CostExplorer(), "input.attnlib-context", 0, "context_len"),
        "online-softmax-stepper": (lambda: W.OnlineSoftmaxStepper([0.1, 2.0, 3.0, 0.5], [0, 1, 2, 4], labels=toks),
                                   "input.attnlib-step", 2, "out"),
        "tile-explorer": (lambda: W.TileExplorer(256, block=32), "input.attnlib-window", 40, "tiles_computed"),
    }


@pytest.mark.browser
@pytest.mark.parametrize("kind", list(_cases()))
def test_widget_renders_and_slider_changes_numbers(browser, kind):
    make, selector, value, trait = _cases()[kind]
    widget = make()
    page, errors = _widget_page(browser, widget)
    try:
        root = page.locator(f".attnlib-widget.attnlib-{kind}")
        assert root.count() == 1
        assert page.locator(f".attnlib-{kind} input[type=range]").count() >= 1
        before = root.inner_text()
        old = page.evaluate(f"JSON.stringify(window.state[{json.dumps(trait)}])")
        _slide(page, selector, value)
        assert root.inner_text() != before, "moving the slider did not change the numbers shown"
        assert page.evaluate(f"JSON.stringify(window.state[{json.dumps(trait)}])") != old
        assert page.evaluate("window.saves") >= 1, "the view did not send its change (save_changes)"
        assert errors == []
    finally:
        page.close()


@pytest.mark.browser
def test_attention_explorer_in_browser_matches_python(browser):
    """The pattern the browser writes back equals compute(); heatmap axes and token labels are shown;
    a change made from Python (model.set) redraws the view."""
    e = _explorer(causal=True, query=2)
    page, errors = _widget_page(browser, e)
    try:
        _slide(page, "input.attnlib-temperature", math.log10(0.5))
        t = page.evaluate("window.state.temperature")
        e.temperature = t
        torch.testing.assert_close(_t(page.evaluate("window.state.weights")), e.compute()["weights"],
                                   atol=1e-6, rtol=1e-6)
        heat = page.locator(".attnlib-attention-explorer table.attnlib-heatmap")
        text = heat.inner_text()
        assert "query" in text and "key" in text and all(tok in text for tok in TOKENS)
        assert heat.locator("td.attnlib-masked").count() == 6  # causal, T = 4: 4 * 3 / 2 blocked
        page.click("input.attnlib-causal")
        assert heat.locator("td.attnlib-masked").count() == 0 and page.evaluate("window.state.causal") is False
        page.evaluate("window.model.set('temperature', 3.0)")
        assert "temperature = 3.00" in page.locator(".attnlib-attention-explorer").inner_text()
        page.select_option("select.attnlib-query", "1")
        assert page.evaluate("window.state.query") == 1
        assert errors == []
    finally:
        page.close()


@pytest.mark.browser
def test_pattern_viewer_in_browser(browser):
    pats = {"head 0": [[1.0, 0.0], [0.25, 0.75]], "head 1": [[0.5, 0.5], [0.9, 0.1]]}
    pv = W.PatternViewer(pats, ["x", "y"])
    page, errors = _widget_page(browser, pv)
    try:
        root = page.locator(".attnlib-widget.attnlib-pattern-viewer")
        assert "0.75" in root.inner_text()
        page.select_option("select.attnlib-pattern-select", "head 1")
        assert "0.90" in root.inner_text() and "0.75" not in root.inner_text()
        assert page.evaluate("window.state.selected") == "head 1"
        assert errors == []
    finally:
        page.close()
    sim = W.PatternViewer({"cosine": [[1.0, -0.5], [-0.5, 1.0]]}, ["x", "y"], row_name="token", col_name="token",
                          caption="cosine similarity")
    page, errors = _widget_page(browser, sim)
    try:
        text = page.locator(".attnlib-pattern-viewer").inner_text()
        assert "-0.50" in text and "cosine similarity" in text and "token" in text
        cells = page.locator(".attnlib-pattern-viewer td.attnlib-cell")  # as attnlib.viz: blue < 0 < red
        assert "rgba(33, 102, 172" in cells.nth(1).get_attribute("style")
        assert "rgba(202, 0, 32" in cells.nth(0).get_attribute("style")
        assert errors == []
    finally:
        page.close()


# --------------------------------------------------------------------------- tiled attention widgets
# The OnlineSoftmaxStepper's and the TileExplorer's arithmetic (static/tiling.js) runs under node as
# the page loads it (the widget's whole module) and is compared with attnlib.


def _run_tiling(cls, cases: list, tmp_path: Path) -> list:
    module = tmp_path / "widget.mjs"
    module.write_text(cls._esm)
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    proc = subprocess.run([NODE, str(ROOT / "tests" / "js" / "eval_tiling.mjs"), str(module), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _online_reference(s: torch.Tensor, v: torch.Tensor, block: int) -> list[dict]:
    """The state after each tile from its definition (not the recursion): over the keys seen so
    far, m = their max, l = sum exp(s - m), acc = sum exp(s - m) v; rescale = exp(m_before - m)."""
    out, m_before = [], -math.inf
    for start in range(0, len(s), block):
        end = min(start + block, len(s))
        m = float(s[:end].max())
        p = torch.exp(s[:end] - m)
        out.append({"start": start, "end": end, "tileMax": float(s[start:end].max()), "m": m,
                    "rescale": math.exp(m_before - m), "l": float(p.sum()), "acc": p @ v[:end]})
        m_before = m
    return out


STEPPER_ROWS = [  # (T, d_v, block): blocks that divide T and blocks that do not
    (4, 1, 2), (7, 2, 3), (10, 3, 4), (9, 2, 1), (6, 1, 6), (11, 2, 5)]


@needs_node
def test_js_online_softmax_steps_match_the_definition_and_softmax(tmp_path):
    g = torch.Generator().manual_seed(5)
    rows = []
    for T, d_v, block in STEPPER_ROWS:
        rows.append((torch.randn(T, generator=g, dtype=torch.float64) * 3,
                     torch.randn(T, d_v, generator=g, dtype=torch.float64), block))
    # an increasing row (the max grows at every tile) and huge scores (no overflow)
    rows.append((torch.arange(8, dtype=torch.float64), torch.ones(8, 2, dtype=torch.float64), 2))
    rows.append((_t([1000.0, 999.0, 1003.0, -1000.0, 1002.0]), _t([[1.0], [2.0], [3.0], [4.0], [5.0]]), 2))
    cases = [{"op": "steps", "scores": s.tolist(), "values": v.tolist(), "block": b} for s, v, b in rows]
    got = _run_tiling(W.OnlineSoftmaxStepper, cases, tmp_path)
    for (s, v, block), steps in zip(rows, got, strict=True):
        ref = _online_reference(s, v, block)
        assert len(steps) == len(ref) == -(-len(s) // block)
        for t, (js, r) in enumerate(zip(steps, ref, strict=True)):
            assert (js["start"], js["end"]) == (r["start"], r["end"])
            for key in ("tileMax", "m", "rescale", "l"):
                assert js[key] == pytest.approx(r[key], rel=1e-12, abs=1e-300), (t, key)
            torch.testing.assert_close(_t(js["acc"]), r["acc"], atol=1e-12, rtol=1e-12)
            # the factor is below 1 exactly when the tile raised the max (0 on the first tile)
            assert (js["rescale"] < 1) == (t == 0 or js["tileMax"] > ref[t - 1]["m"])
        last = steps[-1]
        exact = attnlib.softmax(s, dim=-1) @ v
        torch.testing.assert_close(_t(last["acc"]) / last["l"], exact, atol=1e-12, rtol=1e-12)
        # and the widget's Python side computes the same steps and output
        stepper = W.OnlineSoftmaxStepper(s, v, block=block)
        py = stepper.compute()
        for js, p in zip(steps, py["steps"], strict=True):
            assert (js["m"], js["rescale"]) == (pytest.approx(p["m"]), pytest.approx(p["rescale"]))
            assert js["l"] == pytest.approx(p["l"], rel=1e-12)
            torch.testing.assert_close(_t(js["acc"]), p["acc"], atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(py["out"], exact, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(py["softmax"], exact)


def test_online_softmax_stepper_traits_follow_the_step():
    s, v = [0.1, 2.0, 3.0, 0.5, 1.0], [[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [4.0, 0.0], [1.0, 1.0]]
    st = W.OnlineSoftmaxStepper(s, v, labels=list("abcde"), block=2)
    assert st.step == 0 and st.m is None and st.l is None and st.acc == [] and st.out == []
    assert st.n_tiles() == 3
    st.step = 1
    assert st.m == 2.0 and st.rescale == 0.0
    assert st.l == pytest.approx(math.exp(0.1 - 2.0) + 1.0)
    st.step = 2  # "c" (3.0) raises the max: the old sums are multiplied by e^(2 - 3)
    assert st.m == 3.0 and st.rescale == pytest.approx(math.exp(-1.0))
    st.step = 3
    exact = attnlib.softmax(_t(s), dim=-1) @ _t(v)
    torch.testing.assert_close(_t(st.out), exact)
    assert st.rescale == 1.0  # the last tile (1.0) does not raise the max
    st.block = 5  # one tile: step 3 no longer exists, so the step becomes the last tile, as on the page
    assert st.step == 1
    with pytest.raises(ValueError, match="step"):
        st.step = 2
    torch.testing.assert_close(_t(st.out), exact)
    state = st.get_state()
    for name in ("labels", "scores", "values", "block", "step", "m", "rescale", "l", "acc", "out"):
        assert name in state, name
    one = W.OnlineSoftmaxStepper(torch.tensor([0.1, 2.0, 3.0, 0.5]), torch.tensor([0.0, 1.0, 2.0, 4.0]),
                                 step=2)
    assert one.values == [[0.0], [1.0], [2.0], [4.0]] and one.out == [pytest.approx(1.7915226, abs=1e-7)]


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"scores": [[1.0, 2.0]]}, ValueError, ["OnlineSoftmaxStepper", "scores", "1-D"]),
        ({"scores": []}, ValueError, ["OnlineSoftmaxStepper", "scores", "empty"]),
        ({"scores": [1.0, float("nan"), 0.0]}, ValueError, ["OnlineSoftmaxStepper", "scores", "finite"]),
        ({"values": [[1.0], [2.0]]}, ValueError, ["OnlineSoftmaxStepper", "values", "(3, *)", "(2, 1)"]),
        ({"values": "abc"}, TypeError, ["OnlineSoftmaxStepper", "values", "'abc'"]),
        ({"values": torch.zeros(3, 2, 2)}, ValueError, ["OnlineSoftmaxStepper", "values", "2-D"]),
        ({"labels": ["a", "b"]}, ValueError, ["OnlineSoftmaxStepper", "labels", "2 labels", "3"]),
        ({"block": 0}, ValueError, ["OnlineSoftmaxStepper", "block", "positive int", "0"]),
        ({"block": 2.0}, TypeError, ["OnlineSoftmaxStepper", "block", "positive int", "2.0"]),
        ({"block": 4}, ValueError, ["OnlineSoftmaxStepper", "block", "[1, T=3]", "4"]),
        ({"step": -1}, ValueError, ["OnlineSoftmaxStepper", "step", "non-negative", "-1"]),
        ({"step": 3}, ValueError, ["OnlineSoftmaxStepper", "step", "[0, 2]", "got 3"]),
        ({"step": True}, TypeError, ["OnlineSoftmaxStepper", "step", "True"]),
    ],
)
def test_online_softmax_stepper_rejects_bad_arguments(kwargs, exc, words):
    args = {"scores": [1.0, 2.0, 0.5], "values": [[1.0], [2.0], [3.0]], "block": 2}
    args.update(kwargs)
    with pytest.raises(exc) as err:
        W.OnlineSoftmaxStepper(args.pop("scores"), args.pop("values"), **args)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_online_softmax_stepper_rejects_bad_trait_values():
    st = W.OnlineSoftmaxStepper([1.0, 2.0, 0.5], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="OnlineSoftmaxStepper: block"):
        st.block = 4
    with pytest.raises(ValueError, match="OnlineSoftmaxStepper: step"):
        st.step = 5
    assert (st.block, st.step) == (2, 0)


# Cases for the tile explorer: (T, block, causal, window, sparse_block); blocks that do not divide T
TILE_CASES = [
    (64, 16, True, 0, 0), (64, 16, False, 0, 0), (100, 16, True, 0, 0), (100, 24, False, 0, 0),
    (100, 16, True, 20, 0), (100, 16, False, 20, 0), (96, 12, True, 0, 8), (97, 16, False, 0, 10),
    (130, 32, True, 40, 16), (50, 7, True, 1, 0), (50, 50, True, 0, 0), (33, 5, False, 33, 33),
    (256, 32, True, 64, 32), (1024, 64, True, 0, 0), (1024, 64, True, 128, 0), (1024, 64, True, 0, 64),
]


def _tiled_reference(T, block, causal, window, sparse, d):
    """tiled_attention itself on random q, k, v, with the masks built by attnlib.efficient."""
    from attnlib import efficient

    mask = None
    if window:
        mask = efficient.sliding_window_mask(T, window, causal=causal)
    if sparse:
        s = efficient.block_sparse_mask(T, sparse, causal=causal)
        mask = s if mask is None else mask & s
    g = torch.Generator().manual_seed(T)
    q, k, v = (torch.randn(1, T, d, generator=g) for _ in range(3))
    out, stats = efficient.tiled_attention(q, k, v, mask, is_causal=causal, block_q=block, block_k=block,
                                           return_stats=True)
    torch.testing.assert_close(out, attnlib.attention(q, k, v, mask, is_causal=causal), atol=1e-5, rtol=1e-4)
    allowed = torch.ones(T, T, dtype=torch.bool) if mask is None else mask
    if causal:
        allowed = allowed & attnlib.causal_mask(T)
    return stats, efficient.count_attended(allowed), efficient.explicit_slow_memory(T, T, d), allowed


@needs_node
def test_js_tile_grid_matches_tiled_attention(tmp_path):
    d = 8
    cases = [{"op": "grid", "T": T, "block": b, "causal": c, "window": w, "sparse_block": s, "d": d}
             for T, b, c, w, s in TILE_CASES]
    got = _run_tiling(W.TileExplorer, cases, tmp_path)
    for (T, block, causal, window, sparse), r in zip(TILE_CASES, got, strict=True):
        case = (T, block, causal, window, sparse)
        stats, kept, (reads, writes), allowed = _tiled_reference(T, block, causal, window, sparse, d)
        n = -(-T // block)
        assert r["nTiles"] == n == stats.n_q_tiles == stats.n_k_tiles, case
        assert (r["tilesComputed"], r["tilesSkipped"]) == (stats.tiles_computed, stats.tiles_skipped), case
        assert (r["qReads"], r["kReads"], r["vReads"], r["maskReads"], r["outWrites"]) == (
            stats.q_reads, stats.k_reads, stats.v_reads, stats.mask_reads, stats.out_writes), case
        assert r["scoresKept"] == kept, case
        assert (r["explicitReads"], r["explicitWrites"]) == (reads, writes), case
        assert r["patternEntries"] == T * T and r["workingSet"] == block * (2 * d + block + 2)
        # the grid itself: the allowed entries of every pair of tiles, counted on the mask
        grid = torch.tensor([[int(allowed[a * block:(a + 1) * block, b * block:(b + 1) * block].sum())
                              for b in range(n)] for a in range(n)])
        assert torch.equal(torch.tensor(r["kept"]), grid), case
        sizes = torch.tensor([min(block, T - i * block) for i in range(n)])
        full = sizes.unsqueeze(1) * sizes.unsqueeze(0)
        assert r["tilesPartial"] == int(((grid > 0) & (grid < full)).sum()), case
        assert r["scoresComputed"] == int(full[grid > 0].sum()), case
    # the chapter's numbers: T = 1024 in tiles of 64, causal: 136 of 256 tiles computed
    assert (got[-3]["tilesComputed"], got[-3]["tilesSkipped"]) == (136, 120)


@needs_node
def test_js_mask_matches_attnlib_masks(tmp_path):
    from attnlib import efficient

    T = 23
    settings = [(True, 0, 0), (False, 5, 0), (True, 5, 0), (False, 0, 4), (True, 0, 4), (True, 6, 4),
                (False, 23, 23), (True, 0, 1)]
    got = _run_tiling(W.TileExplorer, [{"op": "allow", "T": T, "causal": c, "window": w, "sparse_block": s}
                                        for c, w, s in settings], tmp_path)
    for (causal, window, sparse), m in zip(settings, got, strict=True):
        ref = attnlib.causal_mask(T) if causal else torch.ones(T, T, dtype=torch.bool)
        if window:
            ref = ref & efficient.sliding_window_mask(T, window, causal=causal)
        if sparse:
            ref = ref & efficient.block_sparse_mask(T, sparse, causal=causal)
        assert torch.equal(torch.tensor(m), ref), (causal, window, sparse)


@pytest.mark.parametrize(("T", "block", "causal", "window", "sparse"), TILE_CASES[:10])
def test_tile_explorer_compute_equals_tiled_attention(T, block, causal, window, sparse):
    e = W.TileExplorer(T, block=block, blocks=[block], causal=causal, window=window, sparse_block=sparse,
                       d_head=8)
    stats, kept, explicit, _ = _tiled_reference(T, block, causal, window, sparse, 8)
    r = e.compute()
    assert r["stats"] == stats and r["scores_kept"] == kept and r["explicit"] == explicit
    assert (e.tiles_computed, e.tiles_skipped, e.scores_kept) == (stats.tiles_computed, stats.tiles_skipped, kept)
    assert e.tiled_traffic == stats.reads + stats.writes and e.explicit_traffic == sum(explicit)
    assert int((r["kept"] > 0).sum()) == stats.tiles_computed


def test_tile_explorer_traits_refresh():
    e = W.TileExplorer(1024)
    assert e.blocks == [16, 24, 32, 48, 64, 100, 128, 256, 512] and e.block == 64 and e.causal
    assert (e.tiles_computed, e.tiles_skipped, e.tiles_partial) == (136, 120, 16)
    e.window = 128
    # per query tile: its diagonal tile, the whole tile before it, and the one before that, which
    # the window's far edge cuts (none before tile 0, one before tile 1)
    assert e.tiles_computed == 16 + 15 + 14
    e.window, e.sparse_block = 0, 64
    assert (e.tiles_computed, e.tiles_skipped) == (136, 120)  # the chapter: no more tiles skipped
    e.causal, e.sparse_block = False, 0
    assert (e.tiles_computed, e.tiles_skipped, e.tiles_partial) == (256, 0, 0)
    e.block = 100  # does not divide 1024: 11 tiles a side, the last 24 long
    assert e.tiles_computed == 121 and e.scores_kept == 1024**2
    with pytest.raises(ValueError, match="TileExplorer: block must be one of blocks"):
        e.block = 65
    with pytest.raises(ValueError, match="TileExplorer: window"):
        e.window = 2000
    with pytest.raises(ValueError, match="TileExplorer: sparse_block"):
        e.sparse_block = -1
    assert W.TileExplorer(100, block=10).blocks == [10, 16, 24, 32, 48, 64, 100]


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"T": 0}, ValueError, ["TileExplorer", "T", "positive int", "0"]),
        ({"T": 64.0}, TypeError, ["TileExplorer", "T", "positive int", "64.0"]),
        ({"T": 4096}, ValueError, ["TileExplorer", "T", "[1, 2048]", "4096"]),
        ({"block": 200}, ValueError, ["TileExplorer", "block", "T=128", "200"]),
        ({"block": 1}, ValueError, ["TileExplorer", "block", "[2, T=128]", "64 tiles", "got 1"]),
        ({"block": "16"}, TypeError, ["TileExplorer", "block", "'16'"]),
        ({"blocks": 16}, TypeError, ["TileExplorer", "blocks", "list"]),
        ({"blocks": [16, 0]}, ValueError, ["TileExplorer", "blocks", "0"]),
        ({"causal": 1}, TypeError, ["TileExplorer", "causal", "True or False", "1"]),
        ({"window": -3}, ValueError, ["TileExplorer", "window", "non-negative", "-3"]),
        ({"window": 129}, ValueError, ["TileExplorer", "window", "[0, T=128]", "129"]),
        ({"sparse_block": 1.5}, TypeError, ["TileExplorer", "sparse_block", "1.5"]),
        ({"d_head": 0}, ValueError, ["TileExplorer", "d_head", "positive int", "0"]),
        ({"bytes_per_entry": 0}, ValueError, ["TileExplorer", "bytes_per_entry", "> 0.0", "0"]),
    ],
)
def test_tile_explorer_rejects_bad_arguments(kwargs, exc, words):
    args = {"T": 128, "block": 16}
    args.update(kwargs)
    with pytest.raises(exc) as err:
        W.TileExplorer(args.pop("T"), **args)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def _widget_text(page, kind):
    return page.locator(f".attnlib-widget.attnlib-{kind}").inner_text()


@pytest.mark.browser
def test_online_softmax_stepper_in_browser(browser):
    """The buttons step tile by tile; the state written back equals compute(); the last step shows
    acc / l next to softmax(scores) @ values; the rescaling factor of a growing max is marked."""
    st = W.OnlineSoftmaxStepper([0.1, 2.0, 3.0, 0.5, 1.0], [[0, 1], [1, 0], [2, 1], [4, 0], [1, 1]],
                                labels=list("abcde"), block=2)
    page, errors = _widget_page(browser, st)
    try:
        assert "before the first tile" in _widget_text(page, "online-softmax-stepper")
        assert page.locator("button.attnlib-back").is_disabled()
        steps = st.compute()["steps"]
        for t in range(1, 4):
            page.click("button.attnlib-next")
            assert page.evaluate("window.state.step") == t
            assert page.evaluate("window.state.m") == pytest.approx(steps[t - 1]["m"])
            assert page.evaluate("window.state.l") == pytest.approx(steps[t - 1]["l"], rel=1e-12)
            torch.testing.assert_close(_t(page.evaluate("window.state.acc")), steps[t - 1]["acc"])
        assert page.locator("button.attnlib-next").is_disabled()
        assert page.locator("td.attnlib-grew").count() == 1  # tile 2 raised the max from 2 to 3
        text = _widget_text(page, "online-softmax-stepper")
        out = st.compute()["softmax"]
        torch.testing.assert_close(_t(page.evaluate("window.state.out")), out)
        assert "softmax(scores) @ values" in text and f"{out[0].item():.3f}" in text
        _slide(page, "input.attnlib-block", 5)  # one tile: the step is clamped to 1
        assert page.evaluate("[window.state.block, window.state.step]") == [5, 1]
        torch.testing.assert_close(_t(page.evaluate("window.state.out")), out)
        assert errors == []
    finally:
        page.close()


@pytest.mark.browser
def test_tile_explorer_in_browser(browser):
    """Each control redraws the grid and the counts, which equal compute()'s."""
    e = W.TileExplorer(256, block=32)
    page, errors = _widget_page(browser, e)
    try:
        grid = page.locator("svg.attnlib-tile-grid")
        assert grid.locator("rect.attnlib-tile-full").count() == 28  # 8 tiles a side, below the diagonal
        assert grid.locator("rect.attnlib-tile-partial").count() == 8  # the diagonal
        assert "36 of 64" in _widget_text(page, "tile-explorer")
        page.click("input.attnlib-causal")
        assert grid.locator("rect.attnlib-tile-full").count() == 64
        assert page.evaluate("window.state.tiles_computed") == 64
        page.click("input.attnlib-causal")
        _slide(page, "input.attnlib-window", 40)
        _slide(page, "input.attnlib-block", e.blocks.index(48))  # 48 does not divide 256
        state = page.evaluate("window.state")
        e.set_state({k: state[k] for k in ("block", "causal", "window", "sparse_block")})
        assert (e.block, e.window, e.causal) == (48, 40, True)
        for name in ("tiles_computed", "tiles_skipped", "tiles_partial", "scores_kept", "tiled_traffic",
                     "explicit_traffic"):
            assert state[name] == getattr(e, name), name
        assert "the last 16 long" in _widget_text(page, "tile-explorer")
        assert errors == []
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.parametrize("kind", ["online-softmax-stepper", "tile-explorer"])
def test_tiling_widgets_fit_a_phone(browser, kind):
    """At 390 px the widget is no wider than the screen; what is wider scrolls inside it."""
    widget = _cases()[kind][0]()
    state = {k: v for k, v in widget.get_state().items() if not k.startswith("_") and k != "layout"}
    html = _FAKE_MODEL_PAGE % {"css": widget._css, "state": json.dumps(state), "esm": json.dumps(widget._esm)}
    page = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        page.set_content(html)
        page.wait_for_function("window.rendered === true", timeout=10_000)
        if kind == "online-softmax-stepper":  # a tile done: the table of steps has a row
            page.click("button.attnlib-next")
        got = page.evaluate("""() => {
            const root = document.querySelector('.attnlib-widget');
            const bad = [];
            for (const el of root.querySelectorAll('*')) {
                if (el.getBoundingClientRect().right <= root.getBoundingClientRect().right + 1) continue;
                let a = el.parentElement, ok = false;
                for (; a && a !== root; a = a.parentElement) {
                    const o = getComputedStyle(a).overflowX;
                    if (o === 'auto' || o === 'scroll') { ok = true; break; }
                }
                if (!ok) bad.push(el.tagName + '.' + el.className);
            }
            return {page: document.documentElement.scrollWidth, root: root.getBoundingClientRect().right, bad};
        }""")
        assert got["page"] <= 390 and got["root"] <= 390, got
        assert got["bad"] == [], got
    finally:
        page.close()


_FITS = """root => {
    const r = root.getBoundingClientRect();
    const spill = [...root.querySelectorAll('*')].filter(el => {
        const b = el.getBoundingClientRect();
        if (b.width === 0 || b.right <= r.right + 1) return false;
        for (let a = el.parentElement; a && a !== root.parentElement; a = a.parentElement) {
            const o = getComputedStyle(a).overflowX;
            if (o === 'auto' || o === 'scroll') return false;
        }
        return true;
    }).map(el => el.tagName + '.' + el.className);
    return {width: r.width, page: document.documentElement.scrollWidth, spill};
}"""

_SVG_TEXT_OVERLAPS = """root => {
    const boxes = [...root.querySelectorAll('svg text')].map(t => [t.textContent, t.getBBox()]);
    const out = [];
    boxes.forEach(([ta, a], i) => boxes.slice(i + 1).forEach(([tb, b]) => {
        if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height)
            out.push(ta + ' / ' + tb);
    }));
    return out;
}"""


def _chapter_like_widgets():
    """The new and changed widgets as chapters 2 and 5 build them (the running example's head)."""
    tokens, x = example.embed(example.PHRASE)
    W_Q, W_K, W_V, W_O = example.adjective_head()
    q, k = x @ W_Q, x @ W_K
    c = tokens.index("creature")
    u = q[c, 2:] / q[c, 2:].norm()
    keys = torch.stack([k[:, 0], k[:, 2:] @ u], dim=1)
    plane = torch.stack([example.direction(n) for n in ("texture", "blue")], dim=1)
    pattern = attnlib.attention(q, k, k, is_causal=True, return_weights=True)[1]
    return {
        "query-key-arrows": W.QueryKeyArrows(tokens, keys, torch.stack([q[c, 0], q[c, 2:].norm()]),
                                             d_head=4, query_index=c, query_label="query of creature",
                                             axis_labels=("column 0", "position")),
        "attention-explorer": W.AttentionExplorer(tokens, x, W_Q, W_K, query=c, show="raw",
                                                  dim_labels=example.SEMANTIC + example.POSITION),
        "value-update-explorer": W.ValueUpdateExplorer(tokens, x @ plane, x @ W_V @ W_O @ plane, query=c,
                                                       weights=pattern[c], causal=True,
                                                       axis_labels=("texture", "blue")),
    }


@pytest.mark.browser
@pytest.mark.parametrize("kind", ["query-key-arrows", "attention-explorer", "value-update-explorer"])
def test_widget_fits_a_phone(browser, kind):
    """At 390 px the widget is no wider than the screen (what is wider scrolls inside its own box),
    and no two labels of its picture overlap."""
    widget = _chapter_like_widgets()[kind]
    page, errors = _widget_page(browser, widget, viewport={"width": 390, "height": 844})
    try:
        root = page.locator(f".attnlib-widget.attnlib-{kind}")
        got = root.evaluate(_FITS)
        assert got["width"] <= 390 and got["page"] <= 390, got
        assert got["spill"] == [], got
        assert root.evaluate(_SVG_TEXT_OVERLAPS) == []
        assert errors == []
    finally:
        page.close()


@pytest.mark.browser
def test_query_key_arrows_in_browser(browser):
    """Rotating and stretching the query changes the dot products and the softmax row the page
    shows, equal to compute(); the causal mask hides the later keys; reset restores the start."""
    a = _chapter_like_widgets()["query-key-arrows"]
    page, errors = _widget_page(browser, a)
    try:
        root = page.locator(".attnlib-query-key-arrows")
        start = root.inner_text()
        assert "query of creature" in start and "q·k / √4" in start
        _slide(page, "input.attnlib-angle", 100)
        _slide(page, "input.attnlib-length", 2.0)
        state = page.evaluate("window.state")
        assert (state["angle"], state["length"]) == (100, 2.0)
        a.angle, a.length = 100, 2.0
        for name in ("query", "dots", "scores", "weights"):
            torch.testing.assert_close(_t(state[name]), a.compute()[name], atol=1e-12, rtol=1e-9)
        assert "largest weight: creature" in root.inner_text()  # upright: the position part only
        page.click("input.attnlib-causal")
        assert page.evaluate("window.state.causal") is True
        assert page.evaluate("window.state.weights.slice(4)") == [0, 0, 0, 0]
        assert root.locator("tr.attnlib-masked-row").count() == 4
        page.click("button.attnlib-reset")
        assert root.inner_text() == start and page.evaluate("window.state.causal") is False
        assert errors == []
    finally:
        page.close()


@pytest.mark.browser
def test_attention_explorer_switch_and_reset_in_browser(browser):
    e = _chapter_like_widgets()["attention-explorer"]
    page, errors = _widget_page(browser, e)
    try:
        heat = page.locator(".attnlib-attention-explorer table.attnlib-heatmap")
        shown = lambda: [float(t) for t in heat.locator("td.attnlib-cell").all_inner_texts()]  # noqa: E731
        for show in ("raw", "scaled", "weights"):
            page.select_option("select.attnlib-show", show)
            assert page.evaluate("window.state.show") == show
            e.show = show
            torch.testing.assert_close(_t(shown()).reshape(8, 8), e.shown(), atol=0.006, rtol=0)  # 2 digits
        _slide(page, "input.attnlib-edit-value", -2.0)
        page.click("input.attnlib-causal")
        assert page.evaluate("window.state.w_q[0][0]") == -2.0
        page.click("button.attnlib-reset")
        state = page.evaluate("window.state")
        assert state["w_q"] == e.initial["w_q"] and state["causal"] is False and state["show"] == "raw"
        torch.testing.assert_close(_t(state["weights"]), W.AttentionExplorer(
            e.tokens, e.x, e.initial["w_q"], e.w_k).compute()["weights"], atol=1e-6, rtol=1e-6)
        assert errors == []
    finally:
        page.close()


@pytest.mark.browser
def test_value_update_explorer_causal_in_browser(browser):
    """With the mask on, the later keys get no weight and no slider; switching it off gives them
    back; the picture names its axes."""
    e = _chapter_like_widgets()["value-update-explorer"]
    page, errors = _widget_page(browser, e)
    try:
        root = page.locator(".attnlib-value-update-explorer")
        assert "texture →" in root.locator("svg").inner_html() and "↑ blue" in root.locator("svg").inner_html()
        assert root.locator(".attnlib-masked-key").count() == 4  # after "creature"
        assert root.locator("input.attnlib-weight").count() == 4
        torch.testing.assert_close(_t(page.evaluate("window.state.updated")), e.compute()["updated"])
        page.click("input.attnlib-causal")
        assert root.locator(".attnlib-masked-key").count() == 0
        assert root.locator("input.attnlib-weight").count() == 8
        _slide(page, "input.attnlib-weight-6", 1.0)
        w = page.evaluate("window.state.weights")
        assert w[6] > 0.3 and abs(sum(w) - 1) < 1e-9
        page.click("input.attnlib-causal")
        w = page.evaluate("window.state.weights")
        assert w[4:] == [0, 0, 0, 0] and abs(sum(w) - 1) < 1e-9
        e.weights, e.causal = w, True
        torch.testing.assert_close(_t(page.evaluate("window.state.updated")), e.compute()["updated"])
        assert errors == []
    finally:
        page.close()


# --------------------------------------------------------------------------- bad values, later
# A trait set from Python (or by a slider's range bug) to a bad value is refused under the
# explorer's name, before anything changes: the inputs and the results stay as they were.


def _model_explorer(**kw):
    from attnlib import data

    tok = data.make_tokenizer()
    torch.manual_seed(0)
    model = attnlib.Decoder(attnlib.DecoderConfig(vocab_size=len(tok), context_len=16, d_model=8, n_layers=2,
                                                  n_heads=2, d_mlp=16)).eval()
    return W.ModelExplorer(model, tok, "the fluffy blue creature roamed . it is", **kw)


def _stepper():
    return W.OnlineSoftmaxStepper([0.1, 2.0, 3.0, 0.5, 1.0], [[0, 1], [1, 0], [2, 1], [4, 0], [1, 1]], block=2,
                                  step=1)


_WIDGET_MAKERS = {
    "attention": lambda: _explorer(causal=True, query=2),
    "arrows": lambda: _arrows(d_head=4, query_index=3, causal=True),
    "softmax": lambda: W.SoftmaxExplorer(["a", "b"], [1.0, 2.0]),
    "patterns": lambda: W.PatternViewer({"head 0": [[1.0]], "head 1": [[0.5]]}, ["x"]),
    "value": lambda: W.ValueUpdateExplorer(TOKENS, [[0, 0], [1, 2], [2, 1.5], [2.5, -0.5]],
                                           [[0.1, 0], [0, 0.8], [-0.6, 0.2], [0.2, 0.1]], query=3),
    "cost": lambda: W.CostExplorer(),
    "stepper": _stepper,
    "tiles": lambda: W.TileExplorer(64, block=16),
    "model": _model_explorer,
}
_NAN_4x6 = [[float("nan")] + [0.0] * 5] + [[0.0] * 6] * 3

BAD_TRAITS = [  # (widget, trait, bad value, error, its whole message)
    ("attention", "x", [[0.0] * 5] * 4, ValueError, "AttentionExplorer: x must have shape (4, 6) (T, d_model): "
     "one row per token, d_model = the rows of w_q, got (4, 5)"),
    ("attention", "x", [[0.0] * 6] * 3, ValueError, "AttentionExplorer: x must have shape (4, 6) (T, d_model): "
     "one row per token, d_model = the rows of w_q, got (3, 6)"),
    ("attention", "x", _NAN_4x6, ValueError,
     "AttentionExplorer: x must contain only finite numbers (no nan or inf), got 1 nan and 0 inf"),
    ("attention", "w_q", [[0.0] * 2] * 6, ValueError, "AttentionExplorer: w_q must have shape (6, 3) (d_model, "
     "d_head): d_model = the columns of x, d_head = that of w_k, got (6, 2)"),
    ("attention", "w_k", [[0.0] * 3] * 5, ValueError, "AttentionExplorer: w_k must have shape (6, 3) (d_model, "
     "d_head): d_model = the columns of x, d_head = that of w_q, got (5, 3)"),
    ("attention", "tokens", ["a", "b"], ValueError,
     "AttentionExplorer: tokens has 2 labels but 4 are needed (one per row of x: T = 4)"),
    ("attention", "temperature", -1.0, ValueError,
     "AttentionExplorer: temperature must be a positive finite number, got -1.0"),
    ("attention", "query", 4, ValueError, "AttentionExplorer: query must lie in [0, 3] (a token index), got 4"),
    ("attention", "edit_matrix", "w_v", ValueError, "AttentionExplorer: edit_matrix must be 'w_q' or 'w_k', got 'w_v'"),
    ("attention", "show", "logits", ValueError,
     "AttentionExplorer: show must be one of ('weights', 'scaled', 'raw'), got 'logits'"),
    ("arrows", "d_head", 0, ValueError, "QueryKeyArrows: d_head must be a positive int, got 0"),
    ("arrows", "d_head", True, TypeError, "QueryKeyArrows: d_head must be a positive int, got True"),
    ("arrows", "query_index", -1, ValueError, "QueryKeyArrows: query_index must be a position among the keys "
     "while causal=True (the mask hides the keys after it), got -1 (none); set causal=False first"),
    ("arrows", "query_index", 4, ValueError, "QueryKeyArrows: query_index must lie in [0, 4) (a position among "
     "the keys, or -1 for none), got 4"),
    ("arrows", "query_index", -2, ValueError, "QueryKeyArrows: query_index must lie in [0, 4) (a position among "
     "the keys, or -1 for none), got -2"),
    ("arrows", "key_vectors", [[1.0, 2.0, 3.0]] * 4, ValueError,
     "QueryKeyArrows: key_vectors must have shape (4, 2) (T, 2): one 2-D key per token, got (4, 3)"),
    ("arrows", "length", 100.0, ValueError, "QueryKeyArrows: length must lie in [0, max_length=4.6], got 100.0"),
    ("softmax", "scores", [float("nan"), 1.0], ValueError,
     "SoftmaxExplorer: scores must contain only finite numbers (no nan or inf), got 1 nan and 0 inf"),
    ("softmax", "scores", [1.0], ValueError, "SoftmaxExplorer: scores must have length 2 (one per label), got 1"),
    ("softmax", "scores", [], ValueError, "SoftmaxExplorer: scores must not be empty"),
    ("softmax", "temperature", 0.0, ValueError,
     "SoftmaxExplorer: temperature must be a positive finite number, got 0.0"),
    ("patterns", "selected", "head 9", ValueError,
     "PatternViewer: selected must be one of ['head 0', 'head 1'], got 'head 9'"),
    ("value", "weights", [1.0, 0.0], ValueError,
     "ValueUpdateExplorer: weights must have length 4 (one weight per key), got 2"),
    ("value", "weights", [], ValueError, "ValueUpdateExplorer: weights must not be empty"),
    ("value", "weights", [1.0, -1.0, 0.0, 0.0], ValueError,
     "ValueUpdateExplorer: weights must be non-negative, got [1.0, -1.0, 0.0, 0.0]"),
    ("value", "points", [[0.0, 0.0]] * 3, ValueError,
     "ValueUpdateExplorer: points must have shape (4, 2) (T, 2): one 2-D embedding per token, got (3, 2)"),
    ("value", "values", [[0.0, 0.0, 0.0]] * 4, ValueError,
     "ValueUpdateExplorer: values must have shape (4, 2) (T, 2): one 2-D value per token, got (4, 3)"),
    ("value", "query", 7, ValueError, "ValueUpdateExplorer: query must lie in [0, 3] (a token index), got 7"),
    ("cost", "n_heads", -5, ValueError, "CostExplorer: n_heads must be a positive int, got -5"),
    ("cost", "n_layers", 0, ValueError, "CostExplorer: n_layers must be a positive int, got 0"),
    ("cost", "n_heads", True, TypeError, "CostExplorer: n_heads must be a positive int, got True"),
    ("cost", "bytes_per_entry", -2.0, ValueError,
     "CostExplorer: bytes_per_entry must be a positive finite number, got -2.0"),
    ("cost", "bytes_per_entry", float("inf"), ValueError,
     "CostExplorer: bytes_per_entry must be a positive finite number, got inf"),
    ("cost", "context_len", 1000, ValueError, "CostExplorer: context_len must be one of [256, 512, 1024, 2048, "
     "4096, 8192, 16384, 32768], got 1000"),
    ("stepper", "block", 6, ValueError, "OnlineSoftmaxStepper: block must be an int in [1, T=5], got 6"),
    ("stepper", "step", 4, ValueError, "OnlineSoftmaxStepper: step must be an int in [0, 3], got 4"),
    ("tiles", "T", 128, ValueError, "TileExplorer: T must stay 64 (the tile sizes and the sliders follow from "
     "it; for another T make a new TileExplorer), got 128"),
    ("tiles", "d_head", 0, ValueError, "TileExplorer: d_head must be a positive int, got 0"),
    ("tiles", "bytes_per_entry", 0.0, ValueError,
     "TileExplorer: bytes_per_entry must be a finite number > 0.0, got 0.0"),
    ("tiles", "block", 65, ValueError, "TileExplorer: block must be one of blocks [16, 24, 32, 48, 64], got 65"),
    ("tiles", "window", 65, ValueError, "TileExplorer: window must be an int in [0, T=64] (0 = none), got 65"),
    ("model", "top_k", -1, ValueError, "ModelExplorer: top_k must be a positive int, got -1"),
    ("model", "top_k", 0, ValueError, "ModelExplorer: top_k must be a positive int, got 0"),
    ("model", "layer", 2, ValueError, "ModelExplorer: layer must lie in [0, 2) (a layer of the model), got 2"),
    ("model", "head", -1, ValueError, "ModelExplorer: head must lie in [0, 2) (a head of the layer), got -1"),
    ("model", "query", 8, ValueError, "ModelExplorer: query must lie in [0, 8) (a position of the prompt, or -1 "
     "for the last), got 8"),
    ("model", "query", -2, ValueError, "ModelExplorer: query must lie in [0, 8) (a position of the prompt, or "
     "-1 for the last), got -2"),
    ("model", "lens_stage", 5, ValueError, "ModelExplorer: lens_stage must lie in [0, 5) (a stage of the "
     "residual stream: 0 is the embedding), got 5"),
    ("model", "n_new", -1, ValueError, "ModelExplorer: n_new must be a non-negative int, got -1"),
    ("model", "seed", -3, ValueError, "ModelExplorer: seed must be a non-negative int, got -3"),
    ("model", "ablated", [[2, 0]], ValueError,
     "ModelExplorer: ablated head (2, 0) does not exist; layers are 0 .. 1 and heads 0 .. 1"),
    ("model", "ablated", [[0, 0, 1]], TypeError,
     "ModelExplorer: every entry of ablated must be a (layer, head) pair of ints, got a list"),
    ("model", "temperature", 0.0, ValueError,
     "ModelExplorer: temperature must be a positive finite number, got 0.0"),
    ("model", "lens_word", "zebra", ValueError, "ModelExplorer: lens_word must be one of the model's 45 words, "
     "got 'zebra'"),
    # the weight being edited indexes the edited matrix (6, 3); one name per embedding dim
    ("attention", "edit_row", 6, ValueError, "AttentionExplorer: edit_row must lie in [0, 6) (a row of w_q: one "
     "of the d_model = 6 embedding dims), got 6"),
    ("attention", "edit_row", 99, ValueError, "AttentionExplorer: edit_row must lie in [0, 6) (a row of w_q: one "
     "of the d_model = 6 embedding dims), got 99"),
    ("attention", "edit_col", -3, ValueError, "AttentionExplorer: edit_col must lie in [0, 3) (a column of w_q: "
     "one of the d_head = 3 query/key dims), got -3"),
    ("attention", "edit_col", 3, ValueError, "AttentionExplorer: edit_col must lie in [0, 3) (a column of w_q: "
     "one of the d_head = 3 query/key dims), got 3"),
    ("attention", "edit_col", True, TypeError, "AttentionExplorer: edit_col must be an int, got True"),
    ("attention", "dim_labels", ["a", "b"], ValueError, "AttentionExplorer: dim_labels has 2 labels but 6 are "
     "needed (one per embedding dimension: d_model = 6)"),
    ("arrows", "max_length", -1.0, ValueError, "QueryKeyArrows: max_length must be a finite number > 0.0, got -1.0"),
    ("arrows", "max_length", float("inf"), ValueError,
     "QueryKeyArrows: max_length must be a finite number > 0.0, got inf"),
    ("arrows", "max_length", 3.0, ValueError, "QueryKeyArrows: max_length must be at least length="
     "3.605551275463989 (the slider must reach the query), got 3.0; to shorten both, set them together inside "
     "`with arrows.hold_trait_notifications():`"),
    ("softmax", "labels", ["a"], ValueError, "SoftmaxExplorer: labels has 1 labels but 2 are needed (one per score)"),
    ("patterns", "decimals", -1, ValueError, "PatternViewer: decimals must be an int in [0, 6], got -1"),
    ("patterns", "decimals", 7, ValueError, "PatternViewer: decimals must be an int in [0, 6], got 7"),
    ("patterns", "decimals", True, TypeError, "PatternViewer: decimals must be an int in [0, 6], got True"),
    ("patterns", "vmin", 5.0, ValueError, "PatternViewer: vmin must be below vmax (both finite), got vmin=5.0, "
     "vmax=1.0"),
    ("patterns", "vmax", 0.0, ValueError, "PatternViewer: vmin must be below vmax (both finite), got vmin=0.0, "
     "vmax=0.0"),
    ("patterns", "vmin", float("nan"), ValueError, "PatternViewer: vmin must be below vmax (both finite), got "
     "vmin=nan, vmax=1.0"),
    ("cost", "context_len", True, TypeError, "CostExplorer: context_len must be a positive int, got True"),
    ("cost", "context_lens", [1, 2], ValueError, "CostExplorer: context_lens must include context_len=2048 (the "
     "slider's position), got [1, 2]; to change both, set them together inside "
     "`with cost.hold_trait_notifications():`"),
    ("cost", "context_lens", [], ValueError, "CostExplorer: context_lens must be a non-empty increasing sequence "
     "of positive ints, got []"),
    ("cost", "context_lens", [4096, 2048], ValueError, "CostExplorer: context_lens must be a non-empty increasing "
     "sequence of positive ints, got [4096, 2048]"),
    ("cost", "context_lens", [0, 2048], ValueError,
     "CostExplorer: every entry of context_lens must be a positive int, got 0"),
    ("cost", "context_lens", [True, 2048], TypeError,
     "CostExplorer: every entry of context_lens must be a positive int, got True"),
    # scores, values and labels keep one entry per key (5)
    ("stepper", "scores", [1.0], ValueError, "OnlineSoftmaxStepper: scores must have 5 scores (one per key, like "
     "the 5 of values), got 1; to change the number of keys, set scores, values and labels together inside "
     "`with stepper.hold_trait_notifications():`"),
    ("stepper", "values", [[0.0, 1.0]] * 6, ValueError, "OnlineSoftmaxStepper: values must have 5 rows (one per "
     "key, like the 5 of scores), got 6; to change the number of keys, set scores, values and labels together "
     "inside `with stepper.hold_trait_notifications():`"),
    ("stepper", "labels", ["a", "b"], ValueError, "OnlineSoftmaxStepper: labels must have 5 labels (one per key, "
     "like the 5 of scores), got 2; to change the number of keys, set scores, values and labels together "
     "inside `with stepper.hold_trait_notifications():`"),
    ("stepper", "scores", [float("nan")] * 5, ValueError, "OnlineSoftmaxStepper: scores must contain only finite "
     "numbers (no nan or inf), got 5 nan and 0 inf"),
    ("stepper", "values", [[float("inf"), 0.0]] * 5, ValueError, "OnlineSoftmaxStepper: values must contain only "
     "finite numbers (no nan or inf), got 0 nan and 5 inf"),
    ("tiles", "blocks", [5], ValueError, "TileExplorer: blocks must include block=16 (the tile size shown), got "
     "[5]; to change both, set them together inside `with tiles.hold_trait_notifications():`"),
    ("tiles", "blocks", [16, 128], ValueError,
     "TileExplorer: blocks[...] must be an int in [1, T=64] (at most 64 tiles a side), got 128"),
    ("tiles", "blocks", [16, 0], ValueError, "TileExplorer: blocks[...] must be a positive int, got 0"),
]


@pytest.fixture(scope="module")
def made_widgets():
    """One widget of each kind: the cases below refuse every change, so the widgets are shared."""
    return {name: make() for name, make in _WIDGET_MAKERS.items()}


@pytest.mark.parametrize(("kind", "trait", "value", "exc", "message"), BAD_TRAITS,
                         ids=[f"{k}-{t}-{i}" for i, (k, t, *_) in enumerate(BAD_TRAITS)])
def test_bad_trait_values_are_refused_and_change_nothing(made_widgets, kind, trait, value, exc, message):
    w = made_widgets[kind]
    before = w.get_state()
    with pytest.raises(exc, match=rf"^{re.escape(message)}$"):
        setattr(w, trait, value)
    assert w.get_state() == before


@pytest.mark.parametrize(("kind", "update", "message"), [
    ("softmax", {"temperature": 2.0, "scores": [float("nan"), 1.0]}, "SoftmaxExplorer: scores must contain"),
    ("arrows", {"angle": 10.0, "d_head": 0}, "QueryKeyArrows: d_head must be a positive int, got 0"),
    ("cost", {"context_len": 512, "n_heads": -5}, "CostExplorer: n_heads must be a positive int, got -5"),
    ("model", {"prompt": "the fox", "top_k": -1}, "ModelExplorer: top_k must be a positive int, got -1"),
])
def test_a_bad_value_among_several_undoes_them_all(made_widgets, kind, update, message):
    """A state update as the browser sends it (several traits at once) with one bad value: refused
    as a ValueError, and the good values given with it are undone too (traitlets rolls back on the
    error, which is also a TraitError)."""
    w = made_widgets[kind]
    before = w.get_state()
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}"):
        w.set_state(update)
    assert w.get_state() == before


@pytest.mark.parametrize("make, message", [
    (lambda: _explorer(causal="no"), "AttentionExplorer: causal must be True or False, got 'no'"),
    (lambda: _explorer(causal=1), "AttentionExplorer: causal must be True or False, got 1"),
    (lambda: _explorer(causal=None), "AttentionExplorer: causal must be True or False, got None"),
    (lambda: _model_explorer(sample="no"), "ModelExplorer: sample must be True or False, got 'no'"),
    (lambda: _model_explorer(sample=0), "ModelExplorer: sample must be True or False, got 0"),
    (lambda: _arrows(causal="no", query_index=3), "QueryKeyArrows: causal must be True or False, got 'no'"),
    (lambda: W.TileExplorer(64, block=16, causal="no"), "TileExplorer: causal must be True or False, got 'no'"),
])
def test_switches_are_not_read_by_their_truth_value(make, message):
    """"no" would mean yes: a switch is True or False (a Python or numpy bool)."""
    with pytest.raises(TypeError, match=rf"^{re.escape(message)}$"):
        make()


def test_switches_take_numpy_bools():
    import numpy as np

    e = _explorer(causal=np.True_, query=2)
    assert e.causal is True and e.weights == _explorer(causal=True, query=2).weights
    assert _model_explorer(sample=np.bool_(True)).sample is True
    assert _arrows(causal=np.True_, query_index=3).causal is True
    assert W.TileExplorer(64, block=16, causal=np.False_).causal is False
    toks, pts = TOKENS, [[0, 0], [1, 2], [2, 1.5], [2.5, -0.5]]
    assert W.ValueUpdateExplorer(toks, pts, pts, causal=np.False_).causal is False


def test_online_softmax_stepper_keeps_step_in_range_when_block_grows():
    """Fewer tiles than the steps done: the step becomes the last tile (as the page does), and the
    state is that of the last tile, equal to a stepper made with that block and step."""
    st = W.OnlineSoftmaxStepper([0.1, 2.0, 3.0, 0.5, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0], block=1)
    st.step = 4
    st.block = 4  # 2 tiles
    ref = W.OnlineSoftmaxStepper([0.1, 2.0, 3.0, 0.5, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0], block=4, step=2)
    assert (st.step, st.n_tiles()) == (2, 2)
    assert (st.m, st.rescale, st.l, st.acc, st.out) == (ref.m, ref.rescale, ref.l, ref.acc, ref.out)
    torch.testing.assert_close(_t(st.out), st.compute()["softmax"])
    st.set_state({"block": 5})  # as the browser sends it
    assert (st.step, st.out) == (1, ref.out)
    st.block = 2  # more tiles: the step stays
    assert st.step == 1 and st.m == 2.0


# --------------------------------------------------------------------------- traits that must agree
# A pair (or a group) of traits that must agree is checked on each change, so one end alone cannot
# move past the other; set together inside ``hold_trait_notifications()`` they are checked at its end.


def _set_together(w, **values):
    with w.hold_trait_notifications():
        for name, value in values.items():
            setattr(w, name, value)


def test_vmin_and_vmax_change_together():
    pv = W.PatternViewer({"a": [[0.5]]}, ["x"])
    with pytest.raises(ValueError, match=r"^PatternViewer: vmin must be below vmax"):
        pv.vmin = 5.0  # alone, past vmax = 1
    _set_together(pv, vmin=5.0, vmax=10.0)
    assert (pv.vmin, pv.vmax) == (5.0, 10.0)
    _set_together(pv, vmax=-1.0, vmin=-2.0)
    assert (pv.vmin, pv.vmax) == (-2.0, -1.0)


def test_context_len_and_context_lens_change_together():
    c = W.CostExplorer()
    with pytest.raises(ValueError, match=r"^CostExplorer: context_lens must include context_len=2048"):
        c.context_lens = [1, 2]
    _set_together(c, context_lens=[1, 2], context_len=2)
    assert (c.context_lens, c.context_len, c.entries) == ([1, 2], 2, 4)
    c.set_state({"context_lens": [4, 8], "context_len": 8})  # as one update from the browser
    assert (c.context_lens, c.context_len, c.entries) == ([4, 8], 8, 64)


def test_block_and_blocks_change_together():
    t = W.TileExplorer(64, block=16)
    with pytest.raises(ValueError, match=r"^TileExplorer: blocks must include block=16"):
        t.blocks = [32, 8]
    _set_together(t, blocks=[32, 8], block=8)
    ref = W.TileExplorer(64, block=8, blocks=[8, 32])
    assert (t.blocks, t.block) == ([8, 32], 8)  # sorted, as the constructor keeps them
    assert (t.tiles_computed, t.tiles_skipped, t.tiled_traffic) == (ref.tiles_computed, ref.tiles_skipped,
                                                                    ref.tiled_traffic)


def test_length_and_max_length_change_together():
    a = _arrows()
    with pytest.raises(ValueError, match=r"^QueryKeyArrows: max_length must be at least length="):
        a.max_length = 0.5
    _set_together(a, max_length=0.5, length=0.2)
    assert (a.length, a.max_length) == (0.2, 0.5)
    torch.testing.assert_close(_t(a.weights), a.compute()["weights"])


def test_labels_and_scores_change_together():
    s = W.SoftmaxExplorer(["a", "b"], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"^SoftmaxExplorer: labels has 3 labels but 2 are needed"):
        s.labels = ["x", "y", "z"]
    _set_together(s, labels=["x", "y", "z"], scores=[0.0, 1.0, 2.0])
    assert s.weights == W.SoftmaxExplorer(["x", "y", "z"], [0.0, 1.0, 2.0]).weights


def test_stepper_keys_change_together_and_the_step_follows():
    """Fewer keys, so fewer tiles than the steps done: the step becomes the last tile, as when the
    block grows; the state equals a stepper made with those keys."""
    st = _stepper()
    st.step = 3  # 5 keys in tiles of 2: the last of 3 tiles
    with pytest.raises(ValueError, match=r"^OnlineSoftmaxStepper: scores must have 5 scores"):
        st.scores = [1.0, 5.0, 2.0]
    _set_together(st, scores=[1.0, 5.0, 2.0], values=[[1.0, 0.0], [2.0, 1.0], [3.0, 0.5]], labels=["p", "q", "r"])
    ref = W.OnlineSoftmaxStepper([1.0, 5.0, 2.0], [[1.0, 0.0], [2.0, 1.0], [3.0, 0.5]], labels=["p", "q", "r"],
                                 block=2, step=2)
    assert (st.step, st.m, st.l, st.acc, st.out) == (2, ref.m, ref.l, ref.acc, ref.out)
    _set_together(st, scores=[0.5], values=[[1.0, 1.0]], labels=["k"], block=1)
    assert (st.block, st.step, st.out) == (1, 1, [1.0, 1.0])


def test_attention_explorer_d_model_changes_with_its_names_and_edited_weight():
    e = _explorer()
    e.edit_row, e.edit_col = 5, 2
    with pytest.raises(ValueError, match=r"^AttentionExplorer: dim_labels has 2 labels but 6 are needed"):
        e.dim_labels = ["p", "q"]
    g = torch.Generator().manual_seed(3)
    x, wq, wk = (torch.randn(*shape, generator=g).tolist() for shape in ((4, 2), (2, 2), (2, 2)))
    _set_together(e, x=x, w_q=wq, w_k=wk, dim_labels=["p", "q"], edit_row=1, edit_col=0)
    assert (e.dim_labels, e.edit_row, e.edit_col) == (["p", "q"], 1, 0)
    torch.testing.assert_close(_t(e.weights), e.compute()["weights"])


_HOLD_HINT = "inside `with explorer.hold_trait_notifications():`"


@pytest.mark.parametrize(("make", "update", "message"), [
    (lambda: W.PatternViewer({"a": [[0.5]]}, ["x"]), {"vmin": 5.0, "vmax": 4.0},
     "PatternViewer: vmin must be below vmax (both finite), got vmin=5.0, vmax=4.0"),
    (lambda: W.CostExplorer(), {"context_lens": [1, 2], "context_len": 3},  # the first trait set reports
     "CostExplorer: context_lens must include context_len=3 (the slider's position), got [1, 2]; to change both, "
     "set them together inside `with cost.hold_trait_notifications():`"),
    (lambda: W.TileExplorer(64, block=16), {"blocks": [8, 32], "block": 16},
     "TileExplorer: blocks must include block=16 (the tile size shown), got [8, 32]; to change both, set them "
     "together inside `with tiles.hold_trait_notifications():`"),
    (lambda: _arrows(), {"length": 0.2, "max_length": 0.1},
     "QueryKeyArrows: length must lie in [0, max_length=0.1], got 0.2"),
    (_stepper, {"scores": [1.0, 2.0], "values": [[0.0, 1.0]] * 2},
     "OnlineSoftmaxStepper: scores must have 5 scores (one per key, like the 5 of labels), got 2; to change the "
     "number of keys, set scores, values and labels together inside `with stepper.hold_trait_notifications():`"),
    (_stepper, {"scores": [1.0], "values": [[0.0, 1.0]], "labels": ["a"]},
     "OnlineSoftmaxStepper: scores must have at least block=2 entries (keys per tile), got 1; set block with it "
     "inside `with stepper.hold_trait_notifications():`"),
    (lambda: _explorer(), {"x": [[0.0] * 2] * 4, "w_q": [[0.0] * 3] * 2, "w_k": [[0.0] * 3] * 2},
     "AttentionExplorer: w_q has 2 rows (d_model) but dim_labels names 6 embedding dims; to change d_model, set "
     f"x, w_q, w_k and dim_labels together {_HOLD_HINT}"),
    (lambda: _explorer(), {"w_q": [[0.0] * 2] * 6, "w_k": [[0.0] * 2] * 6, "edit_col": 2},
     "AttentionExplorer: w_q of shape (6, 2) has no entry (edit_row, edit_col) = (0, 2), the weight being edited; "
     f"set them with it {_HOLD_HINT}"),
    (lambda: _explorer(), {"edit_col": 3, "w_q": [[0.0] * 2] * 6, "w_k": [[0.0] * 2] * 6},  # read at the end
     "AttentionExplorer: edit_col must lie in [0, 2) (a column of w_q: one of the d_head = 2 query/key dims), "
     "got 3"),
])
def test_traits_that_must_agree_are_checked_at_the_end_of_a_hold(make, update, message):
    """Set together, a pair that still disagrees is refused at the end of the block, and every trait
    set in it goes back."""
    w = make()
    if isinstance(w, W.AttentionExplorer):
        w.edit_col = 2  # the last column of w_q (6, 3)
    before = w.get_state()
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        _set_together(w, **update)
    assert w.get_state() == before


def test_a_smaller_w_q_keeps_the_edited_weight_inside_it():
    e = _explorer()
    e.edit_row, e.edit_col = 5, 2
    message = ("AttentionExplorer: w_q of shape (6, 2) has no entry (edit_row, edit_col) = (5, 2), the weight "
               f"being edited; set them with it {_HOLD_HINT}")
    before = e.get_state()
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        _set_together(e, w_q=[[0.0] * 2] * 6, w_k=[[0.0] * 2] * 6)
    assert e.get_state() == before


# --------------------------------------------------------------------------- arguments, second round


def _bad_args_cases():
    pats = {"a": [[0.5]]}
    return [
        (lambda: W.PatternViewer(pats, ["x"], title=None), TypeError, "PatternViewer: title must be a str, got None"),
        (lambda: W.PatternViewer(pats, ["x"], caption=5), TypeError, "PatternViewer: caption must be a str, got 5"),
        (lambda: W.PatternViewer(pats, ["x"], row_name=None), TypeError,
         "PatternViewer: row_name must be a str, got None"),
        (lambda: W.PatternViewer(pats, ["x"], col_name=1), TypeError, "PatternViewer: col_name must be a str, got 1"),
        (lambda: W.PatternViewer({1: [[0.5]], "1": [[0.2]]}, ["x"]), ValueError,
         "PatternViewer: patterns' names must differ as text (the dropdown shows them as str), got the keys 1 and "
         "'1', both read '1'"),
        (lambda: W.PatternViewer(pats, ["x"], decimals=2.0), TypeError,
         "PatternViewer: decimals must be an int in [0, 6], got 2.0"),
        (lambda: W.PatternViewer(pats, ["x"], decimals=-1), ValueError,
         "PatternViewer: decimals must be an int in [0, 6], got -1"),
        (lambda: W.CostExplorer(context_len=2048.0), TypeError,
         "CostExplorer: context_len must be a positive int, got 2048.0"),
        (lambda: W.CostExplorer(context_lens=[1, 2], context_len=True), TypeError,
         "CostExplorer: context_len must be a positive int, got True"),
        (lambda: W.CostExplorer(label=None), TypeError, "CostExplorer: label must be a str, got None"),
        (lambda: W.CostExplorer(n_heads=2.0), TypeError, "CostExplorer: n_heads must be a positive int, got 2.0"),
        (lambda: W.CostExplorer(n_layers=True), TypeError, "CostExplorer: n_layers must be a positive int, got True"),
        (lambda: W.CostExplorer(context_lens=512), TypeError,
         "CostExplorer: context_lens must be a non-empty increasing sequence of positive ints, got 512"),
        (lambda: W.CostExplorer(context_lens=[256, 512.0]), TypeError,
         "CostExplorer: every entry of context_lens must be a positive int, got 512.0"),
        (lambda: W.CostExplorer().compute(-5), ValueError,
         "CostExplorer.compute: context_len must be a positive int, got -5"),
        (lambda: W.CostExplorer().compute("a"), TypeError,
         "CostExplorer.compute: context_len must be a positive int, got 'a'"),
        (lambda: _model_explorer(title=None), TypeError, "ModelExplorer: title must be a str, got None"),
        (lambda: _model_explorer(dtype=["float32"]), TypeError,
         "ModelExplorer: dtype must be 'float32' or 'float16' (a str), got a list"),
        (lambda: _model_explorer().generate_greedy(-1), ValueError,
         "ModelExplorer.generate_greedy: n must be a non-negative int, got -1"),
        (lambda: _model_explorer().generate_greedy(1.5), TypeError,
         "ModelExplorer.generate_greedy: n must be a non-negative int, got 1.5"),
        (lambda: _explorer(edit_row=1), TypeError, "AttentionExplorer: got an unexpected keyword argument "
         "'edit_row' (the explorer starts editing w_q[0][0], and initial is what it starts with); set edit_row "
         "once it exists"),
        (lambda: W.esm_source(5), TypeError, "esm_source: widget_file must be the name of a widget module in "
         "attnlib/static (a str such as 'softmax_explorer.js'), got 5"),
        (lambda: W.esm_source("bogus"), ValueError, "esm_source: widget_file must name a widget module of "
         "attnlib/static, one of ['attention_explorer.js', 'cost_explorer.js', 'model_explorer.js', "
         "'online_softmax_stepper.js', 'pattern_viewer.js', 'query_key_arrows.js', 'softmax_explorer.js', "
         "'tile_explorer.js', 'value_update_explorer.js'], got 'bogus'"),
        (lambda: W.esm_source("../widgets.css"), ValueError, "esm_source: widget_file must name a widget module of "
         "attnlib/static, one of ['attention_explorer.js', 'cost_explorer.js', 'model_explorer.js', "
         "'online_softmax_stepper.js', 'pattern_viewer.js', 'query_key_arrows.js', 'softmax_explorer.js', "
         "'tile_explorer.js', 'value_update_explorer.js'], got '../widgets.css'"),
        (lambda: W.esm_source("tile_explorer.js", "tiling.js"), TypeError, "esm_source: libs must be a list of "
         "file names, got the string 'tiling.js' (which would be read as its characters); pass ('tiling.js',)"),
        (lambda: W.esm_source("tile_explorer.js", ("tilling.js",)), ValueError, "esm_source: every file name of "
         "libs must name a pure module of attnlib/static, one of ['decoder.js', 'tiling.js', 'views.js'], got "
         "'tilling.js'"),
        (lambda: W.esm_source("tile_explorer.js", (None,)), TypeError,
         "esm_source: every file name of libs must be a str, got None"),
    ]


@pytest.mark.parametrize(("make", "exc", "message"), _bad_args_cases(),
                         ids=[f"case{i}" for i in range(len(_bad_args_cases()))])
def test_bad_arguments_are_named(make, exc, message):
    with pytest.raises(exc, match=rf"^{re.escape(message)}$"):
        make()


def test_generate_greedy_needs_a_known_word():
    m = _model_explorer()
    m.prompt = ""  # what the reader may type in the page
    with pytest.raises(ValueError, match=r"^ModelExplorer\.generate_greedy: the prompt must have a word of the "
                       r"vocabulary to continue \(an unknown word counts only with the tokenizer's unk\), got "
                       r"prompt ''$"):
        m.generate_greedy()
    m.prompt = "the fox"
    assert len(m.generate_greedy(2)) == 4


def test_cost_explorer_takes_numpy_ints_as_context_lens():
    import numpy as np

    c = W.CostExplorer(context_lens=np.array([256, 512]), context_len=np.int64(512))
    assert c.context_lens == [256, 512] and c.context_len == 512 and type(c.context_len) is int
    assert c.compute(np.int64(256))["per_head"] == 256**2


def test_esm_source_joins_the_named_files():
    esm = W.esm_source("tile_explorer.js", ["tiling.js"])  # any iterable of names
    assert esm == W.TileExplorer._esm

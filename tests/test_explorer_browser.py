"""ModelExplorer in headless Chromium, in a static page built from the widget's saved state.

The page is what a published chapter holds: the widget state as ipywidgets saves it
(``ipywidgets.embed.embed_data``, the same state myst-nb embeds; written by bench/explorer.py's
``static_page``), rendered by the book's vendored
static renderer (book/_static_widgets: require.js, anywidget's front end, embed-amd.js), served from
127.0.0.1 with every other request blocked. No kernel runs: everything the page shows comes from
the JavaScript forward pass, and the test checks it against attnlib. The last two tests open
chapters 9 and 10 of the built book, once the chapters have an explorer.
"""

from __future__ import annotations

import functools
import http.server
import math
import shutil
import sys
import threading

import pytest
import torch
from conftest import ROOT
from test_browser import _WIDGETS_FIT, CONSOLE_ALLOWED, PHONE, WIDGET_VIEW

import attnlib
from attnlib import data
from attnlib import widgets as W

sys.path.insert(0, str(ROOT / "bench"))
import explorer as explorer_bench

pytestmark = pytest.mark.browser

TOK = data.make_tokenizer()
PROMPT = "the fluffy blue creature roamed . it is"
CONFIG = attnlib.TINY.replace(vocab_size=len(TOK), context_len=32)

static_page = explorer_bench.static_page  # one page writer, shared with bench/explorer.py


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A local web server for a folder of pages; yields (folder, base url)."""
    folder = tmp_path_factory.mktemp("explorer-pages")
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the base class's signature
        pass


def _model(seed: int = 0) -> attnlib.Decoder:
    """An untrained chapter-10-shaped model with weights large enough to have opinions."""
    torch.manual_seed(seed)
    m = attnlib.Decoder(CONFIG).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in m.parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]) * 1.5)
    return m


def open_page(browser, base: str, name: str, viewport=None):
    """Open ``name`` under ``base``; returns (page, errors, blocked). Only ``base`` is reachable."""
    context = browser.new_context(viewport=viewport or {"width": 1100, "height": 900})
    page = context.new_page()
    errors, blocked = [], []

    def route(r):
        if r.request.url.startswith((base, "data:", "blob:")):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + name, wait_until="load")
    page.wait_for_selector(".attnlib-model-explorer .attnlib-top-token", timeout=20_000)
    return page, errors, blocked


def _top(widget) -> str:
    return widget.compute()["top"][0][0]


def _head_that_matters(widget) -> tuple[int, int]:
    """A head whose switching off changes the most likely next token (by attnlib)."""
    base = _top(widget)
    for layer in range(CONFIG.n_layers):
        for head in range(CONFIG.n_heads):
            widget.ablated = [[layer, head]]
            if _top(widget) != base:
                widget.ablated = []
                return layer, head
    raise AssertionError("no single head changes the prediction of this model")


def test_static_page_types_predicts_and_switches_heads_off(browser, served):
    folder, base = served
    model = _model()
    e = W.ModelExplorer(model, TOK, PROMPT, presets=["the shiny red fox slept . the fox is"])
    layer, head = _head_that_matters(e)
    static_page(e, folder / "a")
    page, errors, blocked = open_page(browser, base, "a/index.html")
    try:
        root = page.locator(".attnlib-model-explorer")
        top = page.locator(".attnlib-top-token")
        assert top.get_attribute("data-token") == _top(e)  # the saved prompt, computed in the page
        # type a prompt: the page predicts what attnlib predicts
        prompt = "the big rough green frog hid . it feels"
        page.fill("input.attnlib-prompt", prompt)
        e.prompt = prompt
        assert top.get_attribute("data-token") == _top(e)
        shown = [float(x) for x in page.locator(".attnlib-top .attnlib-bar-value").all_inner_texts()]
        assert shown == pytest.approx([p for _, p in e.compute()["top"]], abs=6e-4)
        # switch one head off: the prediction changes, to attnlib's with that head ablated
        before = top.get_attribute("data-token")
        box = page.locator(f"input.attnlib-head-toggle[data-layer='{layer}'][data-head='{head}']")
        page.fill("input.attnlib-prompt", PROMPT)
        e.prompt = PROMPT
        before = top.get_attribute("data-token")
        box.uncheck()
        e.ablated = [[layer, head]]
        assert top.get_attribute("data-token") == _top(e) != before
        assert "1 head off" in root.inner_text()
        box.check()
        assert top.get_attribute("data-token") == before
        # the pattern: token labels on both axes, the query row highlighted, pickers act
        page.select_option("select.attnlib-layer", str(layer))
        page.select_option("select.attnlib-head", str(head))
        heat = page.locator(".attnlib-model-explorer table.attnlib-heatmap")
        words = TOK.split(PROMPT)
        assert heat.locator("th.attnlib-col").all_inner_texts() == words
        assert heat.locator("th.attnlib-row").all_inner_texts() == words
        assert heat.locator("tr.attnlib-selected th").inner_text() == words[-1]  # the last query
        want = e.compute()["patterns"][layer, head, -1]
        row = heat.locator("tr.attnlib-selected td").all_inner_texts()
        assert [float(x) for x in row] == pytest.approx(want.tolist(), abs=0.051)
        page.select_option("select.attnlib-query", "2")
        assert heat.locator("tr.attnlib-selected th").inner_text() == words[2]
        # generate greedily: the tokens Decoder.generate(temperature=0) appends
        page.select_option("select.attnlib-n-new", "6")
        page.click("button.attnlib-generate")
        e.ablated = []
        want_ids = e.generate_greedy(6)[len(words):]
        assert page.locator(".attnlib-new-tokens").inner_text() == " ".join(TOK.vocab[i] for i in want_ids)
        page.select_option("select.attnlib-mode", "sample")  # seeded sampling: 6 words, the same twice
        page.click("button.attnlib-generate")
        sampled = page.locator(".attnlib-new-tokens").inner_text()
        page.click("button.attnlib-generate")
        assert page.locator(".attnlib-new-tokens").inner_text() == sampled and len(sampled.split()) == 6
        # unknown words are flagged, not silently dropped
        page.fill("input.attnlib-prompt", "the fluffy zebra is")
        assert page.locator(".attnlib-token.attnlib-unknown").all_inner_texts() == ["zebra"]
        assert page.locator(".attnlib-new-tokens").count() == 0  # the old generation is cleared
        assert "“zebra”" in page.locator(".attnlib-prompt-note").inner_text()
        e.prompt = "the fluffy zebra is"
        assert top.get_attribute("data-token") == _top(e)
        # a preset
        page.select_option("select.attnlib-preset", "the shiny red fox slept . the fox is")
        assert page.input_value("input.attnlib-prompt") == "the shiny red fox slept . the fox is"
        assert blocked == [] and [x for x in errors if not any(p.search(x) for p in CONSOLE_ALLOWED)] == []
    finally:
        page.context.close()


def test_static_page_steps_through_the_layers_with_the_logit_lens(browser, served):
    """The lens view in the static page: moving the stage slider shows each stage's reading, which
    equals attnlib.lens's (compute()); the followed word, the lens position and a head switched off
    give what attnlib gives; a click on a stage's row selects it."""
    folder, base = served
    model = _model(3)
    e = W.ModelExplorer(model, TOK, PROMPT, lens_word="blue")
    static_page(e, folder / "lens")
    page, errors, blocked = open_page(browser, base, "lens/index.html")
    try:
        lens = page.locator(".attnlib-model-explorer .attnlib-lens")
        slider = lens.locator("input.attnlib-lens-stage")
        token = lens.locator(".attnlib-lens-token")
        names = e.compute()["stages"]
        assert slider.get_attribute("max") == str(len(names) - 1) == "4"

        def shown_rows():
            cells = [r.locator("th, td").all_inner_texts() for r in lens.locator("tr[data-stage]").all()]
            return [[n, w, float(p), float(f)] for n, w, p, f in cells]

        def same(shown, rows):  # names and words exactly, the probabilities to the 3 decimals shown
            return ([r[:2] for r in shown] == [r[:2] for r in rows]
                    and [r[2:] for r in shown] == [pytest.approx(r[2:], abs=6e-4) for r in rows])

        assert same(shown_rows(), e.lens)
        readings = set()
        for stage in range(len(names)):  # move the slider through every stage
            slider.fill(str(stage))
            assert lens.locator(".attnlib-lens-stage + output").inner_text() == names[stage]
            assert token.get_attribute("data-token") == e.lens[stage][1]
            assert lens.locator("tr.attnlib-selected").get_attribute("data-stage") == str(stage)
            bars = lens.locator(".attnlib-bar-value").all_inner_texts()
            top = sorted(e.compute()["lens"][stage].tolist(), reverse=True)[: e.top_k]
            assert [float(x) for x in bars] == pytest.approx(top, abs=6e-4)
            readings.add(tuple(bars))
        assert len(readings) == len(names)  # every stage reads something else
        assert "(the model's output)" in lens.locator(".attnlib-lens-reading").inner_text()
        # the lens at another position, another followed word, and with a head off
        lens.locator("select.attnlib-lens-query").select_option("3")
        e.query = 3
        assert same(shown_rows(), e.lens)
        assert page.locator("select.attnlib-query").input_value() == "3"  # one query for both views
        lens.locator("select.attnlib-lens-word").select_option("soft")
        e.lens_word = "soft"
        assert lens.locator("th").nth(3).inner_text() == "p(soft)"
        assert same(shown_rows(), e.lens)
        before = shown_rows()
        page.locator("input.attnlib-head-toggle[data-layer='0'][data-head='1']").uncheck()
        e.ablated = [[0, 1]]
        after = shown_rows()
        assert same(after, e.lens) and after[0] == before[0] and after != before
        lens.locator("tr[data-stage='1']").click()  # a row selects its stage
        assert slider.input_value() == "1" and lens.locator("tr.attnlib-selected").get_attribute("data-stage") == "1"
        assert blocked == [] and [x for x in errors if not any(p.search(x) for p in CONSOLE_ALLOWED)] == []
    finally:
        page.context.close()


def test_static_page_fits_a_phone(browser, served):
    """At 390 px the explorer with a 32-token prompt fits: its wide pattern scrolls in its own box."""
    folder, base = served
    long = ("the soft yellow mouse ran by the river . the mouse is yellow . a spiky brown bear sang . "
            "it feels spiky . it is brown . the small cat is")
    e = W.ModelExplorer(_model(1), TOK, long)
    path = static_page(e, folder / "phone")
    # the page carries the weights at 16/3 bytes a parameter, plus the module: well under 5 MB
    n = sum(p.numel() for p in e.to_decoder().parameters())
    assert e.state_bytes() < path.stat().st_size < e.state_bytes() + 5_000
    assert e.state_bytes() < 16 / 3 * n + 100_000 < 5_000_000
    page, errors, _ = open_page(browser, base, "phone/index.html", PHONE)
    try:
        assert page.locator(WIDGET_VIEW).count() == 1
        assert page.evaluate(_WIDGETS_FIT) == []
        assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
        out = ROOT / "_build" / "screenshots"
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / "model-explorer-phone.png"), full_page=True)
        assert [x for x in errors if not any(p.search(x) for p in CONSOLE_ALLOWED)] == []
    finally:
        page.context.close()


def check_saved_explorer(page) -> None:
    """The first explorer on ``page`` shows the saved prompt and the top token that attnlib computed
    when the widget was saved (its ``top`` trait, in the page's widget state); switching off the
    head whose pattern it shows changes the prediction (the token or its probability)."""
    states = page.evaluate("""() => [...document.querySelectorAll(
        'script[type="application/vnd.jupyter.widget-state+json"]')].map(s => JSON.parse(s.textContent))""")
    saved = [m["state"] for st in states for m in st["state"].values()
             if "renderModelExplorer" in m["state"].get("_esm", "")]
    assert saved, "no ModelExplorer state in the page"
    s = saved[0]
    root = page.locator(".attnlib-model-explorer").first
    top = root.locator(".attnlib-top-token")
    assert root.locator("input.attnlib-prompt").input_value() == s["prompt"]
    assert top.get_attribute("data-token") == s["top"][0][0]  # computed by attnlib, in Python
    p = float(root.locator(".attnlib-top .attnlib-bar-value").first.inner_text())
    assert p == pytest.approx(s["top"][0][1], abs=6e-4)
    root.locator(f"input.attnlib-head-toggle[data-layer='{s['layer']}'][data-head='{s['head']}']").uncheck()
    after = float(root.locator(".attnlib-top .attnlib-bar-value").first.inner_text())
    assert (top.get_attribute("data-token"), after) != (s["top"][0][0], p)


def test_saved_prediction_check_on_a_static_page(browser, served):
    """check_saved_explorer (used on chapter 10 below) on a page of our own."""
    folder, base = served
    e = W.ModelExplorer(_model(2), TOK, PROMPT, layer=1, head=3)
    static_page(e, folder / "saved")
    page, errors, _ = open_page(browser, base, "saved/index.html")
    try:
        check_saved_explorer(page)
    finally:
        page.context.close()


def check_saved_lens(page) -> None:
    """The first explorer on ``page`` that follows a word with the logit lens: its table shows the
    ``lens`` rows attnlib computed when the widget was saved; moving the stage slider through every
    stage shows that stage's top word, and the slider's stage is the one highlighted."""
    states = page.evaluate("""() => [...document.querySelectorAll(
        'script[type="application/vnd.jupyter.widget-state+json"]')].map(s => JSON.parse(s.textContent))""")
    saved = [m["state"] for st in states for m in st["state"].values()
             if "renderModelExplorer" in m["state"].get("_esm", "") and m["state"].get("lens_word")]
    assert saved, "no ModelExplorer that follows a word with the lens in the page"
    s = saved[0]
    roots = page.locator(".attnlib-model-explorer")
    root = next(roots.nth(i) for i in range(roots.count())
                if roots.nth(i).locator("input.attnlib-prompt").input_value() == s["prompt"])
    lens = root.locator(".attnlib-lens")
    rows = [r.locator("th, td").all_inner_texts() for r in lens.locator("tr[data-stage]").all()]
    assert [r[:2] for r in rows] == [r[:2] for r in s["lens"]]
    for got, want in zip(rows, s["lens"], strict=True):
        assert [float(x) for x in got[2:]] == pytest.approx(want[2:], abs=6e-4)
    slider = lens.locator("input.attnlib-lens-stage")
    for stage, want in enumerate(s["lens"]):
        slider.fill(str(stage))
        assert lens.locator(".attnlib-lens-token").get_attribute("data-token") == want[1]
        assert lens.locator("tr.attnlib-selected").get_attribute("data-stage") == str(stage)


def test_saved_lens_check_on_a_static_page(browser, served):
    """check_saved_lens (used on chapter 9 below) on a page of our own."""
    folder, base = served
    e = W.ModelExplorer(_model(4), TOK, PROMPT, lens_word="blue", lens_stage=2)
    static_page(e, folder / "saved-lens")
    page, errors, _ = open_page(browser, base, "saved-lens/index.html")
    try:
        check_saved_lens(page)
    finally:
        page.context.close()


def test_chapter_9_saved_explorer_steps_through_the_layers(browser, served):
    """Chapter 9's explorer as the executed notebook saved it (the widget state myst-nb embeds in
    the page), in a static page of its own: no book build needed."""
    import json

    from ipywidgets.embed import escape_script

    folder, base = served
    nb = json.loads((ROOT / "notebooks" / "09_decoder.ipynb").read_text(encoding="utf-8"))
    views = [o["data"]["application/vnd.jupyter.widget-view+json"] for c in nb["cells"]
             if c["cell_type"] == "code" for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    state = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]
    assert len(views) == 1 and "renderModelExplorer" in state["state"][views[0]["model_id"]]["state"]["_esm"]
    page_dir = folder / "chapter9"
    page_dir.mkdir()
    shutil.copytree(ROOT / "book" / "_static_widgets" / "widgets", page_dir / "widgets")
    (page_dir / "index.html").write_text(explorer_bench.PAGE % {
        "view": escape_script(json.dumps(views[0])), "state": escape_script(json.dumps(state))}, encoding="utf-8")
    page, errors, blocked = open_page(browser, base, "chapter9/index.html")
    try:
        check_saved_lens(page)
        assert blocked == [] and [x for x in errors if not any(p.search(x) for p in CONSOLE_ALLOWED)] == []
    finally:
        page.context.close()


def test_chapter_9_lens_in_the_built_book(browser, book_url):
    """In the built chapter 9: the trained model's explorer shows the logit lens attnlib computed
    when the chapter executed, and the stage slider steps through the layers."""
    html = (ROOT / "_build" / "html" / "notebooks" / "09_decoder.html").read_text(encoding="utf-8")
    if "renderModelExplorer" not in html:
        pytest.skip("chapter 9 has no model explorer yet")
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors = []
    try:
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith((book_url, "data:", "blob:"))
                   else r.abort())
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(book_url + "notebooks/09_decoder.html", wait_until="load")
        page.wait_for_selector(".attnlib-model-explorer .attnlib-lens-token", timeout=30_000)
        check_saved_lens(page)
        assert [x for x in errors if not any(p.search(x) for p in CONSOLE_ALLOWED)] == []
    finally:
        context.close()


def test_chapter_10_explorer_in_the_built_book(browser, book_url):
    """In the built chapter 10: the shown top token equals the one attnlib computed when the chapter
    executed (saved with the widget state); switching the pattern's head (the colour head the
    chapter picks) off changes the prediction."""
    html = (ROOT / "_build" / "html" / "notebooks" / "10_training.html").read_text(encoding="utf-8")
    if "renderModelExplorer" not in html:
        pytest.skip("chapter 10 has no model explorer yet")
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    try:
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith((book_url, "data:", "blob:"))
                   else r.abort())
        page.goto(book_url + "notebooks/10_training.html", wait_until="load")
        page.wait_for_selector(".attnlib-model-explorer .attnlib-top-token", timeout=30_000)
        check_saved_explorer(page)
    finally:
        context.close()

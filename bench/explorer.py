"""ModelExplorer in headless Chromium: forward-pass latency, state size, page size.

Trains chapter 10's model (the CPU recipe of notebooks/10_training.ipynb: attnlib.TINY with the
adjective language's 45 words and a context of 32, AdamW at 2e-2, stopped once the question words
are answered; about 700 steps, 20-60 s on one thread), builds the explorer over it, writes a static
page from its saved widget state (as a published chapter holds it, rendered by the book's vendored
widget renderer) and opens it in Debian's Chromium, offline. Then it measures, in the page:

  forward    the JavaScript forward pass (attnlib/static/decoder.js) over a 32-token prompt: the
             median (and min, max) of --runs calls after --warmup calls, timed with performance.now();
  redraw     typing that prompt into the text box: the input event, the forward pass and the redraw
             of the next-token bars, the 32 x 32 pattern and the head grid (median of --runs);

and reports the bytes of widget state per parameter (float32 and float16), the page's size, and
the adjective-head demonstration: the prediction after "the fluffy blue creature roamed . it is"
with every head on and with the chapter's colour head switched off.

    python bench/explorer.py                 # prints a markdown section for bench/RESULTS.md
    python bench/explorer.py --untrained     # a random model: latency and sizes only, seconds
"""

from __future__ import annotations

import argparse
import datetime
import functools
import http.server
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

PROMPT = "the fluffy blue creature roamed . it is"
LONG = ("the soft yellow mouse ran by the river . the mouse is yellow . a spiky brown bear sang . "
        "it feels spiky . it is brown . the small cat is")  # 32 words
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>explorer</title><link rel="icon" href="data:,">
<script src="widgets/require.js"></script>
<script src="widgets/anywidget-local.js"></script>
<script src="widgets/embed-amd.js"></script>
</head><body><main style="max-width: 46rem; margin: 0 auto; padding: 0 0.5rem">
<div class="output"><script type="application/vnd.jupyter.widget-view+json">%(view)s</script></div>
</main>
<script type="application/vnd.jupyter.widget-state+json">%(state)s</script>
</body></html>"""


def static_page(widget, folder: Path) -> Path:
    """Write folder/index.html (the widget's saved state and view, as ipywidgets saves them) next to
    a copy of the book's vendored renderer (folder/widgets/). Returns the page's path."""
    from ipywidgets.embed import dependency_state, embed_data, escape_script

    # only this widget and the widgets it holds (embed_data would otherwise save every live widget)
    saved = embed_data(views=[widget], drop_defaults=False,
                       state=dependency_state([widget], drop_defaults=False))
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "book" / "_static_widgets" / "widgets", folder / "widgets", dirs_exist_ok=True)
    page = folder / "index.html"
    page.write_text(PAGE % {"view": escape_script(json.dumps(saved["view_specs"][0])),
                            "state": escape_script(json.dumps(saved["manager_state"]))}, encoding="utf-8")
    return page


def train_chapter_model():
    """Chapter 10's CPU recipe (seed 0), as scripts/train_checkpoint.py runs it (the model attnlib
    ships as its "adjective" checkpoint). Returns (model, tokenizer, steps, dataset)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import train_checkpoint as recipe

    ds = recipe.dataset()
    model, history = recipe.train_adjective_model(0, ds)
    return model, ds.tokenizer, history.steps[-1] + 1, ds


def colour_head(model, ds) -> tuple[int, int, float]:
    """The head that looks most at the colour adjective from `is` (chapter 10's measure)."""
    import torch

    from attnlib import data, record_patterns

    x_val, pairs = ds.windows("val", context_len=32)
    with torch.no_grad(), record_patterns(model) as w:
        model(x_val)
    m = data.adjective_mass(w, pairs[pairs[:, 3] == data.KINDS.index("colour")])
    layer, head = divmod(int(m.argmax()), m.shape[1])
    return layer, head, float(m[layer, head])


_MEASURE = """async ([esm, state, ids, warmup, runs]) => {
    const url = URL.createObjectURL(new Blob([esm], {type: "text/javascript"}));
    const M = await import(url);
    const net = M.buildModel(state.config, state.weights);
    for (let i = 0; i < warmup; i++) M.forward(net, ids, {ablated: []});
    const times = [];
    for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        M.forward(net, ids, {ablated: []});
        times.push(performance.now() - t0);
    }
    return times;
}"""

_REDRAW = """([a, b, runs]) => {
    const input = document.querySelector('.attnlib-model-explorer input.attnlib-prompt');
    const times = [];
    for (let i = 0; i < runs; i++) {
        input.value = i % 2 ? a : b;
        const t0 = performance.now();
        input.dispatchEvent(new Event('input', {bubbles: true}));  // set, forward pass, redraw
        times.push(performance.now() - t0);
    }
    return times;
}"""


def measure(widget, ids, warmup: int, runs: int) -> dict:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        page_path = static_page(widget, folder)
        handler = functools.partial(_Quiet, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}/"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                version = browser.version
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                page.route("**/*", lambda r: r.continue_() if r.request.url.startswith((base, "data:", "blob:"))
                           else r.abort())
                t0 = time.perf_counter()
                page.goto(base + "index.html", wait_until="load")
                page.wait_for_selector(".attnlib-model-explorer .attnlib-top-token", timeout=60_000)
                load_s = time.perf_counter() - t0
                shown = page.locator(".attnlib-top-token").get_attribute("data-token")
                state = {"config": widget.config, "weights": widget.weights}
                fwd = page.evaluate(_MEASURE, [widget._esm, state, ids, warmup, runs])
                redraw = page.evaluate(_REDRAW, [LONG, LONG + " blue", runs])
                browser.close()
        finally:
            server.shutdown()
            server.server_close()
        page_bytes = page_path.stat().st_size
        renderer_bytes = sum(p.stat().st_size for p in (folder / "widgets").iterdir())
    return {"forward": fwd, "redraw": redraw, "page_bytes": page_bytes, "renderer_bytes": renderer_bytes,
            "load_s": load_s, "shown": shown, "chromium": version}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the base class's signature
        pass


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--untrained", action="store_true", help="a random model (no training)")
    ap.add_argument("--runs", type=int, default=51)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args(argv)

    import torch
    from _machine import cpu_name

    import attnlib
    from attnlib import data
    from attnlib import widgets as W

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if args.untrained:
        torch.manual_seed(0)
        tok = data.make_tokenizer()
        model, steps, ds = attnlib.Decoder(attnlib.TINY.replace(vocab_size=len(tok), context_len=32)).eval(), 0, None
    else:
        model, tok, steps, ds = train_chapter_model()
    train_s = time.perf_counter() - t0
    layer, head, mass = colour_head(model, ds) if ds is not None else (0, 0, float("nan"))
    n = sum(p.numel() for p in model.parameters())
    e = W.ModelExplorer(model, tok, PROMPT, layer=layer, head=head)
    half = W.ModelExplorer(model, tok, PROMPT, dtype="float16")
    before = e.compute()["top"][0]
    e.ablated = [[layer, head]]
    after = e.compute()["top"][0]
    e.ablated = []
    ids = tok.encode(LONG)
    assert len(ids) == 32
    r = measure(e, ids, args.warmup, args.runs)
    assert r["shown"] == before[0], (r["shown"], before)
    f, d = r["forward"], r["redraw"]
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    print("## Model explorer\n")
    print("`python bench/explorer.py`" + (" --untrained" if args.untrained else "") + ": chapter 10's model "
          f"({'untrained' if args.untrained else f'trained {steps} steps in {train_s:.0f} s'}), "
          f"{n:,} parameters, in a static page opened by headless Chromium {r['chromium']} "
          f"(`attnlib.widgets.ModelExplorer`, JavaScript forward pass, no kernel).\n")
    print("| measure | value |\n|---|---:|")
    print(f"| forward pass, 32 tokens: median (min-max) of {len(f)} | {statistics.median(f):.2f} ms "
          f"({min(f):.2f}-{max(f):.2f}) |")
    print(f"| typing a 32-token prompt (forward + redraw): median of {len(d)} | {statistics.median(d):.2f} ms |")
    for name, x in (("float32", e), ("float16", half)):
        print(f"| widget state, {name}: without / with its JS and CSS module | {x.state_bytes(module=False):,} B "
              f"({x.state_bytes(module=False) / n:.2f} B per parameter) / {x.state_bytes():,} B |")
    print(f"| page with the explorer (its HTML, state included) | {r['page_bytes'] / 2**20:.2f} MiB |")
    print(f"| vendored widget renderer (once for the whole book) | {r['renderer_bytes'] / 2**20:.2f} MiB |")
    print(f"| page load until the prediction shows | {r['load_s']:.1f} s |")
    if not args.untrained:
        print(f"| \"{PROMPT}\" -> | {before[0]} ({before[1]:.3f}) |")
        print(f"| ... with the colour head (layer {layer}, head {head}; {mass:.2f} of its attention on the "
              f"colour) off -> | {after[0]} ({after[1]:.3f}) |")
    print(f"\n**Machine**: {cpu_name()}, Python {platform.python_version()}, torch {torch.__version__}, "
          f"attnlib {attnlib.__version__} at commit {commit}. **Date**: "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Full-page screenshots of built chapters, on a desktop and on a phone (``make chapter`` ends here).

    python scripts/screenshot.py 03_softmax_scaling            # one chapter
    python scripts/screenshot.py 03_softmax_scaling 10_training

Serves ``_build/html`` on 127.0.0.1 (build it first: ``make book``), opens each chapter's page in
headless Debian Chromium (``/usr/bin/chromium``, through Playwright) with every request outside
127.0.0.1 blocked, waits until its widgets have drawn, and writes
``_build/screenshots/<chapter>-desktop.png`` (1280 px wide) and ``<chapter>-phone.png`` (390 px,
a phone's width, touch and mobile layout). Prints the paths; look at them before you commit.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
OUT = ROOT / "_build" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
              "device_scale_factor": 2},
}
WIDGET_VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]'


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the base class's signature
        pass


def shoot(chapters: list[str], html: Path = HTML, out: Path = OUT) -> list[Path]:
    from playwright.sync_api import sync_playwright

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(html)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
            for chapter in chapters:
                for kind, options in VIEWPORTS.items():
                    context = browser.new_context(**options)
                    page = context.new_page()
                    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(base) else r.abort())
                    response = page.goto(f"{base}notebooks/{chapter}.html", wait_until="load")
                    if response is None or response.status != 200:
                        raise SystemExit(f"screenshot: notebooks/{chapter}.html is not in the built book "
                                         f"(HTTP {response.status if response else '?'}): is it in _toc.yml?")
                    page.wait_for_load_state("networkidle")
                    if page.locator(WIDGET_VIEW).count():
                        page.wait_for_function(
                            """sel => [...document.querySelectorAll(sel)].every(s =>
                                   [...s.parentElement.children].some(c => c !== s && c.tagName !== 'SCRIPT'
                                                                       && c.innerHTML.trim() !== ''))""",
                            arg=WIDGET_VIEW, timeout=15000)
                    page.wait_for_timeout(300)
                    path = out / f"{chapter}-{kind}.png"
                    page.screenshot(path=str(path), full_page=True)
                    written.append(path)
                    context.close()
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="+", help="chapter names as in notebooks/, without .ipynb")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"screenshot: {CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)",
              file=sys.stderr)
        return 1
    if not (HTML / "index.html").exists():
        print("screenshot: no built book in _build/html: run `make book` first", file=sys.stderr)
        return 1
    for path in shoot([Path(c).stem for c in args.chapters]):
        print(f"screenshot: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

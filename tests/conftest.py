"""Shared fixtures: the repository root, the book built once per session, and headless Chromium.

* ``built_book`` builds the book once (``jupyter-book build . -W -n --keep-going``) into
  ``_build/html`` and returns a :class:`BuiltBook` (its html folder, exit status and log). Set
  ``ATTN_REUSE_BUILD=1`` to reuse an existing ``_build/html`` while iterating on the browser tests;
  never set it in CI (``.ci/run`` does not).
* ``book_url`` serves ``_build/html`` on 127.0.0.1 with a background ``http.server`` thread.
* ``browser`` is Debian's Chromium driven by Playwright. It is skipped with a message when
  ``/usr/bin/chromium`` is absent on a developer's machine and FAILS when ``CI`` is set.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class BuiltBook:
    html: Path
    returncode: int
    log: str
    seconds: float


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def _jupyter_book() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "jupyter_book"]


@pytest.fixture(scope="session")
def built_book() -> BuiltBook:
    """Build the book once per test session (notebooks execute through the jupyter-cache)."""
    if os.environ.get("ATTN_REUSE_BUILD") == "1" and (HTML / "index.html").exists():
        return BuiltBook(HTML, 0, "(reused an existing build: ATTN_REUSE_BUILD=1)", 0.0)
    start = time.perf_counter()
    proc = subprocess.run(
        [*_jupyter_book(), "build", ".", "-W", "-n", "--keep-going"],
        cwd=ROOT, capture_output=True, text=True,
    )
    return BuiltBook(HTML, proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start)


@pytest.fixture(scope="session")
def book_html(built_book: BuiltBook) -> Path:
    """The built html folder; fails (rather than testing stale pages) when the build failed."""
    if built_book.returncode != 0:
        pytest.fail("the book did not build; see test_book.py::test_book_builds_without_warnings", pytrace=False)
    return built_book.html


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="session")
def book_url(book_html: Path):
    """Base URL (ending in '/') of a local web server for the built book."""
    handler = functools.partial(_QuietHandler, directory=str(book_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium through Playwright (no browser download)."""
    if not CHROMIUM.exists():
        message = (f"{CHROMIUM} not found: install Debian's chromium (`apt-get install -y chromium`) "
                   "to run the browser tests")
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the browser tests may not be skipped: {message}", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()

"""Shared fixtures: the repository root, the book built once, and headless Chromium.

* ``built_book`` is the book built by ``scripts/build_book.py``, the same script (and the same
  record, ``_build/book-build.json`` and ``.log``) as ``make book``: when no input changed since the
  last build, nothing is built, so ``make book`` then ``make test`` builds once. It returns a
  :class:`BuiltBook` (its html folder, exit status and log). Set ``ATTN_REUSE_BUILD=1`` to reuse an
  existing ``_build/html`` even when it is stale, while iterating on the browser tests; never set it
  in CI (``.ci/run`` does not).
* ``book_url`` serves ``_build/html`` on 127.0.0.1 with a background ``http.server`` thread.
* ``browser`` is Debian's Chromium driven by Playwright. It is skipped with a message when
  ``/usr/bin/chromium`` is absent on a developer's machine and FAILS when ``CI`` is set.

Every test that uses the built book (``built_book``, ``book_html``, ``book_url``) is marked ``slow``
here, so ``pytest -m "not slow"`` (``make pytest-fast``) never builds the book.
"""

from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
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


# Fixtures that need the built book; a test using any of them is marked `slow`.
BOOK_FIXTURES = {"built_book", "book_html", "book_url"}


def pytest_configure(config):
    for line in ("slow: builds the book or executes notebooks",
                 "browser: drives headless Chromium through Playwright",
                 "gpu: needs a CUDA device (skipped without one)"):
        config.addinivalue_line("markers", line)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if BOOK_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _build_book_module():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_book
    finally:
        sys.path.pop(0)
    return build_book


@pytest.fixture(scope="session")
def built_book() -> BuiltBook:
    """The book as ``make book`` builds it; built now only when an input changed since the last build."""
    if os.environ.get("ATTN_REUSE_BUILD") == "1" and (HTML / "index.html").exists():
        return BuiltBook(HTML, 0, "(reused an existing build: ATTN_REUSE_BUILD=1)", 0.0)
    result = _build_book_module().build(ROOT, quiet=True)
    return BuiltBook(result.html, result.returncode, result.log, result.seconds)


@pytest.fixture(scope="session")
def book_html(built_book: BuiltBook) -> Path:
    """The built html folder; fails (rather than testing stale pages) when the build failed."""
    if built_book.returncode != 0:
        pytest.fail("the book did not build; see test_book.py::test_book_builds_without_warnings", pytrace=False)
    return built_book.html


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the base class's signature
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


@pytest.fixture(autouse=True)
def _unwrapped_verdicts(request, monkeypatch):
    """The checker tests match phrases inside verdicts, so they see each verdict on one line.

    In a notebook a verdict wraps at the page's 85 columns; tests/test_checks.py checks that.
    """
    if request.node.path.name.startswith("test_checks"):
        from attnlib.checks import _core

        monkeypatch.setattr(_core, "LINE_WIDTH", 0)

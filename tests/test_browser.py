"""The built book in headless Chromium, with every request outside 127.0.0.1 blocked.

For every page: it loads with no console error beyond the allow-list below and asks no third-party
server for anything; every widget renders; on every page with a slider, moving each slider changes
what its widget shows; no local resource answers 404; each chapter's Colab link points at its own
notebook. On a phone-sized screen (PHONE, 390 px wide) no page scrolls sideways: whatever is wider
than the screen (a code block, a wide table, a widget's grid) scrolls inside its own box. Needs Debian's chromium (`apt-get install -y chromium`); see conftest.py for skipping.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import HTML, ROOT

pytestmark = pytest.mark.browser

# Console errors that are known, harmless and not ours. Everything else fails the test.
CONSOLE_ALLOWED = [
    # pydata-sphinx-theme reads the colour mode from localStorage; a fresh profile has none, so it
    # logs this as an error and falls back to "auto".
    re.compile(r"^Got invalid theme mode"),
    # sphinx-thebe's script declares THEBE_JS_URL with `const` and is included twice by
    # jupyter-book; the second declaration throws. Thebe (live code on the page) is switched off.
    re.compile(r"Identifier 'THEBE_JS_URL' has already been declared"),
]

WIDGET_VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]'
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}  # an iPhone 12-15 in portrait, CSS pixels


def _pages() -> list[str]:
    """Every page of the book, from _toc.yml (known before the build runs), plus Sphinx's own."""
    from test_book import toc_files

    return ["index.html", "search.html", "genindex.html"] + [
        f"{Path(entry).with_suffix('').as_posix() if entry.endswith(('.md', '.ipynb')) else entry}.html"
        for entry in toc_files()
    ]


def _chapters() -> list[str]:
    return [p.stem for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]


class Visit:
    """One page load: console errors, page errors, blocked third-party requests, failed responses."""

    def __init__(self, browser, base: str, path: str, viewport: dict | None = None):
        self.context = browser.new_context(viewport=viewport or DESKTOP)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.failed: list[str] = []

        def route(r):
            if r.request.url.startswith(base) or r.request.url.startswith(("data:", "blob:")):
                r.continue_()
            else:
                self.blocked.append(r.request.url)
                r.abort()

        self.page.route("**/*", route)
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.status} {r.url}"))
        response = self.page.goto(base + path, wait_until="load")
        self.status = response.status if response else 0
        self.page.wait_for_load_state("networkidle")
        self.wait_for_widgets()

    def wait_for_widgets(self, timeout_ms: int = 15000):
        n = self.page.locator(WIDGET_VIEW).count()
        if n:
            # the renderer inserts each view next to its <script> tag
            self.page.wait_for_function(
                """sel => [...document.querySelectorAll(sel)].every(s =>
                       [...s.parentElement.children].some(c => c !== s && c.tagName !== 'SCRIPT'
                                                           && c.innerHTML.trim() !== ''))""",
                arg=WIDGET_VIEW, timeout=timeout_ms)
            self.page.wait_for_timeout(300)  # let the widgets draw

    def unexpected_errors(self) -> list[str]:
        """Console errors not on the allow-list. A 404 shows up as a console error too."""
        return [e for e in self.errors if not any(p.search(e) for p in CONSOLE_ALLOWED)]

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser, book_url):
    opened = []

    def open_page(path: str, viewport: dict | None = None) -> Visit:
        v = Visit(browser, book_url, path, viewport)
        opened.append(v)
        if v.status != 200:
            pytest.fail(f"{path}: HTTP {v.status} (is the page in _toc.yml and was the book built?)",
                        pytrace=False)
        return v

    yield open_page
    for v in opened:
        v.close()


_SNAPSHOT = """root => JSON.stringify({
    text: root.innerText,
    svg: [...root.querySelectorAll('svg')].map(s => s.outerHTML),
    canvas: [...root.querySelectorAll('canvas')].map(c => { try { return c.toDataURL(); } catch (e) { return ''; } }),
})"""

_EMPTY_VIEWS = """sel => [...document.querySelectorAll(sel)].map((s, i) => {
    const out = [...s.parentElement.children].filter(c => c !== s && c.tagName !== 'SCRIPT');
    const boxes = out.map(c => c.getBoundingClientRect());
    const ok = out.some(c => c.innerHTML.trim() !== '') && boxes.some(b => b.width > 0 && b.height > 0);
    return ok ? null : i; }).filter(i => i !== null)"""


def _check_loads_cleanly(v: Visit) -> list[str]:
    problems = []
    if v.blocked:
        problems.append(f"asked third-party servers for {v.blocked}")
    if v.failed:
        problems.append(f"failed requests: {v.failed}")
    if not v.page.title():
        problems.append("no title")
    return problems


def _check_widgets_render(v: Visit) -> list[str]:
    views = v.page.locator(WIDGET_VIEW).count()
    if not views:
        return []
    problems = []
    empty = v.page.evaluate(_EMPTY_VIEWS, WIDGET_VIEW)
    if empty:
        problems.append(f"widget views {empty} (of {views}) rendered nothing")
    ours = v.page.locator(".attnlib-widget")
    for i in range(ours.count()):
        if not (ours.nth(i).inner_text().strip() or ours.nth(i).locator("svg, canvas").count()):
            problems.append(f".attnlib-widget #{i} is empty")
    return problems


def _check_sliders_act(v: Visit) -> list[str]:
    """Move every slider of every attnlib widget to its far end; the widget must show something else."""
    sliders = v.page.locator(".attnlib-widget input[type=range]")
    dead = []
    for i in range(sliders.count()):
        slider = sliders.nth(i)
        slider.scroll_into_view_if_needed()
        root = slider.locator(
            "xpath=ancestor::*[contains(concat(' ', normalize-space(@class), ' '), ' attnlib-widget ')][1]")
        before = root.evaluate(_SNAPSHOT)
        lo, hi = (float(slider.get_attribute(a) or d) for a, d in (("min", "0"), ("max", "100")))
        value = float(slider.input_value())
        target = lo if abs(value - lo) > abs(hi - value) else hi
        slider.fill(repr(target))  # sets the value and fires `input` and `change`, as a drag would
        v.page.wait_for_timeout(150)
        if root.evaluate(_SNAPSHOT) == before:
            dead.append(f"slider #{i} (class {slider.get_attribute('class')!r}) moved {value} -> {target}")
    return [f"moving these sliders changed nothing: {dead}"] if dead else []


@pytest.mark.parametrize("path", _pages())
def test_page(visit, path):
    """Loads offline with no unexpected console error; every widget renders; every slider acts."""
    v = visit(path)
    problems = _check_loads_cleanly(v) + _check_widgets_render(v) + _check_sliders_act(v)
    if v.unexpected_errors():
        problems.append(f"console errors: {v.unexpected_errors()}")
    assert not problems, f"{path}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("chapter", _chapters())
def test_chapter_page(visit, chapter):
    """The Colab link opens this chapter's notebook; every solution stays folded until opened."""
    from test_book import CONFIG, colab_url

    v = visit(f"notebooks/{chapter}.html")
    problems = []
    hrefs = v.page.eval_on_selector_all('a[href*="colab.research.google.com"]', "as => as.map(a => a.href)")
    expected = colab_url(ROOT / "notebooks" / f"{chapter}.ipynb")
    assert "/github" + urlsplit(CONFIG["repository"]["url"]).path.rstrip("/") + "/blob/" in expected
    if not hrefs or set(hrefs) != {expected}:
        problems.append(f"Colab links {hrefs}, expected {expected}")
    solutions = v.page.locator("div.solution")
    for i in range(solutions.count()):
        sol = solutions.nth(i)
        body = sol.locator(":scope > :not(.admonition-title)").first
        if body.is_visible():
            problems.append(f"solution {sol.get_attribute('id')} is visible before it is opened "
                            "(give it `:class: dropdown`)")
            continue
        sol.locator("button.toggle-button").first.click()
        try:
            body.wait_for(state="visible", timeout=3000)
        except Exception:  # reported below
            problems.append(f"solution {sol.get_attribute('id')} does not open when clicked")
    assert not problems, f"{chapter}:\n  " + "\n  ".join(problems)


def test_screenshot_of_the_first_chapter(visit, tmp_path_factory):
    """Leaves a full-page screenshot of chapter 0 in _build/screenshots/ for people to look at."""
    chapters = _chapters()
    if not chapters:
        pytest.skip("no chapters yet")
    v = visit(f"notebooks/{chapters[0]}.html")
    out = Path(HTML).parent / "screenshots"
    out.mkdir(exist_ok=True)
    v.page.screenshot(path=str(out / f"{chapters[0]}.png"), full_page=True)
    assert (out / f"{chapters[0]}.png").stat().st_size > 10_000


# Elements whose box reaches past the right edge of the screen, and that no ancestor lets scroll
# (overflow-x auto or scroll): they make the page itself scroll sideways, or are cut off. Hidden
# and fixed-position elements (the theme's off-canvas drawers) do not count.
_OVERFLOW = """() => {
    const vw = document.documentElement.clientWidth;
    const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
        + [...el.classList].slice(0, 2).map(c => '.' + c).join('');
    const scroller = el => {
        for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
            const o = getComputedStyle(a).overflowX;
            if (o === 'auto' || o === 'scroll') return a;
        }
        return null;
    };
    const offscreen = el => {  // fixed drawers, and clipped screen-reader text (MathJax's MathML)
        for (let a = el; a; a = a.parentElement) {
            const st = getComputedStyle(a);
            if (st.position === 'fixed' || (st.position === 'absolute' && st.clip !== 'auto')) return true;
        }
        return false;
    };
    const wide = [];
    for (const el of document.body.querySelectorAll('*')) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.height === 0 || r.right <= vw + 1) continue;
        const st = getComputedStyle(el);
        if (st.visibility === 'hidden' || st.display === 'none' || offscreen(el)) continue;
        const box = scroller(el);
        if (box && box.getBoundingClientRect().right <= vw + 1) continue;
        if (wide.some(w => w.el.contains(el))) continue;  // report the outermost only
        wide.push({el, text: `${name(el)} reaches ${Math.round(r.right)} px`});
    }
    return {vw, scrollWidth: document.scrollingElement.scrollWidth, wide: wide.map(w => w.text)};
}"""

# Every widget fits the screen, or scrolls inside its own box: nothing of it reaches past its
# root's right edge unless a box inside the widget scrolls.
_WIDGETS_FIT = """() => {
    const vw = document.documentElement.clientWidth;
    const bad = [];
    const roots = [...document.querySelectorAll('.attnlib-widget, .jupyter-widgets.widget-container')];
    roots.forEach((root, i) => {
        const rr = root.getBoundingClientRect();
        if (rr.width === 0) return;
        if (rr.right > vw + 1) { bad.push(`widget #${i} is ${Math.round(rr.width)} px wide`); return; }
        for (const el of root.querySelectorAll('*')) {
            const r = el.getBoundingClientRect();
            if (r.width === 0 || r.right <= rr.right + 1) continue;
            let ok = false;
            for (let a = el.parentElement; a && a !== root.parentElement; a = a.parentElement) {
                const o = getComputedStyle(a).overflowX;
                if (o === 'auto' || o === 'scroll') { ok = true; break; }
            }
            if (!ok) { bad.push(`widget #${i}: ${el.tagName.toLowerCase()}.${el.className} spills out`); break; }
        }
    });
    return bad;
}"""


# The notebooks keep every code and output line within PAGE_WIDTH characters (tests/test_pages.py);
# the column must hold that many at every desktop width, from a small laptop (992 px, both
# sidebars shown) to a wide screen. book.css shrinks the code font to make it so.
DESKTOP_WIDTHS = [992, 1024, 1280, 1366, 1440, 1920]

# How many characters of a code cell's font fit its column without scrolling: a probe block with
# the cell's own classes, filled with ever longer lines of zeros.
_CHARS_THAT_FIT = """() => {
    const cell = document.querySelector('div.cell_input');
    if (!cell) return null;
    const box = document.createElement('div');
    box.className = 'highlight';
    const pre = document.createElement('pre');
    box.appendChild(pre);
    cell.appendChild(box);
    let n = 40;
    while (n < 400) {
        pre.textContent = '0'.repeat(n + 1);
        if (pre.scrollWidth > pre.clientWidth) break;
        n += 1;
    }
    box.remove();
    return n;
}"""


@pytest.mark.parametrize("width", DESKTOP_WIDTHS)
def test_code_column_holds_a_page_line(visit, width):
    """At every desktop width a code cell shows PAGE_WIDTH characters without scrolling."""
    from test_pages import PAGE_WIDTH

    chapters = _chapters()
    if not chapters:
        pytest.skip("no chapters yet")
    v = visit(f"notebooks/{chapters[0]}.html", {"width": width, "height": 900})
    fits = v.page.evaluate(_CHARS_THAT_FIT)
    assert fits is not None, f"{chapters[0]} has no code cell to measure"
    assert fits >= PAGE_WIDTH, (f"at {width} px a code cell holds {fits} characters, fewer than the "
                                f"{PAGE_WIDTH} the notebooks may use: see book/_static_widgets/book.css")


# Code and output blocks, and display equations, of a chapter that scroll sideways (or are cut
# off) at the default desktop width: the longest line of each block, the start of each equation.
_SCROLLING = """() => {
    const wide = el => el.scrollWidth > el.clientWidth + 1;
    const code = [...document.querySelectorAll('div.cell div.highlight > pre')].filter(wide)
        .map(pre => pre.textContent.split('\\n').reduce((a, b) => (b.length > a.length ? b : a), ''));
    const math = [...document.querySelectorAll('mjx-container[display="true"]')]
        .filter(m => wide(m) || m.firstElementChild.getBoundingClientRect().width
                               > m.getBoundingClientRect().width + 1)
        .map(m => m.textContent.slice(0, 60));
    return {code, math};
}"""


@pytest.mark.parametrize("chapter", _chapters())
def test_nothing_scrolls_sideways_on_a_laptop(visit, chapter):
    """At 1280 px (DESKTOP) no code or output block and no display equation of a chapter needs a
    sideways scroll bar: write a long equation on several lines (an aligned environment)."""
    v = visit(f"notebooks/{chapter}.html")
    v.page.wait_for_function("() => !window.MathJax || !MathJax.startup || MathJax.startup.promise")
    v.page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
    got = v.page.evaluate(_SCROLLING)
    problems = [f"{len(got['code'])} code blocks scroll; the longest line of the first: {got['code'][0]!r}"
                ] if got["code"] else []
    problems += [f"a display equation is wider than the column: {m!r}" for m in got["math"]]
    assert not problems, f"{chapter} at {DESKTOP['width']} px:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", _pages())
def test_page_fits_a_phone(visit, path):
    """At 390 px no page scrolls sideways: wide code, tables and widgets scroll in their own box."""
    v = visit(path, PHONE)
    got = v.page.evaluate(_OVERFLOW)
    problems = []
    if got["scrollWidth"] > got["vw"] + 1:
        problems.append(f"the page is {got['scrollWidth']} px wide on a {got['vw']} px screen")
    if got["wide"]:
        problems.append("wider than the screen and not in a scrolling box: " + "; ".join(got["wide"][:8]))
    problems += v.page.evaluate(_WIDGETS_FIT)
    assert not problems, f"{path} at {PHONE['width']} px:\n  " + "\n  ".join(problems)


def test_screenshots_at_phone_width(visit):
    """Leaves 390-px screenshots of chapter 0 and of the first chapter with a widget grid in
    _build/screenshots/ for people to look at."""
    out = Path(HTML).parent / "screenshots"
    out.mkdir(exist_ok=True)
    for chapter in _chapters()[:3]:
        v = visit(f"notebooks/{chapter}.html", PHONE)
        path = out / f"{chapter}-phone.png"
        v.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000

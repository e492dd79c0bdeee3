"""The book's machinery: table of contents, set-up cells, the build, launch links, offline pages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import sync_setup_cells

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
SUFFIXES = (".ipynb", ".md")


def toc_files(node=TOC) -> list[str]:
    """Every `root`/`file` entry of _toc.yml, in order, without suffix."""
    found = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if key in node:
                found.append(str(node[key]))
        for value in node.values():
            if isinstance(value, (dict, list)):
                found += toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found += toc_files(item)
    return found


def _source(entry: str) -> Path | None:
    stem = entry[: -len(Path(entry).suffix)] if entry.endswith(SUFFIXES) else entry
    hits = [ROOT / f"{stem}{suffix}" for suffix in SUFFIXES if (ROOT / f"{stem}{suffix}").exists()]
    return hits[0] if len(hits) == 1 else None


def chapter_notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


def colab_url(notebook: Path) -> str:
    repo = urlsplit(CONFIG["repository"]["url"]).path.strip("/").removesuffix(".git")
    branch = CONFIG["repository"].get("branch", "main")
    rel = notebook.relative_to(ROOT / CONFIG["repository"].get("path_to_book", "")).as_posix()
    return f"{CONFIG['launch_buttons']['colab_url'].rstrip('/')}/github/{repo}/blob/{branch}/{rel}"


# --------------------------------------------------------------------------- table of contents


def test_toc_is_a_jupyter_book_v1_toc():
    assert TOC["format"] == "jb-book"
    assert TOC.get("root"), "_toc.yml needs a root page"


def test_every_toc_entry_exists_exactly_once():
    entries = toc_files()
    missing = [e for e in entries if _source(e) is None]
    assert not missing, f"_toc.yml names files that do not exist (or exist as both .md and .ipynb): {missing}"
    duplicated = sorted({e for e in entries if entries.count(e) > 1})
    assert not duplicated, f"_toc.yml lists these more than once: {duplicated}"


def test_every_notebook_and_book_page_is_in_the_toc():
    listed = {_source(e) for e in toc_files()}
    pages = chapter_notebooks() + sorted((ROOT / "book").glob("*.md"))
    orphans = [p.relative_to(ROOT).as_posix() for p in pages if p not in listed]
    assert not orphans, (f"add these to _toc.yml: {orphans}. With `only_build_toc_files: true` "
                         "(_config.yml) a page missing from it is silently left out of the book")


def test_notebook_names_follow_the_convention():
    bad = [p.name for p in chapter_notebooks() if not re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", p.name)]
    assert not bad, f"notebooks must be named NN_lower_case.ipynb: {bad}"


def test_chapters_are_in_numeric_order_in_the_toc():
    order = [Path(e).name for e in toc_files() if e.startswith("notebooks/")]
    assert order == sorted(order), f"_toc.yml lists the chapters out of order: {order}"


# --------------------------------------------------------------------------- set-up cells


def test_setup_cells_are_in_sync_with_config():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync_setup_cells.py"), "--check"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"run `make sync`, then re-execute:\n{proc.stdout}{proc.stderr}"


def test_setup_cell_states_the_repository_once():
    url, ref = sync_setup_cells.read_config(ROOT)
    text = sync_setup_cells.setup_cell_source(ROOT)
    assert text.count(url) == 1 and f"@{ref}" in text
    assert "--upgrade" not in text and " -U " not in text, "the set-up cell must never upgrade Colab's packages"
    assert text.startswith(sync_setup_cells.MARKER) and text.rstrip().endswith("import attnlib")
    compile(text, "<set-up cell>", "exec")


def _fake_repo(tmp_path: Path, url: str = "https://github.com/example/book") -> Path:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_config.yml").write_text(
        f"repository:\n  url: {url}\n  branch: main\nattnlib_install_ref: v9.9.9\n", encoding="utf-8")
    return tmp_path


def _notebook(cells: list[dict]) -> dict:
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}


def test_sync_rewrites_only_the_setup_cell(tmp_path):
    repo = _fake_repo(tmp_path)
    old = sync_setup_cells.setup_cell_source(ROOT)  # points at another URL and ref
    output = {"output_type": "stream", "name": "stdout", "text": ["hello\n"]}
    cells = [
        {"cell_type": "markdown", "id": "a1", "metadata": {}, "source": ["# 1. Title"]},
        {"cell_type": "code", "id": "b2", "metadata": {"tags": ["x"]}, "execution_count": 1,
         "outputs": [], "source": old.splitlines(keepends=True)},
        {"cell_type": "code", "id": "c3", "metadata": {}, "execution_count": 2, "outputs": [output],
         "source": ["print('hello')"]},
    ]
    path = repo / "notebooks" / "01_x.ipynb"
    path.write_text(json.dumps(_notebook(cells), indent=1), encoding="utf-8")

    script = [sys.executable, str(ROOT / "scripts" / "sync_setup_cells.py"), "--root", str(repo)]
    check = subprocess.run([*script, "--check"], capture_output=True, text=True)
    assert check.returncode == 1 and "01_x.ipynb" in check.stdout
    assert json.loads(path.read_text())["cells"] == cells, "--check must not write"

    assert subprocess.run(script, capture_output=True, text=True).returncode == 0
    new = json.loads(path.read_text())["cells"]
    assert "".join(new[1]["source"]) == sync_setup_cells.setup_cell_source(repo)
    assert "git+https://github.com/example/book@v9.9.9" in "".join(new[1]["source"])
    assert new[0] == cells[0] and new[2] == cells[2], "other cells must be untouched"
    rest = ("source", "metadata")
    assert {k: v for k, v in new[1].items() if k not in rest} == {
        k: v for k, v in cells[1].items() if k not in rest
    }
    assert new[1]["metadata"] == {"tags": ["x", "hide-input"]}, "tags are kept, hide-input added"
    assert subprocess.run([*script, "--check"], capture_output=True, text=True).returncode == 0


def test_sync_inserts_a_missing_setup_cell(tmp_path):
    repo = _fake_repo(tmp_path)
    cells = [{"cell_type": "markdown", "id": "a1", "metadata": {}, "source": ["# 2. T"]},
             {"cell_type": "code", "id": "b2", "metadata": {}, "execution_count": None, "outputs": [],
              "source": ["x = 1"]}]
    path = repo / "notebooks" / "02_y.ipynb"
    path.write_text(json.dumps(_notebook(cells)), encoding="utf-8")
    assert sync_setup_cells.sync_notebook(path, sync_setup_cells.setup_cell_source(repo), write=True) == "missing"
    new = json.loads(path.read_text())["cells"]
    assert [c["cell_type"] for c in new] == ["markdown", "code", "code"]
    assert "".join(new[1]["source"]).startswith(sync_setup_cells.MARKER) and new[2] == cells[1]


# --------------------------------------------------------------------------- the build

# Lines of the build log that contain "WARNING" but are not Sphinx warnings (each explained). Empty:
# ipykernel's "Kernel is running over TCP without encryption" start-up notice is silenced where it
# starts, by the kernel configuration `make venv` installs (scripts/ipython_kernel_config.py).
BUILD_LOG_ALLOWED: list[re.Pattern] = []


def test_book_builds_without_warnings(built_book):
    tail = built_book.log[-6000:]
    assert built_book.returncode == 0, f"jupyter-book build . -W -n --keep-going failed:\n{tail}"
    warnings = [line for line in built_book.log.splitlines()
                if "WARNING" in line and not any(p.search(line) for p in BUILD_LOG_ALLOWED)]
    assert not warnings, "the build log has warnings:\n" + "\n".join(warnings)
    assert (built_book.html / "index.html").exists()


def _page(book_html: Path, entry: str) -> Path:
    return book_html / f"{Path(entry).with_suffix('').as_posix()}.html"


def _chapter_page(book_html: Path, notebook: Path) -> Path:
    page = _page(book_html, notebook.relative_to(ROOT).as_posix())
    if not page.exists():
        pytest.fail(f"{notebook.name} has no page in the build: add it to _toc.yml", pytrace=False)
    return page


def test_every_toc_entry_has_a_page(book_html):
    missing = [e for e in toc_files() if not _page(book_html, e).exists()]
    assert not missing, f"no html page for {missing}"


def test_renumber_gives_each_chapter_its_own_exercise_numbers():
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import chapter_numbers

    fignumbers = {"notebooks/03_softmax_scaling": {"exercise": {"ex-a": (10,), "ex-b": (11,)}, "figure": {"f": (4,)}},
                  "book/review": {"exercise": {"ex-r": (39,)}}}
    assert chapter_numbers.renumber(fignumbers) == ["notebooks/03_softmax_scaling"]
    assert fignumbers["notebooks/03_softmax_scaling"] == {"exercise": {"ex-a": (3, 1), "ex-b": (3, 2)},
                                                           "figure": {"f": (4,)}}
    assert fignumbers["book/review"] == {"exercise": {"ex-r": (39,)}}  # not a chapter: left alone
    assert chapter_numbers.renumber(fignumbers) == []  # already local: nothing to write again


@pytest.mark.parametrize("notebook", chapter_notebooks(), ids=lambda p: p.stem)
def test_exercises_are_numbered_within_their_chapter(book_html, notebook):
    html = _chapter_page(book_html, notebook).read_text(encoding="utf-8")
    shown = re.findall(r'<span class="caption-number">Exercise ([\d.]+) ', html)
    chapter = int(notebook.name[:2])
    assert shown == [f"{chapter}.{k}" for k in range(1, len(shown) + 1)] and len(shown) >= 3, (
        f"{notebook.name}: exercises numbered {shown}, expected {chapter}.1, {chapter}.2, ...")


@pytest.mark.parametrize("notebook", chapter_notebooks(), ids=lambda p: p.stem)
def test_chapter_links_to_colab_and_download(book_html, notebook):
    page = _chapter_page(book_html, notebook)
    html = page.read_text(encoding="utf-8")
    colab = set(re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', html))
    assert colab == {colab_url(notebook)}, f"{page.name}: Colab links {colab}, expected {colab_url(notebook)}"
    assert f"_sources/notebooks/{notebook.name}" in html, f"{page.name}: no .ipynb download link"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        for key in ("href", "src"):
            if a.get(key) and not (tag == "link" and a.get("rel") in ("canonical", "preconnect")):
                self.urls.append((tag, a[key]))


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _html_pages(book_html: Path) -> list[Path]:
    return sorted(p for p in book_html.rglob("*.html")
                  if not p.relative_to(book_html).parts[0].startswith(("_static", "_sources", "_images")))


def test_internal_links_resolve(book_html):
    """Every local href/src of every page names a file that exists, and a #fragment an id on it."""
    parsed: dict[Path, _Links] = {}
    broken = []
    for page in _html_pages(book_html):
        links = parsed.setdefault(page, _parse(page))
        for tag, url in links.urls:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith(("mailto:", "javascript:", "data:")):
                continue
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(book_html)}: {url}")
                continue
            if parts.fragment and target.suffix == ".html" and tag == "a":
                ids = parsed.setdefault(target, _parse(target)).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(book_html)}: {url} (no such anchor)")
    assert not broken, "broken internal links:\n" + "\n".join(broken)


THIRD_PARTY_SCRIPT = re.compile(r'<(?:script|link)\b[^>]*\b(?:src|href)="(https?://[^"]+)"', re.I)


def test_pages_load_nothing_from_third_party_servers(book_html):
    """The static book works offline: no script or stylesheet comes from a CDN."""
    found = []
    for page in _html_pages(book_html):
        for url in THIRD_PARTY_SCRIPT.findall(page.read_text(encoding="utf-8")):
            found.append(f"{page.relative_to(book_html)}: {url}")
    assert not found, "pages load resources from the network:\n" + "\n".join(found)


@pytest.mark.parametrize("notebook", chapter_notebooks(), ids=lambda p: p.stem)
def test_widget_state_is_embedded(book_html, notebook):
    """A chapter with widget outputs ships their saved state and the local (vendored) renderer."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    views = sum(1 for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
                if "application/vnd.jupyter.widget-view+json" in o.get("data", {}))
    if not views:
        pytest.skip(f"{notebook.name} has no widget output")
    html = _chapter_page(book_html, notebook).read_text(encoding="utf-8")
    assert 'type="application/vnd.jupyter.widget-state+json"' in html, "widget state not embedded"
    assert html.count('type="application/vnd.jupyter.widget-view+json"') == views
    for script in ("widgets/require.js", "widgets/anywidget-local.js", "widgets/embed-amd.js"):
        assert f"_static/{script}" in html, f"{script} not on the page"


def test_vendored_anywidget_front_end_matches_the_installed_anywidget():
    """book/_static_widgets/widgets/anywidget.js renders the saved widgets on the static pages; it
    must be the front end of the anywidget that executed the notebooks (refresh it when
    requirements.txt moves anywidget: see book/_static_widgets/README.txt)."""
    import anywidget

    installed = Path(anywidget.__file__).parent / "nbextension" / "index.js"
    vendored = ROOT / "book" / "_static_widgets" / "widgets" / "anywidget.js"
    assert vendored.read_bytes() == installed.read_bytes(), (
        f"copy {installed} to {vendored.relative_to(ROOT)} (anywidget {anywidget.__version__})")


def _widget_models(notebook: Path):
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    state = nb.get("metadata", {}).get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    for model_id, model in state.get("state", {}).items():
        yield model_id, model.get("state", {})


@pytest.mark.parametrize("notebook", chapter_notebooks(), ids=lambda p: p.stem)
def test_saved_widgets_carry_the_current_javascript(notebook):
    """The static page runs the widget JavaScript saved in the notebook, not attnlib/static/*.js.

    So a chapter must be re-executed whenever a widget's JavaScript or CSS changes (and the build's
    jupyter-cache cleared with `make clean`, which keys on the notebook's code only).
    """
    import importlib

    stale = []
    for model_id, state in _widget_models(notebook):
        ident = state.get("_anywidget_id", "")
        if "_esm" not in state or not ident.startswith("attnlib."):
            continue
        module_name, _, class_name = ident.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name, None)
        if cls is None:
            stale.append(f"{model_id}: {ident} no longer exists")
            continue
        for trait in ("_esm", "_css"):
            current = getattr(cls, trait, None)
            if isinstance(current, str) and state.get(trait) != current:
                stale.append(f"{model_id}: {class_name}.{trait} changed since the notebook was executed")
    assert not stale, (f"re-execute {notebook.relative_to(ROOT)} (make execute NB=...):\n  " + "\n  ".join(stale))

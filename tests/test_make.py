"""The Makefile and its helpers: the suite runs every target and tabulates them, the book is built
once and shared, a foreign .venv is refused, one chapter can be checked, the kernel is quiet."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import build_book
import run_suite

MAKE = shutil.which("make")
needs_make = pytest.mark.skipif(MAKE is None, reason="GNU make is not installed")


def _make(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "NB"}
    return subprocess.run([MAKE, "--no-print-directory", *args], cwd=cwd, capture_output=True, text=True,
                          env=env)


def _checkout_copy(tmp_path: Path, stamp: str | None = None) -> Path:
    """The Makefile with stand-ins for its prerequisites, and a .venv stamp holding ``stamp``."""
    repo = tmp_path / "checkout"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", repo / "Makefile")
    for name in ("requirements.txt", "pyproject.toml", "scripts/ipython_kernel_config.py",
                 "requirements-colab.txt"):
        (repo / name).write_text("", encoding="utf-8")
    if stamp is not None:
        (repo / ".venv").mkdir()
        old = time.time() - 100
        for name in ("requirements.txt", "pyproject.toml", "scripts/ipython_kernel_config.py"):
            os.utime(repo / name, (old, old))
        (repo / ".venv" / ".installed").write_text(stamp.replace("HERE", str(repo.resolve())) + "\n")
    return repo


# --------------------------------------------------------------------------- make test's runner

FAKE_MAKEFILE = """\
ok:
\t@echo all good
bad:
\t@echo "FAILED tests/test_x.py::test_one - AssertionError"
\t@echo "FAILED notebooks/03_x.ipynb::Cell 4"
\t@exit 3
skip:
\t@echo "== skipped: the tool is not here"
later:
\t@echo ran after the failure
"""


def test_suite_runs_every_target_after_a_failure_and_tabulates(tmp_path):
    (tmp_path / "Makefile").write_text(FAKE_MAKEFILE)
    logs = tmp_path / "logs"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_suite.py"), "--make", MAKE or "make",
                           "--log-dir", str(logs), "ok", "bad", "skip", "later"],
                          cwd=tmp_path, capture_output=True, text=True)
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "ran after the failure" in out, "a failing target must not stop the suite"
    summary = out[out.index("summary"):]
    rows = {line.split()[0]: line.split()[1] for line in summary.splitlines()[2:]
            if line.split() and line.split()[0] in {"ok", "bad", "skip", "later"}}
    assert rows == {"ok": "passed", "bad": "FAILED", "skip": "skipped", "later": "passed"}
    assert "the tool is not here" in summary
    assert "failed: tests/test_x.py::test_one" in summary and "failed: notebooks/03_x.ipynb::Cell 4\n" in summary
    assert "1 of 4 targets FAILED: bad" in out
    assert out.rstrip().splitlines()[-1] == "targets: 2 passed, 1 failed, 1 skipped"
    assert (logs / "bad.log").read_text().startswith("FAILED tests/test_x.py::test_one")
    assert f"log: {logs / 'bad.log'}" in summary or "log: logs/bad.log" in summary


def test_suite_passes_when_every_target_passes(tmp_path):
    (tmp_path / "Makefile").write_text(FAKE_MAKEFILE)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_suite.py"), "--make", MAKE or "make",
                           "--log-dir", str(tmp_path / "logs"), "ok", "skip"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    assert "all 1 targets passed (1 skipped: skip)" in proc.stdout


PARALLEL_MAKEFILE = """\
slow:
\t@sleep 2; echo slow done
fast:
\t@echo fast done
bad:
\t@echo "FAILED tests/test_x.py::test_two - boom"; exit 1
"""


def test_jobs_run_targets_at_once_and_keep_the_table_in_order(tmp_path):
    (tmp_path / "Makefile").write_text(PARALLEL_MAKEFILE)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_suite.py"), "--make", MAKE or "make",
                           "--log-dir", str(tmp_path / "logs"), "--jobs", "2", "slow", "fast", "bad"],
                          cwd=tmp_path, capture_output=True, text=True)
    out = proc.stdout
    assert proc.returncode == 1, out
    # fast and bad ran while slow slept: their results come first on the screen ...
    assert out.index("fast done") < out.index("slow done"), out
    assert out.index("make bad: exit 2") < out.index("make slow: exit 0"), out
    # ... but the table lists the targets in the given order, with the failure's test id
    summary = out[out.index("summary"):]
    names = [ln.split()[0] for ln in summary.splitlines()[2:] if ln.split() and ln.split()[0] in {"slow", "fast", "bad"}]
    assert names == ["slow", "fast", "bad"], summary
    assert "failed: tests/test_x.py::test_two" in summary


def test_jobs_must_be_positive(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_suite.py"), "--jobs", "0", "x"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and "--jobs must be at least 1, got 0" in proc.stderr


def test_duration_format():
    assert run_suite.duration(7.4) == "7 s"
    assert run_suite.duration(125) == "2 min 05 s"


@needs_make
def test_make_test_runs_the_whole_suite_in_order():
    # read make's database (`-p`) instead of `make -n test`: its recipe is a `+` line, which make
    # runs even under -n
    db = _make(ROOT, "-pn", "help").stdout.splitlines()
    targets = next(ln for ln in db if ln.startswith("TEST_TARGETS := ")).split(":=")[1].split()
    assert targets == ["lint", "sync-check", "pytest", "nbval", "nbval-portable", "seeds", "bench-quick",
                       "colab-test"], "lint first, before anything executes a chapter"
    recipe = db[db.index(next(ln for ln in db if ln.startswith("test: "))) + 1:][:8]
    assert any("scripts/run_suite.py" in ln and "$(TEST_TARGETS)" in ln for ln in recipe), recipe


# --------------------------------------------------------------------------- one chapter at a time


@needs_make
def test_nbval_takes_one_chapter(tmp_path):
    repo = _checkout_copy(tmp_path, stamp="HERE")
    out = _make(repo, "-n", "nbval", "NB=notebooks/03_x.ipynb").stdout
    assert "--nbval" in out and "tests/nbval_sanitize.cfg" in out
    assert "notebooks/03_x.ipynb" in out and "notebooks/*.ipynb" not in out
    portable = _make(repo, "-n", "nbval-portable", "NB=notebooks/03_x.ipynb").stdout
    assert "ATEN_CPU_CAPABILITY=default" in portable and "notebooks/03_x.ipynb" in portable
    assert "notebooks/*.ipynb" in _make(repo, "-n", "nbval").stdout


@needs_make
def test_execute_lints_before_it_executes(tmp_path):
    repo = _checkout_copy(tmp_path, stamp="HERE")
    lines = _make(repo, "-n", "execute", "NB=notebooks/03_x.ipynb").stdout.splitlines()
    ruff = next(i for i, ln in enumerate(lines) if "ruff check notebooks/03_x.ipynb" in ln)
    run = next(i for i, ln in enumerate(lines) if "nbconvert" in ln)
    assert ruff < run


@needs_make
def test_chapter_needs_one_existing_notebook(tmp_path):
    repo = _checkout_copy(tmp_path, stamp="HERE")
    proc = _make(repo, "chapter")
    assert proc.returncode != 0 and "usage: make chapter NB=" in proc.stdout
    (repo / "notebooks").mkdir()
    (repo / "notebooks" / "12_t.ipynb").write_text("{}")
    steps = _make(repo, "-n", "chapter", "NB=notebooks/12_t.ipynb").stdout
    order = ["sync_setup_cells.py notebooks/12_t.ipynb", "exercise_index.py", "ruff check notebooks/12_t",
             "nbconvert", "--nbval", "build_book.py", "test_browser.py -k \"12_t\"", "screenshot.py 12_t"]
    positions = [steps.find(s) for s in order]
    assert -1 not in positions and positions == sorted(positions), steps


@needs_make
def test_seeds_skips_with_a_message_only_without_its_script(tmp_path):
    repo = _checkout_copy(tmp_path, stamp="HERE")
    proc = _make(repo, "seeds")
    assert proc.returncode == 0 and "== skipped: scripts/seed_check.py is not in this checkout" in proc.stdout
    (repo / "scripts" / "seed_check.py").write_text("import sys\nprint('ARGS', sys.argv[1:])\nsys.exit(4)\n")
    (repo / ".venv" / "bin").mkdir()
    (repo / ".venv" / "bin" / "python").symlink_to(sys.executable)
    one = _make(repo, "seeds", "NB=notebooks/10_t.ipynb", "SEED_FLAGS=--offsets 1 2")
    assert one.returncode != 0, "a failing seed check fails the target"
    assert "ARGS ['--offsets', '1', '2', 'notebooks/10_t.ipynb']" in one.stdout
    every = _make(repo, "seeds")
    assert "ARGS []" in every.stdout and "skipped" not in every.stdout.replace("echo", "")


# --------------------------------------------------------------------------- the virtual environment


@needs_make
def test_a_venv_made_for_another_checkout_is_refused(tmp_path):
    repo = _checkout_copy(tmp_path, stamp="/somewhere/else")
    proc = _make(repo, "-n", "lint")
    assert proc.returncode != 0
    assert "was made for the checkout /somewhere/else, not for this one" in proc.stderr
    assert "Never copy or move .venv" in proc.stderr
    assert _make(repo, "-n", "distclean").returncode == 0, "distclean must stay possible"


@needs_make
def test_a_venv_made_here_is_accepted(tmp_path):
    repo = _checkout_copy(tmp_path, stamp="HERE")
    proc = _make(repo, "-n", "lint")
    assert proc.returncode == 0, proc.stderr
    assert "ruff check ." in proc.stdout and "pip install" not in proc.stdout


@needs_make
def test_an_old_empty_stamp_falls_back_to_the_activate_script(tmp_path):
    repo = _checkout_copy(tmp_path, stamp="")
    (repo / ".venv" / "bin").mkdir()
    (repo / ".venv" / "bin" / "activate").write_text('VIRTUAL_ENV="/old/place/.venv"\nexport VIRTUAL_ENV\n')
    proc = _make(repo, "-n", "lint")
    assert proc.returncode != 0 and "/old/place" in proc.stderr


def test_this_venv_records_this_checkout():
    stamp = ROOT / ".venv" / ".installed"
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve() or not stamp.exists():
        pytest.skip("not running from this checkout's .venv")
    assert stamp.read_text().strip() in {"", str(ROOT)}


# --------------------------------------------------------------------------- the kernel's log


def test_kernel_config_is_installed_in_the_venv():
    installed = Path(sys.prefix) / "etc" / "ipython" / "ipython_kernel_config.py"
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("not running from this checkout's .venv")
    assert installed.exists(), "run `make venv`: it installs scripts/ipython_kernel_config.py"
    assert installed.read_text() == (ROOT / "scripts" / "ipython_kernel_config.py").read_text()


@pytest.mark.slow
def test_an_executed_notebook_logs_no_warning(tmp_path):
    """nbconvert, nbval and jupyter-book start kernels the same way; none may print 'WARNING'."""
    if not (Path(sys.prefix) / "etc" / "ipython" / "ipython_kernel_config.py").exists():
        pytest.skip("the kernel configuration is installed by `make venv`")
    nb = {"cells": [{"cell_type": "code", "id": "a1", "metadata": {}, "execution_count": None,
                     "outputs": [], "source": "print(6 * 7)"}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "t.ipynb"
    path.write_text(json.dumps(nb))
    jupyter = Path(sys.executable).with_name("jupyter")
    proc = subprocess.run([str(jupyter), "nbconvert", "--to", "notebook", "--execute", "--stdout", str(path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "42" in proc.stdout
    assert "WARNING" not in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- one shared book build

FAKE_JB = """\
import json, pathlib, sys
root = pathlib.Path.cwd()
calls = root / "calls.json"
seen = json.loads(calls.read_text()) if calls.exists() else []
seen.append(sys.argv[1:])
calls.write_text(json.dumps(seen))
(root / "_build" / "html").mkdir(parents=True, exist_ok=True)
(root / "_build" / "html" / "index.html").write_text("<html></html>")
fail = (root / "FAIL").exists()
print("WARNING: a broken reference" if fail else "build succeeded")
sys.exit(1 if fail else 0)
"""


@pytest.fixture
def fake_book(tmp_path, monkeypatch):
    root = tmp_path / "book"
    for d in ("notebooks", "book", "attnlib"):
        (root / d).mkdir(parents=True)
    for f in ("_config.yml", "_toc.yml", "notebooks/01_a.ipynb", "book/preface.md", "attnlib/core.py"):
        (root / f).write_text("x")
    old = time.time() - 100
    for f in root.rglob("*"):
        os.utime(f, (old, old))
    (tmp_path / "jb.py").write_text(FAKE_JB)
    monkeypatch.setattr(build_book, "_jupyter_book", lambda: [sys.executable, str(tmp_path / "jb.py")])
    return root


def _calls(root: Path) -> list[list[str]]:
    return json.loads((root / "calls.json").read_text())


def test_book_is_built_once_and_then_reused(fake_book):
    first = build_book.build(fake_book, quiet=True)
    assert first.returncode == 0 and not first.reused and "build succeeded" in first.log
    assert (fake_book / "_build" / ".attnlib-stamp").exists(), "the cache stamp is written by every build"
    second = build_book.build(fake_book, quiet=True)
    assert second.reused and second.returncode == 0 and second.log == first.log
    assert len(_calls(fake_book)) == 1, "nothing changed, so nothing may be built again"
    assert _calls(fake_book)[0][:2] == ["build", "."] and "-W" in _calls(fake_book)[0]


def test_a_changed_chapter_triggers_a_build(fake_book):
    build_book.build(fake_book, quiet=True)
    time.sleep(0.05)
    (fake_book / "notebooks" / "01_a.ipynb").write_text("changed")
    assert not build_book.build(fake_book, quiet=True).reused
    assert len(_calls(fake_book)) == 2 and "--all" not in _calls(fake_book)[1]


def test_a_failed_build_is_reported_again_and_rebuilt_whole(fake_book):
    (fake_book / "FAIL").write_text("")
    failed = build_book.build(fake_book, quiet=True)
    assert failed.returncode == 1 and "WARNING" in failed.log
    again = build_book.build(fake_book, quiet=True)
    assert again.reused and again.returncode == 1, "a stale success must never replace a failure"
    (fake_book / "FAIL").unlink()
    (fake_book / "book" / "preface.md").write_text("fixed")
    fixed = build_book.build(fake_book, quiet=True)
    assert fixed.returncode == 0 and "--all" in _calls(fake_book)[-1], (
        "after a failed build every page is read again, so every warning is reported again")


def test_attnlib_changes_drop_the_execution_cache(fake_book):
    build_book.build(fake_book, quiet=True)
    cache = fake_book / "_build" / ".jupyter_cache"
    cache.mkdir()
    (cache / "entry").write_text("old outputs")
    assert build_book.refresh_execution_cache(fake_book, quiet=True) is False and cache.exists()
    time.sleep(0.05)
    (fake_book / "attnlib" / "core.py").write_text("new code")
    assert build_book.refresh_execution_cache(fake_book, quiet=True) is True
    assert not cache.exists()
    assert build_book.refresh_execution_cache(fake_book, quiet=True) is False
    time.sleep(0.05)
    (fake_book / "attnlib" / "core.py").write_text("newer code")
    rebuilt = build_book.build(fake_book, quiet=True)
    assert not rebuilt.reused and "--all" in _calls(fake_book)[-1], (
        "Sphinx re-reads only changed pages: after dropping the cache every page must be read again")


def test_force_rebuilds_every_page(fake_book):
    build_book.build(fake_book, quiet=True)
    assert not build_book.build(fake_book, quiet=True, force=True).reused
    assert "--all" in _calls(fake_book)[-1]


def _git_book(tmp_path: Path) -> Path:
    """A git repository with two executed chapters and an attnlib file, all committed."""
    import nbformat

    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "attnlib").mkdir()
    (root / "attnlib" / "core.py").write_text("x = 1\n")
    for name, value in [("01_a", 1), ("02_b", 2)]:
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell(f"{value} + 1", execution_count=1)
        cell.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": str(value + 1)},
                                               execution_count=1)]
        nb.cells = [cell]
        nbformat.write(nb, root / "notebooks" / f"{name}.ipynb")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "chapters"], check=True)
    return root


def test_committed_chapters_are_those_exactly_as_committed(tmp_path):
    root = _git_book(tmp_path)
    names = lambda: [p.name for p in build_book.committed_chapters(root)]  # noqa: E731
    assert names() == ["01_a.ipynb", "02_b.ipynb"]
    (root / "notebooks" / "02_b.ipynb").write_text((root / "notebooks" / "02_b.ipynb").read_text() + " ")
    assert names() == ["01_a.ipynb"], "an edited chapter must be executed by the build"
    (root / "attnlib" / "new.py").write_text("y = 2\n")
    assert names() == [], "with attnlib changed, no committed output may stand"
    assert build_book.committed_chapters(tmp_path / "not-a-repo") == []


def test_seeded_chapters_are_served_from_the_cache_with_their_committed_outputs(tmp_path):
    import nbformat
    from jupyter_cache import get_cache

    root = _git_book(tmp_path)
    (root / "notebooks" / "02_b.ipynb").write_text((root / "notebooks" / "02_b.ipynb").read_text() + " ")
    seeded = build_book.seed_execution_cache(root, quiet=True)
    assert [p.name for p in seeded] == ["01_a.ipynb"]
    cache = get_cache(str(root / "_build" / ".jupyter_cache"))
    a = nbformat.read(root / "notebooks" / "01_a.ipynb", as_version=4)
    stripped = nbformat.from_dict(a)
    stripped.cells[0].outputs = []  # what myst-nb matches on is the code, not the outputs
    _, merged = cache.merge_match_into_notebook(stripped)
    assert merged.cells[0].outputs[0]["data"]["text/plain"] == "2"
    with pytest.raises(KeyError):  # the edited chapter is not in the cache: the build runs it
        cache.match_cache_notebook(nbformat.read(root / "notebooks" / "02_b.ipynb", as_version=4))
    assert build_book.seed_execution_cache(root, quiet=True) == [], "seeding twice adds nothing"
    # a changed cell of the committed chapter no longer matches: it would be executed
    a.cells[0].source = "1 + 2"
    with pytest.raises(KeyError):
        cache.match_cache_notebook(a)

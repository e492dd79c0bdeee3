"""The chapter template: `make new-chapter` writes a complete, output-free skeleton that is listed in
the book, and every existing chapter has the template's parts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import chapter_template
import new_chapter
import sync_setup_cells

CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))
N, NAME = 98, "scaffold_probe"  # a number no real chapter will take soon


def _tree_copy(dest: Path) -> Path:
    """The files a clone of this checkout has (tracked, plus new files git does not ignore)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory):
    """A copy of the checkout in which `new_chapter.py 98 scaffold_probe` ran."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to copy")
    repo = _tree_copy(tmp_path_factory.mktemp("checkout"))
    proc = subprocess.run([sys.executable, str(repo / "scripts" / "new_chapter.py"), str(N), NAME],
                          cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return repo, repo / "notebooks" / f"{N}_{NAME}.ipynb", proc.stdout


def test_new_chapter_has_every_part_of_the_template(scaffolded):
    _, path, _ = scaffolded
    found = chapter_template.parts(json.loads(path.read_text(encoding="utf-8")))
    missing = [p for p in chapter_template.REQUIRED if not found[p]]
    assert not missing, f"the skeleton lacks {missing}"
    assert found["viz figure"] and found["derive and check"]
    assert found["exercises"] == 3 and found["hints"] == 3 and found["folded solutions"] == 3
    assert found["checker calls"] == 6, "each exercise: a checker call under the stub and under the solution"


def test_new_chapter_has_no_outputs_and_its_title(scaffolded):
    _, path, _ = scaffolded
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert "widgets" not in nb["metadata"], "no saved widget state in a skeleton"
    assert "".join(nb["cells"][0]["source"]).startswith(f"# {N}. Scaffold probe\n")
    assert len({c["id"] for c in nb["cells"]}) == len(nb["cells"]), "cell ids must be unique"


def test_new_chapter_code_fits_the_page(scaffolded):
    """No code line of the skeleton is wider than the page's code column (85 characters)."""
    _, path, _ = scaffolded
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"][1:]  # the set-up cell is not the template's
    wide = [line for c in cells for line in "".join(c["source"]).splitlines() if len(line) > 85]
    assert not wide, wide


def test_new_chapter_setup_cell_comes_from_the_sync_script(scaffolded):
    repo, path, _ = scaffolded
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert "".join(first["source"]) == sync_setup_cells.setup_cell_source(repo)
    check = subprocess.run([sys.executable, str(repo / "scripts" / "sync_setup_cells.py"), "--check"],
                           cwd=repo, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_new_chapter_is_in_the_toc_and_the_exercise_index(scaffolded):
    repo, _, _ = scaffolded
    toc = (repo / "_toc.yml").read_text(encoding="utf-8")
    chapters = [line.strip() for line in toc.splitlines() if line.strip().startswith("- file: notebooks/")]
    assert f"- file: notebooks/{N}_{NAME}" in chapters
    assert chapters == sorted(chapters), "the chapters stay in numeric order"
    page = (repo / "book" / "exercises.md").read_text(encoding="utf-8")
    for label in ("one", "two", "three"):
        assert f"<ex-{N}-{label}>" in page
    check = subprocess.run([sys.executable, str(repo / "scripts" / "exercise_index.py"), "--check"],
                           cwd=repo, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_new_chapter_is_lint_clean(scaffolded):
    repo, path, _ = scaffolded
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed in this environment")
    proc = subprocess.run([str(ruff), "check", str(path.relative_to(repo))], cwd=repo, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout


def test_new_chapter_refuses_a_taken_number_and_a_bad_name(scaffolded):
    repo, _, _ = scaffolded
    script = [sys.executable, str(repo / "scripts" / "new_chapter.py")]
    again = subprocess.run([*script, str(N), "other"], cwd=repo, capture_output=True, text=True)
    assert again.returncode != 0 and f"chapter {N} exists already: {N}_{NAME}.ipynb" in again.stderr
    bad = subprocess.run([*script, "97", "My-Topic"], cwd=repo, capture_output=True, text=True)
    assert bad.returncode != 0 and "NAME must be lower case" in bad.stderr
    assert not (repo / "notebooks" / "97_My-Topic.ipynb").exists()


def test_new_chapter_tells_what_to_do_next(scaffolded):
    _, _, out = scaffolded
    assert f"make chapter NB=notebooks/{N}_{NAME}.ipynb" in out and "python -m attnlib.checks" in out


TOC = """\
parts:
  - caption: A
    chapters:
      - file: notebooks/00_a
  - caption: B
    chapters:
      - file: notebooks/03_b
      - file: notebooks/07_c
  - caption: Review
    chapters:
      - file: book/review
"""


@pytest.mark.parametrize(("n", "after"), [(5, "notebooks/03_b"), (9, "notebooks/07_c"),
                                          (1, "notebooks/00_a")])
def test_add_to_toc_puts_the_chapter_after_the_one_below_it(n, after):
    lines = new_chapter.add_to_toc(TOC, n, f"notebooks/{n:02d}_new").splitlines()
    i = lines.index(f"      - file: {after}")
    assert lines[i + 1] == f"      - file: notebooks/{n:02d}_new"
    assert len(lines) == len(TOC.splitlines()) + 1


def test_add_to_toc_puts_a_first_chapter_before_the_others():
    toc = TOC.replace("notebooks/00_a", "notebooks/02_a")
    lines = new_chapter.add_to_toc(toc, 0, "notebooks/00_new").splitlines()
    assert lines.index("      - file: notebooks/00_new") + 1 == lines.index("      - file: notebooks/02_a")


@pytest.mark.slow
def test_new_chapter_executes_and_its_solutions_pass(scaffolded):
    """The skeleton runs as it is: stubs say "not implemented yet", solutions pass their checkers."""
    import nbformat
    from nbclient import NotebookClient

    _, path, _ = scaffolded
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    texts = ["".join(o.get("text", "") for o in c.outputs if o.get("output_type") == "stream")
             for c in nb.cells if c.cell_type == "code" and "checks.check_" in c.source]
    assert len(texts) == 6
    assert all("not implemented yet" in t for t in texts[0::2]), texts
    assert all(t.startswith("✓") for t in texts[1::2]), texts
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the viz figure was not drawn"
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


# --------------------------------------------------------------------------- every chapter


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_has_the_template_parts(notebook):
    found = chapter_template.parts(json.loads(notebook.read_text(encoding="utf-8")))
    missing = [p for p in chapter_template.REQUIRED if not found[p]]
    if found["exercises"] < chapter_template.MIN_EXERCISES:
        missing.append(f"at least {chapter_template.MIN_EXERCISES} exercises (has {found['exercises']})")
    assert not missing, (f"{notebook.name} lacks {missing} of the chapter template "
                         "(scripts/chapter_template.py; README: Contributing a chapter)")

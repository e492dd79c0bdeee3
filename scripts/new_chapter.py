#!/usr/bin/env python3
"""Start a new chapter: ``make new-chapter N=13 NAME=my_topic``.

    python scripts/new_chapter.py 13 my_topic
    python scripts/new_chapter.py 13 my_topic --title "Rotary position embeddings"

It writes ``notebooks/NN_NAME.ipynb`` from the template (scripts/chapter_template.py: objectives,
prerequisites and time; the set-up and device cells; a derive-and-check cell; a ``viz`` figure; a
widget; three exercises, each with a stub and checker call, a folded hint and a folded solution; a
summary), with no outputs, then

1. inserts the set-up cell by running ``scripts/sync_setup_cells.py`` on it (the one source of that
   cell);
2. lists the chapter in ``_toc.yml``, right after the chapter with the next lower number (so in
   that chapter's part), or before the first chapter when it has the lowest number. A chapter that
   belongs to a part of its own: move its line under a new ``- caption:`` afterwards;
3. rewrites ``book/exercises.md`` with ``scripts/exercise_index.py`` (after the toc edit: the index
   lists only chapters in the toc).

Then replace every TODO and run ``make chapter NB=notebooks/NN_NAME.ipynb``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chapter_template

ROOT = Path(__file__).resolve().parents[1]
TOC_CHAPTER = re.compile(r"^(?P<indent>\s*)- file: notebooks/(?P<nn>\d\d)_[a-z0-9_]+\s*$")


def notebook(n: int, name: str, title: str) -> dict:
    """The template as an nbformat 4.5 notebook without outputs."""
    cells = []
    for kind, source, tags in chapter_template.cells(n, name, title):
        cell = {"cell_type": kind, "id": uuid.uuid4().hex[:8], "metadata": {"tags": tags} if tags else {},
                "source": source.splitlines(keepends=True)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
                "language_info": {"name": "python"}}
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def add_to_toc(toc_text: str, n: int, entry: str) -> str:
    """``toc_text`` with ``- file: entry`` after the chapter numbered just below ``n``."""
    lines = toc_text.splitlines(keepends=True)
    chapters = [(i, int(m.group("nn")), m.group("indent")) for i, line in enumerate(lines)
                if (m := TOC_CHAPTER.match(line.rstrip("\n")))]
    if not chapters:
        raise SystemExit("new-chapter: _toc.yml lists no chapter (- file: notebooks/NN_name) to place it by")
    below = [c for c in chapters if c[1] < n]
    if below:
        i, _, indent = max(below, key=lambda c: c[1])
        at = i + 1
    else:
        at, _, indent = min(chapters, key=lambda c: c[1])
    lines.insert(at, f"{indent}- file: {entry}\n")
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, help="chapter number, 0-99")
    parser.add_argument("name", help="lower_case_with_underscores, e.g. my_topic")
    parser.add_argument("--title", help="the chapter's title (default: from the name)")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    root = args.root.resolve()

    if not 0 <= args.n <= 99:
        parser.error(f"N must be between 0 and 99, got {args.n}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", args.name):
        parser.error(f"NAME must be lower case letters, digits and underscores (notebooks/NN_name.ipynb), "
                     f"got {args.name!r}")
    stem = f"{args.n:02d}_{args.name}"
    path = root / "notebooks" / f"{stem}.ipynb"
    taken = sorted(p.name for p in (root / "notebooks").glob(f"{args.n:02d}_*.ipynb"))
    if taken:
        parser.error(f"chapter {args.n} exists already: {', '.join(taken)}")
    title = args.title or args.name.replace("_", " ").capitalize()

    path.write_text(json.dumps(notebook(args.n, args.name, title), indent=1, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    print(f"wrote {path.relative_to(root)} (no outputs)")
    scripts = root / "scripts"
    subprocess.run([sys.executable, str(scripts / "sync_setup_cells.py"), "--root", str(root), str(path)],
                   check=True)
    toc = root / "_toc.yml"
    toc.write_text(add_to_toc(toc.read_text(encoding="utf-8"), args.n, f"notebooks/{stem}"), encoding="utf-8")
    print(f"listed notebooks/{stem} in _toc.yml")
    subprocess.run([sys.executable, str(scripts / "exercise_index.py")], cwd=root, check=True)
    print(f"""
Next:
  1. replace every TODO in {path.relative_to(root)} (python -m attnlib.checks lists the checkers,
     widgets and viz functions); new terms go into book/glossary.md, references into
     book/references.bib, and review questions into book/review.md;
  2. make chapter NB={path.relative_to(root)}
     (sync, lint, execute, strict nbval, browser test, screenshots in _build/screenshots/).""")
    return 0


if __name__ == "__main__":
    sys.exit(main())

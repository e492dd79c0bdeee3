#!/usr/bin/env python3
"""Write book/exercises.md, the index of every exercise in the book, from the notebooks.

For each notebook listed in ``_toc.yml`` (in reading order), the script reads the markdown cells,
finds every ``{exercise}`` (or gated ``{exercise-start}``) directive and takes its title, its
``:label:`` and the line ``**Difficulty:** ★★☆ · **Time:** 10 min`` of its body. The page is a
table per chapter plus a fixed "where to go next" section.

    python scripts/exercise_index.py           # rewrite book/exercises.md
    python scripts/exercise_index.py --check   # exit 1 if book/exercises.md is out of date

Only notebooks in the table of contents are indexed, because a link to a page that is not built
would break the book. Standard library only (the toc is read with a regular expression).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "exercises.md"

# ```{exercise} Title   or   :::{exercise-start} Title   (3+ backticks or colons)
_DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|:{3,})\s*\{exercise(?:-start)?\}[ \t]*(?P<title>[^\n]*)$", re.M)
_LABEL = re.compile(r"^:label:\s*(\S+)\s*$", re.M)
_META = re.compile(
    r"\*\*Difficulty:?\*\*:?\s*(?P<difficulty>[★☆]+)\s*[·|,-]?\s*\*\*Time:?\*\*:?\s*(?P<time>[^\n]+?)\s*$",
    re.M,
)
_TOC_FILE = re.compile(r"(?:file|root):\s*['\"]?([^\s'\"#]+)")


@dataclass
class Exercise:
    chapter_doc: str  # e.g. notebooks/11_cost_at_scale
    chapter_title: str
    title: str
    label: str
    difficulty: str
    time: str


def toc_notebooks(root: Path) -> list[Path]:
    """Notebooks named in _toc.yml, in order."""
    toc = root / "_toc.yml"
    if not toc.exists():
        return []
    out = []
    for entry in _TOC_FILE.findall(toc.read_text(encoding="utf-8")):
        path = root / (entry if entry.endswith(".ipynb") else entry + ".ipynb")
        if path.exists() and path not in out:
            out.append(path)
    return out


def _title(cells: list[dict], fallback: str) -> str:
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            m = re.search(r"^#\s+(.+?)\s*$", "".join(cell.get("source", "")), re.M)
            if m:
                return m.group(1)
    return fallback


def parse_notebook(path: Path, root: Path = ROOT) -> list[Exercise]:
    """Every exercise of one notebook, in order; raises ValueError on an incomplete directive."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = nb.get("cells", [])
    doc = path.relative_to(root).with_suffix("").as_posix()
    chapter = _title(cells, path.stem)
    found = []
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        text = "".join(cell.get("source", ""))
        for m in _DIRECTIVE.finditer(text):
            if m.group(0).find("{exercise-start}") != -1:  # gated: the body runs to {exercise-end}
                end = text.find("{exercise-end}", m.end())
            else:
                end = text.find("\n" + m.group("fence"), m.end())  # the directive's closing fence
            body = text[m.end(): end if end != -1 else len(text)]
            label = _LABEL.search(body)
            meta = _META.search(body)
            title = m.group("title").strip()
            where = f"{path.name}: exercise {title!r}"
            if not title:
                raise ValueError(f"{where}: the exercise has no title")
            if not label:
                raise ValueError(f"{where}: the exercise has no :label:")
            if not meta:
                raise ValueError(
                    f"{where}: no line '**Difficulty:** ★☆☆ · **Time:** 5 min' in the exercise body"
                )
            found.append(Exercise(doc, chapter, title, label.group(1), meta.group("difficulty"),
                                  meta.group("time").strip()))
    return found


NEXT_STEPS = """\
## Where to go next

- **See it animated.** Grant Sanderson's 3Blue1Brown lesson [*Attention in transformers, step by
  step*](https://www.3blue1brown.com/lessons/attention), chapter 6 of his deep-learning series, is
  the picture this book follows: the same fluffy blue creature, drawn instead of computed.
- **Build a GPT yourself.** Andrej Karpathy's video lecture [*Let's build GPT: from scratch, in
  code, spelled out*](https://www.youtube.com/watch?v=kCc8FmEb1nY) and his repositories
  [nanoGPT](https://github.com/karpathy/nanoGPT) and [minGPT](https://github.com/karpathy/minGPT)
  write and train a GPT in a few hundred lines of PyTorch. After this book, they read like a
  summary. Sebastian Raschka's book *Build a Large Language Model (From Scratch)* (Manning, 2024;
  code at [rasbt/LLMs-from-scratch](https://github.com/rasbt/LLMs-from-scratch)) goes on from there
  to pretraining on real text and fine-tuning.
- **Practise with more exercises.** The [ARENA](https://www.arena.education/) curriculum builds a
  transformer from scratch with tests for every step and then takes it apart with interpretability
  tools; [Dive into Deep Learning](https://d2l.ai) treats attention and transformers as part of a
  whole executable textbook, in PyTorch and other frameworks.
- **Look inside trained models.** The [Transformer Circuits thread](https://transformer-circuits.pub/)
  by Chris Olah's team at Anthropic, starting with *A Mathematical Framework for Transformer
  Circuits* {cite:p}`elhage2021mathematical`, reads attention heads as the book does: queries and
  keys decide where to look, values and the output matrix decide what is moved. Its sequel finds
  *induction heads*, pairs of heads that copy a pattern seen earlier in the context
  {cite:p}`olsson2022induction`, and the MLP blocks between the heads can be read as key-value
  memories too {cite:p}`geva2021feedforward`.
- **Make attention fast.** The FlashAttention papers
  {cite:p}`dao2022flashattention,dao2023flashattention2,shah2024flashattention3` start from the
  online softmax of chapter 12 and show how to map it onto a GPU's memory hierarchy. Multi-query
  attention {cite:p}`shazeer2019fast` and grouped-query attention {cite:p}`ainslie2023gqa` let
  many query heads share a few key and value heads, which shrinks the KV cache of chapters 10
  and 11.
- **Scale it up.** Moving the LayerNorm in front of each sub-layer (pre-LN, as in chapter 9) is
  what lets deep transformers train without a long warm-up {cite:p}`xiong2020layer`; how the loss
  falls as the model, the data and the compute grow is measured by {cite:t}`kaplan2020scaling`.
- **Go back to the source.** *Attention Is All You Need* {cite:p}`vaswani2017attention` introduced
  the transformer; with the vocabulary of this book, its figures and equations should now read
  easily. GPT-3's paper {cite:p}`brown2020language` gives the model shape whose numbers the book
  uses throughout.
"""


def render(exercises: list[Exercise]) -> str:
    lines = [
        "# Exercises",
        "",
        "<!-- Generated by scripts/exercise_index.py from the notebooks; do not edit by hand. -->",
        "",
        "Every exercise in the book, chapter by chapter, with its difficulty (★☆☆ warm-up, ★★☆ core,",
        "★★★ challenge) and the time it usually takes. Each one comes with a checker that runs your",
        "answer and diagnoses common mistakes, and with a solution hidden behind a click.",
        "",
    ]
    if not exercises:
        lines += ["No chapter with exercises is in the table of contents yet.", ""]
    by_chapter: dict[str, list[Exercise]] = {}
    for ex in exercises:
        by_chapter.setdefault(ex.chapter_doc, []).append(ex)
    total_minutes = 0
    for doc, items in by_chapter.items():
        lines += [f"## {items[0].chapter_title}", ""]
        lines += [f"Read the chapter: {{doc}}`/{doc}`", ""]
        lines += ["| Exercise | Difficulty | Time |", "| --- | --- | --- |"]
        for ex in items:
            title = ex.title.replace("|", "\\|")
            lines.append(f"| {{ref}}`{title} <{ex.label}>` | {ex.difficulty} | {ex.time} |")
            minutes = re.match(r"(\d+)\s*min", ex.time)
            total_minutes += int(minutes.group(1)) if minutes else 0
        lines.append("")
    if exercises:
        lines += [
            f"In all: {len(exercises)} exercises in {len(by_chapter)} chapters, about "
            f"{total_minutes // 60} h {total_minutes % 60:02d} min of practice.",
            "",
        ]
    lines.append(NEXT_STEPS)
    return "\n".join(lines)


def build(root: Path = ROOT) -> str:
    exercises = []
    for nb in toc_notebooks(root):
        exercises += parse_notebook(nb, root)
    labels = [ex.label for ex in exercises]
    dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dupes:
        raise ValueError(f"exercise labels used more than once: {dupes}")
    return render(exercises)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is out of date")
    args = parser.parse_args(argv)
    try:
        text = build(ROOT)
    except ValueError as err:
        print(f"exercise_index: {err}", file=sys.stderr)
        return 1
    current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    if args.check:
        if current != text:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run python scripts/exercise_index.py",
                  file=sys.stderr)
            return 1
        print(f"{PAGE.relative_to(ROOT)} is up to date")
        return 0
    if current != text:
        PAGE.write_text(text, encoding="utf-8")
        print(f"wrote {PAGE.relative_to(ROOT)}")
    else:
        print(f"{PAGE.relative_to(ROOT)} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

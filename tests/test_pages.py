"""What a reader of the published pages sees, checked on the committed notebooks and book/*.md.

Per chapter: no code or output line wider than the page's code column (PAGE_WIDTH characters, the
measure of ../shared/tools/book_audit.py --page), no bare True/False echoed under a cell (a checker
prints its verdict; the cell must not also echo a boolean), the set-up and device cells folded,
every glossary term the chapter's prose uses linked to its entry at least once ({term}`...`), and
every exercise with a folded hint between its stub and its solution.
Figures: drawn through attnlib.viz (no imshow or hand-made diagrams in a chapter) and no wider
than the page column. For the back matter: every entry of book/references.bib is cited somewhere, every cited key exists,
and the glossary holds the terms the chapters rely on.

A chapter that does not meet a check yet is marked xfail(strict=True) below, with the reason, so
the test flips (XPASS fails) as soon as the chapter's owner fixes it: then delete its entry.
"""

from __future__ import annotations

import json
import re
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BOOK_PAGES = sorted((ROOT / "book").glob("*.md"))
PAGE_WIDTH = 85  # characters that fit the code column of a page (the same as book_audit.py)
PAGE_WIDTH_IN = 7.0  # inches: attnlib.viz.PAGE_WIDTH_IN (tested there; no matplotlib import here)
WIDGET = "application/vnd.jupyter.widget-view+json"

sys.path.insert(0, str(ROOT / "scripts"))
import sync_setup_cells  # noqa: E402

# ----------------------------------------------------------------------------- known shortfalls
# chapter stem -> reason. Delete an entry when the chapter is fixed (the test then XPASSes).
# Counts as measured on main at 167e567 (book_audit.py --page).
WIDE_LINES: dict[str, str] = {}
BARE_ECHOES: dict[str, str] = {}  # the checkers' verdicts display nothing (attnlib.checks.CheckResult)
UNSYNCED: dict[str, str] = {}  # every chapter's set-up and device cells are folded by `make sync`
# The glossary terms each chapter uses without linking them once (as measured with the glossary of
# this commit; the failing test's message lists what is left).
UNLINKED_TERMS: dict[str, str] = {}
HAND_DRAWN: dict[str, str] = {}  # every figure goes through attnlib.viz and fits the column
# Chapters whose exercises have no folded hint yet (issue 12, item 3).
HINTLESS: dict[str, str] = {}  # every exercise has a folded hint


def _xfail(known: dict[str, str], stem: str):
    return pytest.mark.xfail(reason=known[stem], strict=True) if stem in known else ()


def _chapters(known: dict[str, str]):
    return [pytest.param(p, id=p.stem, marks=_xfail(known, p.stem)) for p in NOTEBOOKS]


# ----------------------------------------------------------------------------- reading notebooks


@cache
def _nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _text(x) -> str:
    return "".join(x) if isinstance(x, list) else (x or "")


def _code_cells(path: Path) -> list[dict]:
    return [c for c in _nb(path)["cells"] if c["cell_type"] == "code"]


def _markdown(path: Path) -> str:
    return "\n".join(_text(c["source"]) for c in _nb(path)["cells"] if c["cell_type"] == "markdown")


def wide_lines(path: Path) -> list[str]:
    """Code and output lines wider than PAGE_WIDTH, as `cell N code|output: line` (book_audit's
    measure: code sources, stream text and text/plain of outputs that are not figures or widgets)."""
    found = []
    for n, cell in enumerate(_code_cells(path)):
        for line in _text(cell["source"]).splitlines():
            if len(line) > PAGE_WIDTH:
                found.append(f"code cell {n} code ({len(line)}): {line}")
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET in data or "image/png" in data:
                continue
            text = _text(out.get("text", "")) if out.get("output_type") == "stream" else ""
            text += _text(data.get("text/plain", ""))
            found += [f"code cell {n} output ({len(line)}): {line}" for line in text.splitlines()
                      if len(line) > PAGE_WIDTH]
    return found


def bare_echoes(path: Path) -> list[str]:
    """Cells whose result is a bare True or False (shown as Out[n]: True under the verdict)."""
    found = []
    for n, cell in enumerate(_code_cells(path)):
        for out in cell.get("outputs", []):
            plain = _text(out.get("data", {}).get("text/plain", "")).strip()
            if out.get("output_type") == "execute_result" and plain in ("True", "False"):
                last = _text(cell["source"]).strip().splitlines()[-1]
                found.append(f"code cell {n} echoes {plain}: {last}")
    return found


# ----------------------------------------------------------------------------- the glossary

GLOSSARY = ROOT / "book" / "glossary.md"
# Aliases too common as plain English to detect by text ("the value of x", "a key insight"): a
# chapter is not asked to link them (it may, and each has a more specific alias that is detected).
GENERIC = {"key", "value", "query", "score", "scores", "pattern", "head", "mask", "token", "scaling",
           "embedding", "generation", "sampling", "checkpoint", "parameter", "parameters", "batch",
           "alignment", "tile", "tiling", "temperature", "transformer", "decoder", "encoder", "GPT",
           "logits", "dropout", "vocabulary", "unembedding",
           "warm-up", "warmup"}  # also a benchmark's warm-up run and the easiest exercises


@cache
def glossary() -> list[tuple[str, ...]]:
    """The glossary's entries, each a tuple of its aliases (the term lines above one definition)."""
    text = GLOSSARY.read_text(encoding="utf-8")
    block = re.search(r"```\{glossary\}\n(.*?)\n```", text, re.S)
    assert block, "book/glossary.md has no ```{glossary} block"
    entries, current = [], []
    for line in block.group(1).splitlines():
        if not line.strip() or line.startswith(":"):
            continue
        if line[0].isspace():
            if current:
                entries.append(tuple(current))
                current = []
        else:
            current.append(line.strip())
    return entries


def _alias_index() -> dict[str, tuple[str, ...]]:
    return {a.lower(): entry for entry in glossary() for a in entry}


_ROLE = re.compile(r"\{[a-z:-]+\}`[^`]*`")
_TERM = re.compile(r"(?<!`)\{term\}`([^`]*)`")  # not the role's name quoted as code: `{term}`


def prose(markdown: str) -> str:
    """Running text of a page: no code blocks, inline code, math, roles, link targets, headings,
    directive options or HTML comments."""
    out, fence = [], None
    for line in markdown.splitlines():
        stripped = line.strip()
        m = re.match(r"^(`{3,}|~{3,}|:{3,})(\S*)", stripped)
        if m and fence is None:
            # a directive with prose ({exercise}, {admonition}, ...) keeps its body; code does not
            fence = (m.group(1), m.group(2).startswith("{") and "code" not in m.group(2)
                     and "glue" not in m.group(2))
            continue
        if fence is not None and stripped.startswith(fence[0][0] * 3) and stripped.strip(fence[0][0]) == "":
            fence = None
            continue
        if fence is not None and not fence[1]:
            continue
        if stripped.startswith(("#", ":")):
            continue
        out.append(line)
    text = "\n".join(out)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\$[^$\n]+\$", " ", text)
    text = _ROLE.sub(" ", text)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return text


def _pattern(alias: str) -> re.Pattern:
    exact = any(c.isupper() for c in alias[1:]) or any(c.isdigit() or c == "_" for c in alias)
    body = re.escape(alias).replace(r"\ ", r"[\s-]+")
    return re.compile(rf"(?<![\w-]){body}(?:s|es)?(?![\w-])", 0 if exact else re.I)


def linked_entries(markdown: str) -> set[tuple[str, ...]]:
    index = _alias_index()
    found = set()
    for target in _TERM.findall(markdown):
        m = re.search(r"<([^>]+)>\s*$", target)
        name = (m.group(1) if m else target).strip()
        if name.lower() in index:
            found.add(index[name.lower()])
    return found


def unlinked_terms(markdown: str) -> list[str]:
    """Glossary entries whose alias appears in the prose but which the page never links."""
    text, linked = prose(markdown), linked_entries(markdown)
    missing = []
    for entry in glossary():
        if entry in linked:
            continue
        used = [a for a in entry if a not in GENERIC and _pattern(a).search(text)]
        if used:
            missing.append(used[0])
    return missing


# ----------------------------------------------------------------------------- exercises and hints

_OPTIONS = r"((?:[ \t]*:[\w-]+:[^\n]*(?:\n|$))*)"  # a directive's :option: lines
EXERCISE_DIRECTIVE = re.compile(r"^(?:`{3,}|:{3,})\{exercise(?:-start)?\}[^\n]*\n" + _OPTIONS, re.M)
SOLUTION_DIRECTIVE = re.compile(r"^(?:`{3,}|:{3,})\{solution(?:-start)?\}[ \t]+(\S+)", re.M)
HINT_DIRECTIVE = re.compile(r"^(?:`{3,}|:{3,})\{admonition\}[ \t]+Hint\b[^\n]*\n" + _OPTIONS, re.M)


def _hint_problem(hints, start, stub, end, following) -> str | None:
    """What is wrong with the hints of one exercise (starting at ``start``, its stub at ``stub``,
    its solution at ``end``, the next exercise at ``following``), or None when a folded hint sits
    between the stub and the solution. ``hints``: (position, folded) of every hint of the notebook."""
    between = [folded for pos, folded in hints if stub < pos < end]
    if any(between):
        return None
    if between:
        return "its hint is not folded (write `:class: dropdown tip`)"
    if any(end < pos < following for pos, _ in hints):
        return "its hint comes after its solution; move it between the stub and the solution"
    if any(start < pos < stub for pos, _ in hints):
        return "its hint sits above the stub; move it between the stub and the solution"
    return "no hint between its stub and its solution"


def missing_hints(nb: dict) -> list[str]:
    """The exercises of a notebook without a folded hint where a reader needs it, as
    `label: what is wrong` (empty when every exercise has one).

    A hint is a ```{admonition} Hint``` whose `:class:` contains `dropdown` (sphinx-togglebutton
    folds it), after the exercise's stub (its first code cell; the exercise box itself when it has
    none) and before its `{solution-start}`: in a cell of its own or above the solution-start in
    the same cell."""
    exercises, solutions, hints, code = _exercise_parts(nb)
    problems = []
    for k, (label, start) in enumerate(exercises):
        following = exercises[k + 1][1] if k + 1 < len(exercises) else (len(nb["cells"]), 0)
        if label not in solutions:
            problems.append(f"{label}: no solution ({{solution-start}} {label}) to put a hint before")
            continue
        end = solutions[label]
        stub = next(((c, 0) for c in code if start[0] < c < end[0]), start)
        problem = _hint_problem(hints, start, stub, end, following)
        if problem:
            problems.append(f"{label}: {problem}")
    return problems


def _exercise_parts(nb: dict):
    """Where a notebook's exercises, solutions, hints and code cells are, as (cell, offset)
    positions: ([(label, start)], {label: solution start}, [(hint start, folded)], [code cell])."""
    exercises, solutions, hints, code = [], {}, [], []
    for n, cell in enumerate(nb["cells"]):
        text = _text(cell["source"])
        if cell["cell_type"] == "code":
            code.append(n)
        elif cell["cell_type"] == "markdown":
            for m in EXERCISE_DIRECTIVE.finditer(text):
                label = re.search(r"^\s*:label:\s*(\S+)", m.group(1), re.M)
                exercises.append((label.group(1) if label else f"the exercise in cell {n}", (n, m.start())))
            for m in SOLUTION_DIRECTIVE.finditer(text):
                solutions.setdefault(m.group(1), (n, m.start()))
            for m in HINT_DIRECTIVE.finditer(text):
                folded = any(line.strip().startswith(":class:") and "dropdown" in line.split()[1:]
                             for line in m.group(1).splitlines())
                hints.append(((n, m.start()), folded))
    return exercises, solutions, hints, code


# ----------------------------------------------------------------------------- chapter checks


@pytest.mark.parametrize("path", _chapters(WIDE_LINES))
def test_no_code_or_output_line_is_wider_than_the_page(path):
    lines = wide_lines(path)
    assert not lines, f"{path.name}: {len(lines)} lines wider than {PAGE_WIDTH} characters:\n" + "\n".join(lines[:20])


@pytest.mark.parametrize("path", _chapters(BARE_ECHOES))
def test_no_bare_true_or_false_is_echoed(path):
    echoes = bare_echoes(path)
    assert not echoes, f"{path.name}: end the cell with the checker call alone:\n" + "\n".join(echoes)


@pytest.mark.parametrize("path", _chapters(UNSYNCED))
def test_setup_and_device_cells_are_folded(path):
    code = _code_cells(path)
    assert "hide-input" in code[0]["metadata"].get("tags", []), f"{path.name}: the set-up cell is shown in full"
    if sync_setup_cells.is_device_cell(code[1]):
        assert "hide-input" in code[1]["metadata"].get("tags", []), f"{path.name}: the device cell is shown"


@pytest.mark.parametrize("path", _chapters(UNLINKED_TERMS))
def test_glossary_terms_used_are_linked(path):
    missing = unlinked_terms(_markdown(path))
    assert not missing, (f"{path.name} uses these glossary terms without linking them once "
                         f"({{term}}`...`): {', '.join(missing)}")


def hand_drawn(path: Path) -> list[str]:
    """Figure code that bypasses attnlib.viz's style: heatmaps drawn with imshow, diagrams drawn
    with patches, and figures wider than the page column (viz.PAGE_WIDTH_IN inches)."""
    found = []
    for n, cell in enumerate(_code_cells(path)):
        src = _text(cell["source"])
        if re.search(r"\.imshow\(|\.pcolormesh\(|\bFancyBboxPatch\b", src):
            found.append(f"code cell {n} draws a heatmap or diagram by hand (use attnlib.viz)")
        if re.search(r"\bplt\.subplots\(", src):
            found.append(f"code cell {n} makes a figure with plt.subplots (viz.subplots sizes it for the page)")
        for m in re.finditer(r"(?:figsize=\(|set_size_inches\()\s*([\d.]+)", src):
            if float(m.group(1)) > PAGE_WIDTH_IN:
                found.append(f"code cell {n}: a figure {m.group(1)} inches wide (the page fits {PAGE_WIDTH_IN})")
    return found


@pytest.mark.parametrize("path", _chapters(HAND_DRAWN))
def test_figures_are_drawn_by_viz_and_fit_the_page(path):
    found = hand_drawn(path)
    assert not found, f"{path.name}:\n" + "\n".join(found)


@pytest.mark.parametrize("path", _chapters(HINTLESS))
def test_every_exercise_has_a_folded_hint_before_its_solution(path):
    problems = missing_hints(_nb(path))
    assert not problems, (f"{path.name}: put a folded hint (```{{admonition}} Hint``` with "
                          "`:class: dropdown tip`) between each exercise's stub and its solution:\n"
                          + "\n".join(problems))


READING_WPM = 150  # words of prose a minute, for a reader who follows the maths and code as they go


def reading_minutes(markdown: str) -> tuple[float, list[int]]:
    """(minutes to read the chapter's markdown at READING_WPM, the exercises' own stated times)."""
    words = len(re.findall(r"[A-Za-z][A-Za-z'-]*", markdown))
    exercises = [int(m) for m in re.findall(r"\*\*Time:\*\*\s*(\d+)\s*min", markdown)]
    return words / READING_WPM, exercises


@pytest.mark.parametrize("path", _chapters({}))
def test_estimated_time_is_reading_plus_the_exercises(path):
    md = _markdown(path)
    stated = re.search(r"\*\*Estimated time:\*\*\s*(\d+) minutes", md)
    assert stated, f"{path.name}: the introduction must say '**Estimated time:** N minutes.'"
    reading, exercises = reading_minutes(md)
    assert len(exercises) >= 3, f"{path.name}: every exercise states '**Time:** N min' ({len(exercises)} found)"
    total = reading + sum(exercises)
    suggestion = 5 * round(total / 5)
    assert int(stated.group(1)) % 5 == 0 and abs(int(stated.group(1)) - total) <= 5, (
        f"{path.name}: states {stated.group(1)} minutes, but reading takes {reading:.0f} (at {READING_WPM} "
        f"words a minute) and the exercises {sum(exercises)}: write {suggestion}")


# The main path of a chapter: everything but its optional parts, which are a section whose heading
# starts "Deep dive (optional)" (up to the next heading of the same or a higher level) and an
# exercise whose title ends "(optional)" (from its box to its solution's end). A chapter with
# optional parts states both times: "**Estimated time:** N minutes" for all of it and
# "**Main path:** M minutes" for the rest, each computed as above.
MAIN_PATH = re.compile(r"\*\*Main path:\*\*\s*(?:about\s+)?(\d+) minutes")
MAIN_PATH_MAX = 45  # minutes: the most a reader's main path through a chapter should take
_DEEP_DIVE = re.compile(r"^(#{2,6})\s+Deep dive \(optional\)")
_OPTIONAL_EXERCISE = re.compile(r"^(?:`{3,}|:{3,})\{exercise(?:-start)?\}.*\(optional\)\s*$")
_SOLUTION_END = re.compile(r"^(?:`{3,}|:{3,})\{solution-end\}")
# Chapters whose main path is still longer than MAIN_PATH_MAX (issue 15 split chapters 0-5 only).
LONG_MAIN_PATH = {stem: "no optional parts marked yet; the whole chapter is its main path"
                  for stem in ("06_one_head", "07_multihead", "08_cross_attention", "09_decoder",
                               "10_training")}


def main_path(markdown: str) -> str:
    """The markdown without its optional parts (deep-dive sections and optional exercises)."""
    kept, dive, exercise, closing = [], None, False, False
    for line in markdown.splitlines():
        heading = re.match(r"^(#{1,6})\s", line)
        if dive is not None and heading and len(heading.group(1)) <= dive and not _DEEP_DIVE.match(line):
            dive = None
        if dive is None and _DEEP_DIVE.match(line):
            dive = len(_DEEP_DIVE.match(line).group(1))
        if _OPTIONAL_EXERCISE.match(line):
            exercise = True
        optional = dive is not None or exercise
        if exercise and closing and line.strip().strip("`:") == "":
            exercise = closing = False  # the solution-end directive's closing fence
        elif exercise and _SOLUTION_END.match(line):
            closing = True
        if not optional:
            kept.append(line)
    return "\n".join(kept)


@pytest.mark.parametrize("path", _chapters(LONG_MAIN_PATH))
def test_main_path_is_stated_and_short(path):
    md = _markdown(path)
    main, stated = main_path(md), MAIN_PATH.search(md)
    if main == md:
        assert not stated, f"{path.name} states a main path but marks no part optional"
        minutes = int(re.search(r"\*\*Estimated time:\*\*\s*(\d+) minutes", md).group(1))
    else:
        reading, exercises = reading_minutes(main)
        total = reading + sum(exercises)
        assert stated, (f"{path.name} has optional parts: state '**Main path:** N minutes' (the rest takes "
                        f"{reading:.0f} minutes of reading and {sum(exercises)} of exercises: write "
                        f"{5 * round(total / 5)})")
        minutes = int(stated.group(1))
        assert minutes % 5 == 0 and abs(minutes - total) <= 5, (
            f"{path.name}: its main path states {minutes} minutes, but takes {reading:.0f} of reading and "
            f"{sum(exercises)} of exercises: write {5 * round(total / 5)}")
    assert minutes <= MAIN_PATH_MAX, (f"{path.name}: the main path takes {minutes} minutes; mark parts "
                                      f"that are not needed later as optional to bring it to {MAIN_PATH_MAX}")


def test_main_path_leaves_out_deep_dives_and_optional_exercises():
    md = "\n".join([
        "# 3. A chapter", "intro words", "## Main section", "main words",
        "## Deep dive (optional): floats", "dive words", "### Its subsection", "more dive words",
        "## Exercises",
        "```{exercise} Kept", ":label: ex-a", "**Time:** 5 min", "kept task", "```",
        "```{solution-start} ex-a", "```", "kept solution", "```{solution-end}", "```",
        "```{exercise} Left out (optional)", ":label: ex-b", "**Time:** 20 min", "dropped task", "```",
        "```{solution-start} ex-b", "```", "dropped solution", "```{solution-end}", "```",
        "## Summary", "summary words"])
    main = main_path(md)
    for kept in ("intro words", "main words", "## Exercises", "kept task", "kept solution", "summary words"):
        assert kept in main
    for dropped in ("dive words", "Its subsection", "dropped task", "dropped solution", "Left out"):
        assert dropped not in main
    assert reading_minutes(main)[1] == [5]
    assert main_path("## A\ntext\n## B\nmore") == "## A\ntext\n## B\nmore"  # nothing optional


def test_reading_minutes_counts_words_and_exercise_times():
    md = "word " * 300 + "**Difficulty:** ★☆☆ · **Time:** 10 min and **Time:** 5 min"
    reading, exercises = reading_minutes(md)
    assert exercises == [10, 5] and reading == pytest.approx((300 + 6) / READING_WPM)  # + Difficulty, Time, min, and, Time, min


# Numbers in the prose that are neither computed on the page nor constants of its code: facts
# and arithmetic the text itself shows. Anything else a sentence quotes must be glued.
PROSE_CONSTANTS = {
    "00_how_to_use": {"3.11": "the oldest Python the book supports"},
    "01_tokens_embeddings": {"0.032": "1/31, worked out in the sentence"},
    "02_queries_keys": {"4.5": "3 x 3 / 2, worked out in the sentence"},
    "11_cost_at_scale": {"100%": "the limit a share tends to"},
}
_PROSE_NUMBER = re.compile(r"(?<![\w.,])(\d+\.\d+|\d+%)(?!\w)")


def _code_literals(source: str) -> set[float]:
    """The numeric literals of some Python source (2e-2 and 0.02 alike)."""
    import io
    import tokenize

    found = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.NUMBER:
                try:
                    found.add(round(float(tok.string.replace("_", "")), 12))
                except ValueError:
                    pass
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return found


def unbacked_numbers(path: Path) -> list[str]:
    """Decimals and percentages in the prose that no code cell computes or states: each one must
    come from a glue role, appear in an output nbval compares strictly, or be a literal of the
    code (a threshold the code asserts, a learning rate it sets)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    text, literals = "", set()
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = _text(cell["source"])
        text += src + "\n"
        literals |= _code_literals(src)
        if "nbval-ignore-output" in cell["metadata"].get("tags", []):
            continue  # a varying output backs nothing
        for out in cell.get("outputs", []):
            text += _text(out.get("text") or out.get("data", {}).get("text/plain", "")) + "\n"
    allowed = PROSE_CONSTANTS.get(path.stem, {})
    bad = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for m in _PROSE_NUMBER.finditer(prose(_text(cell["source"]))):
            v = m.group(1)
            value = round(float(v.rstrip("%")) / (100 if v.endswith("%") else 1), 12)
            if v not in text and value not in literals and v not in allowed:
                bad.append(v)
    return bad


@pytest.mark.parametrize("path", _chapters({}))
def test_prose_numbers_are_computed_on_the_page(path):
    bad = unbacked_numbers(path)
    assert not bad, (f"{path.name}: the prose quotes {bad}, which no strictly compared output shows and no "
                     f"code states: glue them ({{glue:text}}`name`), or say what they are in PROSE_CONSTANTS")


@pytest.mark.parametrize("path", _chapters({}))
def test_every_ignored_output_says_why(path):
    """A cell tagged nbval-ignore-output keeps its output on the page but escapes the strict
    comparison; its metadata's ``nbval_reason`` says what varies (and the cell asserts the claim)."""
    silent = [n for n, cell in enumerate(_code_cells(path))
              if "nbval-ignore-output" in cell["metadata"].get("tags", [])
              and not str(cell["metadata"].get("nbval_reason", "")).strip()]
    assert not silent, f"{path.name}: code cells {silent} ignore their output without an nbval_reason"


def test_unbacked_numbers_detector(tmp_path):
    cells = [{"cell_type": "code", "metadata": {}, "source": "lr = 2e-2\nassert acc >= 0.95\n",
              "outputs": [{"output_type": "stream", "name": "stdout", "text": "loss 1.07\n"}]},
             {"cell_type": "code", "metadata": {"tags": ["nbval-ignore-output"]}, "source": "print(x)",
              "outputs": [{"output_type": "stream", "name": "stdout", "text": "accuracy 0.97\n"}]},
             {"cell_type": "markdown", "metadata": {},
              "source": "At 0.02, loss 1.07, at least 95%, {glue:text}`acc:.2f` and `0.33`; but 0.97 and 12%."}]
    path = tmp_path / "99_x.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert unbacked_numbers(path) == ["0.97", "12%"]


def test_every_term_link_names_a_glossary_entry():
    index = _alias_index()
    bad = []
    for path in NOTEBOOKS + BOOK_PAGES:
        text = _markdown(path) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")
        for target in _TERM.findall(text):
            m = re.search(r"<([^>]+)>\s*$", target)
            name = (m.group(1) if m else target).strip()
            if name.lower() not in index:
                bad.append(f"{path.name}: {{term}}`{target}`")
    assert not bad, "links to terms the glossary does not define:\n" + "\n".join(bad)


# ----------------------------------------------------------------------------- the checks themselves


def test_prose_and_term_detection():
    md = ("The {term}`causal mask` hides the future. A padding mask hides `padding mask` code.\n"
          "```python\nlayer normalisation in code\n```\n$softmax$ and the Softmax here.\n# LayerNorm title")
    text = prose(md)
    assert "padding mask hides" in text and "layer normalisation" not in text and "title" not in text
    missing = unlinked_terms(md)
    assert "padding mask" in missing and "softmax" in missing
    assert not any(m in ("causal mask", "LayerNorm", "layer normalisation") for m in missing)
    # plurals and hyphen/space variants count as uses; generic words do not
    assert "multi-head attention" in unlinked_terms("Several multi-head attentions.")
    assert unlinked_terms("the key and the value of a token") == []


def test_width_and_echo_detectors(tmp_path):
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": ["x = 1  # " + "y" * 80 + "\n", "ok"],
                     "outputs": [{"output_type": "execute_result", "data": {"text/plain": "True"},
                                  "metadata": {}, "execution_count": 1},
                                 {"output_type": "stream", "name": "stdout", "text": ["z" * 86 + "\n"]},
                                 {"output_type": "display_data", "metadata": {},
                                  "data": {"image/png": "", "text/plain": "<Figure " + "w" * 90 + ">"}}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "99_x.ipynb"
    path.write_text(json.dumps(nb))
    assert [w.split(":")[0] for w in wide_lines(path)] == ["code cell 0 code (89)", "code cell 0 output (86)"]
    assert bare_echoes(path) == ["code cell 0 echoes True: ok"]


def test_hint_detector():
    def md(source):
        return {"cell_type": "markdown", "metadata": {}, "source": source}

    def code(source):
        return {"cell_type": "code", "metadata": {}, "source": source, "outputs": []}

    def nb(*cells):
        return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}

    exercise = "```{exercise} One\n:label: ex-99-one\n**Difficulty:** ★☆☆ · **Time:** 5 min\n\nDo it.\n```"
    stub = code("def f(x):\n    # TODO\n    raise NotImplementedError\n\n\nchecks.check_softmax(f)")
    hint = "```{admonition} Hint\n:class: dropdown tip\nWhich axis holds the keys?\n```"
    solution = [md("```{solution-start} ex-99-one\n:class: dropdown\n```\nBecause."), code("f = g"),
                md("```{solution-end}\n```")]
    good = nb(md(exercise), stub, md(hint), *solution)
    assert missing_hints(good) == []
    # the template's layout: the hint above the solution-start, in the same cell
    assert missing_hints(nb(md(exercise), stub, md(hint + "\n\n" + solution[0]["source"]), *solution[1:])) == []
    assert missing_hints(nb(md(exercise), stub, *solution)) == [
        "ex-99-one: no hint between its stub and its solution"]
    assert missing_hints(nb(md(exercise), stub, *solution, md(hint))) == [
        "ex-99-one: its hint comes after its solution; move it between the stub and the solution"]
    assert "not folded" in missing_hints(nb(md(exercise), stub, md(hint.replace("dropdown ", "")), *solution))[0]
    assert "above the stub" in missing_hints(nb(md(exercise + "\n\n" + hint), stub, *solution))[0]
    # a second exercise sharing the solution-end's cell needs its own hint: the first's does not count
    second = exercise.replace("ex-99-one", "ex-99-two")
    two = nb(md(exercise), stub, md(hint), *solution[:2], md(solution[2]["source"] + "\n\n" + second), stub,
             md(solution[0]["source"].replace("ex-99-one", "ex-99-two")), code("f = g"), solution[2])
    assert missing_hints(two) == ["ex-99-two: no hint between its stub and its solution"]
    # the skeleton of `make new-chapter` has a hint for each of its exercises
    import chapter_template
    skeleton = nb(*[(code if kind == "code" else md)(src) for kind, src, _ in chapter_template.cells(98, "x", "X")])
    assert missing_hints(skeleton) == []


def test_sync_folds_the_setup_and_device_cells_and_is_idempotent(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_config.yml").write_text(
        "repository:\n  url: https://github.com/example/book\nattnlib_install_ref: v1\n", encoding="utf-8")
    canonical = sync_setup_cells.setup_cell_source(tmp_path)
    cells = [
        {"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# 1. T"]},
        {"cell_type": "code", "id": "b", "metadata": {"tags": ["keep"]}, "execution_count": 1, "outputs": [],
         "source": canonical.splitlines(keepends=True)},
        {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": 2,
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["cpu\n"]}],
         "source": ["device = attnlib.get_device()\n", "print(device)  # a very long comment"]},
        {"cell_type": "code", "id": "d", "metadata": {}, "execution_count": 3, "outputs": [],
         "source": ["device = attnlib.get_device()\n", "print(device)"]},
    ]
    path = tmp_path / "notebooks" / "01_t.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    drift = "unfolded, device differs, device reason"
    assert sync_setup_cells.sync_notebook(path, canonical, write=False) == drift
    assert sync_setup_cells.sync_notebook(path, canonical, write=True) == drift
    new = json.loads(path.read_text())["cells"]
    assert new[1]["metadata"]["tags"] == ["keep", "hide-input"]
    assert new[2]["metadata"]["tags"] == ["hide-input", "nbval-ignore-output"]
    assert new[2]["metadata"]["nbval_reason"] == sync_setup_cells.DEVICE_REASON
    assert "".join(new[2]["source"]) == sync_setup_cells.DEVICE_TEMPLATE
    assert new[2]["outputs"] == cells[2]["outputs"] and new[3] == cells[3], "only the device cell after set-up"
    assert sync_setup_cells.sync_notebook(path, canonical, write=True) is None


def test_setup_and_device_templates_fit_the_page():
    for text in (sync_setup_cells.setup_cell_source(ROOT), sync_setup_cells.DEVICE_TEMPLATE):
        assert max(len(line) for line in text.splitlines()) <= PAGE_WIDTH


# ----------------------------------------------------------------------------- bibliography

BIB = ROOT / "book" / "references.bib"
_CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")


def bib_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,\s]+),", BIB.read_text(encoding="utf-8"), re.M)


def cited_keys() -> dict[str, list[str]]:
    """cited key -> the pages citing it (notebook markdown and book/*.md)."""
    found: dict[str, list[str]] = {}
    for path in NOTEBOOKS + BOOK_PAGES:
        text = _markdown(path) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")
        for group in _CITE.findall(text):
            for key in group.split(","):
                found.setdefault(key.strip(), []).append(path.name)
    return found


def test_every_bib_entry_is_cited():
    keys = bib_keys()
    assert len(keys) == len(set(keys)), "duplicate keys in references.bib"
    uncited = sorted(set(keys) - set(cited_keys()))
    assert not uncited, f"references.bib entries cited nowhere (cite them or remove them): {uncited}"


def test_every_citation_resolves():
    missing = {k: v for k, v in cited_keys().items() if k not in set(bib_keys())}
    assert not missing, f"cited keys missing from references.bib: {missing}"


def test_bib_titles_hold_no_math():
    # The bibliography page shows a title's "$O(n^2)$" as those seven characters (MathJax does
    # not typeset it there, and bibtex lower-cases an unprotected "O"): write O(n²) instead.
    for title in re.findall(r"^\s*title\s*=\s*\{(.*)\},?\s*$", BIB.read_text(encoding="utf-8"), re.M):
        assert "$" not in title, f"math in a bibliography title shows as raw TeX: {title!r}"


# ----------------------------------------------------------------------------- glossary coverage

# Terms the chapters 6-11 rely on (issue 14): each must have a glossary entry.
REQUIRED_TERMS = ["GELU", "AdamW", "warm-up", "pre-LN", "post-LN", "autocast", "SRAM", "HBM",
                  "meta device", "FLOP", "ablation", "long-range dependency", "parallelism"]


@pytest.mark.parametrize("term", REQUIRED_TERMS)
def test_glossary_defines_the_terms_the_chapters_use(term):
    assert term.lower() in _alias_index(), f"book/glossary.md has no entry for {term!r}"

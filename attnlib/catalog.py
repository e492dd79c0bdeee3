"""What a chapter author can use: every exercise checker, widget and figure function of attnlib,
with its one-line purpose and where the book uses it.

    python -m attnlib.checks              # the whole catalog
    python -m attnlib.checks widgets      # one kind: checks, widgets or viz

The purpose is the first line of each object's docstring (continued to the end of its sentence). "Used in" is found by scanning the
chapters (``notebooks/*.ipynb`` next to this package, when attnlib runs from a checkout of the
book): a call ``checks.NAME(``, ``widgets.NAME(`` or ``viz.NAME(`` in a code cell counts, and a
checker call is attributed to the exercise whose ``:label:`` precedes it in the chapter.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import _validate as V

__all__ = ["Entry", "KINDS", "entries", "usage", "format_catalog", "main"]

KINDS = ("checks", "widgets", "viz")
_LABEL = re.compile(r"^:label:\s*(ex-\S+)\s*$", re.M)
_SOLUTION_END = re.compile(r"\{solution-end\}")


@dataclass
class Entry:
    kind: str  # "checks", "widgets" or "viz"
    name: str
    purpose: str  # the docstring's first line (to the end of its sentence)
    signature: str
    used_in: list[str] = field(default_factory=list)  # exercise labels, or chapter names


def _purpose(obj) -> str:
    """The docstring's first line, continued to the end of its sentence (or of its paragraph)."""
    doc = (inspect.getdoc(obj) or "").strip()
    if not doc:
        return "(no docstring)"
    paragraph = " ".join(line.strip() for line in doc.split("\n\n")[0].splitlines())
    first = doc.splitlines()[0].strip()
    if first.endswith((".", ":")):
        return first
    end = re.search(r"[.:](\s|$)", paragraph[len(first):])
    return paragraph if end is None else paragraph[: len(first) + end.start() + 1]


def _signature(obj) -> str:
    try:
        target = obj.__init__ if inspect.isclass(obj) else obj
        sig = inspect.signature(target)
        params = [p for p in sig.parameters.values() if p.name != "self" and p.kind is not p.VAR_KEYWORD]
        return "(" + ", ".join(str(p) for p in params) + ")"
    except (TypeError, ValueError):
        return "(...)"


def _module(kind: str):
    import importlib

    return importlib.import_module(f"attnlib.{kind}")


def entries(kind: str) -> list[Entry]:
    """Every public object of ``attnlib.<kind>`` (its ``__all__``) that is a function or class."""
    if kind not in KINDS:
        raise ValueError(f"entries: kind must be one of {KINDS}, got {kind!r}")
    module = _module(kind)
    out = []
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if kind == "checks" and not name.startswith("check_"):
            continue
        if kind == "widgets" and not inspect.isclass(obj):
            continue  # helpers such as esm_source are for widget authors, not chapter authors
        if inspect.isfunction(obj) or inspect.isclass(obj):
            out.append(Entry(kind, name, _purpose(obj), _signature(obj)))
    return sorted(out, key=lambda e: e.name)


def default_root() -> Path | None:
    """The book checkout this attnlib runs from, if it is one (a ``notebooks`` folder beside it)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "notebooks").is_dir() else None


def usage(root: Path | str | None = None) -> dict[tuple[str, str], list[str]]:
    """(kind, name) -> where the chapters call it: exercise labels for calls inside an exercise
    (between its directive and the end of its solution), else the chapter's name. ``root``: a checkout
    of the book (a folder with ``notebooks/``), as a str or a pathlib.Path; None: this attnlib's."""
    root = default_root() if root is None else _book_root(root)
    found: dict[tuple[str, str], list[str]] = {}
    if root is None:
        return found
    call = re.compile(r"\b(checks|widgets|viz)\.([A-Za-z_]\w*)\s*\(")
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        where = path.stem
        for cell in nb.get("cells", []):
            text = "".join(cell.get("source", ""))
            if cell.get("cell_type") == "markdown":
                for m in re.finditer(rf"{_LABEL.pattern}|{_SOLUTION_END.pattern}", text, re.M):
                    where = m.group(1) if m.group(1) else path.stem
                continue
            if cell.get("cell_type") != "code":
                continue
            for kind, name in call.findall(text):
                places = found.setdefault((kind, name), [])
                if where not in places:
                    places.append(where)
    return found


def _book_root(root) -> Path:
    """usage's ``root``: a str or os.PathLike naming a folder that holds ``notebooks/``."""
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"usage: root must be a folder (a str or a pathlib.Path) or None, got {V.describe(root)}")
    path = Path(root)
    if not (path / "notebooks").is_dir():
        raise ValueError(f"usage: root must be a checkout of the book (a folder with a notebooks/ folder), "
                         f"got {str(root)!r}")
    return path


def catalog(kinds=KINDS, root: Path | None = None) -> list[Entry]:
    used = usage(root)
    out = []
    for kind in kinds:
        for e in entries(kind):
            e.used_in = used.get((kind, e.name), [])
            out.append(e)
    return out


TITLES = {"checks": "Checkers (attnlib.checks): call one under an exercise's stub, e.g. checks.check_softmax(fn)",
          "widgets": "Widgets (attnlib.widgets): anywidget classes that also work in the static book",
          "viz": "Figures (attnlib.viz): matplotlib, queries as rows and keys as columns"}


def format_catalog(items: list[Entry], width: int = 100) -> str:
    """The catalog as text: ``items`` (a list of Entry, e.g. from :func:`entries`) grouped by kind,
    wrapped at ``width`` characters."""
    import textwrap

    items = _entries("format_catalog", items)
    V.positive_int("format_catalog", "width", width)
    lines = []
    for kind in KINDS:
        group = [e for e in items if e.kind == kind]
        if not group:
            continue
        lines += ["", TITLES[kind], "=" * len(TITLES[kind])]
        for e in group:
            lines.append(f"{e.name}{e.signature}")
            lines += textwrap.wrap(e.purpose, width, initial_indent="    ", subsequent_indent="    ")
            used = ", ".join(e.used_in) if e.used_in else "not used in any chapter yet"
            lines += textwrap.wrap(f"used in: {used}", width, initial_indent="    ",
                                   subsequent_indent="             ")
    return "\n".join(lines).lstrip("\n")


def _entries(who: str, items) -> list[Entry]:
    """A list (or another iterable, not a str) of Entry, as a list (read once per kind)."""
    if isinstance(items, (str, Entry)) or not hasattr(items, "__iter__"):
        raise TypeError(f"{who}: items must be a list of Entry (e.g. entries('viz')), got {V.describe(items)}")
    items = list(items)
    for i, e in enumerate(items):
        if not isinstance(e, Entry):
            raise TypeError(f"{who}: every item of items must be an Entry, got {V.describe(e)} at index {i}")
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attnlib.checks", description=__doc__.split("\n\n")[0])
    parser.add_argument("kinds", nargs="*", metavar="KIND", help="checks, widgets and/or viz (default: all three)")
    args = parser.parse_args(argv)
    unknown = [k for k in args.kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kind {unknown[0]!r}: choose from {', '.join(KINDS)}")
    kinds = [k for k in KINDS if k in args.kinds] if args.kinds else list(KINDS)
    print(format_catalog(catalog(kinds)))
    if default_root() is None:
        print("\n(attnlib is not running from a checkout of the book, so 'used in' is unknown)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

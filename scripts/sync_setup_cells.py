#!/usr/bin/env python3
"""Keep the set-up cell that opens every chapter in sync with ``_config.yml``.

The first code cell of every notebook in ``notebooks/`` imports attnlib and, only on Colab and only
when that import fails, installs attnlib from the book's repository at a fixed git ref. The
repository URL (``repository.url``) and the ref (``attnlib_install_ref``) are stated once, in
``_config.yml``; this script writes the cell from them.

    python scripts/sync_setup_cells.py           # rewrite drifting set-up cells in place
    python scripts/sync_setup_cells.py --check   # exit 1 and list the notebooks that drift

The set-up cell carries no lesson, so the book folds it: the script gives it the ``hide-input``
tag (the published page shows a "show code" toggle and the cell's output; in Jupyter, VS Code and
Colab the tag does nothing and the cell stays an ordinary first cell). The device cell that follows
it (``device = attnlib.get_device()`` and ``print(device)``, nothing else but comments) is written
from one template too, folded the same way and tagged ``nbval-ignore-output``: its output names the
machine's device. Only the source and the tags of these two cells change: outputs, other metadata
and every other cell are left as they are. A notebook whose first code cell is not a set-up cell
(it does not start with ``# Set-up:``) gets the set-up cell inserted in front of it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MARKER = "# Set-up:"

TEMPLATE = '''\
# Set-up: the same cell opens every chapter (scripts/sync_setup_cells.py writes it).
import sys

if "google.colab" in sys.modules:  # Colab: install attnlib; keep its own torch
    try:
        import attnlib
    except ImportError:
        import subprocess

        url = "git+{url}@{ref}"
        pip = [sys.executable, "-m", "pip", "install", "-q", f"attnlib @ {{url}}"]
        subprocess.run(pip, check=True)
    from google.colab import output

    output.enable_custom_widget_manager()

import attnlib'''

# The cell after the set-up cell picks the device. A cell whose code (comments aside) is exactly
# DEVICE_CODE is a device cell and is rewritten to DEVICE_TEMPLATE.
DEVICE_CODE = ["device = attnlib.get_device()", "print(device)"]
DEVICE_TEMPLATE = '''\
device = attnlib.get_device()  # a CUDA or Apple GPU if there is one, else the CPU
print(device)  # depends on the machine, so the tests do not compare this output'''

FOLD = "hide-input"  # the book shows the cell's output and a toggle for its code
DEVICE_TAGS = (FOLD, "nbval-ignore-output")
DEVICE_REASON = "names the machine's device (cpu, cuda or mps)"  # every ignored output says why


def read_config(root: Path = ROOT) -> tuple[str, str]:
    """Return (repository url, git ref to install) from ``_config.yml``."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    try:
        url = config["repository"]["url"].rstrip("/")
        ref = str(config["attnlib_install_ref"])
    except (KeyError, TypeError, AttributeError) as err:
        raise SystemExit(f"_config.yml must set repository.url and attnlib_install_ref ({err!r})") from err
    if url.endswith(".git"):
        url = url[: -len(".git")]
    return url, ref


def setup_cell_source(root: Path = ROOT) -> str:
    """The canonical text of the set-up cell."""
    url, ref = read_config(root)
    return TEMPLATE.format(url=url, ref=ref)


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _new_code_cell(nb: dict, text: str) -> dict:
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": _lines(text)}
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):
        import uuid

        cell["id"] = uuid.uuid4().hex[:8]
    return cell


def _code_lines(text: str) -> list[str]:
    """The lines of ``text`` without comments and blank lines (for recognising a device cell)."""
    out = []
    for line in text.splitlines():
        code = line.split("#", 1)[0].strip()
        if code:
            out.append(code)
    return out


def is_device_cell(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and _code_lines(_source(cell)) == DEVICE_CODE


def _add_tags(cell: dict, tags) -> bool:
    """Add ``tags`` to the cell's metadata (keeping its other tags, in order); True if it changed."""
    have = list(cell.setdefault("metadata", {}).get("tags", []))
    missing = [t for t in tags if t not in have]
    if missing:
        cell["metadata"]["tags"] = have + missing
    return bool(missing)


def sync_notebook(path: Path, canonical: str, *, write: bool) -> str | None:
    """Return None when ``path`` is in sync, else what drifted: "differs" (set-up cell's text),
    "missing" (no set-up cell), "unfolded" (a tag is missing) or "device differs"; fixed when ``write``."""
    raw = path.read_text(encoding="utf-8")
    nb = json.loads(raw)
    cells = nb.get("cells", [])
    first = next((i for i, c in enumerate(cells) if c.get("cell_type") == "code"), None)
    drift = []
    if first is not None and _source(cells[first]).startswith(MARKER):
        if _source(cells[first]) != canonical:
            drift.append("differs")
            cells[first]["source"] = _lines(canonical)
    else:
        drift.append("missing")
        first = len(cells) if first is None else first
        cells.insert(first, _new_code_cell(nb, canonical))
    if _add_tags(cells[first], [FOLD]) and "missing" not in drift:
        drift.append("unfolded")
    device = next((i for i in range(first + 1, len(cells)) if cells[i].get("cell_type") == "code"), None)
    if device is not None and is_device_cell(cells[device]):
        if _source(cells[device]) != DEVICE_TEMPLATE:
            drift.append("device differs")
            cells[device]["source"] = _lines(DEVICE_TEMPLATE)
        if _add_tags(cells[device], DEVICE_TAGS) and "unfolded" not in drift:
            drift.append("unfolded")
        if cells[device]["metadata"].get("nbval_reason") != DEVICE_REASON:
            cells[device]["metadata"]["nbval_reason"] = DEVICE_REASON
            drift.append("device reason")
    if not drift:
        return None
    if write:
        # the layout nbformat itself writes (sorted keys, one-space indent), so diffs stay small
        path.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return ", ".join(drift)


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in (root / "notebooks").glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook drifts")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    args = parser.parse_args(argv)
    canonical = setup_cell_source(args.root)
    paths = args.paths or notebooks(args.root)
    drift = []
    for path in paths:
        action = sync_notebook(path, canonical, write=not args.check)
        if action:
            drift.append(f"{path}: {action}" + ("" if args.check else " (fixed)"))
    for line in drift:
        print(line)
    if args.check and drift:
        print(f"{len(drift)} notebook(s) out of sync with _config.yml; run `make sync` "
              "(python scripts/sync_setup_cells.py), then re-execute them.", file=sys.stderr)
        return 1
    if not drift:
        print(f"{len(paths)} notebook(s) in sync.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

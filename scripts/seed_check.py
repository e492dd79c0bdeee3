#!/usr/bin/env python3
"""Run the chapters that train a model with every seed shifted: their asserted claims must hold.

A chapter that trains a model states what the model learned (a loss, an accuracy, a head that does
one job) and asserts it. Those claims must not belong to one lucky seed. This script executes each
such chapter top to bottom in a fresh kernel (nbclient), once per offset, with a preamble cell
injected before the chapter's first cell that adds the offset to every seed the chapter sets:

* ``torch.manual_seed(s)`` (and ``torch.random.manual_seed``) seeds ``s + offset``;
* ``torch.Generator(...).manual_seed(s)`` seeds ``s + offset`` (``torch.Generator`` becomes a
  subclass whose ``manual_seed`` shifts; attnlib's ``seed_everything``, ``get_batch`` and the
  chapters create their generators through it);
* ``random.Random(s)`` / ``random.seed(s)`` (the generated corpora of ``attnlib.data`` and
  ``attnlib.translation``) and ``numpy.random.seed`` / ``numpy.random.default_rng`` likewise.

The chapter's text is not changed. A postamble cell checks that the chapter really set a seed
through one of these (otherwise the run would prove nothing). Any error, a failed ``assert`` above
all, fails the run; the message names the notebook, the offset and the cell.

Which notebooks: those given on the command line, else every ``notebooks/*.ipynb`` whose notebook
metadata has ``"attnlib": {"trains": true}``. Which offsets: ``--offsets``, else the notebook's
``"attnlib": {"seed_offsets": [...]}``, else 1 and 2. A chapter that already trains several seeds
and asserts its claims for each (chapter 10 trains seeds 0, 1 and 2) needs one run: offset 3
trains seeds 3, 4 and 5, three seeds the chapter never saw.

    python scripts/seed_check.py                          # every training chapter, its offsets
    python scripts/seed_check.py --offsets 1 2 3 notebooks/10_training.ipynb
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OFFSETS = (1, 2)

PREAMBLE = '''\
# seed_check preamble (not part of the chapter): every seed the chapter sets is shifted by OFFSET.
import random as _random

import torch as _torch

_SEED_OFFSET = {offset}
_seed_calls = []


def _shift(seed, where):
    if isinstance(seed, int) and not isinstance(seed, bool):
        _seed_calls.append(where)
        return seed + _SEED_OFFSET
    return seed


_torch_manual_seed = _torch.random.manual_seed


def _manual_seed(seed):
    return _torch_manual_seed(_shift(seed, "torch.manual_seed"))


_torch.manual_seed = _torch.random.manual_seed = _manual_seed


class _ShiftedGenerator(_torch.Generator):
    def manual_seed(self, seed):
        return super().manual_seed(_shift(seed, "torch.Generator.manual_seed"))


_torch.Generator = _ShiftedGenerator


class _ShiftedRandom(_random.Random):
    def seed(self, a=None, version=2):
        super().seed(_shift(a, "random.Random"), version)


_random.Random = _ShiftedRandom
_random_seed = _random.seed
_random.seed = lambda a=None, version=2: _random_seed(_shift(a, "random.seed"), version)
try:
    import numpy as _np
except ImportError:
    pass
else:
    _np_seed, _np_default_rng = _np.random.seed, _np.random.default_rng
    _np.random.seed = lambda seed=None: _np_seed(_shift(seed, "numpy.random.seed"))
    _np.random.default_rng = lambda seed=None: _np_default_rng(_shift(seed, "numpy.random.default_rng"))
print("SEED_OFFSET=" + str(_SEED_OFFSET))
'''

POSTAMBLE = '''\
# seed_check postamble: which seeding calls the chapter made (each one was shifted).
print("SEED_CALLS=" + ",".join(sorted(set(_seed_calls))))
'''


def preamble(offset: int) -> str:
    """The source of the preamble cell that shifts every seed by ``offset``."""
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise TypeError(f"preamble: offset must be an int, got {type(offset).__name__}")
    return PREAMBLE.format(offset=offset)


def training_notebooks(folder: Path = ROOT / "notebooks") -> list[Path]:
    """The notebooks whose metadata says ``"attnlib": {"trains": true}``."""
    import nbformat

    return [p for p in sorted(folder.glob("*.ipynb"))
            if nbformat.read(p, as_version=4).metadata.get("attnlib", {}).get("trains") is True]


def notebook_offsets(path: Path) -> list[int]:
    """The seed offsets a notebook asks for in its metadata, else ``DEFAULT_OFFSETS``."""
    import nbformat

    offsets = nbformat.read(path, as_version=4).metadata.get("attnlib", {}).get("seed_offsets")
    if offsets is None:
        return list(DEFAULT_OFFSETS)
    if (not isinstance(offsets, list) or not offsets
            or not all(isinstance(o, int) and not isinstance(o, bool) and o != 0 for o in offsets)):
        raise ValueError(f"seed_check: {path.name}: metadata attnlib.seed_offsets must be a non-empty "
                         f"list of non-zero integers, got {offsets!r}")
    return offsets


def _text(outputs) -> str:
    parts = []
    for o in outputs:
        if o.get("output_type") == "stream":
            parts.append(o.get("text", ""))
        elif "data" in o and "text/plain" in o["data"]:
            parts.append(o["data"]["text/plain"])
    return "".join(parts)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _failure(nb, n_before: int) -> str | None:
    """Describe the first cell with an error output: its number in the chapter and the error."""
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                where = f"cell {i - n_before}" if i >= n_before else "the preamble"
                if i == len(nb.cells) - 1:
                    where = "the postamble"
                frames = _ANSI.sub("", "\n".join(o.get("traceback", [])))
                line = ""
                m = re.findall(r"^-*> *\d+ (.*)$", frames, flags=re.M)
                if m:
                    line = f" at `{m[-1].strip()}`"
                return f"{where}{line}: {o.get('ename')}: {o.get('evalue')}"
    return None


def run(path: Path, offset: int, timeout: int = 600) -> tuple[str | None, float, str]:
    """Execute one notebook with seeds shifted by ``offset``.

    Returns (the failure or None, seconds, the seeding calls the chapter made).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(preamble(offset)))
    nb.cells.append(nbformat.v4.new_code_cell(POSTAMBLE))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError:
        error = _failure(nb, 1) or "a cell failed"
    except Exception as err:  # kernel died, timeout, ...
        error = f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - t0
    calls = ""
    m = re.search(r"SEED_CALLS=(.*)", _text(nb.cells[-1].get("outputs", [])))
    if m:
        calls = m.group(1).strip()
    if error is None and f"SEED_OFFSET={offset}" not in _text(nb.cells[0].get("outputs", [])):
        error = "the preamble did not run"
    if error is None and not calls:
        error = "the chapter set no seed that the preamble could shift, so this run proves nothing"
    return error, seconds, calls


def _split_offsets(items: list[str]) -> tuple[list[int], list[Path]]:
    """`--offsets 1 2 notebooks/x.ipynb`: the leading integers are offsets, the rest notebooks."""
    offsets, extra = [], []
    for item in items:
        if not extra and re.fullmatch(r"-?\d+", item):
            offsets.append(int(item))
        else:
            extra.append(Path(item))
    return offsets, extra


def _notebooks_problem(notebooks: list[Path]) -> str | None:
    """Why the notebooks cannot be run (none, or some missing), or None."""
    if not notebooks:
        return "no notebook to run"
    missing = [str(n) for n in notebooks if not n.is_file()]
    if missing:
        return f"no such notebook: {', '.join(missing)}"
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebooks", nargs="*", type=Path,
                   help='default: every notebooks/*.ipynb with metadata "attnlib": {"trains": true}')
    p.add_argument("--offsets", nargs="+", default=None, metavar="N",
                   help="seed offsets to run with (default: the notebook's metadata "
                   "attnlib.seed_offsets, else "
                   f"{' '.join(map(str, DEFAULT_OFFSETS))}); notebooks may follow them")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = p.parse_args(argv)
    offsets, extra = _split_offsets(args.offsets or [])
    if args.offsets is not None and not offsets:
        p.error(f"--offsets needs at least one integer, got {' '.join(args.offsets)}")
    args.offsets = offsets or None
    args.notebooks = [*extra, *args.notebooks]

    notebooks = [n.resolve() for n in args.notebooks] or training_notebooks()
    problem = _notebooks_problem(notebooks)
    if problem:
        print(f"seed-check: FAILED: {problem}", file=sys.stderr)
        return 1
    # "python3" is this environment's kernel, ahead of any user-wide kernelspec.
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(Path(sys.prefix) / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")]).strip(os.pathsep)
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    try:
        plan = {nb: args.offsets or notebook_offsets(nb) for nb in notebooks}
    except ValueError as e:
        print(f"seed-check: FAILED: {e}", file=sys.stderr)
        return 1
    failures = []
    print(f"{'notebook':<28} {'offset':>6} {'seconds':>8}  result")
    for nb_path, nb_offsets in plan.items():
        for offset in nb_offsets:
            error, seconds, calls = run(nb_path, offset, args.timeout)
            status = f"ok (shifted: {calls})" if error is None else "FAILED"
            print(f"{nb_path.name:<28} {offset:>6} {seconds:>8.1f}  {status}", flush=True)
            if error is not None:
                failures.append(f"{nb_path.name}, seed offset {offset}: {error}")
    for f in failures:
        print(f"seed-check: FAILED: {f}", file=sys.stderr)
    if failures:
        return 1
    runs = "; ".join(f"{nb.name} {' '.join(map(str, o))}" for nb, o in plan.items())
    print(f"seed-check: {len(notebooks)} notebook(s) passed with seed offsets: {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

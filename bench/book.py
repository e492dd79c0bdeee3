"""How long the book takes to execute: every chapter from scratch on the CPU, and optionally `make test`.

Each notebook in ``notebooks/`` is executed top to bottom with nbclient in a fresh kernel of the
Python running this script (the notebook on disk is not changed), with CUDA hidden
(``CUDA_VISIBLE_DEVICES=""``) so the chapters take their CPU configuration. The time of each, from
kernel start to the last cell, and the total are printed; the target is the whole book in under
5 minutes on a 2-core CPU. ``--make-test`` also times ``make test`` (which includes the book build,
nbval and the Colab-like job: many minutes).

    python bench/book.py                  # every chapter
    python bench/book.py --quick          # the first chapter only (CI smoke test)
    python bench/book.py --markdown       # a table ready for bench/RESULTS.md
    python bench/book.py --make-test      # ... and the time of `make test`
    python bench/book.py --gpu            # leave CUDA visible: the chapters' GPU configuration
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu_name  # (bench/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 300.0


def execute(path: Path, timeout: int) -> tuple[float, str | None]:
    """Seconds to execute ``path`` in a fresh kernel, and the error (None when it ran clean)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    try:
        client.execute()
        error = None
    except Exception as err:  # a cell error, a timeout, a dead kernel: report, keep timing the rest
        error = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
    return time.perf_counter() - t0, error


def machine() -> str:
    import torch

    cpu = cpu_name()

    return f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; torch {torch.__version__}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    p.add_argument("--quick", action="store_true", help="only the first notebook (CI smoke test)")
    p.add_argument("--make-test", action="store_true", help="also time `make test`")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--gpu", action="store_true", help="leave CUDA visible (time the chapters on a GPU)")
    args = p.parse_args(argv)

    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    if args.quick:
        notebooks = notebooks[:1]
    if not notebooks:
        print("no notebooks found", file=sys.stderr)
        return 1
    if not args.gpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the kernels inherit it: every chapter runs on the CPU
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # "python3" = a kernel of this environment, ahead of any user-wide kernelspec
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(Path(sys.prefix) / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")]).strip(os.pathsep)

    print(machine())
    rows, failed = [], 0
    for nb in notebooks:
        seconds, error = execute(Path(nb).resolve(), args.timeout)
        failed += error is not None
        rows.append((Path(nb).name, seconds, error))
        print(f"  {Path(nb).name:<34} {seconds:7.1f} s  {'ok' if error is None else 'ERROR ' + error}", flush=True)
    total = sum(r[1] for r in rows)
    verdict = "within" if total <= TARGET_S else "OVER"
    print(f"  {'total':<34} {total:7.1f} s  ({verdict} the {TARGET_S / 60:.0f}-minute target"
          f"{'' if not args.quick else '; --quick: first chapter only'})")

    make_s = None
    if args.make_test:
        t0 = time.perf_counter()
        res = subprocess.run(["make", "test"], cwd=ROOT)
        make_s = time.perf_counter() - t0
        print(f"  make test: {make_s:.0f} s (exit status {res.returncode})")
        failed += res.returncode != 0

    if args.markdown:
        print("\n| chapter | seconds |\n|---|---:|")
        for name, seconds, error in rows:
            print(f"| {name} | {seconds:.1f}{' (error)' if error else ''} |")
        print(f"| **total** | **{total:.1f}** |")
        if make_s is not None:
            print(f"| `make test` | {make_s:.0f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

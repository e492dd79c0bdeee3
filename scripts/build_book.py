#!/usr/bin/env python3
"""Build the book once and share the build: ``make book``, ``make test`` and pytest all use this.

    python scripts/build_book.py            # build unless the last build is still current
    python scripts/build_book.py --force    # rebuild every page (jupyter-book build --all)
    python scripts/build_book.py --execute  # and run every chapter, committed or not

Steps:

1. **The execution cache.** jupyter-book re-executes a chapter only when its code cells changed
   (the jupyter-cache in ``_build/.jupyter_cache`` keys on them), so a change to attnlib (its Python,
   the widgets' JavaScript or CSS) would leave pages showing the old library. When any file under
   ``attnlib/`` is newer than the stamp ``_build/.attnlib-stamp``, the cache is dropped, the stamp
   written again, and the build passes ``--all`` (a fresh Sphinx environment: an incremental Sphinx
   build re-reads only pages whose source changed, so without it nothing would run again). Every
   chapter then runs with the current library.
2. **Committed chapters are not run again.** A chapter whose notebook is exactly as committed in git,
   with attnlib exactly as committed too, goes into the execution cache with its committed outputs
   before the build: ``make test`` runs every committed chapter anyway (nbval executes it and
   compares each output with the committed one, and a commit lands only when that passes), so the
   book shows outputs that the same test run reproduces, and a fresh clone builds in about a
   minute. A chapter you changed (or every chapter, once attnlib changed) is executed by the
   build as before. ``--execute`` (``make book EXECUTE=1``) seeds nothing and runs every chapter.
3. **The build.** ``jupyter-book build . -W -n --keep-going`` (warnings are errors), its output shown
   and saved to ``_build/book-build.log``; its exit status, start time and duration to
   ``_build/book-build.json``. A build after a failed one passes ``--all``, so every page is read
   again and every warning is reported again (an incremental Sphinx build stays quiet about pages it
   does not re-read).
4. **No rebuild when nothing changed.** When no input (``notebooks/``, ``book/``, ``attnlib/``,
   ``_config.yml``, ``_toc.yml``, ``requirements.txt``, ``pyproject.toml``, the venv) changed since
   the recorded build started, nothing runs: the recorded result (and its exit status) stands. So
   ``make book`` followed by ``make test`` builds once, and tests/conftest.py's ``built_book``
   fixture reads the same record instead of building again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_FLAGS = ["-W", "-n", "--keep-going"]
# What a build reads. A change to any file below these paths makes the recorded build stale.
INPUTS = ["_config.yml", "_toc.yml", "requirements.txt", "pyproject.toml", "notebooks", "book",
          "attnlib", ".venv/.installed"]
SKIP_PARTS = {"__pycache__", ".ipynb_checkpoints", "node_modules"}


@dataclass
class Build:
    """One recorded build: where its html is, its exit status, its whole log, how long it took."""

    html: Path
    returncode: int
    log: str
    seconds: float
    reused: bool  # True when nothing was built now (the recorded build was still current)


def _paths(root: Path) -> dict[str, Path]:
    build = root / "_build"
    return {"build": build, "html": build / "html", "cache": build / ".jupyter_cache",
            "stamp": build / ".attnlib-stamp", "log": build / "book-build.log",
            "record": build / "book-build.json"}


def _files(root: Path, names: list[str]):
    for name in names:
        path = root / name
        if path.is_file():
            yield path
        elif path.is_dir():
            for sub in path.rglob("*"):
                if sub.is_file() and not SKIP_PARTS.intersection(sub.relative_to(root).parts):
                    yield sub


def newest_input(root: Path = ROOT) -> tuple[float, Path | None]:
    """The latest modification time among the build's inputs, and the file that has it."""
    best, which = 0.0, None
    for f in _files(root, INPUTS):
        mtime = f.stat().st_mtime
        if mtime > best:
            best, which = mtime, f
    return best, which


def refresh_execution_cache(root: Path = ROOT, *, quiet: bool = False) -> bool:
    """Drop the jupyter-cache when attnlib changed since the stamp (or there is no stamp) and write
    the stamp again. True when it did: the next build must then re-read every page, because Sphinx
    re-reads (and so re-executes) only pages whose source changed, whatever the cache holds."""
    p = _paths(root)
    sources = [f for f in _files(root, ["attnlib"]) if f.suffix in {".py", ".js", ".css"}]
    stamp_time = p["stamp"].stat().st_mtime if p["stamp"].exists() else None
    changed = stamp_time is None or any(f.stat().st_mtime > stamp_time for f in sources)
    if changed:
        if p["cache"].exists():
            if not quiet:
                print("attnlib changed since the last build: dropping the execution cache, every chapter "
                      "runs again", flush=True)
            shutil.rmtree(p["cache"])
        p["build"].mkdir(parents=True, exist_ok=True)
        p["stamp"].write_text("attnlib sources as of this file's modification time\n", encoding="utf-8")
    return changed


def read_record(root: Path = ROOT) -> dict | None:
    p = _paths(root)
    try:
        record = json.loads(p["record"].read_text(encoding="utf-8"))
        record["log"] = p["log"].read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    return record if (p["html"] / "index.html").exists() else None


def is_current(record: dict | None, root: Path = ROOT) -> bool:
    """The recorded build saw every input as it is now (no input changed after it started)."""
    return record is not None and newest_input(root)[0] < record["started"]


def _git(root: Path, *args: str) -> list[str] | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.splitlines()


def committed_chapters(root: Path = ROOT) -> list[Path]:
    """The notebooks under notebooks/ that are exactly as committed (tracked, no change staged or
    not), provided nothing under attnlib/ differs from the commit either; [] outside git."""
    tracked = _git(root, "ls-files", "--", "notebooks/*.ipynb")
    changed = _git(root, "status", "--porcelain", "--untracked-files=all", "--", "attnlib", "notebooks")
    if tracked is None or changed is None:
        return []
    dirty = {line[3:].split(" -> ")[-1].strip('"') for line in changed}
    if any(d.startswith("attnlib/") for d in dirty):
        return []
    return [root / t for t in tracked if t not in dirty and (root / t).is_file()]


def seed_execution_cache(root: Path = ROOT, *, quiet: bool = False) -> list[Path]:
    """Put every committed chapter (see :func:`committed_chapters`) into the jupyter-cache with its
    committed outputs, so that the build does not execute it again. Returns the chapters seeded."""
    import nbformat
    from jupyter_cache import get_cache

    chapters = committed_chapters(root)
    if not chapters:
        return []
    cache = get_cache(str(_paths(root)["cache"]))
    seeded = []
    for path in chapters:
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
            continue  # already cached (seeded before, or executed with this code)
        except KeyError:
            pass
        cache.cache_notebook_file(str(path), uri=str(path), check_validity=False, overwrite=True,
                                  data={"source": "committed outputs"})
        seeded.append(path)
    if seeded and not quiet:
        print(f"{len(seeded)} committed chapter(s) use their committed outputs (make test's nbval "
              "reproduces them); changed chapters run in the build", flush=True)
    return seeded


def _jupyter_book() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "jupyter_book"]


def build(root: Path = ROOT, *, force: bool = False, quiet: bool = False, execute: bool = False) -> Build:
    """Build the book unless the recorded build is current (``force``: rebuild every page;
    ``execute``: also run every chapter instead of using the committed outputs)."""
    p = _paths(root)
    if execute and p["cache"].exists():
        shutil.rmtree(p["cache"])
    dropped = refresh_execution_cache(root, quiet=quiet) or execute
    record = read_record(root)
    if not force and is_current(record, root):
        if not quiet:
            verdict = "passed" if record["returncode"] == 0 else f"FAILED (exit {record['returncode']})"
            print(f"The book is up to date: nothing changed since the last build, which {verdict} "
                  f"({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(record['started']))}; log in "
                  f"{p['log'].relative_to(root)}). `make book FORCE=1` rebuilds every page.")
        return Build(p["html"], record["returncode"], record["log"], record["seconds"], reused=True)

    if not execute:
        seed_execution_cache(root, quiet=quiet)
    command = [*_jupyter_book(), "build", ".", *BUILD_FLAGS]
    if force or dropped or (record is not None and record["returncode"] != 0):
        command.append("--all")  # a fresh Sphinx environment: every page is read (and executed) again
    p["build"].mkdir(parents=True, exist_ok=True)
    started = time.time()
    t0 = time.perf_counter()
    chunks: list[bytes] = []
    proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    while chunk := os.read(proc.stdout.fileno(), 65536):
        chunks.append(chunk)
        if not quiet:
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    returncode = proc.wait()
    seconds = time.perf_counter() - t0
    log = b"".join(chunks).decode("utf-8", errors="replace")
    p["log"].write_text(log, encoding="utf-8")
    p["record"].write_text(json.dumps({"returncode": returncode, "started": started, "seconds": seconds,
                                       "command": command[1:]}, indent=1) + "\n", encoding="utf-8")
    return Build(p["html"], returncode, log, seconds, reused=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild every page even if nothing changed")
    parser.add_argument("--execute", action="store_true",
                        help="run every chapter, also those whose committed outputs could be used")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    result = build(args.root.resolve(), force=args.force or args.execute, execute=args.execute)
    if result.returncode != 0:
        print(f"\nThe book build FAILED (exit {result.returncode}); the whole log is in "
              f"{_paths(args.root.resolve())['log']}", file=sys.stderr)
        return result.returncode
    print(f"\nThe book is at {result.html / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Run make targets one after another, all of them whatever fails, and end with a table.

``make test`` is this script over ``TEST_TARGETS``:

    python scripts/run_suite.py lint sync-check pytest nbval ...
    python scripts/run_suite.py --make gmake --log-dir _build/test-logs lint pytest

Each target runs as ``make --no-print-directory TARGET`` (the flags of the calling make, such as
variables given on its command line, reach it through ``MAKEFLAGS``). Its output is shown as it
comes and saved to ``LOG_DIR/TARGET.log``. A target that prints a line starting with
``== skipped:`` and exits 0 counts as skipped (the rest of that line is the reason). At the end:
one row per target (passed / FAILED / skipped, and its time), the test ids that pytest or nbval
reported as failed, and where the log is; the exit status is 1 when any target failed.

With ``--jobs N`` (``make test JOBS=N``; the Makefile's default is the number of CPUs, at most 2)
N targets run at once, taken in the given order. Every chapter runs torch on one thread, so two
targets use two cores; their output is then not interleaved on the screen: each target's log is
printed whole when it finishes (in full when it failed, its last lines otherwise).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = re.compile(r"^== skipped: (.*)$", re.M)
# pytest's short summary lines ("FAILED tests/x.py::test_y - msg", "ERROR ..."), also nbval's cells
PYTEST_FAILED = re.compile(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", re.M)
MAX_IDS = 12


@dataclass
class Result:
    target: str
    status: str  # "passed", "FAILED" or "skipped"
    seconds: float
    log: Path
    note: str = ""
    failed_ids: list[str] = field(default_factory=list)


def duration(seconds: float) -> str:
    """``7 s``, ``2 min 05 s``."""
    s = round(seconds)
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


_PRINT = threading.Lock()
TAIL_LINES = 15


def run_target(make: str, target: str, log_dir: Path, stream: bool = True) -> Result:
    log = log_dir / f"{target}.log"
    if stream:
        print(f"\n==== make {target}", flush=True)
    else:
        with _PRINT:
            print(f"==== make {target}: started", flush=True)
    t0 = time.perf_counter()
    chunks: list[bytes] = []
    proc = subprocess.Popen([make, "--no-print-directory", target], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            close_fds=False)  # keep a parallel make's jobserver pipe
    assert proc.stdout is not None
    try:
        while chunk := os.read(proc.stdout.fileno(), 65536):
            chunks.append(chunk)
            if stream:
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
        code = proc.wait()
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise
    seconds = time.perf_counter() - t0
    text = b"".join(chunks).decode("utf-8", errors="replace")
    log.write_text(text, encoding="utf-8")
    if not stream:
        lines = text.splitlines()
        shown = lines if code != 0 else lines[-TAIL_LINES:]
        with _PRINT:
            print(f"\n==== make {target}: exit {code} after {duration(seconds)}"
                  + ("" if code != 0 or len(lines) <= TAIL_LINES else f" (last {TAIL_LINES} lines)"))
            print("\n".join(shown), flush=True)
    skipped = SKIP.search(text)
    if code != 0:
        ids = list(dict.fromkeys(PYTEST_FAILED.findall(text)))
        return Result(target, "FAILED", seconds, log, f"exit {code}", ids)
    if skipped:
        return Result(target, "skipped", seconds, log, skipped.group(1).strip())
    return Result(target, "passed", seconds, log)


def table(results: list[Result], total: float, root: Path = ROOT) -> str:
    width = max([len("target"), *(len(r.target) for r in results)])
    lines = [f"{'target':<{width}}  {'result':<7}  {'time':>10}  notes", "-" * (width + 40)]
    for r in results:
        try:
            log = r.log.relative_to(root)
        except ValueError:
            log = r.log
        note = r.note if r.status != "FAILED" else f"{r.note}, log: {log}"
        lines.append(f"{r.target:<{width}}  {r.status:<7}  {duration(r.seconds):>10}  {note}".rstrip())
        for test_id in r.failed_ids[:MAX_IDS]:
            lines.append(f"{'':<{width}}    failed: {test_id}")
        if len(r.failed_ids) > MAX_IDS:
            lines.append(f"{'':<{width}}    ... and {len(r.failed_ids) - MAX_IDS} more (see the log)")
    lines.append("-" * (width + 40))
    lines.append(f"{'total':<{width}}  {'':<7}  {duration(total):>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="+", help="make targets, run in this order")
    parser.add_argument("--make", default=os.environ.get("MAKE", "make"), help="the make program")
    parser.add_argument("--log-dir", type=Path, default=ROOT / "_build" / "test-logs",
                        help="where each target's output is saved (default: _build/test-logs)")
    parser.add_argument("--title", default="make test", help="name used in the summary")
    parser.add_argument("--jobs", type=int, default=1, help="targets run at once (default 1)")
    args = parser.parse_args(argv)
    args.log_dir.mkdir(parents=True, exist_ok=True)

    results: list[Result] = []
    t0 = time.perf_counter()
    interrupted = False
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.jobs == 1:
        for target in args.targets:
            try:
                results.append(run_target(args.make, target, args.log_dir))
            except KeyboardInterrupt:
                interrupted = True
                break
    else:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_target, args.make, t, args.log_dir, False) for t in args.targets]
            try:
                results = [f.result() for f in futures]  # the table keeps the given order
            except KeyboardInterrupt:
                interrupted = True
                results = [f.result() for f in futures if f.done() and not f.exception()]
    total = time.perf_counter() - t0

    failed = [r.target for r in results if r.status == "FAILED"]
    skipped = [r.target for r in results if r.status == "skipped"]
    print(f"\n==== {args.title}: summary (each target's output is in {args.log_dir})")
    print(table(results, total, Path.cwd()))
    if interrupted:
        verdict, code = f"{args.title}: interrupted after {len(results)} of {len(args.targets)} targets", 130
    elif failed:
        verdict, code = f"{args.title}: {len(failed)} of {len(results)} targets FAILED: {', '.join(failed)}", 1
    else:
        extra = f" ({len(skipped)} skipped: {', '.join(skipped)})" if skipped else ""
        verdict, code = f"{args.title}: all {len(results) - len(skipped)} targets passed{extra}", 0
    print(verdict)
    # last, the plain count line that CI systems read
    print(f"targets: {len(results) - len(failed) - len(skipped)} passed, {len(failed)} failed"
          + (f", {len(skipped)} skipped" if skipped else ""))
    return code

if __name__ == "__main__":
    sys.exit(main())

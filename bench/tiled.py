"""Time and peak memory of 2-D tiled attention against the explicit path, as ratios measured in the same run.

For each sequence length T it runs causal attention on the same (B, H, T, d_head) fp32 inputs with:

  explicit  ``attnlib.attention(q, k, v, is_causal=True, return_weights=True)``: the scores and the
            pattern written out as (B, H, T, T) tensors (the reference: ratio 1.00)
  sdpa      ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``, PyTorch's fused
            kernel, for context
  tiled 1-D ``attnlib.efficient.tiled_attention(..., block_k=128)``: every query in one tile, keys in
            tiles of 128 (chapter 12's first version; no tile can be skipped)
  tiled BxB ``tiled_attention(..., block_q=B, block_k=B)``: queries and keys in tiles of B, the tiles
            above the diagonal skipped (``--blocks``, default 128 and 256)

Time: forward pass only, under ``torch.inference_mode()``. After a warm-up call of every method the
methods run in an interleaved, rotating order for ``--repeats`` rounds (``measure`` of
bench/attention.py: each sample is ``inner`` back-to-back calls, ``inner`` chosen so a sample lasts
about ``--sample-s``); the median per call is reported, and the ratio to the explicit path is the
median over rounds of the ratio within a round.

Peak memory, two ways, each method in a **fresh process** (so no method inherits pages another one
made resident; with --quick one process for all):
  * peak RSS: the increase of the process's peak resident set size during the first call on the
    inputs, over the resident size just before it (inputs already made; one warm-up call on a tiny
    input has loaded the code and initialised the libraries). Linux only: /proc/self/clear_refs
    resets the peak, /proc/self/status reports it. Small allocations come from pages the process
    already holds, so a few MiB may read as 0;
  * largest tensor: ``attnlib.efficient.LargestTensor``, the largest tensor any PyTorch operation
    creates during the call (deterministic; blind to a fused kernel's internal buffers, so SDPA's
    reads as its output).
Slow-memory traffic: the elements moved to and from slow memory as the FlashAttention paper counts
them, ``TileStats.reads + writes`` for the tiled runs and ``explicit_slow_memory`` for the explicit
path (none for SDPA: its kernel is not ours to count).

Target (issue 17): the 2-D tiled path's peak memory at most 1/20 of the explicit path's at T = 8,192.

    python bench/tiled.py --threads 1            # T = 1024 .. 8192, B = 1, H = 1, d_head = 64
    python bench/tiled.py --threads 1 --heads 4 --max-t 4096
    python bench/tiled.py --quick                # T = 256, 512: a smoke test of a few seconds
    python bench/tiled.py --markdown             # a table ready for bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from _machine import cpu_name
from attention import measure

import attnlib
from attnlib import efficient as E

TARGET_T, TARGET_RATIO = 8192, 1 / 20


# --------------------------------------------------------------------------- the methods


def methods(blocks: list[int]) -> list[str]:
    return ["explicit", "sdpa", "tiled 1-D"] + [f"tiled {b}x{b}" for b in blocks]


def make_fn(name: str, q, k, v):
    """A no-argument call of method ``name`` on q, k, v (causal), returning the output."""
    if name == "explicit":
        return lambda: attnlib.attention(q, k, v, is_causal=True, return_weights=True)[0]
    if name == "sdpa":
        return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if name == "tiled 1-D":
        return lambda: E.tiled_attention(q, k, v, is_causal=True, block_k=128)
    b = int(name.split()[1].split("x")[0])
    return lambda: E.tiled_attention(q, k, v, is_causal=True, block_q=b, block_k=b)


def inputs(B: int, H: int, T: int, d: int):
    g = torch.Generator().manual_seed(T)
    return tuple(torch.randn(B, H, T, d, generator=g) for _ in range(3))


def traffic(name: str, q, k, v) -> int | None:
    """Elements read from and written to slow memory by one call (None: not counted)."""
    B, H, T, d = q.shape
    if name == "explicit":
        return sum(E.explicit_slow_memory(T, T, d, batch=B * H))
    if name == "sdpa":
        return None
    b = None if name == "tiled 1-D" else int(name.split()[1].split("x")[0])
    _, st = E.tiled_attention(q, k, v, is_causal=True, block_q=b, block_k=b or 128, return_stats=True)
    return st.reads + st.writes


# --------------------------------------------------------------------------- memory (child process)


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def child(names: list[str], B: int, H: int, T: int, d: int) -> dict:
    """Peak RSS increase of one call of each method, then the largest tensor of another call.

    A warm-up call on a tiny input first loads the code and initialises the libraries the method
    uses, so the one-time costs of a first call are not counted as the method's memory."""
    q, k, v = inputs(B, H, T, d)
    out = {}
    with torch.inference_mode():
        for name in names:
            make_fn(name, *inputs(B, H, 64, d))()
            fn = make_fn(name, q, k, v)
            rss = None
            try:  # writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS
                Path("/proc/self/clear_refs").write_text("5")
                before = _status_kib("VmRSS")
                fn()
                peak = _status_kib("VmHWM")
                if before is not None and peak is not None:
                    rss = (peak - before) * 1024
            except OSError:
                pass
            with E.LargestTensor() as tracker:
                fn()
            out[name] = {"rss": rss, "largest": tracker.nbytes, "largest_shape": list(tracker.shape)}
    return out


def memory(names: list[str], args, T: int) -> dict:
    """Memory of each method in ``names``, measured in one fresh process (a process per method
    unless --quick)."""
    cmd = [sys.executable, __file__, "--child", ";".join(names), "--batch", str(args.batch), "--heads",
           str(args.heads), "--d-head", str(args.d_head), "--child-t", str(T)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- one T


def bench_one(T: int, args) -> list[dict]:
    names = methods(args.blocks)
    q, k, v = inputs(args.batch, args.heads, T, args.d_head)
    fns = {name: make_fn(name, q, k, v) for name in names}
    with torch.inference_mode():
        ref = fns["explicit"]()
        for name in names[1:]:  # correctness first: a benchmark of a wrong answer is worthless
            err = (fns[name]() - ref).abs().max().item()
            if not err <= 1e-4:
                raise RuntimeError(f"{name} differs from the explicit path at T={T}: max abs error {err:.2e}")
        del ref
        repeats = args.repeats if T < 4096 else max(3, args.repeats // 2)
        samples = measure(fns, repeats, torch.device("cpu"), args.sample_s)
        flows = {name: traffic(name, q, k, v) for name in names}
    del fns, q, k, v
    if args.quick:  # one process for every method: fast, and the numbers mean nothing at these sizes
        mem = memory(names, args, T)
    else:
        mem = {name: memory([name], args, T)[name] for name in names}
    rows = []
    for name in names:
        ratios = [a / b for a, b in zip(samples[name], samples["explicit"], strict=True)]
        m, mex = mem[name], mem["explicit"]
        rows.append({
            "T": T, "method": name, "time": statistics.median(samples[name]),
            "time_ratio": statistics.median(ratios),
            "rss": m["rss"], "rss_ratio": m["rss"] / mex["rss"] if m["rss"] is not None and mex["rss"] else None,
            "largest": m["largest"], "largest_shape": tuple(m["largest_shape"]),
            "largest_ratio": m["largest"] / mex["largest"],
            "traffic": flows[name],
            "traffic_ratio": None if flows[name] is None else flows[name] / flows["explicit"],
        })
    return rows


# --------------------------------------------------------------------------- output


def _fmt_time(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def _fmt_bytes(b) -> str:
    if b is None:
        return "-"
    return f"{b / 2**20:,.1f} MiB" if b < 2**30 else f"{b / 2**30:,.2f} GiB"


def _fmt_ratio(r) -> str:
    if r is None:
        return "-"
    return f"{r:.2f}" if r >= 0.1 else f"1/{1 / r:,.0f}" if r > 0 else "0"


def render(rows: list[dict], markdown: bool) -> str:
    cols = ["T", "method", "time", "time / explicit", "peak RSS", "RSS / explicit", "largest tensor",
            "largest / explicit", "slow-memory traffic", "traffic / explicit"]
    lines = [[str(r["T"]), r["method"], _fmt_time(r["time"]), f"{r['time_ratio']:.2f}", _fmt_bytes(r["rss"]),
              _fmt_ratio(r["rss_ratio"]), f"{_fmt_bytes(r['largest'])} {r['largest_shape']}",
              _fmt_ratio(r["largest_ratio"]),
              "-" if r["traffic"] is None else f"{r['traffic'] / 1e6:,.1f} M", _fmt_ratio(r["traffic_ratio"])]
             for r in rows]
    if markdown:
        out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---:" for _ in cols) + "|"]
        out += ["| " + " | ".join(c) + " |" for c in lines]
        return "\n".join(out)
    widths = [max(len(c), *(len(row[i]) for row in lines)) for i, c in enumerate(cols)]
    out = ["  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))]
    out += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in lines]
    return "\n".join(out)


def machine() -> str:
    return (f"{cpu_name()}, {torch.get_num_threads()} torch threads; torch {torch.__version__}; "
            f"Python {platform.python_version()}; attnlib {attnlib.__version__}; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def target_verdicts(rows: list[dict]) -> list[str]:
    """The target, judged on the measured peak RSS (and, for the record, on the largest tensor)."""
    out = []
    for r in rows:
        if r["T"] != TARGET_T or not r["method"].startswith("tiled ") or r["method"] == "tiled 1-D":
            continue
        rr = r["rss_ratio"]
        verdict = "not measured" if rr is None else "met" if rr <= TARGET_RATIO else "MISSED"
        out.append(f"  {r['method']}: peak RSS {_fmt_ratio(rr)} of the explicit path's, largest tensor "
                   f"{_fmt_ratio(r['largest_ratio'])} -> {verdict}")
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", "-B", type=int, default=1)
    p.add_argument("--heads", "-H", type=int, default=1)
    p.add_argument("--d-head", type=int, default=64)
    p.add_argument("--min-t", type=int, default=1024)
    p.add_argument("--max-t", type=int, default=8192)
    p.add_argument("--blocks", type=lambda s: [int(b) for b in s.split(",")], default=[128, 256],
                   help="comma list of square tile sizes for the 2-D tiled runs (default 128,256)")
    p.add_argument("--repeats", type=int, default=7, help="interleaved rounds (half, at least 3, from T=4096)")
    p.add_argument("--sample-s", type=float, default=0.05, help="target seconds per timing sample")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; use 1 on a shared, loaded machine)")
    p.add_argument("--quick", action="store_true", help="T = 256, 512, few rounds: a smoke test")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one memory measurement
    p.add_argument("--child-t", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.child is not None:
        print(json.dumps(child(args.child.split(";"), args.batch, args.heads, args.child_t, args.d_head)))
        return 0
    if args.quick:
        args.min_t, args.max_t, args.repeats, args.sample_s = 256, 512, 3, 0.005
    Ts = []
    T = args.min_t
    while T <= args.max_t:
        Ts.append(T)
        T *= 2

    print(f"# tiled attention benchmark: {machine()}")
    print(f"# B={args.batch} H={args.heads} d_head={args.d_head} fp32, causal; forward only, inference_mode; "
          f"median of {args.repeats} interleaved rounds ({max(3, args.repeats // 2)} from T=4096); ratios to "
          "the explicit path (time: median over rounds of the ratio within a round; memory: measured in a "
          "fresh process per method)")
    rows = []
    for T in Ts:
        rows += bench_one(T, args)
        print(f"#   done: T={T}", file=sys.stderr, flush=True)
    print(render(rows, args.markdown))

    if TARGET_T not in Ts:
        print(f"\nTarget not judged: it is set at T = {TARGET_T:,}, which this run does not reach.")
        return 0
    print(f"\nTarget: 2-D tiled peak memory at most 1/{round(1 / TARGET_RATIO)} of the explicit path's at "
          f"T = {TARGET_T:,} (judged on the peak RSS):")
    print("\n".join(target_verdicts(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

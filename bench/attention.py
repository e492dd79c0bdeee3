"""Benchmark attnlib.attention against PyTorch's own attention, as ratios measured in the same run.

For each sequence length T and each mode (no mask, causal) it times, on the same (B, H, T, d_head)
inputs:

  sdpa      raw ``torch.nn.functional.scaled_dot_product_attention`` (the reference: ratio 1.00)
  fast      ``attnlib.attention(q, k, v)``: attnlib's fast path (validation + mask front end + SDPA)
  explicit  ``attnlib.attention(..., return_weights=True)``: scores and pattern written out in fp32
  mha       ``torch.nn.MultiheadAttention`` at d_model = H * d_head, batch_first, need_weights=False.
            It INCLUDES its input and output projections (four d_model x d_model matmuls), so it is
            not attention alone: it shows what a full attention block costs next to the core.
  tiled     ``attnlib.efficient.tiled_attention`` (the memory-efficient teaching version of
            chapter 12), when that module exists.

Timing: forward pass only, under ``torch.inference_mode()``. After a warm-up call of every method,
the methods are run in an interleaved, rotating order for ``--repeats`` rounds (each round times
``inner`` back-to-back calls of one method, with ``inner`` chosen so one sample lasts a few ms), and
the median per call is reported. Interleaving spreads the noise of a shared machine over all
methods alike; the ratios are what to read, not the absolute times. CUDA is synchronised around
every sample.

Memory of the explicit path: on CUDA the measured ``torch.cuda.max_memory_allocated`` increase over
the inputs; on CPU (where PyTorch has no allocator statistics) the computed size of one
(B, H, T, T) fp32 pattern, and the measured increase of the process's peak resident set size
(Linux only: /proc/self/clear_refs resets the peak, /proc/self/status reports it).

    python bench/attention.py                    # CPU: T = 128 .. 4096, fp32
    python bench/attention.py --threads 1        # steadier on a shared, loaded CPU
    python bench/attention.py --dtype bf16 --max-t 2048
    python bench/attention.py --device cuda      # T up to 16384, with TFLOP/s
    python bench/attention.py --quick            # tiny sizes, a few seconds (CI smoke test)
    python bench/attention.py --markdown         # a table ready for bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from _machine import cpu_name

import attnlib
from attnlib import attention

try:  # written by another chapter; optional here
    from attnlib.efficient import tiled_attention
except ImportError:  # pragma: no cover - depends on the checkout
    tiled_attention = None

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
METHODS = ["sdpa", "fast", "explicit", "mha", "tiled"]


# --------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, inner: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` averaged over ``inner`` back-to-back calls."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / inner


def measure(fns: dict, repeats: int, device: torch.device, sample_s: float) -> dict[str, list[float]]:
    """Seconds per call of each function, one sample per round, sampled in an interleaved, rotating
    order: samples[name][r] is round r's sample, so ratios can be taken within a round."""
    inner = {}
    for name, fn in fns.items():  # warm-up (kernels, allocator) and a calibration of `inner`
        fn()
        t = _time(fn, 1, device)
        inner[name] = max(1, min(1000, int(sample_s / max(t, 1e-7))))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]  # rotate: no method always goes first
        for name in order:
            samples[name].append(_time(fns[name], inner[name], device))
    return samples


def target_check(fast, sdpa, device: torch.device, budget_s: float) -> dict:
    """The 1.05x target, measured as carefully as a shared machine allows: fast and raw SDPA alternate
    in ABBA order (fast, sdpa, sdpa, fast, ...) for about ``budget_s`` seconds; each pair of adjacent
    samples gives one ratio. Returns the median ratio, a distribution-free 95% confidence interval
    of the median (order statistics), and the number of pairs."""
    t = _time(sdpa, 1, device)
    inner = max(1, int(0.002 / max(t, 1e-7)))  # ~2 ms samples: many pairs, each close in time
    ratios = []
    start = time.perf_counter()
    while time.perf_counter() - start < budget_s or len(ratios) < 16:
        a1 = _time(fast, inner, device)
        b1 = _time(sdpa, inner, device)
        b2 = _time(sdpa, inner, device)
        a2 = _time(fast, inner, device)
        ratios += [a1 / b1, a2 / b2]
    ratios.sort()
    n = len(ratios)
    half = 1.96 * math.sqrt(n) / 2
    lo, hi = max(0, int(math.floor(n / 2 - half)) - 1), min(n - 1, int(math.ceil(n / 2 + half)))
    return {"median": statistics.median(ratios), "lo": ratios[lo], "hi": ratios[hi], "n": n}


def paired_ratio(samples: dict[str, list[float]], name: str) -> tuple[float, float, float]:
    """Median and quartiles of samples[name][r] / samples["sdpa"][r] over the rounds r. Pairing
    within a round cancels most of the slow drift of a shared machine's load."""
    ratios = sorted(a / b for a, b in zip(samples[name], samples["sdpa"], strict=True))
    if len(ratios) < 4:
        return statistics.median(ratios), ratios[0], ratios[-1]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), q1, q3


def front_end_overhead_us(device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    """Microseconds per call that attnlib.attention's fast path spends around SDPA, measured as the
    best of several runs of (attention - raw SDPA) on a tiny (1, 1, 1, 8) input, where the kernel
    itself costs almost nothing. This is the fixed cost that the ratio has to absorb at small T."""
    q = torch.randn(1, 1, 1, 8, device=device, dtype=dtype)
    out = {}
    with torch.inference_mode():
        for causal in (False, True):
            fns = {"sdpa": lambda c=causal: F.scaled_dot_product_attention(q, q, q, is_causal=c),
                   "fast": lambda c=causal: attention(q, q, q, is_causal=c)}
            best = {}
            for name, fn in fns.items():
                for _ in range(200):
                    fn()
                best[name] = min(_time(fn, 500, device) for _ in range(7))
            out["causal" if causal else "no mask"] = (best["fast"] - best["sdpa"]) * 1e6
    return out


# --------------------------------------------------------------------------- memory


def _proc_status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def explicit_peak_bytes(fn, device: torch.device) -> tuple[int | None, str]:
    """Peak extra memory of one call of ``fn``: (bytes, how it was obtained)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base, "measured (torch.cuda.max_memory_allocated)"
    try:  # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None, "not measured"
    before = _proc_status_kib("VmRSS")
    fn()
    peak = _proc_status_kib("VmHWM")
    if before is None or peak is None:
        return None, "not measured"
    return (peak - before) * 1024, "measured (peak RSS increase)"


# --------------------------------------------------------------------------- one T


def bench_one(T: int, args, device: torch.device, dtype: torch.dtype, causal: bool) -> dict:
    B, H, d = args.batch, args.heads, args.d_head
    g = torch.Generator(device="cpu").manual_seed(T)
    q, k, v = (torch.randn(B, H, T, d, generator=g).to(device=device, dtype=dtype) for _ in range(3))
    x = torch.randn(B, T, H * d, generator=g).to(device=device, dtype=dtype)
    mha = torch.nn.MultiheadAttention(H * d, H, bias=False, batch_first=True).to(device=device, dtype=dtype).eval()
    blocked = torch.ones(T, T, dtype=torch.bool, device=device).triu(1) if causal else None  # True = blocked

    fns = {
        "sdpa": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
        "fast": lambda: attention(q, k, v, is_causal=causal),
        "explicit": lambda: attention(q, k, v, is_causal=causal, return_weights=True),
        "mha": lambda: mha(x, x, x, need_weights=False, attn_mask=blocked, is_causal=causal),
    }
    if tiled_attention is not None:
        fns["tiled"] = lambda: tiled_attention(q, k, v, is_causal=causal)
    if T > args.explicit_max_t:
        del fns["explicit"]
    if T > args.tiled_max_t:
        fns.pop("tiled", None)

    with torch.inference_mode():
        # correctness first: a benchmark of a wrong answer is worthless
        ref = fns["sdpa"]().float()
        tol = 1e-4 if dtype == torch.float32 else 3e-2
        for name in ("fast", "explicit", "tiled"):
            if name in fns:
                out = fns[name]()
                out = out[0] if isinstance(out, tuple) else out
                err = (out.float() - ref).abs().max().item()
                if not err <= tol:
                    raise RuntimeError(f"{name} differs from SDPA at T={T}: max abs error {err:.2e}")
        mem, how = (None, "not run")
        if "explicit" in fns:
            mem, how = explicit_peak_bytes(fns["explicit"], device)
        samples = measure(fns, args.repeats if T < 2048 else max(3, args.repeats // 3), device, args.sample_s)
        check = target_check(fns["fast"], fns["sdpa"], device, args.check_s)
    times = {name: statistics.median(s) for name, s in samples.items()}
    ratios = {name: paired_ratio(samples, name) for name in samples}
    best = {name: min(s) for name, s in samples.items()}  # least disturbed sample of each method
    row = {"T": T, "causal": causal, "times": times, "ratios": ratios, "best": best, "check": check,
           "mem": mem, "mem_how": how,
           "pattern_bytes": B * H * T * T * 4}
    flops = 4 * B * H * T * T * d * (0.5 if causal else 1.0)  # causal kernels skip the masked half
    row["tflops"] = {name: flops / t / 1e12 for name, t in times.items()}
    fns.clear()  # drop the closures (and with them the inputs) before the next T
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


# --------------------------------------------------------------------------- output


def _fmt_time(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


def _fmt_bytes(b) -> str:
    if b is None:
        return "-"
    return f"{b / 2**20:,.1f} MiB" if b < 2**30 else f"{b / 2**30:,.2f} GiB"


def _row_cells(r: dict, methods: list[str], device: torch.device) -> list[str]:
    t = r["times"]
    cells = ["causal" if r["causal"] else "no mask", str(r["T"]), _fmt_time(t["sdpa"])]
    for m in methods:
        if m == "fast":  # the target: show the spread (quartiles of the per-round ratios)
            med, q1, q3 = r["ratios"]["fast"]
            cells.append(f"{med:.3f} ({q1:.2f}-{q3:.2f})")
            cells.append(f"{r['best']['fast'] / r['best']['sdpa']:.3f}")
            c = r["check"]
            cells.append(f"{c['median']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}] ({c['n']})")
        elif m != "sdpa":
            cells.append(f"{r['ratios'][m][0]:.2f}" if m in t else "-")
    cells += [_fmt_bytes(r["mem"]), _fmt_bytes(r["pattern_bytes"])]
    if device.type == "cuda":
        cells += [f"{r['tflops']['sdpa']:.1f}", f"{r['tflops']['fast']:.1f}"]
    return cells


def render(rows: list[dict], methods: list[str], device: torch.device, markdown: bool) -> str:
    cols = ["mode", "T", "sdpa time"]
    for m in methods:
        if m == "fast":
            cols += ["fast/sdpa median (IQR)", "fast/sdpa of minima", "fast/sdpa ABBA check [95% CI] (pairs)"]
        elif m != "sdpa":
            cols.append(f"{m}/sdpa")
    cols += ["explicit peak mem", "pattern (B,H,T,T) fp32"]
    if device.type == "cuda":
        cols += ["sdpa TFLOP/s", "fast TFLOP/s"]
    lines = [_row_cells(r, methods, device) for r in rows]
    if markdown:
        out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---:" for _ in cols) + "|"]
        out += ["| " + " | ".join(c) + " |" for c in lines]
        return "\n".join(out)
    widths = [max(len(c), *(len(row[i]) for row in lines)) for i, c in enumerate(cols)]
    out = ["  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))]
    out += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in lines]
    return "\n".join(out)


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_name()
        name += f", {torch.get_num_threads()} torch threads"
    return (f"{name}; torch {torch.__version__}; Python {platform.python_version()}; "
            f"attnlib {attnlib.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: attnlib.get_device())")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    p.add_argument("--batch", "-B", type=int, default=1)
    p.add_argument("--heads", "-H", type=int, default=8)
    p.add_argument("--d-head", type=int, default=64)
    p.add_argument("--min-t", type=int, default=128)
    p.add_argument("--max-t", type=int, default=None, help="default 4096 on CPU, 16384 on a GPU")
    p.add_argument("--explicit-max-t", type=int, default=None,
                   help="skip the explicit path above this T (default: 4096 on CPU, 16384 on a GPU)")
    p.add_argument("--tiled-max-t", type=int, default=None,
                   help="skip the tiled teaching version above this T (default: 2048 on CPU, 16384 on a GPU)")
    p.add_argument("--modes", default="none,causal", help="comma list of: none, causal")
    p.add_argument("--repeats", type=int, default=21, help="interleaved rounds (a third from T=2048)")
    p.add_argument("--sample-s", type=float, default=0.02, help="target seconds per timing sample")
    p.add_argument("--check-s", type=float, default=4.0,
                   help="seconds per (T, mode) for the ABBA check of the fast path against raw SDPA")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice). On a shared, loaded machine use 1: "
                        "with more, OpenMP barriers wait for descheduled threads and times jump 10-50x")
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test (a few seconds)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    return p.parse_args(argv)


def apply_defaults(args: argparse.Namespace, gpu: bool) -> list[int]:
    """Fill the size defaults (CPU or GPU, --quick) into args; return the sequence lengths T."""
    if args.quick:
        args.batch, args.heads, args.d_head = 1, 2, 16
        args.min_t, args.max_t, args.repeats, args.sample_s, args.check_s = 32, 128, 3, 0.002, 0.1
    if args.max_t is None:
        args.max_t = 16384 if gpu else 4096
    if args.explicit_max_t is None:
        args.explicit_max_t = 16384 if gpu else 4096
    if args.tiled_max_t is None:
        args.tiled_max_t = 16384 if gpu else 2048
    Ts = []
    T = args.min_t
    while T <= args.max_t:
        Ts.append(T)
        T *= 2
    return Ts


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device) if args.device else attnlib.get_device()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    Ts = apply_defaults(args, gpu=device.type != "cpu")

    methods = [m for m in METHODS if m != "tiled" or tiled_attention is not None]
    print(f"# attention benchmark: {machine(device)}")
    print(f"# B={args.batch} H={args.heads} d_head={args.d_head} dtype={args.dtype} device={device}; "
          f"forward only, inference_mode; median of {args.repeats} interleaved rounds "
          f"({max(3, args.repeats // 3)} from T=2048); ratios: median over rounds of the ratio to raw SDPA "
          "timed in the same round")
    if tiled_attention is None:
        print("# attnlib.efficient not found: the tiled column is left out")
    overhead = front_end_overhead_us(device, dtype)
    print("# fixed cost of attnlib's front end (validation + mask front end) over raw SDPA, per call: "
          + ", ".join(f"{k} {v:.1f} us" for k, v in overhead.items()))
    rows = []
    for mode in args.modes.split(","):
        for T in Ts:
            rows.append(bench_one(T, args, device, dtype, causal=(mode == "causal")))
            print(f"#   done: {mode} T={T}", file=sys.stderr, flush=True)
    print(render(rows, methods, device, args.markdown))

    if args.quick:
        print("\nTarget not judged: --quick runs tiny sizes as a smoke test, its ratios mean nothing.")
        return 0
    target = 1.05
    print(f"\nTarget: fast path within {target}x of raw SDPA at every T (ABBA check, 95% CI of the median ratio):")
    for r in rows:
        c = r["check"]
        verdict = ("met" if c["hi"] <= target else "MISSED" if c["lo"] > target
                   else "not resolved (the CI straddles the target: too noisy)")
        mode = "causal" if r["causal"] else "no mask"
        print(f"  {mode:>7} T={r['T']:>5}: {c['median']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}] -> {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

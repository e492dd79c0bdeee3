"""Generation speed of attnlib.Decoder.generate with the KV cache against recomputing every step.

Both ways decode greedily (temperature 0) from the same seeded prompt with the same seeded model,
so they must append the same tokens: asserted on every run. ``kv_cache=True`` computes the keys
and values of the new token only and reads the earlier ones from the cache; ``kv_cache=False``
runs the whole sequence again at every step. The context is long enough that the window never
slides (a slide would rebuild the cache). Each round times both ways back to back, in alternating
order, so load on a shared machine hits both alike; the median over the rounds is reported in
new tokens per wall-clock second and per CPU second of this process (the steadier measure on a
shared CPU with one thread), with the speed-up cache / recomputation.

Configurations (untrained models, GPT-2 initialisation, batch 1, a 16-token prompt):
  tiny   attnlib.TINY widened to a 320-token context (2 layers, 4 heads, 64 wide)
  small  6 layers, 6 heads, 384 wide, 320-token context (bench/train.py's small, longer context)

    python bench/generate.py                       # both configurations, 64 and 256 new tokens
    python bench/generate.py --config tiny --new 64 256 --rounds 5 --markdown
    python bench/generate.py --quick               # a few seconds (CI smoke test)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from _machine import cpu_name

import attnlib

PROMPT = 16
CONFIGS = {
    "tiny": attnlib.TINY.replace(context_len=320),
    "small": attnlib.DecoderConfig(vocab_size=64, context_len=320, d_model=384, n_layers=6, n_heads=6),
}
WAYS = {"cache": True, "recompute": False}


def timed(model, prompt, n_new: int, kv_cache: bool) -> tuple[torch.Tensor, float, float]:
    """The generated tokens, wall-clock seconds and CPU seconds of one generate call."""
    if prompt.device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    out = model.generate(prompt, n_new, temperature=0, kv_cache=kv_cache)
    if prompt.device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0, time.process_time() - c0


def measure(name: str, n_new: int, rounds: int, device) -> dict:
    cfg = CONFIGS[name]
    assert PROMPT + n_new <= cfg.context_len, "the window must not slide"
    torch.manual_seed(0)
    model = attnlib.Decoder(cfg).to(device).eval()
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(cfg.vocab_size, (1, PROMPT), generator=g).to(device)
    for kv_cache in WAYS.values():  # warm-up: allocations, kernel selection
        timed(model, prompt, min(n_new, 8), kv_cache)
    wall: dict[str, list[float]] = {w: [] for w in WAYS}
    cpu: dict[str, list[float]] = {w: [] for w in WAYS}
    outs = {}
    for r in range(rounds):
        for way in (list(WAYS) if r % 2 == 0 else list(WAYS)[::-1]):
            outs[way], w, c = timed(model, prompt, n_new, WAYS[way])
            wall[way].append(n_new / w)
            cpu[way].append(n_new / max(c, 1e-9))
        assert torch.equal(outs["cache"], outs["recompute"]), "the KV cache changed the generated tokens"
    med = {w: statistics.median(wall[w]) for w in WAYS}
    cpu_med = {w: statistics.median(cpu[w]) for w in WAYS}
    return {"name": name, "n_new": n_new, "rounds": rounds, "tok_s": med, "cpu_tok_s": cpu_med,
            "speedup": med["cache"] / med["recompute"],
            "cpu_speedup": cpu_med["cache"] / cpu_med["recompute"],
            "params": sum(p.numel() for p in model.parameters())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: attnlib.get_device())")
    p.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    p.add_argument("--new", type=int, nargs="+", default=[64, 256], help="numbers of new tokens")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (each way once per round)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--quick", action="store_true", help="tiny config, 8 new tokens: a CI smoke test")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else attnlib.get_device()
    names = list(CONFIGS) if args.config == "all" else [args.config]
    if args.quick:
        names, args.new, args.rounds = ["tiny"], [8], 1
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU: {cpu_name()}"
    print(f"{dev}; torch {torch.__version__}; {torch.get_num_threads()} threads; "
          f"Python {platform.python_version()}; attnlib {attnlib.__version__}")
    rows = []
    for name in names:
        for n_new in args.new:
            t0 = time.perf_counter()
            r = measure(name, n_new, args.rounds, device)
            rows.append(r)
            print(f"{name} ({r['params'] / 1e6:.2f}M parameters), {PROMPT}-token prompt + {n_new} new, "
                  f"{args.rounds} rounds ({time.perf_counter() - t0:.0f} s): cache "
                  f"{r['tok_s']['cache']:,.0f} tokens/s, recompute {r['tok_s']['recompute']:,.0f} "
                  f"tokens/s: {r['speedup']:.2f}x wall, {r['cpu_speedup']:.2f}x per CPU s; same tokens")
    if args.markdown and rows:
        print("\n| config | new tokens | KV cache tok/s | recompute tok/s | speed-up (wall) | "
              "KV cache tok/CPU s | recompute tok/CPU s | speed-up (CPU s) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['name']} | {r['n_new']} | {r['tok_s']['cache']:,.0f} | {r['tok_s']['recompute']:,.0f} | "
                  f"{r['speedup']:.2f}x | {r['cpu_tok_s']['cache']:,.0f} | {r['cpu_tok_s']['recompute']:,.0f} | "
                  f"{r['cpu_speedup']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

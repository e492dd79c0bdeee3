"""Training throughput of attnlib.Decoder against plain-PyTorch decoders of identical shape.

Three models, built with the same shape, the same initialisation scheme and the same seed:

  attnlib    ``attnlib.Decoder(config)``: one fused qkv projection (with per-head views), input
             validation, the mask front end, then ``F.scaled_dot_product_attention(is_causal=True)``.
  reference  ``RefDecoder`` written below in plain PyTorch, nanoGPT style: one fused qkv projection,
             no validation, ``F.scaled_dot_product_attention(is_causal=True)``. Same parameter count
             (asserted), pre-LayerNorm blocks without biases, GELU MLP, tied unembedding.

  nanogpt    ``NanoGPT`` written below with the module structure of Karpathy's nanoGPT
             (``model.py``: a ``CausalSelfAttention`` and an ``MLP`` module per block, a ``GELU`` module,
             ``Dropout`` modules even at p = 0, its own ``LayerNorm`` module, the ``transformer``
             ``ModuleDict``), at dropout 0 and without biases. The same arithmetic as ``reference``: it
             differs only in its Python structure, which is what the tiny configuration measures.

All three train on the same batches (a seeded random token stream, cut into windows by
``attnlib.train.get_batch``) with the same optimizer, AdamW (lr 3e-4, weight decay 0.1), on the same
device. Each round times ``--steps`` optimizer steps of each model in turn (the order reverses from
round to round, so drift on a shared machine hits all alike); after a warm-up round, ``--rounds``
rounds are timed and the median tokens/s of each model is reported, with the ratios attnlib /
reference and attnlib / nanogpt (above 1.0 means attnlib is faster). Every sample is also timed in CPU
seconds of this process (``time.process_time``): on a CPU shared with other work, tokens per CPU
second is far steadier than tokens per wall-clock second (with ``--threads 1`` it is the cost of the
work itself), so both ratios are printed. On a GPU read the wall-clock one.

Configurations:
  tiny   attnlib.TINY (2 layers, 4 heads, 64 wide, context 32, vocab 64), batch 64
  small  6 layers, 6 heads, 384 wide, context 256, vocab 64, batch 64 (nanoGPT's Shakespeare size)

Peak memory is measured in a fresh process per model (so no two share an allocator): it
builds the model and takes ``--mem-steps`` steps. On CUDA it is ``torch.cuda.max_memory_allocated``;
on CPU the peak resident set size of the process (VmHWM), which includes the PyTorch runtime
(the same few hundred MB for every model; compare the difference, not the absolute number).

    python bench/train.py                        # CPU, both configurations
    python bench/train.py --config tiny --steps 20
    python bench/train.py --device cuda --compile --fused
    python bench/train.py --quick                # the tiny config, a few seconds (CI smoke test)
    python bench/train.py --markdown             # a table ready for bench/RESULTS.md
    python bench/train.py --profile              # where the time goes, per model (torch.profiler)
    python bench/train.py --overhead             # the Python cost of a step: 4 tokens, no arithmetic

``--overhead`` times whole optimizer steps of each model on a batch of 1 x 4 tokens, where the
arithmetic costs almost nothing, so what is left is each model's Python and dispatch cost per step
(module calls, checks, autograd bookkeeping): the only thing in which the models differ, since a
profile of a tiny step finds the same operators with the same shapes in all three. It adds a fourth
model, ``unchecked``: attnlib with the input checks of ``Decoder.forward`` and ``MultiHeadAttention``
switched off, so that attnlib - unchecked is what those checks cost. Steps of the
models alternate (ABBA order) and each one is timed on its own, so the medians come with a
distribution-free 95% confidence interval of the per-pair difference.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from _machine import cpu_name

import attnlib
from attnlib.train import get_batch

CONFIGS = {
    "tiny": (attnlib.TINY, 64),
    "small": (attnlib.DecoderConfig(vocab_size=64, context_len=256, d_model=384, n_layers=6, n_heads=6), 64),
}
MODELS = ["attnlib", "reference", "nanogpt"]


# --------------------------------------------------------------------------- the reference decoder


class RefBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_mlp: int):
        super().__init__()
        self.n_heads = n_heads
        self.ln_1 = nn.LayerNorm(d_model, bias=False)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)  # q, k and v of all heads in one matmul
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.ln_2 = nn.LayerNorm(d_model, bias=False)
        self.fc = nn.Linear(d_model, d_mlp, bias=False)
        self.fc_out = nn.Linear(d_mlp, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, d_head)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, C))
        return x + self.fc_out(F.gelu(self.fc(self.ln_2(x))))


class RefDecoder(nn.Module):
    """A GPT decoder in plain PyTorch, the shape of ``attnlib.Decoder(cfg)`` (tied embeddings, no bias)."""

    def __init__(self, cfg: attnlib.DecoderConfig):
        super().__init__()
        self.supports(cfg)
        d_mlp = cfg.d_mlp or 4 * cfg.d_model
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.context_len, cfg.d_model)
        self.blocks = nn.ModuleList(RefBlock(cfg.d_model, cfg.n_heads, d_mlp) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=False)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.tok.weight
        for name, p in self.named_parameters():  # GPT-2 initialisation, as attnlib does
            if p.ndim >= 2:
                resid = name.endswith(("proj.weight", "fc_out.weight"))
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layers) if resid else 0.02)

    @staticmethod
    def supports(cfg: attnlib.DecoderConfig) -> None:
        if cfg.bias or not cfg.tie_embeddings or cfg.cross_attention or cfg.dropout or cfg.n_kv_heads:
            raise ValueError("the references cover bias=False, tie_embeddings=True, no cross-attention, "
                             "no dropout, no GQA")
        if cfg.d_head not in (None, cfg.d_model // cfg.n_heads):
            raise ValueError("the references need d_head = d_model // n_heads")

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor):
        T = tokens.shape[1]
        x = self.tok(tokens) + self.pos(torch.arange(T, device=tokens.device))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
        return logits, loss


class _NanoLayerNorm(nn.Module):
    """nanoGPT's LayerNorm: a module of its own so that the bias can be switched off."""

    def __init__(self, n: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class _NanoAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=False)
        self.attn_dropout = nn.Dropout(dropout)  # unused on the SDPA path, built all the same
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head, self.n_embd, self.dropout = n_head, n_embd, dropout

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=p, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class _NanoMLP(nn.Module):
    def __init__(self, n_embd: int, d_mlp: int, dropout: float):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, d_mlp, bias=False)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(d_mlp, n_embd, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class _NanoBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int, d_mlp: int):
        super().__init__()
        self.ln_1 = _NanoLayerNorm(n_embd, bias=False)
        self.attn = _NanoAttention(n_embd, n_head, 0.0)
        self.ln_2 = _NanoLayerNorm(n_embd, bias=False)
        self.mlp = _NanoMLP(n_embd, d_mlp, 0.0)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class NanoGPT(nn.Module):
    """A decoder with nanoGPT's module structure (its ``GPT`` class at bias=False, dropout=0), the
    shape of ``attnlib.Decoder(cfg)``. Written for this benchmark; the structure is nanoGPT's."""

    def __init__(self, cfg: attnlib.DecoderConfig):
        super().__init__()
        RefDecoder.supports(cfg)
        self.block_size = cfg.context_len
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.d_model),
            wpe=nn.Embedding(cfg.context_len, cfg.d_model),
            drop=nn.Dropout(0.0),
            h=nn.ModuleList(_NanoBlock(cfg.d_model, cfg.n_heads, cfg.mlp_dim) for _ in range(cfg.n_layers)),
            ln_f=_NanoLayerNorm(cfg.d_model, bias=False),
        ))
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied, as nanoGPT ties them
        for name, p in self.named_parameters():  # GPT-2 initialisation
            if p.ndim >= 2:
                std = 0.02 / math.sqrt(2 * cfg.n_layers) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor):
        b, t = idx.size()
        assert t <= self.block_size, f"sequence of length {t} is longer than the block size {self.block_size}"
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


# --------------------------------------------------------------------------- set-up


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() lists a tied weight once


def build(which: str, cfg, device, compile_: bool, fused: bool, seed: int = 0):
    torch.manual_seed(seed)
    model = {"attnlib": attnlib.Decoder, "reference": RefDecoder, "nanogpt": NanoGPT}[which](cfg)
    model.to(device).train()
    kw = {"fused": True} if fused else {}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, **kw)
    step_model = torch.compile(model) if compile_ else model
    return model, step_model, opt


def make_batches(cfg, batch: int, n: int, device, seed: int = 0):
    """n distinct (x, y) batches from a seeded random token stream, already on the device."""
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(cfg.vocab_size, (200_000,), generator=g)
    return [get_batch(data, batch, cfg.context_len, generator=g, device=device) for _ in range(n)]


def autocast_dtype(name: str, device: torch.device):
    if name == "auto":
        ok = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if ok else None
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def train_steps(step_model, opt, batches, start: int, steps: int, device, amp) -> float:
    """Run ``steps`` AdamW steps; returns the loss of the last one (forces the work to finish)."""
    for i in range(steps):
        x, y = batches[(start + i) % len(batches)]
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            _, loss = step_model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return loss.item()


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- measurements


def throughput(cfg, batch: int, args, device) -> dict:
    amp = autocast_dtype(args.autocast, device)
    models = {m: build(m, cfg, device, args.compile, args.fused) for m in MODELS}
    counts = {m: n_params(models[m][0]) for m in MODELS}
    assert len(set(counts.values())) == 1, f"parameter counts differ: {counts}"
    batches = make_batches(cfg, batch, max(args.steps, 4), device)
    tokens = batch * cfg.context_len * args.steps
    for m in MODELS:  # warm-up: first-call allocations, kernel selection, compilation
        train_steps(models[m][1], models[m][2], batches, 0, max(1, args.warmup), device, amp)
    samples: dict[str, list[float]] = {m: [] for m in MODELS}  # tokens per wall-clock second
    cpu_samples: dict[str, list[float]] = {m: [] for m in MODELS}  # tokens per CPU second (this process)
    losses: dict[str, float] = {}
    for r in range(args.rounds):
        for m in MODELS if r % 2 == 0 else MODELS[::-1]:
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            losses[m] = train_steps(models[m][1], models[m][2], batches, r * args.steps, args.steps, device, amp)
            _sync(device)
            samples[m].append(tokens / (time.perf_counter() - t0))
            cpu_samples[m].append(tokens / max(time.process_time() - c0, 1e-9))
    med = {m: statistics.median(samples[m]) for m in MODELS}
    cpu_med = {m: statistics.median(cpu_samples[m]) for m in MODELS}
    vs = {}
    for other in MODELS[1:]:
        # each round times the models back to back: the per-round ratios pair samples taken under
        # the same machine load; their quartiles show how far the median ratio can be trusted
        paired = sorted(a / b for a, b in zip(cpu_samples["attnlib"], cpu_samples[other], strict=True))
        q = statistics.quantiles(paired, n=4) if len(paired) >= 2 else [paired[0]] * 3
        vs[other] = {"ratio": med["attnlib"] / med[other], "cpu_ratio": cpu_med["attnlib"] / cpu_med[other],
                     "paired": (statistics.median(paired), q[0], q[2])}
    return {"params": counts["attnlib"], "tok_s": med, "samples": samples, "cpu_tok_s": cpu_med, "vs": vs,
            "loss": losses, "amp": str(amp).replace("torch.", "") if amp else "fp32"}


def _peak_child(which: str, config: str, batch: int, device: str, steps: int, compile_: bool,
                fused: bool, amp_name: str) -> None:
    """Runs in a fresh process: build one model, train ``steps`` steps, print the peak as JSON."""
    dev = torch.device(device)
    cfg, _ = CONFIGS[config]
    _, step_model, opt = build(which, cfg, dev, compile_, fused)
    batches = make_batches(cfg, batch, steps, dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train_steps(step_model, opt, batches, 0, steps, dev, autocast_dtype(amp_name, dev))
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = _vm_hwm()
    print(json.dumps({"peak_bytes": peak}))


def _vm_hwm() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource  # not Linux: ru_maxrss (bytes on macOS)

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_memory(config: str, batch: int, args, device) -> dict[str, int | None]:
    out = {}
    for m in MODELS:
        cmd = [sys.executable, __file__, "--_peak-child", m, "--config", config, "--device", str(device),
               "--mem-steps", str(args.mem_steps), "--autocast", args.autocast, "--batch", str(batch)]
        cmd += ["--compile"] * args.compile + ["--fused"] * args.fused
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            out[m] = None
            continue
        out[m] = json.loads(res.stdout.strip().splitlines()[-1])["peak_bytes"]
    return out


def profile(cfg, batch: int, args, device) -> None:
    """Top operators of a few training steps of each model (CPU or CUDA time)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    amp = autocast_dtype(args.autocast, device)
    batches = make_batches(cfg, batch, 4, device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for m in MODELS:
        _, step_model, opt = build(m, cfg, device, args.compile, args.fused)
        train_steps(step_model, opt, batches, 0, 1, device, amp)
        with torch_profile(activities=acts) as prof:
            train_steps(step_model, opt, batches, 1, max(1, args.steps), device, amp)
        key = "cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(f"\n--- {m}: top operators by {key} over {max(1, args.steps)} steps")
        print(prof.key_averages().table(sort_by=key, row_limit=15))


def _without_checks(model: nn.Module) -> nn.Module:
    """attnlib's model with the input checks of ``Decoder.forward`` and of every
    ``MultiHeadAttention`` switched off (instance attributes shadow the methods), to measure what
    they cost. The same answers on valid input; never do this outside a benchmark."""
    model._check_forward = lambda *args, **kwargs: 0
    for m in model.modules():
        if isinstance(m, attnlib.MultiHeadAttention):
            m._check_inputs = lambda *args: None
    return model


OVERHEAD_MODELS = [*MODELS, "unchecked"]  # unchecked: attnlib with _without_checks


def overhead(name: str, cfg, args, device, markdown: bool) -> None:
    """Median seconds per optimizer step on a batch of 1 x 4 tokens, per model, in ABBA order, with
    a 95% confidence interval of the median per-pair difference to attnlib (distribution-free: the
    order statistics of the sorted differences that bracket the median). ``unchecked`` is attnlib
    with its Decoder and MultiHeadAttention input checks off: attnlib - unchecked is their cost."""
    amp = autocast_dtype(args.autocast, device)
    models = {m: build(m, cfg, device, args.compile, args.fused) for m in MODELS}
    model, _, opt = build("attnlib", cfg, device, False, args.fused)
    model = _without_checks(model)
    models["unchecked"] = (model, torch.compile(model) if args.compile else model, opt)
    names = OVERHEAD_MODELS
    T = min(4, cfg.context_len)
    g = torch.Generator().manual_seed(0)
    batches = [tuple(torch.randint(cfg.vocab_size, (1, T), generator=g).to(device) for _ in range(2))
               for _ in range(4)]
    warm = {m: train_steps(models[m][1], models[m][2], batches, 0, 20, device, amp) for m in names}
    # the same operators on the same numbers: equal on a CPU; a GPU's atomic adds may differ in the last bits
    assert math.isclose(warm["unchecked"], warm["attnlib"], rel_tol=1e-5), f"the checks changed the training: {warm}"
    times: dict[str, list[float]] = {m: [] for m in names}
    for i in range(args.pairs):
        for m in names if i % 2 == 0 else names[::-1]:
            _sync(device)
            t0 = time.perf_counter()
            train_steps(models[m][1], models[m][2], batches, i, 1, device, amp)  # .item(): the step is done
            times[m].append(time.perf_counter() - t0)
    n = args.pairs
    k = max(0, int(n / 2 - 1.96 * math.sqrt(n) / 2))  # rank of the lower 95% bound of a median
    us = {m: statistics.median(times[m]) * 1e6 for m in names}
    print(f"\n{name}: Python and dispatch cost of one optimizer step on 1 x {T} tokens "
          f"({n} ABBA pairs, median us per step)")
    diffs = []
    for m in names:
        line = f"  {m:<10} {us[m]:8.0f} us"
        if m != "attnlib":
            d = sorted((a - b) * 1e6 for a, b in zip(times["attnlib"], times[m], strict=True))
            ci = f"[{d[k]:+.0f}, {d[n - 1 - k]:+.0f}]" if n > 1 else ""
            line += f"   attnlib - {m}: {statistics.median(d):+.0f} us {ci} (95% CI)"
            diffs.append(f"{statistics.median(d):+.0f} us {ci}")
        print(line)
    if markdown:
        print("\n| config | " + " | ".join(f"{m} us/step" for m in names) + " | "
              + " | ".join(f"attnlib - {m} [95% CI]" for m in names[1:]) + " |")
        print("|---|" + "---:|" * len(names) + "---|" * (len(names) - 1))
        print(f"| {name} (1 x {T} tokens) | " + " | ".join(f"{us[m]:.0f}" for m in names) + " | "
              + " | ".join(diffs) + " |")


# --------------------------------------------------------------------------- report


def _mb(b) -> str:
    return "n/a" if b is None else f"{b / 2**20:,.0f}"


def environment(device) -> str:
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU: {cpu_name()}"
    return (f"{dev}; torch {torch.__version__}; {torch.get_num_threads()} threads; "
            f"Python {platform.python_version()}; attnlib {attnlib.__version__}")


def _report(res: dict, opts: str) -> None:
    mem = res["mem"]
    print(f"\n{res['name']}: {res['params']:,} parameters each, batch {res['batch']} x context "
          f"{res['cfg'].context_len}, {res['amp']}, {opts}, {res['rounds']} rounds of {res['steps']} steps "
          f"({res['wall']:.0f} s)")
    for m in MODELS:
        s = ", ".join(f"{v:,.0f}" for v in res["samples"][m])
        print(f"  {m:<10} median {res['tok_s'][m]:>11,.0f} tokens/s   peak {_mb(mem[m]):>6} MB   "
              f"[{s}]  last loss {res['loss'][m]:.3f}")
    for other, v in res["vs"].items():
        pm, lo, hi = v["paired"]
        print(f"  attnlib / {other}: {v['ratio']:.2f}x (wall clock); {v['cpu_ratio']:.2f}x per CPU second "
              f"({res['cpu_tok_s']['attnlib']:,.0f} vs {res['cpu_tok_s'][other]:,.0f} tokens per CPU s); "
              f"per-round paired ratio (CPU s) {pm:.2f}x, quartiles {lo:.2f}x .. {hi:.2f}x")


def _markdown(rows: list[dict], on_gpu: bool) -> None:
    mem_kind = "peak CUDA MB" if on_gpu else "peak RSS MB"
    print(f"\n| config | params | batch x T | dtype | attnlib tok/s | reference tok/s | nanogpt tok/s | "
          f"ratio to reference: wall, CPU s, paired (quartiles) | ratio to nanogpt: wall, CPU s, paired "
          f"(quartiles) | {mem_kind}: attnlib, reference, nanogpt |")
    print("|---|---:|---|---|---:|---:|---:|---|---|---|")
    for r in rows:
        ratios = [f"{v['ratio']:.2f}x, {v['cpu_ratio']:.2f}x, {v['paired'][0]:.2f}x "
                  f"({v['paired'][1]:.2f}-{v['paired'][2]:.2f})" for v in r["vs"].values()]
        toks = " | ".join(f"{r['tok_s'][m]:,.0f}" for m in MODELS)
        mems = ", ".join(_mb(r["mem"][m]) for m in MODELS)
        print(f"| {r['name']} | {r['params'] / 1e6:.2f}M | {r['batch']} x {r['cfg'].context_len} | "
              f"{r['amp']} | {toks} | {' | '.join(ratios)} | {mems} |")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: attnlib.get_device())")
    p.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    p.add_argument("--batch", type=int, default=None, help="override the configuration's batch size")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per timed sample")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (each model once per round)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    p.add_argument("--compile", action="store_true", help="torch.compile the models")
    p.add_argument("--fused", action="store_true", help="fused AdamW (CUDA)")
    p.add_argument("--autocast", choices=["auto", "none", "bf16", "fp16"], default="auto",
                   help="autocast dtype; auto = bf16 on a CUDA GPU that supports it, else none (fp32)")
    p.add_argument("--mem-steps", type=int, default=2, help="steps taken by the peak-memory processes")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--quick", action="store_true", help="tiny config, few steps: a CI smoke test")
    p.add_argument("--profile", action="store_true", help="print the top operators of each model")
    p.add_argument("--overhead", action="store_true",
                   help="time steps on 1 x 4 tokens: each model's Python and dispatch cost per step")
    p.add_argument("--pairs", type=int, default=1000, help="ABBA pairs of steps for --overhead")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--_peak-child", dest="peak_child", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else attnlib.get_device()
    if args.fused and device.type != "cuda":
        print("note: --fused is meant for CUDA; trying it on", device.type, file=sys.stderr)
    if args.peak_child:
        cfg_name = args.config if args.config != "all" else "tiny"
        _peak_child(args.peak_child, cfg_name, args.batch or CONFIGS[cfg_name][1], str(device),
                    args.mem_steps, args.compile, args.fused, args.autocast)
        return 0

    names = list(CONFIGS) if args.config == "all" else [args.config]
    if args.quick:
        names, args.rounds, args.warmup = ["tiny"], args.rounds or 3, 1
        args.steps = args.steps or 3
        args.batch = args.batch or 16
        args.mem_steps = 1
        args.pairs = min(args.pairs, 20)
    on_gpu = device.type == "cuda"

    print(environment(device))
    opts = f"compile={args.compile} fused={args.fused}"
    rows = []
    for name in names:
        cfg, batch = CONFIGS[name]
        batch = args.batch or batch
        steps = args.steps or (20 if name == "tiny" or on_gpu else 2)
        rounds = args.rounds or (7 if name == "tiny" or on_gpu else 3)
        run = argparse.Namespace(**{**vars(args), "steps": steps, "rounds": rounds})
        if args.profile:
            profile(cfg, batch, run, device)
            continue
        if args.overhead or args.quick:
            overhead(name, cfg, run, device, args.markdown)
            if args.overhead:
                continue
        t0 = time.perf_counter()
        res = throughput(cfg, batch, run, device)
        mem = {m: None for m in MODELS} if args.no_memory else peak_memory(name, batch, run, device)
        res.update(name=name, batch=batch, steps=steps, rounds=rounds, mem=mem, cfg=cfg,
                   wall=time.perf_counter() - t0)
        rows.append(res)
        _report(res, opts)
    if args.markdown and rows:
        _markdown(rows, on_gpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())

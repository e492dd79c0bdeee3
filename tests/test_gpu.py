"""CUDA tests (``pytest -m gpu``): skipped cleanly when there is no CUDA device.

The CPU suites (test_attention.py, test_multihead.py) also run every parametrised case on CUDA when
it is present; this file adds what only makes sense on a GPU: the fused kernels in half precision
against an fp32 reference, a bf16-autocast training run, and KV-cache generation on the device.
"""

from __future__ import annotations

import math

import pytest
import torch

from attnlib import TINY, Decoder, attention
from attnlib.train import get_batch, seed_everything, train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TOL = {torch.float32: 2e-5, torch.float16: 3e-3, torch.bfloat16: 2.5e-2}


def reference(q, k, v, allowed):
    q, k, v = q.double(), k.double(), v.double()
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~allowed, float("-inf"))
    empty = ~allowed.any(-1, keepdim=True)
    w = torch.softmax(scores.masked_fill(empty, 0.0), -1).masked_fill(empty, 0.0)
    return w @ v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("explicit", [False, True], ids=["fast", "explicit"])
@pytest.mark.parametrize("setting", ["plain", "causal", "causal-Tq<Tk", "mask-with-empty-rows"])
@pytest.mark.parametrize("T", [16, 256])
def test_attention_paths_on_cuda(dtype, explicit, setting, T):
    g = torch.Generator().manual_seed(0)
    B, H, d = 2, 4, 64
    T_q = T // 4 if setting == "causal-Tq<Tk" else T
    q32 = torch.randn(B, H, T_q, d, generator=g).cuda()
    k32 = torch.randn(B, H, T, d, generator=g).cuda()
    v32 = torch.randn(B, H, T, d, generator=g).cuda()
    mask, causal = None, setting.startswith("causal")
    allowed = torch.ones(T_q, T, dtype=torch.bool, device="cuda")
    if causal:
        allowed = allowed.tril(T - T_q)
    if setting == "mask-with-empty-rows":
        mask = torch.rand(B, 1, T_q, T, generator=g).cuda() > 0.5
        mask[:, :, 1] = False
        allowed = allowed & mask
    q, k, v = (t.to(dtype) for t in (q32, k32, v32))
    res = attention(q, k, v, mask, is_causal=causal, return_weights=explicit)
    out = res[0] if explicit else res
    assert out.dtype == dtype and out.device.type == "cuda"
    assert torch.isfinite(out).all()
    ref = reference(q, k, v, allowed.expand(B, H, T_q, T))
    tol = TOL[dtype]
    torch.testing.assert_close(out.double(), ref, atol=tol, rtol=tol)
    if setting == "mask-with-empty-rows":
        assert (out[:, :, 1] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_backward_is_finite_on_cuda(dtype):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 4, 33, 64, generator=g).cuda().to(dtype).requires_grad_(True)
               for _ in range(3))
    mask = torch.ones(33, 33, dtype=torch.bool, device="cuda").tril()
    mask[0] = False  # one empty row
    for explicit in (False, True):
        res = attention(q, k, v, mask, return_weights=explicit)
        out = res[0] if explicit else res
        out.float().sum().backward()
        for t in (q, k, v):
            assert torch.isfinite(t.grad).all()
            t.grad = None


def test_decoder_training_with_bf16_autocast_reduces_loss():
    gen = seed_everything(0)
    cfg = TINY.replace(vocab_size=16, context_len=32)
    model = Decoder(cfg).cuda()
    data = (torch.arange(2000) % 16).cuda()  # periodic: learnable in a few steps
    hist = train(model, lambda: get_batch(data, 16, cfg.context_len, generator=gen, device="cuda"), 20,
                 lr=1e-2, autocast_dtype=torch.bfloat16, progress=False)
    assert all(math.isfinite(x) for x in hist.train_loss)
    assert hist.train_loss[-1] < 0.7 * hist.train_loss[0]


@pytest.mark.parametrize("sampling", ["greedy", "top_k"])
def test_kv_cache_generation_on_cuda(sampling):
    torch.manual_seed(0)
    cfg = TINY.replace(context_len=16)
    model = Decoder(cfg).cuda().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(10.0)  # spread the logits: no near-ties for argmax
    prompt = torch.randint(cfg.vocab_size, (2, 5), device="cuda")
    kw = dict(temperature=0) if sampling == "greedy" else dict(temperature=0.8, top_k=5)

    def gen(kv_cache):
        g = torch.Generator(device="cuda").manual_seed(3)
        return model.generate(prompt, 30, kv_cache=kv_cache, generator=g, **kw)  # runs past context_len

    a, b = gen(True), gen(False)
    assert a.device.type == "cuda" and a.shape == (2, 35)
    assert torch.equal(a, b)


def test_decoder_checks_ids_on_cuda_with_one_reading():
    """The training step's one-reduction check of tokens and targets on the device: it passes good
    ids (the loss equals the CPU model's) and names a bad target; V.id_bounds reads both bounds."""
    from attnlib import _validate as V

    torch.manual_seed(0)
    model = Decoder(TINY)
    x = torch.randint(0, TINY.vocab_size, (4, 8))
    y = torch.randint(0, TINY.vocab_size, (4, 8))
    want = model(x, y)[1]
    got = model.cuda()(x.cuda(), y.cuda())[1]
    torch.testing.assert_close(got.cpu(), want, atol=1e-4, rtol=1e-4)
    assert V.id_bounds(x.cuda(), y.cuda()) == [(int(x.min()), int(x.max())), (int(y.min()), int(y.max()))]
    with pytest.raises(ValueError, match=r"every target must lie in \[0, vocab_size=64\)"):
        model(x.cuda(), torch.full_like(y, 64).cuda())

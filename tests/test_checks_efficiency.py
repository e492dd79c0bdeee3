"""The chapter 11 checkers accept correct answers (several styles) and diagnose typical mistakes."""

import math

import torch

from attnlib import checks
from attnlib import efficient as E

# --------------------------------------------------------------------------- online softmax


def online_ok(m, l, acc, s, v):
    m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
    alpha = torch.exp(m - m_new)
    p = torch.exp(s - m_new)
    return m_new, l * alpha + p.sum(dim=-1, keepdim=True), acc * alpha + p @ v


def online_ok_loop(m, l, acc, s, v):  # another correct style: one query at a time
    m, l, acc = m.clone(), l.clone(), acc.clone()
    for i in range(s.shape[0]):
        new = max(m[i, 0].item(), s[i].max().item())
        scale = math.exp(m[i, 0].item() - new) if m[i, 0].item() != float("-inf") else 0.0
        p = torch.exp(s[i] - new)
        l[i, 0] = l[i, 0] * scale + p.sum()
        acc[i] = acc[i] * scale + p @ v
        m[i, 0] = new
    return m, l, acc


def _online_variant(rescale_l=True, rescale_acc=True, flip=False, subtract=True):
    def update(m, l, acc, s, v):
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        alpha = torch.exp(m_new - m) if flip else torch.exp(m - m_new)
        alpha = torch.nan_to_num(alpha, nan=0.0, posinf=0.0)
        p = torch.exp(s - m_new) if subtract else torch.exp(s)
        if not subtract:
            alpha = torch.ones_like(alpha)
        l2 = (l * alpha if rescale_l else l) + p.sum(dim=-1, keepdim=True)
        a2 = (acc * alpha if rescale_acc else acc) + p @ v
        return m_new, l2, a2

    return update


def test_online_softmax_accepts(capsys):
    assert checks.check_online_softmax(online_ok)
    assert checks.check_online_softmax(online_ok_loop)
    assert "✓" in capsys.readouterr().out


def test_online_softmax_diagnoses(capsys):
    def stub(m, l, acc, s, v):
        raise NotImplementedError

    cases = [
        (stub, "not implemented"),
        (_online_variant(rescale_l=False), "but not the running sum l"),
        (_online_variant(rescale_acc=False), "but not the accumulator acc"),
        (_online_variant(rescale_l=False, rescale_acc=False), "never rescale"),
        (_online_variant(flip=True), "upside down"),
        (_online_variant(subtract=False), "raw scores"),
        (lambda m, l, acc, s, v: online_ok(m, l, acc, s, v)[1:], "three updated tensors"),
        (lambda m, l, acc, s, v: (m, *online_ok(m, l, acc, s, v)[1:]), "running max"),
    ]
    for fn, phrase in cases:
        assert not checks.check_online_softmax(fn)
        out = capsys.readouterr().out
        assert "✗" in out and phrase in out, (phrase, out)


# --------------------------------------------------------------------------- sliding window


def test_sliding_window_accepts(capsys):
    assert checks.check_sliding_window_mask(E.sliding_window_mask)

    def with_tril(T, window):
        return torch.ones(T, T, dtype=torch.bool).tril() & ~torch.ones(T, T, dtype=torch.bool).tril(-window)

    assert checks.check_sliding_window_mask(with_tril)
    capsys.readouterr()


def test_sliding_window_diagnoses(capsys):
    cases = [
        (lambda T, w: ~E.sliding_window_mask(T, w), "polarity"),
        (lambda T, w: E.sliding_window_mask(T, w).T, "transposed"),
        (lambda T, w: E.sliding_window_mask(T, w, causal=False), "looks ahead"),
        (lambda T, w: E.sliding_window_mask(T, w + 1), "off by one"),
        (lambda T, w: E.sliding_window_mask(T, w).float(), "bool"),
        (lambda T, w: None, "return"),
        (lambda T, w: torch.ones(T, T, dtype=torch.bool), "outside its window"),
    ]
    for fn, phrase in cases:
        assert not checks.check_sliding_window_mask(fn)
        out = capsys.readouterr().out
        assert "✗" in out and phrase in out, (phrase, out)
    # window - 1 needs window > 1 in some case: (6, 3) comes first
    assert not checks.check_sliding_window_mask(lambda T, w: E.sliding_window_mask(T, max(w - 1, 1)))
    assert "off by one" in capsys.readouterr().out


def test_window_count(capsys):
    assert checks.check_window_count(lambda T, w: E.count_attended(E.sliding_window_mask(T, w)))
    w_ok = lambda T, w: min(T, w) * (min(T, w) + 1) // 2 + max(T - w, 0) * w  # noqa: E731
    assert checks.check_window_count(w_ok)
    capsys.readouterr()
    for fn, phrase in [
        (lambda T, w: T * w, "fewer earlier tokens"),
        (lambda T, w: T * (T + 1) // 2, "full causal"),
        (lambda T, w: "12", "return one number"),
    ]:
        assert not checks.check_window_count(fn)
        out = capsys.readouterr().out
        assert phrase in out, (phrase, out)


# --------------------------------------------------------------------------- pattern memory


def test_pattern_memory(capsys):
    def ok(context_len, n_heads, n_layers, dtype, batch=1):
        return E.pattern_bytes(context_len, n_heads=n_heads, n_layers=n_layers, batch=batch, dtype=dtype)

    def ok_tensor(context_len, n_heads, n_layers, dtype, batch=1):  # float and tensor answers count too
        return torch.tensor(float(batch * n_layers * n_heads * context_len**2 * dtype.itemsize))

    assert checks.check_pattern_memory(ok)
    assert checks.check_pattern_memory(ok_tensor)
    capsys.readouterr()

    def size(dt):
        return torch.empty((), dtype=dt).element_size()

    cases = [
        (lambda T, H, L, dt, batch=1: batch * L * H * T * T, "entries, not bytes"),
        (lambda T, H, L, dt, batch=1: batch * L * T * T * size(dt), "forgot the heads"),
        (lambda T, H, L, dt, batch=1: batch * H * T * T * size(dt), "forgot the layers"),
        (lambda T, H, L, dt, batch=1: batch * L * H * T * T * 4, "4 bytes"),
        (lambda T, H, L, dt, batch=1: batch * L * H * T * T * size(dt) * 8, "bits"),
        (lambda T, H, L, dt, batch=1: batch * L * H * T * size(dt), "context_len x context_len"),
        (lambda T, H, L, dt, batch=1: L * H * T * T * size(dt), "forgot the batch"),
        (lambda T, H, L, dt: L * H * T * T * size(dt), "unexpected keyword"),
    ]
    for fn, phrase in cases:
        assert not checks.check_pattern_memory(fn)
        out = capsys.readouterr().out
        assert "✗" in out and phrase in out, (phrase, out)

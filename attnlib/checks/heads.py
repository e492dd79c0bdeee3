"""Checkers for chapters 5-8: value updates, one head, many heads, parameter counts, cross-attention.

Conventions of the reader's functions (the chapters state them in each exercise):
    x (..., T, d_model); one head's W_Q, W_K, W_V (value-down) (d_model, d_head), W_O (value-up)
    (d_head, d_model); many heads stack them: W_Q (n_heads, d_model, d_head), W_O (n_heads, d_head,
    d_model); patterns (..., query_pos, key_pos); boolean masks True = may attend.
"""

from __future__ import annotations

import math

import torch

from ..attention import attention, padding_mask
from ._core import Case, call, case, compare, fail, randn, run_cases, run_check, tensor_output

__all__ = [
    "check_value_update", "check_projection", "check_value_params", "check_head", "check_head_params",
    "check_leak_detector", "check_split_heads", "check_merge_heads", "check_multihead",
    "check_param_count", "check_cross_attention", "check_cross_attention_mask",
    "check_alignment_accuracy",
]


# --------------------------------------------------------------------------- references


def _head(x, W_Q, W_K, W_V, W_O, *, causal=True, scale=None):
    """One head's proposed change (..., T, d_model)."""
    out = attention(x @ W_Q, x @ W_K, x @ W_V, is_causal=causal, scale=scale)
    return out @ W_O


def _explicit_pattern(q, k, *, causal, dim=-1, scale=None, mask=None):
    """Scores -> masked -> softmax over ``dim`` (dim=-2 is the classic wrong-axis mistake)."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ k.transpose(-2, -1) * scale
    if causal:
        T_q, T_k = s.shape[-2:]
        s = s.masked_fill(~torch.ones(T_q, T_k, dtype=torch.bool).tril(T_k - T_q), float("-inf"))
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=dim).nan_to_num(0.0)


def _head_weights(d_model, d_head, seed):
    return tuple(randn(*shape, seed=seed + i) / math.sqrt(shape[0])
                 for i, shape in enumerate([(d_model, d_head)] * 3 + [(d_head, d_model)]))


def _scalar(out, what="your function"):
    """A Python number from an int/float/0-d tensor, or a diagnosis."""
    if out is None:
        fail(f"{what} returned None - did you forget the `return` statement?")
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            fail(f"{what} returned a tensor of shape {tuple(out.shape)}; return a single number")
        return out.item()
    if isinstance(out, bool) or not isinstance(out, (int, float)):
        fail(f"{what} returned a {type(out).__name__}; return a number")
    return out


# --------------------------------------------------------------------------- chapter 5: values


def check_value_update(fn) -> bool:
    """``fn(x, pattern, W_down, W_up)`` -> the updated embeddings x + pattern @ (x @ W_down) @ W_up.

    x (..., T, d_model), pattern (..., T, T) (rows = queries), W_down (d_model, d_head),
    W_up (d_head, d_model).
    """

    def body():
        cases = []
        for name, lead, T, d, dh, seed in (("5 tokens", (), 5, 6, 2, 0), ("a batch of 2", (2,), 4, 8, 3, 10)):
            x = randn(*lead, T, d, seed=seed)
            pattern = torch.softmax(randn(*lead, T, T, seed=seed + 1), dim=-1)
            Wd, Wu = randn(d, dh, seed=seed + 2), randn(dh, d, seed=seed + 3)
            change = pattern @ (x @ Wd) @ Wu
            cases.append(Case(name, (x, pattern, Wd, Wu), x + change, mistakes=[
                ("you returned only the change; the update is ADDED to the embedding: return x + change",
                 change),
                ("the pattern is transposed: row i of the pattern holds query i's weights over the keys, "
                 "so the change of token i is pattern[i] @ values (pattern @ values, not pattern.T @ values)",
                 x + pattern.transpose(-2, -1) @ (x @ Wd) @ Wu),
                ("every token got the plain sum of all values: weight the values by the pattern",
                 x + torch.ones_like(pattern) @ (x @ Wd) @ Wu),
                ("each token moved by its own value only: the pattern must mix the values of all tokens",
                 x + x @ Wd @ Wu),
                ("you added the embedding twice (x + x + change)", 2 * x + change),
            ]))
        n = run_cases(fn, cases, hint="values = x @ W_down @ W_up has shape (..., T, d_model)")
        return n

    return run_check("value update", body)


def check_projection(fn) -> bool:
    """``fn(v, direction)`` -> the signed length of v along ``direction`` (a number):
    v . direction / |direction|. v and direction are 1-D tensors of the same size."""

    def body():
        cases = [("unit direction", torch.tensor([3.0, 4.0]), torch.tensor([1.0, 0.0])),
                 ("long direction", torch.tensor([3.0, 4.0]), torch.tensor([0.0, 2.0])),
                 ("opposite", torch.tensor([1.0, 2.0, 2.0]), torch.tensor([-2.0, -4.0, -4.0])),
                 ("random", randn(16, seed=5), randn(16, seed=6))]
        for name, v, u in cases:
            out = call(fn, v, u)
            if isinstance(out, torch.Tensor) and out.numel() == v.numel() and out.numel() > 1:
                fail(f"case {name!r}: you returned a vector; return the number v . u / |u| (the "
                     "length of the shadow of v along u), not the projected vector")
            got = _scalar(out)
            want = (v @ u / u.norm()).item()
            if math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-5):
                continue
            if math.isclose(got, (v @ u).item(), rel_tol=1e-4, abs_tol=1e-5):
                fail(f"case {name!r}: you returned the plain dot product; divide by the length of "
                     "the direction, |u|, or a longer direction would give a bigger number")
            if math.isclose(got, (v @ u / u.norm() ** 2).item(), rel_tol=1e-4, abs_tol=1e-5):
                fail(f"case {name!r}: you divided by |u|^2; that gives the coefficient of the "
                     "projected vector, divide by |u| once for a length")
            if math.isclose(got, abs(want), rel_tol=1e-4):
                fail(f"case {name!r}: the sign is lost; a vector pointing against u has a negative "
                     "projection")
            fail(f"case {name!r}: expected {want:.4g}, got {got:.4g}")
        return len(cases)

    return run_check("projection", body)


def check_value_params(fn) -> bool:
    """``fn(d_model, d_head)`` -> (parameters of a full d_model x d_model value map,
    parameters of the factored value-down + value-up), as two ints; no biases."""

    def body():
        sizes = [(12288, 128), (64, 16), (5, 3)]
        for d, dh in sizes:
            out = call(fn, d, dh)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                fail(f"return two numbers (full, factored), got {type(out).__name__}"
                     + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
            full, fact = (_scalar(o) for o in out)
            if full != d * d:
                fail(f"d_model={d}, d_head={dh}: the full map has {d * d:,} parameters (d_model x "
                     f"d_model), you gave {full:,}")
            if fact == d * dh:
                fail(f"d_model={d}, d_head={dh}: you counted one of the two factors; value-down "
                     f"(d_model x d_head) AND value-up (d_head x d_model) give 2 x {d * dh:,}")
            if fact != 2 * d * dh:
                fail(f"d_model={d}, d_head={dh}: the factored map has 2 x d_model x d_head = "
                     f"{2 * d * dh:,} parameters, you gave {fact:,}")
        return len(sizes)

    return run_check("value map parameters", body)


# --------------------------------------------------------------------------- chapter 6: one head


def _head_mistakes(x, W_Q, W_K, W_V, W_O):
    d_model = x.shape[-1]
    return [
        ("the scores are not scaled: divide q @ k^T by sqrt(d_head) before the softmax",
         lambda: _head(x, W_Q, W_K, W_V, W_O, scale=1.0)),
        ("you scaled by sqrt(d_model); the scale is 1/sqrt(d_head), the size of the vectors being dotted",
         lambda: _head(x, W_Q, W_K, W_V, W_O, scale=1 / math.sqrt(d_model))),
        ("the softmax runs over the wrong axis: each query's row (dim=-1, over the keys) must sum to 1",
         lambda: _explicit_pattern(x @ W_Q, x @ W_K, causal=True, dim=-2) @ (x @ W_V) @ W_O),
        ("no causal mask: every position sees the future; set the scores of later keys to -inf",
         lambda: _head(x, W_Q, W_K, W_V, W_O, causal=False)),
        ("W_Q and W_K are swapped: queries are x @ W_Q, keys are x @ W_K (the pattern is not symmetric)",
         lambda: _head(x, W_K, W_Q, W_V, W_O)),
        ("you returned x + change; this function returns the head's proposed change only",
         lambda: x + _head(x, W_Q, W_K, W_V, W_O)),
        ("the pattern is transposed (pattern.T @ values): row i must hold query i's weights",
         lambda: _explicit_pattern(x @ W_Q, x @ W_K, causal=True).transpose(-2, -1) @ (x @ W_V) @ W_O),
    ]


def _future_leak(fn, x, W):
    """True when changing the last position moves an earlier output."""
    x2 = x.clone()
    x2[..., -1, :] += 3.0
    a = tensor_output(call(fn, x, *W))
    b = tensor_output(call(fn, x2, *W))
    return not torch.allclose(a[..., :-1, :], b[..., :-1, :], atol=1e-5)


def check_head(fn) -> bool:
    """``fn(x, W_Q, W_K, W_V, W_O)`` -> one causal head's proposed change (..., T, d_model).

    x (..., T, d_model); W_Q, W_K, W_V (value-down) (d_model, d_head); W_O (value-up) (d_head, d_model).
    """

    def body():
        n = 0
        for name, lead, T, d, dh, seed in (("one sentence", (), 5, 8, 4, 0), ("a batch", (2,), 6, 12, 3, 20)):
            x = randn(*lead, T, d, seed=seed)
            W = _head_weights(d, dh, seed + 1)
            want = _head(x, *W)
            with case(name):
                out = tensor_output(call(fn, x, *W, hint="check each shape: q, k, v are (..., T, d_head)"))
                if tuple(out.shape) == (*lead, T, dh):
                    fail(f"the output has d_head={dh} columns: you forgot value-up; multiply by W_O to "
                         "return to d_model")
                compare(out, want, mistakes=_head_mistakes(x, *W))
            n += 1
        x = randn(4, 8, seed=40)
        W = _head_weights(8, 2, 41)
        if _future_leak(fn, x, W):
            fail("changing the last token moved earlier outputs: the future leaks; mask the scores of "
                 "later keys with -inf before the softmax")
        return n + 1

    return run_check("one head", body)


def check_head_params(fn) -> bool:
    """``fn(d_model, d_head)`` -> the number of parameters of one head (no biases)."""

    def body():
        for d, dh in [(12288, 128), (64, 16), (10, 3)]:
            got = _scalar(call(fn, d, dh))
            want = 4 * d * dh
            if got == want:
                continue
            wrong = {3 * d * dh: "you counted three matrices; a head has four: W_Q, W_K, value-down "
                                 "and value-up (d_model x d_head each)",
                     3 * d * dh + d * d: "you counted a full d_model x d_model value map; the value map "
                                         "is factored into value-down and value-up",
                     4 * d * d: "each matrix is d_model x d_head, not d_model x d_model",
                     d * dh: "that is one matrix; a head has four of them"}
            fail(f"d_model={d}, d_head={dh}: " + wrong.get(got, f"expected {want:,}, got {got:,}"))
        return 3

    return run_check("parameters of one head", body)


def check_leak_detector(fn) -> bool:
    """``fn(head, x)`` -> True when ``head`` leaks the future: some output at position i changes
    when the tokens after i change. ``head(x)`` maps (T, d_model) -> (T, d_model)."""

    def body():
        W = _head_weights(8, 4, 60)
        x = randn(6, 8, seed=61)

        def causal_head(z):
            return _head(z, *W)

        def leaky_head(z):
            return _head(z, *W, causal=False)

        def peeks_one_ahead(z):  # causal except that position 0 also sees position 1
            out = _head(z, *W)
            out[0] = _head(z[:2], *W, causal=False)[0]
            return out

        verdicts = {}
        for name, head in (("a causal head", causal_head), ("a head without mask", leaky_head),
                           ("a head where only position 0 peeks at position 1", peeks_one_ahead)):
            v = call(fn, head, x)
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                v = bool(v.item())
            if not isinstance(v, bool):
                fail(f"return True or False, got {type(v).__name__}")
            verdicts[name] = v
        if verdicts["a causal head"]:
            fail("you flagged a correct causal head: perturbing an early token SHOULD move later "
                 "outputs; perturb a later token and look only at the positions before it")
        if not verdicts["a head without mask"]:
            fail("you missed a head with no mask at all: perturb a later token and compare the outputs "
                 "at earlier positions")
        if not verdicts["a head where only position 0 peeks at position 1"]:
            fail("you missed a small leak (position 0 sees position 1): perturb every later position in "
                 "turn, or compare every earlier position, not only the last one")
        return 3

    return run_check("future-leak detector", body, unit="heads judged")


# --------------------------------------------------------------------------- chapter 7: many heads


def check_split_heads(fn) -> bool:
    """``fn(t, n_heads)``: (B, T, n_heads * d_head) -> (B, n_heads, T, d_head); head h owns the
    features h*d_head .. (h+1)*d_head - 1 (how nn.Linear's output is laid out in attnlib and PyTorch)."""

    def body():
        B, T, H, dh = 2, 5, 3, 4
        t = torch.arange(B * T * H * dh, dtype=torch.float32).reshape(B, T, H * dh)
        want = t.view(B, T, H, dh).transpose(1, 2)
        return run_cases(fn, [Case("B=2, T=5, 3 heads of 4", (t, H), want, mistakes=[
            ("wrong reshape: viewing (B, T, H*d_head) directly as (B, H, T, d_head) mixes positions "
             "into heads; view as (B, T, H, d_head), then transpose(1, 2)", t.reshape(B, H, T, dh)),
            ("the heads are interleaved: the features of head h are the contiguous block "
             "h*d_head:(h+1)*d_head, so view as (B, T, H, d_head), not (B, T, d_head, H)",
             t.view(B, T, dh, H).permute(0, 3, 1, 2)),
            ("you forgot the transpose: (B, T, H, d_head) must become (B, H, T, d_head)",
             t.view(B, T, H, dh)),
        ])])

    return run_check("split heads", body)


def check_merge_heads(fn) -> bool:
    """``fn(t)``: (B, n_heads, T, d_head) -> (B, T, n_heads * d_head), heads side by side."""

    def body():
        B, H, T, dh = 2, 3, 5, 4
        t = torch.arange(B * H * T * dh, dtype=torch.float32).reshape(B, H, T, dh)
        want = t.transpose(1, 2).reshape(B, T, H * dh)
        return run_cases(fn, [Case("B=2, 3 heads, T=5, d_head=4", (t,), want, mistakes=[
            ("wrong reshape: reshaping (B, H, T, d_head) straight to (B, T, H*d_head) mixes positions; "
             "transpose(1, 2) first, then reshape", t.reshape(B, T, H * dh)),
            ("the heads are interleaved: put each head's d_head features in one contiguous block "
             "(transpose(1, 2) then reshape), not feature-major", t.permute(0, 2, 3, 1).reshape(B, T, H * dh)),
        ])])

    return run_check("merge heads", body)


def check_multihead(fn) -> bool:
    """``fn(x, W_Q, W_K, W_V, W_O)`` -> causal multi-head attention's output (..., T, d_model):
    the sum over heads of each head's proposed change. W_Q, W_K, W_V (n_heads, d_model, d_head),
    W_O (n_heads, d_head, d_model)."""

    def body():
        B, T, d, H, dh = 2, 5, 8, 3, 4
        x = randn(B, T, d, seed=80)
        W = [randn(H, d, dh, seed=81 + i) / math.sqrt(d) for i in range(3)] + [randn(H, dh, d, seed=84) / 2]
        per_head = torch.stack([_head(x, *(w[h] for w in W)) for h in range(H)])  # (H, B, T, d)
        want = per_head.sum(0)
        return run_cases(fn, [Case("2 sentences, 3 heads", (x, *W), want, mistakes=[
            ("you averaged the heads; their changes are summed (the output matrix adds them up)",
             per_head.mean(0)),
            ("no causal mask: every position sees the future", lambda: torch.stack(
                [_head(x, *(w[h] for w in W), causal=False) for h in range(H)]).sum(0)),
            ("you scaled by sqrt(d_model); each head scales by 1/sqrt(d_head)", lambda: torch.stack(
                [_head(x, *(w[h] for w in W), scale=1 / math.sqrt(d)) for h in range(H)]).sum(0)),
            ("you returned x + output; return the block's output only", x + want),
            ("you returned one head only; sum the changes of all heads", per_head[0]),
        ])], hint="give the heads their own axis: q = einsum('btd,hde->bhte', x, W_Q)")

    return run_check("multi-head attention", body)


def check_param_count(fn) -> bool:
    """``fn(d_model, n_heads, d_head, n_layers)`` -> attention parameters of a whole model (no biases)."""

    def body():
        sizes = [(64, 4, 16, 2), (48, 3, 8, 5), (12288, 96, 128, 96)]
        for d, H, dh, L in sizes:
            got = _scalar(call(fn, d, H, dh, L))
            want = 4 * d * H * dh * L
            if got == want:
                continue
            wrong = {
                4 * d * H * dh: "that is one block; multiply by the number of layers",
                4 * d * dh * L: "you counted one head per layer; multiply by n_heads",
                3 * d * H * dh * L: "you counted three matrices per head; there are four (W_Q, W_K, "
                                    "value-down, value-up)",
                4 * d * d * L: "you assumed n_heads x d_head = d_model (true for GPT-3, not here); "
                               "count d_model x d_head per matrix per head",
                4 * d * dh: "that is one head",
            }
            fail(f"d_model={d}, n_heads={H}, d_head={dh}, n_layers={L}: "
                 + wrong.get(got, f"expected {want:,}, got {got:,}"))
        return len(sizes)

    return run_check("attention parameter count", body)


# --------------------------------------------------------------------------- chapter 8: cross-attention


def check_cross_attention(fn) -> bool:
    """``fn(x, context, w_q, w_k, w_v, context_len)`` -> cross-attention output (B, T_q, d_head):
    queries from x (B, T_q, d_model), keys and values from context (B, T_k, d_model); context
    positions >= context_len[b] are padding; no causal mask."""

    def body():
        B, T_q, T_k, d, dh = 2, 4, 6, 8, 4
        x, c = randn(B, T_q, d, seed=90), randn(B, T_k, d, seed=91)
        w_q, w_k, w_v = (randn(d, dh, seed=92 + i) / math.sqrt(d) for i in range(3))
        lengths = torch.tensor([6, 3])
        m = padding_mask(lengths, T_k)[:, 0]  # (B, 1, T_k)
        q, k, v = x @ w_q, c @ w_k, c @ w_v
        want = attention(q, k, v, m)
        return run_cases(fn, [Case("T_q=4 queries, T_k=6 keys, lengths [6, 3]", (x, c, w_q, w_k, w_v, lengths),
                                   want, mistakes=[
            ("you applied a causal mask; cross-attention has none: every target position may look at "
             "the whole source", lambda: attention(q, k, v, m, is_causal=True)),
            ("you applied a causal mask; cross-attention has none",
             lambda: _explicit_pattern(q, k, causal=False, mask=m & torch.ones(T_q, T_k, dtype=torch.bool).tril())
             @ v),
            ("padding is attended: block the context positions >= context_len", lambda: attention(q, k, v)),
            ("the mask is flipped: True must mean 'may attend' (a real token), so padding is False",
             lambda: attention(q, k, v, ~m)),
            ("the scores are not scaled by 1/sqrt(d_head)", lambda: attention(q, k, v, m, scale=1.0)),
            ("the softmax runs over the queries; each query's weights over the keys must sum to 1",
             lambda: _explicit_pattern(q, k, causal=False, dim=-2, mask=m) @ v),
        ])], hint="queries come from x, keys AND values from context (a different length)")

    return run_check("cross-attention", body)


def check_cross_attention_mask(fn) -> bool:
    """``fn(context_len, T_q, T_k)`` -> a bool mask that broadcasts to (B, 1, T_q, T_k) (True = may
    attend) for a batch of contexts padded to T_k, with real lengths ``context_len`` (B,)."""

    def body():
        cases = [(torch.tensor([5, 2, 4]), 3, 5), (torch.tensor([1, 6]), 7, 6)]
        for lengths, T_q, T_k in cases:
            B = len(lengths)
            out = call(fn, lengths, T_q, T_k)
            out = tensor_output(out, what="your mask function")
            if out.is_floating_point():
                fail("you returned a float mask; a float mask is ADDED to the scores (0/1 blocks "
                     "nothing). Return a bool tensor, e.g. positions < lengths")
            if out.dtype != torch.bool:
                fail(f"return a bool tensor (True = may attend), got dtype {out.dtype}")
            if out.ndim != 4 or out.shape[0] != B or out.shape[1] != 1 or out.shape[2] not in (1, T_q) \
                    or out.shape[3] != T_k:
                fail(f"expected shape ({B}, 1, 1, {T_k}) or ({B}, 1, {T_q}, {T_k}) (batch, head, query, "
                     f"key), got {tuple(out.shape)}")
            got = out.expand(B, 1, T_q, T_k)
            want = padding_mask(lengths, T_k).expand(B, 1, T_q, T_k)
            if torch.equal(got, want):
                continue
            causal = torch.ones(T_q, T_k, dtype=torch.bool).tril(T_k - T_q)
            pos = torch.arange(T_k)
            for wrong, msg in (
                (~want, "the mask is flipped: True means 'may attend', so real tokens are True"),
                (want & causal, "you added a causal mask; cross-attention needs only the padding mask"),
                ((pos <= lengths[:, None])[:, None, None, :].expand(B, 1, T_q, T_k),
                 "off by one: positions 0 .. length-1 are real, so use `<`, not `<=`"),
                ((torch.arange(T_q)[None, :] < lengths[:, None])[:, None, :, None].expand(B, 1, T_q, T_k)
                 if T_q >= int(lengths.max()) else None,
                 "you masked query positions; the padding to hide is in the keys (the last axis)"),
            ):
                if wrong is not None and torch.equal(got, wrong):
                    fail(f"lengths {lengths.tolist()}: {msg}")
            fail(f"lengths {lengths.tolist()}, T_q={T_q}, T_k={T_k}: the mask is wrong")
        return len(cases)

    return run_check("cross-attention mask", body)


def check_alignment_accuracy(fn) -> bool:
    """``fn(pattern, align)`` -> the fraction of scored rows whose largest weight is on the aligned key.
    pattern (B, T_q, T_k); align (B, T_q), -1 marks rows that are not scored."""

    def body():
        pattern = torch.softmax(randn(2, 5, 5, seed=100) * 3, dim=-1)
        best = pattern.argmax(-1)
        align = best.clone()
        align[0, 1] = (best[0, 1] + 1) % 5
        align[1, 2] = (best[1, 2] + 2) % 5
        align[0, 4] = align[1, 3] = align[1, 4] = -1
        scored = align >= 0

        def frac(pred, denom):
            return round(((pred == align) & scored).sum().item() / denom, 6)

        want = frac(best, scored.sum().item())  # 5 of 7
        got = _scalar(call(fn, pattern, align))
        if math.isclose(got, want, rel_tol=1e-6):
            return 1
        wrong = {
            frac(best, align.numel()):
                "you divided by every row; rows marked -1 (the <eos> row, padding) are not scored",
            round((best == align).float().mean().item(), 6):
                "you divided by every row; rows marked -1 (the <eos> row, padding) are not scored",
            frac(pattern.argmax(1), scored.sum().item()):
                "you took the argmax over the queries (dim=1); each query row picks its strongest key: dim=-1",
            round(1 - want, 6): "you counted the misses instead of the hits",
        }
        fail(wrong.get(round(got, 6), f"expected {want:.4f}, got {got:.4f}"))

    return run_check("alignment accuracy", body)

"""The checkers of chapters 5-8 accept correct answers written in two styles and name each mistake."""

import math

import pytest
import torch
import torch.nn.functional as F

from attnlib import checks, count_parameters
from attnlib.attention import padding_mask
from attnlib.decoder import GPT3, Decoder


def verdict(capsys, checker, fn):
    ok = checker(fn)
    out = capsys.readouterr().out
    return ok, out


def passes(capsys, checker, fn):
    ok, out = verdict(capsys, checker, fn)
    assert ok, out
    assert out.startswith("✓")


def fails_with(capsys, checker, fn, text):
    ok, out = verdict(capsys, checker, fn)
    assert not ok
    assert out.startswith("✗")
    assert text in out, out


def stub(*args, **kwargs):
    raise NotImplementedError


ALL = [checks.check_value_update, checks.check_projection, checks.check_value_params, checks.check_head,
       checks.check_head_params, checks.check_leak_detector, checks.check_bug_fix, checks.check_split_heads,
       checks.check_merge_heads, checks.check_multihead, checks.check_ablation, checks.check_param_count,
       checks.check_cross_attention, checks.check_cross_attention_mask, checks.check_alignment_accuracy]


@pytest.mark.parametrize("checker", ALL, ids=lambda c: c.__name__)
def test_stub_reads_not_implemented(capsys, checker):
    fails_with(capsys, checker, stub, "not implemented yet")


# ---------------------------------------------------------------- chapter 5


def test_value_update(capsys):
    passes(capsys, checks.check_value_update, lambda x, p, Wd, Wu: x + p @ (x @ Wd) @ Wu)
    passes(capsys, checks.check_value_update,
           lambda x, p, Wd, Wu: x + torch.einsum("...qk,...kd->...qd", p, torch.einsum("...td,de,ef->...tf", x, Wd, Wu)))
    fails_with(capsys, checks.check_value_update, lambda x, p, Wd, Wu: p @ x @ Wd @ Wu, "only the change")
    fails_with(capsys, checks.check_value_update, lambda x, p, Wd, Wu: x + p.transpose(-2, -1) @ x @ Wd @ Wu,
               "transposed")
    fails_with(capsys, checks.check_value_update, lambda x, p, Wd, Wu: x + x @ Wd @ Wu, "its own value only")
    fails_with(capsys, checks.check_value_update, lambda x, p, Wd, Wu: x + (x @ Wd @ Wu).sum(-2, keepdim=True)
               .expand_as(x), "plain sum")
    fails_with(capsys, checks.check_value_update, lambda x, p, Wd, Wu: 2 * x + p @ x @ Wd @ Wu, "twice")
    fails_with(capsys, checks.check_value_update, lambda x, p, Wd, Wu: x + p @ x @ Wd, "shape")


def test_projection(capsys):
    passes(capsys, checks.check_projection, lambda v, u: v @ u / u.norm())
    passes(capsys, checks.check_projection, lambda v, u: float(torch.dot(v, u / torch.linalg.norm(u))))
    fails_with(capsys, checks.check_projection, lambda v, u: v @ u, "plain dot product")
    fails_with(capsys, checks.check_projection, lambda v, u: v @ u / (u @ u), "|u|^2")
    fails_with(capsys, checks.check_projection, lambda v, u: (v @ u / u.norm()).abs(), "sign")
    fails_with(capsys, checks.check_projection, lambda v, u: (v @ u / (u @ u)) * u, "vector")


def test_value_params(capsys):
    passes(capsys, checks.check_value_params, lambda d, dh: (d * d, 2 * d * dh))
    passes(capsys, checks.check_value_params, lambda d, dh: [torch.tensor(d**2), d * dh + dh * d])
    fails_with(capsys, checks.check_value_params, lambda d, dh: (d * d, d * dh), "one of the two factors")
    fails_with(capsys, checks.check_value_params, lambda d, dh: (d * dh, 2 * d * dh), "full map")
    fails_with(capsys, checks.check_value_params, lambda d, dh: d * d, "2 numbers")


# ---------------------------------------------------------------- chapter 6


def head_matmul(x, W_Q, W_K, W_V, W_O, *, causal=True, scale=None, dim=-1, swap=False, up=True):
    q, k = (x @ W_K, x @ W_Q) if swap else (x @ W_Q, x @ W_K)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ k.transpose(-2, -1) * scale
    if causal:
        T = s.shape[-1]
        s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    out = torch.softmax(s, dim=dim) @ (x @ W_V)
    return out @ W_O if up else out


def head_sdpa(x, W_Q, W_K, W_V, W_O):
    return F.scaled_dot_product_attention(x @ W_Q, x @ W_K, x @ W_V, is_causal=True) @ W_O


def test_head(capsys):
    passes(capsys, checks.check_head, head_matmul)
    passes(capsys, checks.check_head, head_sdpa)
    fails_with(capsys, checks.check_head, lambda *a: head_matmul(*a, scale=1.0), "not scaled")
    fails_with(capsys, checks.check_head, lambda x, *W: head_matmul(x, *W, scale=1 / math.sqrt(x.shape[-1])),
               "sqrt(d_model)")
    fails_with(capsys, checks.check_head, lambda *a: head_matmul(*a, dim=-2), "wrong axis")
    fails_with(capsys, checks.check_head, lambda *a: head_matmul(*a, causal=False), "no causal mask")
    fails_with(capsys, checks.check_head, lambda *a: head_matmul(*a, swap=True), "swapped")
    fails_with(capsys, checks.check_head, lambda *a: head_matmul(*a, up=False), "forgot value-up")
    fails_with(capsys, checks.check_head, lambda x, *W: x + head_sdpa(x, *W), "change only")


def test_head_leak_is_caught_even_when_values_differ(capsys):
    # a head that is wrong in an unknown way AND leaks: the value mismatch is reported first,
    # a leak alone (same values except position 0 peeks) shows up as a value mismatch too
    def peeky(x, W_Q, W_K, W_V, W_O):
        out = head_sdpa(x, W_Q, W_K, W_V, W_O)
        full = F.scaled_dot_product_attention(x @ W_Q, x @ W_K, x @ W_V) @ W_O
        out[..., 0, :] = full[..., 0, :]
        return out

    ok, _ = verdict(capsys, checks.check_head, peeky)
    assert not ok


def test_head_params(capsys):
    passes(capsys, checks.check_head_params, lambda d, dh: 4 * d * dh)
    passes(capsys, checks.check_head_params,
           lambda d, dh: sum(p.numel() for p in torch.nn.ModuleList(
               [torch.nn.Linear(d, dh, bias=False, device="meta") for _ in range(3)]
               + [torch.nn.Linear(dh, d, bias=False, device="meta")]).parameters()))
    fails_with(capsys, checks.check_head_params, lambda d, dh: 3 * d * dh, "three matrices")
    fails_with(capsys, checks.check_head_params, lambda d, dh: 3 * d * dh + d * d, "full d_model x d_model")
    fails_with(capsys, checks.check_head_params, lambda d, dh: 4 * d * d, "not d_model x d_model")


def test_leak_detector(capsys):
    def detect(head, x):
        base = head(x)
        for j in range(1, x.shape[0]):
            x2 = x.clone()
            x2[j] += 1.0
            if not torch.allclose(head(x2)[:j], base[:j], atol=1e-6):
                return True
        return False

    def detect_grad(head, x):  # via the Jacobian: d out[i] / d x[j] for j > i must vanish
        J = torch.autograd.functional.jacobian(head, x)  # (T, d, T, d)
        T = x.shape[0]
        leak = J.abs().sum(dim=(1, 3)) * torch.triu(torch.ones(T, T), 1)
        return bool(leak.max() > 1e-6)

    passes(capsys, checks.check_leak_detector, detect)
    passes(capsys, checks.check_leak_detector, detect_grad)
    fails_with(capsys, checks.check_leak_detector, lambda head, x: True, "flagged a correct")
    fails_with(capsys, checks.check_leak_detector, lambda head, x: False, "missed a head with no mask")

    def last_only(head, x):  # perturbs only the last token: misses position 0 peeking at 1
        x2 = x.clone()
        x2[-1] += 1.0
        return not torch.allclose(head(x2)[:-1], head(x)[:-1], atol=1e-6)

    fails_with(capsys, checks.check_leak_detector, last_only, "small leak")

    def first_token(head, x):  # perturbs the first token: a correct head moves, flagged wrongly
        x2 = x.clone()
        x2[0] += 1.0
        return not torch.allclose(head(x2), head(x), atol=1e-6)

    fails_with(capsys, checks.check_leak_detector, first_token, "flagged a correct")


def masked_head(x, W_Q, W_K, W_V, W_O, *, diagonal=1, fill=float("-inf")):
    """chapter 6's suspect_head with diagonal=2; diagonal=1 is the fix"""
    q, k, v = x @ W_Q, x @ W_K, x @ W_V
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    T = x.shape[-2]
    future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(diagonal)
    return scores.masked_fill(future, fill).softmax(dim=-1) @ v @ W_O


def weights_masked(x, W_Q, W_K, W_V, W_O, *, fill=0.0, renormalise=False, by_hand=False):
    """wrong fixes that mask the weights after a softmax over every key"""
    q, k, v = x @ W_Q, x @ W_K, x @ W_V
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    keep = torch.ones(scores.shape[-1], scores.shape[-1]).tril()
    w = scores.exp() if by_hand else scores.softmax(dim=-1)
    w = w * keep if fill == 0.0 else w.masked_fill(keep == 0, fill)
    if renormalise or by_hand:
        w = w / w.sum(dim=-1, keepdim=True)
    return w @ v @ W_O


def test_bug_fix_accepts_every_right_fix(capsys):
    passes(capsys, checks.check_bug_fix, masked_head)  # triu(1): the one-character fix
    passes(capsys, checks.check_bug_fix, head_sdpa)
    passes(capsys, checks.check_bug_fix, head_matmul)
    passes(capsys, checks.check_bug_fix, lambda *a: masked_head(*a, fill=-1e9))  # float32 only

    def keep_tril(x, W_Q, W_K, W_V, W_O):  # a "may attend" mask, True on and below the diagonal
        s = (x @ W_Q) @ (x @ W_K).transpose(-2, -1) / math.sqrt(W_Q.shape[-1])
        T = s.shape[-1]
        keep = torch.arange(T)[None, :] <= torch.arange(T)[:, None]
        s = torch.where(keep, s, torch.finfo(s.dtype).min)
        return torch.softmax(s.double(), dim=-1).to(x.dtype) @ (x @ W_V) @ W_O

    passes(capsys, checks.check_bug_fix, keep_tril)


def test_bug_fix_names_each_wrong_fix(capsys):
    fails_with(capsys, checks.check_bug_fix, lambda *a: masked_head(*a, diagonal=2), "suspect_head unchanged")
    fails_with(capsys, checks.check_bug_fix, lambda *a: masked_head(*a, diagonal=0), "over-correction")
    fails_with(capsys, checks.check_bug_fix, weights_masked, "mask after the softmax")
    fails_with(capsys, checks.check_bug_fix, lambda *a: weights_masked(*a, fill=float("-inf")),
               "-inf after the softmax")
    fails_with(capsys, checks.check_bug_fix, lambda *a: weights_masked(*a, renormalise=True),
               "renormalised the rows by hand")
    fails_with(capsys, checks.check_bug_fix, lambda *a: weights_masked(*a, by_hand=True),
               "without subtracting each row's max")
    fails_with(capsys, checks.check_bug_fix, lambda *a: masked_head(*a, fill=0.0), "0 instead of -inf")
    fails_with(capsys, checks.check_bug_fix, lambda *a: masked_head(*a, diagonal=99), "no causal mask")
    fails_with(capsys, checks.check_bug_fix, lambda x, *W: x + masked_head(x, *W), "change only")


def test_bug_fix_names_an_in_place_edit_and_never_raises(capsys):
    def folded_scale(x, W_Q, W_K, W_V, W_O):  # right values, but the caller's W_Q is rescaled
        W_Q /= W_Q.shape[-1] ** 0.5  # the scale folded into W_Q, in place
        q, k, v = x @ W_Q, x @ W_K, x @ W_V
        T = x.shape[-2]
        s = (q @ k.transpose(-2, -1)).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        return s.softmax(dim=-1) @ v @ W_O

    fails_with(capsys, checks.check_bug_fix, folded_scale, "changed its input `W_Q` in place")
    fails_with(capsys, checks.check_bug_fix, lambda *a: masked_head(*a).numpy(), "numpy")
    fails_with(capsys, checks.check_bug_fix, lambda *a: masked_head(*a)[..., :2], "shape")
    fails_with(capsys, checks.check_bug_fix, lambda x, *W: masked_head(x[None], *W), "shape")


def test_suspect_head_in_the_checker_is_the_chapters():
    import json
    from pathlib import Path

    from attnlib.checks.ch06_one_head import suspect_head

    nb = json.loads((Path(__file__).parents[1] / "notebooks" / "06_one_head.ipynb").read_text())
    sources = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    shown = next(s for s in sources if s.startswith("def suspect_head("))
    namespace = {"torch": torch}
    exec(shown.split("\n\n\n")[0], namespace)
    x = torch.randn(2, 6, 8)
    W = [torch.randn(8, 3) for _ in range(3)] + [torch.randn(3, 8)]
    torch.testing.assert_close(namespace["suspect_head"](x, *W), suspect_head(x, *W))


# ---------------------------------------------------------------- chapter 7


def test_split_and_merge_heads(capsys):
    passes(capsys, checks.check_split_heads, lambda t, H: t.view(t.shape[0], t.shape[1], H, -1).transpose(1, 2))
    passes(capsys, checks.check_split_heads,
           lambda t, H: torch.stack(t.chunk(H, dim=-1), dim=1))
    fails_with(capsys, checks.check_split_heads, lambda t, H: t.reshape(t.shape[0], H, t.shape[1], -1),
               "wrong reshape")
    fails_with(capsys, checks.check_split_heads,
               lambda t, H: t.view(t.shape[0], t.shape[1], -1, H).permute(0, 3, 1, 2), "interleaved")
    fails_with(capsys, checks.check_split_heads, lambda t, H: t.view(t.shape[0], t.shape[1], H, -1),
               "forgot the transpose")
    passes(capsys, checks.check_merge_heads, lambda t: t.transpose(1, 2).reshape(t.shape[0], t.shape[2], -1))
    passes(capsys, checks.check_merge_heads, lambda t: torch.cat(t.unbind(1), dim=-1))
    fails_with(capsys, checks.check_merge_heads, lambda t: t.reshape(t.shape[0], t.shape[2], -1), "wrong reshape")
    fails_with(capsys, checks.check_merge_heads,
               lambda t: t.permute(0, 2, 3, 1).reshape(t.shape[0], t.shape[2], -1), "interleaved")


def mh_einsum(x, W_Q, W_K, W_V, W_O, *, causal=True, mean=False, scale=None):
    q = torch.einsum("btd,hde->bhte", x, W_Q)
    k = torch.einsum("btd,hde->bhte", x, W_K)
    v = torch.einsum("btd,hde->bhte", x, W_V)
    o = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)  # (B, H, T, dh)
    per_head = torch.einsum("bhte,hed->bhtd", o, W_O)
    return per_head.mean(1) if mean else per_head.sum(1)


def mh_loop(x, W_Q, W_K, W_V, W_O):
    return sum(head_matmul(x, W_Q[h], W_K[h], W_V[h], W_O[h]) for h in range(W_Q.shape[0]))


def test_multihead(capsys):
    passes(capsys, checks.check_multihead, mh_einsum)
    passes(capsys, checks.check_multihead, mh_loop)
    fails_with(capsys, checks.check_multihead, lambda *a: mh_einsum(*a, mean=True), "averaged")
    fails_with(capsys, checks.check_multihead, lambda *a: mh_einsum(*a, causal=False), "causal")
    fails_with(capsys, checks.check_multihead, lambda x, *W: mh_einsum(x, *W, scale=1 / math.sqrt(x.shape[-1])),
               "sqrt(d_model)")
    fails_with(capsys, checks.check_multihead, lambda x, *W: x + mh_einsum(x, *W), "output only")
    fails_with(capsys, checks.check_multihead, lambda x, *W: head_matmul(x, *(w[0] for w in W)), "one head only")


def heads_out(block, x):
    """(B, H, T, d_head): every head's pattern-weighted values, causal, as the chapter computes them"""
    B, T, _ = x.shape
    q, k, v = (t.view(B, T, block.n_heads, block.d_head).transpose(1, 2)
               for t in block.qkv_proj(x).split(block.n_heads * block.d_head, dim=-1))
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def ablate_by_subtraction(block, x, h):
    return block(x, is_causal=True) - heads_out(block, x)[:, h] @ block.W_O[h]


def ablate_on_a_copy(block, x, h):
    import copy

    twin = copy.deepcopy(block)
    with torch.no_grad():
        twin.W_O[h] = 0  # the view writes out_proj's columns of head h
    return twin(x, is_causal=True)


def ablate_with_the_hook(block, x, h):
    from attnlib.hooks import ablate_heads

    with ablate_heads(block, {"": [h]}):
        return block(x, is_causal=True)


def ablate_and_restore(block, x, h):
    cols = slice(h * block.d_head, (h + 1) * block.d_head)
    with torch.no_grad():
        saved = block.out_proj.weight[:, cols].clone()
        block.out_proj.weight[:, cols] = 0
        y = block(x, is_causal=True)
        block.out_proj.weight[:, cols] = saved
    return y


def ablate_in_float64(block, x, h):
    import copy

    twin = copy.deepcopy(block).double()  # the caller's block stays float32
    return ablate_by_subtraction(twin, x.double(), h).float()


def test_ablation_accepts_every_right_answer(capsys):
    passes(capsys, checks.check_ablation, ablate_by_subtraction)
    passes(capsys, checks.check_ablation, ablate_on_a_copy)
    passes(capsys, checks.check_ablation, ablate_with_the_hook)
    passes(capsys, checks.check_ablation, ablate_and_restore)
    passes(capsys, checks.check_ablation, ablate_in_float64)

    def merged_slice_zeroed(block, x, h):  # the heads' outputs side by side, head h's slice zeroed
        o = heads_out(block, x).clone()
        o[:, h] = 0
        B, H, T, dh = o.shape
        return block.out_proj(o.transpose(1, 2).reshape(B, T, H * dh))

    def loop_over_the_other_heads(block, x, h):
        o = heads_out(block, x)
        bias = 0 if block.out_proj.bias is None else block.out_proj.bias
        return sum(o[:, g] @ block.W_O[g] for g in range(block.n_heads) if g != h) + bias

    passes(capsys, checks.check_ablation, merged_slice_zeroed)
    passes(capsys, checks.check_ablation, loop_over_the_other_heads)


def test_ablation_names_each_mistake(capsys):
    import copy

    def on_copy(edit):
        def answer(block, x, h):
            twin = copy.deepcopy(block)
            with torch.no_grad():
                edit(twin, h, twin.d_head)
            return twin(x, is_causal=True)
        return answer

    def rows(m, h, dh):
        m.out_proj.weight[h * dh:(h + 1) * dh, :] = 0

    def one_based(m, h, dh):
        m.out_proj.weight[:, (h - 1) * dh:h * dh] = 0

    def queries(m, h, dh):
        m.W_Q[h] = 0

    def values(m, h, dh):
        m.W_V[h] = 0

    fails_with(capsys, checks.check_ablation, on_copy(rows), "ROWS")
    fails_with(capsys, checks.check_ablation, on_copy(one_based), "neighbour")
    fails_with(capsys, checks.check_ablation, on_copy(queries), "W_Q or W_K")
    fails_with(capsys, checks.check_ablation, on_copy(values), "value bias")
    fails_with(capsys, checks.check_ablation,
               lambda b, x, h: ablate_by_subtraction(b, x, h) * b.n_heads / (b.n_heads - 1), "rescaled")
    fails_with(capsys, checks.check_ablation,
               lambda b, x, h: sum(heads_out(b, x)[:, g] @ b.W_O[g] for g in range(b.n_heads) if g != h),
               "bias is missing")
    fails_with(capsys, checks.check_ablation, lambda b, x, h: heads_out(b, x)[:, h] @ b.W_O[h], "own change")
    fails_with(capsys, checks.check_ablation, lambda b, x, h: b(x, is_causal=True), "still contains")

    def not_causal(block, x, h):
        twin = copy.deepcopy(block)
        with torch.no_grad():
            twin.W_O[h] = 0
        return twin(x)

    fails_with(capsys, checks.check_ablation, not_causal, "without is_causal")
    fails_with(capsys, checks.check_ablation, lambda b, x, h: x + ablate_by_subtraction(b, x, h),
               "output only")


def test_ablation_names_a_model_changed_in_place(capsys):
    def zero_for_good(block, x, h):  # right output, but the caller's model has lost head h
        with torch.no_grad():
            block.W_O[h] = 0
        return block(x, is_causal=True)

    ok, out = verdict(capsys, checks.check_ablation, zero_for_good)
    assert not ok and "changed the model `block` in place" in out and "out_proj.weight" in out, out

    def without_no_grad(block, x, h):  # an in-place write to a parameter that requires grad
        block.W_O[h] = 0
        return block(x, is_causal=True)

    fails_with(capsys, checks.check_ablation, without_no_grad, "requires grad")


def test_ablation_never_raises(capsys):
    fails_with(capsys, checks.check_ablation, lambda b, x, h: ablate_by_subtraction(b, x, h).detach().numpy(),
               "numpy")
    fails_with(capsys, checks.check_ablation, lambda b, x, h: ablate_by_subtraction(b, x, h)[0], "shape")
    fails_with(capsys, checks.check_ablation, lambda b, x, h: b.W_O[h + 10], "raised IndexError")


def test_param_count(capsys):
    passes(capsys, checks.check_param_count, lambda d, H, dh, L: 4 * d * H * dh * L)

    def from_module(d, H, dh, L):
        from attnlib import MultiHeadAttention

        with torch.device("meta"):
            block = MultiHeadAttention(d, H, dh)
        return L * sum(p.numel() for p in block.parameters())

    passes(capsys, checks.check_param_count, from_module)
    fails_with(capsys, checks.check_param_count, lambda d, H, dh, L: 4 * d * H * dh, "multiply by the number of layers")
    fails_with(capsys, checks.check_param_count, lambda d, H, dh, L: 4 * d * dh * L, "n_heads")
    fails_with(capsys, checks.check_param_count, lambda d, H, dh, L: 3 * d * H * dh * L, "three matrices")
    fails_with(capsys, checks.check_param_count, lambda d, H, dh, L: 4 * d * d * L, "true for GPT-3")


def test_param_count_reference_matches_the_real_gpt3():
    with torch.device("meta"):
        gpt3 = Decoder(GPT3)
    assert count_parameters(gpt3).by_component["attention"] == 4 * 12288 * 96 * 128 * 96 == 57_982_058_496


# ---------------------------------------------------------------- chapter 8


def cross_explicit(x, c, w_q, w_k, w_v, lengths, *, causal=False, flip=False, pad=True, dim=-1, scale=True):
    q, k, v = x @ w_q, c @ w_k, c @ w_v
    s = q @ k.transpose(-2, -1)
    if scale:
        s = s / math.sqrt(q.shape[-1])
    keep = torch.arange(c.shape[1])[None, None, :] < lengths[:, None, None]  # (B, 1, T_k)
    if flip:
        keep = ~keep
    if pad:
        s = s.masked_fill(~keep, float("-inf"))
    if causal:
        T_q, T_k = s.shape[-2:]
        s = s.masked_fill(~torch.ones(T_q, T_k, dtype=torch.bool).tril(T_k - T_q), float("-inf"))
    return torch.softmax(s, dim=dim).nan_to_num(0.0) @ v


def cross_sdpa(x, c, w_q, w_k, w_v, lengths):
    mask = padding_mask(lengths, c.shape[1])[:, 0]
    return F.scaled_dot_product_attention(x @ w_q, c @ w_k, c @ w_v, attn_mask=mask)


def test_cross_attention(capsys):
    passes(capsys, checks.check_cross_attention, cross_explicit)
    passes(capsys, checks.check_cross_attention, cross_sdpa)
    fails_with(capsys, checks.check_cross_attention, lambda *a: cross_explicit(*a, causal=True), "causal")
    fails_with(capsys, checks.check_cross_attention, lambda *a: cross_explicit(*a, pad=False), "padding is attended")
    fails_with(capsys, checks.check_cross_attention, lambda *a: cross_explicit(*a, flip=True), "flipped")
    fails_with(capsys, checks.check_cross_attention, lambda *a: cross_explicit(*a, scale=False), "not scaled")
    fails_with(capsys, checks.check_cross_attention, lambda *a: cross_explicit(*a, dim=-2), "over the queries")
    fails_with(capsys, checks.check_cross_attention,
               lambda x, c, wq, wk, wv, n: F.scaled_dot_product_attention(x @ wq, x @ wk, c @ wv),
               "keys AND values from context")


def test_cross_attention_mask(capsys):
    passes(capsys, checks.check_cross_attention_mask, lambda n, T_q, T_k: padding_mask(n, T_k))
    passes(capsys, checks.check_cross_attention_mask,
           lambda n, T_q, T_k: (torch.arange(T_k).expand(len(n), 1, T_q, T_k) < n.view(-1, 1, 1, 1)))
    fails_with(capsys, checks.check_cross_attention_mask, lambda n, T_q, T_k: ~padding_mask(n, T_k), "flipped")
    fails_with(capsys, checks.check_cross_attention_mask,
               lambda n, T_q, T_k: padding_mask(n, T_k) & torch.ones(T_q, T_k, dtype=torch.bool).tril(T_k - T_q),
               "causal")
    fails_with(capsys, checks.check_cross_attention_mask,
               lambda n, T_q, T_k: (torch.arange(T_k) <= n[:, None])[:, None, None, :], "off by one")
    fails_with(capsys, checks.check_cross_attention_mask, lambda n, T_q, T_k: padding_mask(n, T_k).float(),
               "float mask")
    fails_with(capsys, checks.check_cross_attention_mask, lambda n, T_q, T_k: padding_mask(n, T_k)[:, 0],
               "expected shape")


def test_alignment_accuracy(capsys):
    def good(p, a):
        s = a >= 0
        return ((p.argmax(-1) == a) & s).sum() / s.sum()

    def good2(p, a):
        hits = [p[b, i].argmax().item() == a[b, i].item() for b in range(a.shape[0]) for i in range(a.shape[1])
                if a[b, i] >= 0]
        return sum(hits) / len(hits)

    passes(capsys, checks.check_alignment_accuracy, good)
    passes(capsys, checks.check_alignment_accuracy, good2)
    fails_with(capsys, checks.check_alignment_accuracy, lambda p, a: (p.argmax(-1) == a).float().mean(),
               "not scored")
    fails_with(capsys, checks.check_alignment_accuracy,
               lambda p, a: ((p.argmax(1) == a) & (a >= 0)).sum() / (a >= 0).sum(), "over the queries")
    fails_with(capsys, checks.check_alignment_accuracy, lambda p, a: 1 - good(p, a), "misses")

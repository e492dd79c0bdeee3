"""The checkers of chapters 11 and 12 accept correct answers (several styles) and diagnose typical mistakes."""

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


# --------------------------------------------------------------------------- KV cache memory


def test_kv_cache_memory_accepts_correct_forms(capsys):
    def ok(context_len, n_layers, n_heads, n_kv_heads, d_head, dtype, batch=1):
        return E.kv_cache_bytes(context_len, n_layers=n_layers, n_heads=n_heads, d_head=d_head,
                                dtype=dtype, batch=batch, n_kv_heads=n_kv_heads)

    def by_group(context_len, n_layers, n_heads, n_kv_heads, d_head, dtype, batch=1):
        # the full multi-head cache divided by the group size, as a float tensor
        full = 2 * batch * n_layers * n_heads * context_len * d_head * dtype.itemsize
        return torch.tensor(full / (n_heads // n_kv_heads), dtype=torch.float64)

    def real_tensors(context_len, n_layers, n_heads, n_kv_heads, d_head, dtype, batch=1):
        one = torch.empty(batch, n_kv_heads, context_len, d_head, dtype=dtype, device="meta")
        return 2 * n_layers * one.nbytes

    for fn in (ok, by_group, real_tensors):
        assert checks.check_kv_cache_memory(fn), capsys.readouterr().out
        assert capsys.readouterr().out.startswith("✓")


def test_kv_cache_memory_names_each_mistake(capsys):
    def size(dt):
        return torch.empty((), dtype=dt).element_size()

    cases = [
        (lambda T, L, H, Hk, dh, dt, batch=1: batch * L * Hk * T * dh * size(dt), "keys only"),
        (lambda T, L, H, Hk, dh, dt, batch=1: 2 * batch * L * H * T * dh * size(dt), "query heads"),
        (lambda T, L, H, Hk, dh, dt, batch=1: 2 * batch * L * (H // Hk) * T * dh * size(dt),
         "group size"),
        (lambda T, L, H, Hk, dh, dt, batch=1: 2 * batch * Hk * T * dh * size(dt), "forgot the layers"),
        (lambda T, L, H, Hk, dh, dt, batch=1: 2 * L * Hk * T * dh * size(dt), "forgot the batch"),
        (lambda T, L, H, Hk, dh, dt, batch=1: 2 * batch * L * Hk * T * dh, "numbers, not bytes"),
        (lambda T, L, H, Hk, dh, dt, batch=1: 16 * batch * L * Hk * T * dh * size(dt), "bits"),
        (lambda T, L, H, Hk, dh, dt, batch=1: 8 * batch * L * Hk * T * dh, "4 bytes"),
        (lambda T, L, H, Hk, dh, dt, batch=1: 2 * batch * L * Hk * T * T * dh * size(dt), "its square"),
        (lambda T, L, H, Hk, dh, dt: 2 * L * Hk * T * dh * size(dt), "unexpected keyword"),
    ]
    for fn, phrase in cases:
        assert not checks.check_kv_cache_memory(fn)
        out = capsys.readouterr().out
        assert out.startswith("✗") and phrase in out, (phrase, out)


def test_kv_cache_memory_stub_and_raising_answers(capsys):
    def stub(context_len, n_layers, n_heads, n_kv_heads, d_head, dtype, batch=1):
        raise NotImplementedError

    def broken(context_len, n_layers, n_heads, n_kv_heads, d_head, dtype, batch=1):
        return 1 / 0

    assert not checks.check_kv_cache_memory(stub)
    assert "not implemented yet" in capsys.readouterr().out
    assert not checks.check_kv_cache_memory(broken)  # the checker reports, it does not raise
    out = capsys.readouterr().out
    assert out.startswith("✗") and "ZeroDivisionError" in out, out
    assert not checks.check_kv_cache_memory(lambda *a, **k: "a lot")
    assert capsys.readouterr().out.startswith("✗")


# --------------------------------------------------------------------------- FLOP crossover


def _says(capsys, checker, fn, phrase):
    assert not checker(fn), phrase
    out = capsys.readouterr().out
    assert out.startswith("✗") and phrase in out, (phrase, out)


def test_crossover_accepts_every_correct_form(capsys):
    import numpy as np

    def formula(d_model, n_heads, d_mlp):
        return 2 * d_model + d_mlp

    def by_parts(d_model, n_heads, d_mlp):  # the chapter's three counts, solved for T
        projections = 2 * 4 * d_model**2
        mlp = 2 * 2 * d_model * d_mlp
        per_key = 2 * 2 * d_model  # q . k and the weighted sum, for each key
        return (projections + mlp) / per_key  # a float that is a whole number

    def per_head(d_model, n_heads, d_mlp):  # heads counted one by one: the widths add up
        d_head = d_model // n_heads
        attention_per_key = sum(2 * d_head + 2 * d_head for _ in range(n_heads))
        return (8 * d_model**2 + 4 * d_model * d_mlp) // attention_per_key

    def one_flop_per_multiply_add(d_model, n_heads, d_mlp):  # one convention on both sides
        return (4 * d_model**2 + 2 * d_model * d_mlp) // (2 * d_model)

    def from_the_library(d_model, n_heads, d_mlp):  # the share is 1/2 at the crossover
        f = E.flops_per_token(d_model, 1, d_mlp=d_mlp)
        return (f.projections + f.mlp) // f.attention

    def numpy_int(d_model, n_heads, d_mlp):
        return np.int64(d_model) * 2 + np.int64(d_mlp)

    def tensor(d_model, n_heads, d_mlp):
        return torch.tensor(2.0 * d_model + d_mlp)

    for fn in (formula, by_parts, per_head, one_flop_per_multiply_add, from_the_library,
               numpy_int, tensor):
        assert checks.check_crossover(fn), fn.__name__
        assert capsys.readouterr().out.startswith("✓ FLOP crossover: all 7 cases passed")


def test_crossover_names_each_mistake(capsys):
    def rest(d, m):
        return 8 * d * d + 4 * d * m

    cases = [
        # only q . k (2 T d), two FLOPs per multiply-add
        (lambda d, H, m: rest(d, m) / (2 * d), "not the weighted sum of the values"),
        # both products, but one FLOP per multiply-add in attention only
        (lambda d, H, m: rest(d, m) // (2 * 2 * d // 2), "one FLOP in attention"),
        # all four products per key, then halved for the causal mask's average
        (lambda d, H, m: rest(d, m) / (4 * d / 2), "halve it for the causal mask"),
        (lambda d, H, m: rest(d, m) / d, "four times the crossover"),
        # one FLOP per multiply-add in the projections and the MLP only
        (lambda d, H, m: (4 * d * d + 2 * d * m) / (4 * d), "half the crossover"),
        (lambda d, H, m: rest(d, m) / (4 * (d // H)), "d_head where d_model belongs in attention"),
        (lambda d, H, m: (8 * (d / H) ** 2 + 4 * (d / H) * m) / (4 * (d / H)),
         "The number of heads changes none"),
        (lambda d, H, m: 8 * d * d / (4 * d), "forgot the MLP"),
        (lambda d, H, m: 4 * d * m / (4 * d), "forgot the projections"),
        (lambda d, H, m: (6 * d * d + 4 * d * m) / (4 * d), "output map W_O"),
        (lambda d, H, m: (8 * d * d + 16 * d * d) / (4 * d), "holds only when d_mlp = 4 d_model"),
        (lambda d, H, m: (8 * d * d + 2 * d * m) / (4 * d), "one of the MLP's two maps"),
        (lambda d, H, m: 73_728, "hard-coded to GPT-3's answer"),
        (lambda d, H, m: 6 * 12288, "hard-coded to GPT-3's answer"),
        (lambda d, H, m: 4_608, "hard-coded"),  # another case's answer, every time
        (lambda d, H, m: 2 * d + m + 1, "expected 4,608, got 4,609"),
        (lambda d, H, m: [2 * d + m], "return one number"),
        (lambda d, H, m: None, "returned None"),
        (lambda d, m: 2 * d + m, "signature"),
    ]
    for fn, phrase in cases:
        _says(capsys, checks.check_crossover, fn, phrase)


def test_crossover_stub_is_not_implemented(capsys):
    def crossover_length(d_model, n_heads, d_mlp):
        raise NotImplementedError

    _says(capsys, checks.check_crossover, crossover_length, "not implemented yet")


def test_crossover_reference_is_where_flops_per_token_splits_in_half():
    from attnlib.checks.ch11_cost_at_scale import _crossover

    for _, (d, H, m), _ in checks.check_crossover.spec.cases:
        T = _crossover(d, H, m)
        f = E.flops_per_token(d, T, d_mlp=m)
        assert f.attention == f.projections + f.mlp and f.attention_share == 0.5
        assert E.flops_per_token(d, T + 1, d_mlp=m).attention_share > 0.5
    assert _crossover(12288, 96, 49152) == 6 * 12288 == 73_728  # the chapter's GPT-3 number
    assert len({d_mlp / d for _, (d, _, d_mlp), _ in checks.check_crossover.spec.cases}) >= 4


# --------------------------------------------------------------------------- causal tiles


def tiles_ok(T, block_q, block_k):
    n_q, n_k = -(-T // block_q), -(-T // block_k)
    last_query = torch.clamp((torch.arange(n_q) + 1) * block_q, max=T) - 1
    first_key = torch.arange(n_k) * block_k
    return first_key.unsqueeze(0) <= last_query.unsqueeze(1)


def tiles_loop(T, block_q, block_k):  # plain Python loops over the tile starts
    rows = []
    for qs in range(0, T, block_q):
        last = min(qs + block_q, T) - 1
        rows.append([ks <= last for ks in range(0, T, block_k)])
    return torch.tensor(rows)


def tiles_from_the_mask(T, block_q, block_k):  # reduce the (T, T) mask tile by tile
    n_q, n_k = math.ceil(T / block_q), math.ceil(T / block_k)
    padded = torch.zeros(n_q * block_q, n_k * block_k, dtype=torch.bool)
    padded[:T, :T] = torch.ones(T, T, dtype=torch.bool).tril()
    return padded.reshape(n_q, block_q, n_k, block_k).any(dim=3).any(dim=1)


def tiles_from_the_kernel(T, block_q, block_k):  # ask tiled_attention one pair at a time
    x = torch.zeros(T, 1)
    n_q, n_k = -(-T // block_q), -(-T // block_k)
    grid = torch.zeros(n_q, n_k, dtype=torch.bool)
    for i in range(n_q):
        for j in range(n_k):
            only = torch.zeros(T, T, dtype=torch.bool)
            only[i * block_q:(i + 1) * block_q, j * block_k:(j + 1) * block_k] = True
            _, st = E.tiled_attention(x, x, x, only, is_causal=True, block_q=block_q,
                                      block_k=block_k, return_stats=True)
            grid[i, j] = st.tiles_computed > 0
    return grid


def test_causal_tiles_accepts_every_correct_form(capsys):
    for fn in (tiles_ok, tiles_loop, tiles_from_the_mask, tiles_from_the_kernel):
        assert checks.check_causal_tiles(fn), fn.__name__
        assert capsys.readouterr().out.startswith("✓ causal tiles: all 11 cases passed")


def test_causal_tiles_names_each_mistake(capsys):
    def grid(rule, n_q=None, n_k=None):
        """A learner's grid from a rule on (first query, last query, first key, last key)."""
        def answer(T, bq, bk):
            nq = -(-T // bq) if n_q is None else n_q(T, bq)
            nk = -(-T // bk) if n_k is None else n_k(T, bk)
            return torch.tensor([[rule(i * bq, min(i * bq + bq, T) - 1, j * bk,
                                       min(j * bk + bk, T) - 1) for j in range(nk)]
                                 for i in range(nq)], dtype=torch.bool).reshape(nq, nk)
        return answer

    cases = [
        (grid(lambda qf, ql, kf, kl: kl <= qf), "diagonal cuts through"),
        (grid(lambda qf, ql, kf, kl: kl >= qf), "above the diagonal"),
        (lambda T, bq, bk: torch.ones(-(-T // bq), -(-T // bk)).triu().bool(),
         "upper triangle of the tile numbers"),
        (lambda T, bq, bk: ~tiles_ok(T, bq, bk), "polarity is flipped"),
        (grid(lambda qf, ql, kf, kl: kf <= qf), "by its first query"),
        (grid(lambda qf, ql, kf, kl: kl <= ql), "by its last key"),
        (grid(lambda qf, ql, kf, kl: kf < ql), "(<=, not <)"),
        (grid(lambda qf, ql, kf, kl: kf <= ql + 1), "wholly in the future"),
        (lambda T, bq, bk: torch.ones(-(-T // bq), -(-T // bk)).tril().bool(), "tile numbers"),
        (grid(lambda qf, ql, kf, kl: kf <= ql, n_q=lambda T, b: T // b, n_k=lambda T, b: T // b),
         "misses the last, shorter tile"),
        (grid(lambda qf, ql, kf, kl: kf <= ql, n_q=lambda T, b: T // b + 1,
              n_k=lambda T, b: T // b + 1), "one tile too many"),
        (lambda T, bq, bk: tiles_ok(T, bk, bq), "swapped block_q and block_k"),
        (lambda T, bq, bk: tiles_ok(T, bq, bk).T, "transposed"),
        (lambda T, bq, bk: torch.ones(T, T, dtype=torch.bool).tril(), "causal mask of the entries"),
        (lambda T, bq, bk: tiles_ok(T, bq, bk)[1:], "expected an output of shape"),
        (lambda T, bq, bk: tiles_ok(T, bq, bk).int(), "return a bool tensor"),
        (lambda T, bq, bk: int(tiles_ok(T, bq, bk).sum()), "return a single torch.Tensor"),
        (lambda T, bq, bk: tiles_ok(T, bq, bk).numpy(), "numpy"),
        (lambda T, bq, bk: tiles_ok(13, 4, 3), "hard-coded"),
        (lambda T, bq, bk: tiles_ok(T, bq, bk) & (torch.rand(()) > 2), "must be computed"),
    ]
    for fn, phrase in cases:
        _says(capsys, checks.check_causal_tiles, fn, phrase)


def test_causal_tiles_stub_is_not_implemented(capsys):
    def causal_tiles(T, block_q, block_k):
        # TODO
        raise NotImplementedError

    _says(capsys, checks.check_causal_tiles, causal_tiles, "not implemented yet")


def test_causal_tiles_reference_is_what_tiled_attention_skips():
    from attnlib.checks.ch12_cheaper_attention import _causal_tiles

    for T, bq, bk in [(13, 4, 3), (10, 4, 4), (33, 5, 7), (40, 16, 3), (6, 9, 2), (64, 8, 8)]:
        want = _causal_tiles(T, bq, bk)
        assert torch.equal(want, tiles_from_the_kernel(T, bq, bk)), (T, bq, bk)
        x = torch.randn(1, 2, T, 3)
        _, st = E.tiled_attention(x, x, x, is_causal=True, block_q=bq, block_k=bk,
                                  return_stats=True)
        assert tuple(want.shape) == (st.n_q_tiles, st.n_k_tiles)
        assert int(want.sum()) == st.tiles_computed and int((~want).sum()) == st.tiles_skipped
    # the diagonal tiles are computed and the cases include block sizes that divide T or not
    cases = [c.args for c in checks.check_causal_tiles.spec.cases()]
    assert any(T % bq for T, bq, _ in cases) and any(bq != bk for _, bq, bk in cases)

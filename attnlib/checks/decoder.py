"""Checkers for the whole decoder (chapters 9 and 10): LayerNorm, the pre-LN block, a block's
parameter count, next-token targets, top-k filtering, and the attention mass on the adjectives.

Every checker prints ``✓ ...`` or ``✗ ...: diagnosis`` and returns True/False (see ``_core``); the
references are attnlib's own modules (:class:`attnlib.DecoderBlock`, :func:`attnlib.count_parameters`,
:func:`attnlib.data.adjective_mass`) and PyTorch's ``nn.LayerNorm``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data import adjective_mass
from ..decoder import DecoderBlock
from ..params import count_parameters
from ._core import (
    Case,
    call,
    case,
    compare,
    fail,
    randn,
    run_cases,
    run_check,
    shape_str,
    tensor_output,
)

__all__ = [
    "check_layernorm",
    "check_block",
    "check_block_parameters",
    "check_next_token_targets",
    "check_top_k",
    "check_adjective_mass",
]

INF = float("inf")


# --------------------------------------------------------------------------- LayerNorm


def _ln_mistakes(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    centred = x - mean
    return [
        ("you used the unbiased variance (divides by n - 1): LayerNorm divides by n, so use "
         "x.var(dim=-1, unbiased=False, keepdim=True) or ((x - mean) ** 2).mean(dim=-1, keepdim=True)",
         lambda: centred / torch.sqrt(x.var(-1, keepdim=True, unbiased=True) + eps) * w + b),
        ("you normalised over the wrong axis: LayerNorm works on each token's vector on its own, "
         "i.e. over the last dim (d_model), not over the tokens",
         lambda: (x - x.mean(-2, keepdim=True)) / torch.sqrt(x.var(-2, keepdim=True, unbiased=False) + eps)
         * w + b),
        ("you forgot the learned scale and shift: multiply by weight and add bias at the end",
         lambda: centred / torch.sqrt(var + eps)),
        ("you forgot the learned shift: add bias at the end", lambda: centred / torch.sqrt(var + eps) * w),
        ("you forgot the learned scale: multiply by weight before adding bias",
         lambda: centred / torch.sqrt(var + eps) + b),
        ("you added eps to the standard deviation; it goes inside the square root: sqrt(var + eps)",
         lambda: centred / (torch.sqrt(var) + eps) * w + b),
        ("you divided by the variance; divide by the standard deviation sqrt(var + eps)",
         lambda: centred / (var + eps) * w + b),
        ("you did not subtract the mean before dividing", lambda: x / torch.sqrt(var + eps) * w + b),
        ("you forgot keepdim=True, so the per-token statistics broadcast across the features",
         lambda: (x - x.mean(-1)) / torch.sqrt(x.var(-1, unbiased=False) + eps) * w + b),
    ]


def check_layernorm(fn) -> bool:
    """Check ``fn(x, weight, bias, eps=1e-5)``: LayerNorm over the last dim, equal to ``nn.LayerNorm``.

    ``x`` is (..., d); ``weight`` and ``bias`` are (d,). The answer is
    ``(x - mean) / sqrt(var + eps) * weight + bias`` with the mean and the *biased* variance taken
    over the last dim of each vector. Cases: a batch of token vectors, a single vector, a token whose
    entries are all equal (variance 0: only eps keeps it finite), and a large eps.
    Diagnoses: unbiased variance, wrong axis, missing weight/bias, eps outside the square root,
    dividing by the variance, no centring, missing keepdim.
    """

    def body():
        inputs = [
            ("batch 2 x 5 tokens, d = 8", randn(2, 5, 8, seed=20) * 3 + 1, randn(8, seed=21),
             randn(8, seed=22), 1e-5),
            ("one vector, d = 6", randn(6, seed=23) * 2, randn(6, seed=24), randn(6, seed=25), 1e-5),
            ("a token whose entries are all equal (variance 0)",
             torch.cat([torch.full((1, 4), 2.5), randn(2, 4, seed=26)]), randn(4, seed=27),
             randn(4, seed=28), 1e-5),
            ("eps = 0.5 (it must sit inside the square root)", randn(3, 8, seed=29) * 0.3,
             randn(8, seed=30), randn(8, seed=31), 0.5),
        ]
        cases = []
        for name, x, w, b, eps in inputs:
            expected = F.layer_norm(x, (x.shape[-1],), w, b, eps)
            cases.append(Case(name, (x, w, b), expected, kwargs={"eps": eps},
                              mistakes=_ln_mistakes(x, w, b, eps),
                              nonfinite="your output has nan/inf: a token with all-equal entries has "
                              "variance 0; add eps inside the square root, sqrt(var + eps)"))
        return run_cases(fn, cases, hint="fn(x, weight, bias, eps=1e-5); reduce over dim=-1 with keepdim=True")

    return run_check("layer norm", body)


# --------------------------------------------------------------------------- the block


def _reference_block(d_model=16, n_heads=2, seed=0) -> DecoderBlock:
    torch.manual_seed(seed)
    blk = DecoderBlock(d_model, n_heads).eval()
    with torch.no_grad():  # make every piece matter: non-trivial LayerNorm scales, larger weights
        for p in blk.parameters():
            if p.ndim == 1:
                p.copy_(1 + 0.5 * torch.randn_like(p))
            else:
                p.normal_(0, 0.3)
    return blk


def _block_mistakes(blk: DecoderBlock, x: torch.Tensor):
    attn = lambda h, causal=True: blk.attn(h, is_causal=causal)  # noqa: E731
    ln1, ln2, mlp = blk.ln_1, blk.ln_2, blk.mlp

    def post_ln():
        h = ln1(x + attn(x))
        return ln2(h + mlp(h))

    def no_attn_residual():
        h = attn(ln1(x))
        return h + mlp(ln2(h))

    def no_mlp_residual():
        h = x + attn(ln1(x))
        return mlp(ln2(h))

    def no_residual():
        return mlp(ln2(attn(ln1(x))))

    def mlp_first():
        h = x + mlp(ln2(x))
        return h + attn(ln1(h))

    def not_causal():
        h = x + attn(ln1(x), causal=False)
        return h + mlp(ln2(h))

    def parallel():
        return x + attn(ln1(x)) + mlp(ln2(x))

    def swapped_ln():
        h = x + attn(ln2(x))
        return h + mlp(ln1(h))

    def normalised_stream():
        h = ln1(x)
        h = h + attn(h)
        h2 = ln2(h)
        return h2 + mlp(h2)

    def no_ln():
        h = x + attn(x)
        return h + mlp(h)

    return [
        ("this is the post-LN block of the original 2017 transformer (LayerNorm after each "
         "residual addition). attnlib's blocks are pre-LN: normalise the INPUT of each sub-layer and "
         "add its output to the unnormalised stream, x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))",
         post_ln),
        ("you applied the MLP before attention: in a block, attention (which mixes positions) comes "
         "first, then the MLP works on each position", mlp_first),
        ("you dropped the residual connection around attention: ADD its output to the stream, "
         "x = x + attn(ln_1(x)), instead of replacing x", no_attn_residual),
        ("you dropped the residual connection around the MLP: x = x + mlp(ln_2(x))", no_mlp_residual),
        ("there are no residual connections: each sub-layer's output must be ADDED to x", no_residual),
        ("your attention is not causal: later tokens leak into earlier positions; call "
         "attn(..., is_causal=True)", not_causal),
        ("you ran attention and the MLP side by side on the same input (the 'parallel' block of "
         "GPT-J); here the MLP reads the stream AFTER attention has added to it", parallel),
        ("you swapped the two LayerNorms: ln_1 goes before attention, ln_2 before the MLP", swapped_ln),
        ("you replaced the stream by its normalised version (x = ln_1(x)): the LayerNorm output feeds "
         "the sub-layer only, the residual stream itself stays unnormalised", normalised_stream),
        ("you skipped the LayerNorms: each sub-layer reads ln(x), not x", no_ln),
    ]


def check_block(fn) -> bool:
    """Check ``fn(x, block) -> y``: the forward pass of a pre-LN decoder block, using its parts.

    ``block`` is an :class:`attnlib.DecoderBlock` (use ``block.ln_1``, ``block.attn`` called with
    ``is_causal=True``, ``block.ln_2`` and ``block.mlp``; do not call ``block(x)`` itself). The
    answer must equal ``block(x)``: ``x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))``. A causality
    test changes the last token and checks that earlier outputs do not move.
    Diagnoses: post-LN, MLP before attention, a missing residual (around either sub-layer or both),
    non-causal attention, the parallel block, swapped LayerNorms, a normalised stream, no LayerNorm.
    """

    def body():
        n = 0
        for name, shape, seed in (("batch 2 x 5 tokens, d_model = 16", (2, 5, 16), 40),
                                  ("one sequence of 7 tokens", (1, 7, 16), 41)):
            with case(name):
                blk = _reference_block(seed=seed)
                x = randn(*shape, seed=seed) * 2
                with torch.no_grad():
                    expected = blk(x)
                    out = tensor_output(call(fn, x, blk, hint=(
                        "fn(x, block): use block.ln_1, block.attn(h, is_causal=True), block.ln_2 "
                        "and block.mlp")))
                    compare(out, expected, mistakes=_block_mistakes(blk, x),
                            otherwise="the output differs from block(x)", atol=1e-4, rtol=1e-4)
                    x2 = x.clone()
                    x2[:, -1] += 5.0  # change the last token only
                    out2 = tensor_output(call(fn, x2, blk))
                    if not torch.allclose(out2[:, :-1], out[:, :-1], atol=1e-5):
                        fail("changing the LAST token changed earlier positions' outputs: the "
                             "future leaks; use is_causal=True")
            n += 1
        return n

    return run_check("decoder block", body)


# --------------------------------------------------------------------------- parameter count


def _block_count(d_model, n_heads, d_head, d_mlp) -> int:
    with torch.device("meta"):
        blk = DecoderBlock(d_model, n_heads, d_head, d_mlp)
    return count_parameters(blk).total


def check_block_parameters(fn) -> bool:
    """Check ``fn(d_model, n_heads, d_head, d_mlp) -> int``: the parameters of one attnlib block.

    The block has no biases (like attnlib's default): four attention matrices per head (W_Q, W_K,
    W_V, W_O, each d_model x d_head), the MLP's two matrices (d_model x d_mlp and back), and two
    LayerNorms with a scale of d_model entries each (no shift, since bias=False). The reference is
    ``count_parameters`` on a real block built on the meta device; the GPT-3 block is one case.
    Diagnoses: missing W_O (three matrices), missing LayerNorms, one MLP matrix, LayerNorm counted
    with a bias, attention counted once instead of per head.
    """

    mistakes = [
        ("you counted three attention matrices per head; there are four: W_Q, W_K, W_V "
         "(value-down) and W_O (value-up)",
         lambda dm, nh, dh, dmlp: 3 * dm * nh * dh + 2 * dm * dmlp + 2 * dm),
        ("you forgot the two LayerNorms (each has a scale of d_model entries)",
         lambda dm, nh, dh, dmlp: 4 * dm * nh * dh + 2 * dm * dmlp),
        ("the MLP has two matrices: up (d_model x d_mlp) and down (d_mlp x d_model)",
         lambda dm, nh, dh, dmlp: 4 * dm * nh * dh + dm * dmlp + 2 * dm),
        ("with bias=False attnlib's LayerNorms have a scale but no shift: d_model parameters each",
         lambda dm, nh, dh, dmlp: 4 * dm * nh * dh + 2 * dm * dmlp + 4 * dm),
        ("you counted the attention matrices for one head only; multiply by n_heads",
         lambda dm, nh, dh, dmlp: 4 * dm * dh + 2 * dm * dmlp + 2 * dm),
        ("you forgot the MLP (2 x d_model x d_mlp)", lambda dm, nh, dh, dmlp: 4 * dm * nh * dh + 2 * dm),
        ("you forgot the attention (4 x n_heads x d_model x d_head)",
         lambda dm, nh, dh, dmlp: 2 * dm * dmlp + 2 * dm),
    ]

    def body():
        inputs = [(16, 2, 8, 64), (64, 4, 16, 256), (48, 3, 20, 100), (12288, 96, 128, 4 * 12288)]
        answers = []
        for args in inputs:
            with case("d_model={}, n_heads={}, d_head={}, d_mlp={}".format(*args)):
                got = call(fn, *args)
                if isinstance(got, torch.Tensor) and got.numel() == 1:
                    got = got.item()
                if isinstance(got, float) and got.is_integer():
                    got = int(got)
                if not isinstance(got, int) or isinstance(got, bool):
                    fail(f"return an int, got {type(got).__name__}")
                answers.append(got)
        wants = [_block_count(*args) for args in inputs]
        if answers == wants:
            return len(inputs)
        for message, formula in mistakes:  # a known mistake must match every case
            if all(a == formula(*args) for a, args in zip(answers, inputs, strict=True)):
                fail(message)
        for args, a, w in zip(inputs, answers, wants, strict=True):
            if a != w:
                fail("case d_model={}, n_heads={}, d_head={}, d_mlp={}: ".format(*args)
                     + f"expected {w:,} parameters, got {a:,}")
        return len(inputs)

    return run_check("block parameters", body)


# --------------------------------------------------------------------------- next-token targets


def check_next_token_targets(fn) -> bool:
    """Check ``fn(tokens) -> (x, y)``: inputs and next-token targets from windows of tokens.

    ``tokens`` is (B, L) (or (L,)); the answer is ``x = tokens[..., :-1]`` and ``y = tokens[..., 1:]``,
    both (B, L - 1): ``y[b, t]`` is the token that FOLLOWS ``x[b, t]``, so every position is a
    training example. Diagnoses: no shift, the shift reversed, torch.roll (wraps around), only the
    last position, a shift by two, a shift along the batch axis.
    """

    def body():
        inputs = [("2 windows of 6 tokens", torch.arange(12).reshape(2, 6) * 3 % 11 + 1),
                  ("one 1-D window of 5 tokens", torch.tensor([4, 8, 15, 16, 23])),
                  ("3 windows of 9 tokens", torch.randint(0, 50, (3, 9), generator=torch.Generator().manual_seed(3)))]
        for name, tok in inputs:
            with case(name):
                out = call(fn, tok, hint="fn(tokens) returns a pair (x, y)")
                if not (isinstance(out, (tuple, list)) and len(out) == 2):
                    fail(f"return a pair (x, y), got {type(out).__name__}"
                         + (f" of {len(out)} items" if isinstance(out, (tuple, list)) else ""))
                x = tensor_output(out[0], what="x")
                y = tensor_output(out[1], what="y")
                want_x, want_y = tok[..., :-1], tok[..., 1:]
                if torch.equal(x, tok) and torch.equal(y, tok):
                    fail("x and y are the same tokens: the target of position t is the NEXT token, "
                         "y = tokens[..., 1:], with x = tokens[..., :-1]")
                if x.shape == want_x.shape and torch.equal(x, want_y) and torch.equal(y, want_x):
                    fail("the shift goes the wrong way: x = tokens[..., :-1] and y = tokens[..., 1:] "
                         "(the model predicts the future from the past)")
                if torch.equal(y, torch.roll(tok, -1, dims=-1)) and torch.equal(x, tok):
                    fail("torch.roll wraps around: the last target is then the FIRST token, which "
                         "does not follow; drop the last input instead, x = tokens[..., :-1], "
                         "y = tokens[..., 1:]")
                if (tuple(y.shape) in (tuple(tok.shape[:-1]), tuple(tok.shape[:-1]) + (1,))
                        and torch.equal(y.reshape(-1), tok[..., -1].reshape(-1))):
                    fail("you kept only the last position's target; every position predicts its "
                         "next token, y = tokens[..., 1:]")
                if y.shape == tok[..., 2:].shape and torch.equal(y, tok[..., 2:]):
                    fail("you shifted by two; the target is the very next token, tokens[..., 1:]")
                if tok.ndim == 2 and tok.shape[0] > 1 and x.shape == tok[:-1].shape and torch.equal(y, tok[1:]):
                    fail("you shifted along the batch axis (dim 0); shift along the sequence, the "
                         "last dim: tokens[..., 1:]")
                for what, got, want in (("x", x, want_x), ("y", y, want_y)):
                    if got.shape != want.shape:
                        fail(f"{what} should have shape {shape_str(want.shape)} (one fewer than the "
                             f"window), got {shape_str(got.shape)}")
                    if not torch.equal(got, want):
                        fail(f"{what} is wrong: expected x = tokens[..., :-1], y = tokens[..., 1:]")
        return len(inputs)

    return run_check("next-token targets", body)


# --------------------------------------------------------------------------- top-k


def _top_k_ref(logits: torch.Tensor, k: int) -> torch.Tensor:
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, -INF)


def check_top_k(fn) -> bool:
    """Check ``fn(logits, k) -> logits``: keep each row's k largest logits, set the rest to -inf.

    ``logits`` is (..., vocab); the kept entries are unchanged (not renormalised, not turned into
    probabilities) so that ``softmax`` afterwards gives the top-k distribution. Cases include k = 1
    and k = vocab (nothing removed).
    Diagnoses: 0 instead of -inf, keeping the k smallest, off by one (k - 1 or k + 1 kept), the wrong
    axis, returning probabilities.
    """

    def body():
        inputs = [("2 rows, vocab 6, k = 2", randn(2, 6, seed=50) * 2, 2),
                  ("one row, k = 1 (greedy)", randn(1, 5, seed=51), 1),
                  ("batch 2 x 3 positions, vocab 7, k = 3", randn(2, 3, 7, seed=52), 3),
                  ("k = vocab keeps everything", randn(2, 4, seed=53), 4)]
        cases = []
        for name, x, k in inputs:
            ref = _top_k_ref(x, k)
            mistakes = [
                ("you set the removed logits to 0; set them to -inf (float('-inf')) so that softmax "
                 "gives them probability exactly 0", lambda x=x, ref=ref: torch.where(ref == -INF, 0.0, x)),
                ("you kept the k SMALLEST logits; keep the largest (torch.topk's default, largest=True)",
                 lambda x=x, k=k: x.masked_fill(x > torch.topk(x, k, dim=-1, largest=False).values[..., -1:], -INF)),
                ("you returned probabilities; return the filtered logits (apply softmax later)",
                 lambda ref=ref: torch.softmax(ref, dim=-1)),
            ]
            if k > 1:
                mistakes.append(("you kept k - 1 logits per row (off by one): keep the k largest, "
                                 "values >= the k-th largest", lambda x=x, k=k: _top_k_ref(x, k - 1)))
            if k < x.shape[-1]:
                mistakes.append(("you kept k + 1 logits per row (off by one): keep the k largest, "
                                 "values >= the k-th largest", lambda x=x, k=k: _top_k_ref(x, k + 1)))
            if x.ndim >= 2 and x.shape[-2] >= k:
                mistakes.append(("you took the top k along the wrong axis; use dim=-1 (the vocabulary)",
                                 lambda x=x, k=k: x.masked_fill(
                                     x < torch.topk(x, k, dim=-2).values[..., -1:, :], -INF)))
            cases.append(Case(name, (x, k), ref, mistakes=mistakes))
        return run_cases(fn, cases, hint="torch.topk(logits, k, dim=-1).values[..., -1:] is each row's k-th largest")

    return run_check("top-k filter", body)


# --------------------------------------------------------------------------- adjective mass


def check_adjective_mass(fn) -> bool:
    """Check ``fn(weights, pairs) -> (n_layers, n_heads)``: the mean attention from each needs-it
    position onto its adjective, as :func:`attnlib.data.adjective_mass` computes it.

    ``weights`` is a list of per-layer patterns (B, H, T, T) (rows = queries, columns = keys) and
    ``pairs`` a (P, 4) long tensor of rows ``(window, query_pos, key_pos, kind)``.
    Diagnoses: query and key swapped (reading the column), a sum instead of a mean, averaging over
    every query rather than the needs-it ones, the wrong layout (heads and layers swapped).
    """

    def body():
        g = torch.Generator().manual_seed(60)
        cases = []
        for name, (L, B, H, T, P) in (("2 layers, 3 heads, 4 windows of 8", (2, 4, 3, 8, 7)),
                                      ("1 layer, 2 heads, 2 windows of 6", (1, 2, 2, 6, 3))):
            scores = torch.randn(L, B, H, T, T, generator=g)
            scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), -INF)
            w = torch.softmax(scores, dim=-1)
            rows = []
            for _ in range(P):
                b = int(torch.randint(B, (1,), generator=g))
                q = int(torch.randint(2, T, (1,), generator=g))
                k = int(torch.randint(0, q, (1,), generator=g))
                rows.append((b, q, k, len(rows) % 2))
            pairs = torch.tensor(rows)
            ref = adjective_mass(list(w), pairs)
            bi, qi, ki = pairs[:, :3].unbind(1)
            wl = list(w)
            mistakes = [
                ("you read weights[..., key, query]: rows are queries and columns keys, so take "
                 "w[window, head, query_pos, key_pos]",
                 lambda w=w, bi=bi, qi=qi, ki=ki: w.permute(1, 4, 3, 0, 2)[bi, qi, ki].mean(0)),
                ("you summed over the pairs; take the mean so that 1.0 means 'all of the attention'",
                 lambda w=w, bi=bi, qi=qi, ki=ki: w.permute(1, 3, 4, 0, 2)[bi, qi, ki].sum(0)),
                ("you averaged over every query position; only the needs-it positions (pairs[:, 1]) count",
                 lambda w=w, bi=bi, ki=ki: w.permute(1, 4, 0, 2, 3)[bi, ki].mean(dim=(0, -1))),
                ("your answer is (n_heads, n_layers); return (n_layers, n_heads)",
                 lambda ref=ref: ref.T),
            ]
            cases.append(Case(name, (wl, pairs), ref, mistakes=mistakes))
        return run_cases(fn, cases, hint="stack the layers with torch.stack(weights): (L, B, H, T, T)")

    return run_check("adjective mass", body)

"""Checkers for chapter 9 (the decoder): LayerNorm, the pre-LN block, a block's parameters, and
which positions a change of one token reaches.

The references are attnlib's own modules (:class:`attnlib.DecoderBlock`,
:func:`attnlib.count_parameters`) and PyTorch's ``nn.LayerNorm``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..decoder import Decoder, DecoderBlock, DecoderConfig
from ..params import count_parameters
from ._core import (
    Case,
    Causal,
    Mistake,
    NumberSpec,
    TensorSpec,
    call,
    case,
    checker,
    fail,
    make_every_piece_matter,
    randn,
    run_check,
    seed_cpu,
)

__all__ = ["check_layernorm", "check_block", "check_block_parameters", "check_reach"]


# --------------------------------------------------------------------------- LayerNorm


def _ln(x, w, b, eps=1e-5, *, dim=-1, unbiased=False, scale=True, shift=True, eps_out=False,
        by_var=False, centre=True, keepdim=True):
    mean = x.mean(dim, keepdim=keepdim)
    var = x.var(dim, keepdim=keepdim, unbiased=unbiased)
    top = x - mean if centre else x
    bottom = (var + eps) if by_var else (torch.sqrt(var) + eps if eps_out else torch.sqrt(var + eps))
    y = top / bottom
    if scale:
        y = y * w
    if shift:
        y = y + b
    return y


def _layer_norm(x, weight, bias, eps=1e-5):
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


LAYERNORM_MISTAKES = [
    Mistake("you used the unbiased variance (divides by n - 1): LayerNorm divides by n, so use "
            "x.var(dim=-1, unbiased=False, keepdim=True) or ((x - mean) ** 2).mean(dim=-1, "
            "keepdim=True)", lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, unbiased=True)),
    Mistake("you normalised over the wrong axis: LayerNorm works on each token's vector on its "
            "own, i.e. over the last dim (d_model), not over the tokens",
            lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, dim=-2)),
    Mistake("you forgot the learned scale and shift: multiply by weight and add bias at the end",
            lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, scale=False, shift=False)),
    Mistake("you forgot the learned shift: add bias at the end",
            lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, shift=False)),
    Mistake("you forgot the learned scale: multiply by weight before adding bias",
            lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, scale=False)),
    Mistake("you added eps to the standard deviation; it goes inside the square root: "
            "sqrt(var + eps)", lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, eps_out=True)),
    Mistake("you divided by the variance; divide by the standard deviation sqrt(var + eps)",
            lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, by_var=True)),
    Mistake("you did not subtract the mean before dividing",
            lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, centre=False)),
    Mistake("you forgot keepdim=True, so the per-token statistics broadcast across the features",
            lambda x, w, b, eps=1e-5: _ln(x, w, b, eps, keepdim=False)),
    Mistake("you ignored the eps argument (a fixed 1e-5 inside the square root): use the eps you "
            "are given", lambda x, w, b, eps=1e-5: _ln(x, w, b, 1e-5),
            when=lambda x, w, b, eps=1e-5: eps != 1e-5),
    Mistake("one mean and variance for the whole tensor: each token (each row of the last dim) is "
            "normalised with its OWN statistics",
            lambda x, w, b, eps=1e-5: (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps) * w
            + b),
]


def _ln_cases():
    inputs = [
        ("a token whose entries are all equal (variance 0), d = 4",
         torch.cat([torch.full((1, 4), 2.5), randn(3, 4, seed=26)]), randn(4, seed=27),
         randn(4, seed=28), 1e-5),
        ("batch 2 x 5 tokens, d = 8", randn(2, 5, 8, seed=20) * 3 + 1, randn(8, seed=21),
         randn(8, seed=22), 1e-5),
        ("one vector, d = 6", randn(6, seed=23) * 2, randn(6, seed=24), randn(6, seed=25), 1e-5),
        ("eps = 0.5 (it must sit inside the square root)", randn(3, 8, seed=29) * 0.3,
         randn(8, seed=30), randn(8, seed=31), 0.5),
        ("tokens of very different scale (x 1000 and x 0.001)",
         randn(3, 6, seed=32) * torch.tensor([[1000.0], [1.0], [0.001]]), randn(6, seed=33),
         randn(6, seed=34), 1e-5),
    ]
    return [Case(name, (x, w, b), _layer_norm(x, w, b, eps), kwargs={"eps": eps},
                 atol=1e-4, rtol=1e-4) for name, x, w, b, eps in inputs]


@checker(TensorSpec(
    "layer norm", _ln_cases, LAYERNORM_MISTAKES, reference=_layer_norm, layout="x.shape",
    nonfinite="your output has nan/inf: a token with all-equal entries has variance 0; add eps "
              "inside the square root, sqrt(var + eps)",
    hint="fn(x, weight, bias, eps=1e-5); reduce over dim=-1 with keepdim=True"))
def check_layernorm(fn):
    """Check fn(x, weight, bias, eps=1e-5) -> LayerNorm over the last dim, like nn.LayerNorm."""


# --------------------------------------------------------------------------- the block


def _reference_block(d_model=16, n_heads=2, seed=0) -> DecoderBlock:
    seed_cpu(seed)
    # non-trivial LayerNorm scales, larger weights
    blk = DecoderBlock(DecoderConfig(d_model=d_model, n_heads=n_heads)).eval()
    return make_every_piece_matter(blk, vector_spread=0.5)


# Mistaken versions of the block, each fn(x, blk) on a DecoderBlock's parts (the correct one is
# block(x) itself: _block_reference).


def _attn(blk, h, causal=True, diagonal=0):
    """The block's attention on h; ``diagonal`` > 0 lets each query see that many later keys."""
    if diagonal == 0:
        return blk.attn(h, is_causal=causal)
    T = h.shape[-2]
    return blk.attn(h, mask=torch.ones(T, T, dtype=torch.bool).tril(diagonal))


def _post_ln(x, blk):
    h = blk.ln_1(x + _attn(blk, x))
    return blk.ln_2(h + blk.mlp(h))


def _no_attn_residual(x, blk):
    h = _attn(blk, blk.ln_1(x))
    return h + blk.mlp(blk.ln_2(h))


def _no_mlp_residual(x, blk):
    h = x + _attn(blk, blk.ln_1(x))
    return blk.mlp(blk.ln_2(h))


def _no_residual(x, blk):
    return blk.mlp(blk.ln_2(_attn(blk, blk.ln_1(x))))


def _mlp_first(x, blk):
    h = x + blk.mlp(blk.ln_2(x))
    return h + _attn(blk, blk.ln_1(h))


def _not_causal(x, blk):
    h = x + _attn(blk, blk.ln_1(x), causal=False)
    return h + blk.mlp(blk.ln_2(h))


def _leak_by_one(x, blk):
    h = x + _attn(blk, blk.ln_1(x), diagonal=1)
    return h + blk.mlp(blk.ln_2(h))


def _parallel(x, blk):
    return x + _attn(blk, blk.ln_1(x)) + blk.mlp(blk.ln_2(x))


def _swapped_ln(x, blk):
    h = x + _attn(blk, blk.ln_2(x))
    return h + blk.mlp(blk.ln_1(h))


def _normalised_stream(x, blk):
    h = blk.ln_1(x)
    h = h + _attn(blk, h)
    h2 = blk.ln_2(h)
    return h2 + blk.mlp(h2)


def _no_ln(x, blk):
    h = x + _attn(blk, x)
    return h + blk.mlp(h)


BLOCK_MISTAKES = [
    Mistake("no causal mask", _not_causal, shows="no causal mask is applied"),
    Mistake("leak by one", _leak_by_one, shows="leak by one"),
    Mistake("this is the post-LN block of the original 2017 transformer (LayerNorm after each "
            "residual addition). attnlib's blocks are pre-LN: normalise the INPUT of each "
            "sub-layer and add its output to the unnormalised stream, x = x + attn(ln_1(x)); "
            "x = x + mlp(ln_2(x))", _post_ln),
    Mistake("you applied the MLP before attention: in a block, attention (which mixes "
            "positions) comes first, then the MLP works on each position", _mlp_first),
    Mistake("you dropped the residual connection around attention: ADD its output to the "
            "stream, x = x + attn(ln_1(x)), instead of replacing x", _no_attn_residual),
    Mistake("you dropped the residual connection around the MLP: x = x + mlp(ln_2(x))",
            _no_mlp_residual),
    Mistake("there are no residual connections: each sub-layer's output must be ADDED to x",
            _no_residual),
    Mistake("you ran attention and the MLP side by side on the same input (the 'parallel' "
            "block of GPT-J); here the MLP reads the stream AFTER attention has added to it",
            _parallel),
    Mistake("you swapped the two LayerNorms: ln_1 goes before attention, ln_2 before the MLP",
            _swapped_ln),
    Mistake("you replaced the stream by its normalised version (x = ln_1(x)): the LayerNorm "
            "output feeds the sub-layer only, the residual stream itself stays unnormalised",
            _normalised_stream),
    Mistake("you skipped the LayerNorms: each sub-layer reads ln(x), not x", _no_ln),
]


def _block_reference(x, block):
    with torch.no_grad():
        return block(x)


def _block_cases():
    cases = []
    for name, shape, seed in (("batch 2 x 5 tokens, d_model = 16", (2, 5, 16), 40),
                              ("one sequence of 7 tokens", (1, 7, 16), 41)):
        blk = _reference_block(seed=seed)
        x = randn(*shape, seed=seed) * 2
        cases.append(Case(name, (x, blk), _block_reference(x, blk), atol=1e-4, rtol=1e-4))
    return cases


def _no_grad(fn):
    def run(*args, **kwargs):
        with torch.no_grad():
            return fn(*args, **kwargs)
    return run


@checker(TensorSpec(
    "decoder block", _block_cases, [Mistake(m.message, _no_grad(m.fn), shows=m.shows)
                                    for m in BLOCK_MISTAKES],
    causal=Causal(arg=0, dim=-2, out_dim=-2), reference=_block_reference, layout="x.shape",
    otherwise="the output differs from block(x)",
    hint="fn(x, block): use block.ln_1, block.attn(h, is_causal=True), block.ln_2 and block.mlp"))
def check_block(fn):
    """Check fn(x, block) -> the pre-LN decoder block's forward pass, built from its parts."""


# --------------------------------------------------------------------------- parameter count


def _block_count(d_model, n_heads, d_head, d_mlp) -> int:
    with torch.device("meta"):
        blk = DecoderBlock(DecoderConfig(d_model=d_model, n_heads=n_heads, d_head=d_head, d_mlp=d_mlp))
    return count_parameters(blk).total


@checker(NumberSpec(
    "block parameters", [
        (f"d_model={a}, n_heads={b}, d_head={c}, d_mlp={d}", (a, b, c, d), {})
        for a, b, c, d in [(16, 2, 8, 64), (64, 4, 16, 256), (48, 3, 20, 100),
                           (12288, 96, 128, 4 * 12288)]],
    _block_count, [
        Mistake("you counted three attention matrices per head; there are four: W_Q, W_K, W_V "
                "(value-down) and W_O (value-up)",
                lambda dm, nh, dh, dmlp: 3 * dm * nh * dh + 2 * dm * dmlp + 2 * dm),
        Mistake("you forgot the two LayerNorms (each has a scale of d_model entries)",
                lambda dm, nh, dh, dmlp: 4 * dm * nh * dh + 2 * dm * dmlp),
        Mistake("the MLP has two matrices: up (d_model x d_mlp) and down (d_mlp x d_model)",
                lambda dm, nh, dh, dmlp: 4 * dm * nh * dh + dm * dmlp + 2 * dm),
        Mistake("with bias=False attnlib's LayerNorms have a scale but no shift: d_model "
                "parameters each", lambda dm, nh, dh, dmlp: 4 * dm * nh * dh + 2 * dm * dmlp
                + 4 * dm),
        Mistake("you counted the attention matrices for one head only; multiply by n_heads",
                lambda dm, nh, dh, dmlp: 4 * dm * dh + 2 * dm * dmlp + 2 * dm),
        Mistake("you forgot the MLP (2 x d_model x d_mlp)",
                lambda dm, nh, dh, dmlp: 4 * dm * nh * dh + 2 * dm),
        Mistake("you forgot the attention (4 x n_heads x d_model x d_head)",
                lambda dm, nh, dh, dmlp: 2 * dm * dmlp + 2 * dm),
        Mistake("you counted one LayerNorm; a block has two (ln_1 and ln_2)",
                lambda dm, nh, dh, dmlp: 4 * dm * nh * dh + 2 * dm * dmlp + dm),
    ]))
def check_block_parameters(fn):
    """Check fn(d_model, n_heads, d_head, d_mlp) -> the parameters of one attnlib block."""


# --------------------------------------------------------------------------- reach


def _positions(out, T: int) -> list[int]:
    """The reader's answer as sorted positions: a list, tuple, set or tensor of ints, or a bool mask
    of length T."""
    if isinstance(out, torch.Tensor):
        if out.dtype == torch.bool:
            if out.shape != (T,):
                fail(f"a bool mask of positions must have shape ({T},), one entry per position; got "
                     f"shape {tuple(out.shape)}")
            out = out.nonzero().flatten()
        out = out.flatten().tolist()
    if not isinstance(out, (list, tuple, set, range)):
        fail(f"return the positions as a list of ints (e.g. [2, 3, 4]), got {type(out).__name__}")
    if out and all(isinstance(v, bool) for v in out):
        if len(out) != T:
            fail(f"a list of True/False must have one entry per position ({T}), got {len(out)}")
        out = [i for i, v in enumerate(out) if v]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in out):
        fail(f"positions must be ints, got {sorted(map(repr, out))[:5]}")
    bad = [v for v in out if not 0 <= v < T]
    if bad:
        fail(f"positions run from 0 to {T - 1}, got {sorted(set(bad))}")
    return sorted(set(out))


def _reach_diagnosis(got: list[int], position: int, T: int) -> str:
    later = list(range(position + 1, T))
    if not got:
        return ("no position moved: replace the token at `position` by a different id, run the model on "
                "the changed ids as well as the original ones, and compare the two logits")
    if got == later:
        return (f"you left out position {position} itself: its logits read its own token, so they "
                f"change too")
    if got == [position] and later:
        return (f"only position {position} moved in your answer: attention carries its token to every "
                f"later position (their queries may look back at it), so positions {position} to "
                f"{T - 1} change")
    if got == list(range(position)) or got == list(range(position + 1)) and position:
        return (f"those are the positions before {position}: with a causal mask a position's logits "
                f"never depend on later tokens, so a change flows forward, to {position}..{T - 1}")
    early = [v for v in got if v < position]
    if early:
        return (f"positions {early} come before the change at {position} and cannot move (the causal "
                f"mask hides later tokens from them): compare with a small tolerance on the right axis")
    missing = [v for v in range(position, T) if v not in got]
    return (f"positions {missing} are missing: every position from {position} on attends (directly or "
            f"through the layers) to the changed token")


def check_reach(fn) -> bool:
    """Check ``fn(model, ids, position)``: the positions of the logits that change when the token
    at ``position`` of ``ids`` (shape (1, T)) is replaced by another one. Run on small random
    decoders of one to three layers, at a middle, the first and the last position."""

    def body() -> int:
        n = 0
        for seed, (n_layers, T) in enumerate([(2, 10), (1, 7), (3, 12)]):
            seed_cpu(seed)
            model = Decoder(DecoderConfig(vocab_size=20, context_len=16, d_model=16, n_layers=n_layers,
                                          n_heads=2)).eval()
            g = torch.Generator().manual_seed(100 + seed)
            ids = torch.randint(0, 20, (1, T), generator=g)
            for position in (T // 2, 0, T - 1):  # the middle first: each mistake looks its own there
                with case(f"{n_layers}-layer model, T = {T}, position {position}"):
                    got = _positions(call(fn, model, ids, position), T)
                    if got != list(range(position, T)):
                        fail(_reach_diagnosis(got, position, T))
                n += 1
        return n

    return run_check("reach", body)

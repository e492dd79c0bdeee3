"""Checkers for chapter 10 (training): the training step, top-k filtering, one decoding step
with the KV cache, and the attention mass on the adjectives (the reference is
:func:`attnlib.data.adjective_mass`). ``check_next_token_targets`` served an earlier version of
the chapter; it stays importable for notebooks that still call it.

The training step and the decoding step are judged on small seeded models: the training step
against a reference step (attnlib's own loop), the decoding step against a full recomputation of
the whole sequence.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from ..data import adjective_mass
from ._core import (
    Case,
    Mistake,
    TensorSpec,
    call,
    case,
    checker,
    close,
    fail,
    make_every_piece_matter,
    randn,
    run_check,
    seed_cpu,
    tensor_output,
)
from .ch04_masking_context import _shift, _shift_cases, shift_mistakes

__all__ = ["check_next_token_targets", "check_train_step", "check_top_k", "check_cached_step",
           "check_adjective_mass"]

INF = float("inf")


@checker(TensorSpec(
    "next-token targets", _shift_cases, shift_mistakes("tokens", "x", "y"), outputs=("x", "y"),
    reference=_shift,
    hint="fn(tokens) returns a pair (x, y)",
    otherwise="expected x = tokens[..., :-1], y = tokens[..., 1:]"))
def check_next_token_targets(fn):
    """Check fn(tokens) -> (x, y): inputs and next-token targets, y[..., t] follows x[..., t]."""


# --------------------------------------------------------------------------- top-k


def _top_k_ref(logits: torch.Tensor, k: int) -> torch.Tensor:
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, -INF)


def _top_k_cases():
    shifted = randn(2, 6, seed=50) * 2 + torch.tensor([[5.0], [0.0]])  # row 0 holds the top 2
    inputs = [("2 rows, vocab 6, k = 2", shifted, 2),
              ("one row, k = 1 (greedy)", randn(1, 5, seed=51), 1),
              ("batch 2 x 3 positions, vocab 7, k = 3", randn(2, 3, 7, seed=52), 3),
              ("k = vocab keeps everything", randn(2, 4, seed=53), 4),
              ("rows of very different scale (x 100 and x 0.01), k = 2",
               randn(3, 5, seed=54) * torch.tensor([[100.0], [1.0], [0.01]]), 2)]
    return [Case(name, (x, k), _top_k_ref(x, k)) for name, x, k in inputs]


@checker(TensorSpec(
    "top-k filter", _top_k_cases, [
        Mistake("you set the removed logits to 0; set them to -inf (float('-inf')) so that softmax "
                "gives them probability exactly 0",
                lambda x, k: torch.where(_top_k_ref(x, k) == -INF, 0.0, x),
                when=lambda x, k: k < x.shape[-1]),
        Mistake("you kept the k SMALLEST logits; keep the largest (torch.topk's default, "
                "largest=True)", lambda x, k: x.masked_fill(
                    x > torch.topk(x, k, dim=-1, largest=False).values[..., -1:], -INF),
                when=lambda x, k: k < x.shape[-1]),
        Mistake("you returned probabilities; return the filtered logits (apply softmax later)",
                lambda x, k: torch.softmax(_top_k_ref(x, k), dim=-1)),
        Mistake("you kept k - 1 logits per row (off by one): keep the k largest, values >= the "
                "k-th largest", lambda x, k: _top_k_ref(x, k - 1), when=lambda x, k: k > 1),
        Mistake("you kept k + 1 logits per row (off by one): keep the k largest, values >= the "
                "k-th largest", lambda x, k: _top_k_ref(x, k + 1),
                when=lambda x, k: k < x.shape[-1]),
        Mistake("you took the top k along the wrong axis; use dim=-1 (the vocabulary)",
                lambda x, k: x.masked_fill(x < torch.topk(x, k, dim=-2).values[..., -1:, :], -INF),
                when=lambda x, k: x.ndim >= 2 and x.shape[-2] >= k),
        Mistake("one threshold for the whole tensor: each ROW keeps its own k largest logits "
                "(torch.topk(logits, k, dim=-1).values[..., -1:])",
                lambda x, k: x.masked_fill(x < torch.topk(x.flatten(), k).values[-1], -INF),
                when=lambda x, k: x.ndim >= 2 and x.shape[0] > 1),
    ], reference=_top_k_ref, layout="logits.shape",
    hint="torch.topk(logits, k, dim=-1).values[..., -1:] is each row's k-th largest"))
def check_top_k(fn):
    """Check fn(logits, k) -> logits with all but each row's k largest set to -inf."""


# --------------------------------------------------------------------------- adjective mass


def _mass_cases():
    g = torch.Generator().manual_seed(60)
    cases = []
    for name, (L, B, H, T, P) in (("2 layers, 3 heads, 4 windows of 8", (2, 4, 3, 8, 7)),
                                  ("1 layer, 2 heads, 2 windows of 6", (1, 2, 2, 6, 3)),
                                  ("3 layers, 2 heads, 3 windows of 7", (3, 3, 2, 7, 5))):
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
        cases.append(Case(name, (list(w), pairs), adjective_mass(list(w), pairs)))
    return cases


def _stacked(weights, pairs):
    w = torch.stack(list(weights))  # (L, B, H, T, T)
    return w, pairs[:, 0], pairs[:, 1], pairs[:, 2]


def _column(weights, pairs):
    w, bi, qi, ki = _stacked(weights, pairs)
    return w.permute(1, 4, 3, 0, 2)[bi, qi, ki].mean(0)


def _summed(weights, pairs):
    w, bi, qi, ki = _stacked(weights, pairs)
    return w.permute(1, 3, 4, 0, 2)[bi, qi, ki].sum(0)


def _every_query(weights, pairs):
    w, bi, _, ki = _stacked(weights, pairs)
    return w.permute(1, 4, 0, 2, 3)[bi, ki].mean(dim=(0, -1))


@checker(TensorSpec(
    "adjective mass", _mass_cases, [
        Mistake("you read weights[..., key, query]: rows are queries and columns keys, so take "
                "w[window, head, query_pos, key_pos]", _column),
        Mistake("you summed over the pairs; take the mean so that 1.0 means 'all of the "
                "attention'", _summed),
        Mistake("you averaged over every query position; only the needs-it positions "
                "(pairs[:, 1]) count", _every_query),
        Mistake("your answer is (n_heads, n_layers); return (n_layers, n_heads)",
                lambda w, p: adjective_mass(w, p).T, when=lambda w, p: len(w) != w[0].shape[1]),
    ], reference=adjective_mass, layout="(n_layers, n_heads)",
    hint="stack the layers with torch.stack(weights): (L, B, H, T, T)"))
def check_adjective_mass(fn):
    """Check fn(weights, pairs) -> (n_layers, n_heads): mean attention from needs-it rows to adjectives."""


# --------------------------------------------------------------------------- the training step

STEP_LR, STEP_STEPS = 1e-2, 3  # every case: AdamW at this lr, this many steps on one model

NO_STEP = ("your function never called opt.step(), so the parameters did not move: end the step "
           "with opt.step()")
STEP_TWICE = "you called opt.step() {n} times in one training step; call it once"
STEP_BEFORE_BACKWARD = (
    "opt.step() ran before loss.backward(): the step saw no gradient of this batch (the "
    "gradients arrived after it). The order is zero_grad, forward, backward, clip, step")
NO_GRADS_AT_STEP = (
    "opt.step() saw no gradients: were they zeroed between loss.backward() and opt.step(), or "
    "is loss.backward() missing? Zero the gradients before backward (or after the step)")
NO_CLIP = (
    "the gradient reached opt.step() with norm {norm:.3g}, above grad_clip = {clip:g}: clip it "
    "between loss.backward() and opt.step(), torch.nn.utils.clip_grad_norm_(model.parameters(), "
    "grad_clip)")
CLIP_AFTER_STEP = (
    "you clipped the gradient after opt.step(): the step had already used the unclipped one. "
    "Clip between loss.backward() and opt.step()")
CLIP_FIXED = (
    "you clipped the gradient to norm 1.0, but grad_clip is {clip:g}: pass grad_clip to "
    "clip_grad_norm_ instead of a fixed number")
NOT_ZEROED = (
    "the gradients were not zeroed: the first step is right, but from the second on "
    "loss.backward() adds this batch's gradient to the last one's (backward accumulates into "
    ".grad). Call opt.zero_grad() before loss.backward()")
SUMMED = (
    "your loss is summed over the positions, not averaged (it is batch x T times too large): "
    "use F.cross_entropy's default reduction='mean', so the loss does not grow with the batch")
SHIFTED_AGAIN = (
    "you shifted the targets again: y is already x shifted by one (y[b, t] follows x[b, t]), so "
    "compare the logits at every position with y at the same position")
TARGETS_X = (
    "you compared the logits with x: the targets are y, the next tokens, not the inputs "
    "themselves")
EVAL_MODE = (
    "your step ran the model in eval mode (dropout off) or left it there: a training step "
    "trains; the loop calls model.train() once before the first step, so do not call "
    "model.eval() inside it")
LOSS_AFTER = (
    "you returned the loss after the update: return the loss of this step's forward pass (the "
    "one you called backward on), as the loop records it")
GRAPH = (
    "you returned the loss tensor itself: it still holds the graph of the forward pass, so a "
    "list of them keeps every step's activations in memory. Return loss.item(), a float")
NOT_A_FLOAT = "return the loss as a Python float (loss.item()), got {kind}"


def _flat(logits):
    return logits.reshape(-1, logits.shape[-1])


def _train_step_ref(model, opt, x, y, grad_clip):
    _, loss = model(x, y)  # the mean cross-entropy over every position
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.item()


def _clip_before_step(model, clip, grad_clip):
    """Clip the gradients as a step built by _step_with does before the optimiser step: to
    ``grad_clip`` ("before"), to a fixed 1.0 ("fixed"), or not at all."""
    if clip == "before":
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    elif clip == "fixed":
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)


def _step_with(loss_fn, *, zero=True, clip="before", step="after", mode=None):
    """A training step built from parts: how each known mistake is made."""
    def train_step(model, opt, x, y, grad_clip):
        if mode == "eval":
            model.eval()
        loss = loss_fn(model, x, y)
        if zero:
            opt.zero_grad()
        if step == "before":
            opt.step()
        loss.backward()
        if zero == "after backward":
            opt.zero_grad()
        _clip_before_step(model, clip, grad_clip)
        if step == "after":
            opt.step()
        if clip == "after":
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if mode == "eval":
            model.train()
        return loss.item()
    return train_step


def _ce(model, x, y):
    return F.cross_entropy(_flat(model(x)[0]), y.reshape(-1))


def _returns_graph(model, opt, x, y, grad_clip):
    _, loss = model(x, y)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss


def _loss_after(model, opt, x, y, grad_clip):
    _train_step_ref(model, opt, x, y, grad_clip)
    with torch.no_grad():
        return model(x, y)[1].item()


def _left_in_eval(model, opt, x, y, grad_clip):
    loss = _train_step_ref(model, opt, x, y, grad_clip)
    model.eval()
    return loss


#: every known mistake, with its message (the tests run each one through the checker)
TRAIN_STEP_MISTAKES = [
    Mistake(NO_STEP, _step_with(_ce, step="never")),
    Mistake(STEP_BEFORE_BACKWARD, _step_with(_ce, step="before")),
    Mistake(NO_GRADS_AT_STEP, _step_with(_ce, zero="after backward")),
    Mistake("no clip", _step_with(_ce, clip=None), shows="above grad_clip"),
    Mistake(CLIP_AFTER_STEP, _step_with(_ce, clip="after")),
    Mistake("fixed clip", _step_with(_ce, clip="fixed"), shows="clipped the gradient to norm 1.0"),
    Mistake(NOT_ZEROED, _step_with(_ce, zero=False)),
    Mistake(SUMMED, _step_with(lambda m, x, y: F.cross_entropy(
        _flat(m(x)[0]), y.reshape(-1), reduction="sum"))),
    Mistake(SHIFTED_AGAIN, _step_with(lambda m, x, y: F.cross_entropy(
        _flat(m(x)[0][:, :-1]), y[:, 1:].reshape(-1)))),
    Mistake(TARGETS_X, _step_with(lambda m, x, y: F.cross_entropy(_flat(m(x)[0]),
                                                                  x.reshape(-1)))),
    Mistake(EVAL_MODE, _step_with(_ce, mode="eval")),
    Mistake(EVAL_MODE, _left_in_eval),
    Mistake(LOSS_AFTER, _loss_after),
    Mistake(GRAPH, _returns_graph),
]
#: the mistakes the checker finds by replaying them (the others are named by its probes)
_REPLAYED = [m for m in TRAIN_STEP_MISTAKES
             if m.message in (NOT_ZEROED, SUMMED, SHIFTED_AGAIN, TARGETS_X, EVAL_MODE, LOSS_AFTER)]


def _step_cases():
    """(name, config, batch, T, grad_clip, seed): fresh model and AdamW for each case."""
    from ..decoder import TINY
    return [
        ("attnlib's TINY config, batch 4 x 16, grad_clip 0.5", TINY, 4, 16, 0.5, 70),
        ("1 layer of 3 heads, d_model 24, batch 2 x 7, grad_clip 0.25",
         TINY.replace(vocab_size=20, context_len=12, d_model=24, n_layers=1, n_heads=3), 2, 7,
         0.25, 71),
        ("dropout 0.1, 2 layers, d_model 16, batch 3 x 8, grad_clip 0.8",
         TINY.replace(vocab_size=30, context_len=12, d_model=16, n_layers=2, n_heads=2,
                      dropout=0.1), 3, 8, 0.8, 72),
    ]


def _step_batches(cfg, B, T, seed):
    """STEP_STEPS batches (x, y) of random windows, y = x shifted by one."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(STEP_STEPS):
        stream = torch.randint(cfg.vocab_size, (B, T + 1), generator=g)
        out.append((stream[:, :-1].clone(), stream[:, 1:].clone()))
    return out


def _fresh(cfg, seed):
    from ..decoder import Decoder
    seed_cpu(seed)
    model = Decoder(cfg).train()
    return model, torch.optim.AdamW(model.parameters(), lr=STEP_LR)


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _grads(model):
    return [p.grad for p in model.parameters()]


def _norm(grads) -> float:
    present = [g.detach().double() for g in grads if g is not None]
    return float(torch.sqrt(sum((g ** 2).sum() for g in present))) if present else 0.0


def _trajectory(fn, cfg, seed, batches, clip):
    """Run ``fn`` for every batch on a fresh model; [(loss, params)] after each step, or None."""
    try:
        model, opt = _fresh(cfg, seed)
        out = []
        for i, (x, y) in enumerate(batches):
            seed_cpu(1000 * seed + i)  # the dropout masks
            loss = fn(model, opt, x.clone(), y.clone(), clip)
            value = loss.item() if isinstance(loss, torch.Tensor) else float(loss)
            out.append((value, _params(model)))
        return out
    except Exception:  # a mistake that cannot run on this case matches nothing
        return None


def _same_state(a, b) -> bool:
    return all(close(a[k], b[k], atol=1e-5, rtol=1e-4) for k in a)


def _same_loss(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)


def _as_loss(out) -> float:
    if isinstance(out, torch.Tensor):
        if out.requires_grad or out.grad_fn is not None:
            fail(GRAPH)
        fail(NOT_A_FLOAT.format(kind=f"a tensor of shape {tuple(out.shape)}"))
    if out is None:
        fail("your function returned None - is the TODO still open, or is a `return` missing?")
    if isinstance(out, bool) or not isinstance(out, numbers.Real):
        fail(NOT_A_FLOAT.format(kind=f"a {type(out).__name__}"))
    return float(out)


def check_train_step(fn):
    """Check fn(model, opt, x, y, grad_clip) -> float: one training step, as the chapter's loop.

    On three fresh seeded models (attnlib's TINY config among them, one with dropout), each with
    its own AdamW, the checker runs three steps and compares the returned losses and the
    parameters after every step with a reference step; a probe on ``opt.step()`` sees whether the
    gradients were there and clipped when the step ran.
    """

    def body() -> int:
        n = 0
        for name, cfg, B, T, clip, seed in _step_cases():
            batches = _step_batches(cfg, B, T, seed)
            want = _trajectory(_train_step_ref, cfg, seed, batches, clip)
            model, opt = _fresh(cfg, seed)
            seen: list[list] = []

            def probe(optimizer, args, kwargs, seen=seen, model=model):
                grads = _grads(model)
                present = any(g is not None and bool(g.ne(0).any()) for g in grads)
                seen.append((present, _norm(grads)))

            handle = opt.register_step_pre_hook(probe)
            losses: list[float] = []
            try:
                for i, (x, y) in enumerate(batches):
                    with case(f"{name}, step {i + 1}"):
                        seen.clear()
                        seed_cpu(1000 * seed + i)  # the dropout masks
                        out = call(fn, model, opt, x, y, clip, allow_inplace=[0, 1],
                                   hint="train_step(model, opt, x, y, grad_clip) runs forward, "
                                        "loss.backward() and opt.step() with gradients on "
                                        "(no torch.no_grad()) and returns loss.item()")
                        loss = _as_loss(out)
                        if not model.training:
                            fail(EVAL_MODE)
                        _probe_step(seen, model, clip)
                        losses.append(loss)
                        _compare_step(losses, _params(model), want, i, cfg, seed, batches, clip)
                        n += 1
            finally:
                handle.remove()
        return n

    return run_check("training step", body, unit="steps")  # which keeps the reader's RNG state


def _probe_step(seen, model, clip) -> None:
    """What the probe on opt.step() saw: one call, with this batch's clipped gradient."""
    if not seen:
        fail(NO_STEP)
    if len(seen) > 1:
        fail(STEP_TWICE.format(n=len(seen)))
    present, norm = seen[0]
    if not present:
        after = any(g is not None and bool(g.ne(0).any()) for g in _grads(model))
        fail(STEP_BEFORE_BACKWARD if after else NO_GRADS_AT_STEP)
    if norm > clip * (1 + 1e-3) + 1e-6:
        if clip < 1 and abs(norm - 1.0) < 1e-3:
            fail(CLIP_FIXED.format(clip=clip))
        if _norm(_grads(model)) <= clip * (1 + 1e-3) + 1e-6 and any(
                g is not None for g in _grads(model)):
            fail(CLIP_AFTER_STEP)
        fail(NO_CLIP.format(norm=norm, clip=clip))


def _compare_step(losses, params, want, i, cfg, seed, batches, clip) -> None:
    """Fail unless the losses so far and the parameters after step i are the reference's."""
    ok_loss = all(_same_loss(a, b) for a, (b, _) in zip(losses, want, strict=False))
    if ok_loss and _same_state(params, want[i][1]):
        return
    for m in _REPLAYED:
        wrong = _trajectory(m.fn, cfg, seed, batches, clip)
        if wrong is not None and all(_same_loss(a, b) for a, (b, _) in zip(losses, wrong,
                                                                             strict=False)) \
                and _same_state(params, wrong[i][1]):
            fail(m.message)
    if not ok_loss:
        fail(f"you returned the loss {losses[-1]:.6g}, the reference step's is {want[i][0]:.6g}: "
             "return the mean cross-entropy of the logits against y, as a float")
    diff = max((params[k].double() - want[i][1][k].double()).abs().max().item() for k in params)
    fail(f"after the step the parameters differ from a reference step (by up to {diff:.3g}): "
         "zero the gradients, forward, loss, backward, clip, then opt.step(), once each")


check_train_step.mistakes = TRAIN_STEP_MISTAKES
check_train_step.reference = _train_step_ref


# --------------------------------------------------------------------------- one cached step

PAIR = "return a pair (logits, caches): the next-token logits and the updated caches"
CACHE_TYPE = ("the second item must be the caches, a list of {L} attnlib.KVCache (one per layer), "
              "got {kind}")
WHOLE_SEQUENCE = (
    "your caches grew by {T} positions, not by one: you ran the whole sequence through the model "
    "again, so the prompt's keys and values are now in the cache twice. Run only the new token, "
    "ids[:, -1:]: the cache already holds the others")
NOT_UPDATED = (
    "your caches still hold the {n} positions of the prompt: the new token's keys and values were "
    "not added. Give layer i's attention its cache (kv_cache=caches[i]), which appends them, and "
    "return the caches")
SAME_CACHE = (
    "you gave every layer the first layer's cache (it grew by {L} positions, the others by none): "
    "layer i's attention takes caches[i]")
FRESH_CACHES = (
    "your caches hold the new token only: you started from empty caches, so the new token saw "
    "none of the prompt. Use the caches you were given; they hold the prompt's keys and values")
POSITION_0 = (
    "the new token got the position embedding of position 0: it sits at position T - 1, right "
    "after the T - 1 positions in the cache. Pass that as start: model.embed(ids[:, -1:], "
    "len(caches[0]))")
POSITION_T = (
    "the new token's position is off by one: positions count from 0, so the last of T tokens is "
    "at position T - 1 = len(caches[0]), not T")
TOP_LEFT = (
    "your new token attends to the first position only: the causal mask is aligned top-left "
    "(like torch.ones(1, T).tril()). The one query is the LAST position, so it may see every "
    "key: use is_causal=True (attnlib aligns it lower-right), or no mask")
NO_FINAL_LN = "you left out the final LayerNorm: the logits are model.unembed(model.ln_f(x))"
NO_MLP = "you skipped the MLPs: after attention, each block adds block.mlp(block.ln_2(x))"
RECOMPUTED = (
    "your step ran the model on all {T} tokens again: the logits are right, but the point of the "
    "cache is that a step computes the new token only. Run the model's parts on ids[:, -1:] with "
    "the caches")


def _cached_step_ref(model, ids, caches):
    logits, _ = model(ids[:, -1:], kv_cache=caches)  # (B, 1, vocab_size)
    return logits[:, -1], caches


def _by_parts(model, ids, caches, *, position="cached", top_left=False, final_ln=True, mlp=True,
              whole=False, fresh=False, same=False):
    """One decoding step from the model's parts; the keywords make the known mistakes."""
    from ..multihead import KVCache
    new = ids if whole else ids[:, -1:]
    start = {"cached": len(caches[0]), "zero": 0, "T": ids.shape[1]}[position]
    if fresh:
        caches = [KVCache() for _ in model.blocks]
    x = model.embed(new, start)
    for i, block in enumerate(model.blocks):
        cache = caches[0] if same else caches[i]
        h = block.ln_1(x)
        if top_left:
            keep = torch.ones(new.shape[1], len(cache) + new.shape[1], dtype=torch.bool).tril()
            x = x + block.attn(h, mask=keep.to(ids.device), kv_cache=cache)
        else:
            x = x + block.attn(h, is_causal=True, kv_cache=cache)
        if mlp:
            x = x + block.mlp(block.ln_2(x))
    if final_ln:
        x = model.ln_f(x)
    return model.unembed(x)[:, -1], caches


def _parts(**how):
    def cached_step(model, ids, caches):
        return _by_parts(model, ids, caches, **how)
    return cached_step


def _recomputed(model, ids, caches):
    return model(ids)[0][:, -1], caches


def _rebuilt(model, ids, caches):
    from ..multihead import KVCache
    fresh = [KVCache() for _ in model.blocks]
    return model(ids, kv_cache=fresh)[0][:, -1], fresh


#: every known mistake, with its message (the tests run each one through the checker)
CACHED_STEP_MISTAKES = [
    Mistake("whole", _parts(whole=True), shows="you ran the whole sequence"),
    Mistake("not updated", _recomputed, shows="the new token's keys and values were not added"),
    Mistake("same cache", _parts(same=True), shows="you gave every layer the first layer's cache"),
    Mistake(FRESH_CACHES, _parts(fresh=True)),
    Mistake(POSITION_0, _parts(position="zero")),
    Mistake(POSITION_T, _parts(position="T")),
    Mistake(TOP_LEFT, _parts(top_left=True)),
    Mistake(NO_FINAL_LN, _parts(final_ln=False)),
    Mistake(NO_MLP, _parts(mlp=False)),
    Mistake("recomputed", _rebuilt, shows="ran the model on all"),
    Mistake(PAIR, lambda model, ids, caches: _cached_step_ref(model, ids, caches)[0]),
]
_VALUE_MISTAKES = [m for m in CACHED_STEP_MISTAKES
                   if m.message in (POSITION_0, POSITION_T, TOP_LEFT, NO_FINAL_LN, NO_MLP)]


def _cache_cases():
    """(name, config, batch, T, seed): a fresh seeded model and prompt for each case."""
    from ..decoder import DecoderConfig
    base = DecoderConfig(vocab_size=23, context_len=24, d_model=16, n_layers=2, n_heads=2)
    return [
        ("2 layers of 2 heads, batch 2, 6 tokens", base, 2, 6, 80),
        ("3 layers of 4 heads, d_model 24, one sequence of 9 tokens",
         base.replace(d_model=24, n_layers=3, n_heads=4), 1, 9, 81),
        ("4 query heads sharing 1 key/value head, batch 3, 4 tokens",
         base.replace(n_heads=4, n_kv_heads=1), 3, 4, 82),
        ("1 layer, batch 2, 2 tokens (one of them in the cache)", base.replace(n_layers=1), 2,
         2, 83),
    ]


def _cache_model(cfg, seed):
    """A seeded decoder whose every piece matters: larger weights than at initialisation."""
    from ..decoder import Decoder
    seed_cpu(seed)
    return make_every_piece_matter(Decoder(cfg).eval(), vector_spread=0.3)


def _prompt_caches(model, ids):
    """One KVCache per layer, holding the keys and values of ids[:, :-1]."""
    from ..multihead import KVCache
    caches = [KVCache() for _ in model.blocks]
    with torch.no_grad():
        model(ids[:, :-1], kv_cache=caches)
    return caches


def _step_output(out, L: int, B: int, T: int, V: int):
    """The reader's (logits (B, V), caches) after the checks of their form."""
    if out is None:
        fail("your function returned None - is the TODO still open, or is a `return` missing?")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(PAIR)
    logits, caches = out
    _check_step_caches(caches, L, T)
    return _step_logits(logits, B, T, V), caches


def _check_step_caches(caches, L: int, T: int) -> None:
    """One KVCache per layer, each holding the T positions of ids (known wrong counts named)."""
    from ..multihead import KVCache
    if not isinstance(caches, (list, tuple)) or len(caches) != L or not all(
            isinstance(c, KVCache) for c in caches):
        kind = type(caches).__name__
        if isinstance(caches, (list, tuple)):
            kind += f" of {len(caches)} items"
        fail(CACHE_TYPE.format(L=L, kind=kind))
    lengths = [len(c) for c in caches]
    if len(set(lengths)) > 1:
        if lengths[0] == T - 1 + L and all(n == T - 1 for n in lengths[1:]):
            fail(SAME_CACHE.format(L=L))
        fail(f"your layers' caches hold different numbers of positions {lengths}: each layer's "
             "attention appends the new token to its own cache, caches[i]")
    n = lengths[0]
    if n == 2 * T - 1:
        fail(WHOLE_SEQUENCE.format(T=T))
    if n == T - 1:
        fail(NOT_UPDATED.format(n=n))
    if n == 1 and T > 2:
        fail(FRESH_CACHES)
    if n != T:
        fail(f"your caches hold {n} positions; after the step they hold all {T} tokens of ids "
             f"(the prompt's {T - 1} and the new one)")


def _step_logits(logits, B: int, T: int, V: int) -> torch.Tensor:
    """The new position's logits as a (B, V) tensor ((B, 1, V) is accepted)."""
    logits = tensor_output(logits, what="your logits")
    if tuple(logits.shape) == (B, 1, V):
        logits = logits[:, 0]
    if tuple(logits.shape) == (B, T, V):
        fail(f"your logits have shape {(B, T, V)}, one row per position of ids: the step predicts "
             "one token, so return the new position's logits, (B, vocab_size)")
    if tuple(logits.shape) != (B, V):
        fail(f"expected logits of shape (B, vocab_size) = {(B, V)}, got {tuple(logits.shape)}")
    return logits


def _diagnose_step_logits(model, ids, logits, want) -> None:
    """Name the known mistake whose logits the reader's match, else say by how much they differ
    from a full run (always fails)."""
    for m in _VALUE_MISTAKES:
        with torch.no_grad():
            try:
                wrong = m.fn(model, ids, _prompt_caches(model, ids))[0]
            except Exception:  # a mistake that cannot run here matches nothing
                continue
        if close(logits, wrong, atol=1e-4, rtol=1e-4):
            fail(m.message)
    diff = (logits.double() - want.double()).abs().max().item()
    fail(f"your logits differ from a full run of the model on ids (by up to "
         f"{diff:.3g}): the new token needs its own position, every layer's "
         "cache, and the final LayerNorm")


def _check_cache_contents(caches, full) -> None:
    """Each layer's cache holds the keys and values of a full run on ids."""
    for i, (c, r) in enumerate(zip(caches, full, strict=True)):
        if not (close(c.k, r.k, atol=1e-4, rtol=1e-4)
                and close(c.v, r.v, atol=1e-4, rtol=1e-4)):
            fail(f"the logits are right, but layer {i}'s cache holds other keys or "
                 "values than a full run on ids: let each layer's attention update "
                 "its own cache (kv_cache=caches[i])")


def check_cached_step(fn):
    """Check fn(model, ids, caches) -> (logits, caches): one decoding step with the KV cache.

    ``ids`` (B, T) are the tokens so far and ``caches`` (one attnlib.KVCache per layer) hold the
    keys and values of the first T - 1; the step runs the last token only and returns its
    next-token logits (B, vocab_size) and the caches, now holding T positions. Judged on four
    seeded models (one with grouped-query attention) against a full run of the model on ``ids``.
    """
    from ..multihead import KVCache

    def body() -> int:
        for name, cfg, B, T, seed in _cache_cases():
            with case(name):
                model = _cache_model(cfg, seed)
                g = torch.Generator().manual_seed(seed)
                ids = torch.randint(cfg.vocab_size, (B, T), generator=g)
                with torch.no_grad():
                    want = model(ids)[0][:, -1]  # full recomputation
                    full = [KVCache() for _ in model.blocks]
                    model(ids, kv_cache=full)  # the keys and values of every position
                given = _prompt_caches(model, ids)
                widths: list[int] = []
                hooks = [m.register_forward_pre_hook(
                    lambda mod, args, widths=widths: widths.append(args[0].shape[-2]))
                    for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
                try:
                    with torch.no_grad():
                        out = call(fn, model, ids, given,
                                   hint="fn(model, ids, caches) returns (logits, caches)")
                finally:
                    for h in hooks:
                        h.remove()
                logits, caches = _step_output(out, cfg.n_layers, B, T, cfg.vocab_size)
                if not close(logits, want, atol=1e-4, rtol=1e-4):
                    _diagnose_step_logits(model, ids, logits, want)
                _check_cache_contents(caches, full)
                if max(widths, default=1) > 1:
                    fail(RECOMPUTED.format(T=max(widths)))
        return len(_cache_cases())

    return run_check("cached decoding step", body)  # which keeps the reader's RNG state


check_cached_step.mistakes = CACHED_STEP_MISTAKES
check_cached_step.reference = _cached_step_ref

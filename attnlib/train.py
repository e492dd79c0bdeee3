"""A small training loop for next-token prediction (and any model that returns ``(logits, loss)``)."""

from __future__ import annotations

import inspect
import math
import multiprocessing
import os
import pickle
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import _validate as V

__all__ = ["seed_everything", "get_batch", "TrainHistory", "train", "map_seeds", "save_checkpoint",
           "load_checkpoint"]


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed torch's global generators and return a fresh ``torch.Generator`` seeded the same.
    ``seed``: an int in [0, 2**64) (torch's seeds are 64-bit)."""
    seed = V.seed("seed_everything", "seed", seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def get_batch(data: torch.Tensor, batch_size: int, context_len: int, generator=None, device=None):
    """Random windows of a 1-D token stream: x (B, T) and y = x shifted left by one (B, T).

    Every position of every window is a training example: predict token t+1 from tokens <= t.
    """
    batch_size = V.positive_int("get_batch", "batch_size", batch_size)
    context_len = V.positive_int("get_batch", "context_len", context_len)
    integer = isinstance(data, torch.Tensor) and not (data.is_floating_point() or data.is_complex()
                                                      or data.dtype is torch.bool)
    if not integer:
        raise TypeError(
            f"get_batch: data must be a 1-D integer (long) tensor of token ids, got {V.describe(data)}"
            + ("; use torch.tensor(data)" if isinstance(data, (list, tuple)) else "")
        )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"get_batch: generator must be a torch.Generator or None, got {V.describe(generator)}"
        )
    V.device("get_batch", "device", device)
    if data.ndim != 1 or len(data) <= context_len:
        raise ValueError(
            f"get_batch: data must be a 1-D token stream longer than context_len={context_len}, "
            f"got shape {tuple(data.shape)}"
        )
    starts = torch.randint(len(data) - context_len, (batch_size,), generator=generator)
    x = torch.stack([data[s:s + context_len] for s in starts.tolist()])
    y = torch.stack([data[s + 1:s + 1 + context_len] for s in starts.tolist()])
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


@dataclass
class TrainHistory:
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


def _loss(model, batch_fn, name: str) -> torch.Tensor:
    """The loss of ``model(*batch_fn())``, with a clear error when ``batch_fn`` (called ``name``)
    returns no tuple of arguments or the model no ``(logits, loss)`` pair."""
    batch = batch_fn()
    if not isinstance(batch, (tuple, list)):
        raise TypeError(
            f"train: {name} must return a tuple of the model's arguments, e.g. (x, y), got "
            f"{V.describe(batch)}"
        )
    out = model(*batch)
    if not isinstance(out, (tuple, list)) or len(out) < 2:
        raise TypeError(f"train: the model must return (logits, loss, ...), got {V.describe(out)}")
    loss = out[1]
    if loss is None:
        got = ", ".join(V.describe(b) for b in batch) or "nothing"
        raise ValueError(
            f"train: {name} must return the model's inputs and targets, e.g. (x, y), so that the model "
            f"computes a loss; it returned {len(batch)} item(s): {got}"
        )
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        raise ValueError(
            f"train: the model's loss (its second output) must be a scalar tensor, got {V.describe(loss)}"
        )
    return loss


@torch.no_grad()
def _evaluate(model, batch_fn, n_batches: int) -> float:
    was = model.training
    model.eval()
    losses = [_loss(model, batch_fn, "val_batch_fn").item() for _ in range(n_batches)]
    model.train(was)
    return sum(losses) / len(losses)


def _check_train_args(model, batch_fn, steps, lr, weight_decay, val_batch_fn, eval_every, eval_batches,
                      grad_clip, warmup, autocast_dtype) -> None:
    """train's arguments, checked before the optimizer is built or the model touched."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"train: model must be a torch.nn.Module, got {V.describe(model)}")
    if next(model.parameters(), None) is None:
        raise ValueError("train: model has no parameters to train")
    if not callable(batch_fn):
        raise TypeError(
            f"train: batch_fn must be a callable that returns a batch, got {V.describe(batch_fn)}"
        )
    if val_batch_fn is not None and not callable(val_batch_fn):
        raise TypeError(f"train: val_batch_fn must be a callable or None, got {V.describe(val_batch_fn)}")
    V.positive_int("train", "steps", steps)
    V.finite_float("train", "lr", lr, low=0.0, low_open=True)
    V.finite_float("train", "weight_decay", weight_decay, low=0.0)
    V.positive_int("train", "eval_every", eval_every)
    V.positive_int("train", "eval_batches", eval_batches)
    V.nonneg_int("train", "warmup", warmup)
    if grad_clip is not None:
        clip = V.real("train", "grad_clip", grad_clip)
        if not (math.isfinite(clip) and clip > 0):  # -1 would flip every gradient, 0 zero them
            raise ValueError(
                f"train: grad_clip must be None (no clipping) or a finite number > 0, got {grad_clip!r}"
            )
    if autocast_dtype is not None and not isinstance(autocast_dtype, torch.dtype):
        raise TypeError(
            "train: autocast_dtype must be a torch.dtype (e.g. torch.bfloat16) or None, got "
            f"{V.describe(autocast_dtype)}"
        )
    if autocast_dtype is not None and autocast_dtype not in _AUTOCAST_DTYPES:
        raise ValueError(  # autocast would warn and switch itself off (CPU) or compute in that dtype
            "train: autocast_dtype must be torch.float16 or torch.bfloat16 (the dtypes autocast "
            f"computes in) or None (no autocast), got {autocast_dtype}"
        )


_AUTOCAST_DTYPES = (torch.float16, torch.bfloat16)


def train(model: torch.nn.Module, batch_fn: Callable, steps: int, *, lr: float = 3e-3,
          weight_decay: float = 0.01, val_batch_fn: Callable | None = None, eval_every: int = 50,
          eval_batches: int = 4, grad_clip: float | None = 1.0, warmup: int = 0,
          autocast_dtype: torch.dtype | None = None, progress: bool = True,
          stop: Callable[[int], bool] | None = None) -> TrainHistory:
    """AdamW on ``model(*batch_fn())[1]`` for ``steps`` steps; returns the loss history.

    ``batch_fn()`` returns the arguments of one forward call, e.g. ``(x, y)``. The learning rate
    warms up linearly for ``warmup`` steps, then decays along a cosine to lr/10. ``autocast_dtype``
    (e.g. torch.bfloat16 on a GPU) runs the forward pass under autocast.

    ``stop(step)``, if given, is called after every ``eval_every``-th step (with the model in eval
    mode and gradients off) and ends the training early when it returns True, for example once
    a score on held-out data is good enough; ``steps`` is then the most it may take, and
    ``history.steps[-1]`` the last step run. The validation loss is also measured at that step.

    A loss that is NaN or infinite stops the training with a ``FloatingPointError`` naming the
    step, before that step changes the parameters.
    """
    if stop is not None and not callable(stop):
        raise TypeError(f"train: stop must be a callable or None, got {type(stop).__name__}")
    V.flags("train", progress=progress)  # "no" would be read as yes
    _check_train_args(model, batch_fn, steps, lr, weight_decay, val_batch_fn, eval_every, eval_batches,
                      grad_clip, warmup, autocast_dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps, warmup))
    device_type = next(model.parameters()).device.type
    hist = TrainHistory()
    model.train()
    bar = tqdm(range(steps), disable=not progress, desc="training")
    try:
        for step in bar:
            with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                loss = _loss(model, batch_fn, "batch_fn")
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"train: the loss is {value} at step {step} (of {steps}); training stopped before "
                    "that step changed the parameters (a smaller lr, warmup or grad_clip may help)"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            sched.step()
            hist.steps.append(step)
            hist.train_loss.append(value)
            stopping = stop is not None and (step + 1) % eval_every == 0 and _ask(model, stop, step)
            if val_batch_fn is not None and (step % eval_every == 0 or step == steps - 1 or stopping):
                hist.eval_steps.append(step)
                hist.val_loss.append(_evaluate(model, val_batch_fn, eval_batches))
                bar.set_postfix(train=f"{hist.train_loss[-1]:.3f}", val=f"{hist.val_loss[-1]:.3f}")
            if stopping:
                break
    finally:
        bar.close()
        model.eval()
    return hist


_SEED_FN: Callable | None = None  # the function map_seeds' forked workers call (inherited, not pickled)


def _call_seed_fn(seed):
    return _SEED_FN(seed)


def map_seeds(fn: Callable, seeds, *, device=None, processes: int | None = None) -> list:
    """``[fn(seed) for seed in seeds]``, with the seeds run side by side where that is safe.

    A small model trains on one CPU core (``torch.set_num_threads(1)``), so on a machine with
    several cores independent training runs can go at the same time. On Linux, with the CPU as the
    ``device`` (None means the CPU), torch set to one thread, and more than one core and seed, each
    seed runs in a forked worker process: a copy of this one (one thread too), so ``fn`` may be a
    notebook's function (even a closure) that reads its variables. Everywhere else (a GPU, which a
    forked process cannot use; torch on several threads, whose OpenMP runtime may hang in a forked
    copy; macOS or Windows; one core) the seeds run one after another here. Either way the results are the same, in the order of ``seeds``; ``fn`` must return
    something picklable (numbers, lists, tensors), and an exception in a worker is raised here.
    ``processes`` caps the workers (default: one per seed, at most one per core).
    """
    if not callable(fn):
        raise TypeError(f"map_seeds: fn must be a function of the seed, got {V.describe(fn)}")
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"map_seeds: seeds must be a list of ints, got {V.describe(seeds)}")
    seeds = list(seeds)
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise TypeError(f"map_seeds: seeds must be ints, got {seeds!r}")
    device = V.device("map_seeds", "device", device)
    cores = os.cpu_count() or 1
    n = min(len(seeds), cores) if processes is None else V.positive_int("map_seeds", "processes", processes)
    on_cpu = device is None or device.type == "cpu"
    # a forked copy of a multi-threaded OpenMP runtime can hang, so only a one-thread torch forks
    single = torch.get_num_threads() == 1
    if n < 2 or len(seeds) < 2 or not (on_cpu and single) or sys.platform != "linux" or torch.cuda.is_initialized():
        return [fn(s) for s in seeds]
    global _SEED_FN
    _SEED_FN = fn
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(n) as pool:
            return pool.map(_call_seed_fn, seeds)
    finally:
        _SEED_FN = None


@torch.no_grad()
def _ask(model, stop, step: int) -> bool:
    was = model.training
    model.eval()
    answer = bool(stop(step))
    model.train(was)
    return answer


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def save_checkpoint(model: torch.nn.Module, path) -> None:
    """Save the weights and the config (as a plain dict) of an attnlib model to the file ``path``
    (a str or a pathlib.Path, in a folder that exists)."""
    if not isinstance(model, torch.nn.Module) or not is_dataclass(getattr(model, "config", None)):
        raise TypeError(
            "save_checkpoint: model must be an attnlib model with a dataclass config (a Decoder, an "
            f"Encoder, a Seq2Seq), got {V.describe(model)}; for other modules save model.state_dict()"
        )
    _check_file("save_checkpoint", path, "write")
    if not hasattr(path, "write"):
        file = Path(path)
        if file.is_dir():
            raise ValueError(f"save_checkpoint: path must be a file, got the folder {str(path)!r}; add a "
                             f"file name, e.g. {str(file / 'model.pt')!r}")
        if not file.parent.is_dir():
            raise ValueError(f"save_checkpoint: the folder of path {str(path)!r} does not exist; create it "
                             "first, e.g. Path(path).parent.mkdir(parents=True)")
    torch.save({"config": asdict(model.config), "state_dict": model.state_dict()}, path)


def _check_file(who: str, path, use: str) -> None:
    """A checkpoint's file: a str or an os.PathLike (a pathlib.Path), or an open binary file."""
    if not (isinstance(path, (str, os.PathLike)) or callable(getattr(path, use, None))):
        raise TypeError(f"{who}: path must be a file name (a str or a pathlib.Path), got {V.describe(path)}")


def load_checkpoint(path, cls=None, map_location="cpu"):
    """Rebuild a model saved by ``save_checkpoint``; loads with ``weights_only=True`` (no pickled code).

    ``cls``: the model's class, built as ``cls(config)`` from a DecoderConfig: ``attnlib.Decoder``
    when None (``attnlib.Encoder`` and ``attnlib.translation.Seq2Seq`` files need theirs);
    ``map_location``: where the weights go (a device name or torch.device, or what ``torch.load``
    takes: a dict or a function). The file's config and weights are checked before the model is built."""
    from .decoder import Decoder

    _check_file("load_checkpoint", path, "read")
    _check_model_class(cls)
    if not (isinstance(map_location, dict) or callable(map_location)):
        V.device("load_checkpoint", "map_location", map_location)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as err:  # not a file torch.save wrote, or one of code
        raise ValueError(
            f"load_checkpoint: {path} is not a checkpoint that save_checkpoint wrote: torch.load with "
            "weights_only=True (tensors and plain data only, never pickled code) could not read it; "
            "a whole model saved with torch.save(model) is refused on purpose"
        ) from err
    if not isinstance(ckpt, dict) or "config" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(
            f"load_checkpoint: {path} holds {_holds(ckpt)}, not what save_checkpoint writes "
            "({'config': the model's config as a dict, 'state_dict': its weights}); to load a plain "
            "state dict, build the model and call model.load_state_dict(torch.load(path))"
        )
    config = _saved_config(path, ckpt["config"])
    state_dict = _saved_weights(path, ckpt["state_dict"])
    _check_class(path, state_dict, cls or Decoder, cls is None)
    _check_fit(path, cls or Decoder, config, state_dict)
    model = (cls or Decoder)(config)
    model.load_state_dict(state_dict)
    return model


def _check_model_class(cls) -> None:
    """load_checkpoint's ``cls``: None or a torch.nn.Module class that is built from one config."""
    if cls is None:
        return
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise TypeError("load_checkpoint: cls must be a model class such as attnlib.Decoder (the default, "
                        f"None), attnlib.Encoder or attnlib.translation.Seq2Seq, got {V.describe(cls)}")
    try:
        inspect.signature(cls).bind(None)
    except TypeError:
        needs = [p.name for p in inspect.signature(cls).parameters.values()
                 if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        raise TypeError(f"load_checkpoint: cls must be a model class built from a DecoderConfig, as cls(config) "
                        f"(attnlib.Decoder, attnlib.Encoder, attnlib.translation.Seq2Seq), got {cls.__name__}, "
                        f"which is built from ({', '.join(needs)})") from None
    except ValueError:  # no signature to read: the class's own call judges
        pass


def _saved_config(path, config):
    """The DecoderConfig of a checkpoint's config dict, or a ValueError that names the file."""
    from .decoder import DecoderConfig

    if not isinstance(config, Mapping):
        raise ValueError(f"load_checkpoint: {path} holds a config that is {V.describe(config)}, not a dict of "
                         "DecoderConfig's fields (what save_checkpoint writes)")
    known = [f.name for f in fields(DecoderConfig) if f.init]
    unknown = [k for k in config if k not in known]
    if unknown:
        raise ValueError(f"load_checkpoint: the config in {path} has the key {unknown[0]!r}, which is not a field "
                         f"of DecoderConfig (its fields are {known}); was the file saved by another version "
                         "of attnlib?")
    try:
        return DecoderConfig(**config)
    except (TypeError, ValueError) as err:
        raise ValueError(f"load_checkpoint: the config in {path} is not a valid DecoderConfig: {err}") from None


def _saved_weights(path, state_dict) -> Mapping:
    """A checkpoint's state_dict: a non-empty dict of weights."""
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"load_checkpoint: {path} holds a state_dict that is {V.describe(state_dict)}, not a "
                         "dict of the model's weights (what save_checkpoint writes)")
    if not state_dict:
        raise ValueError(f"load_checkpoint: {path} holds a config and an empty state_dict (no weights), not "
                         "a saved model")
    return state_dict


def _check_fit(path, cls: type, config, state_dict: Mapping) -> None:
    """The file's weights are those of ``cls(config)``: the same names and shapes, checked with a
    copy built on the meta device (no memory, no draw from the random generators) before the real
    model is built. The copy loads them as the model would, so the model's own conversions of older
    layouts (separate q_proj, k_proj and v_proj, concatenated by MultiHeadAttention) apply."""
    try:
        with torch.device("meta"):
            model = cls(config)
    except Exception:  # a class that cannot be built on the meta device: load_state_dict judges
        return
    want = {k: tuple(v.shape) for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    resized = [k for k in want if k in state_dict and isinstance(state_dict[k], torch.Tensor)
               and tuple(state_dict[k].shape) != want[k]]
    missing, extra = _names_that_do_not_fit(path, cls, model, state_dict) if not resized else ([], [])
    problems = []
    if missing:
        problems.append(f"the file lacks weights of the model ({len(missing)} of {len(want)}, first {missing[0]!r})")
    if extra:
        problems.append(f"the file has weights the model does not have ({len(extra)}, first {extra[0]!r})")
    if resized:
        k = resized[0]
        problems.append(f"weights of another shape ({len(resized)}, first {k!r}: {tuple(state_dict[k].shape)} "
                        f"in the file, {want[k]} in the model)")
    if problems:
        raise ValueError(f"load_checkpoint: the weights in {path} do not fit the {cls.__name__} its config "
                         f"describes: {'; '.join(problems)}")


def _names_that_do_not_fit(path, cls: type, meta_model, state_dict: Mapping) -> tuple[list, list]:
    """(missing, unexpected) weight names once ``meta_model`` has loaded ``state_dict`` its own way."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "copying into a meta parameter is a no-op": the point here
        try:
            result = meta_model.load_state_dict(dict(state_dict), strict=False)
        except RuntimeError as err:  # a shape that only the model's conversion of an old layout sees
            raise ValueError(f"load_checkpoint: the weights in {path} do not fit the {cls.__name__} its "
                             f"config describes: {str(err).strip().splitlines()[-1].strip()}") from None
    return list(result.missing_keys), list(result.unexpected_keys)


def _attnlib_models() -> dict[str, type]:
    """attnlib's models that save_checkpoint saves, by the name a reader imports them under."""
    from .decoder import Decoder, Encoder
    from .translation import Seq2Seq

    return {"attnlib.Decoder": Decoder, "attnlib.Encoder": Encoder, "attnlib.translation.Seq2Seq": Seq2Seq}


# The first parts of the weights' names of each model: a checkpoint does not record its class, its
# weights' names tell it (a Seq2Seq's are its encoder's and decoder's; only a Decoder has an unembed).
_WEIGHT_GROUPS = {
    frozenset(("encoder", "decoder")): "attnlib.translation.Seq2Seq",
    frozenset(("embed", "blocks", "ln_f", "unembed")): "attnlib.Decoder",
    frozenset(("embed", "blocks", "ln_f")): "attnlib.Encoder",
}


def _check_class(path, state_dict, want: type, default: bool) -> None:
    """The checkpoint holds a model of class ``want`` (or ``want`` is none of attnlib's models, and
    its load_state_dict judges), checked before the model is built (building draws its random init)."""
    models = _attnlib_models()
    held = _WEIGHT_GROUPS.get(frozenset(str(name).split(".", 1)[0] for name in state_dict))
    if held is None or not issubclass(want, tuple(models.values())) or issubclass(want, models[held]):
        return
    name, asked = held.rsplit(".", 1)[1], f"{want.__name__}{' (the default)' if default else ''}"
    raise ValueError(f"load_checkpoint: {path} holds {'an' if name[0] in 'AEIOU' else 'a'} {name} (the names "
                     f"of its weights say so), but cls is {asked}; pass cls={held}")


def _holds(ckpt) -> str:
    """What a loaded file holds, for load_checkpoint's error."""
    if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return f"a plain state dict ({len(ckpt)} tensors, no 'config')"
    if isinstance(ckpt, dict):
        keys = sorted(map(str, ckpt))
        return f"a dict with keys {keys[:6]}{' ...' if len(keys) > 6 else ''}"
    return V.describe(ckpt)

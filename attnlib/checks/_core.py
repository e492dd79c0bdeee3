"""Shared machinery for the exercise checkers (``attnlib.checks``).

A checker runs the reader's function on a few named cases, compares each answer with attnlib's
reference, and prints one line: ``✓ title: all N cases passed`` or ``✗ title: <diagnosis>``. It
returns True or False and never raises because of the reader's code. The pieces:

* :class:`CheckFailure` / :func:`fail` - a diagnosed mistake; its message is what the reader reads.
* :func:`run_check` - runs a checker's body, prints the verdict, returns True/False.
* :func:`call` - calls the reader's function on copies of the inputs and turns its exceptions
  into readable failures (``NotImplementedError`` -> "not implemented yet: fill in the TODO").
* :func:`tensor_output` - insists on a ``torch.Tensor`` (names None, numpy arrays, tuples, ...).
* :func:`close`, :func:`compare`, :func:`diagnose` - compare with a tolerance and, on a mismatch,
  name the mistake by finding which *known wrong variant* of the reference the answer matches.
* :class:`Case`, :func:`run_cases` - the common loop over named cases.
* :func:`case` - a context manager that prefixes failures with the case's name.

A new checker module typically looks like::

    from ._core import Case, fail, run_cases, run_check

    __all__ = ["check_double"]

    def check_double(fn) -> bool:
        def body():
            x = torch.arange(3.0)
            return run_cases(fn, [Case("small", (x,), 2 * x, mistakes=[("you squared x", x**2)])])
        return run_check("double", body)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

import torch

__all__: list[str] = []  # nothing here is for the reader: checkers import these names directly

PASS_MARK = "✓"
FAIL_MARK = "✗"
NOT_IMPLEMENTED = (
    "not implemented yet: fill in the TODO (replace `raise NotImplementedError` with your code), "
    "then run this cell again"
)


class CheckFailure(Exception):
    """A mistake found in the reader's answer; ``str(err)`` is the diagnosis shown to the reader."""


class NotImplementedYet(CheckFailure):
    """The reader's stub still raises NotImplementedError (shown without a case name)."""


def fail(message: str) -> NoReturn:
    """Stop the current check with a diagnosis."""
    raise CheckFailure(message)


@contextmanager
def case(name: str):
    """Prefix any failure raised inside the block with ``case 'name'`` (except "not implemented")."""
    try:
        yield
    except NotImplementedYet:
        raise
    except CheckFailure as err:
        raise CheckFailure(f"case {name!r}: {err}") from None


def run_check(title: str, body: Callable[[], int], unit: str = "cases") -> bool:
    """Run ``body`` (which returns the number of cases it checked) and print the verdict.

    A :class:`CheckFailure` prints ``✗ title: diagnosis``; any other exception (reader code run
    outside :func:`call`, or a bug in the checker) is reported too, never raised.
    """
    try:
        n = body()
    except CheckFailure as err:
        print(f"{FAIL_MARK} {title}: {err}")
        return False
    except Exception as err:  # noqa: BLE001 - a checker must never raise on the reader's code
        print(f"{FAIL_MARK} {title}: the check stopped on an unexpected {type(err).__name__}: {err}")
        return False
    print(f"{PASS_MARK} {title}: all {n} {unit} passed")
    return True


# --------------------------------------------------------------------------- calling reader code


def _auto_hint(err: Exception) -> str:
    """A hint for exception messages that have a usual cause."""
    msg = str(err)
    if "without overflow" in msg and "Half" in msg:
        return (
            "a constant such as -1e9 does not fit in float16 (its largest magnitude is 65504); "
            "fill masked scores with float('-inf') or torch.finfo(scores.dtype).min instead"
        )
    if "unexpected keyword argument" in msg or "positional argument" in msg:
        return "give your function exactly the signature the exercise shows (names and defaults)"
    if "same device" in msg:
        return (
            "the checker passes CPU tensors: build any tensor you create inside the function on "
            "the inputs' device, e.g. torch.ones(..., device=q.device)"
        )
    if "return_types.max" in msg or "return_types.min" in msg:
        return (
            "x.max(dim=...) returns a pair (values, indices): use x.amax(dim=-1, keepdim=True), "
            "or x.max(dim=-1, keepdim=True).values"
        )
    if "Boolean value of Tensor" in msg:
        return "to test for a missing mask write `if mask is not None:`, not `if mask:`"
    if "Dimension out of range" in msg:
        return (
            "you used a dim the input does not have; count dims from the end (dim=-1 is the last) "
            "so the code works with any number of batch dims"
        )
    return ""


def _is_shape_error(err: Exception) -> bool:
    msg = str(err)
    return any(s in msg for s in ("cannot be multiplied", "must match the size", "size of tensor"))


def _copy(x: Any) -> Any:
    """A copy the reader's code may change in place without spoiling the checker's data."""
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, (list, tuple, dict)):
        return copy.deepcopy(x)
    return x


def call(fn: Callable, *args: Any, hint: str = "", **kwargs: Any) -> Any:
    """Call the reader's ``fn`` on copies of the arguments; turn any exception into a failure.

    ``hint`` is shown under the exception unless the exception has a better-known cause.
    """
    if not callable(fn):
        fail(f"expected a function, got {type(fn).__name__}: pass the function itself, without ()")
    try:
        return fn(*[_copy(a) for a in args], **{k: _copy(v) for k, v in kwargs.items()})
    except CheckFailure:
        raise
    except NotImplementedError:
        raise NotImplementedYet(NOT_IMPLEMENTED) from None
    except Exception as err:  # noqa: BLE001 - the reader's exception becomes a diagnosis
        text = f"your code raised {type(err).__name__}: {err}"
        # a hint for a well-known cause first, then the checker's own, then a generic one
        if not hint and _is_shape_error(err):
            hint = "a shape does not line up; print the shapes of your intermediate tensors"
        hint = _auto_hint(err) or hint
        fail(f"{text}\n  hint: {hint}" if hint else text)


def tensor_output(out: Any, *, what: str = "your function", verb: str = "returned",
                  allow_tuple: bool = False) -> torch.Tensor:
    """Return ``out`` as a detached CPU tensor, or fail with a message naming what came back.

    With ``allow_tuple``, a tuple or list whose first item is a tensor (e.g. ``(output, weights)``)
    is accepted and its first item used. Messages read ``f"{what} {verb} None"``.
    """
    if allow_tuple and isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        out = out[0]
    if out is None:
        fail(f"{what} {verb} None - is the TODO still open, or is a `return` missing?")
    if isinstance(out, torch.Tensor):
        return out.detach().cpu()
    kind = type(out).__module__.split(".")[0] + "." + type(out).__name__
    want = "return a single torch.Tensor" if verb == "returned" else "expected a single torch.Tensor"
    if type(out).__module__.startswith("numpy"):
        fail(f"{what} {verb} a numpy array; {want} (stay in torch throughout)")
    if isinstance(out, (tuple, list)):
        fail(f"{what} {verb} a {type(out).__name__} of {len(out)} items; {want}")
    fail(f"{what} {verb} a {kind}; {want}")


def shape_str(shape: Iterable[int]) -> str:
    """(2, 5, 5) - the way shapes are written in the messages."""
    dims = tuple(int(d) for d in shape)
    return str(dims) if len(dims) != 1 else f"({dims[0]},)"


def expect_shape(out: torch.Tensor, shape: Sequence[int], what: str = "a tensor") -> None:
    """Fail unless ``out`` has exactly ``shape``."""
    if tuple(out.shape) != tuple(shape):
        fail(f"expected {what} of shape {shape_str(shape)}, got {shape_str(out.shape)}")


# --------------------------------------------------------------------------- comparing


def default_tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(atol, rtol) suited to a dtype: loose for half precision."""
    if dtype in (torch.float16, torch.bfloat16):
        return 2e-3, 1e-2
    return 1e-5, 1e-4


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """True when the shapes match and the values agree within tolerance (bools compared exactly)."""
    if not isinstance(actual, torch.Tensor) or tuple(actual.shape) != tuple(expected.shape):
        return False
    if actual.dtype == torch.bool or expected.dtype == torch.bool:
        return bool((actual.bool() == expected.bool()).all()) if actual.dtype == expected.dtype else False
    a = actual.detach().cpu().double()
    e = expected.detach().cpu().double()
    return bool(torch.allclose(a, e, atol=atol, rtol=rtol))


Mistake = tuple[str, Any]  # (diagnosis, wrong output or a zero-argument function computing it)


def diagnose(actual: torch.Tensor, mistakes: Iterable[Mistake], atol: float = 1e-5,
             rtol: float = 1e-4) -> str | None:
    """The diagnosis of the first known wrong variant that ``actual`` matches, else None.

    A variant may be given lazily as a function; one that fails to compute is skipped.
    """
    for message, wrong in mistakes:
        if callable(wrong):
            try:
                wrong = wrong()
            except Exception:  # noqa: BLE001 - a variant that cannot be computed matches nothing
                continue
        if isinstance(wrong, torch.Tensor) and close(actual, wrong, atol, rtol):
            return message
    return None


def compare(actual: torch.Tensor, expected: torch.Tensor, *, mistakes: Iterable[Mistake] = (),
            otherwise: str = "the values are wrong", nonfinite: str | None = None,
            atol: float | None = None, rtol: float | None = None) -> None:
    """Fail unless ``actual`` matches ``expected``; name the mistake when a known variant matches.

    Order of the verdicts: a matching known mistake; a wrong shape; nan/inf values where the
    reference is finite (``nonfinite``, if given, is the diagnosis); ``otherwise`` with the largest
    difference.
    """
    d_atol, d_rtol = default_tolerance(expected.dtype)
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    if close(actual, expected, atol, rtol):
        return
    found = diagnose(actual, mistakes, atol, rtol)
    if found:
        fail(found)
    if tuple(actual.shape) != tuple(expected.shape):
        fail(f"expected a tensor of shape {shape_str(expected.shape)}, got {shape_str(actual.shape)}")
    if expected.dtype == torch.bool or actual.dtype == torch.bool:
        fail(f"{otherwise} (expected a bool tensor, got dtype {actual.dtype})"
             if actual.dtype != expected.dtype else otherwise)
    a = actual.double()
    if not torch.isfinite(a).all() and torch.isfinite(expected.double()).all():
        fail(nonfinite or f"{otherwise}: your output contains nan or inf")
    diff = (a - expected.double()).abs().max().item()
    fail(f"{otherwise} (largest difference from the reference: {diff:.3g})")


@dataclass
class Case:
    """One named input for the reader's function, its expected output and the known mistakes."""

    name: str
    args: tuple
    expected: torch.Tensor
    kwargs: dict = field(default_factory=dict)
    mistakes: Sequence[Mistake] = ()
    otherwise: str = "the values are wrong"
    nonfinite: str | None = None
    atol: float | None = None
    rtol: float | None = None


def run_cases(fn: Callable, cases: Sequence[Case], *, hint: str = "", allow_tuple: bool = False) -> int:
    """Run ``fn`` on every case in order, failing at the first wrong answer; return the count."""
    for c in cases:
        with case(c.name):
            out = tensor_output(call(fn, *c.args, hint=hint, **c.kwargs), allow_tuple=allow_tuple)
            compare(out, c.expected, mistakes=c.mistakes, otherwise=c.otherwise,
                    nonfinite=c.nonfinite, atol=c.atol, rtol=c.rtol)
    return len(cases)


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Seeded standard normal numbers, the same on every machine (generated on the CPU)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)

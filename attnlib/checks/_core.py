"""The one framework under every exercise checker (``attnlib.checks``).

A checker runs the reader's answer on named cases, prints one verdict line,
``✓ title: all N cases passed`` or ``✗ title: <what is wrong, what to look at>``, and returns a
:class:`CheckResult`: truthy when the answer is right, falsy otherwise, and invisible in a notebook
(the cell shows the printed verdict only, no ``True``/``False`` echo). A checker never raises
because of the reader's answer: an exception inside the reader's function becomes a message that
names it.

The pieces, in the order a check uses them:

* :class:`Mistake` - a known mistake as data: the message the reader reads and ``fn``, a wrong
  answer with the reader's own signature. The checker names a mistake when the reader's output
  equals ``fn``'s on the same inputs; the project's tests call the checker on every ``fn`` and
  assert that its own message comes back.
* :func:`call` - calls the reader's function on copies of the inputs and probes them afterwards:
  a function that changed an input in place is named ("your function changed its input `scores`
  in place"; for a module, the parameters that changed); ``NotImplementedError`` reads "not
  implemented yet"; other exceptions are reported with a hint for their usual cause.
* :class:`TensorSpec` / :class:`Case` - a checker for functions that return tensors: for every
  case an output probe (a tensor, not None or numpy), a shape probe with a readable message, a
  causality probe (:class:`Causal`) BEFORE the value comparison for anything causal, a probe for
  an answer hard-coded to one example, then the value comparison and the mistake search.
* :class:`NumberSpec` - a checker for functions that return numbers (parameter, byte, pair
  counts): any ``numbers.Integral``/``numbers.Real`` (numpy scalars and 1-element tensors too) is
  converted by :func:`as_number`; a mistake is named only when its formula gives the reader's
  answer in EVERY case, so a coincidence of one case never names the wrong mistake.
* :func:`run_check`, :func:`fail`, :func:`case`, :func:`compare`, :func:`tensor_output` - the
  building blocks for the few checkers that judge something else (a detector, a designed head).
"""

from __future__ import annotations

import inspect
import math
import numbers
import textwrap
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

import torch

__all__: list[str] = []  # nothing here is for the reader: checkers import these names directly

PASS_MARK = "✓"
LINE_WIDTH = 85  # the book's code column: a longer verdict wraps instead of scrolling sideways
FAIL_MARK = "✗"
NOT_IMPLEMENTED = (
    "not implemented yet: replace the TODO with your code"
)
HARD_CODED = (
    "your function gives the same answer for different inputs: is it hard-coded to the example "
    "above? Compute the answer from the arguments"
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


# --------------------------------------------------------------------------- the verdict


class CheckResult:
    """A checker's verdict: truthy when the answer passed, and silent in IPython and Jupyter.

    The checker has already printed the verdict line, so a notebook cell that ends with a checker
    call shows that line only (``_ipython_display_`` displays nothing). ``bool(r)``, ``if r:``
    and ``assert r`` work as with True/False; ``r.message`` is the diagnosis (or the pass line).
    """

    __slots__ = ("passed", "title", "message")

    def __init__(self, passed: bool, title: str, message: str):
        self.passed = bool(passed)
        self.title = title
        self.message = message

    def __bool__(self) -> bool:
        return self.passed

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CheckResult):
            return self.passed == other.passed and self.message == other.message
        if isinstance(other, bool):
            return self.passed == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    @property
    def line(self) -> str:
        """The printed verdict, ``✓ title: ...`` or ``✗ title: ...``."""
        return f"{PASS_MARK if self.passed else FAIL_MARK} {self.title}: {self.message}"

    def _ipython_display_(self) -> None:
        """Display nothing: the verdict line is already printed above."""

    def __repr__(self) -> str:
        return f"CheckResult(passed={self.passed}, title={self.title!r})"


def _wrap(text: str) -> str:
    """``text`` with each of its lines folded at LINE_WIDTH, continuation lines indented."""
    if not LINE_WIDTH:
        return text
    return "\n".join(
        textwrap.fill(part, LINE_WIDTH, subsequent_indent="  ", break_on_hyphens=False,
                      break_long_words=False, drop_whitespace=True)
        for part in text.split("\n")
    )


def run_check(title: str, body: Callable[[], int], unit: str = "cases") -> CheckResult:
    """Run ``body`` (which returns the number of cases it checked) and print the verdict.

    A :class:`CheckFailure` prints ``✗ title: diagnosis``; any other exception (a bug in the
    checker, or reader code run outside :func:`call`) is reported too, never raised.

    The global random generator is the reader's again afterwards: the cases may seed it (with
    :func:`seed_cpu`) and draw from it (a module's initialisation), and a notebook cell after the
    check must draw the same numbers as without it.
    """
    with torch.random.fork_rng(devices=[]):  # the CPU generator; seed_cpu() touches no other
        try:
            n = body()
        except CheckFailure as err:
            result = CheckResult(False, title, str(err))
        except Exception as err:  # a checker must never raise on the reader's code
            result = CheckResult(False, title,
                                 f"the check stopped on an unexpected {type(err).__name__}: {err}")
        else:
            result = CheckResult(True, title, f"all {n} {unit} passed")
    print(_wrap(result.line))
    return result


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
    if "a leaf Variable that requires grad" in msg:
        return "do not change a tensor that requires grad in place; compute a new tensor instead"
    return ""


def _is_shape_error(err: Exception) -> bool:
    msg = str(err)
    return any(s in msg for s in ("cannot be multiplied", "must match the size", "size of tensor",
                                  "shape '[", "is invalid for input of size"))


def _copy(x: Any) -> Any:
    """A copy the reader's code may change without spoiling the checker's data."""
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, list):
        return [_copy(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_copy(v) for v in x)
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    return x  # modules and plain values are passed as they are (modules are snapshot, below)


def _snapshot(x: Any) -> Any:
    """What an in-place probe compares: tensors, containers of tensors, a module's state."""
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, torch.nn.Module):
        return {k: v.detach().clone() for k, v in x.state_dict().items()}
    if isinstance(x, (list, tuple)):
        return [_snapshot(v) for v in x]
    if isinstance(x, dict):
        return {k: _snapshot(v) for k, v in x.items()}
    return None


def _same(a: Any, b: Any) -> bool:
    """``a`` and ``b`` (snapshots) hold the same values (nan equal to nan)."""
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype:
            return False
        return bool(torch.equal(a, b) or (a.is_floating_point() and torch.equal(a.nan_to_num(0.5),
                                                                                b.nan_to_num(0.5))))
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return True


def _arg_names(fn: Callable, n: int, kwargs: dict) -> list[str]:
    """The names the reader gave the first ``n`` positional parameters (argument 1, ... if unknown)."""
    names = [f"argument {i + 1}" for i in range(n)]
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return names
    for i, p in enumerate(params[:n]):
        names[i] = f"`{p.name}`"
    return names


def inplace_message(name: str) -> str:
    return (f"your function changed its input {name} in place (the caller's tensor now holds "
            "different values): compute a new tensor instead, e.g. `x = x - m` rather than "
            "`x -= m`, `masked_fill` rather than `masked_fill_`, no `out[...] = ...` on an input")


def module_changed_message(name: str, before: dict, after: dict) -> str:
    """The in-place diagnosis for a module argument: which of its parameters changed."""
    changed = [k for k in before if k not in after or not _same(before[k], after[k])]
    what = ", ".join(changed[:3]) + (" ..." if len(changed) > 3 else "") or "its state"
    return (f"your function changed the model {name} in place ({what} differ after the call): "
            "leave its parameters as they were - compute the answer from them, work on a copy "
            "(copy.deepcopy), or restore what you changed before returning")


def call(fn: Callable, *args: Any, hint: str = "", allow_inplace: bool | Sequence[int] = False,
         **kwargs: Any) -> Any:
    """Call the reader's ``fn`` and probe it; turn any exception into a failure.

    ``fn`` gets copies of the arguments; afterwards the copies are compared with the originals and
    a changed one fails as an in-place edit (unless ``allow_inplace`` is True or lists its
    position, e.g. a running state the function may update). ``hint`` is shown under an
    exception unless the exception has a better-known cause.
    """
    if not callable(fn):
        fail(f"expected a function, got {type(fn).__name__}: pass the function itself, without ()")
    given = [_copy(a) for a in args]
    given_kw = {k: _copy(v) for k, v in kwargs.items()}
    before = None if allow_inplace is True else _snapshot(list(args) + list(kwargs.values()))
    free = () if isinstance(allow_inplace, bool) else tuple(allow_inplace)
    try:
        out = fn(*given, **given_kw)
    except CheckFailure:
        raise
    except NotImplementedError:
        raise NotImplementedYet(NOT_IMPLEMENTED) from None
    except Exception as err:  # the reader's exception becomes a diagnosis
        text = f"your code raised {type(err).__name__}: {err}"
        if not hint and _is_shape_error(err):
            hint = "a shape does not line up; print the shapes of your intermediate tensors"
        hint = _auto_hint(err) or hint
        fail(f"{text}\n  hint: {hint}" if hint else text)
    if before is not None:
        after = _snapshot(given + list(given_kw.values()))
        names = _arg_names(fn, len(given), given_kw) + [f"`{k}`" for k in given_kw]
        inputs = list(args) + list(kwargs.values())
        for i, (name, b, a) in enumerate(zip(names, before, after, strict=True)):
            if i not in free and not _same(b, a):
                if isinstance(inputs[i], torch.nn.Module):
                    fail(module_changed_message(name, b, a))
                fail(inplace_message(name))
    return out


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


def shape_message(got: Sequence[int], want: Sequence[int], layout: str = "") -> str:
    """A readable shape diagnosis: what was expected, what came back, and the likely cause."""
    got, want = tuple(got), tuple(want)
    text = f"expected an output of shape {layout + ' = ' if layout else ''}{shape_str(want)}, " \
           f"got {shape_str(got)}"
    if len(got) == len(want) and len(got) >= 2 and got[:-2] == want[:-2] and got[-2:] == want[::-1][:2]:
        return text + ": the last two dims are swapped (rows must be queries/positions)"
    if len(got) < len(want) and got == want[len(want) - len(got):]:
        return text + ": leading (batch) dims were lost; index and reduce from the end (dim=-1)"
    if len(got) == len(want) + 1 and 1 in got:
        return text + ": an extra dim of size 1 (keepdim=True on the final reduction?)"
    if len(got) == len(want) and got[:-1] == want[:-1]:
        return text + ": the last dim has the wrong size; check which matrix you multiplied last"
    return text


# --------------------------------------------------------------------------- comparing


def default_tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(atol, rtol) suited to a dtype: loose for half precision."""
    if dtype in (torch.float16, torch.bfloat16):
        return 2e-3, 1e-2
    return 1e-5, 1e-4


def close(actual: Any, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """True when the shapes match and the values agree within tolerance.

    Bool tensors are compared exactly; nan matches nan (so a mistake that yields nan is named).
    """
    if not isinstance(actual, torch.Tensor) or tuple(actual.shape) != tuple(expected.shape):
        return False
    if actual.dtype == torch.bool or expected.dtype == torch.bool:
        return actual.dtype == expected.dtype and bool((actual == expected).all())
    a = actual.detach().cpu().double()
    e = expected.detach().cpu().double()
    return bool(torch.allclose(a, e, atol=atol, rtol=rtol, equal_nan=True))


@dataclass(frozen=True)
class Mistake:
    """A known mistake: ``message`` names it; ``fn`` makes it, with the reader's signature.

    ``when`` (optional) takes the case's arguments and says whether the mistake can be told apart
    on that case (e.g. a scale by sqrt(T) only where T differs from d).
    """

    message: str
    fn: Callable
    when: Callable[..., bool] | None = None
    shows: str | None = None  # what the reader reads, when a probe names it before the search

    @property
    def expect(self) -> str:
        """The words the checker prints for this mistake (asserted by the tests)."""
        return self.shows or self.message


LegacyMistake = tuple[str, Any]  # (diagnosis, wrong output or a zero-argument function)


def _wrong_output(m: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
    """The output of a mistake on these inputs, or None when it cannot be computed."""
    try:
        if isinstance(m, Mistake):
            if m.when is not None and not m.when(*args, **(kwargs or {})):
                return None
            return m.fn(*[_copy(a) for a in args], **{k: _copy(v) for k, v in (kwargs or {}).items()})
        wrong = m[1]
        return wrong() if callable(wrong) else wrong
    except Exception:  # a variant that cannot be computed matches nothing
        return None


def _message(m: Any) -> str:
    return m.message if isinstance(m, Mistake) else m[0]


def diagnose(actual: torch.Tensor, mistakes: Iterable[Any], atol: float = 1e-5,
             rtol: float = 1e-4, args: tuple = (), kwargs: dict | None = None,
             convert: Callable[[Any], Any] | None = None) -> str | None:
    """The message of the first known mistake whose output ``actual`` matches, else None."""
    for m in mistakes:
        wrong = _wrong_output(m, args, kwargs)
        if convert is not None and isinstance(wrong, torch.Tensor):
            try:
                converted = convert(wrong)
            except Exception:  # e.g. a wrong shape the conversion cannot take
                converted = None
            if isinstance(converted, torch.Tensor) and converted.shape == wrong.shape:
                wrong = converted
        if isinstance(wrong, torch.Tensor) and (
                close(actual, wrong.detach().cpu(), atol, rtol)
                or close(_nan_as_zero(actual), _nan_as_zero(wrong.detach().cpu()), atol, rtol)):
            return _message(m)
    return None


def _nan_as_zero(t: torch.Tensor) -> torch.Tensor:
    """nan -> 0: a row that sees no key is nan in one convention and 0 in another."""
    return t.masked_fill(t.isnan(), 0) if t.is_floating_point() else t


def compare(actual: torch.Tensor, expected: torch.Tensor, *, mistakes: Iterable[Any] = (),
            otherwise: str = "the values are wrong", nonfinite: str | None = None,
            atol: float | None = None, rtol: float | None = None, layout: str = "",
            args: tuple = (), kwargs: dict | None = None,
            explain: Callable[[torch.Tensor], str | None] | None = None,
            post: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
    """Fail unless ``actual`` matches ``expected``; name the mistake when a known one matches.

    ``explain(actual)`` may name a mistake no fixed formula gives (a constant factor); ``post``
    is applied to every wrong output before the comparison (``actual`` has had it already).
    Order of the verdicts: a matching known mistake; ``explain``; a wrong shape (:func:`shape_message`); a
    wrong dtype for a bool answer; nan/inf where the reference is finite (``nonfinite``);
    ``otherwise`` with the largest difference.
    """
    d_atol, d_rtol = default_tolerance(expected.dtype)
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    if close(actual, expected, atol, rtol):
        return
    found = diagnose(actual, mistakes, atol, rtol, args, kwargs, convert=post)
    if found:
        fail(found)
    found = explain(actual) if explain is not None else None
    if found:
        fail(found)
    if tuple(actual.shape) != tuple(expected.shape):
        fail(shape_message(actual.shape, expected.shape, layout))
    if expected.dtype == torch.bool or actual.dtype == torch.bool:
        if actual.dtype != expected.dtype:
            if actual.is_floating_point() and bool((actual.isinf() == ~expected).all()):
                fail("you returned an additive float mask (0 = attend, -inf = blocked); this "
                     "exercise wants a bool tensor, True = may attend")
            if expected.dtype == torch.bool and bool(((actual != 0) == expected).all()):
                fail(f"right pattern, but a {actual.dtype} tensor: return a bool tensor (True = may "
                     "attend), e.g. straight from a comparison such as <=, or with .bool()")
            fail(f"{otherwise} (expected a bool tensor, got dtype {actual.dtype})")
        fail(otherwise)
    a = actual.double()
    if not torch.isfinite(a).all() and torch.isfinite(expected.double()).all():
        fail(nonfinite or f"{otherwise}: your output contains nan or inf")
    diff = (a - expected.double()).abs().nan_to_num(math.inf).max().item()
    fail(f"{otherwise} (largest difference from the reference: {diff:.3g})")


# --------------------------------------------------------------------------- causality probe


@dataclass(frozen=True)
class Causal:
    """How to probe causality: perturb argument ``arg`` at one position of dim ``dim`` at a time
    and watch the output along ``out_dim``; position i must not move when a later one changes."""

    arg: int = 0
    dim: int = -2
    out_dim: int = -2
    scale: float = 3.0


def leak_message(leaks: Sequence[tuple[int, int]], T: int, backward: bool) -> str:
    """Name the kind of leak from the (i, j) pairs where output i moved when input j > i changed.

    ``backward`` says whether earlier inputs still reach later outputs.
    """
    i, j = leaks[0]
    pairs = T * (T - 1) // 2
    where = f"position {i} changed when the input at position {j} > {i} changed"
    if len(leaks) == pairs and not backward:
        return (f"{where}: your mask is the upper triangle - each position sees the FUTURE and not "
                "the past. Keep keys j <= i (torch.tril, or j <= i), not j >= i (torch.triu)")
    if len(leaks) == pairs:
        return (f"{where}: every position sees the whole sequence - no causal mask is applied. "
                "Set the scores of later keys (j > i) to -inf before the softmax")
    if all(b == a + 1 for a, b in leaks) and len(leaks) == T - 1:
        return (f"{where}: leak by one - each position also sees the next token, the mask is one "
                "step too wide (torch.tril(..., diagonal=1), or j <= i + 1). Use diagonal=0 (j <= i)")
    return f"{where}: the future leaks ({len(leaks)} of the {pairs} (earlier, later) pairs)"


def causality_probe(run: Callable[[tuple], torch.Tensor], args: tuple, probe: Causal,
                    base: torch.Tensor, atol: float = 1e-5) -> None:
    """Fail when an output position moves after a change at a later input position."""
    x = args[probe.arg]
    T = x.shape[probe.dim]
    if base.ndim == 0 or not torch.isfinite(base).all() or T < 2:
        return
    g = torch.Generator().manual_seed(1234)
    leaks, backward = [], False
    for j in range(T):
        x2 = x.clone()
        idx = [slice(None)] * x.ndim
        idx[probe.dim] = j
        noise = torch.randn(x2[tuple(idx)].shape, generator=g, dtype=torch.float64)
        x2[tuple(idx)] = x2[tuple(idx)] + probe.scale * noise.to(x.dtype)
        out = run(args[:probe.arg] + (x2,) + args[probe.arg + 1:])
        if out.shape != base.shape:
            return
        for i in range(T):
            a = out.select(probe.out_dim, i).double()
            b = base.select(probe.out_dim, i).double()
            if not torch.allclose(a, b, atol=atol, rtol=1e-5, equal_nan=True):
                if i < j:
                    leaks.append((i, j))
                elif i > j:
                    backward = True
    if leaks:
        fail(leak_message(sorted(leaks), T, backward))


# --------------------------------------------------------------------------- tensor checkers


@dataclass
class Case:
    """One named input for the reader's function and its expected output.

    ``mistakes`` are case-specific (message, wrong output) pairs, tried after the spec's own.
    """

    name: str
    args: tuple
    expected: Any
    kwargs: dict = field(default_factory=dict)
    mistakes: Sequence[LegacyMistake] = ()
    otherwise: str | None = None
    nonfinite: str | None = None
    atol: float | None = None
    rtol: float | None = None
    post: Callable[[torch.Tensor], torch.Tensor] | None = None  # e.g. zero fully masked rows


def _as_outputs(out: Any, names: Sequence[str] | None, allow_tuple: bool) -> Any:
    """The reader's output as a tensor (or a tuple of tensors when ``names`` are given)."""
    if not names:
        return tensor_output(out, allow_tuple=allow_tuple)
    if out is None:
        fail("your function returned None - is the TODO still open, or is a `return` missing?")
    if not isinstance(out, (tuple, list)) or len(out) != len(names):
        got = type(out).__name__ + (f" of {len(out)} items" if isinstance(out, (tuple, list)) else "")
        kind = "pair (a tuple)" if len(names) == 2 else "tuple"
        fail(f"expected a {kind} ({', '.join(names)}), got {got}")
    return tuple(tensor_output(o, what=n) for o, n in zip(out, names, strict=True))


@dataclass
class TensorSpec:
    """A checker for a function that returns a tensor (or a fixed tuple of tensors).

    ``cases()`` builds the cases (lazily, so importing costs nothing); ``mistakes`` are the known
    mistakes tried on every case; ``causal`` turns on the causality probe; ``outputs`` names the
    items of a tuple answer; ``layout`` is the expected shape in words, e.g. "(..., T_q, d_v)".
    """

    title: str
    cases: Callable[[], list[Case]]
    mistakes: Sequence[Mistake] = ()
    causal: Causal | None = None
    outputs: Sequence[str] | None = None
    allow_tuple: bool = False
    hint: str = ""
    otherwise: str = "the values are wrong"
    nonfinite: str | None = None
    layout: str = ""
    unit: str = "cases"
    reference: Callable | None = None  # a correct answer with the reader's signature (for tests)
    explain: Callable[[torch.Tensor, Case], str | None] | None = None
    dtype_message: str | None = None  # set: the answer must keep the expected dtype

    def _dtype(self, out: torch.Tensor, c: Case, mistakes: Sequence[Any]) -> None:
        tol = default_tolerance(c.expected.dtype)
        if close(out.double(), c.expected.double(), *tol):
            fail(f"right values, but dtype {out.dtype} where {c.expected.dtype} was expected: "
                 f"{self.dtype_message}")
        found = diagnose(out, mistakes, *tol, c.args, c.kwargs)
        if found:
            fail(found)
        fail(f"expected dtype {c.expected.dtype}, got {out.dtype}: {self.dtype_message}")

    def check_case(self, fn: Callable, c: Case, seen: list[tuple[Case, Any]]) -> None:
        out = _as_outputs(call(fn, *c.args, hint=self.hint, **c.kwargs), self.outputs,
                          self.allow_tuple)
        mistakes = list(self.mistakes) + list(c.mistakes)
        if self.outputs:
            self._compare_tuple(out, c, mistakes, seen)
        else:
            if c.post is not None and tuple(out.shape) == tuple(c.expected.shape):
                out = c.post(out)
            atol = c.atol if c.atol is not None else default_tolerance(c.expected.dtype)[0]
            if self.causal is not None and tuple(out.shape) == tuple(c.expected.shape):
                def rerun(args, c=c):
                    return tensor_output(call(fn, *args, **c.kwargs), allow_tuple=self.allow_tuple)
                try:
                    causality_probe(rerun, c.args, self.causal, out, atol=max(atol, 1e-5))
                except CheckFailure:
                    # a mistake that leaks as a side effect (a softmax over the queries mixes
                    # later positions in) is better named by its own message
                    found = diagnose(out, [m for m in mistakes if not getattr(m, "shows", None)],
                                     *default_tolerance(c.expected.dtype), c.args, c.kwargs)
                    if found:
                        fail(found)
                    raise

            if self.dtype_message is not None and out.dtype != c.expected.dtype:
                self._dtype(out, c, mistakes)

            def explain(o, c=c):
                found = self._hard_coded(o, seen)
                return found or (self.explain(o, c) if self.explain is not None else None)

            compare(out, c.expected, mistakes=mistakes, otherwise=c.otherwise or self.otherwise,
                    nonfinite=c.nonfinite or self.nonfinite, atol=c.atol, rtol=c.rtol,
                    layout=self.layout, args=c.args, kwargs=c.kwargs, post=c.post,
                    explain=explain)
        seen.append((c, out))

    @staticmethod
    def _hard_coded(out: Any, seen: list[tuple[Case, Any]]) -> str | None:
        """HARD_CODED when a wrong ``out`` equals the answer of an earlier case."""
        for prev, _ in seen:
            if isinstance(prev.expected, torch.Tensor) and close(out, prev.expected):
                return HARD_CODED
        return None

    def _compare_tuple(self, out: tuple, c: Case, mistakes: Sequence[Any],
                       seen: list[tuple[Case, Any]]) -> None:
        expected = c.expected
        if all(close(o, e) for o, e in zip(out, expected, strict=True)):
            return
        for m in mistakes:
            wrong = _wrong_output(m, c.args, c.kwargs)
            if isinstance(wrong, (tuple, list)) and len(wrong) == len(out) and all(
                    isinstance(w, torch.Tensor) and close(o, w.detach().cpu())
                    for o, w in zip(out, wrong, strict=True)):
                fail(_message(m))
        for prev, _ in seen:
            if all(close(o, e) for o, e in zip(out, prev.expected, strict=True)):
                fail(HARD_CODED)
        for name, o, e in zip(self.outputs, out, expected, strict=True):
            if tuple(o.shape) != tuple(e.shape):
                fail(f"{name} should have shape {shape_str(e.shape)}, got {shape_str(o.shape)}")
            if not close(o, e):
                fail(f"{name} is wrong: {c.otherwise or self.otherwise}")

    def run(self, fn: Callable) -> CheckResult:
        def body():
            seen: list[tuple[Case, Any]] = []
            cases = self.cases()
            for c in cases:
                with case(c.name):
                    self.check_case(fn, c, seen)
            return len(cases)

        return run_check(self.title, body, unit=self.unit)


# --------------------------------------------------------------------------- number checkers


def as_number(out: Any, what: str = "your function", *, integral: bool = False) -> numbers.Real:
    """The reader's numeric answer as a Python int or float, or a diagnosis.

    Accepts any ``numbers.Integral``/``numbers.Real`` (Python, numpy scalars, fractions) and
    1-element tensors or arrays; rejects None, bools, strings, containers and nan/inf. With
    ``integral``, a float that is a whole number is accepted as that int.
    """
    if out is None:
        fail(f"{what} returned None - is the TODO still open, or is a `return` missing?")
    if isinstance(out, torch.Tensor) or type(out).__module__.startswith("numpy"):
        size = getattr(out, "numel", None)
        n = size() if callable(size) else getattr(out, "size", 1)
        if n != 1:
            fail(f"{what} returned an array of shape {shape_str(out.shape)}; return one number")
        out = out.item()
    if isinstance(out, (bool,)) or type(out).__name__ == "bool_":
        fail(f"{what} returned a bool ({out}); return a number")
    if not isinstance(out, numbers.Real):
        kind = type(out).__name__
        if isinstance(out, (tuple, list)):
            kind += f" of {len(out)} items"
        fail(f"{what} returned a {kind}; return one number")
    if isinstance(out, numbers.Integral):
        return int(out)
    value = float(out)
    if not math.isfinite(value):
        fail(f"{what} returned {value}; expected a finite number")
    if integral and value.is_integer():
        return int(value)
    return value


def _same_number(a: numbers.Real, b: numbers.Real, rel: float) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def fmt(x: Any) -> str:
    if isinstance(x, tuple):
        return "(" + ", ".join(fmt(v) for v in x) + ")"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.6g}"


@dataclass
class NumberSpec:
    """A checker for a function that returns a number (or a fixed tuple of numbers).

    ``cases`` are (label, args, kwargs); ``reference`` is a correct answer with the reader's
    signature; ``mistakes`` are named only when they give the reader's answer in EVERY case.
    """

    title: str
    cases: Sequence[tuple[str, tuple, dict]]
    reference: Callable
    mistakes: Sequence[Mistake] = ()
    integral: bool = True
    rel: float = 1e-6
    hint: str = ""
    unit: str = "cases"
    pre: Callable[[Any, tuple], None] | None = None  # a probe of the raw output (e.g. a vector)

    def convert(self, out: Any, n_items: int | None) -> Any:
        if n_items is None or out is None:
            return as_number(out, integral=self.integral)
        if not isinstance(out, (tuple, list)) or len(out) != n_items:
            got = type(out).__name__ + (f" of {len(out)} items" if isinstance(out, (tuple, list))
                                        else "")
            fail(f"return {n_items} numbers as a tuple, got {got}")
        return tuple(as_number(o, f"item {i + 1} of your answer", integral=self.integral)
                     for i, o in enumerate(out))

    def matches(self, got: Any, want: Any) -> bool:
        if isinstance(want, tuple):
            return isinstance(got, tuple) and all(self.matches(g, w) for g, w in zip(got, want,
                                                                                      strict=True))
        return not isinstance(got, tuple) and _same_number(got, want, self.rel)

    def answers(self, fn: Callable) -> tuple[list, list]:
        """(gots, wants): the reader's converted answer and the reference's, case by case."""
        wants, gots = [], []
        for label, args, kwargs in self.cases:
            want = self.reference(*args, **kwargs)
            n_items = len(want) if isinstance(want, tuple) else None
            with case(label):
                raw = call(fn, *args, hint=self.hint, **kwargs)
                if self.pre is not None:
                    self.pre(raw, args)
                gots.append(self.convert(raw, n_items))
            wants.append(want)
        return gots, wants

    def makes(self, m: Mistake, gots: list) -> bool:
        """Do the reader's answers ``gots`` match mistake ``m``'s output in every case?"""
        wrongs = []
        for _, args, kwargs in self.cases:
            w = _wrong_output(m, args, kwargs)
            try:
                wrongs.append(None if w is None else self.convert(
                    w, len(w) if isinstance(w, tuple) else None))
            except CheckFailure:
                wrongs.append(None)
        return all(w is not None and self.matches(g, w) for g, w in zip(gots, wrongs, strict=True))

    def run(self, fn: Callable) -> CheckResult:
        def body():
            gots, wants = self.answers(fn)
            if all(self.matches(g, w) for g, w in zip(gots, wants, strict=True)):
                return len(wants)
            if len({g for g in gots}) == 1 and len({w for w in wants}) > 1 and len(gots) > 1:
                fail(f"{HARD_CODED} (it returned {fmt(gots[0])} every time)")
            for m in self.mistakes:
                if self.makes(m, gots):
                    fail(m.message)
            for (label, _, _), g, w in zip(self.cases, gots, wants, strict=True):
                if not self.matches(g, w):
                    fail(f"case {label!r}: expected {fmt(w)}, got {fmt(g)}")
            return len(wants)

        return run_check(self.title, body, unit=self.unit)


def checker(spec: TensorSpec | NumberSpec) -> Callable[[Callable], Callable]:
    """Make a public checker out of a function stub whose docstring the reader sees.

    The decorated function keeps its name, signature and one-line docstring; calling it runs
    ``spec`` on the reader's function; ``.spec`` exposes the cases and mistakes to the tests.
    """

    def wrap(stub: Callable) -> Callable:
        def check(fn):
            return spec.run(fn)

        check.__name__ = stub.__name__
        check.__qualname__ = stub.__qualname__
        check.__doc__ = stub.__doc__
        check.__module__ = stub.__module__
        check.spec = spec
        return check

    return wrap


def seed_cpu(value: int) -> None:
    """Seed torch's global CPU generator, which the cases' modules draw their initial weights (and
    dropout masks) from: the same numbers as ``torch.manual_seed(value)`` on the CPU, without
    reseeding an accelerator's generators, which :func:`run_check` does not restore."""
    torch.default_generator.manual_seed(value)


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Seeded standard normal numbers, the same on every machine (generated on the CPU)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def make_every_piece_matter(module: torch.nn.Module, *, vector_spread: float,
                            matrix_std: float = 0.3) -> torch.nn.Module:
    """Redraw a module's parameters (from torch's global generator, seeded by the caller with
    :func:`seed_cpu` inside :func:`run_check`, which restores it) so that every piece changes the
    output: 1-D parameters (LayerNorm scales, biases) around 1 with spread ``vector_spread``,
    matrices N(0, ``matrix_std``), larger than at initialisation. In place; returns the module."""
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim == 1:
                p.copy_(1 + vector_spread * torch.randn_like(p))
            else:
                p.normal_(0, matrix_std)
    return module

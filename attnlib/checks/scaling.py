"""Checkers for chapter 3: softmax with a temperature, and a softmax that is safe in half precision.

Every checker prints ``✓ ...`` or ``✗ ...: diagnosis`` and returns True/False (see ``_core``).
"""

from __future__ import annotations

import torch

from ..attention import softmax
from ._core import Case, call, case, close, compare, fail, randn, run_cases, run_check, tensor_output

__all__ = ["check_temperature_softmax", "check_stable_softmax_half", "check_logsumexp"]

FP16_EXP_LIMIT = 11.09  # exp(x) > 65504, float16's largest finite value, for x above about 11.09


def check_temperature_softmax(fn) -> bool:
    """Check ``fn(scores, temperature) -> weights``: ``softmax(scores / temperature)`` over the last dim.

    A small temperature sharpens the weights toward the argmax (one-hot in the limit); a large one
    flattens them toward uniform. The cases include temperature 0.001, where scores / temperature
    reach the thousands and exp overflows unless the row max is subtracted.
    Diagnoses: multiplying by the temperature, ignoring it, the wrong axis, nan/inf from overflow.
    """

    def body():
        s = randn(3, 5, seed=70) * 2
        inputs = [("temperature 1", s, 1.0), ("temperature 0.5", s, 0.5), ("temperature 4", s, 4.0),
                  ("temperature 0.001 (near argmax)", s, 0.001),
                  ("one row, temperature 2", torch.tensor([2.0, 1.0, 0.0, -1.0]), 2.0)]
        cases = []
        for name, x, t in inputs:
            cases.append(Case(name, (x, t), softmax(x / t), mistakes=[
                ("you multiplied by the temperature; divide the scores by it (a small temperature "
                 "must sharpen the weights)", softmax(x * t)),
                ("the temperature has no effect in your code: divide the scores by it before the "
                 "softmax", softmax(x)),
                ("the rows of your output do not sum to 1: take the softmax over the last dim (dim=-1)",
                 lambda x=x, t=t: softmax(x / t, dim=0)),
            ], nonfinite=("your output contains nan/inf: at a small temperature scores / temperature is "
                          "huge and exp overflows; subtract each row's max first (the softmax is "
                          "unchanged by a shift)")))
        return run_cases(fn, cases, hint="fn(scores, temperature) returns the softmax of scores / temperature")

    return run_check("softmax with temperature", body)


def check_stable_softmax_half(fn) -> bool:
    """Check ``fn(scores) -> weights`` for float16 scores: the softmax over the last dim, computed in
    float32 and returned in the input's dtype (float16), without overflow.

    Cases: ordinary float16 scores; scores above 11.09, where exp overflows float16 unless the max is
    subtracted; -inf (masked) entries; a row of 70,000 equal scores, whose sum of exps (70,000)
    overflows float16's largest value 65504 unless the sum is taken in float32; and a float32 input
    (the dtype must be kept). Diagnoses: exp overflow (no max subtraction), the sum overflowing in
    float16, a float32 result for float16 input, the wrong axis.
    """

    def body():
        inputs = [
            ("float16, 2 x 6", (randn(2, 6, seed=80) * 3).half()),
            ("float16 scores up to 14", torch.tensor([[14.0, 12.0, 9.0, 0.0], [13.0, 13.0, -2.0, 5.0]]).half()),
            ("float16 with -inf (masked) entries", torch.tensor([[3.0, float("-inf"), 1.0, float("-inf")]]).half()),
            ("float32 stays float32", randn(3, 4, seed=81)),
        ]
        n = 0
        for name, x in inputs:
            with case(name):
                expected = softmax(x.float()).to(x.dtype)
                out = call(fn, x, hint="fn(scores) returns softmax(scores, dim=-1) in scores' dtype")
                out = tensor_output(out)
                if out.dtype != x.dtype and close(out.float(), expected.float(), 2e-3, 1e-2):
                    fail(f"right values, but dtype {out.dtype} for {x.dtype} input: compute in float32, "
                         "then return .to(scores.dtype)")
                if out.dtype != x.dtype:
                    fail(f"expected dtype {x.dtype} (the input's), got {out.dtype}")
                if not torch.isfinite(out).all() and name.startswith("float16 scores up"):
                    fail(f"your output contains nan/inf: in float16 exp(x) overflows to inf for x > "
                         f"{FP16_EXP_LIMIT} (65504 is the largest float16); subtract each row's max "
                         "before exp (and compute in float32)")
                compare(out, expected, mistakes=[
                    ("the rows do not sum to 1: take the softmax over the last dim (dim=-1)",
                     lambda x=x: softmax(x.float(), dim=0).to(x.dtype)),
                ], nonfinite="your output contains nan/inf: subtract each row's max before exp")
                n += 1
        with case("a row of 70,000 equal float16 scores"):
            x = torch.zeros(1, 70_000, dtype=torch.float16)
            out = tensor_output(call(fn, x))
            total = float(out.float().sum())
            if not torch.isfinite(out.float()).all() or abs(total - 1.0) > 0.02:
                fail(f"the weights sum to {total:.3g}, not 1: the sum of 70,000 exps is 70,000, more "
                     "than float16 can hold (65504), so it became inf; do the exp and the sum in "
                     "float32 (scores.float()) and convert the result back at the end")
            n += 1
        return n

    return run_check("softmax in half precision", body)




def check_logsumexp(fn) -> bool:
    """Check ``fn(scores) -> lse``: ``log(sum(exp(scores)))`` over the last dim, without overflow.

    The answer has shape ``scores.shape[:-1]``. The stable way: m = max of the row,
    lse = m + log(sum(exp(scores - m))). Then ``softmax(scores) = exp(scores - lse[..., None])``.
    Cases include scores of 1000 (exp overflows) and -inf entries. Any correct way passes
    (``torch.logsumexp``, written out). Diagnoses: overflow (no max subtracted), the max not added
    back, keepdim left on, the wrong dim.
    """

    def body():
        inputs = [("2 x 5", randn(2, 5, seed=90) * 3), ("one row", torch.tensor([1.0, 2.0, 3.0])),
                  ("scores of 1000", torch.tensor([[1000.0, 999.0, 0.0], [-5.0, 1000.0, 1000.0]])),
                  ("-inf (masked) entries", torch.tensor([[0.5, float("-inf"), 2.0]]))]
        cases = []
        for name, x in inputs:
            m = x.amax(dim=-1, keepdim=True)
            lse = torch.logsumexp(x, dim=-1)
            cases.append(Case(name, (x,), lse, mistakes=[
                ("you kept the reduced dim (keepdim=True): return shape scores.shape[:-1]",
                 lse.unsqueeze(-1)),
                ("you forgot to add the max back: log(sum(exp(s - m))) is lse - m, so return "
                 "m + log(sum(exp(s - m)))", lambda m=m, x=x: (x - m).exp().sum(-1).log()),
                ("you reduced over the wrong dim: the keys are the last dim (dim=-1)",
                 lambda x=x: torch.logsumexp(x, dim=0)),
            ], nonfinite=("your output contains inf/nan: exp(1000) overflows; subtract each row's max "
                          "m before exp and add it back after the log")))
        return run_cases(fn, cases, hint="fn(scores) returns log(sum(exp(scores), dim=-1))")

    return run_check("log-sum-exp", body)

"""Checkers for chapter 4: inputs and targets for next-token training, and combined masks.

Every checker prints ``✓ ...`` or ``✗ ...: diagnosis`` and returns True/False (see ``_core``).
"""

from __future__ import annotations

import torch

from ..attention import causal_mask, padding_mask
from ._core import call, case, fail, run_check, shape_str, tensor_output

__all__ = ["check_shift_targets", "check_combined_mask"]


def check_shift_targets(fn) -> bool:
    """Check ``fn(ids) -> (inputs, targets)``: the training pair of a sequence of token ids.

    For ids of shape (..., T) the model reads ``inputs = ids[..., :-1]`` and must predict
    ``targets = ids[..., 1:]``: position t of the inputs is paired with the token that follows it,
    so one sequence of T tokens gives T - 1 prediction examples at once. Batches (B, T) shift along
    the LAST dim. Diagnoses: no shift, inputs and targets swapped, shifting along the batch dim,
    wrong lengths.
    """

    def body():
        inputs = [("one sequence of 6", torch.tensor([5, 1, 4, 1, 5, 9])),
                  ("a batch of 3 x 4", torch.tensor([[1, 2, 3, 4], [9, 8, 7, 6], [0, 3, 0, 3]])),
                  ("two tokens", torch.tensor([7, 2]))]
        for name, ids in inputs:
            with case(name):
                out = call(fn, ids, hint="fn(ids) returns a tuple (inputs, targets)")
                if not isinstance(out, (tuple, list)) or len(out) != 2:
                    fail(f"expected a tuple (inputs, targets), got {type(out).__name__}")
                a = tensor_output(out[0], what="inputs")
                b = tensor_output(out[1], what="targets")
                exp_a, exp_b = ids[..., :-1], ids[..., 1:]
                if torch.equal(a, exp_a) and torch.equal(b, exp_b):
                    continue
                if a.shape == exp_b.shape and torch.equal(a, exp_b) and torch.equal(b, exp_a):
                    fail("inputs and targets are swapped: the inputs are the first T - 1 tokens "
                         "(ids[..., :-1]) and the targets the last T - 1 (ids[..., 1:])")
                if torch.equal(a, ids) and torch.equal(b, ids):
                    fail("there is no shift: the target of each position is the NEXT token, so "
                         "targets = ids[..., 1:] and inputs = ids[..., :-1]")
                if ids.ndim == 2 and torch.equal(a, ids[:-1]) and torch.equal(b, ids[1:]):
                    fail("you shifted along the batch dim (rows are sequences): shift along the last "
                         "dim, ids[..., :-1] and ids[..., 1:]")
                if a.shape != exp_a.shape or b.shape != exp_b.shape:
                    fail(f"expected inputs and targets of shape {shape_str(exp_a.shape)}, got "
                         f"{shape_str(a.shape)} and {shape_str(b.shape)}")
                fail("wrong pairs: target t must be the token that follows input t")
        return len(inputs)

    return run_check("next-token inputs and targets", body)


def check_combined_mask(fn) -> bool:
    """Check ``fn(lengths, T) -> mask``: causal AND key padding, a bool (B, 1, T, T) mask.

    Query i of sequence b may attend to key j when j <= i (causal) and j < lengths[b] (a real
    token, not padding). Rows of padded queries may either follow the same rule or be masked
    entirely (their outputs are never used): both are accepted. (With right padding and a causal
    mask a real query never reaches a padded key anyway, so masking the padded query rows alone is
    also right here.) Diagnoses: OR instead of AND, only one of the two masks, flipped polarity, a
    float mask, a mask that does not broadcast to (B, 1, T, T).
    """

    def body():
        inputs = [([4, 2, 1], 4), ([5, 5], 5), ([3], 5)]
        for lengths, T in inputs:
            with case(f"lengths {lengths}, T = {T}"):
                lt = torch.tensor(lengths)
                B = len(lengths)
                causal = causal_mask(T)  # (T, T)
                pad = padding_mask(lt, T)  # (B, 1, 1, T)
                expected = causal & pad  # (B, 1, T, T)
                rows = pad.transpose(-1, -2)  # (B, 1, T, 1): real queries
                also_rows = expected & rows
                out = tensor_output(call(fn, lt, T, hint=(
                    "combine attnlib.causal_mask(T) (T, T) and attnlib.padding_mask(lengths, T) "
                    "(B, 1, 1, T) with &")))
                try:
                    out = out.expand(B, 1, T, T) if out.ndim <= 4 else out
                except RuntimeError:
                    fail(f"your mask of shape {shape_str(out.shape)} does not broadcast to "
                         f"(B, 1, T, T) = {shape_str((B, 1, T, T))}")
                if out.shape != (B, 1, T, T):
                    fail(f"expected a mask broadcastable to (B, 1, T, T) = {shape_str((B, 1, T, T))}, "
                         f"got {shape_str(out.shape)}")
                if out.dtype != torch.bool:
                    fail(f"expected a bool mask (True = may attend), got dtype {out.dtype}")
                if torch.equal(out, expected) or torch.equal(out, also_rows):
                    continue
                wrong = [
                    ("the polarity is flipped: True must mean 'may attend'", ~expected),
                    ("you combined with OR (|): a key must pass BOTH masks, so use &",
                     causal | pad),
                    ("the padding is missing: keys at positions >= length must be blocked too",
                     causal.expand(B, 1, T, T)),
                    ("the causal part is missing: query i must not see keys after position i",
                     pad.expand(B, 1, T, T)),
                ]
                for message, w in wrong:
                    if torch.equal(out, w.expand(B, 1, T, T)):
                        fail(message)
                fail("the mask is wrong: expected causal_mask(T) & padding_mask(lengths, T)")
        return len(inputs)

    return run_check("combined mask", body)

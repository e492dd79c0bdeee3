"""check_sharp_temperature, chapter 0's warm-up on its own widget (ex-00-sharpen).

The reader finds a temperature at which the query "creature" puts at least 0.9 of its weight on
"blue", with the AttentionExplorer's slider or by setting ``explorer.temperature`` in Python. The
tests pin the valid interval, accept every temperature in it in every numeric form, and play each
typical mistake the way a reader makes it (the slider's positions and the two digits the widget
shows of a temperature below 1 included), asserting that the mistake's own message comes back.
"""

from __future__ import annotations

import fractions
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from attnlib import checks, example
from attnlib.checks import ch00_how_to_use as ch00

ROOT = Path(__file__).resolve().parents[1]
TOKENS = ["a", "fluffy", "blue", "creature"]
CREATURE, BLUE = 3, 2
# the slider's positions: 10 ** (k / 100) for k = -200 .. 200, kept to 4 digits (attention_explorer.js)
SLIDER_POSITIONS = [float(f"{10 ** (k / 100):.4g}") for k in range(-200, 201)]
MISTAKE = {m.message: m for m in ch00.SHARP_MISTAKES}
MULTIPLIED, WRONG_WAY, DEFAULT, WEIGHT, ROW, NO_SCALE = (m.message for m in ch00.SHARP_MISTAKES)


def shown(t: float) -> float:
    """The temperature as the widget prints it beside the slider (fmtSig of ui.js)."""
    if t >= 100:
        return float(f"{t:.0f}")
    if t >= 10:
        return float(f"{t:.1f}")
    if t >= 1:
        return float(f"{t:.2f}")
    return float(f"{t:.2g}")


def verdict(capsys, answer):
    result = checks.check_sharp_temperature(answer)
    out = capsys.readouterr().out
    assert isinstance(result, checks.CheckResult)
    assert out == "\n".join(_wrapped(result.line)) + "\n", out  # the verdict, nothing else
    return result


def _wrapped(line):
    from attnlib.checks._core import _wrap

    return _wrap(line).split("\n")


def first_position(reading, *, upwards=False):
    """The first slider position, moving from 1 down (or up), at which ``reading(t)`` >= 0.9."""
    start = SLIDER_POSITIONS.index(1.0)
    positions = SLIDER_POSITIONS[start:] if upwards else SLIDER_POSITIONS[start::-1]
    return next(t for t in positions if reading(t) >= ch00.TARGET)


def weight(t, row=CREATURE, col=BLUE, **kw):
    return float(ch00.widget_weights(t, **kw)[row, col])


# --------------------------------------------------------------------------- the target


def test_the_target_is_reachable_on_the_slider_and_not_true_at_the_start():
    low, high = ch00.SLIDER
    assert (low, high) == (0.01, 100.0)
    assert weight(1.0) < 0.6  # at the widget's start "creature" splits fluffy / blue
    assert weight(low) > 0.99
    assert weight(high) < ch00.TARGET


def test_the_valid_interval_is_from_the_lowest_slider_temperature_to_the_bisected_edge():
    low, edge = ch00.sharp_temperatures()
    assert low == ch00.SLIDER[0]
    assert 0.1 < edge < 0.11
    assert weight(edge) >= ch00.TARGET > weight(edge * (1 + 1e-9))
    # the bisection relies on the weight falling as the temperature rises: check it on the slider
    ws = [weight(t) for t in SLIDER_POSITIONS]
    assert all(a >= b for a, b in zip(ws, ws[1:], strict=False))


def test_every_temperature_in_the_interval_passes_and_none_beyond(capsys):
    low, edge = ch00.sharp_temperatures()
    for t in [*np.geomspace(low, edge, 15), edge]:
        assert verdict(capsys, float(t)), t
    assert not verdict(capsys, edge * 1.001)
    below_one = [t for t in SLIDER_POSITIONS if t <= 1]  # above 1 nothing sharpens
    valid = [t for t in below_one if verdict(capsys, t)]
    assert valid == [t for t in below_one if low <= t <= edge]
    assert max(valid) == 0.1047  # the slider's last good position; the widget shows it as 0.10


def test_the_checker_weights_are_the_widgets():
    from attnlib.widgets import AttentionExplorer

    tokens, x = example.embed(ch00.PHRASE)
    W_Q, W_K, _, _ = example.adjective_head()
    assert tokens == TOKENS
    explorer = AttentionExplorer(tokens, x, W_Q, W_K, causal=True, query=3)
    for t in (0.01, 0.1, 1.0, 7.5, 100.0):
        explorer.temperature = t
        torch.testing.assert_close(torch.tensor(explorer.weights, dtype=torch.float64),
                                   ch00.widget_weights(t))


def test_the_slider_range_is_the_widgets():
    js = (ROOT / "attnlib" / "static" / "attention_explorer.js").read_text(encoding="utf-8")
    m = re.search(r'label: "temperature",\s*min: (-?\d+),\s*max: (-?\d+),', js)
    assert m, "the temperature slider of attention_explorer.js moved: update this test"
    assert (10.0 ** int(m.group(1)), 10.0 ** int(m.group(2))) == ch00.SLIDER
    assert "(10 ** v).toPrecision(4)" in js  # SLIDER_POSITIONS above keep 4 digits


# --------------------------------------------------------------------------- correct answers


@pytest.mark.parametrize("answer", [
    0.1,
    0.05,
    0.01,
    np.float32(0.1),
    np.float64(0.1),
    torch.tensor(0.1),  # a 0-d tensor
    torch.tensor(0.1, dtype=torch.float64, requires_grad=True),
    torch.tensor([0.1]),  # one element
    np.array(0.1),
    fractions.Fraction(1, 10),
    0.1047,  # the slider's position as the kernel holds it (explorer.temperature)
], ids=lambda a: f"{type(a).__module__.split('.')[0]}.{type(a).__name__}")
def test_correct_forms_pass(capsys, answer):
    r = verdict(capsys, answer)
    assert r and r.line == "✓ sharper pattern: all 2 checks passed", r.line


def test_the_widgets_own_temperature_passes(capsys):
    from attnlib.widgets import AttentionExplorer

    tokens, x = example.embed(ch00.PHRASE)
    W_Q, W_K, _, _ = example.adjective_head()
    explorer = AttentionExplorer(tokens, x, W_Q, W_K, causal=True, query=3)
    explorer.temperature = 0.08
    assert explorer.weights[CREATURE][BLUE] >= 0.9
    assert verdict(capsys, explorer.temperature)
    r = verdict(capsys, explorer)
    assert not r and "explorer.temperature" in r.message


@pytest.mark.parametrize("answer, message", [
    (1, DEFAULT),
    (np.int64(2), WRONG_WAY),
    (torch.tensor(3), WRONG_WAY),
    (50, MULTIPLIED),
], ids=["int", "numpy int", "int tensor", "large int"])
def test_integers_are_judged_as_numbers(capsys, answer, message):
    # every valid temperature lies below 1, so no integer is right; an integer is still a number
    assert not any(float(n).is_integer() for n in np.geomspace(*ch00.sharp_temperatures(), 50))
    r = verdict(capsys, answer)
    assert not r and message in r.message, r.message


# --------------------------------------------------------------------------- the mistakes, played


def test_wrong_row_on_the_slider_the_query_blue(capsys):
    # the reader leaves the query menu on "blue" and stops at the first position where its bar
    # for "blue" reaches 0.9, then types the two digits the widget shows
    t = first_position(lambda t: weight(t, row=BLUE))
    assert weight(t) < ch00.TARGET
    for answer in (shown(t), t):
        r = verdict(capsys, answer)
        assert not r and ROW in r.message and f"puts {weight(answer):.3f}" in r.message, r.message


def test_wrong_row_in_python(capsys):
    answer = 0.12  # explorer.weights[2][2], the query "blue", reaches 0.9 here
    assert weight(answer, row=BLUE) >= ch00.TARGET > weight(answer)
    r = verdict(capsys, answer)
    assert not r and ROW in r.message


def test_scores_without_the_scale(capsys):
    # softmax(q k^T / t) without 1/sqrt(d_head), searched over the slider's positions
    t = first_position(lambda t: weight(t, scaled=False))
    for answer in (t, shown(t)):
        r = verdict(capsys, answer)
        assert not r and NO_SCALE in r.message, (answer, r.message)


def test_scores_multiplied_by_the_temperature(capsys):
    t = first_position(lambda t: weight(t, multiplied=True), upwards=True)
    assert t > 9
    for answer in (t, shown(t), 100):
        r = verdict(capsys, answer)
        assert not r and MULTIPLIED in r.message, (answer, r.message)


@pytest.mark.parametrize("answer", [1.5, 2, 5, 9])
def test_the_wrong_way(capsys, answer):
    r = verdict(capsys, answer)
    assert not r and WRONG_WAY in r.message and MULTIPLIED not in r.message, r.message


def test_the_default_temperature(capsys):
    r = verdict(capsys, 1.0)
    assert not r and DEFAULT in r.message and "puts 0.553 on 'blue'" in r.message, r.message


@pytest.mark.parametrize("answer", [0.9, 0.91, 0.95])
def test_the_weight_instead_of_the_temperature(capsys, answer):
    r = verdict(capsys, answer)
    assert not r and WEIGHT in r.message, r.message


@pytest.mark.parametrize("answer", [0.3, 0.5, 0.8])
def test_not_low_enough(capsys, answer):
    r = verdict(capsys, answer)
    assert not r and ch00.NOT_LOW_ENOUGH in r.message, r.message
    assert not any(m in r.message for m in MISTAKE), r.message


def test_every_mistake_is_played_above():
    played = {MULTIPLIED, WRONG_WAY, DEFAULT, WEIGHT, ROW, NO_SCALE}
    assert played == set(MISTAKE) and len(ch00.SHARP_MISTAKES) == len(played)


def test_another_column_or_no_mask_cannot_lead_to_a_wrong_answer():
    """Why the checker names neither: no slider temperature makes them reach 0.9 on their own.

    "blue" has the highest score of "creature"'s row, so no other key of that row ever takes 0.9;
    "creature" is the last token, so the causal mask hides nothing from its row.
    """
    for t in SLIDER_POSITIONS:
        masked, unmasked = ch00.widget_weights(t), ch00.widget_weights(t, causal=False)
        others = [masked[CREATURE, j].item() for j in range(len(TOKENS)) if j != BLUE]
        assert max(others) < 0.5
        torch.testing.assert_close(unmasked[CREATURE], masked[CREATURE])


# --------------------------------------------------------------------------- out of range, not a number


@pytest.mark.parametrize("answer, words", [
    (0.005, ["below the slider's lowest temperature, 0.01"]),
    (1e-6, ["below the slider's lowest"]),
    (200, ["above the slider's highest temperature, 100"]),
    (0, ["must be positive"]),
    (-0.1, ["must be positive"]),
])
def test_out_of_the_sliders_range(capsys, answer, words):
    r = verdict(capsys, answer)
    assert not r
    for w in words:
        assert w in r.message, r.message


def _a_function():
    return 0.1


@pytest.mark.parametrize("answer, words", [
    (..., ["not implemented yet"]),  # the stub
    (None, ["is None", "`...`"]),
    ("0.1", ["the string '0.1'", "without quotes"]),
    ([0.1], ["a list of 1 item:", "one number"]),
    ((0.1, 0.2), ["a tuple of 2 items"]),
    ([[1.0, 0.0], [0.5, 0.5]], ["a list of 2 items", "explorer.weights"]),
    (torch.tensor([0.1, 0.2]), ["an array of shape (2,)"]),
    (np.array([0.1, 0.2]), ["an array of shape (2,)"]),
    (True, ["a bool (True)"]),
    (np.bool_(False), ["a bool (False)"]),
    (torch.tensor(True), ["a bool (True)"]),
    (float("nan"), ["is nan", "finite"]),
    (float("inf"), ["is inf", "finite"]),
    (_a_function, ["a function", "call it"]),
    (complex(0.1, 0), ["of type complex", "real number"]),
    (object(), ["of type object"]),
], ids=["stub", "None", "str", "list", "tuple", "weights", "tensor", "array", "bool", "numpy bool",
        "bool tensor", "nan", "inf", "function", "complex", "object"])
def test_not_a_number_is_named(capsys, answer, words):
    r = verdict(capsys, answer)
    assert not r and r.line.startswith("✗ sharper pattern: ")
    for w in words:
        assert w in r.message, r.message


def test_the_checker_never_raises(capsys):
    class Odd(float):
        def __float__(self):
            raise RuntimeError("odd")

    r = verdict(capsys, Odd(0.1))
    assert not r and "odd" in r.message


def test_the_chapter_calls_it_and_the_old_checker_stays():
    text = (ROOT / "notebooks" / "00_how_to_use.ipynb").read_text(encoding="utf-8")
    assert "checks.check_sharp_temperature(temperature)" in text
    assert "ex-00-causal" not in text and "check_causal_mask" not in text
    assert "check_causal_mask" in checks.__all__  # older copies of the notebook still call it

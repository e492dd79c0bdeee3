"""The figure style of attnlib.viz: what a reader must be able to trust in every figure.

Signed grids on a diverging map centred on zero with symmetric limits, probabilities on 0..1,
masked cells drawn distinctly, annotation colour by luminance, rounded colour-bar ticks, one shared
colour bar for small multiples, and figures that fit the page column.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import CenteredNorm, to_rgba

from attnlib import viz

TOKENS = ["a", "fluffy", "blue", "creature"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _image(ax):
    assert len(ax.images) == 1
    return ax.images[0]


def _colorbar_labels(fig):
    cbars = [a for a in fig.axes if a.get_label() == "<colorbar>"]
    fig.canvas.draw()
    return cbars, [[t.get_text() for t in cb.get_yticklabels()] for cb in cbars]


def _cell_texts(ax):
    """{(row, col): Text} of the numbers written in the cells."""
    return {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}


def test_signed_scores_get_a_diverging_map_centred_on_zero_with_symmetric_limits():
    scores = torch.tensor([[4.53, -1.36], [0.2, 1.0]])
    ax = viz.plot_attention(scores, TOKENS[:2], vmin=None, vmax=None)
    norm = _image(ax).norm
    assert isinstance(norm, CenteredNorm)
    assert norm.vcenter == 0.0
    assert norm.vmin == -norm.vmax
    assert norm.vmax == pytest.approx(4.6)  # 4.53 rounded up to two significant digits
    assert norm(0.0) == pytest.approx(0.5)  # white is zero
    # a negative score is drawn blue (B > R) and a positive one red, whatever the asymmetry
    cmap = _image(ax).cmap
    r, _, b, _ = cmap(norm(-1.36))
    assert b > r
    r, _, b, _ = cmap(norm(1.0))
    assert r > b


def test_plot_scores_is_signed_even_when_every_score_is_positive():
    ax = viz.plot_scores(torch.tensor([[0.5, 2.0], [1.0, 3.0]]), TOKENS[:2])
    norm = _image(ax).norm
    assert isinstance(norm, CenteredNorm) and norm.vmin == -3.0 and norm.vmax == 3.0


def test_explicit_asymmetric_signed_limits_are_made_symmetric():
    ax = viz.plot_attention(torch.zeros(2, 2), TOKENS[:2], vmin=-1.0, vmax=3.0, cmap="RdBu_r")
    norm = _image(ax).norm
    assert (norm.vmin, norm.vmax, norm.vcenter) == (-3.0, 3.0, 0.0)


def test_probabilities_use_a_sequential_map_from_zero_to_one():
    pattern = torch.softmax(torch.randn(4, 4, generator=torch.Generator().manual_seed(0)), -1)
    ax = viz.plot_attention(pattern, TOKENS)
    im = _image(ax)
    assert not isinstance(im.norm, CenteredNorm)
    assert (im.norm.vmin, im.norm.vmax) == (0.0, 1.0)
    assert im.cmap.name.startswith(viz.PROB_CMAP)


def test_masked_minus_inf_cells_are_hatched_grey_and_noted_on_the_colour_bar():
    scores = torch.tensor([[1.0, float("-inf")], [-2.0, 0.5]])
    ax = viz.plot_scores(scores, TOKENS[:2])
    im = _image(ax)
    assert np.ma.getmaskarray(im.get_array()).tolist() == [[False, True], [False, False]]
    assert im.cmap.get_bad() == pytest.approx(to_rgba(viz.MASKED_COLOR))
    # grey is not a colour of the map: masked cells cannot be read as a mid-range score
    greys = [im.cmap(x) for x in np.linspace(0, 1, 257)]
    assert min(np.abs(np.subtract(g, to_rgba(viz.MASKED_COLOR))).max() for g in greys) > 0.05
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert [(p.get_x(), p.get_y()) for p in hatched] == [(0.5, -0.5)]  # the cell (row 0, col 1)
    cbars = [a for a in ax.figure.axes if a.get_label() == "<colorbar>"]
    assert "masked" in cbars[0].get_ylabel()
    assert _cell_texts(ax)[(0, 1)].get_text() == "\u2212inf"


def test_a_mask_argument_hatches_blocked_cells_and_without_a_colour_bar_a_legend_says_so():
    causal = torch.ones(3, 3, dtype=torch.bool).tril()
    ax = viz.plot_attention(torch.eye(3), TOKENS[:3], mask=causal, colorbar=False)
    assert len([p for p in ax.patches if p.get_hatch()]) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["masked"]
    assert len(ax.texts) == 6  # blocked cells carry no number


def test_annotation_colour_follows_the_cell_luminance():
    # black digits on navy was the bug: strongly negative AND strongly positive cells are dark
    scores = torch.tensor([[-4.0, 0.0, 4.0]])
    ax = viz.plot_attention(scores, ["q"], ["k1", "k2", "k3"], vmin=None, vmax=None, cmap="RdBu_r")
    texts = _cell_texts(ax)
    assert [texts[(0, j)].get_color() for j in range(3)] == ["white", "black", "white"]
    assert viz.text_color((1, 1, 1, 1)) == "black"
    assert viz.text_color((0.03, 0.19, 0.42, 1)) == "white"  # navy
    assert viz.text_color((1, 1, 0, 1)) == "black"  # yellow is light though saturated


@pytest.mark.parametrize("top, expected", [(1.0000001192092896, 1.0), (4.53, 4.6), (1.36, 1.4), (0.0712, 0.072),
                                           (12.0, 12.0), (97.2, 98.0)])
def test_nice_limit_rounds_up_to_two_significant_digits(top, expected):
    assert viz.nice_limit(top) == expected  # exactly: the limit is printed on colour bars


def test_colour_bar_ticks_are_rounded():
    # the cosine grid's 1.0000001192092896 must not reach a colour bar
    grid = np.array([[1.0000001192092896, 0.31], [0.31, 0.9999999]])
    ax = viz.plot_attention(grid, TOKENS[:2], vmin=None, vmax=None)
    assert _image(ax).norm.vmax == 1.0
    _, (labels,) = _colorbar_labels(ax.figure)
    assert labels and all(len(s.lstrip("\u2212").replace(".", "")) <= 3 for s in labels), labels
    assert all(s.count(".") <= 1 for s in labels)


def test_small_multiples_share_one_colour_bar_and_one_scale():
    patterns = torch.softmax(torch.randn(8, 4, 4, generator=torch.Generator().manual_seed(1)), -1)
    fig = viz.plot_patterns(patterns, TOKENS, titles=[f"head {i}" for i in range(8)])
    cbars, _ = _colorbar_labels(fig)
    assert len(cbars) == 1
    panels = [a for a in fig.axes if a.images]
    assert len(panels) == 8
    assert {(a.images[0].norm.vmin, a.images[0].norm.vmax) for a in panels} == {(0.0, 1.0)}


def test_signed_small_multiples_use_the_largest_magnitude_of_all_panels():
    fig = viz.plot_heatmaps({"a": [[1.0, -0.5]], "b": [[-2.2, 0.0]]}, ["r"], ["c1", "c2"])
    norms = {(a.images[0].norm.vmin, a.images[0].norm.vmax) for a in fig.axes if a.images}
    assert norms == {(-2.2, 2.2)}


@pytest.mark.parametrize("make", [
    lambda: viz.plot_attention(torch.rand(18, 18), [f"t{i}" for i in range(18)]).figure,
    lambda: viz.plot_patterns(torch.rand(8, 9, 9), [f"t{i}" for i in range(9)]),
    lambda: viz.plot_patterns(torch.rand(3, 16, 16), [f"t{i}" for i in range(16)], ncols=3),
    lambda: viz.plot_masks({"causal": torch.ones(5, 5).tril(), "full": torch.ones(5, 5)}, TOKENS + ["x"]),
    lambda: viz.plot_decoder_flow(2, 64, 40).figure,
    lambda: viz.subplots(1, 2)[0],
])
def test_figures_fit_the_page_column(make):
    fig = make()
    assert fig.get_size_inches()[0] <= viz.PAGE_WIDTH_IN + 1e-9


def test_subplots_refuses_a_figure_wider_than_the_page():
    with pytest.raises(ValueError, match=r"subplots: width must be at most PAGE_WIDTH_IN = 7.0 inches, got 13"):
        viz.subplots(1, 2, width=13)


def test_annotated_heatmap_with_named_axes_for_a_layer_by_head_grid():
    m = np.array([[0.1, 0.93], [0.55, 0.2]])
    ax = viz.plot_heatmap(m, ["0", "1"], ["0", "1"], xlabel="head", ylabel="layer", vmin=0, vmax=1,
                          rotate_labels=False)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("head", "layer")
    texts = _cell_texts(ax)
    assert texts[(0, 1)].get_text() == "0.93" and texts[(0, 1)].get_color() == "white"
    assert texts[(0, 0)].get_color() == "black"


def test_plot_masks_draws_blocked_cells_hatched_with_one_figure_legend():
    fig = viz.plot_masks({"causal": torch.ones(3, 3, dtype=torch.bool).tril()}, TOKENS[:3])
    (ax,) = [a for a in fig.axes if a.images]
    assert len([p for p in ax.patches if p.get_hatch()]) == 3
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["may attend", "blocked"]


def test_plot_mask_reads_a_float_mask_as_attention_does():
    """An additive float mask (0 = may attend, -inf = blocked) is drawn like the bool mask it stands
    for, not inverted (a cast to bool would make 0.0 blocked and -inf allowed); 0/1 ints likewise."""
    allowed = torch.ones(3, 3, dtype=torch.bool).tril()
    additive = torch.zeros(3, 3).masked_fill(~allowed, float("-inf"))

    def hatched(ax):
        return len([p for p in ax.patches if p.get_hatch()])

    for m in (allowed, additive, allowed.long(), additive.numpy()):
        assert hatched(viz.plot_mask(m, TOKENS[:3])) == 3  # the three cells above the diagonal
    fig = viz.plot_masks([additive, allowed.int()], TOKENS[:3])
    assert [hatched(a) for a in fig.axes if a.images] == [3, 3]


def _hatched_cells(ax) -> list[tuple[int, int]]:
    """The (row, col) of the cells drawn hatched (masked) on ``ax``."""
    return sorted((round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in ax.patches if p.get_hatch())


_ALLOWED = torch.ones(3, 3, dtype=torch.bool).tril()
_ABOVE_DIAGONAL = [(0, 1), (0, 2), (1, 2)]
_GRIDS = torch.full((2, 3, 3), 0.3)

# every plot that takes a mask: draw(mask) -> the Axes of the (first) masked panel
_MASKED_PLOTS = {
    "plot_attention": lambda m: viz.plot_attention(torch.full((3, 3), 0.3), T3, mask=m),
    "plot_scores": lambda m: viz.plot_scores(torch.randn(3, 3), T3, mask=m),
    "plot_heatmap": lambda m: viz.plot_heatmap(torch.full((3, 3), 0.3), T3, T3, mask=m),
    "plot_heatmaps": lambda m: viz.plot_heatmaps(_GRIDS, T3, T3, masks=[m, m]).axes[0],
    "plot_patterns": lambda m: viz.plot_patterns(_GRIDS, T3, masks=[m, m]).axes[0],
    "plot_mask": lambda m: viz.plot_mask(m, T3),
    "plot_masks": lambda m: viz.plot_masks([m, m], T3).axes[0],
}
_MASK_KINDS = {
    "bool": _ALLOWED,
    "additive float": torch.zeros(3, 3).masked_fill(~_ALLOWED, float("-inf")),
    "additive float, finite biases": torch.tensor([[0.5, -math.inf, -math.inf], [-2.0, 0.0, -math.inf],
                                                   [1e4, -1e4, 0.0]]),
    "additive float64 array": np.where(_ALLOWED.numpy(), 0.0, -np.inf),
    "0/1 long": _ALLOWED.long(),
    "0/1 int array": _ALLOWED.numpy().astype(np.int32),
    "bool array": _ALLOWED.numpy(),
}


@pytest.mark.parametrize("kind", list(_MASK_KINDS))
@pytest.mark.parametrize("plot", list(_MASKED_PLOTS))
def test_every_plot_reads_a_mask_as_attention_does(plot, kind):
    """A float mask is added to the scores (0 or any finite value = may attend, -inf = blocked): it is
    drawn like the bool mask it stands for, never inverted as a cast to bool would draw it (0.0, which
    allows, read as False); 0/1 integers are read as bools."""
    ax = _MASKED_PLOTS[plot](_MASK_KINDS[kind])
    assert _hatched_cells(ax) == _ABOVE_DIAGONAL


def test_a_float_mask_hides_no_allowed_cell_and_the_colour_bar_notes_only_blocked_ones():
    additive = _MASK_KINDS["additive float"]
    for ax in (viz.plot_attention(torch.full((3, 3), 0.3), T3, mask=additive),
               viz.plot_attention(torch.full((3, 3), 0.3), T3, mask=_ALLOWED)):
        texts = _cell_texts(ax)
        assert sorted(texts) == [(i, j) for i in range(3) for j in range(3) if j <= i]  # numbers where allowed
        assert "masked" in ax.figure.axes[-1].get_ylabel()
    ax = viz.plot_attention(torch.full((3, 3), 0.3), T3, mask=torch.zeros(3, 3))  # all allowed
    assert _hatched_cells(ax) == [] and "masked" not in ax.figure.axes[-1].get_ylabel()


def test_plot_patterns_takes_any_iterable_and_a_dict_gives_the_titles():
    fig = viz.plot_patterns((p for p in _P), T3)  # a generator: read once
    assert len([a for a in fig.axes if a.images]) == 2
    fig = viz.plot_patterns({"head 0": _P[0], "head 1": _P[1]}, T3)
    assert [a.get_title() for a in fig.axes if a.images] == ["head 0", "head 1"]
    fig = viz.plot_patterns(_P, T3, vmin=None, vmax=None, cmap="RdBu_r", decimals=1, rotate_labels=False,
                            colorbar=False)  # colorbar is ignored: one shared colour bar
    assert len([a for a in fig.axes if a.get_label() == "<colorbar>"]) == 1


@pytest.mark.parametrize("colour, expected", [
    ("white", "black"), ("navy", "white"), ("#1a1a1a", "white"), ("0.9", "black"), ("yellow", "black"),
    ((1, 1, 1), "black"), ([0.03, 0.19, 0.42], "white"), (np.array([0.03, 0.19, 0.42, 1.0]), "white"),
])
def test_text_color_reads_any_colour_matplotlib_reads(colour, expected):
    assert viz.text_color(colour) == expected


_NOT_A_COLOUR = (r"^text_color: background must be a colour: a name such as 'navy', a hex string such as "
                 r"'#1a1a1a' or an RGB\(A\) tuple of numbers in \[0, 1\], got {}$")


@pytest.mark.parametrize("colour, exc, message", [
    ("whiet", ValueError, _NOT_A_COLOUR.format("'whiet'")),
    ((2, 0, 0), ValueError, _NOT_A_COLOUR.format(r"\(2, 0, 0\)")),
    ((1, 1), ValueError, _NOT_A_COLOUR.format(r"\(1, 1\)")),
    ((math.nan, 0, 0, 1), ValueError, _NOT_A_COLOUR.format(r"\(nan, 0, 0, 1\)")),
    (None, TypeError, r"^text_color: background must be a colour \(a name, a hex string or an RGB\(A\) "
                      r"tuple\), got None$"),
    (0.5, TypeError, r"^text_color: background must be a colour \(a name, a hex string or an RGB\(A\) "
                     r"tuple\), got 0.5$"),
], ids=["unknown-name", "above-1", "two-numbers", "nan", "none", "number"])
def test_text_color_refuses_what_is_not_a_colour(colour, exc, message):
    with pytest.raises(exc, match=message):
        viz.text_color(colour)


def test_bad_input_names_the_function_and_what_it_got():
    with pytest.raises(ValueError, match=r"plot_attention: weights must be 2-D \(T_q, T_k\), got shape \(2, 2, 2\)"):
        viz.plot_attention(torch.zeros(2, 2, 2), TOKENS[:2])
    with pytest.raises(ValueError, match=r"plot_attention: 2 query and 3 key labels for a grid of \(2, 2\)"):
        viz.plot_attention(torch.zeros(2, 2), TOKENS[:2], TOKENS[:3])
    with pytest.raises(ValueError, match=r"plot_heatmap: mask has shape \(3, 3\), expected \(2, 2\)"):
        viz.plot_heatmap(torch.zeros(2, 2), TOKENS[:2], TOKENS[:2], mask=torch.ones(3, 3))
    with pytest.raises(ValueError, match=r"vmin and vmax must be given together"):
        viz.plot_attention(torch.zeros(2, 2), TOKENS[:2], vmin=None, vmax=1.0)
    with pytest.raises(ValueError, match=r"plot_decoder_flow: n_layers must be an int from 1 to 4, got 7"):
        viz.plot_decoder_flow(7)


def test_the_signatures_the_chapters_call_keep_working():
    # the calls as the chapters make them today (grep notebooks/ for "viz.")
    fig, axes = plt.subplots(1, 2)
    viz.plot_attention(torch.rand(4, 4), TOKENS, ax=axes[0], title="t", vmin=None, vmax=None, cmap="RdBu_r")
    viz.plot_attention(torch.rand(4, 4), TOKENS, ax=axes[1], colorbar=False, annotate=False)
    from matplotlib.colors import ListedColormap

    viz.plot_attention(torch.ones(4, 4).tril() * 2, TOKENS, cmap=ListedColormap(["white", "red", "blue"]),
                       vmin=0, vmax=2, annotate=False, colorbar=False, title="tiles")
    fig = viz.plot_patterns(torch.rand(2, 4, 4), TOKENS, titles=["x", "y"], ncols=2)
    assert len([a for a in fig.axes if a.images]) == 2
    viz.plot_patterns(torch.rand(2, 3, 4), ["q1", "q2", "q3"], TOKENS, titles=["x", "y"], annotate=False)


def test_the_page_checks_use_the_same_page_width():
    from test_pages import PAGE_WIDTH_IN

    assert viz.PAGE_WIDTH_IN == PAGE_WIDTH_IN


def test_shared_colorbar_serves_panels_drawn_one_by_one():
    causal = torch.tensor([[1.0, float("-inf")], [0.3, 0.7]])
    fig, axes = viz.subplots(1, 2, height=2.5)
    viz.plot_attention(causal, TOKENS[:2], ax=axes[0], colorbar=False)
    viz.plot_attention(torch.full((2, 3), 1 / 3), TOKENS[:2], TOKENS[:3], ax=axes[1], colorbar=False)
    assert axes[0].get_legend() is not None  # the masked cell's legend, before the bar takes it over
    cbar = viz.shared_colorbar(axes)
    assert len(fig.axes) == 3  # two panels and ONE colour bar
    assert (cbar.mappable.norm.vmin, cbar.mappable.norm.vmax) == (0.0, 1.0)
    assert "masked" in cbar.ax.get_ylabel() and all(ax.get_legend() is None for ax in axes)


def test_shared_colorbar_refuses_panels_on_different_scales():
    fig, axes = viz.subplots(1, 2, height=2.5)
    viz.plot_attention(torch.eye(2), TOKENS[:2], ax=axes[0], colorbar=False)
    viz.plot_scores(torch.randn(2, 2), TOKENS[:2], ax=axes[1], colorbar=False)
    with pytest.raises(ValueError, match="shared_colorbar: the panels use different scales"):
        viz.shared_colorbar(axes)
    with pytest.raises(ValueError, match="shared_colorbar: axes must be a non-empty list"):
        viz.shared_colorbar([])


def _overlaps(labels) -> list[tuple[str, str]]:
    """Pairs of visible labels that touch. Upright text is compared by its boxes; slanted labels are
    parallel bands, apart when the gap between their anchors, measured across the slant, is at least
    a line of text (the boxes of slanted words overlap even when the words do not)."""
    shown = [t for t in labels if t.get_visible() and t.get_text()]
    if not shown:
        return []
    angle = shown[0].get_rotation() % 180
    if angle in (0.0, 90.0):
        boxes = [(t.get_text(), t.get_window_extent()) for t in shown]
        if angle == 90.0:  # compare horizontally only: upright columns of text side by side
            return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:]
                    if ba.x1 > bb.x0 and bb.x1 > ba.x0]
        return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if ba.overlaps(bb)]
    fig = shown[0].figure
    line = shown[0].get_fontsize() * fig.dpi / 72
    xs = [t.get_window_extent().x1 for t in shown]  # right-anchored: the box's right edge
    return [(shown[i].get_text(), shown[i + 1].get_text()) for i in range(len(xs) - 1)
            if abs(xs[i + 1] - xs[i]) * np.sin(np.radians(angle)) < line]


@pytest.mark.parametrize("n_tokens", [4, 9, 16, 24])
def test_tick_labels_never_overlap_in_small_multiples(n_tokens):
    words = ["the", "fluffy", "blue", "creature", "slept", "in", "a", "warm", "and", "sunny", "spot", "near"]
    tokens = [words[i % len(words)] for i in range(n_tokens)]
    causal = torch.ones(n_tokens, n_tokens).tril().bool()
    fig = viz.plot_masks([causal, causal, causal], tokens)
    fig.canvas.draw()
    for ax in fig.axes:
        assert not _overlaps(ax.get_xticklabels()), f"{n_tokens} tokens: column labels overlap"
        assert not _overlaps(ax.get_yticklabels()), f"{n_tokens} tokens: row labels overlap"
        shown = [t.get_text() for t in ax.get_xticklabels()]
        assert len(shown) >= n_tokens // 3 and shown[0] == "the"  # thinned, never emptied


def test_roomy_grids_keep_every_label_at_45_degrees():
    ax = viz.plot_attention(torch.full((4, 4), 0.25), TOKENS)
    labels = ax.get_xticklabels()
    assert [t.get_text() for t in labels] == TOKENS and {t.get_rotation() for t in labels} == {45.0}


def test_nan_is_drawn_black_and_named_never_as_a_masked_cell():
    w = torch.tensor([[1.0, 0.0], [float("nan"), float("nan")]])
    ax = viz.plot_attention(w, TOKENS[:2], mask=torch.tensor([[True, False], [True, True]]))
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("NaN") == 2
    fills = [p for p in ax.patches if p.get_fill() and p.get_facecolor()[:3] == to_rgba(viz.NAN_COLOR)[:3]]
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert len(fills) == 2 and len(hatched) == 1  # two NaN cells, one masked cell
    label = ax.figure.axes[-1].get_ylabel()
    assert "masked" in label and "NaN" in label
    ax2 = viz.plot_attention(torch.tensor([[float("nan"), 1.0]]), ["q"], TOKENS[:2], colorbar=False)
    assert [t.get_text() for t in ax2.get_legend().get_texts()] == ["NaN"]  # nothing is masked here

# --------------------------------------------------------------------------- bad input

_P = torch.softmax(torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(0)), -1)
T3 = TOKENS[:3]
_NAN_MASK = torch.tensor([[0.0, float("nan")], [0.0, 0.0]])
_INF_MASK = torch.tensor([[0.0, float("-inf")], [float("inf"), 0.0]])

BAD = [
    ("patterns-empty-list", lambda: viz.plot_patterns([], []), ValueError,
     r"^plot_patterns: patterns must not be empty \(at least one grid\)$"),
    ("patterns-empty-tensor", lambda: viz.plot_patterns(torch.zeros(0, 2, 2), TOKENS[:2]), ValueError,
     r"^plot_patterns: patterns must not be empty, got shape \(0, 2, 2\)$"),
    ("patterns-2d", lambda: viz.plot_patterns(_P[0], T3), ValueError,
     r"^plot_patterns: patterns must be 3-D \(n, T_q, T_k\), got shape \(3, 3\)$"),
    ("patterns-labels", lambda: viz.plot_patterns(_P, TOKENS), ValueError,
     r"^plot_patterns: 4 query and 4 key labels for patterns of shape \(3, 3\)$"),
    ("patterns-ragged", lambda: viz.plot_patterns([_P[0], _P[0, :2]], T3), ValueError,
     r"^plot_patterns: every grid of patterns must have one shape, got \[\(3, 3\), \(2, 3\)\]$"),
    ("attention-empty", lambda: viz.plot_attention(torch.zeros(0, 3), [], T3), ValueError,
     r"^plot_attention: weights must not be empty, got shape \(0, 3\)$"),
    ("attention-no-labels", lambda: viz.plot_attention(torch.eye(2), None), TypeError,
     r"^plot_attention: q_tokens must be a list of labels, got None$"),
    ("attention-str-weights", lambda: viz.plot_attention([["a", "b"]], ["q"], ["a", "b"]), TypeError,
     r"^plot_attention: weights must be a tensor or an array of numbers, got a list$"),
    ("attention-vmin-above-vmax", lambda: viz.plot_attention(torch.eye(2), TOKENS[:2], vmin=1.0, vmax=0.0),
     ValueError, r"^plot_attention: vmin must be below vmax, got vmin=1.0, vmax=0.0$"),
    ("attention-vmax-inf", lambda: viz.plot_attention(torch.eye(2), TOKENS[:2], vmax=float("inf")),
     ValueError, r"^plot_attention: vmax must be a finite number, got inf$"),
    ("scores-limit-0", lambda: viz.plot_scores(torch.eye(2), TOKENS[:2], limit=0), ValueError,
     r"^plot_scores: limit must be a finite number other than 0 \(or None\), got 0$"),
    ("scores-limit-nan", lambda: viz.plot_scores(torch.eye(2), TOKENS[:2], limit=float("nan")), ValueError,
     r"^plot_scores: limit must be a finite number, got nan$"),
    ("scores-3d", lambda: viz.plot_scores(torch.zeros(1, 2, 2), TOKENS[:2]), ValueError,
     r"^plot_scores: scores must be 2-D \(T_q, T_k\), got shape \(1, 2, 2\)$"),
    ("heatmap-empty", lambda: viz.plot_heatmap(torch.zeros(0, 0), [], []), ValueError,
     r"^plot_heatmap: values must not be empty, got shape \(0, 0\)$"),
    ("heatmap-decimals", lambda: viz.plot_heatmap(torch.eye(2), "ab", "cd", decimals=-1), ValueError,
     r"^plot_heatmap: decimals must be a non-negative int, got -1$"),
    ("heatmap-vmin-alone", lambda: viz.plot_heatmap(torch.eye(2), "ab", "cd", vmin=0), ValueError,
     r"^plot_heatmap: vmin and vmax must be given together \(or both None\), got vmin=0, vmax=None$"),
    ("heatmap-labels-none", lambda: viz.plot_heatmap(torch.eye(2), None, "cd"), TypeError,
     r"^plot_heatmap: row labels must be a list of labels, got None$"),
    ("heatmaps-empty-dict", lambda: viz.plot_heatmaps({}, ["r"], ["c"]), ValueError,
     r"^plot_heatmaps: grids must not be empty \(at least one grid\)$"),
    ("heatmaps-empty-list", lambda: viz.plot_heatmaps([], ["r"], ["c"]), ValueError,
     r"^plot_heatmaps: grids must not be empty \(at least one grid\)$"),
    ("heatmaps-labels", lambda: viz.plot_heatmaps(torch.zeros(2, 2, 3), ["r"], ["a", "b", "c"]), ValueError,
     r"^plot_heatmaps: 1 row and 3 column labels for grids of shape \(2, 3\)$"),
    ("heatmaps-mask-shape", lambda: viz.plot_heatmaps(torch.zeros(2, 2, 2), "ab", "cd",
                                                      masks=[torch.ones(2, 2), torch.ones(3, 3)]), ValueError,
     r"^plot_heatmaps: masks\[1\] has shape \(3, 3\), expected \(2, 2\) like the grids$"),
    ("heatmaps-ncols-0", lambda: viz.plot_heatmaps(torch.zeros(2, 2, 2), "ab", "cd", ncols=0), ValueError,
     r"^plot_heatmaps: ncols must be a positive int or None, got 0$"),
    ("heatmaps-ragged", lambda: viz.plot_heatmaps([[[1.0]], [[1.0, 2.0]]], ["r"], ["c"]), ValueError,
     r"^plot_heatmaps: every grid of grids must have one shape, got \[\(1, 1\), \(1, 2\)\]$"),
    ("heatmaps-not-iterable", lambda: viz.plot_heatmaps(3, ["r"], ["c"]), TypeError,
     r"^plot_heatmaps: grids must be a 3-D tensor, a list or a dict of grids, got 3$"),
    ("mask-labels", lambda: viz.plot_mask(torch.ones(3, 3), TOKENS[:2]), ValueError,
     r"^plot_mask: 2 query and 2 key labels for a mask of shape \(3, 3\)$"),
    ("mask-1d", lambda: viz.plot_mask(torch.ones(3), T3), ValueError,
     r"^plot_mask: mask must be 2-D \(T_q, T_k\), got shape \(3,\)$"),
    ("masks-empty", lambda: viz.plot_masks([], []), ValueError, r"^plot_masks: masks must not be empty$"),
    ("masks-empty-dict", lambda: viz.plot_masks({}, T3), ValueError,
     r"^plot_masks: masks must not be empty$"),
    ("masks-2d-tensor", lambda: viz.plot_masks(torch.ones(3, 3), T3), ValueError,
     r"^plot_masks: masks must be 3-D \(n, T_q, T_k\), got shape \(3, 3\)$"),
    ("masks-labels", lambda: viz.plot_masks([torch.ones(3, 3), torch.ones(4, 4)], T3), ValueError,
     r"^plot_masks: 3 query and 3 key labels for masks\[1\] of shape \(4, 4\)$"),
    ("masks-per-mask-labels", lambda: viz.plot_masks(torch.ones(2, 3, 3), [T3]), ValueError,
     r"^plot_masks: 1 lists of labels for 2 masks$"),
    ("masks-titles", lambda: viz.plot_masks(torch.ones(2, 3, 3), T3, titles=["a"]), ValueError,
     r"^plot_masks: 1 titles for 2 masks$"),
    ("masks-ncols", lambda: viz.plot_masks(torch.ones(2, 3, 3), T3, ncols=-1), ValueError,
     r"^plot_masks: ncols must be a positive int or None, got -1$"),
    ("subplots-nrows-0", lambda: viz.subplots(0, 2), ValueError,
     r"^subplots: nrows must be a positive int, got 0$"),
    ("subplots-ncols-float", lambda: viz.subplots(1, 2.0), TypeError,
     r"^subplots: ncols must be a positive int, got 2.0$"),
    ("subplots-width-0", lambda: viz.subplots(width=0), ValueError,
     r"^subplots: width must be a finite number > 0.0, got 0$"),
    ("subplots-height-negative", lambda: viz.subplots(height=-1), ValueError,
     r"^subplots: height must be a finite number > 0.0, got -1$"),
    ("shared-colorbar-not-axes", lambda: viz.shared_colorbar([None]), TypeError,
     r"^shared_colorbar: axes must be matplotlib Axes, got None$"),
    # a float mask is added to the scores: NaN and +inf are refused, named by the function called
    ("attention-mask-nan", lambda: viz.plot_attention(torch.eye(2), TOKENS[:2], mask=_NAN_MASK), ValueError,
     r"^plot_attention: a float mask is added to the scores and must hold finite numbers or -inf "
     r"\(blocked\), got NaN or \+inf$"),
    ("scores-mask-inf", lambda: viz.plot_scores(torch.eye(2), TOKENS[:2], mask=_INF_MASK),
     ValueError, r"^plot_scores: a float mask is added to the scores and must hold finite numbers or -inf "
                 r"\(blocked\), got NaN or \+inf$"),
    ("heatmap-mask-nan", lambda: viz.plot_heatmap(torch.eye(2), "ab", "cd", mask=_NAN_MASK.numpy()), ValueError,
     r"^plot_heatmap: a float mask is added to the scores and must hold finite numbers or -inf "
     r"\(blocked\), got NaN or \+inf$"),
    ("heatmaps-mask-nan", lambda: viz.plot_heatmaps(torch.zeros(2, 2, 2), "ab", "cd",
                                                    masks=[torch.zeros(2, 2), _NAN_MASK]), ValueError,
     r"^plot_heatmaps: a float masks\[1\] is added to the scores and must hold finite numbers or -inf "
     r"\(blocked\), got NaN or \+inf$"),
    ("attention-mask-shape", lambda: viz.plot_attention(torch.eye(2), TOKENS[:2], mask=torch.zeros(2, 3)),
     ValueError, r"^plot_attention: mask has shape \(2, 3\), expected \(2, 2\) like the weights$"),
    ("scores-mask-1d", lambda: viz.plot_scores(torch.eye(2), TOKENS[:2], mask=torch.ones(2, dtype=torch.bool)),
     ValueError, r"^plot_scores: mask must be 2-D \(T_q, T_k\), got shape \(2,\)$"),
    ("attention-mask-ints", lambda: viz.plot_attention(torch.eye(2), TOKENS[:2], mask=torch.full((2, 2), 2)),
     ValueError, r"^plot_attention: an integer mask must hold 0 and 1 only \(1 = may attend\), got \[2\]$"),
    ("heatmaps-masks-not-a-list", lambda: viz.plot_heatmaps(torch.zeros(2, 2, 2), "ab", "cd", masks=True),
     TypeError, r"^plot_heatmaps: masks must be a list of masks, one per grid, got True$"),
    # keywords are checked before the figure is made, under the name of the function called
    ("heatmaps-unknown-keyword", lambda: viz.plot_heatmaps(torch.zeros(2, 2, 2), "ab", "cd", foo=1), TypeError,
     r"^plot_heatmaps: got an unexpected keyword argument 'foo'; it takes titles, ncols, suptitle, xlabel, "
     r"ylabel, cmap, vmin, vmax, masks, colorbar_label, panel_width, annotate, decimals, rotate_labels$"),
    ("heatmaps-colorbar", lambda: viz.plot_heatmaps(torch.zeros(2, 2, 2), "ab", "cd", colorbar=False),
     TypeError, r"^plot_heatmaps: got an unexpected keyword argument 'colorbar'; it takes titles, .*$"),
    ("heatmaps-decimals", lambda: viz.plot_heatmaps(torch.zeros(2, 2, 2), "ab", "cd", decimals=-1), ValueError,
     r"^plot_heatmaps: decimals must be a non-negative int, got -1$"),
    ("patterns-unknown-keyword", lambda: viz.plot_patterns(_P, T3, foo=1), TypeError,
     r"^plot_patterns: got an unexpected keyword argument 'foo'; it takes titles, ncols, suptitle, cmap, "
     r"vmin, vmax, masks, colorbar_label, panel_width, annotate, decimals, rotate_labels$"),
    ("patterns-xlabel", lambda: viz.plot_patterns(_P, T3, xlabel="x"), TypeError,
     r"^plot_patterns: got an unexpected keyword argument 'xlabel'; it takes .*$"),
    ("patterns-decimals", lambda: viz.plot_patterns(_P, T3, decimals=1.5), TypeError,
     r"^plot_patterns: decimals must be a non-negative int, got 1.5$"),
    ("patterns-ncols", lambda: viz.plot_patterns(_P, T3, ncols=0), ValueError,
     r"^plot_patterns: ncols must be a positive int or None, got 0$"),
    ("patterns-titles", lambda: viz.plot_patterns(_P, T3, titles=["a"]), ValueError,
     r"^plot_patterns: 1 titles for 2 grids$"),
    ("patterns-masks", lambda: viz.plot_patterns(_P, T3, masks=[torch.ones(3, 3), torch.ones(2, 3)]), ValueError,
     r"^plot_patterns: masks\[1\] has shape \(2, 3\), expected \(3, 3\) like the grids$"),
    ("patterns-empty-generator", lambda: viz.plot_patterns((p for p in []), T3), ValueError,
     r"^plot_patterns: patterns must not be empty \(at least one grid\)$"),
    # plot_masks had a row_labels keyword that did nothing; the row labels are q_tokens
    ("masks-row-labels", lambda: viz.plot_masks(torch.ones(1, 2, 2), ["x", "y"], row_labels=[["x", "y"]]),
     TypeError, r"^plot_masks\(\) got an unexpected keyword argument 'row_labels'$"),
    ("masks-float-nan", lambda: viz.plot_masks([torch.zeros(2, 2), _NAN_MASK], TOKENS[:2]), ValueError,
     r"^plot_masks: a float masks\[1\] is added to the scores and must hold finite numbers or -inf "
     r"\(blocked\), got NaN or \+inf$"),
]


@pytest.mark.parametrize("call,exc,message", [pytest.param(c, e, m, id=i) for i, c, e, m in BAD])
def test_bad_input_gets_a_clear_error_before_a_figure_is_made(call, exc, message):
    before = plt.get_fignums()
    with pytest.raises(exc, match=message):
        call()
    assert plt.get_fignums() == before  # refused before any figure was created


def test_stream_flow_draws_causal_arrows_weighted_by_the_pattern():
    tokens = ["a", "fluffy", "blue", "creature"]
    ax = viz.plot_stream_flow(tokens, n_layers=2)
    arrows = [c for c in ax.texts if getattr(c, "arrow_patch", None) is not None]
    assert len(arrows) == 2 * (4 * 3 // 2)  # per layer, one arrow per earlier key of each query
    assert all(a.xy[0] > a.xyann[0] for a in arrows)  # every arrow points forward, never back
    pattern = torch.tensor([[1.0, 0, 0, 0], [0.9, 0.1, 0, 0], [0.5, 0.5, 0, 0], [0.1, 0.1, 0.7, 0.1]])
    ax = viz.plot_stream_flow(tokens, n_layers=1, patterns=[pattern])
    widths = {(round(a.xyann[0]), round(a.xy[0])): a.arrow_patch.get_linewidth() for a in ax.texts
              if getattr(a, "arrow_patch", None) is not None}
    assert widths[(2, 3)] > widths[(0, 3)] and widths[(0, 1)] > widths[(0, 2)]  # heavier weight, wider


@pytest.mark.parametrize("kwargs, message", [
    (dict(tokens=[]), "1 to 8 tokens"),
    (dict(tokens=list("abcdefghi")), "1 to 8 tokens"),
    (dict(tokens=["a", "b"], n_layers=0), "n_layers must be an int from 1 to 4"),
    (dict(tokens=["a", "b"], n_layers=1, patterns=[torch.eye(3)]), r"patterns must be 1 grids of shape \(2, 2\)"),
    (dict(tokens=["a", "b"], n_layers=1, patterns=[torch.full((2, 2), 0.5)]), "weight on a later key"),
])
def test_stream_flow_refuses_bad_input(kwargs, message):
    with pytest.raises(ValueError, match="^plot_stream_flow: .*" + message):
        viz.plot_stream_flow(**kwargs)  # the message names the function, then what is wrong


# --------------------------------------------------------------------------- bad input, second audit

_E2 = torch.eye(2)
_AX = r"ax must be a matplotlib Axes or None \(a new figure\), got 'str'$"
_AUTO = r"annotate must be True, False or None \(the default: annotate when the grid is at most 12 x 12\), got 'no'$"
_CMAP_NAME = (r"cmap must name a matplotlib colour map such as 'Blues' or 'RdBu_r' \(list them with "
              r"sorted\(matplotlib.colormaps\)\), got 'bogus'$")
_CMAP_KIND = r"cmap must be a colour map name such as 'Blues', a matplotlib Colormap or None, got 5$"
_WEIGHTS = r"^plot_stream_flow: patterns\[0\] must hold attention weights in \[0, 1\], got "
_NAN_PATTERN = torch.tensor([[1.0, 0.0], [math.nan, 0.5]])

BAD_2 = [
    # a colour map is named by the function called, in a short message (matplotlib's lists every map)
    ("heatmap-cmap-unknown", lambda: viz.plot_heatmap(_E2, "ab", "cd", cmap="bogus"), ValueError,
     r"^plot_heatmap: " + _CMAP_NAME),
    ("heatmap-cmap-int", lambda: viz.plot_heatmap(_E2, "ab", "cd", cmap=5), TypeError, r"^plot_heatmap: " + _CMAP_KIND),
    ("attention-cmap-unknown", lambda: viz.plot_attention(_E2, "ab", cmap="bogus"), ValueError,
     r"^plot_attention: " + _CMAP_NAME),
    ("heatmaps-cmap-unknown", lambda: viz.plot_heatmaps(torch.zeros(2, 2, 2), "ab", "cd", cmap="bogus"),
     ValueError, r"^plot_heatmaps: " + _CMAP_NAME),
    ("patterns-cmap-int", lambda: viz.plot_patterns(_P, T3, cmap=5), TypeError, r"^plot_patterns: " + _CMAP_KIND),
    # ax: an Axes or None, in every function that takes one
    ("heatmap-ax", lambda: viz.plot_heatmap(_E2, "ab", "cd", ax="str"), TypeError, r"^plot_heatmap: " + _AX),
    ("attention-ax", lambda: viz.plot_attention(_E2, "ab", ax="str"), TypeError, r"^plot_attention: " + _AX),
    ("scores-ax", lambda: viz.plot_scores(_E2, "ab", ax="str"), TypeError, r"^plot_scores: " + _AX),
    ("mask-ax", lambda: viz.plot_mask(_E2, "ab", ax="str"), TypeError, r"^plot_mask: " + _AX),
    ("decoder-flow-ax", lambda: viz.plot_decoder_flow(ax="str"), TypeError, r"^plot_decoder_flow: " + _AX),
    ("stream-flow-ax", lambda: viz.plot_stream_flow(["a", "b"], 1, ax="str"), TypeError,
     r"^plot_stream_flow: " + _AX),
    # values that cannot be drawn: complex numbers (their real part was drawn), a meta tensor
    ("heatmap-complex-tensor", lambda: viz.plot_heatmap(torch.ones(2, 2, dtype=torch.complex64), "ab", "cd"),
     TypeError, r"^plot_heatmap: values must hold real numbers, got a torch.complex64 tensor of shape \(2, 2\); "
                r"draw its .real, .imag or .abs\(\)$"),
    ("heatmap-complex-array", lambda: viz.plot_heatmap(np.ones((2, 2)) * 1j, "ab", "cd"), TypeError,
     r"^plot_heatmap: values must hold real numbers, got a complex128 array; draw its .real, .imag or abs\(\)$"),
    ("patterns-complex-tensor", lambda: viz.plot_patterns(_P.to(torch.complex64), T3), TypeError,
     r"^plot_patterns: patterns must hold real numbers, got a torch.complex64 tensor of shape \(2, 3, 3\); .*$"),
    ("heatmap-meta", lambda: viz.plot_heatmap(torch.ones(2, 2, device="meta"), "ab", "cd"), ValueError,
     r"^plot_heatmap: values must be a tensor with values to draw, got a torch.float32 tensor of shape \(2, 2\) "
     r"on the meta device \(a shape without values\)$"),
    ("attention-meta-mask", lambda: viz.plot_attention(_E2, "ab", mask=torch.ones(2, 2, device="meta")),
     ValueError, r"^plot_attention: mask must be a tensor with values to draw, got .* on the meta device .*$"),
    # switches: True or False ("no" was read as yes), annotate None too
    ("heatmap-annotate-str", lambda: viz.plot_heatmap(_E2, "ab", "cd", annotate="no"), TypeError,
     r"^plot_heatmap: " + _AUTO),
    ("heatmap-colorbar-str", lambda: viz.plot_heatmap(_E2, "ab", "cd", colorbar="no"), TypeError,
     r"^plot_heatmap: colorbar must be True or False, got 'no'$"),
    ("heatmap-rotate-labels-int", lambda: viz.plot_heatmap(_E2, "ab", "cd", rotate_labels=0), TypeError,
     r"^plot_heatmap: rotate_labels must be True or False, got 0$"),
    ("attention-annotate-str", lambda: viz.plot_attention(_E2, "ab", annotate="no"), TypeError,
     r"^plot_attention: " + _AUTO),
    ("attention-colorbar-int", lambda: viz.plot_attention(_E2, "ab", colorbar=1), TypeError,
     r"^plot_attention: colorbar must be True or False, got 1$"),
    ("scores-annotate-str", lambda: viz.plot_scores(_E2, "ab", annotate="no"), TypeError, r"^plot_scores: " + _AUTO),
    ("scores-colorbar-none", lambda: viz.plot_scores(_E2, "ab", colorbar=None), TypeError,
     r"^plot_scores: colorbar must be True or False, got None$"),
    ("mask-legend-str", lambda: viz.plot_mask(_E2, "ab", legend="no"), TypeError,
     r"^plot_mask: legend must be True or False, got 'no'$"),
    ("heatmaps-annotate-str", lambda: viz.plot_heatmaps(torch.zeros(2, 2, 2), "ab", "cd", annotate="no"),
     TypeError, r"^plot_heatmaps: " + _AUTO),
    ("patterns-rotate-labels-str", lambda: viz.plot_patterns(_P, T3, rotate_labels="no"), TypeError,
     r"^plot_patterns: rotate_labels must be True or False, got 'no'$"),
    # plot_stream_flow's patterns: a list of grids of attention weights
    ("stream-flow-patterns-int", lambda: viz.plot_stream_flow(["a", "b"], 1, patterns=5), TypeError,
     r"^plot_stream_flow: patterns must be a list of \(T, T\) attention patterns, one per layer, or None, got 5$"),
    ("stream-flow-patterns-str", lambda: viz.plot_stream_flow(["a", "b"], 1, patterns="ab"), TypeError,
     r"^plot_stream_flow: patterns must be a list of \(T, T\) attention patterns, one per layer, or None, "
     r"got 'ab'$"),
    ("stream-flow-patterns-strs", lambda: viz.plot_stream_flow(["a", "b"], 1, patterns=[["a", "b"]]), TypeError,
     r"^plot_stream_flow: patterns\[0\] must be a tensor or an array of numbers, got a list$"),
    ("stream-flow-patterns-nan", lambda: viz.plot_stream_flow(["a", "b"], 1, patterns=[_NAN_PATTERN]),
     ValueError, _WEIGHTS + r"nan \(query 1, key 0\)$"),
    ("stream-flow-patterns-negative", lambda: viz.plot_stream_flow(
        ["a", "b"], 1, patterns=[torch.tensor([[1.0, 0.0], [-0.5, 1.5]])]), ValueError,
     _WEIGHTS + r"-0.5 \(query 1, key 0\)$"),
    ("stream-flow-patterns-above-1", lambda: viz.plot_stream_flow(
        ["a", "b"], 1, patterns=[torch.tensor([[2.0, 0.0], [0.5, 0.5]])]), ValueError,
     _WEIGHTS + r"2 \(query 0, key 0\)$"),
    # subplots sets figsize and layout itself
    ("subplots-figsize", lambda: viz.subplots(figsize=(3, 3)), TypeError,
     r"^subplots: figsize is set from width= and height= \(inches; width at most PAGE_WIDTH_IN = 7.0\); pass "
     r"those instead, got figsize=\(3, 3\)$"),
    ("subplots-layout", lambda: viz.subplots(layout="tight"), TypeError,
     r"^subplots: layout is always 'constrained' \(colour bars and labels never overlap\); for another layout "
     r"use plt.subplots, got layout='tight'$"),
    ("nice-limit-str", lambda: viz.nice_limit("a"), TypeError, r"^nice_limit: x must be a real number, got 'a'$"),
    ("nice-limit-none", lambda: viz.nice_limit(None), TypeError, r"^nice_limit: x must be a real number, got None$"),
]


@pytest.mark.parametrize("call,exc,message", [pytest.param(c, e, m, id=i) for i, c, e, m in BAD_2])
def test_bad_input_of_the_second_audit_gets_a_clear_error_before_a_figure_is_made(call, exc, message):
    before = plt.get_fignums()
    with pytest.raises(exc, match=message):
        call()
    assert plt.get_fignums() == before  # refused before any figure was created


def test_an_array_of_axes_passed_as_ax_is_named_with_a_hint():
    _, axes = viz.subplots(1, 2)
    with pytest.raises(TypeError, match=r"^plot_attention: ax must be a matplotlib Axes or None \(a new "
                                        r"figure\), got a ndarray; pick one of them, e.g. ax=axes\[0\]$"):
        viz.plot_attention(_E2, "ab", ax=axes)
    assert not axes[0].images and not axes[1].images  # nothing drawn


def test_switches_take_numpy_bools_and_a_real_tensor_or_numpy_number_is_a_limit():
    ax = viz.plot_heatmap(_E2, "ab", "cd", annotate=np.False_, colorbar=np.True_, rotate_labels=np.False_)
    assert not ax.texts and len(ax.figure.axes) == 2  # no numbers written; a colour bar
    assert viz.plot_mask(_E2, "ab", legend=np.False_).get_legend() is None
    assert viz.nice_limit(np.float32(1.36)) == viz.nice_limit(torch.tensor(1.36)) == 1.4


def test_plot_masks_takes_its_labels_as_a_numpy_array():
    """``q_tokens and ...`` asked a numpy array for its truth value ("ambiguous")."""
    fig = viz.plot_masks(torch.ones(2, 2, 2, dtype=torch.bool), np.array(["x", "y"]),
                         k_tokens=np.array(["k", "l"]))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["x", "y"]
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["k", "l"]


def test_stream_flow_takes_a_pattern_a_float32_rounding_above_one():
    pattern = torch.tensor([[1.0 + 1e-7, 0.0], [0.5, 0.5]])
    assert viz.plot_stream_flow(["a", "b"], 1, patterns=[pattern]) is not None

"""Figures. Every figure in the book is drawn here, so that they all follow one style:

* signed values (scores, weights of a matrix, changes) on a diverging map centred on zero, with
  symmetric limits, so that white always means 0;
* probabilities (attention patterns) on a sequential map from 0 to 1;
* masked entries (-inf scores, or cells a ``mask`` blocks) in hatched grey, with a note in the
  colour bar or a legend entry;
* numbers written in a cell in black or white, whichever contrasts more with the cell's colour;
* colour bars with short, rounded tick labels; small multiples share one colour bar;
* figures at most :data:`PAGE_WIDTH_IN` inches wide, the width of the book's text column.

Attention patterns are drawn with queries as rows and keys as columns, the layout of the tensors
([..., query_pos, key_pos]); every axis is labelled with its tokens.
"""

from __future__ import annotations

import math
import numbers

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import CenteredNorm, Colormap, Normalize, to_rgba
from matplotlib.patches import FancyBboxPatch, Patch, Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator

from . import _validate as V

__all__ = [
    "PAGE_WIDTH_IN",
    "SIGNED_CMAP",
    "PROB_CMAP",
    "MASKED_COLOR",
    "NAN_COLOR",
    "subplots",
    "plot_heatmap",
    "plot_heatmaps",
    "plot_attention",
    "plot_patterns",
    "plot_scores",
    "plot_mask",
    "plot_masks",
    "shared_colorbar",
    "plot_decoder_flow",
    "plot_stream_flow",
    "text_color",
    "nice_limit",
]

PAGE_WIDTH_IN = 7.0  # inches: the book's text column at 100 dpi; no figure is wider
SIGNED_CMAP = "RdBu_r"  # diverging: blue negative, white zero, red positive (as the widgets)
PROB_CMAP = "Blues"  # sequential: white 0, dark blue 1
MASKED_COLOR = "#d4d4d4"  # light grey, hatched: never a colour of either map
MASKED_HATCH = "///"
MASKED_LABEL = "masked"
NAN_COLOR = "#1a1a1a"  # near black, with "NaN" written in white: a bug to see, never a masked cell
_DIVERGING = {"RdBu", "RdBu_r", "bwr", "coolwarm", "seismic", "PiYG", "PRGn", "BrBG", "PuOr", "RdGy",
              "RdYlBu", "RdYlGn", "Spectral"}


# --------------------------------------------------------------------------- helpers


def _np(a) -> np.ndarray:
    return a.detach().float().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=float)


# --------------------------------------------------------------------------- argument checks


def _array(who: str, name: str, a) -> np.ndarray:
    """``a`` (a tensor, an array or nested lists of numbers) as a float array. Complex numbers are
    refused (casting them to float would draw their real part without a word), as is a tensor on the
    meta device (it has a shape but no values)."""
    if isinstance(a, torch.Tensor):
        if a.dtype.is_complex:
            raise TypeError(f"{who}: {name} must hold real numbers, got {V.describe(a)}; draw its .real, "
                            ".imag or .abs()")
        if a.device.type == "meta":
            raise ValueError(f"{who}: {name} must be a tensor with values to draw, got {V.describe(a)} on "
                             "the meta device (a shape without values)")
    elif isinstance(a, np.ndarray) and np.iscomplexobj(a):
        raise TypeError(f"{who}: {name} must hold real numbers, got a {a.dtype} array; draw its .real, "
                        ".imag or abs()")
    try:
        return _np(a)
    except (TypeError, ValueError):
        raise TypeError(
            f"{who}: {name} must be a tensor or an array of numbers, got {V.describe(a)}"
        ) from None


def _grid(who: str, name: str, a, doc: str) -> np.ndarray:
    """A non-empty 2-D grid, described by ``doc`` (e.g. "(T_q, T_k)")."""
    w = _array(who, name, a)
    if w.ndim != 2:
        raise ValueError(f"{who}: {name} must be 2-D {doc}, got shape {w.shape}")
    if w.size == 0:
        raise ValueError(f"{who}: {name} must not be empty, got shape {w.shape}")
    return w


def _stack(who: str, name: str, grids, doc: str) -> np.ndarray:
    """Several grids of one shape (a 3-D tensor or array, a list, or a dict {title: grid}) as one
    non-empty 3-D array (n, rows, cols)."""
    if isinstance(grids, dict):
        grids = list(grids.values())
    if isinstance(grids, torch.Tensor):
        gs = _array(who, name, grids)
    else:
        try:
            items = list(grids)
        except TypeError:
            raise TypeError(f"{who}: {name} must be a 3-D tensor, a list or a dict of grids, got "
                            f"{V.describe(grids)}") from None
        if not items:
            raise ValueError(f"{who}: {name} must not be empty (at least one grid)")
        arrays = [_array(who, f"{name}[{i}]", g) for i, g in enumerate(items)]
        shapes = list(dict.fromkeys(a.shape for a in arrays))
        if len(shapes) > 1:
            raise ValueError(f"{who}: every grid of {name} must have one shape, got {shapes}")
        gs = np.stack(arrays)
    if gs.ndim != 3:
        raise ValueError(f"{who}: {name} must be 3-D {doc}, got shape {gs.shape}")
    if gs.size == 0:
        raise ValueError(f"{who}: {name} must not be empty, got shape {gs.shape}")
    return gs


def _n_labels(who: str, name: str, labels) -> int:
    try:
        return len(labels)
    except TypeError:
        raise TypeError(f"{who}: {name} must be a list of labels, got {V.describe(labels)}") from None


def _labels_fit(who: str, shape: tuple, rows, cols, what=("row", "column"), grid="a grid") -> None:
    """One label per row and per column of a grid of ``shape`` (rows, cols)."""
    n = (_n_labels(who, f"{what[0]} labels", rows), _n_labels(who, f"{what[1]} labels", cols))
    if n != tuple(shape):
        raise ValueError(
            f"{who}: {n[0]} {what[0]} and {n[1]} {what[1]} labels for {grid} of shape {tuple(shape)}"
        )


def _limits(who: str, vmin, vmax) -> None:
    """Colour limits: both None (scale to the data) or two finite numbers, vmin < vmax."""
    if vmin is None and vmax is None:
        return
    if vmin is None or vmax is None:
        raise ValueError(
            f"{who}: vmin and vmax must be given together (or both None), got vmin={vmin}, vmax={vmax}"
        )
    lo = V.finite_float(who, "vmin", vmin)
    hi = V.finite_float(who, "vmax", vmax)
    if not lo < hi:
        raise ValueError(f"{who}: vmin must be below vmax, got vmin={vmin}, vmax={vmax}")


_AUTO_ANNOTATE = "the default: annotate when the grid is at most 12 x 12"  # what annotate=None does


def _switch(who: str, name: str, val, none_means: str = "") -> bool | None:
    """A switch such as ``colorbar``: True or False (numpy bools too), returned as a bool; an int or a
    string would be read by its truth value ("no" would mean yes). With ``none_means`` (what None
    does), None too."""
    if val is None and none_means:
        return None
    try:
        return V.flags(who, **{name: val})[name]
    except TypeError:
        if not none_means:
            raise
        raise TypeError(f"{who}: {name} must be True, False or None ({none_means}), got "
                        f"{V.describe(val)}") from None


def _axes_arg(who: str, ax) -> None:
    """``ax``: a matplotlib Axes to draw on, or None (a new figure)."""
    if ax is None or isinstance(ax, Axes):
        return
    hint = "; pick one of them, e.g. ax=axes[0]" if isinstance(ax, (np.ndarray, list, tuple)) else ""
    raise TypeError(f"{who}: ax must be a matplotlib Axes or None (a new figure), got {V.describe(ax)}{hint}")


def _cmap_arg(who: str, cmap) -> None:
    """``cmap``: None (the book's map for the data), a matplotlib Colormap or a colour map's name."""
    if cmap is None or isinstance(cmap, Colormap):
        return
    if not isinstance(cmap, str):
        raise TypeError(f"{who}: cmap must be a colour map name such as 'Blues', a matplotlib Colormap or "
                        f"None, got {V.describe(cmap)}")
    if cmap not in matplotlib.colormaps:
        raise ValueError(f"{who}: cmap must name a matplotlib colour map such as 'Blues' or 'RdBu_r' (list "
                         f"them with sorted(matplotlib.colormaps)), got {cmap!r}")


def nice_limit(x: float) -> float:
    """The smallest "round" number >= ``x`` with two significant digits (1.36 -> 1.4, 4.53 -> 4.6).

    A value a float32 rounding error above a round number is read as that number
    (1.0000001192092896 -> 1.0), so colour bars never show such digits.
    """
    x = abs(V.real("nice_limit", "x", x))
    if not math.isfinite(x) or x == 0:
        return 1.0
    scale = 10.0 ** (math.floor(math.log10(x)) - 1)
    return float(f"{math.ceil(x / scale - 1e-4) * scale:.6g}")  # the format drops 4.6000000000000005's tail


def _tick_label(x: float, _pos=None) -> str:
    """Colour-bar and axis tick: at most 3 significant digits, -0 shown as 0."""
    s = f"{float(x):.3g}"
    return "0" if s in ("-0", "0") else s.replace("-", "\u2212")


def _luminance(rgba) -> float:
    """Relative luminance of an sRGB colour (WCAG 2), alpha blended over white."""
    r, g, b, a = (tuple(rgba) + (1.0,))[:4]
    chan = [a * c + (1 - a) for c in (r, g, b)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in chan]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _shown(val) -> str:
    """``val`` for a message: its repr when short (a colour tuple), else :func:`V.describe`."""
    text = repr(val)
    return text if len(text) <= 40 and not isinstance(val, np.ndarray) else V.describe(val)


def _rgba(who: str, name: str, color) -> tuple[float, float, float, float]:
    """A colour as matplotlib reads it (a name, a hex string, an RGB(A) sequence of numbers in
    [0, 1]) as an RGBA tuple of floats."""
    if not isinstance(color, (str, tuple, list, np.ndarray)):
        raise TypeError(f"{who}: {name} must be a colour (a name, a hex string or an RGB(A) tuple), got "
                        f"{V.describe(color)}")
    try:
        rgba = to_rgba(color)
    except (TypeError, ValueError):
        rgba = (math.nan,)
    if not all(isinstance(c, numbers.Real) and math.isfinite(c) for c in rgba):
        raise ValueError(f"{who}: {name} must be a colour: a name such as 'navy', a hex string such as "
                         f"'#1a1a1a' or an RGB(A) tuple of numbers in [0, 1], got {_shown(color)}")
    return rgba


def text_color(background) -> str:
    """"black" or "white", whichever has the higher contrast ratio on ``background``: an RGB(A)
    tuple (as a colour map returns) or any colour matplotlib reads ("navy", "#1a1a1a")."""
    lum = _luminance(_rgba("text_color", "background", background))
    return "black" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "white"


def _fit(width: float, height: float) -> tuple[float, float]:
    """Scale (width, height) down, keeping the aspect, so that the width fits the page column."""
    if width > PAGE_WIDTH_IN:
        height *= PAGE_WIDTH_IN / width
        width = PAGE_WIDTH_IN
    return round(width, 2), round(height, 2)


def subplots(nrows: int = 1, ncols: int = 1, *, width: float = PAGE_WIDTH_IN, height: float | None = None,
             width_ratios=None, height_ratios=None, **kwargs):
    """``plt.subplots`` sized for the page: ``width`` inches (at most :data:`PAGE_WIDTH_IN`) and a
    constrained layout, so colour bars and labels never overlap. Returns (figure, axes) like
    ``plt.subplots``; ``height`` defaults to 3.2 inches per row."""
    if "figsize" in kwargs:
        raise TypeError(f"subplots: figsize is set from width= and height= (inches; width at most PAGE_WIDTH_IN "
                        f"= {PAGE_WIDTH_IN}); pass those instead, got figsize={_shown(kwargs['figsize'])}")
    if "layout" in kwargs:
        raise TypeError(f"subplots: layout is always 'constrained' (colour bars and labels never overlap); for "
                        f"another layout use plt.subplots, got layout={_shown(kwargs['layout'])}")
    V.positive_int("subplots", "nrows", nrows)
    V.positive_int("subplots", "ncols", ncols)
    V.finite_float("subplots", "width", width, low=0.0, low_open=True)
    if width > PAGE_WIDTH_IN:
        raise ValueError(f"subplots: width must be at most PAGE_WIDTH_IN = {PAGE_WIDTH_IN} inches, got {width}")
    if height is not None:
        V.finite_float("subplots", "height", height, low=0.0, low_open=True)
    height = 3.2 * nrows if height is None else height
    gridspec_kw = dict(kwargs.pop("gridspec_kw", {}))
    if width_ratios is not None:
        gridspec_kw["width_ratios"] = width_ratios
    if height_ratios is not None:
        gridspec_kw["height_ratios"] = height_ratios
    return plt.subplots(nrows, ncols, figsize=(width, height), layout="constrained",
                        gridspec_kw=gridspec_kw or None, **kwargs)


def _scale(values: np.ndarray, vmin, vmax, cmap):
    """Choose the colour map and norm: (cmap, norm, signed)."""
    finite = values[np.isfinite(values)]
    named = cmap if isinstance(cmap, str) else getattr(cmap, "name", "")
    if vmin is None and vmax is None:
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 1.0
        signed = lo < 0 or named in _DIVERGING
        if signed:
            vmin, vmax = -max(abs(lo), abs(hi)), max(abs(lo), abs(hi))
        else:
            vmin, vmax = 0.0, hi
    elif vmin is None or vmax is None:
        raise ValueError(f"vmin and vmax must be given together (or both None), got vmin={vmin}, vmax={vmax}")
    else:
        vmin, vmax = float(vmin), float(vmax)
        if not vmin < vmax:
            raise ValueError(f"vmin must be below vmax, got vmin={vmin}, vmax={vmax}")
        signed = vmin < 0 or named in _DIVERGING
    if signed:
        half = nice_limit(max(abs(vmin), abs(vmax)))
        norm = CenteredNorm(vcenter=0.0, halfrange=half)
        cmap = SIGNED_CMAP if cmap is None else cmap
    else:
        top = vmax if (vmin, vmax) == (0.0, 1.0) else (vmin + nice_limit(vmax - vmin) if vmax > vmin else vmin + 1)
        norm = Normalize(vmin=vmin, vmax=top)
        cmap = PROB_CMAP if cmap is None else cmap
    cmap = plt.get_cmap(cmap) if not isinstance(cmap, Colormap) else cmap
    return cmap, norm, signed


def _colorbar(fig, mappable, ax, *, label=None, masked=False, nan=False):
    cbar = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.03, shrink=0.9)
    cbar.locator = MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10])
    cbar.formatter = FuncFormatter(_tick_label)
    cbar.update_ticks()
    cbar.ax.tick_params(labelsize=8)
    notes = [n for n, on in (("hatched grey: masked", masked), ("black: NaN", nan)) if on]
    text = "\n".join(t for t in (label, *notes) if t)
    if text:
        cbar.set_label(text, fontsize=8)
    return cbar


def shared_colorbar(axes, *, label=None):
    """One colour bar for panels drawn separately on one scale (for example with
    ``plot_attention(..., colorbar=False)`` on the axes of :func:`subplots`). It reads the scale of
    the first panel's image, so every panel must use the same limits and colour map; returns it."""
    axes = list(np.ravel(axes))
    for ax in axes:
        if not isinstance(ax, Axes):
            raise TypeError(f"shared_colorbar: axes must be matplotlib Axes, got {V.describe(ax)}")
    if not axes or not axes[0].images:
        raise ValueError("shared_colorbar: axes must be a non-empty list whose first panel holds a heatmap "
                         "(draw the panels first, e.g. with plot_attention(..., colorbar=False))")
    first = axes[0].images[0]
    for ax in axes[1:]:
        for im in ax.images:
            if im.norm.vmin != first.norm.vmin or im.norm.vmax != first.norm.vmax or im.cmap.name != first.cmap.name:
                raise ValueError(f"shared_colorbar: the panels use different scales "
                                 f"({first.cmap.name} {first.norm.vmin}..{first.norm.vmax} vs "
                                 f"{im.cmap.name} {im.norm.vmin}..{im.norm.vmax}); one bar would mislabel them")
    notes = {t.get_text() for ax in axes if ax.get_legend() is not None for t in ax.get_legend().get_texts()}
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    return _colorbar(axes[0].figure, first, axes, label=label, masked=MASKED_LABEL in notes, nan="NaN" in notes)


def _masked_legend(ax, masked=True, nan=False):
    handles = [Patch(facecolor=MASKED_COLOR, hatch=MASKED_HATCH, edgecolor="0.45", label=MASKED_LABEL)] * masked
    handles += [Patch(facecolor=NAN_COLOR, label="NaN")] * nan
    ax.legend(handles=handles, ncols=len(handles),
              loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=7, frameon=False, borderaxespad=0.1,
              handlelength=1.4)


# --------------------------------------------------------------------------- heatmaps


def _em_width(number: str) -> float:
    """Width of a formatted number in em of the default font (DejaVu Sans): digits 0.64, "." 0.32,
    the minus sign 0.84."""
    return sum(0.32 if c == "." else 0.84 if c == "-" else 0.64 for c in number)


def _annotation_size(ax, values: np.ndarray, decimals: int, colorbar: bool) -> tuple[float, int]:
    """Font size (points) and decimals for the numbers in the cells, from the width of a cell on
    the page and the longest number: 8 points when there is room, smaller or with fewer decimals
    when the grid is crowded, (0, decimals) when no readable number fits."""
    fig_w = ax.figure.get_size_inches()[0]
    cell_pt = 72 * fig_w * ax.get_position().width / max(values.shape[1], 1) * (0.78 if colorbar else 0.9)
    finite = values[np.isfinite(values)]
    for d in range(decimals, -1, -1):
        ems = max((_em_width(f"{v:.{d}f}") for v in finite), default=2.2)
        size = min(8.0, 0.9 * cell_pt / ems)
        if size >= 6.0:
            return round(size, 1), d
        if d <= 1:
            break
    return 0.0, decimals


def _cell_points(ax, n: int, axis: str) -> float:
    """About how many points wide (axis "x") or tall ("y") one of n cells will be once the figure is
    laid out: the axes' share of the figure, less a fifth for the labels and colour bar that the
    constrained layout adds later."""
    pos, fig = ax.get_position(), ax.figure
    inches = pos.width * fig.get_figwidth() if axis == "x" else pos.height * fig.get_figheight()
    return 0.8 * inches * 72 / max(n, 1)


def _label_ticks(ax, col_labels, row_labels, size: float, rotate: bool) -> None:
    """Tick labels that never overlap: column labels at 45 degrees while a cell is wide enough for
    that, upright (90 degrees) when it is not, and only every k-th label when even upright labels
    (a line of text is about 1.2 x the font size) would touch."""
    col_cell, row_cell = _cell_points(ax, len(col_labels), "x"), _cell_points(ax, len(row_labels), "y")
    slanted = rotate and col_cell >= 1.7 * size
    col_step = max(1, math.ceil(1.2 * size / col_cell)) if not slanted and rotate else 1
    row_step = max(1, math.ceil(1.2 * size / row_cell))
    xt = list(range(0, len(col_labels), col_step))
    yt = list(range(0, len(row_labels), row_step))
    if slanted or not rotate:
        ax.set_xticks(xt, [str(col_labels[i]) for i in xt], fontsize=size, rotation=45 if rotate else 0,
                      ha="right" if rotate else "center", rotation_mode="anchor")
    else:
        ax.set_xticks(xt, [str(col_labels[i]) for i in xt], fontsize=size, rotation=90, ha="center")
    ax.set_yticks(yt, [str(row_labels[i]) for i in yt], fontsize=size)


def plot_heatmap(values, row_labels, col_labels, *, ax=None, title=None, xlabel=None, ylabel=None,
                 annotate=None, decimals=2, cmap=None, vmin=None, vmax=None, mask=None, colorbar=True,
                 colorbar_label=None, rotate_labels=True):
    """An annotated heatmap of a 2-D array (rows, cols), in the book's style (see the module doc).

    ``vmin``/``vmax`` None scale to the data: a signed grid gets a diverging map centred on 0 with
    symmetric rounded limits, a non-negative one a sequential map from 0. Cells that ``mask`` blocks
    and -inf values are drawn in hatched grey; ``mask`` (rows, cols) is read as attention reads it:
    bool (True = kept), 0/1 ints as bools, or float, added to the scores (0 or any finite value =
    kept, -inf = blocked). ``annotate`` writes each value with ``decimals`` decimals (default: when
    the grid is at most 12 x 12), in black or white by the cell's luminance. Returns the Axes (its
    image is ``ax.images[0]``).
    """
    w = _grid("plot_heatmap", "values", values, "(rows, cols)")
    _labels_fit("plot_heatmap", w.shape, row_labels, col_labels)
    _limits("plot_heatmap", vmin, vmax)
    decimals = V.nonneg_int("plot_heatmap", "decimals", decimals)
    _axes_arg("plot_heatmap", ax)
    _cmap_arg("plot_heatmap", cmap)
    annotate = _switch("plot_heatmap", "annotate", annotate, _AUTO_ANNOTATE)
    colorbar, rotate_labels = V.flags("plot_heatmap", colorbar=colorbar, rotate_labels=rotate_labels).values()
    hidden, nan = _hidden_cells(w, mask)
    masked = hidden & ~nan
    cmap, norm, _ = _scale(np.where(hidden, np.nan, w), vmin, vmax, cmap)
    if ax is None:
        size = _fit(0.5 * w.shape[1] + 2.4, 0.42 * w.shape[0] + 1.5)
        _, ax = plt.subplots(figsize=size, layout="constrained")
    shown = np.ma.masked_array(np.where(hidden, 0.0, w), mask=hidden)
    cmap = cmap.with_extremes(bad=MASKED_COLOR)
    im = ax.imshow(shown, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    _draw_hidden_cells(ax, masked, nan)
    label_size = 9 if max(w.shape) <= 8 else 8 if max(w.shape) <= 12 else 7
    _label_ticks(ax, col_labels, row_labels, label_size, rotate_labels)
    _set_titles(ax, title, xlabel, ylabel)
    if annotate is None:
        annotate = max(w.shape) <= 12
    if annotate:
        fontsize, decimals = _annotation_size(ax, np.where(hidden, np.nan, w), decimals, colorbar)
        if fontsize > 0:
            _annotate_cells(ax, w, hidden, nan, fontsize, decimals, cmap, norm)
    if colorbar:
        _colorbar(ax.figure, im, ax, label=colorbar_label, masked=bool(masked.any()), nan=bool(nan.any()))
    elif hidden.any():
        _masked_legend(ax, masked=bool(masked.any()), nan=bool(nan.any()))
    return ax


def _cell_mask(who: str, name: str, mask, shape: tuple, like: str, doc: str = "(T_q, T_k)") -> np.ndarray:
    """``mask`` read by :func:`_allowed` (True = drawn, False = hatched), of the grid's ``shape``."""
    m = _allowed(who, name, mask, doc)
    if m.shape != tuple(shape):
        raise ValueError(f"{who}: {name} has shape {m.shape}, expected {tuple(shape)} like {like}")
    return m


def _hidden_cells(w, mask):
    """(hidden, nan) for :func:`plot_heatmap`: the cells not drawn in colour (non-finite or masked
    out) and, among them, the NaNs the caller did not mask (a bug: drawn black, never as masked)."""
    hidden = ~np.isfinite(w)
    kept = np.ones(w.shape, dtype=bool)
    if mask is not None:
        m = _cell_mask("plot_heatmap", "mask", mask, w.shape, "the values", "(rows, cols)")
        hidden = hidden | ~m
        kept = m
    return hidden, np.isnan(w) & kept


def _draw_hidden_cells(ax, masked, nan):
    """Hatch the masked cells grey and fill the unmasked NaNs black."""
    for i, j in zip(*np.nonzero(masked), strict=True):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch=MASKED_HATCH, edgecolor="0.55",
                               linewidth=0))
    for i, j in zip(*np.nonzero(nan), strict=True):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=NAN_COLOR, linewidth=0))


def _set_titles(ax, title, xlabel, ylabel):
    """Set whichever of the title and axis labels is given."""
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)


def _annotate_cells(ax, w, hidden, nan, fontsize, decimals, cmap, norm):
    """Write each cell's value on it: "-inf" for -inf (when the font is big enough), "NaN" in
    white for an unmasked NaN, nothing on a masked cell, else the value with ``decimals`` decimals
    in black or white by the cell's luminance."""
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            val = w[i, j]
            if np.isneginf(val):
                if fontsize >= 7.5:
                    ax.text(j, i, "\u2212inf", ha="center", va="center", fontsize=fontsize, color="black")
            elif nan[i, j]:
                ax.text(j, i, "NaN", ha="center", va="center", fontsize=fontsize, color="white")
            elif not hidden[i, j]:
                txt = f"{val:.{decimals}f}"
                txt = txt.replace("-", "\u2212") if float(txt) != 0 else f"{0:.{decimals}f}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=fontsize,
                        color=text_color(cmap(norm(val))))


_PANEL_KEYWORDS = ("annotate", "decimals", "rotate_labels")  # plot_heatmap's, for every panel
_HEATMAPS_KEYWORDS = ("titles", "ncols", "suptitle", "xlabel", "ylabel", "cmap", "vmin", "vmax", "masks",
                      "colorbar_label", "panel_width") + _PANEL_KEYWORDS
_PATTERNS_KEYWORDS = ("titles", "ncols", "suptitle", "cmap", "vmin", "vmax", "masks", "colorbar_label",
                      "panel_width") + _PANEL_KEYWORDS


def _other_keywords(who: str, given: dict, takes: tuple) -> None:
    """The ``**kwargs`` of :func:`plot_heatmaps` or :func:`plot_patterns`, passed on to each panel's
    :func:`plot_heatmap`: checked before a figure exists (inside, a bad one would leave it open)."""
    for key in given:
        if key not in takes:
            raise TypeError(f"{who}: got an unexpected keyword argument {key!r}; it takes "
                            f"{', '.join(takes)}")
    if "decimals" in given:
        V.nonneg_int(who, "decimals", given["decimals"])
    if "annotate" in given:
        _switch(who, "annotate", given["annotate"], _AUTO_ANNOTATE)
    if "rotate_labels" in given:
        _switch(who, "rotate_labels", given["rotate_labels"])


def plot_heatmaps(grids, row_labels, col_labels, *, titles=None, ncols=None, suptitle=None,
                  xlabel=None, ylabel=None, cmap=None, vmin=None, vmax=None, masks=None,
                  colorbar_label=None, panel_width=None, **kwargs):
    """Small multiples: several grids (n, rows, cols) or a dict {title: grid} side by side, on one
    colour scale with ONE shared colour bar. The scale is chosen from all the grids together (see
    :func:`plot_heatmap`). ``masks``: one mask per grid, read as :func:`plot_heatmap` reads its
    ``mask``; ``annotate``, ``decimals`` and ``rotate_labels`` go to every panel's plot_heatmap.
    Returns the Figure."""
    _other_keywords("plot_heatmaps", kwargs, _HEATMAPS_KEYWORDS)
    if isinstance(grids, dict):
        titles = list(grids) if titles is None else titles
        grids = list(grids.values())
    gs = _stack("plot_heatmaps", "grids", grids, "(n, rows, cols)")
    return _small_multiples("plot_heatmaps", gs, row_labels, col_labels, titles=titles, ncols=ncols,
                            suptitle=suptitle, xlabel=xlabel, ylabel=ylabel, cmap=cmap, vmin=vmin, vmax=vmax,
                            masks=masks, colorbar_label=colorbar_label, panel_width=panel_width, panel=kwargs)


def _panels_checked(who, shape, row_labels, col_labels, titles, masks, vmin, vmax, ncols, panel_width,
                    annotate):
    """The checked arguments of :func:`_small_multiples` for grids of ``shape`` (n, rows, cols):
    (masks as bool arrays or None, the number of columns of panels)."""
    n, rows, cols = shape
    _labels_fit(who, (rows, cols), row_labels, col_labels, grid="grids")
    if titles is not None and _n_labels(who, "titles", titles) != n:
        raise ValueError(f"{who}: {len(titles)} titles for {n} grids")
    masks = _panel_masks(who, masks, shape)
    _limits(who, vmin, vmax)
    ncols = V.optional_positive_int(who, "ncols", ncols)
    if panel_width is not None:
        V.finite_float(who, "panel_width", panel_width, low=0.0, low_open=True)
    if ncols is None:
        ncols = _default_ncols(n, rows, cols, annotate)
    return masks, max(1, min(ncols, n))


def _small_multiples(who, gs, row_labels, col_labels, *, titles, ncols, suptitle, xlabel, ylabel, cmap, vmin,
                     vmax, masks, colorbar_label, panel_width, panel):
    """The figure of :func:`plot_heatmaps` and :func:`plot_patterns` (``who``) for the grids ``gs``
    (n, rows, cols); ``panel``: the keywords for every panel's :func:`plot_heatmap`, checked."""
    n, rows, cols = gs.shape
    _cmap_arg(who, cmap)
    masks, ncols = _panels_checked(who, gs.shape, row_labels, col_labels, titles, masks, vmin, vmax, ncols,
                                   panel_width, panel.get("annotate"))
    nrows = -(-n // ncols)
    hidden = ~np.isfinite(gs)
    if masks is not None:
        hidden |= ~np.stack(masks)
    cmap_, norm, _ = _scale(np.where(hidden, np.nan, gs), vmin, vmax, cmap)
    vmin_, vmax_ = _shared_limits(norm)
    fig, axes = plt.subplots(nrows, ncols, figsize=_panels_size(nrows, ncols, rows, panel_width, suptitle),
                             squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        plot_heatmap(gs[i], row_labels, col_labels, ax=ax, colorbar=False, cmap=cmap_, vmin=vmin_, vmax=vmax_,
                     title=None if titles is None else titles[i],
                     mask=None if masks is None else masks[i], **panel)
        _label_panel(ax, i, ncols, nrows, xlabel, ylabel)
    _shared_colorbar(fig, axes, gs, hidden, masks, colorbar_label)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return fig


def _shared_limits(norm):
    """The (vmin, vmax) that make each panel draw on the shared scale ``norm``."""
    if norm.__class__ is CenteredNorm:
        return -norm.halfrange, norm.halfrange
    return norm.vmin, norm.vmax


def _panels_size(nrows, ncols, rows, panel_width, suptitle):
    """The figure size (inches) of ``nrows`` x ``ncols`` panels of grids with ``rows`` rows: the page
    width shared by the columns unless ``panel_width`` is given, plus room for a suptitle."""
    panel_w = PAGE_WIDTH_IN / ncols if panel_width is None else panel_width
    width = min(PAGE_WIDTH_IN, panel_w * ncols + 0.6)
    panel_h = min(panel_w * 0.95, 0.3 * rows + 1.3) if rows <= 16 else panel_w
    return width, panel_h * nrows + (0.4 if suptitle else 0)


def _shared_colorbar(fig, axes, gs, hidden, masks, label):
    """ONE colour bar for the panels of :func:`plot_heatmaps` (the first ``len(gs)`` of ``axes``),
    noting masked and NaN cells, in place of each panel's own legend."""
    # hide the redundant legend entries of the panels: the shared colour bar carries the note
    for ax in axes.flat:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    used = [ax for ax in axes.flat[:len(gs)]]
    nans = np.isnan(gs) & (True if masks is None else np.stack(masks))
    _colorbar(fig, used[0].images[0], used, label=label, masked=bool((hidden & ~nans).any()),
              nan=bool(nans.any()))


def _panel_masks(who: str, masks, shape):
    """The ``masks`` of :func:`plot_heatmaps` as bool arrays (True = drawn), one per grid of ``shape``
    (n, rows, cols), each read by :func:`_allowed`; or None."""
    if masks is None:
        return None
    n, rows, cols = shape
    if isinstance(masks, (str, bytes)) or not hasattr(masks, "__iter__"):
        raise TypeError(f"{who}: masks must be a list of masks, one per grid, got {V.describe(masks)}")
    masks = list(masks)
    if len(masks) != n:
        raise ValueError(f"{who}: {len(masks)} masks for {n} grids")
    return [_cell_mask(who, f"masks[{i}]", m, (rows, cols), "the grids", "(rows, cols)")
            for i, m in enumerate(masks)]


def _default_ncols(n, rows, cols, annotate):
    """As many panels a row as fit the page, at most 4 (annotated panels need more room)."""
    annotated = max(rows, cols) <= 12 if annotate is None else annotate
    min_width = 0.34 * cols + 0.9 if annotated else max(1.6, 0.12 * cols + 0.8)
    return min(n, 4, max(1, int(PAGE_WIDTH_IN // min_width)))


def _label_panel(ax, i, ncols, nrows, xlabel, ylabel):
    """Axis labels on panel ``i`` of a grid of panels: x labels on the bottom row, y labels (and
    the row tick labels) on the first column only."""
    if xlabel and i // ncols == nrows - 1:
        ax.set_xlabel(xlabel)
    if ylabel and i % ncols == 0:
        ax.set_ylabel(ylabel)
    if i % ncols:
        ax.set_ylabel("")
        ax.tick_params(labelleft=False)


def plot_attention(weights, q_tokens, k_tokens=None, *, ax=None, title=None, annotate=None,
                   cmap=None, vmin=0.0, vmax=1.0, colorbar=True, mask=None, decimals=2):
    """Heatmap of one pattern (T_q, T_k): row = query token, column = key token.

    By default the colours run from 0 to 1 (a probability). Pass ``vmin``/``vmax`` = None to scale
    to the data: raw scores, which may be negative, get a diverging map centred on 0 (for scores
    prefer :func:`plot_scores`). ``mask`` (T_q, T_k) hatches the blocked cells, read as attention
    reads it: bool (True = may attend), 0/1 ints as bools, or float, added to the scores (0 or any
    finite value = may attend, -inf = blocked); -inf entries are hatched too. ``annotate`` writes the
    values (default: when the grid is at most 12 x 12). Returns the matplotlib Axes.
    """
    w = _grid("plot_attention", "weights", weights, "(T_q, T_k)")
    k_tokens = q_tokens if k_tokens is None else k_tokens
    nq = _n_labels("plot_attention", "q_tokens", q_tokens)
    nk = _n_labels("plot_attention", "k_tokens", k_tokens)
    if (nq, nk) != w.shape:
        raise ValueError(f"plot_attention: {nq} query and {nk} key labels for a grid of {w.shape}")
    _limits("plot_attention", vmin, vmax)
    _axes_arg("plot_attention", ax)
    _cmap_arg("plot_attention", cmap)
    _switch("plot_attention", "annotate", annotate, _AUTO_ANNOTATE)
    _switch("plot_attention", "colorbar", colorbar)
    if mask is not None:
        mask = _cell_mask("plot_attention", "mask", mask, w.shape, "the weights")
    return plot_heatmap(w, q_tokens, k_tokens, ax=ax, title=title, xlabel="key", ylabel="query",
                        annotate=annotate, decimals=decimals, cmap=cmap, vmin=vmin, vmax=vmax, mask=mask,
                        colorbar=colorbar)


def plot_scores(scores, q_tokens, k_tokens=None, *, ax=None, title=None, annotate=None, colorbar=True,
                mask=None, decimals=2, limit=None):
    """Heatmap of raw scores (T_q, T_k) on the diverging map: white = 0, symmetric limits (±``limit``,
    default the largest |score| rounded up), -inf (masked) entries hatched grey, as are the cells that
    ``mask`` blocks (read as in :func:`plot_attention`). Returns the Axes."""
    w = _grid("plot_scores", "scores", scores, "(T_q, T_k)")
    _axes_arg("plot_scores", ax)
    _switch("plot_scores", "annotate", annotate, _AUTO_ANNOTATE)
    _switch("plot_scores", "colorbar", colorbar)
    if limit is not None:
        V.finite_float("plot_scores", "limit", limit)
        if limit == 0:
            raise ValueError(
                f"plot_scores: limit must be a finite number other than 0 (or None), got {limit!r}"
            )
    if mask is not None:
        mask = _cell_mask("plot_scores", "mask", mask, w.shape, "the scores")
    lim = (None, None) if limit is None else (-abs(float(limit)), abs(float(limit)))
    return plot_attention(scores, q_tokens, k_tokens, ax=ax, title=title, annotate=annotate,
                          cmap=SIGNED_CMAP, vmin=lim[0], vmax=lim[1], colorbar=colorbar, mask=mask,
                          decimals=decimals)


def plot_patterns(patterns, q_tokens, k_tokens=None, *, titles=None, ncols=None, **kwargs):
    """A grid of patterns, e.g. every head of a layer: ``patterns`` (n, T_q, T_k) or a dict {title:
    pattern}, on one colour scale (0 to 1 unless ``vmin``/``vmax`` say otherwise) with one shared
    colour bar. The other keywords are those of :func:`plot_heatmaps` (the axes are labelled "key"
    and "query"). Returns the Figure."""
    kwargs.pop("colorbar", None)  # always one shared colour bar
    _other_keywords("plot_patterns", kwargs, _PATTERNS_KEYWORDS)
    if isinstance(patterns, dict):
        titles = list(patterns) if titles is None else titles
    k_tokens = q_tokens if k_tokens is None else k_tokens
    ps = _stack("plot_patterns", "patterns", patterns, "(n, T_q, T_k)")
    _labels_fit("plot_patterns", ps.shape[1:], q_tokens, k_tokens, ("query", "key"), "patterns")
    opts = dict(suptitle=None, cmap=None, vmin=0.0, vmax=1.0, masks=None, colorbar_label=None, panel_width=None)
    opts.update((key, kwargs.pop(key)) for key in list(kwargs) if key in opts)
    return _small_multiples("plot_patterns", ps, q_tokens, k_tokens, titles=titles, ncols=ncols, xlabel="key",
                            ylabel="query", panel=kwargs, **opts)


def _allowed(who: str, name: str, mask, doc: str = "(T_q, T_k)") -> np.ndarray:
    """A mask (T_q, T_k) as booleans, True = may attend, read as attention reads it: a bool mask as it
    is, a 0/1 integer mask as bools, a float mask as added to the scores (-inf = blocked). Casting a
    float mask to bool would show it inverted (0.0, which allows, would read as False). Every plot
    that draws a mask reads it here."""
    m = _grid(who, name, mask, doc)  # float: the kind of mask is read from the input
    if isinstance(mask, torch.Tensor):
        kind = "bool" if mask.dtype == torch.bool else ("float" if mask.is_floating_point() else "int")
    else:
        dt = np.asarray(mask).dtype
        kind = "bool" if np.issubdtype(dt, np.bool_) else ("int" if np.issubdtype(dt, np.integer) else "float")
    if kind == "bool":
        return m.astype(bool)
    if kind == "int":
        if not np.isin(m, (0, 1)).all():
            raise ValueError(f"{who}: an integer {name} must hold 0 and 1 only (1 = may attend), got "
                             f"{[int(x) for x in np.unique(m) if x not in (0, 1)][:3]}")
        return m.astype(bool)
    if np.isnan(m).any() or np.isposinf(m).any():
        raise ValueError(f"{who}: a float {name} is added to the scores and must hold finite numbers or -inf "
                         "(blocked), got NaN or +inf")
    return m > -np.inf


def plot_mask(mask, q_tokens, k_tokens=None, *, ax=None, title=None, legend=True):
    """A mask (T_q, T_k), True = may attend (dark blue), False = blocked (hatched grey). A float mask
    is read as attention reads it, added to the scores: -inf is blocked, any finite value may attend."""
    m = _allowed("plot_mask", "mask", mask)
    _axes_arg("plot_mask", ax)
    legend = _switch("plot_mask", "legend", legend)
    k_tokens = q_tokens if k_tokens is None else k_tokens
    _labels_fit("plot_mask", m.shape, q_tokens, k_tokens, ("query", "key"), "a mask")
    ax = plot_heatmap(m.astype(float), q_tokens, k_tokens, ax=ax, title=title, xlabel="key", ylabel="query",
                      annotate=False, vmin=0.0, vmax=1.0, cmap=None, mask=m, colorbar=False)
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    if legend:
        ax.legend(handles=[Patch(facecolor=plt.get_cmap(PROB_CMAP)(1.0), label="may attend"),
                           Patch(facecolor=MASKED_COLOR, hatch=MASKED_HATCH, edgecolor="0.45", label="blocked")],
                  loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, fontsize=7, frameon=False,
                  borderaxespad=0.1, handlelength=1.4)
        if title:  # the legend sits on the axes' top edge: lift the title above it
            ax.set_title(title, fontsize=10, pad=17)
    return ax


def plot_masks(masks, q_tokens, k_tokens=None, *, titles=None, ncols=None):
    """Several masks side by side ((n, T_q, T_k) or a dict {title: mask}), one legend; each mask is
    read as :func:`plot_mask` reads it. ``q_tokens`` (and ``k_tokens``) may be a list of label lists,
    one per mask (e.g. padded batches)."""
    if isinstance(masks, dict):
        titles = list(masks) if titles is None else titles
        masks = list(masks.values())
    if isinstance(masks, torch.Tensor) and masks.ndim != 3:
        raise ValueError(f"plot_masks: masks must be 3-D (n, T_q, T_k), got shape {tuple(masks.shape)}")
    V.non_empty("plot_masks", "masks", masks)
    ms = [_allowed("plot_masks", f"masks[{i}]", m) for i, m in enumerate(masks)]
    n = len(ms)
    # one list of labels per mask? (read without truth values: q_tokens may be a numpy array)
    per_mask = _n_labels("plot_masks", "q_tokens", q_tokens) > 0 and isinstance(q_tokens[0], (list, tuple))

    def labels(i):  # the query and key labels of mask i
        qt = q_tokens[i] if per_mask else q_tokens
        kt = k_tokens[i] if per_mask and k_tokens is not None else k_tokens
        return qt, qt if kt is None else kt

    if per_mask and len(q_tokens) != n:
        raise ValueError(f"plot_masks: {len(q_tokens)} lists of labels for {n} masks")
    for i, m in enumerate(ms):
        _labels_fit("plot_masks", m.shape, *labels(i), ("query", "key"), f"masks[{i}]")
    if titles is not None and _n_labels("plot_masks", "titles", titles) != n:
        raise ValueError(f"plot_masks: {len(titles)} titles for {n} masks")
    ncols = V.optional_positive_int("plot_masks", "ncols", ncols)
    ncols = min(n, 3) if ncols is None else max(1, min(ncols, n))
    nrows = -(-n // ncols)
    cols = ms[0].shape[1]
    panel = PAGE_WIDTH_IN / ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(PAGE_WIDTH_IN, nrows * min(panel, 0.3 * cols + 1.6) + 0.35),
                             squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        qt, kt = labels(i)
        plot_mask(ms[i], qt, kt, ax=ax, title=None if titles is None else titles[i], legend=False)
    fig.legend(handles=[Patch(facecolor=plt.get_cmap(PROB_CMAP)(1.0), label="may attend"),
                        Patch(facecolor=MASKED_COLOR, hatch=MASKED_HATCH, edgecolor="0.45", label="blocked")],
               loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return fig


# --------------------------------------------------------------------------- diagrams


def plot_decoder_flow(n_layers: int = 2, d_model: int | str = "d_model", vocab_size: int | str = "vocab_size",
                      *, ax=None, title="Data flow through a decoder (pre-LN blocks)"):
    """The data flow of a decoder-only transformer with pre-LN blocks: token ids, embeddings, the
    residual stream running up the left, each block's attention and MLP reading from it and adding
    their output back, then the final LayerNorm, the unembedding and the logits. Returns the Axes."""
    if not isinstance(n_layers, int) or isinstance(n_layers, bool) or not 1 <= n_layers <= 4:
        raise ValueError(f"plot_decoder_flow: n_layers must be an int from 1 to 4, got {n_layers!r}")
    _axes_arg("plot_decoder_flow", ax)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 2.6 + 1.55 * n_layers), layout="constrained")
    ax.axis("off")
    stream_x, side_x = 2.3, 6.7
    ink = "0.3"

    def box(x, y, text, face, w=3.6, h=0.6, size=8.5):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04", fc=face, ec=ink, lw=0.9))
        ax.text(x, y, text, ha="center", va="center", fontsize=size)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", color=ink, lw=1.1))

    def add(y):
        ax.add_patch(plt.Circle((stream_x, y), 0.2, fc="white", ec=ink, lw=1.1, zorder=3))
        ax.text(stream_x, y, "+", ha="center", va="center", fontsize=11, zorder=4)

    box(stream_x, 0.0, "token ids  (B, T)", "#eeeeee", w=2.8)
    box(stream_x, 1.05, f"token + position embedding\n(B, T, {d_model})", "#fde3c8", w=3.4, h=0.75)
    arrow(stream_x, 0.3, stream_x, 0.67)
    subs = (("LayerNorm, then attention\nmoves information between positions", "#c6dbef"),
            ("LayerNorm, then MLP\ncomputes at each position alone", "#c7e9c0"))
    y = 1.45
    for layer in range(n_layers):
        y_start = y
        for text, face in subs:
            yb = y + 0.7
            box(side_x, yb, text, face, w=4.0, h=0.78, size=8)
            arrow(stream_x, yb - 0.22, side_x - 2.0, yb - 0.22)  # the sub-layer reads the stream ...
            add(yb + 0.55)
            arrow(side_x - 2.0, yb + 0.22, stream_x + 0.22, yb + 0.55)  # ... and adds its output back
            y = yb + 0.55
        ax.plot([9.0, 9.0], [y_start + 0.3, y + 0.05], color="0.6", lw=1)
        ax.text(9.3, (y_start + y) / 2 + 0.15, f"block {layer}", rotation=90, va="center", ha="center", fontsize=9)
    top = y + 0.85
    ax.plot([stream_x, stream_x], [1.45, top - 0.3], color="#4c72b0", lw=6, alpha=0.35, zorder=1)
    ax.text(0.25, (1.45 + top) / 2, f"residual stream  (B, T, {d_model})", rotation=90, va="center", ha="center",
            color="#4c72b0", fontsize=9)
    box(stream_x, top, "final LayerNorm, unembedding", "#f2d7ee", w=3.6)
    box(stream_x, top + 1.05, f"logits  (B, T, {vocab_size})\nscores for the next token", "#eeeeee", w=3.6, h=0.75)
    arrow(stream_x, top + 0.3, stream_x, top + 0.67)
    ax.set_xlim(-0.2, 9.6)
    ax.set_ylim(-0.5, top + 1.55)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def _stream_flow_args(tokens, n_layers, patterns):
    """The checked arguments of :func:`plot_stream_flow`: the tokens as strings and the patterns
    as arrays (or None)."""
    if isinstance(tokens, str) or not hasattr(tokens, "__iter__"):
        raise TypeError(f"plot_stream_flow: tokens must be a list of tokens (a column each), got "
                        f"{V.describe(tokens)}")
    tokens = [str(t) for t in tokens]
    T = len(tokens)
    if not 1 <= T <= 8:
        raise ValueError(f"plot_stream_flow: tokens must hold 1 to 8 tokens (a column each), got {T}")
    if not isinstance(n_layers, int) or isinstance(n_layers, bool) or not 1 <= n_layers <= 4:
        raise ValueError(f"plot_stream_flow: n_layers must be an int from 1 to 4, got {n_layers!r}")
    if patterns is not None:
        patterns = _stream_patterns(patterns, n_layers, T)
    return tokens, patterns


def _stream_patterns(patterns, n_layers: int, T: int) -> list[np.ndarray]:
    """The ``patterns`` of :func:`plot_stream_flow` as arrays: ``n_layers`` causal (T, T) grids of
    attention weights in [0, 1] (a float32 rounding above 1 is let through)."""
    who = "plot_stream_flow"
    if isinstance(patterns, (str, bytes)) or not hasattr(patterns, "__iter__"):
        raise TypeError(f"{who}: patterns must be a list of (T, T) attention patterns, one per layer, or "
                        f"None, got {V.describe(patterns)}")
    patterns = [_array(who, f"patterns[{i}]", p_) for i, p_ in enumerate(patterns)]
    if len(patterns) != n_layers or any(p_.shape != (T, T) for p_ in patterns):
        raise ValueError(f"{who}: patterns must be {n_layers} grids of shape ({T}, {T}), "
                         f"got {[tuple(p_.shape) for p_ in patterns]}")
    for i, p_ in enumerate(patterns):
        bad = ~((p_ >= 0) & (p_ <= 1 + 1e-6))  # NaN too
        if bad.any():
            q, k = (int(a[0]) for a in np.nonzero(bad))
            raise ValueError(f"{who}: patterns[{i}] must hold attention weights in [0, 1], got {p_[q, k]:g} "
                             f"(query {q}, key {k})")
    if any(np.triu(p_, 1).any() for p_ in patterns):
        raise ValueError(f"{who}: a pattern puts weight on a later key; the figure shows a causal decoder")
    return patterns


def _draw_stream_layer(ax, xs, layer, pattern, ink):
    """One decoder block of :func:`plot_stream_flow`: the attention sub-layer's arrows from each
    earlier position (width and darkness by ``pattern``'s weight, uniform when None) into a "+" on
    every stream, then the MLP sub-layer's box on each stream alone."""
    T = len(xs)
    ya, ym = 2 * layer + 1, 2 * layer + 2
    ax.text(xs[0] - 0.75, ya, f"attention {layer}", ha="right", va="center", fontsize=8, color="#2b5d9b")
    ax.text(xs[0] - 0.75, ym, f"MLP {layer}", ha="right", va="center", fontsize=8, color="#3a7d34")
    for i in range(T):
        for j in range(i + 1):  # key j -> query i, j <= i
            w = 1.0 / (i + 1) if pattern is None else float(pattern[i, j])
            if i == j:
                continue  # a position's own contribution needs no arrow
            ax.annotate("", xy=(xs[i], ya + 0.12), xytext=(xs[j], ya - 0.45),
                        arrowprops=dict(arrowstyle="->", color=plt.get_cmap("Blues")(0.35 + 0.65 * w),
                                        lw=0.4 + 2.6 * w, connectionstyle="arc3,rad=-0.25",
                                        shrinkA=2, shrinkB=4), zorder=2)
        ax.plot(xs[i], ya, "o", ms=9, mfc="#c6dbef", mec=ink, mew=0.8, zorder=3)  # "+": added in
        ax.add_patch(FancyBboxPatch((xs[i] - 0.3, ym - 0.17), 0.6, 0.34, boxstyle="round,pad=0.03",
                                    fc="#c7e9c0", ec=ink, lw=0.8, zorder=3))


def plot_stream_flow(tokens, n_layers: int = 2, patterns=None, *, ax=None,
                     title="Information across positions: one residual stream per token"):
    """The decoder of :func:`plot_decoder_flow` seen across positions: one residual stream (a
    column) per token, going up through ``n_layers`` blocks. At each attention sub-layer, arrows
    bring information from a position to itself and to every later one (the causal mask), never
    backwards; at each MLP sub-layer, each position computes alone (a box on its own column).
    ``patterns``, if given, is one (T, T) attention pattern per layer (e.g. averaged over the
    heads); each arrow's width and darkness then follow its weight. Returns the Axes."""
    tokens, patterns = _stream_flow_args(tokens, n_layers, patterns)
    _axes_arg("plot_stream_flow", ax)
    T = len(tokens)
    if ax is None:
        _, ax = plt.subplots(figsize=_fit(1.05 * T + 1.9, 1.45 * n_layers + 1.6), layout="constrained")
    ax.axis("off")
    ink, stream = "0.3", "#c6d4ea"
    xs = np.arange(T) * 1.0
    top = 2 * n_layers + 1
    for x in xs:  # the streams
        ax.plot([x, x], [0.35, top - 0.35], color=stream, lw=5, zorder=1, solid_capstyle="butt")
    for x, tok in zip(xs, tokens, strict=True):
        ax.text(x, 0.0, tok, ha="center", va="center", fontsize=8.5,
                bbox=dict(boxstyle="round,pad=0.25", fc="#fde3c8", ec=ink, lw=0.8))
        ax.text(x, top, "next?", ha="center", va="center", fontsize=7.5,
                bbox=dict(boxstyle="round,pad=0.25", fc="#eeeeee", ec=ink, lw=0.8))
    for layer in range(n_layers):
        _draw_stream_layer(ax, xs, layer, None if patterns is None else patterns[layer], ink)
    ax.set_xlim(xs[0] - 2.0, xs[-1] + 0.6)
    ax.set_ylim(-0.5, top + 0.5)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


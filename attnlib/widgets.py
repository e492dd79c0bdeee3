"""Interactive explorers for the book, built on anywidget.

Every widget's logic runs in the browser: its JavaScript module (``attnlib/static``: the shared math
in ``math.js``, the DOM helpers in ``ui.js`` and the widget's own file, joined into one ES module at
import time) recomputes the pattern whenever a slider moves. So the widgets keep working in the
static HTML book, where no Python kernel runs. Python only supplies the inputs as traits (plain
lists of floats and strings) and reads the results back: in a live kernel every trait tagged
``sync=True`` follows the browser (``explorer.temperature``, ``explorer.weights``, ...), and each
widget's ``compute()`` recomputes the same quantities with attnlib so the two can be compared.

    AttentionExplorer(tokens, x, w_q, w_k, *, temperature=1.0, causal=False, query=0, show="weights")
    QueryKeyArrows(tokens, keys, query, *, d_head=2, causal=False, query_index=None, ...)
    SoftmaxExplorer(labels, scores, *, temperature=1.0)
    PatternViewer(patterns, q_tokens, k_tokens=None, *, selected=None)
    ValueUpdateExplorer(tokens, points, values, query=0, weights=None, *, causal=False, axis_labels=...)
    CostExplorer(context_lens=..., n_heads=96, n_layers=96, bytes_per_entry=2, *, context_len=None)
    OnlineSoftmaxStepper(scores, values, *, labels=None, block=2, step=0)
    TileExplorer(T=1024, *, block=64, causal=True, window=0, sparse_block=0, d_head=64, ...)
    ModelExplorer(model, tokenizer, prompt, *, presets=(), temperature=1.0, ...)

Conventions: patterns are (T_q, T_k), rows = query tokens, columns = key tokens; masks are causal
and lower-right aligned; temperature t divides the scaled scores, weights = softmax(q k^T / sqrt(d) / t).
Inputs may be torch tensors, numpy arrays or nested lists; bad shapes or non-finite numbers raise a
ValueError that names the explorer and the argument. A trait set later to a bad value is refused the
same way before it changes (the error is also a ``traitlets.TraitError``, so that traitlets undoes
the traits set with it, e.g. in one update from the browser); switches are True or False only.
Traits that must agree (PatternViewer's vmin < vmax, CostExplorer's context_len among context_lens,
the number of keys in OnlineSoftmaxStepper's scores, values and labels, ...) are changed together
inside ``with widget.hold_trait_notifications():``, which checks them at its end.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from importlib import resources

import anywidget
import torch
import traitlets
from traitlets import Bool, Float, Int, List, Unicode

from . import _validate as V
from .attention import attention, softmax
from .mlp import MLP

__all__ = [
    "AttentionExplorer",
    "QueryKeyArrows",
    "SoftmaxExplorer",
    "PatternViewer",
    "ValueUpdateExplorer",
    "CostExplorer",
    "OnlineSoftmaxStepper",
    "TileExplorer",
    "ModelExplorer",
    "esm_source",
]


# --------------------------------------------------------------------------- front-end modules


def _read_static(name: str) -> str:
    return (resources.files("attnlib") / "static" / name).read_text(encoding="utf-8")


def esm_source(widget_file: str, libs: tuple[str, ...] = ()) -> str:
    """The ES module of one widget: static/math.js + the ``libs`` + static/ui.js +
    static/<widget_file>, joined.

    anywidget ships one module per widget class, so the shared math and DOM helpers are inlined
    into each (they are small). ``libs`` are further pure files (no DOM) that the widget needs,
    such as ``decoder.js``. The result has one ``export default {render}``.
    """
    who = "esm_source"
    if not isinstance(widget_file, str):
        raise TypeError(f"{who}: widget_file must be the name of a widget module in attnlib/static (a str "
                        f"such as 'softmax_explorer.js'), got {V.describe(widget_file)}")
    libs = V.words(who, "libs", libs, what="file names", item="file name", hint=f"; pass ({libs!r},)")
    _static_file(who, "widget_file", widget_file, module=True)
    for name in libs:
        _static_file(who, "libs", name, module=False)
    parts = [_read_static("math.js"), *(_read_static(f) for f in libs), _read_static("ui.js"),
             _read_static(widget_file)]
    return "\n\n".join(parts)


def _static_file(who: str, name: str, file: str, *, module: bool) -> None:
    """``file`` is a .js file of attnlib/static; if not, a ValueError that lists the widget modules
    (the files with an ``export default``) or, for ``libs``, the other files but math.js and ui.js
    (which every module has)."""
    static = resources.files("attnlib") / "static"
    if file.endswith(".js") and "/" not in file and "\\" not in file and (static / file).is_file():
        return
    js = sorted(f.name for f in static.iterdir() if f.name.endswith(".js"))
    if module:
        kinds = [f for f in js if "export default" in _read_static(f)]
        what = f"{name} must name a widget module of attnlib/static, one of {kinds}"
    else:
        kinds = [f for f in js if f not in ("math.js", "ui.js") and "export default" not in _read_static(f)]
        what = f"every file name of {name} must name a pure module of attnlib/static, one of {kinds}"
    raise ValueError(f"{who}: {what}, got {file!r}")


_CSS = _read_static("widgets.css")


# --------------------------------------------------------------------------- input validation


def _as_tensor(name: str, value, ndim: int) -> torch.Tensor:
    """Convert a tensor / array / nested list to a float64 CPU tensor with `ndim` dims, all finite."""
    try:
        if isinstance(value, torch.Tensor):
            t = value.detach().to(device="cpu", dtype=torch.float64)
        else:
            t = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be a {ndim}-D array of numbers (tensor, array or nested list): {err}") from None
    if t.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    if t.numel() and not torch.isfinite(t).all():
        n_nan, n_inf = int(t.isnan().sum()), int(t.isinf().sum())
        raise ValueError(f"{name} must contain only finite numbers (no nan or inf), got {n_nan} nan and "
                         f"{n_inf} inf")
    return t


def _matrix(name: str, value, rows: int | None = None, cols: int | None = None, what: str = "") -> torch.Tensor:
    t = _as_tensor(name, value, 2)
    r, c = t.shape
    if r == 0 or c == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(t.shape)}")
    if (rows is not None and r != rows) or (cols is not None and c != cols):
        want = f"({rows if rows is not None else '*'}, {cols if cols is not None else '*'})"
        raise ValueError(f"{name} must have shape {want}{what}, got {tuple(t.shape)}")
    return t


def _vector(name: str, value, n: int | None = None, what: str = "") -> torch.Tensor:
    t = _as_tensor(name, value, 1)
    if t.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    if n is not None and t.numel() != n:
        raise ValueError(f"{name} must have length {n}{what}, got {t.numel()}")
    return t


def _tokens(name: str, value, n: int | None = None, what: str = "") -> list[str]:
    if isinstance(value, str) or not hasattr(value, "__len__"):
        raise ValueError(f"{name} must be a list of strings, got {type(value).__name__}")
    toks = [str(t) for t in value]
    if not toks:
        raise ValueError(f"{name} must not be empty")
    if n is not None and len(toks) != n:
        raise ValueError(f"{name} has {len(toks)} labels but {n} are needed{what}")
    return toks


def _positive(name: str, value) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(x) or x <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return x


def _index(name: str, value, n: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not (hasattr(value, "__index__")):
        raise ValueError(f"{name} must be an int, got {value!r}")
    i = int(value)
    if not 0 <= i < n:
        raise ValueError(f"{name} must lie in [0, {n - 1}] ({what}), got {i}")
    return i


def _lists(t: torch.Tensor) -> list:
    return t.tolist()


class _BadTraitValue(traitlets.TraitError, ValueError):
    """A trait set to a bad value: a ValueError (the library's contract) and a traitlets.TraitError,
    the error on which traitlets undoes the other traits set with it (``hold_trait_notifications``,
    a state update from the browser), so that the widget stays as it was."""


class _BadTraitType(traitlets.TraitError, TypeError):
    """A trait set to a value of the wrong kind: a TypeError and a traitlets.TraitError (see above)."""


def _named_validator(who: str, check):
    """A trait validator whose ValueError or TypeError names the explorer ``who`` once."""

    @functools.wraps(check)
    def named_check(self, proposal):
        try:
            return check(self, proposal)
        except (TypeError, ValueError) as e:
            if isinstance(e, traitlets.TraitError):
                raise
            msg = str(e) if str(e).startswith(f"{who}: ") else f"{who}: {e}"
            raise (_BadTraitType if isinstance(e, TypeError) else _BadTraitValue)(msg) from None

    return named_check


class _Explorer(anywidget.AnyWidget):
    """Common base: the shared stylesheet and a guard for recomputing results on the Python side.

    The shared math (static/math.js) and helpers (static/ui.js) are part of every widget's module, so a
    change to them changes every saved widget: re-execute every chapter with a widget. Code that only
    some widgets need goes into a separate file (views.js, and the widget's own .js and .css).
    """

    _css = _CSS

    def __init_subclass__(cls, **kwargs):
        # Every explorer's bad argument is reported under the explorer's name ("CostExplorer:
        # n_heads must be ..."), whichever helper found it, and before the widget exists; so is a
        # bad value given to a trait later (each @traitlets.validate of the class), before it is set.
        super().__init_subclass__(**kwargs)
        for handler in cls.__dict__.values():
            if isinstance(handler, traitlets.traitlets.ValidateHandler):
                handler.func = _named_validator(cls.__name__, handler.func)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def named_init(self, *args, **kw):
            try:
                init(self, *args, **kw)
            except (TypeError, ValueError) as e:
                if str(e).startswith(cls.__name__):
                    raise
                raise type(e)(f"{cls.__name__}: {e}") from None

        cls.__init__ = named_init

    def __init__(self, **kwargs):
        # traitlets would accept an unknown keyword with a warning only, so a misspelt argument
        # (d_modle=...) would be dropped in silence; what is not a trait is refused
        unknown = [k for k in kwargs if not self.has_trait(k)]
        if unknown:
            raise TypeError(f"got an unexpected keyword argument {unknown[0]!r}")
        super().__init__(**kwargs)

    def _safe_refresh(self) -> None:
        # Python keeps the result traits current too (e.g. while executing a notebook with no
        # browser attached). Half-finished updates of several inputs are skipped, not raised.
        try:
            self._refresh()
        except (ValueError, IndexError, RuntimeError):
            pass

    def _refresh(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


# --------------------------------------------------------------------------- AttentionExplorer


class AttentionExplorer(_Explorer):
    """Explore one attention head's pattern: query picker, temperature, causal mask, weight editor.

    Args:
        tokens: T token labels (list of str).
        x: embeddings (T, d_model), one row per token.
        w_q: query weights (d_model, d_head); queries are q = x @ w_q, shape (T, d_head).
        w_k: key weights (d_model, d_head); keys are k = x @ w_k, shape (T, d_head).
        temperature: positive; weights = softmax(q k^T / sqrt(d_head) / temperature).
        causal: apply the causal mask (each token sees itself and earlier tokens only).
        query: index of the query token whose weights are listed.
        dim_labels: optional names of the d_model embedding dimensions (the rows of w_q and w_k),
            shown in the weight editor; default "0", "1", ...
        show: what the grid shows: "weights" (the pattern, the default), "scaled" (the scores
            q k^T / sqrt(d_head)) or "raw" (the dot products q k^T); the reader switches it.

    A "reset" button (and ``reset()``) restores the weights and the controls the widget started
    with (``initial``).

    The head's maps of attnlib fit as they are: ``mha.W_Q[h]``, ``mha.W_K[h]`` (d_model, d_head).

    Synced traits (read them back in a live kernel): ``tokens``, ``x``, ``w_q``, ``w_k`` (lists),
    ``temperature``, ``causal``, ``query``, ``edit_matrix`` ("w_q" or "w_k"), ``edit_row``,
    ``edit_col`` (the weight being edited), ``dim_labels``, ``show``, ``initial`` (what reset
    restores: w_q, w_k and the controls), and the results ``weights`` (T, T) and ``scores`` (T, T)
    (q k^T / sqrt(d_head), before mask and temperature).
    """

    _esm = esm_source("attention_explorer.js", libs=("views.js",))

    tokens = List(Unicode()).tag(sync=True)
    x = List(List(Float())).tag(sync=True)
    w_q = List(List(Float())).tag(sync=True)
    w_k = List(List(Float())).tag(sync=True)
    temperature = Float(1.0).tag(sync=True)
    causal = Bool(False).tag(sync=True)
    query = Int(0).tag(sync=True)
    edit_matrix = Unicode("w_q").tag(sync=True)
    edit_row = Int(0).tag(sync=True)
    edit_col = Int(0).tag(sync=True)
    dim_labels = List(Unicode()).tag(sync=True)
    show = Unicode("weights").tag(sync=True)
    initial = traitlets.Dict().tag(sync=True)
    weights = List(List(Float())).tag(sync=True)
    scores = List(List(Float())).tag(sync=True)

    def __init__(self, tokens, x, w_q, w_k, *, temperature: float = 1.0, causal: bool = False, query: int = 0,
                 dim_labels=None, show: str = "weights", **kwargs):
        taken = [k for k in ("edit_matrix", "edit_row", "edit_col", "initial") if k in kwargs]
        if taken:  # set below from the arguments (Python's own message would name _Explorer.__init__)
            raise TypeError(f"got an unexpected keyword argument {taken[0]!r} (the explorer starts editing "
                            f"w_q[0][0], and initial is what it starts with); set {taken[0]} once it exists")
        x_t = _matrix("x", x)
        T, d_model = x_t.shape
        toks = _tokens("tokens", tokens, T, f" (one per row of x, which has shape {tuple(x_t.shape)})")
        wq = _matrix("w_q", w_q, rows=d_model, what=" (d_model, d_head) with d_model = x.shape[1]")
        wk = _matrix("w_k", w_k, rows=d_model, cols=wq.shape[1], what=" (d_model, d_head), the same as w_q")
        temp = _positive("temperature", temperature)
        causal = V.flags("AttentionExplorer", causal=causal)["causal"]
        q = _index("query", query, T, "a token index")
        dims = [str(i) for i in range(d_model)] if dim_labels is None else _tokens(
            "dim_labels", dim_labels, d_model, f" (one per embedding dimension: d_model = {d_model})")
        show = _show("AttentionExplorer", show)
        start = {"w_q": _lists(wq), "w_k": _lists(wk), "temperature": temp, "causal": causal,
                 "query": q, "edit_matrix": "w_q", "edit_row": 0, "edit_col": 0, "show": show}
        super().__init__(tokens=toks, x=_lists(x_t), dim_labels=dims, initial=start, **start, **kwargs)
        self._refresh()

    def reset(self) -> None:
        """Back to the weights and the controls the widget started with (the "reset" button)."""
        with self.hold_trait_notifications():
            for name, value in self.initial.items():
                setattr(self, name, value)

    @traitlets.validate("show")
    def _check_show(self, proposal):
        return _show("AttentionExplorer", proposal["value"])

    @traitlets.validate("temperature")
    def _check_temperature(self, proposal):
        return _positive("temperature", proposal["value"])

    @traitlets.validate("query")
    def _check_query(self, proposal):
        return _index("query", proposal["value"], max(1, len(self.tokens)), "a token index")

    @traitlets.validate("edit_matrix")
    def _check_edit_matrix(self, proposal):
        if proposal["value"] not in ("w_q", "w_k"):
            raise ValueError(f"edit_matrix must be 'w_q' or 'w_k', got {proposal['value']!r}")
        return proposal["value"]

    # x, w_q and w_k keep their shapes (T, d_model), (d_model, d_head): to change T, d_model or
    # d_head, set the traits together inside ``with explorer.hold_trait_notifications():``
    @traitlets.validate("tokens")
    def _check_tokens(self, proposal):
        _tokens("tokens", proposal["value"], len(self.x) or None, f" (one per row of x: T = {len(self.x)})")
        return proposal["value"]

    @traitlets.validate("x")
    def _check_x(self, proposal):
        T, d_model = len(self.tokens) or None, len(self.w_q) or None
        _matrix("x", proposal["value"], rows=T, cols=d_model, what=" (T, d_model): one row per token, "
                "d_model = the rows of w_q")
        return proposal["value"]

    @traitlets.validate("w_q", "w_k")
    def _check_weight_matrix(self, proposal):
        name = proposal["trait"].name
        other = "w_k" if name == "w_q" else "w_q"
        d_model = len(self.x[0]) if self.x else None
        d_head = len(getattr(self, other)[0]) if getattr(self, other) else None
        what = f" (d_model, d_head): d_model = the columns of x, d_head = that of {other}"
        rows, cols = _matrix(name, proposal["value"], rows=d_model, cols=d_head, what=what).shape
        self._editor_fits(name, rows, cols)
        return proposal["value"]

    _HOLD = "inside `with explorer.hold_trait_notifications():`"

    def _editor_fits(self, name: str, rows: int, cols: int) -> None:
        """A new shape (d_model, d_head) of w_q and w_k keeps a name for each row (dim_labels) and
        the weight being edited (edit_row, edit_col)."""
        if self.dim_labels and len(self.dim_labels) != rows:
            raise ValueError(f"{name} has {rows} rows (d_model) but dim_labels names {len(self.dim_labels)} "
                             f"embedding dims; to change d_model, set x, w_q, w_k and dim_labels together "
                             f"{self._HOLD}")
        if self.edit_row >= rows or self.edit_col >= cols:
            raise ValueError(f"{name} of shape {(rows, cols)} has no entry (edit_row, edit_col) = "
                             f"({self.edit_row}, {self.edit_col}), the weight being edited; set them with it "
                             f"{self._HOLD}")

    @traitlets.validate("edit_row", "edit_col")
    def _check_edit_cell(self, proposal):
        name, d_model = proposal["trait"].name, len(self.w_q)
        if name == "edit_row":
            what = f"a row of {self.edit_matrix}: one of the d_model = {d_model} embedding dims"
            return V.index("AttentionExplorer", name, proposal["value"], max(1, d_model), what)
        d_head = len(self.w_q[0]) if self.w_q else 1
        what = f"a column of {self.edit_matrix}: one of the d_head = {d_head} query/key dims"
        return V.index("AttentionExplorer", name, proposal["value"], d_head, what)

    @traitlets.validate("dim_labels")
    def _check_dim_labels(self, proposal):
        d_model = len(self.w_q) or None
        _tokens("dim_labels", proposal["value"], d_model, f" (one per embedding dimension: d_model = {d_model})")
        return proposal["value"]

    @traitlets.observe("x", "w_q", "w_k", "temperature", "causal", "tokens")
    def _on_inputs(self, change):
        self._safe_refresh()

    def _refresh(self) -> None:
        r = self.compute()
        self.weights = _lists(r["weights"])
        self.scores = _lists(r["scores"])

    def compute(self) -> dict:
        """Recompute with attnlib from the current traits.

        Returns a dict of float64 tensors: ``q`` and ``k`` (T, d_head), ``raw`` (T, T) = q k^T,
        ``scores`` (T, T) = q k^T / sqrt(d_head), and ``weights`` (T, T) from
        ``attnlib.attention(q, k, k, is_causal=causal, scale=1/sqrt(d_head)/temperature, return_weights=True)``.
        """
        x = _matrix("x", self.x)
        wq = _matrix("w_q", self.w_q, rows=x.shape[1])
        wk = _matrix("w_k", self.w_k, rows=x.shape[1], cols=wq.shape[1])
        q, k = x @ wq, x @ wk  # (T, d_head)
        scale = 1.0 / math.sqrt(q.shape[-1])
        _, weights = attention(q, k, k, is_causal=self.causal, scale=scale / self.temperature, return_weights=True)
        return {"q": q, "k": k, "raw": q @ k.T, "scores": (q @ k.T) * scale, "weights": weights}

    def shown(self) -> torch.Tensor:
        """The grid the widget shows now (``show``): the raw, the scaled scores or the weights."""
        return self.compute()[{"raw": "raw", "scaled": "scores", "weights": "weights"}[self.show]]


_SHOW = ("weights", "scaled", "raw")


def _show(who: str, val) -> str:
    if not isinstance(val, str):
        raise TypeError(f"{who}: show must be a str, one of {_SHOW}, got {_describe(val)}")
    if val not in _SHOW:
        raise ValueError(f"{who}: show must be one of {_SHOW}, got {val!r}")
    return val


# --------------------------------------------------------------------------- QueryKeyArrows


class QueryKeyArrows(_Explorer):
    """One query against every key, drawn as arrows in a 2-D query/key space: the reader rotates
    the query (angle slider) and stretches it (length slider), or drags it with the pointer, and
    reads each key's dot product q·k, its scaled score q·k / sqrt(d_head) and its softmax weight.

    Args:
        tokens: T key labels.
        keys: the keys (T, 2) in the picture's two coordinates.
        query: the query (2,) the widget starts from (not zero): its angle and length set the sliders.
        d_head: the head's size; scores = q·k / sqrt(d_head). Default 2, the picture's own size;
            pass the head's size when the two coordinates carry a larger head's dot products
            exactly (as chapter 2's picture does for its 4-wide head).
        causal: start with the causal mask on: the query sees keys 0 .. query_index only.
        query_index: the position of the query's token among the keys (None: no mask offered).
        query_label: the query's name in the picture, e.g. "query of creature".
        axis_labels: names of the picture's (horizontal, vertical) coordinates.
        max_length: the length slider's upper end, also the picture's half-width (default: 1.25
            times the longest of the query and the keys, rounded up).
        title: the widget's heading.

    Synced traits: inputs ``tokens``, ``key_vectors`` (the keys; ipywidgets reserves ``keys``), ``angle`` (degrees, counter-clockwise from the
    horizontal axis, in (-180, 180]), ``length`` (in [0, max_length]), ``causal``, ``query_index``
    (-1 for None), ``d_head``, ``max_length``, ``query_label``, ``axis_labels``, ``title``,
    ``initial`` (the angle, length and causal flag that "reset" restores); results ``query`` (2,),
    ``dots``, ``scores`` and ``weights`` (T,). ``compute()`` recomputes them with attnlib.
    """

    _esm = esm_source("query_key_arrows.js", libs=("views.js",))
    _css = _CSS + "\n" + _read_static("query_key_arrows.css")

    tokens = List(Unicode()).tag(sync=True)
    key_vectors = List(List(Float())).tag(sync=True)
    angle = Float(0.0).tag(sync=True)
    length = Float(1.0).tag(sync=True)
    causal = Bool(False).tag(sync=True)
    query_index = Int(-1).tag(sync=True)
    d_head = Int(2).tag(sync=True)
    max_length = Float(1.0).tag(sync=True)
    query_label = Unicode("query").tag(sync=True)
    axis_labels = List(Unicode()).tag(sync=True)
    title = Unicode("").tag(sync=True)
    initial = traitlets.Dict().tag(sync=True)
    query = List(Float()).tag(sync=True)
    dots = List(Float()).tag(sync=True)
    scores = List(Float()).tag(sync=True)
    weights = List(Float()).tag(sync=True)

    def __init__(self, tokens, keys, query, *, d_head: int = 2, causal: bool = False,
                 query_index: int | None = None, query_label: str = "query",
                 axis_labels=("coordinate 0", "coordinate 1"), max_length: float | None = None,
                 title: str = "A query and its keys as arrows", **kwargs):
        who = "QueryKeyArrows"
        k = _matrix("keys", keys, cols=2, what=" (T, 2): one 2-D key per token")
        T = k.shape[0]
        toks = _tokens("tokens", tokens, T, f" (one per row of keys, which has shape {tuple(k.shape)})")
        q = _vector("query", query, 2, " (a 2-D query)")
        q_len = float(q.norm())
        if q_len == 0:
            raise ValueError(f"{who}: query must not be zero (it has no direction to rotate), got {q.tolist()}")
        d_head = V.positive_int(who, "d_head", d_head)
        causal = _flag(who, "causal", causal)
        if query_index is not None:
            query_index = V.index(who, "query_index", query_index, T, "a position among the keys")
        elif causal:
            raise ValueError(f"{who}: causal=True needs query_index, the position of the query's token "
                             "(the mask hides the keys after it), got query_index=None")
        query_label, title = _text(who, "query_label", query_label), _text(who, "title", title)
        axes = _label_pair(who, "axis_labels", axis_labels)
        longest = max(q_len, float(k.norm(dim=-1).max()))
        if max_length is None:
            from .viz import nice_limit

            max_length = nice_limit(1.25 * longest)
        max_length = V.finite_float(who, "max_length", max_length, low=0.0, low_open=True)
        if max_length < q_len:
            raise ValueError(f"{who}: max_length must be at least the query's length {q_len:.4g} (the "
                             f"slider must reach it), got {max_length!r}")
        angle = math.degrees(math.atan2(float(q[1]), float(q[0])))
        start = {"angle": angle, "length": q_len, "causal": causal}
        super().__init__(tokens=toks, key_vectors=_lists(k), angle=angle, length=q_len, causal=causal,
                         query_index=-1 if query_index is None else query_index, d_head=d_head,
                         max_length=max_length, query_label=query_label, axis_labels=axes, title=title,
                         initial=start, **kwargs)
        self._refresh()

    @traitlets.validate("angle")
    def _check_angle(self, proposal):
        a = float(proposal["value"])
        if not math.isfinite(a):
            raise ValueError(f"QueryKeyArrows: angle must be a finite number of degrees, got {a!r}")
        return a if -180.0 < a <= 180.0 else a - 360.0 * math.ceil((a - 180.0) / 360.0)

    @traitlets.validate("length")
    def _check_length(self, proposal):
        x = float(proposal["value"])
        if not 0.0 <= x <= self.max_length + 1e-9:
            raise ValueError(f"QueryKeyArrows: length must lie in [0, max_length={self.max_length}], got {x!r}")
        return x

    @traitlets.validate("max_length")
    def _check_max_length(self, proposal):
        x = V.finite_float("QueryKeyArrows", "max_length", proposal["value"], low=0.0, low_open=True)
        if self.length > x + 1e-9:  # the length slider must reach the query (and length checks the same)
            raise ValueError(f"QueryKeyArrows: max_length must be at least length={self.length!r} (the slider "
                             f"must reach the query), got {x!r}; to shorten both, set them together inside "
                             "`with arrows.hold_trait_notifications():`")
        return x

    @traitlets.validate("causal")
    def _check_causal(self, proposal):
        if proposal["value"] and self.query_index < 0:
            raise ValueError("QueryKeyArrows: causal=True needs query_index (the query's position)")
        return proposal["value"]

    @traitlets.validate("query_index")
    def _check_query_index(self, proposal):
        i = proposal["value"]
        if i == -1 and self.causal:
            raise ValueError("QueryKeyArrows: query_index must be a position among the keys while "
                             "causal=True (the mask hides the keys after it), got -1 (none); set "
                             "causal=False first")
        return i if i == -1 else V.index("QueryKeyArrows", "query_index", i, len(self.tokens),
                                         "a position among the keys, or -1 for none")

    @traitlets.validate("d_head")
    def _check_d_head(self, proposal):
        return V.positive_int("QueryKeyArrows", "d_head", proposal["value"])

    @traitlets.validate("key_vectors")
    def _check_key_vectors(self, proposal):
        _matrix("key_vectors", proposal["value"], rows=len(self.tokens) or None, cols=2,
                what=" (T, 2): one 2-D key per token")
        return proposal["value"]

    @traitlets.observe("key_vectors", "angle", "length", "causal", "query_index", "d_head")
    def _on_inputs(self, change):
        self._safe_refresh()

    def _refresh(self) -> None:
        r = self.compute()
        self.query = _lists(r["query"])
        self.dots, self.scores, self.weights = (_lists(r[n]) for n in ("dots", "scores", "weights"))

    def reset(self) -> None:
        """Back to the angle, length and mask the widget started with (the "reset" button)."""
        with self.hold_trait_notifications():
            self.causal = self.initial["causal"]
            self.angle, self.length = self.initial["angle"], self.initial["length"]

    def compute(self) -> dict:
        """Float64 tensors: ``query`` (2,) from the angle and length, ``dots`` = keys @ query (T,),
        ``scores`` = dots / sqrt(d_head), ``weights`` = attnlib.softmax of the scores, the keys
        after ``query_index`` set to -inf when causal."""
        k = _matrix("keys", self.key_vectors, cols=2)
        a = math.radians(self.angle)
        q = self.length * torch.tensor([math.cos(a), math.sin(a)], dtype=torch.float64)
        dots = k @ q
        scores = dots / math.sqrt(self.d_head)
        later = torch.arange(k.shape[0]) > self.query_index
        masked = scores.masked_fill(later, float("-inf")) if self.causal else scores
        return {"query": q, "dots": dots, "scores": scores, "weights": softmax(masked, dim=-1)}


def _flag(who: str, name: str, val) -> bool:
    """A switch: True or False (a Python or numpy bool), as a bool; not read by its truth value."""
    return V.flags(who, **{name: val})[name]


def _text(who: str, name: str, val) -> str:
    if not isinstance(val, str):
        raise TypeError(f"{who}: {name} must be a str, got {_describe(val)}")
    return val


def _label_pair(who: str, name: str, val) -> list[str]:
    if isinstance(val, str) or not isinstance(val, (list, tuple)) or not all(isinstance(s, str) for s in val):
        raise TypeError(f"{who}: {name} must be a pair of str (horizontal, vertical), got {_describe(val)}")
    if len(val) != 2:
        raise ValueError(f"{who}: {name} must name 2 coordinates (horizontal, vertical), got {len(val)}: {val!r}")
    return list(val)


# --------------------------------------------------------------------------- SoftmaxExplorer


class SoftmaxExplorer(_Explorer):
    """Softmax with a temperature slider (log scale, 0.01 to 100), drawn as labelled bars.

    Args:
        labels: n labels (list of str), one per score.
        scores: n scores (1-D).
        temperature: positive; weights = softmax(scores / temperature).

    Synced traits: ``labels``, ``scores``, ``temperature`` and the result ``weights`` (n,).
    """

    _esm = esm_source("softmax_explorer.js")

    labels = List(Unicode()).tag(sync=True)
    scores = List(Float()).tag(sync=True)
    temperature = Float(1.0).tag(sync=True)
    weights = List(Float()).tag(sync=True)

    def __init__(self, labels, scores, *, temperature: float = 1.0, **kwargs):
        s = _vector("scores", scores)
        labs = _tokens("labels", labels, s.numel(), " (one per score)")
        super().__init__(labels=labs, scores=_lists(s), temperature=_positive("temperature", temperature), **kwargs)
        self._refresh()

    @traitlets.validate("temperature")
    def _check_temperature(self, proposal):
        return _positive("temperature", proposal["value"])

    # one label per score: to change their number, set both inside ``with
    # explorer.hold_trait_notifications():`` (checked at its end)
    @traitlets.validate("scores")
    def _check_scores(self, proposal):
        _vector("scores", proposal["value"], len(self.labels) or None, " (one per label)")
        return proposal["value"]

    @traitlets.validate("labels")
    def _check_labels(self, proposal):
        _tokens("labels", proposal["value"], len(self.scores) or None, " (one per score)")
        return proposal["value"]

    @traitlets.observe("scores", "temperature")
    def _on_inputs(self, change):
        self._safe_refresh()

    def _refresh(self) -> None:
        self.weights = _lists(self.compute())

    def compute(self) -> torch.Tensor:
        """``attnlib.softmax(scores / temperature)`` as a float64 tensor (n,)."""
        s = _vector("scores", self.scores)
        return softmax(s / self.temperature, dim=-1)


# --------------------------------------------------------------------------- PatternViewer


def _named_patterns(patterns) -> tuple[list[str], list[torch.Tensor]]:
    """(names, matrices) of PatternViewer's ``patterns``: a dict {name: (T_q, T_k)} or a stack
    (n, T_q, T_k) named "head 0", "head 1", ...; not empty, all of one shape."""
    if isinstance(patterns, Mapping):
        if not patterns:
            raise ValueError("patterns must not be empty")
        names = [str(n) for n in patterns]
        _distinct_names(list(patterns), names)
        mats = [_matrix(f"patterns[{n!r}]", p) for n, p in patterns.items()]
    else:
        stack = _as_tensor("patterns", patterns, 3)
        if stack.shape[0] == 0:
            raise ValueError("patterns must not be empty")
        names = [f"head {i}" for i in range(stack.shape[0])]
        mats = list(stack)
    T_q, T_k = mats[0].shape
    for n, m in zip(names, mats, strict=True):
        if m.shape != (T_q, T_k):
            raise ValueError(f"patterns must all have one shape (T_q, T_k) = {(T_q, T_k)}, but {n!r} has "
                             f"{tuple(m.shape)}")
    return names, mats


def _distinct_names(keys: list, names: list[str]) -> None:
    """The dropdown shows each pattern by its name as text: two keys that read the same (1 and "1")
    would show one name twice, and ``selected`` could pick only the first."""
    seen: dict[str, object] = {}
    for key, name in zip(keys, names, strict=True):
        if name in seen:
            raise ValueError(f"patterns' names must differ as text (the dropdown shows them as str), got "
                             f"the keys {seen[name]!r} and {key!r}, both read {name!r}")
        seen[name] = key


def _decimals(who: str, val) -> int:
    """PatternViewer's digits per cell: an int in [0, 6]."""
    if isinstance(val, bool) or not isinstance(val, int):
        raise TypeError(f"{who}: decimals must be an int in [0, 6], got {V.describe(val)}")
    if not 0 <= val <= 6:
        raise ValueError(f"{who}: decimals must be an int in [0, 6], got {val!r}")
    return val


def _limits_in_order(vmin: float, vmax: float) -> None:
    if not (math.isfinite(vmin) and math.isfinite(vmax) and vmin < vmax):
        raise ValueError(f"vmin must be below vmax (both finite), got vmin={vmin}, vmax={vmax}")


def _pattern_limits(mats, vmin, vmax) -> tuple[float, float]:
    """PatternViewer's colour range: the given (vmin, vmax), checked, or when neither is given
    [0, 1] for weights, symmetric rounded limits for signed values, else [0, rounded max]."""
    lo = min(float(m.min()) for m in mats)
    top = max(float(m.max()) for m in mats)
    if vmin is None and vmax is None:  # rounded limits: a float32 1.0000001 is read as 1
        from .viz import nice_limit

        if lo >= 0 and top <= 1 + 1e-6:
            vmin, vmax = 0.0, 1.0
        elif lo < 0:
            big = nice_limit(max(abs(lo), abs(top)))
            vmin, vmax = -big, big
        else:
            vmin, vmax = 0.0, nice_limit(top)
    elif vmin is None or vmax is None:
        raise ValueError("vmin and vmax must be given together (or neither)")
    vmin, vmax = float(vmin), float(vmax)
    _limits_in_order(vmin, vmax)
    return vmin, vmax


class PatternViewer(_Explorer):
    """Show one of several attention patterns (heads, layers, ...), chosen from a dropdown.

    Args:
        patterns: a dict {name: pattern (T_q, T_k)} (kept in order), or a 3-D array (n, T_q, T_k)
            whose patterns are named "head 0", "head 1", ...
        q_tokens: T_q query labels (rows).
        k_tokens: T_k key labels (columns); default ``q_tokens`` (self-attention).
        selected: name of the pattern shown first (default: the first).
        decimals: digits shown in each cell.
        vmin, vmax: the colour range. Default: 0 and 1 when every value lies in [0, 1] (attention
            weights); symmetric around 0 (a blue/red diverging scale) when some value is negative,
            e.g. for cosine similarities; otherwise 0 to the largest value.
        title: the widget's heading; caption: the line above the grid (default: "attention pattern:
            rows = query, columns = key" with row_name and col_name).
        row_name, col_name: what the rows and columns are (default "query" and "key").

    Synced traits: ``names`` (n,), ``patterns`` (n, T_q, T_k), ``q_tokens``, ``k_tokens``,
    ``selected`` (the name shown; follows the dropdown), ``decimals``, ``vmin``, ``vmax``, ``title``,
    ``caption``, ``row_name``, ``col_name``.
    """

    _esm = esm_source("pattern_viewer.js")

    names = List(Unicode()).tag(sync=True)
    patterns = List(List(List(Float()))).tag(sync=True)
    q_tokens = List(Unicode()).tag(sync=True)
    k_tokens = List(Unicode()).tag(sync=True)
    selected = Unicode("").tag(sync=True)
    decimals = Int(2).tag(sync=True)
    vmin = Float(0.0).tag(sync=True)
    vmax = Float(1.0).tag(sync=True)
    title = Unicode("Attention patterns").tag(sync=True)
    caption = Unicode("").tag(sync=True)
    row_name = Unicode("query").tag(sync=True)
    col_name = Unicode("key").tag(sync=True)

    def __init__(self, patterns, q_tokens, k_tokens=None, *, selected: str | None = None, decimals: int = 2,
                 vmin: float | None = None, vmax: float | None = None, title: str = "Attention patterns",
                 caption: str = "", row_name: str = "query", col_name: str = "key", **kwargs):
        names, mats = _named_patterns(patterns)
        T_q, T_k = mats[0].shape
        qt = _tokens("q_tokens", q_tokens, T_q, f" (one per row: the patterns are {(T_q, T_k)})")
        kt = qt if k_tokens is None else _tokens("k_tokens", k_tokens, T_k,
                                                 f" (one per column: the patterns are {(T_q, T_k)})")
        if k_tokens is None and T_k != T_q:
            raise ValueError(f"k_tokens is needed when T_k != T_q (the patterns are {(T_q, T_k)})")
        sel = names[0] if selected is None else str(selected)
        if sel not in names:
            raise ValueError(f"selected must be one of {names}, got {selected!r}")
        decimals = _decimals("PatternViewer", decimals)
        vmin, vmax = _pattern_limits(mats, vmin, vmax)
        texts = {n: _text("PatternViewer", n, v) for n, v in
                 (("title", title), ("caption", caption), ("row_name", row_name), ("col_name", col_name))}
        super().__init__(names=names, patterns=[_lists(m) for m in mats], q_tokens=qt, k_tokens=kt,
                         selected=sel, decimals=decimals, vmin=vmin, vmax=vmax, **texts, **kwargs)

    @traitlets.validate("decimals")
    def _check_decimals(self, proposal):
        return _decimals("PatternViewer", proposal["value"])

    # the colour range: to move both ends past each other, set them together inside
    # ``with viewer.hold_trait_notifications():`` (the pair is checked at its end)
    @traitlets.validate("vmin", "vmax")
    def _check_limits(self, proposal):
        ends = {"vmin": self.vmin, "vmax": self.vmax, proposal["trait"].name: proposal["value"]}
        _limits_in_order(ends["vmin"], ends["vmax"])
        return proposal["value"]

    @traitlets.validate("selected")
    def _check_selected(self, proposal):
        if self.names and proposal["value"] not in self.names:
            raise ValueError(f"selected must be one of {list(self.names)}, got {proposal['value']!r}")
        return proposal["value"]

    def compute(self) -> torch.Tensor:
        """The pattern shown now, as a float64 tensor (T_q, T_k)."""
        return torch.tensor(self.patterns[self.names.index(self.selected)], dtype=torch.float64)


# --------------------------------------------------------------------------- ValueUpdateExplorer


class ValueUpdateExplorer(_Explorer):
    """How the weighted sum of the proposed changes moves a query's embedding (2-D, so it can be drawn).

    Args:
        tokens: T token labels.
        points: embeddings (T, 2).
        values: the change each token proposes (T, 2): its value times W_O, v_j W_O, in the
            embedding's plane (the name is kept for older notebooks).
        query: index of the token being updated.
        weights: the query's weights on the T keys (T,), non-negative; renormalised to sum to 1
            (all zeros: no change). Default: uniform (over the keys the query may see).
        causal: apply the causal mask: the query takes only from itself and earlier tokens, so the
            keys after it get weight 0 (and no slider) and the rest are renormalised.
            Given weights must then put nothing on those keys. The reader can switch it off.
        axis_labels: names of the picture's (horizontal, vertical) coordinates, e.g. the two named
            directions the points were projected on.

    The change is delta = sum_j weights[j] * values[j] (2,), and the updated embedding is
    points[query] + delta (the residual connection).

    Synced traits: ``tokens``, ``points``, ``values``, ``query``, ``weights`` (normalised; follows the
    sliders), ``causal``, ``axis_labels`` and the results ``delta`` (2,) and ``updated`` (2,).
    """

    _esm = esm_source("value_update_explorer.js", libs=("views.js",))

    tokens = List(Unicode()).tag(sync=True)
    points = List(List(Float())).tag(sync=True)
    values = List(List(Float())).tag(sync=True)
    query = Int(0).tag(sync=True)
    weights = List(Float()).tag(sync=True)
    causal = Bool(False).tag(sync=True)
    axis_labels = List(Unicode()).tag(sync=True)
    delta = List(Float()).tag(sync=True)
    updated = List(Float()).tag(sync=True)

    def __init__(self, tokens, points, values, query: int = 0, weights=None, *, causal: bool = False,
                 axis_labels=("coordinate 0", "coordinate 1"), **kwargs):
        who = "ValueUpdateExplorer"
        p = _matrix("points", points, cols=2, what=" (T, 2): one 2-D embedding per token")
        T = p.shape[0]
        toks = _tokens("tokens", tokens, T, f" (one per row of points, which has shape {tuple(p.shape)})")
        v = _matrix("values", values, rows=T, cols=2, what=" (T, 2): one 2-D value per token")
        q = _index("query", query, T, "a token index")
        causal = _flag(who, "causal", causal)
        axes = _label_pair(who, "axis_labels", axis_labels)
        if weights is None:
            seen = q + 1 if causal else T
            weights = [1.0 / seen if j < seen else 0.0 for j in range(T)]
        w = _normalised_weights(weights, T)
        if causal and (w[q + 1:] > 0).any():
            later = [f"{toks[j]!r} ({float(w[j]):.3g})" for j in range(q + 1, T) if w[j] > 0]
            raise ValueError(f"{who}: with causal=True the query {toks[q]!r} (position {q}) may not take "
                             f"from later tokens, but weights puts weight on {', '.join(later)}; pass "
                             "the pattern's causal row, or causal=False")
        super().__init__(tokens=toks, points=_lists(p), values=_lists(v), query=q, weights=_lists(w),
                         causal=causal, axis_labels=axes, **kwargs)
        self._refresh()

    @traitlets.validate("query")
    def _check_query(self, proposal):
        return _index("query", proposal["value"], max(1, len(self.tokens)), "a token index")

    @traitlets.validate("weights")
    def _check_weights(self, proposal):
        w = proposal["value"]
        n = _normalised_weights(w, len(self.tokens) or None)
        # values that already sum to 1 (as the browser sends them) are kept exactly, so that no
        # rounding difference is echoed back to the sliders
        return list(w) if abs(sum(w) - 1.0) < 1e-9 else _lists(n)

    @traitlets.validate("points", "values")
    def _check_plane(self, proposal):
        name = proposal["trait"].name
        what = " (T, 2): one 2-D " + ("embedding" if name == "points" else "value") + " per token"
        _matrix(name, proposal["value"], rows=len(self.tokens) or None, cols=2, what=what)
        return proposal["value"]

    @traitlets.observe("points", "values", "query", "weights", "causal")
    def _on_inputs(self, change):
        self._safe_refresh()

    def _refresh(self) -> None:
        r = self.compute()
        self.delta = _lists(r["delta"])
        self.updated = _lists(r["updated"])

    def compute(self) -> dict:
        """Float64 tensors: ``weights`` (T,) (with ``causal``, those of the keys after the query
        set to 0 and the rest renormalised), ``delta`` = weights @ values (2,), ``updated`` (2,)."""
        p = _matrix("points", self.points, cols=2)
        v = _matrix("values", self.values, rows=p.shape[0], cols=2)
        w = _normalised_weights(self.weights, p.shape[0])
        if self.causal:
            w = _normalised_weights(w.masked_fill(torch.arange(len(w)) > self.query, 0.0), len(w))
        delta = w @ v  # (2,)
        return {"weights": w, "delta": delta, "updated": p[self.query] + delta}


def _normalised_weights(weights, T: int | None) -> torch.Tensor:
    w = _vector("weights", weights, T, " (one weight per key)")
    if (w < 0).any():
        raise ValueError(f"weights must be non-negative, got {w.tolist()}")
    total = w.sum()
    return w / total if total > 0 else w  # all zero: the query attends to nothing, no change


# --------------------------------------------------------------------------- CostExplorer


class CostExplorer(_Explorer):
    """How many entries the attention patterns have, and their memory, as the context grows.

    Args:
        context_lens: the context lengths the slider steps through (increasing positive ints).
        n_heads: heads per layer (default 96, GPT-3).
        n_layers: layers (default 96, GPT-3).
        bytes_per_entry: bytes per stored weight (default 2: float16/bfloat16; 4 for float32).
        context_len: the length shown first (default 2048 if listed, else the first).
        label: a name for the model, shown in the widget (e.g. "GPT-3").

    One pattern has context_len**2 entries per head and layer; memory_bytes counts all heads and
    layers of one sequence at ``bytes_per_entry`` each.

    Synced traits: ``context_lens``, ``context_len`` (follows the slider), ``n_heads``, ``n_layers``,
    ``bytes_per_entry``, ``label``, and the results ``entries`` (per head and layer) and
    ``memory_bytes`` (all heads and layers).
    """

    _esm = esm_source("cost_explorer.js")

    context_lens = List(Int()).tag(sync=True)
    context_len = Int(2048).tag(sync=True)
    n_heads = Int(96).tag(sync=True)
    n_layers = Int(96).tag(sync=True)
    bytes_per_entry = Float(2.0).tag(sync=True)
    label = Unicode("").tag(sync=True)
    entries = Int(0).tag(sync=True)
    memory_bytes = Float(0.0).tag(sync=True)

    def __init__(self, context_lens=(256, 512, 1024, 2048, 4096, 8192, 16384, 32768), n_heads: int = 96,
                 n_layers: int = 96, bytes_per_entry: float = 2, *, context_len: int | None = None,
                 label: str = "", **kwargs):
        who = "CostExplorer"
        lens = _context_lens(who, context_lens)
        n_heads, n_layers = V.positive_int(who, "n_heads", n_heads), V.positive_int(who, "n_layers", n_layers)
        b = _positive("bytes_per_entry", bytes_per_entry)
        n = (2048 if 2048 in lens else lens[0]) if context_len is None else V.positive_int(
            who, "context_len", context_len)
        if n not in lens:
            raise ValueError(f"context_len must be one of context_lens {lens}, got {context_len!r}")
        super().__init__(context_lens=lens, context_len=n, n_heads=n_heads, n_layers=n_layers,
                         bytes_per_entry=b, label=_text(who, "label", label), **kwargs)
        self._refresh()

    # the slider's stops and its position: to change both, set them together inside
    # ``with cost.hold_trait_notifications():`` (the pair is checked at its end)
    @traitlets.validate("context_len")
    def _check_context_len(self, proposal):
        n = V.positive_int("CostExplorer", "context_len", proposal["value"])
        if self.context_lens and n not in self.context_lens:
            raise ValueError(f"context_len must be one of {list(self.context_lens)}, got {proposal['value']!r}")
        return n

    @traitlets.validate("context_lens")
    def _check_context_lens(self, proposal):
        lens = _context_lens("CostExplorer", proposal["value"])
        if self.context_len not in lens:
            raise ValueError(f"context_lens must include context_len={self.context_len} (the slider's "
                             f"position), got {lens}; to change both, set them together inside "
                             "`with cost.hold_trait_notifications():`")
        return lens

    @traitlets.validate("n_heads", "n_layers")
    def _check_count(self, proposal):
        return V.positive_int("CostExplorer", proposal["trait"].name, proposal["value"])

    @traitlets.validate("bytes_per_entry")
    def _check_bytes_per_entry(self, proposal):
        return _positive("bytes_per_entry", proposal["value"])

    @traitlets.observe("context_len", "n_heads", "n_layers", "bytes_per_entry")
    def _on_inputs(self, change):
        self._safe_refresh()

    def _refresh(self) -> None:
        r = self.compute()
        self.entries = r["per_head"]
        self.memory_bytes = float(r["bytes_total"])

    def compute(self, context_len: int | None = None) -> dict:
        """Pattern sizes for ``context_len`` (default: the current one), as Python numbers:
        ``per_head`` = n**2, ``per_layer`` = n**2 * n_heads, ``total`` = per_layer * n_layers, and
        ``bytes_per_head``, ``bytes_per_layer``, ``bytes_total`` at ``bytes_per_entry`` each."""
        n = self.context_len if context_len is None else V.positive_int("CostExplorer.compute", "context_len",
                                                                        context_len)
        per_head = n * n
        per_layer = per_head * self.n_heads
        total = per_layer * self.n_layers
        b = self.bytes_per_entry
        return {"per_head": per_head, "per_layer": per_layer, "total": total, "bytes_per_head": per_head * b,
                "bytes_per_layer": per_layer * b, "bytes_total": total * b}


def _context_lens(who: str, val) -> list[int]:
    """CostExplorer's context lengths: a non-empty increasing sequence of positive ints, as a list."""
    if isinstance(val, (str, Mapping)) or not hasattr(val, "__iter__"):
        raise TypeError(f"{who}: context_lens must be a non-empty increasing sequence of positive ints, got "
                        f"{V.describe(val)}")
    lens = [V.positive_int(who, "every entry of context_lens", n) for n in val]
    if not lens or any(b <= a for a, b in zip(lens, lens[1:], strict=False)):
        raise ValueError(f"{who}: context_lens must be a non-empty increasing sequence of positive ints, got "
                         f"{lens!r}")
    return lens


# --------------------------------------------------------------------------- OnlineSoftmaxStepper


def _named(who: str, check, *args):
    """Run one of the array checks above with the class's name in front of its message."""
    try:
        return check(*args)
    except ValueError as err:
        raise ValueError(f"{who}: {err}") from None


class OnlineSoftmaxStepper(_Explorer):
    """The online softmax of one query, stepped through its keys one tile at a time.

    Args:
        scores: the query's T scores against its keys (1-D).
        values: the keys' values, (T, d_v), or (T,) for one number per key.
        labels: T key labels (default "k0", "k1", ...).
        block: keys per tile, in [1, T]; the last tile is shorter when block does not divide T.
        step: tiles folded in so far, in [0, ceil(T / block)]; 0 = before the first tile.

    After each tile the widget shows the running max m, the factor exp(m_old - m) that rescales
    the old sums (below 1 exactly when the tile raised the max), the running sum l of
    exp(score - m) and the accumulator acc of exp(score - m) * value; after the last tile acc / l
    equals softmax(scores) @ values. The browser computes it all (static/tiling.js).

    Synced traits: ``labels``, ``scores``, ``values`` (T, d_v), ``block`` and ``step`` (follow the
    controls), and the state after ``step`` tiles: ``m``, ``rescale``, ``l`` (None before the first
    tile), ``acc`` (d_v,) and ``out`` = acc / l ([] before the first tile).
    """

    _esm = esm_source("online_softmax_stepper.js", libs=("tiling.js",))
    _css = _CSS + "\n" + _read_static("tiling.css")

    labels = List(Unicode()).tag(sync=True)
    scores = List(Float()).tag(sync=True)
    values = List(List(Float())).tag(sync=True)
    block = Int(2).tag(sync=True)
    step = Int(0).tag(sync=True)
    m = Float(None, allow_none=True).tag(sync=True)
    rescale = Float(None, allow_none=True).tag(sync=True)
    l = Float(None, allow_none=True).tag(sync=True)  # the book's name for the running sum
    acc = List(Float()).tag(sync=True)
    out = List(Float()).tag(sync=True)

    _who = "OnlineSoftmaxStepper"

    def __init__(self, scores, values, *, labels=None, block: int = 2, step: int = 0, **kwargs):
        who = self._who
        s = _named(who, _vector, "scores", scores)
        T = s.numel()
        try:
            v = values.detach().cpu().double() if isinstance(values, torch.Tensor) else torch.as_tensor(
                values, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{who}: values must be a (T, d_v) or (T,) array of numbers, got "
                            f"{V.describe(values)}") from None
        v = _named(who, _matrix, "values", v.reshape(-1, 1) if v.ndim == 1 else v, T, None,
                   f" (one row per score: T = {T})")
        labs = [f"k{j}" for j in range(T)] if labels is None else _named(
            who, _tokens, "labels", labels, T, f" (one per score: T = {T})")
        block = V.positive_int(who, "block", block)
        if block > T:
            raise ValueError(f"{who}: block must be an int in [1, T={T}] (keys per tile), got {block}")
        n = -(-T // block)
        step = V.nonneg_int(who, "step", step)
        if step > n:
            raise ValueError(f"{who}: step must be an int in [0, {n}] (tiles done; T={T} keys in tiles "
                             f"of {block}), got {step}")
        super().__init__(labels=labs, scores=_lists(s), values=_lists(v), block=block, step=step, **kwargs)
        self._refresh()

    def n_tiles(self) -> int:
        """ceil(T / block): how many tiles the keys make."""
        return -(-len(self.scores) // self.block)

    @traitlets.validate("block")
    def _check_block(self, proposal):
        block, T = V.positive_int(self._who, "block", proposal["value"]), len(self.scores)
        if T and block > T:
            raise ValueError(f"{self._who}: block must be an int in [1, T={T}], got {block}")
        return block

    @traitlets.validate("step")
    def _check_step(self, proposal):
        step = V.nonneg_int(self._who, "step", proposal["value"])
        if self.scores and step > self.n_tiles():
            raise ValueError(f"{self._who}: step must be an int in [0, {self.n_tiles()}], got {step}")
        return step

    # one entry per key in each of scores, values and labels: to change the number of keys T, set
    # the three together inside ``with stepper.hold_trait_notifications():`` (checked at its end)
    @traitlets.validate("scores", "values", "labels")
    def _check_keys(self, proposal):
        name, val = proposal["trait"].name, proposal["value"]
        if name == "scores":
            _vector("scores", val)
        elif name == "values":
            _matrix("values", val)  # (T, d_v), finite; T is checked below
        T, counts = len(val), {"scores": len(self.scores), "values": len(self.values), "labels": len(self.labels)}
        unit = {"scores": "scores", "values": "rows", "labels": "labels"}[name]
        for other, n in counts.items():
            if other != name and n and n != T:
                raise ValueError(f"{name} must have {n} {unit} (one per key, like the {n} of {other}), got {T}; "
                                 "to change the number of keys, set scores, values and labels together inside "
                                 "`with stepper.hold_trait_notifications():`")
        if name == "scores" and self.block > T:
            raise ValueError(f"scores must have at least block={self.block} entries (keys per tile), got {T}; "
                             "set block with it inside `with stepper.hold_trait_notifications():`")
        return val

    @traitlets.observe("scores", "values", "block", "step")
    def _on_inputs(self, change):
        if change["name"] in ("block", "scores") and self.step > self.n_tiles():
            # fewer tiles than the steps done: the last tile, as the page does (its own change refreshes)
            self.step = self.n_tiles()
            return
        self._safe_refresh()

    def _refresh(self) -> None:
        steps = self.compute()["steps"]
        now = steps[self.step - 1] if 0 < self.step <= len(steps) else None
        self.m = None if now is None else now["m"]
        self.rescale = None if now is None else now["rescale"]
        self.l = None if now is None else now["l"]
        self.acc = [] if now is None else _lists(now["acc"])
        self.out = [] if now is None else _lists(now["acc"] / now["l"])

    def compute(self) -> dict:
        """The online softmax in float64, as the page runs it. Returns ``steps``, one dict per tile
        (``start``, ``end``: its keys; ``m``, ``rescale``, ``l``: floats; ``acc``: a (d_v,) tensor),
        ``out`` = acc / l after the last tile, and ``softmax`` = attnlib.softmax(scores) @ values,
        which ``out`` equals."""
        s = _vector("scores", self.scores)
        v = _matrix("values", self.values, rows=s.numel())
        m, l, acc, steps = -math.inf, 0.0, torch.zeros(v.shape[1], dtype=torch.float64), []
        for start in range(0, s.numel(), self.block):
            end = min(start + self.block, s.numel())
            m_new = max(m, float(s[start:end].max()))
            rescale = math.exp(m - m_new)  # 0 on the first tile, 1 when the max did not grow
            p = torch.exp(s[start:end] - m_new)
            l = l * rescale + float(p.sum())
            acc = acc * rescale + p @ v[start:end]
            m = m_new
            steps.append({"start": start, "end": end, "m": m, "rescale": rescale, "l": l, "acc": acc})
        return {"steps": steps, "out": acc / l, "softmax": softmax(s, dim=-1) @ v}


# --------------------------------------------------------------------------- TileExplorer


class TileExplorer(_Explorer):
    """Which (query tile, key tile) pairs tiled attention computes, skips or masks in part, and
    what that saves in memory and in slow-memory traffic.

    Args:
        T: queries and keys (self-attention), in [1, 2048].
        block: the tile size a side (``block_q = block_k``), one of ``blocks``.
        blocks: the tile sizes the slider offers (default: those of 16, 24, 32, 48, 64, 100, 128,
            256, 512 that give at most 64 tiles a side, plus ``block``); each in [1, T] with
            ceil(T / block) <= 64.
        causal: the causal mask.
        window: a sliding window (0 = none): query i sees keys with |i - j| < window, the
            ``window`` most recent ones when causal (``efficient.sliding_window_mask``).
        sparse_block: the fixed block-sparse pattern (0 = none): its own block and the last key of
            every block (``efficient.block_sparse_mask`` with one summary key).
        d_head: the head's width (d = d_v), for the memory counts.
        bytes_per_entry: bytes per number (default 4: float32).

    The masks are combined by AND. The counts are those of ``efficient.tiled_attention(q, k, v,
    mask, is_causal=causal, block_q=block, block_k=block, return_stats=True)`` for one head, with
    ``mask`` the window and block-sparse masks, and of ``efficient.explicit_slow_memory``; the
    browser computes them (static/tiling.js). A step's working set is one query tile's q, m, l,
    accumulator and tile of scores: block (2 d + block + 2) numbers, as ``efficient.TileStats``
    describes.

    Synced traits: ``T``, ``blocks``, ``block``, ``causal``, ``window``, ``sparse_block`` (follow
    the controls), ``d_head``, ``bytes_per_entry``, and the results ``tiles_computed``,
    ``tiles_skipped``, ``tiles_partial`` (computed but partly masked), ``scores_kept`` (allowed
    pairs), ``tiled_traffic`` (elements read plus written: ``TileStats.reads + writes``, the mask's
    reads included; the page shows those apart) and ``explicit_traffic`` (the same for the explicit
    path).
    """

    _esm = esm_source("tile_explorer.js", libs=("tiling.js",))
    _css = _CSS + "\n" + _read_static("tiling.css")

    T = Int(1024).tag(sync=True)
    blocks = List(Int()).tag(sync=True)
    block = Int(64).tag(sync=True)
    causal = Bool(True).tag(sync=True)
    window = Int(0).tag(sync=True)
    sparse_block = Int(0).tag(sync=True)
    d_head = Int(64).tag(sync=True)
    bytes_per_entry = Float(4.0).tag(sync=True)
    tiles_computed = Int(0).tag(sync=True)
    tiles_skipped = Int(0).tag(sync=True)
    tiles_partial = Int(0).tag(sync=True)
    scores_kept = Int(0).tag(sync=True)
    tiled_traffic = Int(0).tag(sync=True)
    explicit_traffic = Int(0).tag(sync=True)

    _who = "TileExplorer"
    MAX_T = 2048  # the page counts T * T entries on every change
    MAX_TILES = 64  # tiles a side, so that the grid stays legible
    _DEFAULT_BLOCKS = (16, 24, 32, 48, 64, 100, 128, 256, 512)

    def __init__(self, T: int = 1024, *, block: int = 64, blocks=None, causal: bool = True, window: int = 0,
                 sparse_block: int = 0, d_head: int = 64, bytes_per_entry: float = 4, **kwargs):
        who = self._who
        T = V.positive_int(who, "T", T)
        if T > self.MAX_T:
            raise ValueError(f"{who}: T must be an int in [1, {self.MAX_T}] (the page counts T * T "
                             f"entries whenever a control moves), got {T}")
        block = self._valid_block(T, V.positive_int(who, "block", block), "block")
        if blocks is None:
            blocks = [b for b in self._DEFAULT_BLOCKS if b <= T and -(-T // b) <= self.MAX_TILES]
        elif isinstance(blocks, str) or not hasattr(blocks, "__iter__"):
            raise TypeError(f"{who}: blocks must be a list of tile sizes (ints), got {V.describe(blocks)}")
        sizes = sorted({self._valid_block(T, V.positive_int(who, "blocks[...]", b), "blocks[...]")
                        for b in blocks} | {block})
        causal = V.flags(who, causal=causal)["causal"]
        window = self._valid_span(T, "window", window)
        sparse_block = self._valid_span(T, "sparse_block", sparse_block)
        d_head = V.positive_int(who, "d_head", d_head)
        b = V.finite_float(who, "bytes_per_entry", bytes_per_entry, low=0.0, low_open=True)
        super().__init__(T=T, blocks=sizes, block=block, causal=causal, window=window,
                         sparse_block=sparse_block, d_head=d_head, bytes_per_entry=b, **kwargs)
        self._ready = True
        self._refresh()

    def _valid_block(self, T: int, block: int, name: str) -> int:
        if block > T or -(-T // block) > self.MAX_TILES:
            low = -(-T // self.MAX_TILES)
            raise ValueError(f"{self._who}: {name} must be an int in [{low}, T={T}] (at most "
                             f"{self.MAX_TILES} tiles a side), got {block}")
        return block

    def _valid_span(self, T: int, name: str, val) -> int:
        val = V.nonneg_int(self._who, name, val)
        if val > T:
            raise ValueError(f"{self._who}: {name} must be an int in [0, T={T}] (0 = none), got {val}")
        return val

    # the tile sizes offered and the one shown: to change both, set them together inside
    # ``with tiles.hold_trait_notifications():`` (the pair is checked at its end)
    @traitlets.validate("blocks")
    def _check_blocks(self, proposal):
        sizes = proposal["value"]
        for b in sizes:
            self._valid_block(self.T, V.positive_int(self._who, "blocks[...]", b), "blocks[...]")
        if self.block not in sizes:
            raise ValueError(f"{self._who}: blocks must include block={self.block} (the tile size shown), got "
                             f"{list(sizes)}; to change both, set them together inside "
                             "`with tiles.hold_trait_notifications():`")
        return sorted(set(sizes))

    @traitlets.validate("block")
    def _check_block(self, proposal):
        if self.blocks and proposal["value"] not in self.blocks:
            raise ValueError(f"{self._who}: block must be one of blocks {list(self.blocks)}, got "
                             f"{proposal['value']!r}")
        return proposal["value"]

    @traitlets.validate("window", "sparse_block")
    def _check_span(self, proposal):
        return self._valid_span(self.T, proposal["trait"].name, proposal["value"])

    @traitlets.validate("T")
    def _check_T(self, proposal):
        # the tile sizes offered and the sliders' ranges follow from T: it is fixed once the widget exists
        if getattr(self, "_ready", False) and proposal["value"] != self.T:
            raise ValueError(f"{self._who}: T must stay {self.T} (the tile sizes and the sliders follow from "
                             f"it; for another T make a new TileExplorer), got {proposal['value']!r}")
        return proposal["value"]

    @traitlets.validate("d_head")
    def _check_d_head(self, proposal):
        return V.positive_int(self._who, "d_head", proposal["value"])

    @traitlets.validate("bytes_per_entry")
    def _check_bytes_per_entry(self, proposal):
        return V.finite_float(self._who, "bytes_per_entry", proposal["value"], low=0.0, low_open=True)

    @traitlets.observe("block", "causal", "window", "sparse_block", "d_head")
    def _on_inputs(self, change):
        if getattr(self, "_ready", False):  # __init__ refreshes once, after setting every trait
            self._safe_refresh()

    def _refresh(self) -> None:
        r = self.compute()
        st = r["stats"]
        self.tiles_computed, self.tiles_skipped = st.tiles_computed, st.tiles_skipped
        self.tiles_partial = r["tiles_partial"]
        self.scores_kept = r["scores_kept"]
        self.tiled_traffic = st.reads + st.writes
        self.explicit_traffic = sum(r["explicit"])

    def mask(self) -> torch.Tensor | None:
        """The bool mask (T, T) the window and block-sparse settings pass to ``tiled_attention``
        (None when both are 0; the causal mask is ``is_causal``)."""
        from . import efficient

        m = None
        if self.window:
            m = efficient.sliding_window_mask(self.T, self.window, causal=self.causal)
        if self.sparse_block:
            s = efficient.block_sparse_mask(self.T, self.sparse_block, causal=self.causal)
            m = s if m is None else m & s
        return m

    def compute(self) -> dict:
        """Run ``efficient.tiled_attention`` on one head of zeros with the current settings.

        Returns a dict: ``stats`` (its ``TileStats``), ``kept`` (n, n): the allowed entries of each
        pair of tiles, ``tiles_partial`` (computed pairs with some entries masked), ``scores_kept``
        (``efficient.count_attended`` of the mask, causal included), ``explicit`` (the explicit
        path's (reads, writes), ``efficient.explicit_slow_memory``) and ``working_set`` (numbers a
        step holds: block (2 d + block + 2)).
        """
        from . import efficient
        from .attention import causal_mask

        T, B, d = self.T, self.block, self.d_head
        mask = self.mask()
        q = torch.zeros(1, T, d)
        _, stats = efficient.tiled_attention(q, q, q, mask, is_causal=self.causal, block_q=B, block_k=B,
                                             return_stats=True)
        allowed = torch.ones(T, T, dtype=torch.bool) if mask is None else mask.clone()
        if self.causal:
            allowed &= causal_mask(T)
        n = -(-T // B)
        padded = torch.zeros(n * B, n * B, dtype=torch.int64)
        padded[:T, :T] = allowed.long()
        kept = padded.reshape(n, B, n, B).sum(dim=(1, 3))  # (n, n) allowed entries per pair
        sizes = torch.tensor([min(B, T - i * B) for i in range(n)])
        full = sizes.unsqueeze(1) * sizes.unsqueeze(0)
        return {"stats": stats, "kept": kept, "tiles_partial": int(((kept > 0) & (kept < full)).sum()),
                "scores_kept": efficient.count_attended(allowed),
                "explicit": efficient.explicit_slow_memory(T, T, d), "working_set": B * (2 * d + B + 2)}

# --------------------------------------------------------------------------- ModelExplorer

_EXPLORER_DTYPES = {"float32": (torch.float32, "<f4"), "float16": (torch.float16, "<f2")}


def _encode_tensor(t: torch.Tensor, dtype: str) -> dict:
    """A tensor as {dtype, shape, data}: data is base64 of its little-endian values, row-major."""
    import base64

    torch_dtype, np_dtype = _EXPLORER_DTYPES[dtype]
    arr = t.detach().to(device="cpu", dtype=torch_dtype).contiguous().numpy().astype(np_dtype, copy=False)
    return {"dtype": dtype, "shape": list(t.shape), "data": base64.b64encode(arr.tobytes()).decode("ascii")}


def _decode_tensor(name: str, t: Mapping) -> torch.Tensor:
    """The inverse of _encode_tensor, as a float32 tensor of the stored shape."""
    import base64

    import numpy as np

    if t.get("dtype") not in _EXPLORER_DTYPES:
        raise ValueError(f"ModelExplorer: weights[{name!r}] has dtype {t.get('dtype')!r}; expected "
                         f"one of {sorted(_EXPLORER_DTYPES)}")
    raw = base64.b64decode(t["data"])
    arr = np.frombuffer(raw, dtype=_EXPLORER_DTYPES[t["dtype"]][1])
    shape = tuple(int(s) for s in t["shape"])
    n = 1
    for s in shape:
        n *= s
    if arr.size != n:
        raise ValueError(f"ModelExplorer: weights[{name!r}] holds {arr.size} values for shape {shape}")
    return torch.tensor(arr.astype("<f4")).reshape(shape)


def _explorer_config(who: str, model) -> dict:
    """What the JavaScript forward pass needs to know about ``model``, checked against its modules."""
    from torch import nn

    from .decoder import Decoder

    if not isinstance(model, Decoder):
        raise TypeError(f"{who}: model must be an attnlib.Decoder, got {_describe(model)}")
    c = model.config
    if c.cross_attention:
        raise ValueError(
            f"{who}: model must be a decoder-only attnlib.Decoder (config.cross_attention=False), got "
            "one with cross-attention, which reads an encoder's output; the explorer runs "
            "decoder-only models"
        )
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    eps = {m.eps for m in norms}
    gelus = {m.approximate for m in model.modules() if isinstance(m, nn.GELU)}
    if len(eps) != 1 or len(gelus) != 1:
        raise ValueError(f"{who}: model must use one LayerNorm eps and one GELU throughout, got eps "
                         f"{sorted(eps)} and GELU {sorted(gelus)}")
    return {
        "vocab_size": c.vocab_size, "context_len": c.context_len, "d_model": c.d_model,
        "n_layers": c.n_layers, "n_heads": c.n_heads, "n_kv_heads": c.kv_heads, "d_head": c.head_dim,
        "d_mlp": c.mlp_dim, "bias": c.bias, "tie_embeddings": c.tie_embeddings,
        "ln_eps": float(eps.pop()), "gelu": "tanh" if gelus.pop() == "tanh" else "erf",
        "positions": "learned", "decoder_config": {f: getattr(c, f) for f in c.__dataclass_fields__},
    }


def _describe(val) -> str:
    return V.describe(val)


def _split_prompt(text: str, stoi: dict, unk) -> tuple[list[str], list[int], list[str]]:
    """The words of ``text`` (attnlib.Tokenizer.split), the ids the model reads, the unknown words."""
    from .tokenizer import Tokenizer

    words = Tokenizer.split(text)
    ids, unknown = [], []
    for w in words:
        if w in stoi:
            ids.append(stoi[w])
        else:
            unknown.append(w)
            if unk is not None and unk in stoi:
                ids.append(stoi[unk])
    return words, ids, unknown


def _check_model_size(who: str, model, max_params: int) -> None:
    """The model's weights travel inside the page: at most ``max_params`` of them."""
    n_params = sum(p.numel() for p in model.parameters())  # a tied weight counts once
    if n_params > max_params:
        raise ValueError(
            f"{who}: model must have at most max_params={max_params:,} parameters (the weights "
            f"travel inside the page, about 5.3 bytes each at float32), got {n_params:,}; train a "
            "smaller model, or raise max_params knowing the page grows"
        )


def _check_tokenizer(who: str, tokenizer, vocab_size: int) -> None:
    """An attnlib.Tokenizer with the model's ``vocab_size`` words."""
    from .tokenizer import Tokenizer

    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"{who}: tokenizer must be an attnlib.Tokenizer, got {_describe(tokenizer)}")
    if len(tokenizer) != vocab_size:
        raise ValueError(f"{who}: tokenizer must have the model's vocab_size={vocab_size} "
                         f"words, got one with {len(tokenizer)}")


def _explorer_prompts(who: str, prompt, presets, tokenizer) -> list[str]:
    """The prompt, then the presets: each a str of at least one word, every word in the vocabulary."""
    prompts = []
    for name, text in [("prompt", prompt)] + [(f"presets[{i}]", p) for i, p in enumerate(
            _preset_list(who, presets))]:
        if not isinstance(text, str):
            raise TypeError(f"{who}: {name} must be a str, got {_describe(text)}")
        words, _, unknown = _split_prompt(text, tokenizer.stoi, None)
        if not words:
            raise ValueError(f"{who}: {name} must contain at least one word, got {text!r}")
        if unknown:
            raise ValueError(f"{who}: {name} must use only the model's {len(tokenizer)} words, got "
                             f"{', '.join(map(repr, unknown))} in {text!r}")
        prompts.append(text)
    return prompts


def _explorer_weights(who: str, model, tie_embeddings: bool, dtype: str) -> dict:
    """The model's state dict, finite, encoded for the page ({name: {dtype, shape, data}}); a tied
    unembedding is not stored twice."""
    state = model.state_dict()
    if tie_embeddings:
        state.pop("unembed.weight")  # the same tensor as embed.tok.weight
    for name, t in state.items():
        if not torch.isfinite(t).all():
            raise ValueError(f"{who}: model's {name} must be finite, got nan or inf")
    return {name: _encode_tensor(t, dtype) for name, t in state.items()}


class ModelExplorer(_Explorer):
    """A trained ``attnlib.Decoder`` running in the page: type a prompt, read the next-token
    distribution, generate, step through the layers with the logit lens, look at every head's
    pattern and switch heads off.

    The forward pass runs in JavaScript (``static/decoder.js``) from weights carried in the widget
    state, so it works in the static book with no kernel and no network. It equals the model's
    forward pass in float64 (tests/test_explorer.py compares it with attnlib).

    Args:
        model: a decoder-only ``attnlib.Decoder`` with at most ``max_params`` parameters.
        tokenizer: its ``attnlib.Tokenizer`` (``len(tokenizer) == config.vocab_size``).
        prompt: the prompt shown first; every word must be in the vocabulary.
        presets: more prompts offered in a menu (the first prompt is always offered).
        temperature: positive; the next-token distribution is softmax(logits / temperature).
        top_k: how many of the most likely next tokens are listed.
        layer, head: the attention pattern shown first.
        query: the prompt position whose row is highlighted (default: the last).
        ablated: heads switched off at the start, as (layer, head) pairs.
        lens_stage: the stage the logit lens shows first (``attnlib.lens.stage_names``: 0 is the
            embedding, then attention 0, MLP 0, ...; the last is the model's output).
        lens_word: a vocabulary word whose lens probability is followed across the stages (None:
            none).
        n_new: tokens the "generate" button appends; sample: sample (with ``seed``) instead of
            taking the most likely token.
        dtype: "float32" (exact) or "float16" (half the page size; the weights are rounded).
        max_params: the most parameters the widget accepts (each costs about 5.3 bytes of page at
            float32, 2.7 at float16).

    Synced traits: inputs ``prompt``, ``presets``, ``temperature``, ``top_k``, ``layer``, ``head``,
    ``query`` (-1 = the last position; also the position of the logit lens), ``ablated`` ([[layer,
    head], ...]), ``n_new``, ``sample``, ``seed``, ``lens_stage``, ``lens_word`` ("" = none); the
    model ``config``, ``vocab``, ``unk``, ``weights`` ({state-dict name: {dtype, shape, data}}; a tied
    unembedding is not stored twice); results ``words`` (the prompt split), ``unknown`` (its words
    that are not in the vocabulary), ``top`` ([[word, probability], ...]), ``lens`` (one row per
    stage at the query position: [stage, top word, its probability, the probability of
    ``lens_word`` or None], at temperature 1), ``generated`` (the text the button produced).
    ``compute()`` recomputes with attnlib.
    """

    _esm = esm_source("model_explorer.js", libs=("decoder.js",))
    _css = _CSS + "\n" + _read_static("model_explorer.css")

    title = Unicode("Model explorer").tag(sync=True)
    config = traitlets.Dict().tag(sync=True)
    vocab = List(Unicode()).tag(sync=True)
    unk = Unicode(None, allow_none=True).tag(sync=True)
    weights = traitlets.Dict().tag(sync=True)
    prompt = Unicode("").tag(sync=True)
    presets = List(Unicode()).tag(sync=True)
    temperature = Float(1.0).tag(sync=True)
    top_k = Int(8).tag(sync=True)
    layer = Int(0).tag(sync=True)
    head = Int(0).tag(sync=True)
    query = Int(-1).tag(sync=True)
    ablated = List(List(Int())).tag(sync=True)
    n_new = Int(6).tag(sync=True)
    sample = Bool(False).tag(sync=True)
    seed = Int(0).tag(sync=True)
    words = List(Unicode()).tag(sync=True)
    unknown = List(Unicode()).tag(sync=True)
    top = List(List()).tag(sync=True)
    generated = Unicode("").tag(sync=True)
    lens_stage = Int(0).tag(sync=True)
    lens_word = Unicode("").tag(sync=True)
    lens = List(List()).tag(sync=True)

    def __init__(self, model, tokenizer, prompt: str, *, presets=(), temperature: float = 1.0,
                 top_k: int = 8, layer: int = 0, head: int = 0, query: int | None = None, ablated=(),
                 n_new: int = 6, sample: bool = False, seed: int = 0, lens_stage: int = 0,
                 lens_word: str | None = None, dtype: str = "float32",
                 max_params: int = 1_000_000, title: str = "Model explorer", **kwargs):
        who = "ModelExplorer"
        cfg = _explorer_config(who, model)
        _check_model_size(who, model, V.positive_int(who, "max_params", max_params))
        _check_tokenizer(who, tokenizer, cfg["vocab_size"])
        if not isinstance(dtype, str):
            raise TypeError(f"{who}: dtype must be 'float32' or 'float16' (a str), got {_describe(dtype)}")
        if dtype not in _EXPLORER_DTYPES:
            raise ValueError(f"{who}: dtype must be 'float32' or 'float16', got {dtype!r}")
        prompts = _explorer_prompts(who, prompt, presets, tokenizer)
        title = _text(who, "title", title)
        temperature = V.finite_float(who, "temperature", temperature, low=0.0, low_open=True)
        top_k = V.positive_int(who, "top_k", top_k)
        layer = V.index(who, "layer", layer, cfg["n_layers"], "a layer of the model")
        head = V.index(who, "head", head, cfg["n_heads"], "a head of the layer")
        T = min(len(_split_prompt(prompt, tokenizer.stoi, None)[1]), cfg["context_len"])
        query = -1 if query is None else V.index(who, "query", query, T, "a position of the prompt")
        n_new = V.nonneg_int(who, "n_new", n_new)
        sample = V.flags(who, sample=sample)["sample"]
        seed = V.nonneg_int(who, "seed", seed)
        off = _ablated_list(who, ablated, cfg["n_layers"], cfg["n_heads"])
        lens_stage = V.index(who, "lens_stage", lens_stage, 2 * cfg["n_layers"] + 1,
                             "a stage of the residual stream: 0 is the embedding")
        lens_word = _lens_word(who, lens_word, tokenizer.stoi)
        weights = _explorer_weights(who, model, cfg["tie_embeddings"], dtype)
        super().__init__(title=title, config=cfg, vocab=list(tokenizer.vocab), unk=tokenizer.unk,
                         weights=weights, prompt=prompt, presets=list(dict.fromkeys(prompts)),
                         temperature=temperature, top_k=top_k, layer=layer, head=head, query=query,
                         ablated=off, n_new=n_new, sample=sample, seed=seed,
                         lens_stage=lens_stage, lens_word=lens_word, **kwargs)
        self._refresh()

    # ---- the model, rebuilt from the state (what the page runs)
    def to_decoder(self):
        """An ``attnlib.Decoder`` (float32, eval mode) rebuilt from the widget's weights."""
        from .decoder import Decoder, DecoderConfig

        model = Decoder(DecoderConfig(**self.config["decoder_config"]))
        state = {name: _decode_tensor(name, t) for name, t in self.weights.items()}
        if self.config["tie_embeddings"]:
            state["unembed.weight"] = state["embed.tok.weight"]
        model.load_state_dict(state)
        for m in model.modules():  # what the page computes: this eps, this GELU
            if isinstance(m, torch.nn.LayerNorm):
                m.eps = self.config["ln_eps"]
            if isinstance(m, MLP):
                m.act.approximate = "tanh" if self.config["gelu"] == "tanh" else "none"
        return model.eval()

    def _model(self):
        if getattr(self, "_decoder", None) is None:  # rebuilt when the weights change
            self._decoder = self.to_decoder()
        return self._decoder

    @traitlets.observe("weights", "config")
    def _on_model(self, change):
        self._decoder = None
        self._safe_refresh()

    @traitlets.observe("prompt", "temperature", "top_k", "ablated", "query", "lens_word")
    def _on_inputs(self, change):
        self._safe_refresh()

    @traitlets.validate("lens_word")
    def _check_lens_word(self, proposal):
        return _lens_word("ModelExplorer", proposal["value"], {w: i for i, w in enumerate(self.vocab)})

    @traitlets.validate("temperature")
    def _check_temperature(self, proposal):
        return _positive("temperature", proposal["value"])

    @traitlets.validate("top_k")
    def _check_top_k(self, proposal):
        return V.positive_int("ModelExplorer", "top_k", proposal["value"])

    @traitlets.validate("n_new", "seed")
    def _check_count(self, proposal):
        return V.nonneg_int("ModelExplorer", proposal["trait"].name, proposal["value"])

    @traitlets.validate("layer", "head", "lens_stage")
    def _check_choice(self, proposal):
        name, c = proposal["trait"].name, self.config
        n, what = {"layer": (c["n_layers"], "a layer of the model"),
                   "head": (c["n_heads"], "a head of the layer"),
                   "lens_stage": (2 * c["n_layers"] + 1,
                                  "a stage of the residual stream: 0 is the embedding")}[name]
        return V.index("ModelExplorer", name, proposal["value"], n, what)

    @traitlets.validate("query")
    def _check_query(self, proposal):
        q = proposal["value"]
        return q if q == -1 else V.index("ModelExplorer", "query", q, len(self.ids()),
                                         "a position of the prompt, or -1 for the last")

    @traitlets.validate("ablated")
    def _check_ablated(self, proposal):
        _ablated_list("ModelExplorer", proposal["value"], self.config["n_layers"], self.config["n_heads"])
        return proposal["value"]

    def _refresh(self) -> None:
        r = self.compute()
        self.words, self.unknown = r["words"], r["unknown"]
        self.top = [[w, p] for w, p in r["top"]]
        self.lens = r["lens_rows"]

    def heads_off(self) -> dict[str, list[int]]:
        """The switched-off heads as ``attnlib.ablate_heads`` takes them: {"blocks.l.attn": [h, ...]}."""
        out: dict[str, list[int]] = {}
        for layer, head in self.ablated:
            out.setdefault(f"blocks.{layer}.attn", []).append(head)
        return out

    def ids(self) -> list[int]:
        """The token ids the model reads: the prompt's known words (unknown ones map to ``unk`` if
        the tokenizer has one, else are skipped), the last ``context_len`` of them."""
        _, ids, _ = _split_prompt(self.prompt, {w: i for i, w in enumerate(self.vocab)}, self.unk)
        return ids[-self.config["context_len"]:]

    def compute(self) -> dict:
        """Recompute what the page shows, with attnlib (``record_patterns``, ``ablate_heads`` and
        ``attnlib.lens.logit_lens``).

        Returns a dict: ``words`` and ``unknown`` (the prompt's words, those not in the vocabulary),
        ``ids``, ``logits`` (T, vocab_size) and ``patterns`` (n_layers, n_heads, T, T) as float32
        tensors (None when the prompt has no known word), ``probs`` (vocab_size,) at the last
        position at the current temperature, ``top``: [(word, probability)] of the ``top_k``
        most likely next tokens; and the logit lens at the query position ``position``:
        ``stages`` (their names), ``lens`` (stages, vocab_size) float64 probabilities at
        temperature 1 (None without a known word) and ``lens_rows`` (the ``lens`` trait).
        """
        from .hooks import ablate_heads, record_patterns
        from .lens import logit_lens, stage_names

        words, _, unknown = _split_prompt(self.prompt, {w: i for i, w in enumerate(self.vocab)}, self.unk)
        ids = self.ids()
        model = self._model()
        out = {"words": words, "unknown": unknown, "ids": ids, "logits": None, "patterns": None,
               "probs": None, "top": [], "stages": stage_names(model), "position": None, "lens": None,
               "lens_rows": []}
        if not ids:
            return out
        with torch.no_grad(), record_patterns(model) as pats, ablate_heads(model, self.heads_off()):
            lensed = logit_lens(model, torch.tensor([ids]))  # its last stage: the model's logits
        L = self.config["n_layers"]
        logits = lensed[out["stages"][-1]]
        out["logits"] = logits[0]
        out["patterns"] = torch.stack([pats[f"blocks.{i}.attn"][0] for i in range(L)])
        q = self.query if 0 <= self.query < len(ids) else len(ids) - 1  # as the page: -1 = the last
        out["position"] = q
        out["lens"] = torch.stack([torch.softmax(v[0, q].double(), -1) for v in lensed.values()])
        follow = self.vocab.index(self.lens_word) if self.lens_word else None
        for name, p in zip(out["stages"], out["lens"].tolist(), strict=True):
            best = max(range(len(p)), key=lambda i: (p[i], -i))  # ties: the lower id, as the page
            out["lens_rows"].append([name, self.vocab[best], p[best], None if follow is None else p[follow]])
        probs = torch.softmax(logits[0, -1].double() / self.temperature, dim=-1)
        out["probs"] = probs
        p = probs.tolist()
        order = sorted(range(len(p)), key=lambda i: (-p[i], i))[: self.top_k]  # ties: the lower id
        out["top"] = [(self.vocab[i], p[i]) for i in order]
        return out

    def generate_greedy(self, n: int | None = None) -> list[int]:
        """Greedy continuation (``Decoder.generate(temperature=0)``) of the prompt by ``n`` tokens
        (default ``n_new``), with the switched-off heads off; returns all ids."""
        from .hooks import ablate_heads

        who = "ModelExplorer.generate_greedy"
        n = self.n_new if n is None else V.nonneg_int(who, "n", n)
        ids = self.ids()
        if not ids:
            raise ValueError(f"{who}: the prompt must have a word of the vocabulary to continue (an unknown "
                             f"word counts only with the tokenizer's unk), got prompt {self.prompt!r}")
        model = self._model()
        with torch.no_grad(), ablate_heads(model, self.heads_off()):
            out = model.generate(torch.tensor([ids]), n, temperature=0)
        return out[0].tolist()

    def state_bytes(self, module: bool = True) -> int:
        """Bytes of the widget's saved state as compact JSON: what a page with the explorer carries
        for it (the weights, vocabulary and traits, and with ``module`` its JavaScript and CSS)."""
        import json

        state = {k: v for k, v in self.get_state().items()
                 if k != "layout" and (module or k not in ("_esm", "_css"))}
        return len(json.dumps(state, separators=(",", ":")).encode("utf-8"))


def _lens_word(who: str, word, stoi: Mapping) -> str:
    """"" (follow no word) or a word of the vocabulary."""
    if word is None or word == "":
        return ""
    if not isinstance(word, str):
        raise TypeError(f"{who}: lens_word must be a word of the vocabulary (str) or None, got {_describe(word)}")
    if word not in stoi:
        raise ValueError(f"{who}: lens_word must be one of the model's {len(stoi)} words, got {word!r}")
    return word


def _preset_list(who: str, presets) -> list:
    if isinstance(presets, str) or not hasattr(presets, "__iter__"):
        raise TypeError(f"{who}: presets must be a list of prompts (str), got {_describe(presets)}")
    return list(presets)


def _ablated_list(who: str, ablated, n_layers: int, n_heads: int) -> list[list[int]]:
    """(layer, head) pairs, each checked; duplicates removed, order kept."""
    if isinstance(ablated, (str, Mapping)) or not hasattr(ablated, "__iter__"):
        raise TypeError(f"{who}: ablated must be a list of (layer, head) pairs, got {_describe(ablated)}")
    out: list[list[int]] = []
    for pair in ablated:
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2 and all(
            isinstance(x, int) and not isinstance(x, bool) for x in pair)
        if not ok:
            raise TypeError(f"{who}: every entry of ablated must be a (layer, head) pair of ints, got "
                            f"{_describe(pair)}")
        layer, head = pair
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ValueError(f"{who}: ablated head {tuple(pair)} does not exist; layers are 0 .. "
                             f"{n_layers - 1} and heads 0 .. {n_heads - 1}")
        if [layer, head] not in out:
            out.append([layer, head])
    return out

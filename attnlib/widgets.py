"""Interactive explorers for the book, built on anywidget.

Every widget's logic runs in the browser: its JavaScript module (``attnlib/static``: the shared math
in ``math.js``, the DOM helpers in ``ui.js`` and the widget's own file, joined into one ES module at
import time) recomputes the pattern whenever a slider moves. So the widgets keep working in the
static HTML book, where no Python kernel runs. Python only supplies the inputs as traits (plain
lists of floats and strings) and reads the results back: in a live kernel every trait tagged
``sync=True`` follows the browser (``explorer.temperature``, ``explorer.weights``, ...), and each
widget's ``compute()`` recomputes the same quantities with attnlib so the two can be compared.

    AttentionExplorer(tokens, x, w_q, w_k, *, temperature=1.0, causal=False, query=0)
    SoftmaxExplorer(labels, scores, *, temperature=1.0)
    PatternViewer(patterns, q_tokens, k_tokens=None, *, selected=None)
    ValueUpdateExplorer(tokens, points, values, query=0, weights=None)
    CostExplorer(context_lens=..., n_heads=96, n_layers=96, bytes_per_entry=2, *, context_len=None)

Conventions: patterns are (T_q, T_k), rows = query tokens, columns = key tokens; masks are causal
and lower-right aligned; temperature t divides the scaled scores, weights = softmax(q k^T / sqrt(d) / t).
Inputs may be torch tensors, numpy arrays or nested lists; bad shapes or non-finite numbers raise a
ValueError that names the argument.
"""

from __future__ import annotations

import math
from importlib import resources

import anywidget
import torch
import traitlets
from traitlets import Bool, Float, Int, List, Unicode

from .attention import attention, softmax

__all__ = [
    "AttentionExplorer",
    "SoftmaxExplorer",
    "esm_source",
]


# --------------------------------------------------------------------------- front-end modules


def _read_static(name: str) -> str:
    return (resources.files("attnlib") / "static" / name).read_text(encoding="utf-8")


def esm_source(widget_file: str) -> str:
    """The ES module of one widget: static/math.js + static/ui.js + static/<widget_file>, joined.

    anywidget ships one module per widget class, so the shared math and DOM helpers are inlined
    into each (they are small). The result has one ``export default {render}``.
    """
    parts = [_read_static("math.js"), _read_static("ui.js"), _read_static(widget_file)]
    return "\n\n".join(parts)


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
        raise ValueError(f"{name} must contain only finite numbers (no nan or inf)")
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


class _Explorer(anywidget.AnyWidget):
    """Common base: the shared stylesheet and a guard for recomputing results on the Python side."""

    _css = _CSS

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

    Synced traits (read them back in a live kernel): ``tokens``, ``x``, ``w_q``, ``w_k`` (lists),
    ``temperature``, ``causal``, ``query``, ``edit_matrix`` ("w_q" or "w_k"), ``edit_row``,
    ``edit_col`` (the weight being edited), and the results ``weights`` (T, T) and ``scores`` (T, T)
    (q k^T / sqrt(d_head), before mask and temperature).
    """

    _esm = esm_source("attention_explorer.js")

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
    weights = List(List(Float())).tag(sync=True)
    scores = List(List(Float())).tag(sync=True)

    def __init__(self, tokens, x, w_q, w_k, *, temperature: float = 1.0, causal: bool = False, query: int = 0,
                 **kwargs):
        x_t = _matrix("x", x)
        T, d_model = x_t.shape
        toks = _tokens("tokens", tokens, T, f" (one per row of x, which has shape {tuple(x_t.shape)})")
        wq = _matrix("w_q", w_q, rows=d_model, what=" (d_model, d_head) with d_model = x.shape[1]")
        wk = _matrix("w_k", w_k, rows=d_model, cols=wq.shape[1], what=" (d_model, d_head), the same as w_q")
        temp = _positive("temperature", temperature)
        q = _index("query", query, T, "a token index")
        super().__init__(tokens=toks, x=_lists(x_t), w_q=_lists(wq), w_k=_lists(wk), temperature=temp,
                         causal=bool(causal), query=q, **kwargs)
        self._refresh()

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

    @traitlets.observe("x", "w_q", "w_k", "temperature", "causal", "tokens")
    def _on_inputs(self, change):
        self._safe_refresh()

    def _refresh(self) -> None:
        r = self.compute()
        self.weights = _lists(r["weights"])
        self.scores = _lists(r["scores"])

    def compute(self) -> dict:
        """Recompute with attnlib from the current traits.

        Returns a dict of float64 tensors: ``q`` and ``k`` (T, d_head), ``scores`` (T, T) =
        q k^T / sqrt(d_head), and ``weights`` (T, T) from
        ``attnlib.attention(q, k, k, is_causal=causal, scale=1/sqrt(d_head)/temperature, return_weights=True)``.
        """
        x = _matrix("x", self.x)
        wq = _matrix("w_q", self.w_q, rows=x.shape[1])
        wk = _matrix("w_k", self.w_k, rows=x.shape[1], cols=wq.shape[1])
        q, k = x @ wq, x @ wk  # (T, d_head)
        scale = 1.0 / math.sqrt(q.shape[-1])
        _, weights = attention(q, k, k, is_causal=self.causal, scale=scale / self.temperature, return_weights=True)
        return {"q": q, "k": k, "scores": (q @ k.T) * scale, "weights": weights}


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

    @traitlets.observe("scores", "temperature")
    def _on_inputs(self, change):
        self._safe_refresh()

    def _refresh(self) -> None:
        self.weights = _lists(self.compute())

    def compute(self) -> torch.Tensor:
        """``attnlib.softmax(scores / temperature)`` as a float64 tensor (n,)."""
        s = _vector("scores", self.scores)
        return softmax(s / self.temperature, dim=-1)

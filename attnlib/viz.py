"""Figures. Attention patterns are drawn with queries as rows and keys as columns, the layout of
the tensors ([..., query_pos, key_pos]); every axis is labelled with its tokens."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["plot_attention", "plot_patterns"]


def _np(a) -> np.ndarray:
    return a.detach().float().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=float)


def plot_attention(weights, q_tokens, k_tokens=None, *, ax=None, title=None, annotate=None,
                   cmap="Blues", vmin=0.0, vmax=1.0, colorbar=True):
    """Heatmap of one pattern (T_q, T_k): row = query token, column = key token.

    ``annotate`` writes the value in each cell (default: when the grid is at most 12 x 12).
    Pass ``vmin``/``vmax`` = None to scale the colours to the data (for raw scores).
    Returns the matplotlib Axes.
    """
    w = _np(weights)
    if w.ndim != 2:
        raise ValueError(f"plot_attention: weights must be 2-D (T_q, T_k), got shape {w.shape}")
    k_tokens = q_tokens if k_tokens is None else k_tokens
    if (len(q_tokens), len(k_tokens)) != w.shape:
        raise ValueError(
            f"plot_attention: {len(q_tokens)} query and {len(k_tokens)} key labels for a grid of {w.shape}"
        )
    if ax is None:
        size = (0.55 * w.shape[1] + 2.2, 0.5 * w.shape[0] + 1.4)
        _, ax = plt.subplots(figsize=size)
    im = ax.imshow(w, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(k_tokens)), k_tokens, rotation=45, ha="right")
    ax.set_yticks(range(len(q_tokens)), q_tokens)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title)
    if annotate is None:
        annotate = max(w.shape) <= 12
    if annotate:
        hi = np.nanmax(np.abs(w)) if np.isfinite(w).any() else 1.0
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                val = w[i, j]
                txt = "-inf" if np.isneginf(val) else f"{val:.2f}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=8,
                        color="white" if np.isfinite(val) and abs(val) > 0.6 * hi else "black")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def plot_patterns(patterns, q_tokens, k_tokens=None, *, titles=None, ncols=4, **kwargs):
    """A grid of patterns, e.g. every head of a layer: ``patterns`` (n, T_q, T_k). Returns the Figure."""
    ps = _np(patterns)
    n = ps.shape[0]
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    k_tokens = q_tokens if k_tokens is None else k_tokens
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols + 0.4 * len(k_tokens) / 4,
                                                    3.0 * nrows + 0.3 * len(q_tokens) / 4),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        plot_attention(ps[i], q_tokens, k_tokens, ax=ax, colorbar=False,
                       title=None if titles is None else titles[i], **kwargs)
    fig.tight_layout()
    return fig

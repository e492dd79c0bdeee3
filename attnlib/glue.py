"""Glue a computed value into the book's prose, wherever the chapter runs.

A chapter computes a number, calls ``glue("name", value)``, and a markdown cell quotes it with
``{glue:text}`name:.2f```: the page then shows what this run computed, never a typed-in copy.
Building the book uses myst-nb's ``glue``. On Colab or in a plain Jupyter kernel myst-nb may be
missing and nothing renders the role anyway, so the value is only displayed (when asked).
"""

from __future__ import annotations

from typing import Any

__all__ = ["glue"]


def glue(name: str, value: Any, display: bool = True) -> None:
    """Record ``value`` under ``name`` for ``{glue}`` roles; show it too when ``display``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"glue: name must be an identifier-like str such as 'best_loss', got {name!r}")
    if not isinstance(display, bool):
        raise TypeError(f"glue: display must be True or False, got {type(display).__name__}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:  # Colab, a bare kernel: no {glue} roles to feed
        if display:
            from IPython.display import display as show

            show(value)
        return None
    myst_glue(name, value, display=display)
    return None

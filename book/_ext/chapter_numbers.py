"""Number each chapter's exercises within the chapter: "Exercise 3.2" is the second exercise of
notebooks/03_*. The chapters carry their number in their title ("# 3. Softmax and scaling") rather
than through a numbered toctree, so Sphinx, left alone, numbers the exercises across the whole
book (the 38th exercise of the book is "Exercise 38"). This extension keeps the content portable:
the notebooks use plain sphinx-exercise directives; only the numbers shown in the HTML change.
"""

from __future__ import annotations

import re

CHAPTER = re.compile(r"(?:^|/)(\d{2})_[^/]+$")  # notebooks/03_softmax_scaling -> 3


def chapter_number(docname: str) -> int | None:
    """The chapter a document is, from its file name (None for pages that are not chapters)."""
    m = CHAPTER.search(docname)
    return int(m.group(1)) if m else None


def renumber(toc_fignumbers: dict, figtypes=("exercise",)) -> list[str]:
    """Rewrite, in place, the numbers of `figtypes` in each chapter to (chapter, 1), (chapter, 2), ...
    in the order Sphinx found them; returns the documents whose numbers changed."""
    changed = []
    for docname, by_type in toc_fignumbers.items():
        chapter = chapter_number(docname)
        if chapter is None:
            continue
        for figtype in figtypes:
            numbers = by_type.get(figtype)
            if not numbers:
                continue
            local = {ident: (chapter, k) for k, ident in enumerate(numbers, start=1)}
            if local != numbers:
                by_type[figtype] = local
                changed.append(docname)
    return changed


def _on_env_get_updated(app, env):
    # runs after Sphinx's own collector (priority 500) has assigned the book-wide numbers; the
    # documents listed here are written again, never re-read (so never re-executed)
    return renumber(env.toc_fignumbers)


def setup(app):
    app.connect("env-get-updated", _on_env_get_updated, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""The chapter template: the cells of a new chapter (``make new-chapter``), and the parts every
chapter must have (checked for every notebook by tests/test_scaffold.py).

The cells below are what ``scripts/new_chapter.py`` writes, with ``{n}`` (the chapter number),
``{nn}`` (two digits), ``{title}`` and ``{name}`` filled in; the set-up cell is not here: the new
chapter gets it from ``scripts/sync_setup_cells.py``, like every other chapter. The skeleton runs as
it is (its exercises use existing checkers, and their solutions pass), so ``make chapter`` works on
it at once; then replace every TODO. ``python -m attnlib.checks`` lists the checkers, widgets and
``viz`` functions there are to choose from.
"""

from __future__ import annotations

import re

# (cell type, source, tags). Markdown uses the book's directives: {exercise} with a label,
# difficulty and time; a stub cell that calls a checker; a folded hint; a folded solution.
CELLS: list[tuple[str, str, list[str]]] = [
    ("markdown", """\
# {n}. {title}

TODO: one paragraph of motivation. What question does this chapter answer, and why does a reader
who finished the previous chapter need it?

**Learning objectives.** After this chapter you can

- TODO: a skill the reader can check themselves (write, measure, explain ...);
- TODO: a second one;
- TODO: a third one.

**Prerequisites.** TODO: the earlier chapters this one builds on (for example chapter 3, softmax).
**Estimated time:** TODO minutes.""", []),
    ("code", """\
device = attnlib.get_device()
print(device)  # cpu, cuda or mps: machine-dependent, so nbval does not compare it""",
     ["nbval-ignore-output"]),
    ("code", """\
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from attnlib import checks, example, viz, widgets

torch.manual_seed(0)  # seed every random number the chapter draws
tokens, x = example.embed(example.PHRASE)  # (T, d_model), the book's running example
W_Q, W_K, W_V, W_O = example.adjective_head()  # hand-set: nouns look for adjectives
print(tokens)""", []),
    ("markdown", """\
## TODO: the idea, by hand

TODO: derive the step in a few lines of your own, on the running example, then check it against
`attnlib` and PyTorch with `torch.testing.assert_close`. Here: one head's attention written out.""",
     []),
    ("code", """\
q, k, v = x @ W_Q, x @ W_K, x @ W_V  # (T, d_head) each
scores = q @ k.T / math.sqrt(q.shape[-1])  # (T_q, T_k): row i = query i's scores
pattern = torch.softmax(scores, dim=-1)  # (T_q, T_k): each row sums to 1
out = pattern @ v  # (T, d_head)

out_lib, pattern_lib = attnlib.attention(q, k, v, return_weights=True)
torch.testing.assert_close(pattern_lib, pattern)
torch.testing.assert_close(out_lib, out)
torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v), out)
print("by hand == attnlib.attention == F.scaled_dot_product_attention")""", []),
    ("markdown", """\
## TODO: a picture

TODO: say what the reader should see in the figure before they look at it.""", []),
    ("code", """\
viz.plot_attention(pattern, tokens, title="TODO: what the figure shows")
plt.show()""", []),
    ("markdown", """\
## TODO: try it

TODO: what to vary and what to watch. The widget computes in the browser, so it also works in the
static book.""", []),
    ("code", """\
c = tokens.index("creature")
widgets.SoftmaxExplorer(tokens, scores[c], temperature=1.0)""", []),
    ("markdown", """\
## Exercises

```{{exercise}} TODO: first exercise
:label: ex-{nn}-one
**Difficulty:** ★☆☆ · **Time:** 10 min

TODO: the task. Here: write `softmax_rows(scores)`, the softmax of each row of `scores` (over the
last dimension, the keys).
```""", []),
    ("code", """\
def softmax_rows(scores):
    # TODO: the softmax over dim=-1
    raise NotImplementedError


checks.check_softmax(softmax_rows)""", []),
    ("markdown", """\
```{{admonition}} Hint
:class: dropdown

TODO: a hint that points at the idea without giving the code away. Here: subtract each row's
largest score before `exp`.
```

```{{solution-start}} ex-{nn}-one
:class: dropdown
```
TODO: explain the solution and the usual mistake.""", []),
    ("code", """\
def softmax_rows(scores):
    z = scores - scores.amax(dim=-1, keepdim=True)  # each row's max becomes 0
    e = z.exp()
    return e / e.sum(dim=-1, keepdim=True)


checks.check_softmax(softmax_rows)""", []),
    ("markdown", """\
```{{solution-end}}
```

```{{exercise}} TODO: second exercise
:label: ex-{nn}-two
**Difficulty:** ★★☆ · **Time:** 15 min

TODO: the task. Here: write `scores_of(q, k)`, the scaled score grid $q k^T / \\sqrt{{d}}$ for any
number of leading batch dimensions.
```""", []),
    ("code", """\
def scores_of(q, k):
    # TODO: q (..., T_q, d), k (..., T_k, d) -> (..., T_q, T_k)
    raise NotImplementedError


checks.check_scaled_scores(scores_of)""", []),
    ("markdown", """\
```{{admonition}} Hint
:class: dropdown

TODO: a hint. Here: `k.transpose(-2, -1)` swaps the last two dimensions whatever comes before.
```

```{{solution-start}} ex-{nn}-two
:class: dropdown
```
TODO: explain the solution.""", []),
    ("code", """\
def scores_of(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])


checks.check_scaled_scores(scores_of)""", []),
    ("markdown", """\
```{{solution-end}}
```

```{{exercise}} TODO: third exercise
:label: ex-{nn}-three
**Difficulty:** ★★★ · **Time:** 20 min

TODO: the task. Here: write `my_attention(q, k, v, mask=None)` with a boolean mask (True = may
attend) that also works in float16.
```""", []),
    ("code", """\
def my_attention(q, k, v, mask=None):
    # TODO: softmax(q k^T / sqrt(d), masked) @ v
    raise NotImplementedError


checks.check_attention(my_attention)""", []),
    ("markdown", """\
```{{admonition}} Hint
:class: dropdown

TODO: a hint. Here: fill blocked scores with `-inf` (never -1e9) and compute the softmax in float32.
```

```{{solution-start}} ex-{nn}-three
:class: dropdown
```
TODO: explain the solution.""", []),
    ("code", """\
def my_attention(q, k, v, mask=None):
    scores = q.float() @ k.float().transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ v.float()).to(v.dtype)


checks.check_attention(my_attention)""", []),
    ("markdown", """\
```{{solution-end}}
```

## Summary

- TODO: the first thing to remember;
- TODO: the second;
- TODO: the third.

**Next:** TODO: a pointer to the next chapter.""", []),
]


def cells(n: int, name: str, title: str) -> list[tuple[str, str, list[str]]]:
    """The template's cells for chapter ``n`` called ``name``, titled ``title``."""
    values = {"n": n, "nn": f"{n:02d}", "name": name, "title": title}
    return [(kind, source.format(**values), list(tags)) for kind, source, tags in CELLS]


# --------------------------------------------------------------------------- the parts of a chapter

EXERCISE = re.compile(r"```\{exercise(?:-start)?\}")
IMAGE_OUTPUT = "image/png"
WIDGET_OUTPUT = "application/vnd.jupyter.widget-view+json"


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def parts(nb: dict) -> dict[str, object]:
    """What a chapter notebook has of the template; the values are True/False or counts.

    Read from the sources (so an output-free skeleton counts), and from the outputs for figures
    and widgets drawn without ``attnlib.viz`` / ``attnlib.widgets``.
    """
    md = "\n".join(_source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    code = "\n".join(_source(c) for c in code_cells)
    outputs = [o for c in code_cells for o in c.get("outputs", [])]
    first_code = _source(code_cells[0]) if code_cells else ""
    return {
        "title": bool(re.match(r"# \d+\. \S", _source(nb["cells"][0]))) if nb["cells"] else False,
        "objectives": bool(re.search(r"\*\*Learning objectives", md)),
        "prerequisites": bool(re.search(r"\*\*Prerequisites", md)),
        "time": bool(re.search(r"\*\*Estimated time", md)),
        "setup cell": first_code.startswith("# Set-up:"),
        "device cell": "attnlib.get_device()" in code,
        "derive and check": "assert_close" in code,
        "figure": bool(re.search(r"\bviz\.\w+\(", code)) or any(IMAGE_OUTPUT in o.get("data", {}) for o in outputs),
        "viz figure": bool(re.search(r"\bviz\.\w+\(", code)),
        "widget": bool(re.search(r"\bwidgets\.\w+\(", code)) or any(WIDGET_OUTPUT in o.get("data", {})
                                                                   for o in outputs),
        "exercises": len(EXERCISE.findall(md)),
        "checker calls": len(re.findall(r"\bchecks\.check_\w+\(", code)),
        "hints": len(re.findall(r"```\{admonition\} Hint\n:class: dropdown", md)),
        "folded solutions": len(re.findall(r"```\{solution(?:-start)?\}[^\n]*\n:class: dropdown", md)),
        "summary": bool(re.search(r"^## Summary", md, re.M)),
    }


# What every chapter must have (tests/test_scaffold.py checks each notebook for these).
REQUIRED = ("title", "objectives", "prerequisites", "time", "setup cell", "device cell", "figure",
            "widget", "summary")
MIN_EXERCISES = 3

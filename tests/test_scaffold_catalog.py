"""`python -m attnlib.checks`: every checker, widget and viz function with its purpose and the
exercises or chapters that use it, so an author never has to read attnlib's source to find a name."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
from conftest import ROOT

from attnlib import catalog, checks, viz, widgets


@pytest.fixture(scope="module")
def listing() -> str:
    proc = subprocess.run([sys.executable, "-m", "attnlib.checks"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _block(listing: str, name: str) -> str:
    """The lines of the listing that describe ``name`` (its signature line and what follows)."""
    lines = listing.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name}("))
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" ")),
               len(lines))
    return "\n".join(lines[start:end])


def test_every_checker_is_listed_with_its_purpose(listing):
    names = [n for n in checks.__all__ if n.startswith("check_")]
    assert names, "attnlib.checks exports no checker"
    for name in names:
        block = _block(listing, name)
        first = inspect.getdoc(getattr(checks, name)).splitlines()[0].strip()
        assert " ".join(first.split()[:6]) in " ".join(block.split()), f"{name}: purpose missing:\n{block}"


def test_every_widget_and_viz_function_is_listed(listing):
    classes = [n for n in widgets.__all__ if inspect.isclass(getattr(widgets, n))]
    functions = [n for n in viz.__all__ if inspect.isfunction(getattr(viz, n))]
    assert classes and functions
    for name in classes + functions:
        assert _block(listing, name), name


def test_every_checker_has_a_docstring():
    missing = [e.name for e in catalog.entries("checks") if e.purpose == "(no docstring)"]
    assert not missing, f"give these checkers a docstring (its first line is their purpose): {missing}"


def test_every_call_in_the_chapters_names_something_that_exists():
    known = {(kind, e.name) for kind in catalog.KINDS for e in catalog.entries(kind)}
    helpers = {("widgets", n) for n in widgets.__all__} | {("viz", n) for n in viz.__all__} | {
        ("checks", n) for n in checks.__all__}
    unknown = sorted(set(catalog.usage(ROOT)) - known - helpers)
    assert not unknown, f"chapters call names attnlib does not export: {unknown}"


def test_usage_attributes_checker_calls_to_their_exercise(tmp_path):
    (tmp_path / "notebooks").mkdir()

    def md(text):
        return {"cell_type": "markdown", "metadata": {}, "source": text}

    def code(text):
        return {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": text}

    cells = [
        md("# 5. Test"), code("viz.plot_attention(p, t)\nw = widgets.SoftmaxExplorer(t, s)"),
        md("```{exercise} One\n:label: ex-05-one\n**Difficulty:** ★☆☆ · **Time:** 5 min\n```"),
        code("checks.check_softmax(f)"),
        md("```{solution-start} ex-05-one\n:class: dropdown\n```"), code("checks.check_softmax(g)"),
        md("```{solution-end}\n```\n\n## Summary"), code("viz.plot_patterns(ps, t)"),
    ]
    (tmp_path / "notebooks" / "05_test.ipynb").write_text(json.dumps({"cells": cells, "metadata": {}}))
    found = catalog.usage(tmp_path)
    assert found[("checks", "check_softmax")] == ["ex-05-one"]
    assert found[("viz", "plot_attention")] == ["05_test"] and found[("viz", "plot_patterns")] == ["05_test"]
    assert found[("widgets", "SoftmaxExplorer")] == ["05_test"]


def test_the_listing_names_the_exercises_that_use_a_checker(listing):
    used = catalog.usage(ROOT)
    some = next(((kind, name), places) for (kind, name), places in sorted(used.items()) if kind == "checks")
    (_, name), places = some
    assert all(p in " ".join(_block(listing, name).split()) for p in places)


def test_one_kind_and_a_bad_kind():
    only = subprocess.run([sys.executable, "-m", "attnlib.checks", "viz"], cwd=ROOT, capture_output=True,
                          text=True)
    assert only.returncode == 0 and "plot_attention(" in only.stdout and "check_softmax(" not in only.stdout
    bad = subprocess.run([sys.executable, "-m", "attnlib.checks", "nope"], cwd=ROOT, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "unknown kind 'nope': choose from checks, widgets, viz" in bad.stderr
    with pytest.raises(ValueError, match=r"entries: kind must be one of .*got 'nope'"):
        catalog.entries("nope")

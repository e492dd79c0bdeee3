"""The review pages: the exercise index is current, flashcards are complete, the glossary is sound."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

_spec = importlib.util.spec_from_file_location("exercise_index", ROOT / "scripts" / "exercise_index.py")
exercise_index = importlib.util.module_from_spec(_spec)
sys.modules["exercise_index"] = exercise_index  # dataclasses look their module up here
_spec.loader.exec_module(exercise_index)


# --------------------------------------------------------------------------- exercise index


def test_exercise_index_is_up_to_date():
    page = (BOOK / "exercises.md").read_text(encoding="utf-8")
    assert page == exercise_index.build(ROOT), (
        "book/exercises.md is out of date: run `python scripts/exercise_index.py`"
    )


def test_exercise_index_check_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(exercise_index, "PAGE", tmp_path / "book" / "exercises.md")
    monkeypatch.setattr(exercise_index, "ROOT", tmp_path)
    (tmp_path / "book").mkdir()
    assert exercise_index.main(["--check"]) == 1  # no page yet: stale
    assert exercise_index.main([]) == 0  # writes it
    assert exercise_index.main(["--check"]) == 0
    capsys.readouterr()


def test_exercise_index_lists_every_exercise_of_the_toc():
    page = (BOOK / "exercises.md").read_text(encoding="utf-8")
    for nb in exercise_index.toc_notebooks(ROOT):
        md = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"]
                       if c["cell_type"] == "markdown")
        for label in re.findall(r"\{exercise(?:-start)?\}[^\n]*\n:label:\s*(\S+)", md):
            assert f"<{label}>`" in page, f"{label} of {nb.name} is missing from book/exercises.md"


def _fake_notebook(tmp_path, markdown: str) -> Path:
    (tmp_path / "notebooks").mkdir(exist_ok=True)
    path = tmp_path / "notebooks" / "99_fake.ipynb"
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "# 99. Fake\n"},
             {"cell_type": "markdown", "metadata": {}, "source": markdown}]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_exercise_parser_forms(tmp_path):
    md = (
        "```{exercise} First | with a bar\n:label: ex-99-a\n**Difficulty:** ★☆☆ · **Time:** 5 min\n\nDo it.\n```\n\n"
        ":::{exercise-start} Second\n:label: ex-99-b\n:::\n**Difficulty:** ★★★ · **Time:** 20 min\n"
    )
    found = exercise_index.parse_notebook(_fake_notebook(tmp_path, md), tmp_path)
    assert [(e.title, e.label, e.difficulty, e.time) for e in found] == [
        ("First | with a bar", "ex-99-a", "★☆☆", "5 min"),
        ("Second", "ex-99-b", "★★★", "20 min"),
    ]
    assert found[0].chapter_title == "99. Fake" and found[0].chapter_doc == "notebooks/99_fake"
    assert "First \\| with a bar" in exercise_index.render(found)


@pytest.mark.parametrize(
    "md, message",
    [
        ("```{exercise} No label\n**Difficulty:** ★☆☆ · **Time:** 5 min\n```\n", ":label:"),
        ("```{exercise} No meta\n:label: ex-99-c\n\nDo it.\n```\n", "Difficulty"),
        ("```{exercise}\n:label: ex-99-d\n**Difficulty:** ★☆☆ · **Time:** 5 min\n```\n", "no title"),
    ],
)
def test_exercise_parser_rejects_incomplete_directives(tmp_path, md, message):
    with pytest.raises(ValueError, match=message):
        exercise_index.parse_notebook(_fake_notebook(tmp_path, md), tmp_path)


# --------------------------------------------------------------------------- flashcards

_CARD = re.compile(r"^```\{dropdown\}[ \t]*(?P<q>[^\n]*)\n(?P<a>.*?)^```[ \t]*$", re.M | re.S)


def _cards() -> list[tuple[str, str]]:
    text = (BOOK / "review.md").read_text(encoding="utf-8")
    return [(m.group("q").strip(), m.group("a").strip()) for m in _CARD.finditer(text)]


def test_every_flashcard_has_a_question_and_an_answer():
    text = (BOOK / "review.md").read_text(encoding="utf-8")
    cards = _cards()
    assert len(cards) >= 40
    assert text.count("{dropdown}") == len(cards), "a dropdown could not be parsed as a card"
    for q, a in cards:
        assert q, "a flashcard has no question"
        assert "?" in q or q.split()[0] in {"Write", "Explain", "Name"}, q
        assert len(a.split()) >= 8, f"the answer to {q!r} is too short"
    questions = [q for q, _ in cards]
    assert len(set(questions)) == len(questions), "a question appears twice"


def _chapter_titles() -> list[str]:
    """The title (first heading) of every chapter in the table of contents, in reading order."""
    titles = []
    for nb in exercise_index.toc_notebooks(ROOT):
        first = json.loads(nb.read_text(encoding="utf-8"))["cells"][0]
        titles.append("".join(first["source"]).splitlines()[0].lstrip("# ").strip())
    return titles


def test_flashcard_headings_are_the_chapter_titles():
    # "## 6. One head, end to end", exactly as the chapter calls itself, in the book's order
    text = (BOOK / "review.md").read_text(encoding="utf-8")
    numbered = re.findall(r"^## (\d+\. .*)$", text, re.M)
    titles = [t for t in _chapter_titles() if not t.startswith("0.")]  # chapter 0 has no cards
    assert numbered == titles, "book/review.md's chapter headings differ from the chapter titles"


def test_formula_cards_use_the_chapters_names():
    # the chapters call the value-up matrix W_O (the output matrix); the review must too
    text = (BOOK / "review.md").read_text(encoding="utf-8")
    assert "W_up" not in text and "X W_V W_O" in text


# Every topic the book's content plan (kept by the maintainers, outside this repository) asks the
# review to cover, with words that must appear in one card (question or answer); each
# alternative is a tuple of words that must all appear.
TOPICS = {
    "the goal of the model": [("next token",)],
    "what W_Q, W_K and W_V do": [("W_Q", "W_K", "W_V")],
    "what the dot product measures": [("dot product", "measure")],
    "what softmax does to the grid": [("softmax", "sum to 1")],
    "why masking": [("mask", "every position", "at once")],
    "why the pattern is (context)^2": [("squared", "4,194,304")],
    "what multi-head attention adds": [("multi-head", "its own")],
    "self- versus cross-attention": [("self-attention", "cross-attention")],
    "why the value map is factored": [("value-down", "value-up", "low-rank")],
    "GPT-3 attention parameters and share": [("57,982,058,496", "one third")],
    "data flow through the transformer": [("residual stream", "embedding", "unembedding", "MLP")],
    "why attention suits GPUs": [("GPU", "one token at a time", "matrix")],
    "online softmax": [("online softmax", "exp(m - m')")],
    "KV cache": [("KV cache",)],
    "sparse and hierarchical attention": [("sliding-window",), ("hierarchical",)],
}


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_content_topics_have_a_flashcard(topic):
    cards = [f"{q}\n{a}".lower() for q, a in _cards()]
    for words in TOPICS[topic]:
        assert any(all(w.lower() in card for w in words) for card in cards), (
            f"no flashcard on {topic!r} mentions all of {words}"
        )


# --------------------------------------------------------------------------- glossary


def _glossary_terms() -> list[str]:
    text = (BOOK / "glossary.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```\{glossary\}[^\n]*\n(.*?)^```[ \t]*$", text, re.M | re.S)
    assert len(blocks) == 1, "book/glossary.md must hold exactly one {glossary} directive"
    terms = []
    for line in blocks[0].splitlines():
        if line.strip() and not line.startswith((" ", "\t", ":")):
            terms.append(line.strip())
    return terms


def test_every_glossary_term_is_defined_once():
    terms = _glossary_terms()
    lowered = [t.lower() for t in terms]
    dupes = sorted({t for t in lowered if lowered.count(t) > 1})
    assert not dupes, f"glossary terms defined more than once: {dupes}"
    text = (BOOK / "glossary.md").read_text(encoding="utf-8")
    block = re.search(r"^```\{glossary\}[^\n]*\n(.*?)^```", text, re.M | re.S).group(1)
    lines = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith(":")]
    for i, line in enumerate(lines):  # a term (group) must be followed by an indented definition
        if not line.startswith(" "):
            after = next((ln for ln in lines[i + 1:] if ln.startswith(" ")), None)
            assert after is not None, f"glossary term {line!r} has no definition"
    assert lines[-1].startswith(" "), "the last glossary term has no definition"
    must = ["token", "embedding", "query", "key", "value", "value-down", "value-up", "output matrix",
            "attention pattern", "scores", "softmax", "temperature", "causal mask", "padding mask",
            "context length", "head", "multi-head attention", "self-attention", "cross-attention",
            "residual stream", "LayerNorm", "MLP", "decoder", "encoder", "KV cache", "logits",
            "next-token prediction", "online softmax", "FlashAttention", "sparse attention",
            "hierarchical attention", "dot product", "W_Q", "W_K", "W_V", "W_O"]
    missing = [t for t in must if t.lower() not in lowered]
    assert not missing, f"glossary lacks {missing}"


def _term_references() -> list[tuple[str, str]]:
    """(file, target) for every {term} role in the book's markdown and notebooks."""
    sources = [(p.name, p.read_text(encoding="utf-8")) for p in BOOK.glob("*.md")]
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        sources.append((nb.name, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")))
    refs = []
    for name, text in sources:
        for content in re.findall(r"(?<!`)\{term\}`([^`]+)`", text):
            m = re.match(r"^(.*?)\s*<([^<>]+)>$", content, re.S)
            refs.append((name, (m.group(2) if m else content).strip()))
    return refs


def test_every_term_reference_has_a_definition():
    terms = {t.lower() for t in _glossary_terms()}
    missing = sorted({f"{name}: {target}" for name, target in _term_references()
                      if " ".join(target.split()).lower() not in terms})
    assert not missing, f"{{term}} references without a glossary entry: {missing}"

"""scripts/seed_check.py: its preamble really shifts every seed, and a broken claim fails the run.

The slow part (every training chapter with two offsets) is ``make seeds``; these tests are fast: the
preamble runs in a subprocess (it patches torch and random globally), and one tiny notebook of a
single cell goes through the real nbclient path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import seed_check  # noqa: E402

# What each seeding call gives without the preamble, for a seed passed as an argument.
DRAWS = textwrap.dedent('''\
    import json, random, sys
    import numpy as np
    import torch
    from attnlib import data
    from attnlib.train import seed_everything

    s = int(sys.argv[1])
    torch.manual_seed(s)
    out = {"manual_seed": torch.rand(3).tolist()}
    torch.random.manual_seed(s)
    out["random.manual_seed"] = torch.rand(3).tolist()
    out["Generator"] = torch.rand(3, generator=torch.Generator().manual_seed(s)).tolist()
    out["Generator(device)"] = torch.rand(
        3, generator=torch.Generator(device="cpu").manual_seed(s)).tolist()
    out["seed_everything"] = torch.rand(3, generator=seed_everything(s)).tolist()
    out["seed_everything global"] = torch.rand(3).tolist()
    out["Random"] = random.Random(s).random()
    random.seed(s)
    out["random.seed"] = random.random()
    np.random.seed(s)
    out["np.random.seed"] = np.random.rand()
    out["default_rng"] = np.random.default_rng(s).random()
    out["stories"] = str(data.make_stories(1, seed=s)[0])
    print("DRAWS=" + json.dumps(out))
''')


def _draws(seed: int, offset: int | None) -> dict:
    code = (seed_check.preamble(offset) if offset is not None else "") + "\n" + DRAWS
    proc = subprocess.run([sys.executable, "-c", code, str(seed)], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("DRAWS="))
    return json.loads(line.removeprefix("DRAWS="))


def test_preamble_shifts_every_seed():
    plain0, plain3 = _draws(0, None), _draws(3, None)
    shifted = _draws(0, 3)
    assert shifted == plain3  # seed 0 under offset 3 draws what seed 3 draws without the preamble
    for key in plain0:
        assert plain0[key] != plain3[key], key  # so the comparison above cannot pass by accident


def test_offset_zero_changes_nothing():
    assert _draws(5, 0) == _draws(5, None)


def test_preamble_rejects_a_non_integer_offset():
    with pytest.raises(TypeError, match="preamble: offset must be an int, got str"):
        seed_check.preamble("1")


def test_training_chapters_are_flagged():
    names = [p.name for p in seed_check.training_notebooks()]
    assert "08_cross_attention.ipynb" in names and "10_training.ipynb" in names
    assert "03_softmax_scaling.ipynb" not in names


def _notebook(tmp_path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_claim_that_holds_for_one_seed_only_fails_with_the_offset_and_the_cell(tmp_path, capsys):
    import torch

    torch.manual_seed(0)
    lucky = torch.randint(10**6, (1,)).item()
    path = _notebook(tmp_path, [
        "import torch",
        f"torch.manual_seed(0)\nvalue = torch.randint(10**6, (1,)).item()\nassert value == {lucky}, value",
    ])
    assert seed_check.main(["--offsets", "0", "1", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "tiny.ipynb        " in out and " 0 " in out  # offset 0 ran (and passed)
    failures = [ln for ln in err.splitlines() if "FAILED" in ln]
    assert len(failures) == 1, err
    assert "tiny.ipynb, seed offset 1: cell 1 at `assert value ==" in failures[0]
    assert "AssertionError" in failures[0]


def test_a_notebook_without_seeds_proves_nothing(tmp_path, capsys):
    path = _notebook(tmp_path, ["x = 1 + 1"])
    assert seed_check.main(["--offsets", "1", str(path)]) == 1
    assert "set no seed that the preamble could shift" in capsys.readouterr().err


def _flagged(tmp_path: Path, attnlib_meta: dict) -> Path:
    path = _notebook(tmp_path, ["import torch\ntorch.manual_seed(0)\nprint(torch.rand(1).item())"])
    nb = nbformat.read(path, as_version=4)
    nb.metadata["attnlib"] = attnlib_meta
    nbformat.write(nb, path)
    return path


def test_a_notebook_chooses_its_offsets_in_its_metadata(tmp_path, capsys):
    path = _flagged(tmp_path, {"trains": True, "seed_offsets": [4]})
    assert seed_check.notebook_offsets(path) == [4]
    assert seed_check.main([str(path)]) == 0
    out = capsys.readouterr().out
    rows = [ln.split() for ln in out.splitlines() if ln.startswith("tiny.ipynb")]
    assert [r[1] for r in rows] == ["4"], out  # only offset 4 ran
    assert "tiny.ipynb 4" in out


def test_offsets_on_the_command_line_win_over_the_metadata(tmp_path, capsys):
    path = _flagged(tmp_path, {"trains": True, "seed_offsets": [4]})
    assert seed_check.main(["--offsets", "1", str(path)]) == 0
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines() if ln.startswith("tiny.ipynb")]
    assert [r[1] for r in rows] == ["1"]


@pytest.mark.parametrize("bad", [[], [0], ["1"], 3, [True]])
def test_bad_offsets_in_the_metadata_are_refused(tmp_path, bad):
    path = _flagged(tmp_path, {"trains": True, "seed_offsets": bad})
    with pytest.raises(ValueError, match="tiny.ipynb: metadata attnlib.seed_offsets must be a "
                                         "non-empty list of non-zero integers, got"):
        seed_check.notebook_offsets(path)


def test_every_training_chapter_meets_at_least_two_seeds_it_never_trained_on():
    # A chapter that trains seeds 0..n-1 itself ("trains_seeds": n) and asserts its claims for
    # each, run with offset k, trains seeds k..k+n-1: those outside 0..n-1 are new.
    for path in seed_check.training_notebooks():
        meta = nbformat.read(path, as_version=4).metadata["attnlib"]
        own = set(range(meta.get("trains_seeds", 1)))
        shifted = {k + s for k in seed_check.notebook_offsets(path) for s in own}
        assert len(shifted - own) >= 2, (path.name, sorted(shifted - own))

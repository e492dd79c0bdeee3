#!/usr/bin/env python3
"""Run every chapter on a Colab-like package set (``make colab-test``).

Run it with the Python of the Colab-like environment (``.venv-colab``, built from
``requirements-colab.txt``: ipywidgets 7.7.1, anywidget 0.9, IPython 7.34, ...). It

1. installs attnlib the way the chapters' set-up cell does on Colab: the cell's own
   ``pip install -q "attnlib @ git+<repository>@<ref>"``, with the repository replaced by a copy of
   this working tree's files (those git tracks, plus new files git does not ignore), as a normal,
   non-editable install, so package data such as ``attnlib/static/*.js`` must really be shipped;
2. checks that this installed nothing over Colab's set: every ``==`` pin of
   ``requirements-colab.txt`` (ipywidgets, anywidget, torch, numpy, ...) is still the installed
   version, and the importable attnlib is the installed copy with its static files;
3. executes every notebook in ``notebooks/`` top to bottom in a fresh kernel of this environment
   (nbclient; an error in any cell fails the run). Before the chapter's first cell a preamble cell
   registers a stand-in ``google.colab`` module, so the set-up cell takes its Colab branch
   (``import attnlib`` succeeds, ``output.enable_custom_widget_manager()`` is called), and checks
   that the kernel runs this environment's Python (``sys.prefix``). The notebooks on disk are not
   changed. The device each chapter prints (``attnlib.get_device()``) is reported.

Also checked: the widgets' JavaScript modules use ``export default {render}``, which anywidget's
front-end must load (0.9.x does); the browser side itself is not run here (Colab's widget manager
is not available offline).

    .venv-colab/bin/python scripts/colab_check.py                 # all of it
    .venv-colab/bin/python scripts/colab_check.py --skip-install  # attnlib already installed
    .venv-colab/bin/python scripts/colab_check.py notebooks/03_softmax_scaling.ipynb
    python scripts/colab_check.py --torch 2.11    # Colab's torch, installed by the caller (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements-colab.txt"

PREAMBLE = '''\
# colab_check preamble (not part of the chapter): stand in for Colab's google.colab module.
import sys
import types

_colab_calls = []
_google = sys.modules.get("google") or types.ModuleType("google")
if not hasattr(_google, "__path__"):
    _google.__path__ = []
_colab = types.ModuleType("google.colab")
_output = types.ModuleType("google.colab.output")
_output.enable_custom_widget_manager = lambda: _colab_calls.append("enable_custom_widget_manager")
_colab.output = _output
_google.colab = _colab
sys.modules.update({"google": _google, "google.colab": _colab, "google.colab.output": _output})
print("KERNEL_PREFIX=" + sys.prefix)
'''

POSTAMBLE = '''\
# colab_check postamble: the set-up cell took the Colab branch and used the installed attnlib.
import attnlib
print("COLAB_CALLS=" + ",".join(_colab_calls))
print("ATTNLIB_FILE=" + attnlib.__file__)
'''


def fail(msg: str) -> None:
    print(f"colab-test: FAILED: {msg}", file=sys.stderr)
    raise SystemExit(1)


# --------------------------------------------------------------------------- install


def pins(path: Path = REQUIREMENTS) -> dict[str, str]:
    """name -> version for every ``name==version`` line of a requirements file."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def setup_cell_requirement(nb_path: Path) -> str:
    """The ``attnlib @ git+URL@REF`` requirement of a chapter's set-up cell."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            # the cell may spell it whole ("attnlib @ git+URL@REF") or build it from a url string
            m = re.search(r'"attnlib @ (git\+[^"]+)"', cell.source) or (
                re.search(r'"(git\+[^"]+)"', cell.source) if "attnlib @ " in cell.source else None)
            if not m:
                fail(f"{nb_path.name}: the first code cell has no 'attnlib @ git+...' requirement")
            return f"attnlib @ {m.group(1)}"
    fail(f"{nb_path.name}: no code cell")
    return ""  # unreachable


def tree_copy(dest: Path) -> None:
    """Copy the files a clone of this working tree would have (tracked + untracked, not ignored)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def install_like_setup_cell(notebook: Path) -> None:
    requirement = setup_cell_requirement(notebook)
    ref = requirement.rsplit("@", 1)[-1]
    if ref in {"main", "master", "HEAD"}:
        fail(f"the set-up cell installs from the moving branch {ref!r}; pin a tag or a commit")
    print(f"set-up cell installs: {requirement}")
    with tempfile.TemporaryDirectory(prefix="attnlib-repo-") as tmp:
        repo = Path(tmp) / "attention-book"
        tree_copy(repo)
        local = f"attnlib @ {repo.as_uri()}"
        print(f"standing in for the repository: {local}")
        try:  # a copy left by an earlier run (pip warns about uninstalling what is not there)
            metadata.version("attnlib")
            subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "attnlib"], check=False)
        except metadata.PackageNotFoundError:
            pass
        # the set-up cell's command, with the repository swapped for the copy
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", local], check=True)


def _release(version: str) -> tuple[int, ...]:
    """``"2.11.0+cpu"`` -> ``(2, 11, 0)``."""
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0])[:3])


def check_torch(expected: str) -> None:
    """The installed torch is release ``expected`` (``"2.11"`` admits 2.11.x, any local build tag)."""
    have = metadata.version("torch")
    want = _release(expected)
    if _release(have)[: len(want)] != want:
        fail(f"torch {have} is installed, but this run was told to check torch {expected} (--torch)")


def check_installed(torch: str | None = None) -> None:
    """Every pin of requirements-colab.txt is installed as pinned, attnlib as the set-up cell installs it.

    ``torch``: the torch release this run uses instead of the file's pin (the colab job of
    .github/workflows/test.yml runs Colab's torch 2.11 on Python 3.13); by default torch must be the
    pinned one, which is also the main environment's (requirements.txt).
    """
    wanted = pins()
    if torch is not None:
        wanted.pop("torch", None)
        check_torch(torch)
    bad = _not_as_pinned(wanted)
    if bad:
        fail("installing attnlib changed Colab's package set:\n  " + "\n  ".join(bad))
    main_torch = pins(ROOT / "requirements.txt").get("torch")
    if torch is None and main_torch and metadata.version("torch").split("+")[0] != main_torch:
        fail(f"torch {metadata.version('torch')} is not the main environment's torch {main_torch}")
    iw, aw = metadata.version("ipywidgets"), metadata.version("anywidget")
    if iw != "7.7.1" or not aw.startswith("0.9."):
        fail(f"expected ipywidgets 7.7.1 and anywidget 0.9.x, found {iw} and {aw}")

    dist, static = _check_attnlib_copy()
    check_widget_frontend()
    print(f"installed: ipywidgets {iw}, anywidget {aw}, torch {metadata.version('torch')}, "
          f"numpy {metadata.version('numpy')}, IPython {metadata.version('ipython')}, "
          f"ipykernel {metadata.version('ipykernel')}, attnlib {dist.version} "
          f"(non-editable, {len(static)} static files); nothing upgraded")


def _not_as_pinned(wanted: dict[str, str]) -> list[str]:
    """One line for each pinned package that is missing or installed at another version."""
    bad = []
    for name, version in sorted(wanted.items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = None
        if have is None or have.split("+")[0] != version.split("+")[0]:
            bad.append(f"{name}: pinned {version}, installed {have}")
    return bad


def _check_attnlib_copy():
    """attnlib is installed as the set-up cell installs it (a normal copy, with its static files,
    the one ``import attnlib`` finds). Returns (its distribution, its static files)."""
    dist = metadata.distribution("attnlib")
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct.get("dir_info", {}).get("editable"):
        fail("attnlib is installed editable; the set-up cell installs a normal copy")
    static = [str(f) for f in dist.files or [] if str(f).startswith("attnlib/static/")]
    if not any(f.endswith(".js") for f in static):
        fail(f"the installed attnlib ships no attnlib/static/*.js (found {static})")
    out = subprocess.run([sys.executable, "-c", "import attnlib, sys; print(attnlib.__file__)"],
                         cwd=tempfile.gettempdir(), check=True, capture_output=True, text=True).stdout.strip()
    if not out.startswith(sys.prefix):
        fail(f"import attnlib finds {out}, not the copy installed in {sys.prefix}")
    return dist, static


def check_widget_frontend() -> None:
    """The widgets' ESM modules use ``export default {render}``: anywidget's front-end must load that.

    Colab's widget manager runs the anywidget front-end of the installed anywidget (0.9.x); its
    bundle must accept a default-exported object, not only ``export function render``.
    """
    import attnlib

    static = Path(attnlib.__file__).parent / "static"
    uses_default = [f.name for f in static.glob("*.js") if "export default" in f.read_text()]
    if not uses_default:
        return
    bundle = Path(sys.prefix) / "share" / "jupyter" / "nbextensions" / "anywidget" / "index.js"
    if not bundle.exists():
        fail(f"anywidget's front-end bundle is missing ({bundle})")
    if "mod.default" not in bundle.read_text(errors="replace"):
        fail(f"{', '.join(uses_default)} use 'export default', which anywidget "
             f"{metadata.version('anywidget')}'s front-end does not load")


# --------------------------------------------------------------------------- execute


def _text(outputs) -> str:
    parts = []
    for o in outputs:
        if o.get("output_type") == "stream":
            parts.append(o.get("text", ""))
        elif "data" in o and "text/plain" in o["data"]:
            parts.append(o["data"]["text/plain"])
    return "".join(parts)


def run_notebook(path: Path, timeout: int) -> dict:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(PREAMBLE))
    nb.cells.append(nbformat.v4.new_code_cell(POSTAMBLE))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err)
    except Exception as err:  # kernel died, timeout, ...
        error = f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - t0
    pre, post = _text(nb.cells[0].get("outputs", [])), _text(nb.cells[-1].get("outputs", []))
    device = None
    for cell in nb.cells[1:-1]:
        if cell.cell_type == "code" and "get_device()" in cell.source:
            device = _text(cell.get("outputs", [])).strip().splitlines()[-1:] or None
            device = device[0] if device else None
            break
    return {"error": error, "seconds": seconds, "pre": pre, "post": post, "device": device}


def _run_problems(res: dict) -> list[str]:
    """What went wrong in one chapter's run (``run_notebook``'s result): its error, or what the
    preamble and postamble say about the kernel, the widget manager, attnlib and the device."""
    if res["error"] is not None:
        return [res["error"]]
    problems = []
    prefix = re.search(r"KERNEL_PREFIX=(.*)", res["pre"])
    if not prefix or Path(prefix.group(1).strip()).resolve() != Path(sys.prefix).resolve():
        problems.append(f"kernel ran {prefix.group(1) if prefix else '?'}, not {sys.prefix}")
    if "COLAB_CALLS=enable_custom_widget_manager" not in res["post"]:
        problems.append("the set-up cell did not call output.enable_custom_widget_manager()")
    where = re.search(r"ATTNLIB_FILE=(.*)", res["post"])
    if not where or not where.group(1).startswith(sys.prefix):
        problems.append(f"the chapter imported attnlib from {where.group(1) if where else '?'}")
    if res["device"] is None:
        problems.append("no cell prints attnlib.get_device()")
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    p.add_argument("--skip-install", action="store_true", help="use the attnlib already installed")
    p.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    p.add_argument("--torch", metavar="VERSION", default=None,
                   help="expect this torch release (e.g. 2.11) instead of requirements-colab.txt's pin; "
                        "for the CI job that installs Colab's torch itself")
    args = p.parse_args(argv)

    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    if not notebooks:
        fail("no notebooks found")
    print(f"Colab-like check with {sys.executable} (Python {sys.version.split()[0]})")
    if not args.skip_install:
        install_like_setup_cell(notebooks[0])
    check_installed(args.torch)

    # Make "python3" resolve to this environment's kernel, ahead of any user-wide kernelspec.
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [str(Path(sys.prefix) / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")]).strip(os.pathsep)
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # ipykernel 6's debugpy frozen-module notice
    failures = []
    total = 0.0
    print(f"\n{'notebook':<34} {'seconds':>8}  device   result")
    for nb_path in notebooks:
        res = run_notebook(Path(nb_path).resolve(), args.timeout)
        total += res["seconds"]
        problems = _run_problems(res)
        status = "ok" if not problems else "FAILED"
        print(f"{Path(nb_path).name:<34} {res['seconds']:>8.1f}  {str(res['device']):<8} {status}")
        if problems:
            failures.append((Path(nb_path).name, problems))
    print(f"{'total':<34} {total:>8.1f}")
    for name, problems in failures:
        print(f"\n--- {name}", file=sys.stderr)
        for prob in problems:
            print(prob[-4000:], file=sys.stderr)
    if failures:
        fail(f"{len(failures)} of {len(notebooks)} notebooks failed on the Colab-like set")
    print(f"colab-test: all {len(notebooks)} notebooks ran on ipywidgets {metadata.version('ipywidgets')} / "
          f"anywidget {metadata.version('anywidget')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

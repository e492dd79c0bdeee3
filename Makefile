# Attention, executed: build the book and run its tests.
#
#   make book     create .venv if needed, execute the chapters and build _build/html
#   make test     the same set-up, then every check (TEST_TARGETS, in order)
#
# Needs Python 3.11+ (`make PYTHON=python3.12 ...` to choose one). See README.md.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HTML   := _build/html
JB_FLAGS ?= -W -n --keep-going
NB     ?= notebooks/*.ipynb
PYTEST_FLAGS ?= -q

# One CPU thread for torch by default: a chapter's printed numbers then do not depend on the core
# count of the machine that executed it (reductions split across threads round differently), and
# small-tensor work is faster without thread hand-offs. Override with `make OMP_NUM_THREADS=4 ...`.
OMP_NUM_THREADS ?= 1
export OMP_NUM_THREADS

# What `make test` runs, in this order. Add a target here (and define it below, depending on
# $(STAMP)) to put it into the suite, e.g. `TEST_TARGETS += bench-quick`.
TEST_TARGETS := lint sync-check pytest nbval
# The benchmark smoke runs (so the scripts cannot rot) and the chapters on Colab's package set.
TEST_TARGETS += bench-quick colab-test

.PHONY: help venv book test $(TEST_TARGETS) lint sync sync-check pytest nbval execute clean distclean

help:
	@echo "make book    build the book into $(HTML) (creates $(VENV) if needed)"
	@echo "make test    lint, set-up cells, pytest (library, checkers, widgets, book build, browser), nbval"
	@echo "make execute re-execute notebooks in place (NB=notebooks/03_x.ipynb for one)"
	@echo "make sync    rewrite every notebook's set-up cell from _config.yml"
	@echo "make lint    ruff over the library, tests, scripts and notebooks"
	@echo "make colab-test  run every chapter on a Colab-like package set (.venv-colab)"
	@echo "make bench-quick smoke-run the bench/ scripts (python bench/NAME.py for real numbers)"
	@echo "make clean   remove _build (make distclean also removes $(VENV))"

# ---------------------------------------------------------------- environment

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed, found " + sys.version.split()[0] + ": run make PYTHON=python3.11 (or newer)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

venv: $(STAMP)

# ---------------------------------------------------------------- the book

# jupyter-book re-executes a chapter only when its code changed (the cache keys on the notebook's
# code cells), so after any change to attnlib (its Python, the widgets' JavaScript or CSS) the
# cache is dropped and every chapter runs again: the book always shows the current library.
ATTNLIB_SRC := $(shell find attnlib -type f \( -name '*.py' -o -name '*.js' -o -name '*.css' \) 2>/dev/null)
CACHE_STAMP := _build/.attnlib-stamp

$(CACHE_STAMP): $(ATTNLIB_SRC)
	rm -rf _build/.jupyter_cache
	@mkdir -p _build && touch $@

book: $(STAMP) $(CACHE_STAMP)
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo
	@echo "The book is at $(CURDIR)/$(HTML)/index.html"

# ---------------------------------------------------------------- tests

test: $(STAMP)
	@$(MAKE) --no-print-directory $(TEST_TARGETS)
	@echo "make test: all of $(TEST_TARGETS) passed"

lint: $(STAMP)
	$(BIN)/ruff check .

sync-check: $(STAMP)
	$(BIN)/python scripts/sync_setup_cells.py --check
	$(BIN)/python scripts/exercise_index.py --check

# The library, checker and widget tests, the book build with -W and the browser tests
# (tests/test_book.py builds the book once per session).
pytest: $(STAMP) $(CACHE_STAMP)
	$(BIN)/pytest tests $(PYTEST_FLAGS)

# Strict notebook regression: every committed output must come back when the chapter re-runs.
nbval: $(STAMP)
	$(BIN)/pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		-p no:cacheprovider notebooks $(PYTEST_FLAGS)

# Each bench script with --quick: tiny sizes, a few seconds each, numbers not meaningful.
BENCH_SCRIPTS := $(wildcard bench/attention.py bench/train.py bench/book.py)

bench-quick: $(STAMP)
	@set -e; for s in $(BENCH_SCRIPTS); do echo "== $$s --quick"; $(BIN)/python $$s --quick; done

# The Colab-like job: a second venv with Colab's widget and kernel stack (requirements-colab.txt:
# ipywidgets 7.7.1, anywidget 0.9, IPython 7.34; the main venv's Python and torch wheel), attnlib
# installed the way the set-up cell installs it, then every chapter executed in it.
COLAB_VENV  := .venv-colab
COLAB_STAMP := $(COLAB_VENV)/.installed

$(COLAB_STAMP): requirements-colab.txt $(STAMP)
	@test -x $(COLAB_VENV)/bin/python || "$$($(BIN)/python -c 'import sys; print(sys._base_executable)')" -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install --disable-pip-version-check -qq -r requirements-colab.txt
	@touch $@

colab-test: $(COLAB_STAMP)
	$(COLAB_VENV)/bin/python scripts/colab_check.py

.PHONY: bench-quick colab-test

# ---------------------------------------------------------------- for contributors

execute: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=600 $(NB)

sync: $(STAMP)
	$(BIN)/python scripts/sync_setup_cells.py
	$(BIN)/python scripts/exercise_index.py

clean:
	rm -rf _build .pytest_cache

distclean: clean
	rm -rf $(VENV) $(COLAB_VENV)

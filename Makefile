# Attention, executed: build the book and run its tests.
#
#   make book     create .venv if needed, execute the chapters and build _build/html
#   make test     every check (TEST_TARGETS), all of them even when one fails, then a table
#
# Needs Python 3.11+ (`make PYTHON=python3.12 ...` to choose one). See README.md; `make help`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HTML   := _build/html
# The chapters that execute, nbval, nbval-portable, colab-test and seeds work on: one, several
# or (the default) all, e.g. `make nbval NB=notebooks/03_softmax_scaling.ipynb`.
NB     ?= notebooks/*.ipynb
PYTEST_FLAGS ?= -q
# `make book FORCE=1` rebuilds every page even when nothing changed.
FORCE  ?=

# One CPU thread for torch by default: a chapter's printed numbers then do not depend on the core
# count of the machine that executed it (reductions split across threads round differently), and
# small-tensor work is faster without thread hand-offs. Override with `make OMP_NUM_THREADS=4 ...`.
OMP_NUM_THREADS ?= 1
export OMP_NUM_THREADS

# What `make test` runs, in this order (lint first: a ruff fix after an execution costs another
# execution). Add a target here, and define it below depending on $(STAMP), to put it in the suite.
# How many of those targets run at once (make test JOBS=1 for one after another, output streamed).
# Every chapter runs torch on one thread, so two targets keep a 2-core machine busy.
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ "$$n" -gt 2 ] && n=2; echo $$n)

TEST_TARGETS := lint sync-check pytest nbval nbval-portable seeds bench-quick colab-test

NB_GIVEN := $(filter command line environment,$(origin NB))
NBVAL := $(BIN)/pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
	-p no:cacheprovider

.PHONY: help venv book test $(TEST_TARGETS) pytest-fast sync execute new-chapter chapter catalog \
	clean distclean

help:
	@echo "make book         build the book into $(HTML) (creates $(VENV) if needed; FORCE=1: every page)"
	@echo "make test         $(TEST_TARGETS): all of them, then a table"
	@echo "make pytest-fast  the tests that need neither the built book nor an execution"
	@echo "make nbval        strict output check of the chapters (NB=notebooks/03_x.ipynb for one)"
	@echo "make execute      lint, then re-execute notebooks in place (NB=... for one)"
	@echo "make sync         set-up cells from _config.yml, and book/exercises.md"
	@echo "make lint         ruff over the library, tests, scripts and notebooks"
	@echo "make new-chapter  N=13 NAME=my_topic: a chapter skeleton, listed in _toc.yml"
	@echo "make chapter      NB=notebooks/13_x.ipynb: sync, lint, execute, nbval, browser test, screenshots"
	@echo "make catalog      every checker, widget and viz function, and the exercises that use them"
	@echo "make colab-test   run the chapters on a Colab-like package set (.venv-colab)"
	@echo "make bench-quick  smoke-run the bench/ scripts (python bench/NAME.py for real numbers)"
	@echo "make clean        remove _build (make distclean also removes $(VENV) and .venv-colab)"

# ---------------------------------------------------------------- environment

# The stamp records the checkout the venv was made for. attnlib is installed editable, so a .venv
# copied or moved from another checkout silently imports the OTHER checkout's attnlib (and its
# scripts start the other checkout's Python): refuse it.
VENV_HOME := $(strip $(shell cat $(STAMP) 2>/dev/null))
ifeq ($(VENV_HOME),)
# a stamp written before it recorded the checkout: the venv's own activate script names its home
VENV_HOME := $(patsubst %/$(VENV),%,$(strip $(shell sed -n 's/^VIRTUAL_ENV="\(.*\)"$$/\1/p' \
	$(BIN)/activate 2>/dev/null)))
endif
ifneq ($(VENV_HOME),)
ifneq ($(VENV_HOME),$(CURDIR))
ifneq ($(filter-out help clean distclean,$(or $(MAKECMDGOALS),help)),)
$(error $(VENV) was made for the checkout $(VENV_HOME), not for this one ($(CURDIR)). A copied or \
moved virtual environment imports attnlib from its old checkout. Never copy or move $(VENV): remove \
it (rm -rf $(VENV), or make distclean) and run make again, which creates a new one here)
endif
endif
endif

KERNEL_CONFIG := $(VENV)/etc/ipython/ipython_kernel_config.py

$(STAMP): requirements.txt pyproject.toml scripts/ipython_kernel_config.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed, found " + sys.version.split()[0] + ": run make PYTHON=python3.11 (or newer)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	@mkdir -p $(dir $(KERNEL_CONFIG)) && cp scripts/ipython_kernel_config.py $(KERNEL_CONFIG)
	@echo "$(CURDIR)" > $@

venv: $(STAMP)

# ---------------------------------------------------------------- the book

# scripts/build_book.py drops the execution cache when attnlib changed (stamp _build/.attnlib-stamp),
# gives the chapters that are exactly as committed their committed outputs (make test's nbval runs
# and compares them; EXECUTE=1 runs every chapter instead), builds with `jupyter-book build . -W -n --keep-going`, records the result in _build/book-build.json
# and .log, and builds nothing when no input changed since. pytest's `built_book` reads that record.
book: $(STAMP)
	$(BIN)/python scripts/build_book.py $(if $(FORCE),--force) $(if $(EXECUTE),--execute)

# ---------------------------------------------------------------- tests

test: $(STAMP)
	+@$(BIN)/python scripts/run_suite.py --make "$(MAKE)" --jobs $(JOBS) $(TEST_TARGETS)

lint: $(STAMP)
	$(BIN)/ruff check .

sync-check: $(STAMP)
	$(BIN)/python scripts/sync_setup_cells.py --check
	$(BIN)/python scripts/exercise_index.py --check

# Every test in tests/: the library, checkers, widgets, scaffold, and (marked `slow`) the book build
# with -W and the browser tests. The book is built first, in the open, by the same script as
# `make book` (so after `make book` nothing is built again); the tests read its recorded log.
pytest: $(STAMP)
	@$(BIN)/python scripts/build_book.py || echo "(the book build failed: tests/test_book.py says where)"
	$(BIN)/pytest tests $(PYTEST_FLAGS)

pytest-fast: $(STAMP)
	$(BIN)/pytest tests -m "not slow" $(PYTEST_FLAGS)

# Strict notebook regression: every committed output must come back when the chapter re-runs.
nbval: $(STAMP)
	$(NBVAL) $(NB) $(PYTEST_FLAGS)

# The same with torch's portable CPU kernels: a chapter's committed outputs may not depend on the
# processor's vectorised kernels (cells whose output honestly varies are tagged nbval-ignore-output
# next to an assert that guards the claim).
nbval-portable: $(STAMP)
	ATEN_CPU_CAPABILITY=default $(NBVAL) $(NB) $(PYTEST_FLAGS)

# The chapters that train, with other torch seeds (scripts/seed_check.py: the asserted claims must
# hold for every seed). Extra options: SEED_FLAGS="--offsets 1 2".
SEED_FLAGS ?=
seeds: $(STAMP)
	@if [ -f scripts/seed_check.py ]; then \
		echo "$(BIN)/python scripts/seed_check.py $(SEED_FLAGS) $(if $(NB_GIVEN),$(NB))"; \
		$(BIN)/python scripts/seed_check.py $(SEED_FLAGS) $(if $(NB_GIVEN),$(NB)); \
	else \
		echo "== skipped: scripts/seed_check.py is not in this checkout yet"; \
	fi

# Each bench script with --quick: tiny sizes, a few seconds each, numbers not meaningful.
BENCH_SCRIPTS := $(wildcard bench/attention.py bench/train.py bench/generate.py bench/book.py bench/tiled.py)

bench-quick: $(STAMP)
	@set -e; for s in $(BENCH_SCRIPTS); do echo "== $$s --quick"; $(BIN)/python $$s --quick; done

# The Colab-like job: a second venv with the Colab package versions that exist for this Python
# (requirements-colab.txt: ipywidgets 7.7.1, anywidget 0.9.21, IPython 7.34, numpy 2.1.3, ...; the
# main venv's Python and torch wheel), attnlib installed the way the set-up cell installs it, then
# the chapters executed in it. Colab's own Python 3.13 and torch 2.11: the colab job of
# .github/workflows/test.yml.
COLAB_VENV  := .venv-colab
COLAB_STAMP := $(COLAB_VENV)/.installed

$(COLAB_STAMP): requirements-colab.txt $(STAMP)
	@test -x $(COLAB_VENV)/bin/python || "$$($(BIN)/python -c 'import sys; print(sys._base_executable)')" -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install --disable-pip-version-check -qq -r requirements-colab.txt
	@echo "$(CURDIR)" > $@

colab-test: $(COLAB_STAMP)
	$(COLAB_VENV)/bin/python scripts/colab_check.py $(if $(NB_GIVEN),$(NB))

# ---------------------------------------------------------------- for contributors

execute: $(STAMP)
	$(BIN)/ruff check $(NB)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=600 $(NB)

sync: $(STAMP)
	$(BIN)/python scripts/sync_setup_cells.py
	$(BIN)/python scripts/exercise_index.py

# A new chapter from scripts/chapter_template.py: an output-free notebook with every part of the
# chapter template, listed in _toc.yml and book/exercises.md. Then: `make chapter NB=...`.
new-chapter: $(STAMP)
	@test -n "$(N)" -a -n "$(NAME)" || { echo "usage: make new-chapter N=13 NAME=my_topic"; exit 2; }
	$(BIN)/python scripts/new_chapter.py $(N) $(NAME)

# The loop for one chapter: set-up cell and exercise index, lint, execute, strict nbval, the book
# build (only what changed), the browser tests of that chapter, and a desktop and a phone
# screenshot of its page in _build/screenshots/.
CHAPTER = $(basename $(notdir $(NB)))
chapter: $(STAMP)
	@test -n "$(NB_GIVEN)" -a -f "$(NB)" -a "$(words $(NB))" = 1 || \
		{ echo "usage: make chapter NB=notebooks/13_my_topic.ipynb (one existing notebook)"; exit 2; }
	$(BIN)/python scripts/sync_setup_cells.py $(NB)
	$(BIN)/python scripts/exercise_index.py
	$(BIN)/ruff check $(NB)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 $(NB)
	$(NBVAL) $(NB) $(PYTEST_FLAGS)
	$(BIN)/python scripts/build_book.py
	$(BIN)/pytest tests/test_browser.py -k "$(CHAPTER)" -p no:cacheprovider $(PYTEST_FLAGS)
	$(BIN)/python scripts/screenshot.py $(CHAPTER)

catalog: $(STAMP)
	$(BIN)/python -m attnlib.checks

clean:
	rm -rf _build .pytest_cache

distclean: clean
	rm -rf $(VENV) $(COLAB_VENV)

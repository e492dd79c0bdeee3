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

# What `make test` runs, in this order. Add a target here (and define it below, depending on
# $(STAMP)) to put it into the suite, e.g. `TEST_TARGETS += bench-quick`.
TEST_TARGETS := lint sync-check pytest nbval

.PHONY: help venv book test $(TEST_TARGETS) lint sync sync-check pytest nbval execute clean distclean

help:
	@echo "make book    build the book into $(HTML) (creates $(VENV) if needed)"
	@echo "make test    lint, set-up cells, pytest (library, checkers, widgets, book build, browser), nbval"
	@echo "make execute re-execute notebooks in place (NB=notebooks/03_x.ipynb for one)"
	@echo "make sync    rewrite every notebook's set-up cell from _config.yml"
	@echo "make lint    ruff over the library, tests, scripts and notebooks"
	@echo "make clean   remove _build (make distclean also removes $(VENV))"

# ---------------------------------------------------------------- environment

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed, found " + sys.version.split()[0] + ": run make PYTHON=python3.11 (or newer)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

venv: $(STAMP)

# ---------------------------------------------------------------- the book

book: $(STAMP)
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

# The library, checker and widget tests, the book build with -W and the browser tests
# (tests/test_book.py builds the book once per session).
pytest: $(STAMP)
	$(BIN)/pytest tests $(PYTEST_FLAGS)

# Strict notebook regression: every committed output must come back when the chapter re-runs.
nbval: $(STAMP)
	$(BIN)/pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		-p no:cacheprovider notebooks $(PYTEST_FLAGS)

# ---------------------------------------------------------------- for contributors

execute: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=600 $(NB)

sync: $(STAMP)
	$(BIN)/python scripts/sync_setup_cells.py

clean:
	rm -rf _build .pytest_cache

distclean: clean
	rm -rf $(VENV)

# sealchat — every target bootstraps what it needs; nothing has to run before it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The lock: exact versions of everything installed, tested together.
CONSTRAINTS := constraints.txt
STAMP  := $(VENV)/.installed

.PHONY: install run test lint lock clean help

help:
	@echo "make run      set up .venv and start sealchatd all on http://127.0.0.1:8080"
	@echo "make test     set up .venv with the test extras and run the whole suite"
	@echo "make install  set up .venv only"
	@echo "make lint     ruff, mypy and the import contracts"
	@echo "make lock     re-resolve constraints.txt (after changing pyproject dependencies)"

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "sealchat needs Python 3.11 or newer" or 0)'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/sealchatd all $(ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/lint-imports

lint: install
	$(BIN)/ruff check backend tui tests
	$(BIN)/ruff format --check backend tui tests
	$(BIN)/mypy
	$(BIN)/lint-imports

lock: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > $(CONSTRAINTS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

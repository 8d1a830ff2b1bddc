# sealchat — every target bootstraps what it needs; nothing has to run before it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The lock: exact versions of everything installed, tested together.
CONSTRAINTS := constraints.txt
STAMP  := $(VENV)/.installed
# The Ansible controller and linters live apart: ansible-lint pins many packages of its own.
AVENV  := .venv-ansible
ASTAMP := $(AVENV)/.installed
# Grafana's own dashboard schema (@grafana/schema, pinned in package-lock.json) for the tests.
GRAFANA_VALIDATE := monitoring/grafana/validate
GSTAMP := $(GRAFANA_VALIDATE)/node_modules/.installed
FUZZ_SECONDS ?= 300

.PHONY: install run chat server test lint lock clean help ansible-venv lint-ansible \
	fault-test security-test fuzz bench bench-smoke lab-test

help:
	@echo "make run           set up .venv and open the terminal client; starts the local server"
	@echo "                   (sealchatd all, http://127.0.0.1:8080) first if none answers;"
	@echo "                   ARGS=\"--home DIR\" for a second person on the same server"
	@echo "make server        set up .venv and run sealchatd all alone, in the foreground (ARGS: its options)"
	@echo "make test          set up everything and run the whole suite (lab excepted)"
	@echo "make install       set up .venv only"
	@echo "make lint          ruff, mypy and the import contracts"
	@echo "make lint-ansible  ansible-lint, playbook syntax checks, vagrant validate"
	@echo "make fault-test    the fault-injection suite alone, with its results table"
	@echo "make security-test the security suite alone"
	@echo "make fuzz          long fuzzing runs (atheris, schemathesis) and the deep secret scan"
	@echo "make bench         benchmarks against peers; writes bench/results/latest.json"
	@echo "make lab-test      the container lab cluster converged by Ansible (root, ~30 min)"
	@echo "make lock          re-resolve constraints.txt (after changing pyproject dependencies)"

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "sealchat needs Python 3.11 or newer" or 0)'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(ASTAMP): ansible/requirements-dev.txt
	$(PYTHON) -m venv $(AVENV)
	$(AVENV)/bin/python -m pip install --quiet -r ansible/requirements-dev.txt
	touch $(ASTAMP)

ansible-venv: $(ASTAMP)

$(GSTAMP): $(GRAFANA_VALIDATE)/package.json $(GRAFANA_VALIDATE)/package-lock.json
	npm ci --silent --no-audit --no-fund --prefix $(GRAFANA_VALIDATE)
	touch $(GSTAMP)

# The client, and the embedded server in the background when nothing answers on its address;
# the server outlives the client (its pid: ~/.local/share/sealchatd/sealchatd.pid).
run: install
	$(BIN)/sealchat --start-server $(ARGS)

# The old name of `make run`.
chat: run

server: install
	$(BIN)/sealchatd all $(ARGS)

test: install $(ASTAMP) $(GSTAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/lint-imports

fault-test: install
	$(BIN)/python -m pytest -m fault tests/fault -p no:cacheprovider -s $(PYTEST_ARGS)

security-test: install
	$(BIN)/python -m pytest -m security tests/security $(PYTEST_ARGS)

fuzz: install
	mkdir -p .fuzz/codec .fuzz/jwt
	$(BIN)/python tests/security/fuzz/fuzz_codec.py -max_total_time=$(FUZZ_SECONDS) .fuzz/codec
	$(BIN)/python tests/security/fuzz/fuzz_jwt.py -max_total_time=$(FUZZ_SECONDS) .fuzz/jwt
	SEALCHAT_FUZZ_EXAMPLES=100 $(BIN)/python -m pytest tests/security/test_openapi_fuzz.py -s
	$(BIN)/python -m tests.security.deep_scan

bench: install
	$(BIN)/python -m bench $(ARGS)

bench-smoke: install
	$(BIN)/python -m bench --smoke

lint-ansible: $(ASTAMP)
	$(BIN)/python -m pytest tests/deploy $(PYTEST_ARGS)

lab-test: install $(ASTAMP)
	$(BIN)/python -m pytest -m lab tests/lab -s $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check backend tui tests bench monitoring
	$(BIN)/ruff format --check backend tui tests bench monitoring
	$(BIN)/mypy
	$(BIN)/lint-imports

lock: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > $(CONSTRAINTS)

clean:
	rm -rf $(VENV) $(AVENV) $(GRAFANA_VALIDATE)/node_modules .pytest_cache .mypy_cache .ruff_cache

# Two commands matter: `make up` runs the whole system, `make test` runs the whole suite.
# Both create the virtual environment on first use; nothing has to be installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: up test lint bench-ingest clean-var help chromium

help:
	@echo "make up     - create .venv, install, start the whole system (wall at http://127.0.0.1:8000)"
	@echo "make test   - create .venv if needed and run the whole test suite (installs chromium for the browser tests when root)"
	@echo "make lint   - ruff"

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3-venv is missing; installing it with apt-get"; \
	  rm -rf $(VENV); apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

up: $(STAMP)
	$(BIN)/ioc up

# The browser tests (tests/browser, marker `browser`) drive Debian's chromium: installed here when
# missing and we are root; otherwise (or when apt-get fails, e.g. offline) they skip with the reason.
CHROMIUM ?= /usr/bin/chromium

chromium:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "chromium is missing: installing Debian's chromium for the browser tests"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
	    || echo "apt-get could not install chromium: the browser tests will be skipped"; \
	else \
	  echo "chromium is missing and we are not root: the browser tests will be skipped (run: sudo apt-get install -y chromium)"; \
	fi

# pytest exits 5 when it collected no tests: that is not a failure of the code under test.
test: $(STAMP) chromium
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

bench-ingest: $(STAMP)
	$(BIN)/ioc bench ingest --messages 20000 --workers 1 --json

lint: $(STAMP)
	$(BIN)/ruff check ioc ingest detectors feeds dashboards tests

clean-var:
	rm -rf var/

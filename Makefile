# Two commands matter: `make up` (whole system on loopback) and `make test` (lint, types, tests).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PKGS := -e libs/schemas -e libs/runtime -e libs/testing -e services/prober -e services/correlator \
        -e services/notifier -e services/reporter -e services/gateway -e cli
SRC := libs/schemas/src libs/runtime/src libs/testing/src services/prober/src services/correlator/src \
       services/notifier/src services/reporter/src services/gateway/src cli/src

.PHONY: up test check lint typecheck pytest install ferretdb system-deps

$(BIN)/fao: constraints.txt $(wildcard */*/pyproject.toml) cli/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/pip install -q -c constraints.txt $(PKGS) ruff mypy types-PyYAML uvloop aiosmtpd hypothesis schemathesis playwright pytest-xdist
	touch $@

install: $(BIN)/fao

ferretdb: install
	$(BIN)/fao dev build-ferretdb

up: install
	$(BIN)/fao dev up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy libs services cli tests bench

# Debian packages the reporter needs (WeasyPrint's Pango/HarfBuzz) and its tests use (pdftotext,
# pdftoppm): installed only when missing.
system-deps:
	ldconfig -p | grep -q libpangoft2-1.0 || (apt-get update && apt-get install -y libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0)
	command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null || (apt-get update && apt-get install -y poppler-utils)
	# The dashboard's browser test drives Debian's chromium (Playwright never downloads a browser).
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)

# Three workers (pytest-xdist), each running whole files, in the order fao.testing.plugin gives
# (the long scenarios first): most tests wait on real timers, so this halves the time on 2 cores.
pytest: install ferretdb system-deps
	$(BIN)/pytest -q -n 3 --dist loadfile --no-loadscope-reorder

check: lint typecheck pytest

test: check

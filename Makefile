# The two commands of the README. Each creates or reuses .venv and installs what it needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint chromium

demo: $(STAMP)
	$(BIN)/leanvision demo

test: $(STAMP) chromium
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# Debian's Chromium renders bench.html in a test; where it cannot be installed, that test skips.
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; } >/dev/null 2>&1 \
		|| echo "note: could not install chromium; the bench.html rendering test will be skipped"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

# --no-compile: byte-compiling all of torch, ray and nvidia's packages at install time took
# longer than installing them (1m43s vs ~3m20s here); Python compiles what it imports.
# A first install needs ~7 GB (torch 2.14.1 is a CUDA build); a full disk fails in one line.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || { free=$$(df -Pk . | awk 'NR==2 {print $$4}'); [ "$$free" -ge 7340032 ] \
		|| { echo "error: installing into $(CURDIR)/$(VENV) needs about 7 GB free; $$((free / 1024)) MB available" >&2; exit 2; }; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

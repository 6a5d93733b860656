# Two commands for a fresh machine: `make demo` and `make test`.
# Both create .venv with Python 3.12 and install the project with everything it needs.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.installed
# python3.12 on PATH, else a pyenv-installed 3.12 (pyenv's shim refuses when 3.12 is not the active version).
PYTHON312 := $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1 && { echo "$$p"; break; }; done)

.PHONY: demo test install bench study clean

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON312)" ]; then \
		echo "error: Python 3.12 was not found (tried python3.12 on PATH and ~/.pyenv/versions/3.12*)."; \
		echo "fix: install it (Debian/Ubuntu: 'sudo apt install python3.12 python3.12-venv'; pyenv: 'pyenv install 3.12') and run make again."; \
		exit 1; \
	fi
	@echo "using $(PYTHON312)"
	$(PYTHON312) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip >/dev/null
	$(VENV)/bin/python -m pip install -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/harmowam demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest

bench: $(STAMP)
	$(VENV)/bin/harmowam bench bus --arm so101 --json

# demonstrations -> HarmoWAM and ACT trained -> closed-loop evaluation (~1.5 h on 2 cores; docs/BENCHMARKS.md)
study: $(STAMP)
	bash scripts/study_pick_place.sh

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis

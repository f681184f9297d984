# skinlib: `make help` lists the targets. Every target creates .venv and installs into it first.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SKINLIB := $(VENV)/bin/skinlib
PROFILE ?= params/demo.yaml
STAMP := $(VENV)/.installed
# What JupyterLab rewrites on every save (the kernel's language_info, with its exact Python
# version): the nbstripout filter drops it, so opening and saving a notebook leaves git clean.
NBSTRIPOUT_EXTRA_KEYS := metadata.language_info

.PHONY: help install demo test test-fast lint format bench lab thesis clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev]"
	-git rev-parse --git-dir >/dev/null 2>&1 && $(VENV)/bin/nbstripout --install --attributes .gitattributes \
	  && git config filter.nbstripout.extrakeys "$(NBSTRIPOUT_EXTRA_KEYS)"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install skinlib with its dev tools

demo: $(STAMP) ## run the whole study on the embedded SynthDerm dataset (PROFILE=params/demo.yaml)
	$(SKINLIB) pipeline --profile $(PROFILE)

# The quick tests run on WORKERS pytest-xdist processes (WORKERS=0: one process, for a
# debugger). The slow ones (training, the smoke pipeline, subprocess jobs, browsers) run in one
# process: each already keeps both cores busy (two torch threads, two jobs, a kernel beside
# pytest): on two workers the whole suite took 11 min 11 s, in one process 5 min 50 s.
WORKERS ?= 2

test: $(STAMP) ## the whole suite: quick tests on two workers, then the slow ones; the slowest listed
	$(PY) -m pytest -n $(WORKERS) -m "not slow" --durations=15; quick=$$?; \
	$(PY) -m pytest -m slow --durations=30; slow=$$?; \
	exit $$(( quick || slow ))

test-fast: $(STAMP) ## the edit-test loop: every test not marked slow, on two workers
	$(PY) -m pytest -n $(WORKERS) -m "not slow"

lint: $(STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP) ## print throughput figures (loader, generator, training; GPU end-to-end vs compute where CUDA is present)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lab: $(STAMP) ## start JupyterLab with the project's kernel registered as "skinlib"
	$(PY) -m pip install -q -e ".[dev,lab]"
	$(PY) -m ipykernel install --user --name skinlib --display-name "Python (skinlib)"
	$(VENV)/bin/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)  # containers often run as root

thesis: ## build thesis/main.pdf with latexmk and BibTeX (after `make demo`)
	@command -v latexmk >/dev/null && command -v bibtex >/dev/null || { echo "latexmk or bibtex not found: install TeX Live (e.g. apt-get install latexmk texlive-latex-extra texlive-bibtex-extra)"; exit 1; }
	cd thesis && latexmk -pdf -bibtex -interaction=nonstopmode -halt-on-error main.tex

clean: ## remove caches and build files (never experiments/ or figures/)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

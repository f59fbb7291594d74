# seqcli: `make demo` trains and scores the built-in task; `make test` runs lint and tests.
SHELL := bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/dates

.PHONY: install demo test test-slow lint format typecheck bench bench-time-to-quality clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: an open-ended requirement would pull a CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0" || $(BIN)/pip install --quiet "torch>=2.4,<2.14"
	$(BIN)/pip install --quiet -e ".[dev,serve]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/seqcli data toy --out data/dates
	rm -rf $(RUN_DIR)
	$(BIN)/seqcli train --config configs/dates.toml --out $(RUN_DIR)
	$(BIN)/seqcli translate $(RUN_DIR) --input data/dates/test.src --output $(RUN_DIR)/test.hyp
	@echo "== test split (1000 dates never seen in training) =="
	$(BIN)/seqcli evaluate --ref data/dates/test.tgt $(RUN_DIR)/test.hyp
	@echo "== examples =="
	@head -n 8 data/dates/test.src | $(BIN)/seqcli translate $(RUN_DIR) | paste <(head -n 8 data/dates/test.src) - | sed 's/\t/  ->  /'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache  # the layers in pyproject.toml [tool.importlinter]

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy seqcli
	$(BIN)/mypy --explicit-package-bases experiments benchmarks

# Two workers: most tests wait on a one-thread seqcli process, so two run side by side on 2 cores.
test: lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadscope

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

# seqcli beside JoeyNMT 2.3.0 on Multi30k de-en (installs JoeyNMT into runs/joeynmt-venv; ~35 min on 2 CPU cores)
SHARED_DATA ?= ../shared/data
bench: $(STAMP)
	$(BIN)/python benchmarks/compare_joeynmt.py --data $(SHARED_DATA)/multi30k --steps 300

# the CPU recipe beside JoeyNMT 2.3.0 for the same wall-clock (three rows of 20 minutes, one after the other)
bench-time-to-quality: $(STAMP)
	$(BIN)/python benchmarks/time_to_quality.py --data $(SHARED_DATA)/multi30k --minutes 20

clean:
	rm -rf $(VENV) runs *.egg-info

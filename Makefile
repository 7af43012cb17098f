# The two commands: `make demo` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Never let the working directory shadow installed packages (e.g. `warnings/`).
export PYTHONSAFEPATH := 1

.PHONY: demo test install clean bench services services-down

# Local real services for the integration tests (deploy/local/README.md); `make demo` needs none.
ZHENGAI_PG_PORT    ?= 15432
ZHENGAI_KAFKA_PORT ?= 19092
export ZHENGAI_PG_PORT ZHENGAI_KAFKA_PORT
export ZHENGAI_TEST_PG_URL ?= postgresql+psycopg2://zhengai:zhengai@127.0.0.1:$(ZHENGAI_PG_PORT)/zhengai
export ZHENGAI_TEST_KAFKA  ?= 127.0.0.1:$(ZHENGAI_KAFKA_PORT)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/zhengai demo $(DEMO_ARGS)

test: $(STAMP) services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks print figures against a baseline measured in the same run; they assert nothing.
bench: $(STAMP) services
	$(BIN)/python bench/bench_evaluator.py
	$(BIN)/python bench/bench_kinds.py
	$(BIN)/python bench/bench_store.py
	$(BIN)/python bench/bench_stream.py

services:
	deploy/local/services.sh up

services-down:
	deploy/local/services.sh down

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info zhengai-demo-out

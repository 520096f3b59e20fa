# pbft — the two commands of the README are `make run` and `make test`; both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-slow lint bench soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/pbft run data/input1.csv

# Exit code 5 (no tests collected) is a failure, never a silent pass.
test: install
	$(BIN)/python -m pytest -q -m "not slow" -p no:cacheprovider; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests collected" >&2; exit 1; fi; exit $$rc

test-slow: install
	$(BIN)/python -m pytest -q -m slow -p no:cacheprovider

lint: install
	$(BIN)/ruff check pbft_core thresh_sig cli tests

# Every benchmark; tables on stdout, JSON (and the SmallBank plot) under .pbft/bench/.
bench: install
	mkdir -p .pbft/bench
	$(BIN)/python -m thresh_sig bench
	$(BIN)/pbft bench scale --f 1,2,4,8 --json .pbft/bench/scale.json
	$(BIN)/pbft bench smallbank --clients 64 --duration 30 \
	  --json .pbft/bench/smallbank.json --plot .pbft/bench/smallbank.png

# 10,000 simulated seeds (f=2, every fault): summary JSON and failing traces under .pbft/soak/.
SOAK_SEEDS ?= 10000
SOAK_CRYPTO ?= sim
soak: install
	$(BIN)/python -m cli.simulate --seeds $(SOAK_SEEDS) --crypto $(SOAK_CRYPTO) \
	  --json .pbft/soak/summary.json --trace-dir .pbft/soak/traces

clean:
	rm -rf $(VENV) .pbft build *.egg-info

# Two commands for a new user: `make train` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= --durations=15
# Two pytest workers: most of a test's time is single-threaded (TensorFlow's imports and
# graph tracing), so two of them share two cores well. Whole files go to one worker, so a
# module's expensive fixtures (the benchmark's smoke run, the perf report) are built once.
# (--dist loadgroup would be finer, but pytest-xdist 3.8 cannot group tests under pytest
# 9.2.) PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

.PHONY: install train test test-fast browser-deps real-data-deps clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

train: install
	$(PY) -m training.run --disc simple $(ARGS)

# The browser test drives Debian's chromium; install it when it is missing and we may.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found and cannot install it (not root): browser tests will be skipped"; fi; }

# The real-instrument dataset (tfgan/data/instruments.py) renders Debian's FluidR3 GM
# soundfont with fluidsynth. apt-get update runs here only when something is installed.
real-data-deps:
	@{ command -v fluidsynth >/dev/null 2>&1 && [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fluidsynth fluid-soundfont-gm >/dev/null; \
	  else echo "fluidsynth or its soundfont not found and cannot install it (not root): instrument-dataset tests will be skipped"; fi; }

test: install browser-deps real-data-deps
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest $(XDIST) -m "not slow and not browser" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

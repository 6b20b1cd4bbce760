# The two commands a new user needs: `make plan` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The one Python minor the program runs on: the dynamic providers' state is pickled (dill) by the
# Python that ran `pulumi up`, and only that minor reads it back (pulumi#2900). The workflows read
# the same file (actions/setup-python's python-version-file).
PYTHON_MINOR := $(strip $(shell cat .python-version))
STACK ?= dev
# Debian packages the tests need, one list per area (installed with apt when running as root).
APT_LISTS := $(wildcard tests/apt-packages/*.txt)

.PHONY: plan test test-fast mutants apt caches demo demo-down readme bench clean

# The interpreter checked is the venv's when it exists (a venv made by another minor is refused too),
# else $(PYTHON), before the venv is made from it.
$(VENV)/.runtime: requirements.txt .python-version
	@py="$$(test -x $(PY) && echo $(PY) || echo $(PYTHON))"; \
	found="$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"; \
	if [ "$$found" != "$(PYTHON_MINOR)" ]; then \
	  echo "error: Python $(PYTHON_MINOR) required (.python-version), but $$py is $${found:-not a working Python}." >&2; \
	  echo "  The dynamic providers' state is pickled by the Python that ran pulumi up, and only that minor" >&2; \
	  echo "  reads it back: refresh/destroy would fail on another one (pulumi#2900)." >&2; \
	  echo "  Fix: install Python $(PYTHON_MINOR) (Debian 12: apt install python3; or pyenv install $(PYTHON_MINOR))" >&2; \
	  echo "  and run make PYTHON=python$(PYTHON_MINOR) ...; a .venv made by another minor: rm -rf $(VENV) first." >&2; \
	  exit 1; \
	fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## plan: evaluate the real program offline for STACK (default dev) -> build/plan/
plan: $(VENV)/.runtime
	$(PY) -m scripts.tools.plan --stack $(STACK) --out build/plan

## apt: install the Debian packages the tests need (root only; otherwise say what is missing)
apt:
	@pkgs="$$(cat $(APT_LISTS) /dev/null | sed 's/#.*//' | xargs -r)"; \
	[ -n "$$pkgs" ] || exit 0; \
	missing="$$(for p in $$pkgs; do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done | xargs -r)"; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages (run as root or install them): $$missing"; exit 1; fi; \
	echo "apt-get install $$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null

## caches: build (once) the cached Debian test root, the pinned code-server and the Go programs, with progress.
## They live outside the clone in $${HCS_CACHE_DIR:-/var/cache/hardened-code-server}.
caches: $(VENV)/.dev apt
	$(PY) -m scripts.tools.testroot
	$(PY) -m scripts.tools.code_server_cache
	$(PY) -m scripts.tools.go_cache

## demo: the whole stack running on this machine (booted VM, containers, front proxy); prints how to use it.
## RELEASE=12 boots a Debian 12 VM instead of Debian 13.
demo: $(VENV)/.dev apt caches
	$(PY) -m scripts.tools.demo up $(if $(RELEASE),--release $(RELEASE))

## demo-down: remove everything `make demo` made (processes, VM, namespaces, its directory)
demo-down: $(VENV)/.dev
	$(PY) -m scripts.tools.demo down

## test: install everything the tests need and run the whole suite (slow tests included)
test: $(VENV)/.dev apt caches
	$(VENV)/bin/ruff check --select F,E9 __main__.py components scripts tests
	$(PY) -m pytest -c tests/pytest.ini tests
	$(PY) -m scripts.tools.mutants

## mutants: weaken each security control of tests/mutants.txt in turn; a test must catch every one
mutants: $(VENV)/.dev apt caches
	$(PY) -m scripts.tools.mutants

## test-fast: only the fast tests (no real root, no browser)
test-fast: $(VENV)/.dev
	$(VENV)/bin/ruff check --select F,E9 __main__.py components scripts tests
	$(PY) -m pytest -c tests/pytest.ini tests -m "not slow"

## readme: regenerate the docs' generated sections (docs/configuration.md, the posture in docs/security-model.md)
readme: $(VENV)/.runtime
	$(PY) -m scripts.tools.readme

## bench: the measurements quoted in docs/testing.md (FortiOS requests, converge times, IDE latency, the DMZ hop's mutual TLS, a team's plan)
bench: $(VENV)/.dev apt caches
	$(PY) -m scripts.tools.bench_fortios
	$(PY) -m scripts.tools.bench_converge
	$(PY) -m scripts.tools.bench_livepath
	$(PY) -m scripts.tools.bench_hop
	$(PY) -m scripts.tools.bench_plan

clean:
	rm -rf build $(VENV)

# Two commands on a fresh machine with python3, pip and make: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test install lock clean bench bench-prefill bench-prereview bench-exchange \
        system-packages debian-packages

# Debian packages: chromium for the suite (the preview page's browser test), wrk for the prefill,
# pre-review and exchange benchmarks' load. Installed when missing; that needs root (CI and the
# dev machines are).
APT := DEBIAN_FRONTEND=noninteractive apt-get -qq -o=Dpkg::Use-Pty=0

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

system-packages:
	@$(MAKE) --no-print-directory debian-packages PACKAGES=chromium

debian-packages:
	@missing=$$(for p in $(PACKAGES); do command -v $$p >/dev/null || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(APT) install -y --no-install-recommends $$missing >/dev/null 2>&1 || \
	  { $(APT) update && $(APT) install -y --no-install-recommends $$missing; } || \
	  { echo "could not install $$missing: run 'apt-get install $$missing' as root"; exit 1; }; \
	fi

demo: $(STAMP)
	$(BIN)/huiliu demo

test: $(STAMP) system-packages
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench_backflow --scale 1000000

bench-prefill: $(STAMP)
	@$(MAKE) --no-print-directory debian-packages PACKAGES=wrk
	$(BIN)/python -m benchmarks.bench_prefill --scale 1000000

# 智能辅助审批 (issue 17 §4): pre-review beside the prefill at 16 connections, on a world kept by
# `python -m benchmarks.bench_prefill --scale 1000000 --work $(BENCH_WORK)` (refused without one)
BENCH_WORK ?= /tmp/pf1m
bench-prereview: $(STAMP)
	@$(MAKE) --no-print-directory debian-packages PACKAGES=wrk
	$(BIN)/python -m benchmarks.bench_prereview --work $(BENCH_WORK)

# 全国通办: three nodes and the exchange on this machine, local vs cross-node prefill, both suites
bench-exchange: $(STAMP)
	@$(MAKE) --no-print-directory debian-packages PACKAGES=wrk
	$(BIN)/python -m benchmarks.bench_exchange_prefill --scale 100000

# Regenerate the lock after changing pyproject.toml dependencies (exact versions of everything).
lock:
	$(BIN)/python -m pip freeze --all --exclude-editable | grep -v '^-e ' > requirements.lock

clean:
	rm -rf $(VENV) data

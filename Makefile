# virtops.compute — the two commands a newcomer needs: `make demo` and `make test`.
# Everything runs as root on Debian/Ubuntu: set-up installs packages and starts libvirtd.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/.cache/collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: help setup guest demo test sanity lint galaxy docs unit test-core-lowest integration lab-up lab-down lab-status bench build clean

help:
	@echo "make demo         set up this machine and boot a demo server on localhost"
	@echo "make test         set up, then sanity + unit + integration tests (what CI runs)"
	@echo "make unit | sanity | lint | galaxy | docs | integration | bench | build"
	@echo "make test-core-lowest   unit + two playbook tests with the lowest supported ansible-core"
	@echo "make lab-up N=2 | lab-status | lab-down   a multi-host lab on this machine"

setup:
	@bash scripts/setup.sh

guest: setup
	@$(PY) tests/fixtures/guest/build_guest.py

demo: setup guest
	@$(PY) scripts/demo.py

test: setup guest
	@$(MAKE) --no-print-directory sanity
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory galaxy
	@$(MAKE) --no-print-directory docs
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory test-core-lowest
	@$(MAKE) --no-print-directory integration

sanity:
	@bash scripts/sanity.sh

lint:
	$(VENV)/bin/ansible-lint --profile production roles playbooks

galaxy:
	@bash scripts/galaxy.sh

# The docsite in .cache/docsite/html (guides from docs/*.md, every plugin and role page).
docs:
	@bash scripts/docs.sh

unit:
	$(PYTEST) tests/unit -q

# .venv has the highest ansible-core of requirements.txt's range, which every other target uses;
# this runs the unit suite and a boot+delete and a migrate/resize+confirm+revert through the
# playbooks with the lowest, in .cache/venv-core-lowest (CONTRIBUTING.md, Tests).
CORE_LOWEST_VENV := .cache/venv-core-lowest
CORE_LOWEST_PLAYBOOK_TESTS := \
	tests/integration/test_delete.py::test_delete_removes_the_server_wherever_it_is_and_keeps_the_base \
	tests/integration/test_migrate.py::test_playbooks_migrate_confirm_resize_revert
test-core-lowest: guest
	@bash scripts/setup.sh --core-lowest
	@$(CORE_LOWEST_VENV)/bin/ansible --version | head -n1
	$(CORE_LOWEST_VENV)/bin/python -m pytest -p no:cacheprovider tests/unit -q
	VIRTOPS_TEST_VENV=$(CORE_LOWEST_VENV) $(CORE_LOWEST_VENV)/bin/python -m pytest -p no:cacheprovider \
	  -q -x --durations=5 $(CORE_LOWEST_PLAYBOOK_TESTS)

integration:
	$(PYTEST) tests/integration -q -x --durations=15

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

build: setup
	$(VENV)/bin/ansible-galaxy collection build --force --output-path .cache/build .

N ?= 2
lab-up: setup
	tests/lab/lab up $(N)
lab-down:
	tests/lab/lab down
lab-status:
	tests/lab/lab status

clean: lab-down
	rm -rf .cache/sanity .cache/build .cache/galaxy .cache/docsite tests/output

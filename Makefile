# Newcomer commands: `make demo` and `make test`; each installs what it needs first.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.ceal-installed
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test production-test bench validate dev clean

install: $(STAMP)

# mmcv 2.1.0 exists only as source on PyPI for this Python; building it with its
# CPU ops takes ~9 min on 2 cores the first time, seconds once pip has the wheel
# in its cache. mmdet3d 1.4.0 needs the full mmcv (mmcv-lite cannot import it).
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip<26" 
	$(PIP) install -q "setuptools<80" wheel ninja "numpy<2"
	$(PIP) install -q torch==2.13.0
	MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=2 $(PIP) install --no-build-isolation mmcv==2.1.0
	$(PIP) install -q mmdet==3.2.0 mmdet3d==1.4.0
	$(PIP) install -q -e ".[dev]"
	$(PY) -c "import mmcv, mmdet, mmdet3d, torch, dagster, duckdb; from mmcv.ops import Voxelization; print('installed: torch', torch.__version__, 'mmcv', mmcv.__version__, 'mmdet3d', mmdet3d.__version__, 'dagster', dagster.__version__, 'duckdb', duckdb.__version__)"
	touch $@

demo: install
	$(VENV)/bin/ceal demo

# vulture: code without a product caller (tests do not count). 60 is the confidence
# vulture gives every unused function, method, class and attribute (it cannot rule
# out dynamic use); above 60 it reports only unused imports and unreachable code.
# .ci/vulture_allowlist.py names the framework entry points it cannot see.
test: install
	$(PY) -m pytest -q ceal_pipeline_tests
	$(VENV)/bin/dagster definitions validate -w workspace.yaml
	$(VENV)/bin/vulture ceal_pipeline .ci/vulture_allowlist.py --min-confidence 60

# The production topology on this machine: PostgreSQL (Debian's package, installed
# here when missing and we are root), a code server, dagster-webserver and
# dagster-daemon as separate processes on docker/dagster.yaml; a round launched
# through the webserver's GraphQL API and one opened by the schedule, each carried
# to the export by the sensors. Prints one JSON line; ~10 min on 2 cores.
production-test: install
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  test "$$(id -u)" = 0 || { echo "install Debian's postgresql package (as root: apt-get install -y postgresql)"; exit 1; }; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; }
	$(PY) .ci/production_round.py $(CURDIR)/.ceal/production-test

bench: install
	$(VENV)/bin/ceal bench sampling --frames 10000000 --json
	$(VENV)/bin/ceal bench mc --json
	$(VENV)/bin/ceal bench round --frames 20000 --json
	$(VENV)/bin/ceal bench catalog --frames 1000000 --json

# The UI and the daemon (nightly schedule, shard and round sensors) on one deployment folder,
# CEAL_HOME (default .ceal): its ceal.yaml (written by `ceal init`; `ceal demo` writes .ceal/demo/ceal.yaml),
# its state, and its Dagster instance in CEAL_HOME/dagster_home. dagster.yaml carries the gpu/duckdb pool
# limits, run monitoring and run retries, so it goes there. `make dev CEAL_HOME=$PWD/.ceal/demo` browses the demo.
# `exec`: dagster dev replaces the recipe's shell, so the SIGTERM that make passes to its child on
# `kill <make>` reaches dagster dev, which stops its webserver, daemon and code server (a shell would die alone).
CEAL_HOME ?= $(CURDIR)/.ceal
dev: install
	home=$(abspath $(CEAL_HOME)); mkdir -p $$home/dagster_home; \
	  [ -f $$home/dagster_home/dagster.yaml ] || cp dagster.yaml $$home/dagster_home/dagster.yaml; \
	  CEAL_HOME=$$home DAGSTER_HOME=$$home/dagster_home exec $(VENV)/bin/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .ceal .pytest_cache

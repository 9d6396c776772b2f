# kubemr — the two commands a new machine needs are `make demo` and `make test`.
# Everything else here is what those two call, plus the developer loop.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all crd demo test test-fast test-kind test-slow lint typecheck importlint proto proto-check venv clean bench \
	bench-faults bench-lockwait bench-s3 bench-scale monitoring monitoring-check prometheus test-prometheus s3-server browser docs-screenshot example-data bench-peers bench-userapps bench-terasort

all: test

# The install also builds the native core (runtime/kubemr/_native.c, kubemr.native) where a C
# compiler exists; without one kubemr runs its pure-Python path and tests/unit/test_native.py
# fails, so `make test` on a machine without gcc says what is missing.
$(STAMP): pyproject.toml runtime/kubemr/_native.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,cluster,operator,submit,mrjob]'
	@$(BIN)/python -c 'import kubemr._native' 2>/dev/null \
	  || echo "WARNING: the native core (kubemr._native) was not built (no C compiler?): pure-Python path"
	touch $(STAMP)

venv: $(STAMP)

## demo: run examples/wordcount-job.yaml locally over the Gutenberg books
demo: $(STAMP)
	$(BIN)/kubemr run examples/wordcount-job.yaml --top 10

## proto: regenerate the committed gRPC/protobuf stubs
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I runtime \
	  --python_out=runtime --pyi_out=runtime --grpc_python_out=runtime \
	  runtime/kubemr/proto/mapreduce.proto

## proto-check: fail if the committed stubs differ from what `make proto` makes
proto-check: $(STAMP)
	@tmp=$$(mktemp -d); cp -r runtime/kubemr/proto $$tmp/before; \
	$(MAKE) --no-print-directory proto >/dev/null; \
	if ! diff -r -x __pycache__ $$tmp/before runtime/kubemr/proto >/dev/null; then \
	  echo "generated stubs drifted from runtime/kubemr/proto/mapreduce.proto: run 'make proto' and commit"; \
	  diff -r -x __pycache__ $$tmp/before runtime/kubemr/proto | head -40; rm -rf $$tmp; exit 1; fi; \
	rm -rf $$tmp; echo "proto stubs up to date"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy -p kubemr -p kubemr_operator -p kubemr_client

## crd: regenerate crds/mapreducejob.yaml from the runtime's spec model
crd: $(STAMP)
	$(BIN)/python -m kubemr_operator.crd
	cp crds/mapreducejob.yaml charts/kubemr/crds/mapreducejob.yaml

importlint: $(STAMP)
	$(BIN)/lint-imports

## prometheus: Debian's Prometheus (the monitoring test scrapes a local job with it)
prometheus:
	@if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then \
	  echo "installing Debian's prometheus package"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends prometheus >/dev/null; \
	fi

## browser: Debian's chromium and chromedriver (the status page tests drive them with Selenium)
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "installing Debian's chromium and chromium-driver packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver >/dev/null; \
	fi

## docs-screenshot: docs/statuspage.png, the status page of the wordcount example while it runs
docs-screenshot: $(STAMP) browser
	PYTHONPATH=tests/support $(BIN)/python tests/support/docshot.py docs/statuspage.png

## monitoring: regenerate the chart's dashboards and alert rules (charts/kubemr) and the table of docs/metrics.md
monitoring: $(STAMP)
	$(BIN)/python charts/monitoring/generate.py

monitoring-check: $(STAMP)
	$(BIN)/python charts/monitoring/generate.py --check

## example-data: gzip copies of the sample books in out/books-gz (examples/wordcount-gzip-job.yaml)
example-data:
	mkdir -p out/books-gz
	for f in ../shared/data/gutenberg/*.txt; do gzip -9nc "$$f" > "out/books-gz/$$(basename "$$f").gz"; done

## s3-server: build .cache/bin/minio (the S3 tests' server) from its Go module, unless the
## pinned version is already there (a cold build takes minutes: a prerequisite, not a fixture)
s3-server: $(STAMP)
	$(BIN)/python tests/support/s3server.py build

## test: the whole default suite (lint, types, layering, proto drift, every test tier but
## `slow`); tests/support/suite.py builds the kind tier's images in the background at low
## priority while the default tier runs (its cluster tests and the others at once), and
## runs the kind tier last (its cluster lives only while its tests run)
test: lint typecheck importlint proto-check monitoring-check prometheus browser
	$(BIN)/python tests/support/suite.py --make "$(MAKE)" --pytest $(BIN)/pytest \
	  --log .cache/kind-build.log -- $(PYTEST_ARGS)

## test-slow: only the slow tier (full matrices, many seeds)
test-slow: $(STAMP)
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

## test-prometheus: only the test that scrapes a running job with a real Prometheus
test-prometheus: $(STAMP) prometheus
	$(BIN)/pytest -m prometheus $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/wordcount.py

## bench-peers: Dask bag and PySpark for the benchmarks' comparisons, in their own virtualenv
## (.cache/bench-venv), never in the project's; PySpark also needs a Java 17 runtime on PATH
PEERS_VENV := .cache/bench-venv
$(PEERS_VENV)/.installed:
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/pip install --quiet 'dask[bag]' pyspark
	touch $@

bench-peers: $(PEERS_VENV)/.installed

## bench-userapps: plain user apps (wordcount, inverted index, grep) on kubemr against the
## same functions alone in 2 processes, on Dask bag and on PySpark RDD (docs/benchmarks.md)
bench-userapps: $(STAMP) bench-peers
	$(BIN)/python bench/userapps.py --json bench/results/userapps.json

## bench-terasort: 1 GiB TeraSort-style sort, validated, against GNU sort and PySpark
bench-terasort: $(STAMP) bench-peers
	$(BIN)/python bench/terasort.py --json bench/results/terasort.json

## bench-lockwait: reducer lock wait and buffer occupancy, default vs a coarse lock
bench-lockwait: $(STAMP)
	$(BIN)/python bench/lockwait.py

## bench-faults: the same job healthy, with a worker slowed 10x (speculation on/off) and
## with a quarter of the workers killed mid-map (docs/benchmarks.md)
bench-faults: $(STAMP)
	$(BIN)/python bench/faults.py --json bench/results/faults.json

## bench-s3: split read throughput from a local MinIO against local disk (docs/benchmarks.md)
bench-s3: s3-server
	$(BIN)/python bench/s3read.py --json bench/results/s3read.json

## bench-scale: the master at the seed's scale (M = 200,000, R = 5,000, 2,000 machines) and the
## paper's sort experiments, simulated over the real scheduler; kubemr plan for 12.8 TB; then
## the operator creating and tracking a 1,000-pod job on the local control plane's simulated
## (kwok) nodes (it starts localkube unless one runs, and stops what it started)
bench-scale: $(STAMP) cluster-build
	$(BIN)/python bench/scale.py --json bench/results/scale.json
	$(BIN)/python bench/operatorscale.py --json bench/results/operatorscale.json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

-include tests/cluster/cluster.mk
-include tests/kind/kind.mk

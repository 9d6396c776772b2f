# The kind tier (tests/kind, docs/kind.md). Included by the top-level Makefile.

KINDCLUSTER := PYTHONPATH=tests/kind:tests/cluster $(BIN)/python -m kindcluster

.PHONY: kind-build kind-up kind-examples kind-down kind-status

## kind-build: the node image (Kubernetes v1.36.3, offline from source) and the kubemr
## image, each cached by its inputs under ~/.cache/kubemr/kind (cold: tens of minutes)
kind-build: $(STAMP)
	$(KINDCLUSTER) build

## kind-up: the cluster of kind-config.yaml with the chart installed; .kind/kubeconfig
kind-up: kind-build cluster-build
	$(KINDCLUSTER) up

## kind-examples: kind-up, then .kind/data laid out and the chart's job defaults set so that
## every examples/*-job.yaml runs unmodified (`kubectl apply -f examples/wordcount-job.yaml`)
kind-examples: kind-build cluster-build
	$(KINDCLUSTER) examples

## kind-down: delete the cluster; stop our dockerd; fail if anything is left
kind-down: $(STAMP)
	$(KINDCLUSTER) down

kind-status: $(STAMP)
	$(KINDCLUSTER) status

## test-kind: the kind tier alone (creates and deletes its cluster unless one is up)
test-kind: kind-build s3-server cluster-build
	$(BIN)/pytest -m kind tests/kind $(PYTEST_ARGS)

# The local Kubernetes of the cluster tests (tests/cluster, docs/cluster.md).
# Included by the top-level Makefile.

LOCALKUBE := PYTHONPATH=tests/cluster $(BIN)/python -m localkube

.PHONY: cluster-build cluster-up cluster-down cluster-status

## cluster-build: build .cluster/bin (etcd, kube-*, kubectl, helm) unless the Go pins are unchanged
cluster-build: $(STAMP)
	$(LOCALKUBE) build

## cluster-up: start etcd, the control plane, the node agent and the operator (working tree)
cluster-up: $(STAMP)
	$(LOCALKUBE) up
	$(BIN)/python tests/operator/localoperator.py start

## cluster-down: stop everything and check no process, netns, veth or bridge is left
cluster-down: $(STAMP)
	$(BIN)/python tests/operator/localoperator.py stop
	$(LOCALKUBE) down

cluster-status: $(STAMP)
	$(LOCALKUBE) status

# `make test` runs the cluster tests; the first (cold) Go build takes minutes, longer
# than one test's timeout, so tests/support/suite.py builds it before any test rather
# than a fixture.

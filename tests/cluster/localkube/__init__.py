"""localkube: a real, local Kubernetes control plane and a process-based node agent.

This is kubemr's test harness, not part of the product. It builds kube-apiserver,
kube-controller-manager, kube-scheduler, etcd, kubectl and helm from Go modules
(``tests/cluster/go.mod``), starts them the way envtest does, and runs a node agent
that executes pods as local processes in their own network namespaces. See
``docs/cluster.md`` for how it works and what it does not model.

Entry points: ``python -m localkube up|down|status`` and the pytest fixtures in
:mod:`localkube.fixtures`.
"""

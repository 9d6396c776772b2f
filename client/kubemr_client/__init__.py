"""``kubemr submit``, ``status``, ``logs`` and ``delete``: jobs on a cluster, from a laptop.

A thin client over the Kubernetes API with the current kubeconfig (lightkube). It packs
the user's code with :mod:`kubemr.bundles`, writes the manifests of
:mod:`kubemr_client.submission` (pure), and follows the job's status as the operator
writes it. The runtime knows nothing of Kubernetes: this package adds its commands to
the runtime's ``kubemr`` command line (:data:`kubemr.cli.Extension`).
"""

"""kubemr's kind tier: a Docker engine, an offline-built kind node image, the cluster.

``python -m kindcluster build|up|down|status`` (``make kind-build``, ``make kind-up``,
``make kind-down``) and the fixtures of tests/kind use the same functions. docs/kind.md
says what is built from what.
"""

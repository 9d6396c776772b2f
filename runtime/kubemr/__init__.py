"""kubemr: MapReduce on Kubernetes.

The public surface is small: the job-spec model (:mod:`kubemr.spec`), the app
contract (:mod:`kubemr.apps`) and the ``kubemr`` command line (:mod:`kubemr.cli`).
Everything else is internal and may change freely.
"""

__version__ = "0.1.0"

"""kubemr's Kubernetes operator: the MapReduceJob CRD and (next) its kopf reconciler.

It imports the runtime's job-spec model (:mod:`kubemr.spec`) and nothing else of the
runtime: one schema, one validation.
"""

"""The MapReduceJob CustomResourceDefinition, generated from the runtime's spec model.

One schema: the OpenAPI v3 schema in ``crds/mapreducejob.yaml`` is derived from
:class:`kubemr.spec.JobSpec` (field names, types, enums, minimums, maximums, patterns,
descriptions), plus what only the API server can express: the "exactly one of
app.builtin and app.module" (and of app.bundle.configMap and app.bundle.url) rules in CEL,
the status subresource, printer columns, the
short name and category. ``python -m kubemr_operator.crd`` rewrites the file; a test
fails when the committed file drifts from the model.

Defaults are not copied into the CRD: the model applies them, in one place, so a stored
object holds what its author wrote.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from kubemr import contract, spec

GROUP = contract.GROUP
VERSION = contract.VERSION
PLURAL = contract.PLURAL
CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "mapreducejob.yaml"

_KEEP = {
    "type",
    "description",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "minProperties",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "x-kubernetes-validations",
}
_RENAME = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Turn a pydantic JSON schema node into a Kubernetes structural schema node."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:  # Optional[X]: X (absence, not null, means unset)
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if sorted(o.get("type", "") for o in options) == ["integer", "string"]:
            options = [{"x-kubernetes-int-or-string": True}]
        if len(options) != 1:
            raise ValueError(f"cannot express {node} in a structural schema")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return _structural({**options[0], **rest}, defs)
    out: dict[str, Any] = {}
    for name, value in node.items():
        key = _RENAME.get(name, name)
        if key not in _KEEP:
            continue
        if key == "properties":
            out[key] = {name: _structural(v, defs) for name, v in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = _structural(value, defs) if isinstance(value, dict) else value
        elif key == "exclusiveMinimum":  # OpenAPI v3.0: a boolean beside minimum
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "description":
            out[key] = " ".join(str(value).split()).replace("``", "`")
        else:
            out[key] = value
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]  # structural schemas prune unknown fields already
    return out


class _PlainDumper(yaml.SafeDumper):
    """``yaml.safe_dump`` without anchors and aliases (a shared object is written again)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def spec_schema() -> dict[str, Any]:
    """The OpenAPI v3 schema of ``spec``."""
    raw = spec.JobSpec.model_json_schema(by_alias=True)
    schema: dict[str, Any] = _structural(raw, raw.get("$defs", {}))
    app_rules = [
        {
            "rule": "has(self.builtin) != has(self.module)",
            "message": "exactly one of app.builtin and app.module must be set",
        },
        {
            "rule": f"!has(self.module) || self.module.matches(r'{spec.MODULE_PATTERN}')",
            "message": "app.module must be 'package.module:Attr' or 'file.py:Attr'",
        },
    ]
    app = schema["properties"]["app"]
    app["x-kubernetes-validations"] = app_rules
    app["properties"]["bundle"]["x-kubernetes-validations"] = [
        {
            "rule": "has(self.configMap) != has(self.url)",
            "message": "exactly one of app.bundle.configMap and app.bundle.url must be set",
        }
    ]
    # A step's app: the same rules, the module's as a schema pattern (a CEL regex on every
    # one of 64 steps exceeds the API server's CEL cost budget).
    step_app = schema["properties"]["steps"]["items"]["properties"]["app"]
    step_app["x-kubernetes-validations"] = [dict(app_rules[0])]
    step_app["properties"]["module"]["pattern"] = spec.MODULE_PATTERN
    schema["properties"]["output"]["x-kubernetes-validations"] = [
        {
            "rule": "!has(self.format) || self.format != 'records' || "
            "!has(self.compression) || self.compression == 'none'",
            "message": "compression: records output is not compressed (set none)",
        }
    ]
    schema["x-kubernetes-validations"] = [
        {
            "rule": "!has(self.steps) || size(self.steps) == 0 || "
            "((!has(self.reduceTasks) || self.reduceTasks == 1) && "
            "!has(self.combine) && !has(self.partitioner))",
            "message": "with steps, set reduceTasks, combine and partitioner per step",
        },
        {
            "rule": "!has(self.volumes) || self.volumes.all(v, "
            "self.volumes.exists_one(w, w.name == v.name))",
            "message": "volumes: duplicate names",
        },
        {
            "rule": "!has(self.volumeMounts) || self.volumeMounts.all(m, "
            "has(self.volumes) && self.volumes.exists(v, v.name == m.name))",
            "message": "volumeMounts name volumes not in spec.volumes",
        },
    ]
    return schema


def status_schema() -> dict[str, Any]:
    """The status the operator writes (kept open while the operator evolves)."""
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition."""
    columns = [  # (name, type, path, priority: 0 always shown, 1 with -o wide)
        ("Phase", "string", ".status.phase", 0),
        ("Maps", "string", ".status.maps", 0),
        ("Reduces", "string", ".status.reduces", 0),
        ("Step", "string", ".status.step", 1),
        ("Reason", "string", ".status.reason", 0),
        ("Age", "date", ".metadata.creationTimestamp", 0),
        ("Message", "string", ".status.message", 1),
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": spec.KIND,
                "listKind": f"{spec.KIND}List",
                "plural": PLURAL,
                "singular": "mapreducejob",
                "shortNames": ["mrj"],
                "categories": ["kubemr"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": n, "type": t, "jsonPath": p} | ({"priority": w} if w else {})
                        for n, t, p, w in columns
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A MapReduce job: map, shuffle, reduce, commit.",
                            "required": ["spec"],
                            "x-kubernetes-validations": [
                                {
                                    "rule": "size(self.metadata.name) <= 52",
                                    "message": "metadata.name must be at most 52 characters "
                                    "(pod names are derived from it)",
                                }
                            ],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


def render() -> str:
    header = (
        "# Generated from kubemr.spec by `python -m kubemr_operator.crd` (make crd).\n"
        "# Do not edit: change runtime/kubemr/spec.py and regenerate.\n"
    )
    # A step's app and the job's share schema parts: written out twice, never as YAML aliases.
    text = yaml.dump(crd(), Dumper=_PlainDumper, sort_keys=False, width=100)
    return header + text


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else CRD_FILE
    target.write_text(render(), encoding="utf-8")

"""The ``MapReduceJob`` manifest: one typed model for ``kubemr run`` and for the operator.

The YAML that ``kubectl apply`` takes is the YAML that ``kubemr run`` takes. This module
parses and validates it once, the same way for both, and reports *every* bad field at
once, each error naming the field's path (``spec.reduceTasks``) and the bad value.

Field names follow Kubernetes conventions (camelCase in YAML, snake_case in Python).
Sizes are Kubernetes quantities (``64Mi``), times are durations (``10s``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from kubemr import contract, quantities

API_VERSION = contract.API_VERSION
KIND = contract.KIND
BUILTIN_APPS = ("wordcount", "grep", "indexer", "sort")
MODULE_PATTERN = r"^[A-Za-z_][\w.]*(\.py)?:[A-Za-z_][\w.]*$|^[^:]+\.py:[A-Za-z_][\w.]*$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


def _check_module(value: str) -> str:
    if not re.match(MODULE_PATTERN, value):
        raise ValueError(f"{value!r} is not of the form 'package.module:Attr' or 'file.py:Attr'")
    return value


def _without_nulls(value: Any) -> Any:
    """A map's null values are absent, as the API server prunes them (found by
    tests/operator/test_crd_fuzz.py: ``nodeSelector: {"": null}``)."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return value


StringMap = Annotated[dict[str, str], BeforeValidator(_without_nulls)]
"""A map of strings; null values are dropped."""
QuantityMap = Annotated[dict[str, str | int], BeforeValidator(_without_nulls)]
"""A map of resource quantities; null values are dropped."""

Bytes = Annotated[
    int,
    BeforeValidator(quantities.parse_quantity),
    PlainSerializer(quantities.format_quantity, return_type=str),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": quantities.QUANTITY_PATTERN}),
]
"""A size in bytes, written as a Kubernetes quantity."""

Seconds = Annotated[
    float,
    BeforeValidator(quantities.parse_duration),
    PlainSerializer(quantities.format_duration, return_type=str),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": quantities.DURATION_PATTERN}),
]
"""A duration in seconds, written as ``10s``, ``500ms`` or ``1m30s``."""


PositiveSeconds = Annotated[
    float,
    BeforeValidator(quantities.parse_duration),
    PlainSerializer(quantities.format_duration, return_type=str),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": quantities.DURATION_PATTERN,
            "x-kubernetes-validations": [
                {
                    "rule": "type(self) == int ? self > 0"
                    " : !self.matches('^(0+(\\\\.0+)?(ms|s|m|h))+$')",
                    "message": "must be more than zero",
                }
            ],
        }
    ),
    Field(gt=0),
]
"""A duration more than zero (the CRD says so too: ``gt`` is lost with the JSON schema)."""


class Model(BaseModel):
    """Base for every manifest section: camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        strict=True,  # "3" is not an integer, "true" not a boolean: as the API server says
    )

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_absent(cls, data: Any) -> Any:
        """Read numbers and nulls as the API server does: ``field: null`` means the field is
        not set (it drops nulls of known, non-nullable fields; unknown fields stay
        unknown), and a whole number written ``3.0`` is the integer 3."""
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields) | {
            f.alias for f in cls.model_fields.values() if f.alias is not None
        }
        return {
            k: int(v) if isinstance(v, float) and v.is_integer() else v  # 3.0 is 3 (JSON)
            for k, v in data.items()
            if not (v is None and k in known)
        }


SHA256_PATTERN = r"^[0-9a-f]{64}$"
BUNDLE_KEY = "bundle.zip"
"""The key of a bundle's ConfigMap (``spec.app.bundle.configMap``) that holds the bundle."""


class AppBundleSpec(Model):
    """Where the pods find the job's own code (``kubemr submit`` writes this; Kubernetes
    only). The bundle is a zip of the app (``app/``), the wheels its requirements resolved
    to (``wheels/``) and ``requirements.txt``; an init container unpacks it and installs
    the requirements from the wheels alone (``pip --no-index``) before the runtime starts
    (docs/submit.md)."""

    config_map: Annotated[str, Field(pattern=SUBDOMAIN_PATTERN, max_length=253)] | None = None
    """A ConfigMap in the job's namespace holding the bundle under the key ``bundle.zip``
    (as ``binaryData``). Exactly one of configMap/url."""
    url: Annotated[str, Field(pattern=r"^s3://[^/]+/.+[^/]$")] | None = None
    """An ``s3://bucket/key`` object holding the bundle, read with ``spec.storage``."""
    sha256: Annotated[str, Field(pattern=SHA256_PATTERN)]
    """The bundle's SHA-256 (hex); the pods refuse a bundle with any other content, so
    the code cannot change under a running job."""

    @model_validator(mode="after")
    def _exactly_one(self) -> AppBundleSpec:
        if (self.config_map is None) == (self.url is None):
            raise ValueError("exactly one of app.bundle.configMap and app.bundle.url must be set")
        return self


class AppSpec(Model):
    """Which map/reduce code runs: a built-in app or a user module."""

    builtin: Literal["wordcount", "grep", "indexer", "sort"] | None = None
    """A built-in app: wordcount, grep, indexer or sort. Exactly one of builtin/module."""
    module: Annotated[str, AfterValidator(_check_module)] | None = None
    """A user app as ``package.module:Attr`` or ``path/to/file.py:Attr``."""
    args: StringMap = Field(default_factory=dict)
    """String arguments passed to the app's constructor as keywords (grep: ``pattern``)."""
    requirements: list[Annotated[str, Field(min_length=1, pattern=r"^[^\t\n\r\f #-][^\n]*$")]] = (
        Field(default_factory=list, max_length=256)
    )
    """Python requirements of the app, one pip requirement each (``inflection==0.5.1``).
    ``kubemr submit`` resolves them into wheels and ships them in ``bundle``; ``kubemr
    run`` expects them installed already. Default none."""
    bundle: AppBundleSpec | None = None
    """The job's own code, shipped by ``kubemr submit`` (Kubernetes only). Default none:
    the app is in the image (or on a volume)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> AppSpec:
        if (self.builtin is None) == (self.module is None):
            raise ValueError("exactly one of app.builtin and app.module must be set")
        return self

    @property
    def ref(self) -> str:
        """A short human name: the builtin's name or the module reference."""
        return self.builtin or self.module or ""


class InputSpec(Model):
    """What the map tasks read."""

    paths: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    """Files, directories or glob patterns, read as UTF-8 text lines; local paths or
    ``s3://bucket/key`` URIs (a prefix ending in ``/`` stands for the objects directly
    under it). Relative paths are relative to the working directory of ``kubemr run``;
    on a cluster they are refused unless the operator sets the job pods' working
    directory (the chart's ``jobDefaults.workingDir``). gzip, bzip2, xz and zstd files,
    recognised by their first bytes, are decompressed as they are read; each is one
    split."""
    split_size: Annotated[Bytes, Field(ge=1)] | None = None
    """Bytes per map task (split); a split owns every line that starts inside it.
    Default 64Mi, or less when the input is smaller than 64Mi per mapper replica: then
    the input's size divided by the mapper replicas (rounded up, at least 1Mi), so that
    every mapper gets a split (docs/runtime.md)."""
    format: Literal["text", "jsonl", "whole-file", "records"] = "text"
    """What a record is: ``text`` (map gets each line, a str), ``jsonl`` (map gets each
    line parsed as JSON; a malformed line is a bad record), ``whole-file`` (map gets
    each file's whole content, bytes; one split per file), or ``records`` (files kubemr
    wrote with ``output.format: records``, such as a step's intermediate output: map
    gets each record's key and value, their types kept; one split per file). Default
    text."""


class OutputSpec(Model):
    """Where the reduce tasks write one ``part-NNNNN`` file each."""

    path: str = Field(min_length=1)
    """Output directory, or an ``s3://bucket/prefix`` URI; ``_SUCCESS`` and
    ``_summary.json`` appear there when the job commits."""
    overwrite: bool = False
    """Replace the output of an earlier committed job at ``path``. Default false: refuse."""
    compression: Literal["none", "gzip", "zstd"] = "none"
    """Compress every part file: ``gzip`` (``part-NNNNN.gz``) or ``zstd``
    (``part-NNNNN.zst``). Default none."""
    format: Literal["text", "records"] = "text"
    """``text``: one line ``key<TAB>value`` per pair; ``records``: kubemr's typed record
    frames (the shuffle's encoding), which ``input.format: records`` reads back with
    their types. Default text."""

    @model_validator(mode="after")
    def _records_uncompressed(self) -> OutputSpec:
        if self.format == "records" and self.compression != "none":
            raise ValueError("compression: records output is not compressed (set none)")
        return self


class StorageSpec(Model):
    """How ``s3://`` paths of ``spec.input`` and ``spec.output`` are reached.

    Credentials are never here: they come from the standard AWS chain (environment,
    IRSA web identity token, instance profile). On Kubernetes, ``credentialsSecret``
    names a Secret the operator maps into the pods' environment; with IRSA nothing is
    needed but ``spec.serviceAccountName``.
    """

    endpoint: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/.*)?$")] | None = None
    """URL of an S3-compatible store (MinIO, Ceph), e.g. ``http://minio.storage:9000``.
    Default: AWS S3 (or ``AWS_ENDPOINT_URL`` from the environment)."""
    region: str | None = None
    """The bucket's region, e.g. ``eu-west-1``. Default: the AWS chain's
    (``AWS_DEFAULT_REGION``, the profile, the instance's)."""
    path_style: bool | None = None
    """Address buckets as ``endpoint/bucket/key`` instead of ``bucket.endpoint/key``.
    Default: true when ``endpoint`` is set (MinIO, Ceph), else false."""
    credentials_secret: Annotated[str, Field(pattern=SUBDOMAIN_PATTERN, max_length=253)] | None = (
        None
    )
    """Kubernetes only: a Secret in the job's namespace whose keys (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, optionally ``AWS_SESSION_TOKEN``) become every job pod's
    environment. Default none: the pod's service account (IRSA) or the node's role."""


class ResourceSpec(Model):
    """Kubernetes resource requests and limits for a group of pods (ignored by kubemr run)."""

    requests: QuantityMap = Field(default_factory=dict)
    """Requests, e.g. ``{cpu: "1", memory: 1Gi}``."""
    limits: QuantityMap = Field(default_factory=dict)
    """Limits, e.g. ``{memory: 2Gi}``."""


class WorkerGroupSpec(Model):
    """A group of worker processes (pods on Kubernetes) of one role."""

    replicas: Annotated[int, Field(ge=1, le=10_000)] = 1
    """How many workers of this role run at once. Default 1."""
    resources: ResourceSpec = Field(default_factory=ResourceSpec)
    """Pod resources for this role (Kubernetes only)."""


class ShuffleSpec(Model):
    """How map output travels to the reducers."""

    mode: Literal["barrier", "streaming"] = "streaming"
    """``barrier``: reducers fetch after the last map finishes; ``streaming``: each map
    output is fetched as soon as it is reported. Default streaming."""
    buffer_size: Annotated[Bytes, Field(ge=2**16)] = 32 * 2**20
    """Memory budget of each map sort buffer and of each reducer's in-memory fetch buffer,
    in bytes. Beyond it, data spills to local disk. Default 32Mi, minimum 64Ki."""
    chunk_size: Annotated[Bytes, Field(ge=2**12, le=2**26)] = 2**20
    """Largest shuffle message (a chunk of record batches), in bytes. Default 1Mi."""
    parallel_fetches: Annotated[int, Field(ge=1, le=64)] = 4
    """How many map outputs a reducer fetches at once. Default 4."""


class FaultToleranceSpec(Model):
    """How failures and stragglers are handled."""

    max_task_attempts: Annotated[int, Field(ge=1, le=100)] = 4
    """Attempts per task before the job fails. Default 4."""
    heartbeat_timeout: PositiveSeconds = 10.0
    """A worker silent for longer than this is dead. Default 10s."""
    speculative: bool = True
    """Launch backup attempts of straggling tasks near the end of a phase. Default true."""
    max_skipped_records: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    """Bad records the job may skip: a record whose map (or parsing) raises, or a key
    whose reduce raises, is skipped and counted, its location listed in the summary; the
    job fails once more than this many are skipped. Default 0: the first bad record
    fails its task (which is retried up to ``maxTaskAttempts``)."""


VOLUME_SCHEMA = {
    "type": "object",
    "x-kubernetes-preserve-unknown-fields": True,
    "required": ["name"],
    "minProperties": 2,
    "properties": {"name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 63}},
}


def _check_volume(value: dict[str, Any]) -> dict[str, Any]:
    name = value.get("name")
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name) or len(name) > 63:
        raise ValueError(f"a volume needs a 'name' that is a DNS label (got {name!r})")
    if len(value) < 2:
        raise ValueError(f"volume {name!r} has no source (hostPath, persistentVolumeClaim, ...)")
    return value


Volume = Annotated[dict[str, Any], AfterValidator(_check_volume), WithJsonSchema(VOLUME_SCHEMA)]
"""An ordinary Kubernetes volume (``name`` plus one source), passed to every job pod as is."""


class VolumeMountSpec(Model):
    """Where a volume of ``spec.volumes`` appears in every job pod."""

    name: str = Field(min_length=1)
    """The name of a volume in ``spec.volumes``."""
    mount_path: str = Field(min_length=1, pattern=r"^/")
    """Absolute path in the container."""
    read_only: bool = False
    """Mount read-only. Default false."""
    sub_path: str | None = None
    """A path inside the volume to mount instead of its root. Default: the root."""


class TolerationSpec(Model):
    """A Kubernetes toleration for the job's pods."""

    key: str | None = None
    """The taint key; empty with operator Exists matches every taint."""
    operator: Literal["Exists", "Equal"] | None = None
    """``Exists`` or ``Equal``. Default Equal."""
    value: str | None = None
    """The taint value (operator Equal)."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """The taint effect to tolerate; empty matches all."""
    toleration_seconds: int | None = None
    """For NoExecute: seconds the pod stays bound after the taint appears."""


class MasterSpec(Model):
    """The master pod (Kubernetes only)."""

    resources: ResourceSpec = Field(default_factory=ResourceSpec)
    """Pod resources of the master."""


class StepSpec(Model):
    """One step of a multi-step job: a map and reduce whose input is the previous step's
    output (records, their types kept) and whose output feeds the next step."""

    app: AppSpec | None = None
    """The step's map/reduce code. Default: ``spec.app``."""
    reduce_tasks: Annotated[int, Field(ge=0, le=100_000)] = 1
    """The step's number of reduce tasks (0: a map-only step). Default 1."""
    combine: bool | None = None
    """Run the step's combiner. Default: true when the step's app has one."""
    partitioner: Literal["hash", "range"] | None = None
    """``hash`` or ``range``. Default: the step's app's preference."""


STEP_FIELDS = ("reduce_tasks", "combine", "partitioner")
"""Fields of ``spec`` that a job with ``spec.steps`` sets per step instead."""


class JobSpec(Model):
    """The ``spec`` of a MapReduceJob."""

    app: AppSpec
    """The map/reduce code to run."""
    input: InputSpec
    """The input files."""
    output: OutputSpec
    """The output directory."""
    storage: StorageSpec = Field(default_factory=StorageSpec)
    """How ``s3://`` input and output paths are reached (endpoint, region, credentials)."""
    reduce_tasks: Annotated[int, Field(ge=0, le=100_000)] = 1
    """R: the number of reduce tasks, and so of output files. 0 makes a map-only job:
    each map task's output, in input order, is committed as its own part file (one per
    map task). Default 1."""
    mapper: WorkerGroupSpec = Field(default_factory=WorkerGroupSpec)
    """The mapper workers."""
    reducer: WorkerGroupSpec = Field(default_factory=WorkerGroupSpec)
    """The reducer workers."""
    combine: bool | None = None
    """Run the app's combiner on map output. Default: true when the app has one."""
    partitioner: Literal["hash", "range"] | None = None
    """``hash`` (crc32 of the key mod R) or ``range`` (split points sampled from the input,
    so part files read in order are globally sorted). Default: the app's preference."""
    steps: list[StepSpec] = Field(default_factory=list, max_length=64)
    """A multi-step job: the steps, run in order by one master, each step's output the
    next one's input (types kept), the last one's the job's output; intermediate output
    lives under the output's ``_temporary`` and is removed when the job ends. With steps,
    ``reduceTasks``, ``combine`` and ``partitioner`` are set per step. Default none: one
    step from ``app``, ``reduceTasks``, ``combine`` and ``partitioner``."""
    shuffle: ShuffleSpec = Field(default_factory=ShuffleSpec)
    """Shuffle settings."""
    fault_tolerance: FaultToleranceSpec = Field(default_factory=FaultToleranceSpec)
    """Failure handling."""
    image: str | None = None
    """Container image for the job's pods (Kubernetes only). Default: the operator's."""

    # ---- Kubernetes only (``kubemr run`` ignores these) -------------------------------

    master: MasterSpec = Field(default_factory=MasterSpec)
    """The master pod."""
    backoff_limit: Annotated[int, Field(ge=0, le=1000)] = 6
    """Pods (master or workers) that may fail and be replaced before the job fails.
    Default 6, as for a Kubernetes Job."""
    active_deadline_seconds: Annotated[int, Field(ge=1)] | None = None
    """Seconds from the job's start after which it fails (DeadlineExceeded). Default none."""
    ttl_seconds_after_finished: Annotated[int, Field(ge=0)] | None = None
    """Seconds after the job finishes (either way) before it is deleted with everything
    it owns. Default none: kept until deleted."""
    suspend: bool = False
    """True stops the job's pods; false again resumes it without losing committed work.
    Default false."""
    cleanup_policy: Literal["DeleteWorkers", "DeleteAll", "KeepAll"] = "DeleteWorkers"
    """What is removed when the job finishes: ``DeleteWorkers`` (mapper and reducer pods,
    except failed ones; the master pod stays, for its log), ``DeleteAll`` (every pod, the
    Service, Secret and ConfigMap) or ``KeepAll`` (nothing, for debugging). Pods still
    running 30 s after the end are stopped whatever the policy. Default DeleteWorkers."""
    pending_timeout: PositiveSeconds = 300.0
    """A pod that cannot start (unschedulable, bad image) for this long fails the job.
    Default 5m."""
    service_account_name: str | None = None
    """The service account the job's pods run as. Default: the namespace's default."""
    node_selector: StringMap = Field(default_factory=dict)
    """Node labels every job pod requires."""
    tolerations: list[TolerationSpec] = Field(default_factory=list, max_length=64)
    """Taints the job's pods tolerate."""
    volumes: list[Volume] = Field(default_factory=list, max_length=64)
    """Kubernetes volumes (PVC, hostPath, NFS, ...) added to every job pod; with
    ``volumeMounts`` they carry the input and the output."""
    volume_mounts: list[VolumeMountSpec] = Field(default_factory=list, max_length=64)
    """Where the volumes appear in every job pod."""

    @model_validator(mode="after")
    def _steps_own_their_fields(self) -> JobSpec:
        if self.steps:
            # (compared with the defaults, not "was it set": a dumped manifest sets all)
            fields = type(self).model_fields
            clash = [to_camel(f) for f in STEP_FIELDS if getattr(self, f) != fields[f].default]
            if clash:
                raise ValueError(f"with steps, set {', '.join(clash)} per step in spec.steps")
        return self

    @model_validator(mode="after")
    def _mounts_name_volumes(self) -> JobSpec:
        names = [v["name"] for v in self.volumes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"volumes: duplicate names {duplicates}")
        unknown = sorted({m.name for m in self.volume_mounts} - set(names))
        if unknown:
            raise ValueError(f"volumeMounts name volumes not in spec.volumes: {unknown}")
        return self


class Metadata(BaseModel):
    """The manifest's ``metadata``: the fields kubemr reads; others are kept as they are."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=52, pattern=NAME_PATTERN)]
    """The job's name (a DNS label; at most 52 characters so pod names fit)."""
    namespace: str | None = None
    """The namespace (Kubernetes only)."""


class MapReduceJob(Model):
    """A whole ``MapReduceJob`` manifest."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["kubemr.io/v1alpha1"]
    """Always ``kubemr.io/v1alpha1``."""
    kind: Literal["MapReduceJob"]
    """Always ``MapReduceJob``."""
    metadata: Metadata
    """Name and namespace."""
    spec: JobSpec
    """What to run."""


class SpecError(ValueError):
    """A manifest that does not validate. ``problems`` lists every bad field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: invalid MapReduceJob ({len(problems)} problem(s)):\n{lines}")


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("function-after[_check_module(), str]",) or "[" in str(part):
            continue
        elif not re.fullmatch(r"[A-Za-z_][\w-]*", part):
            path += f"[{part!r}]"  # a key that is not a field name, quoted
        else:
            path += f".{part}" if path else str(part)
    return path


def _describe(error: Any) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "(" in p))
    path = _field_path(loc) or "(manifest)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown field"
    if error["type"] == "missing":
        return f"{path}: required field is missing"
    value = error.get("input")
    if isinstance(value, dict | list) or value is None:
        return f"{path}: {message}"
    return f"{path}: {message} (got {value!r})"


def parse_job(document: object, source: str = "manifest") -> MapReduceJob:
    """Validate a decoded manifest; raise :class:`SpecError` listing every problem."""
    if not isinstance(document, dict):
        raise SpecError(source, [f"expected a YAML mapping, got {type(document).__name__}"])
    try:
        return MapReduceJob.model_validate(document)
    except ValidationError as exc:
        problems = sorted({_describe(e) for e in exc.errors()})
        raise SpecError(source, problems) from None


def relative_paths(spec: JobSpec) -> list[tuple[str, str]]:
    """The job's local paths that are relative, each with its field (``spec.input.paths[0]``,
    ``spec.output.path``): they resolve against a working directory, which ``kubemr run``
    has (its own) and a pod may not (the image's, on a read-only root filesystem)."""
    fields = [(f"spec.input.paths[{i}]", p) for i, p in enumerate(spec.input.paths)]
    fields.append(("spec.output.path", spec.output.path))
    return [(f, p) for f, p in fields if "://" not in p and not p.startswith("/")]


def load_job(path: str | Path) -> MapReduceJob:
    """Read and validate a manifest file; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(str(path), [f"cannot read the manifest: {exc.strerror}"]) from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise SpecError(str(path), [f"not valid YAML: {exc}"]) from None
    jobs = [d for d in documents if isinstance(d, dict) and d.get("kind") == KIND]
    if len(jobs) != 1:
        if len(documents) == 1:
            return parse_job(documents[0], str(path))
        raise SpecError(str(path), [f"expected exactly one {KIND} document, found {len(jobs)}"])
    return parse_job(jobs[0], str(path))


def dump_job(job: MapReduceJob) -> dict[str, Any]:
    """The manifest as plain data (camelCase, quantities as strings), for passing on."""
    return job.model_dump(mode="json", by_alias=True, exclude_none=True)

from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    MAPPER: _ClassVar[Role]
    REDUCER: _ClassVar[Role]

class Command(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTINUE: _ClassVar[Command]
    EXIT: _ClassVar[Command]
    REREGISTER: _ClassVar[Command]
ROLE_UNSPECIFIED: Role
MAPPER: Role
REDUCER: Role
CONTINUE: Command
EXIT: Command
REREGISTER: Command

class RecordBatch(_message.Message):
    __slots__ = ("keys", "values")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    values: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, keys: _Optional[_Iterable[bytes]] = ..., values: _Optional[_Iterable[bytes]] = ...) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("job", "map_task", "attempt_id", "partition", "offset")
    JOB_FIELD_NUMBER: _ClassVar[int]
    MAP_TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    job: str
    map_task: int
    attempt_id: str
    partition: int
    offset: int
    def __init__(self, job: _Optional[str] = ..., map_task: _Optional[int] = ..., attempt_id: _Optional[str] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class RunSize(_message.Message):
    __slots__ = ("records", "bytes")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    records: int
    bytes: int
    def __init__(self, records: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("frames", "size")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    frames: bytes
    size: RunSize
    def __init__(self, frames: _Optional[bytes] = ..., size: _Optional[_Union[RunSize, _Mapping]] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("job", "role", "address", "name")
    JOB_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    job: str
    role: Role
    address: str
    name: str
    def __init__(self, job: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., address: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class RegisterReply(_message.Message):
    __slots__ = ("worker_id", "job_json", "boundaries", "heartbeat_interval")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_JSON_FIELD_NUMBER: _ClassVar[int]
    BOUNDARIES_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    job_json: str
    boundaries: _containers.RepeatedScalarFieldContainer[bytes]
    heartbeat_interval: float
    def __init__(self, worker_id: _Optional[str] = ..., job_json: _Optional[str] = ..., boundaries: _Optional[_Iterable[bytes]] = ..., heartbeat_interval: _Optional[float] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("worker_id", "running", "progress")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    running: _containers.RepeatedScalarFieldContainer[str]
    progress: float
    def __init__(self, worker_id: _Optional[str] = ..., running: _Optional[_Iterable[str]] = ..., progress: _Optional[float] = ...) -> None: ...

class HeartbeatReply(_message.Message):
    __slots__ = ("command", "cancel")
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    command: Command
    cancel: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, command: _Optional[_Union[Command, str]] = ..., cancel: _Optional[_Iterable[str]] = ...) -> None: ...

class Split(_message.Message):
    __slots__ = ("path", "start", "end")
    PATH_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    path: str
    start: int
    end: int
    def __init__(self, path: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class TaskRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class TaskAssignment(_message.Message):
    __slots__ = ("kind", "index", "attempt_id", "split", "temp_path")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        WAIT: _ClassVar[TaskAssignment.Kind]
        MAP: _ClassVar[TaskAssignment.Kind]
        REDUCE: _ClassVar[TaskAssignment.Kind]
        EXIT: _ClassVar[TaskAssignment.Kind]
        REREGISTER: _ClassVar[TaskAssignment.Kind]
    WAIT: TaskAssignment.Kind
    MAP: TaskAssignment.Kind
    REDUCE: TaskAssignment.Kind
    EXIT: TaskAssignment.Kind
    REREGISTER: TaskAssignment.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    TEMP_PATH_FIELD_NUMBER: _ClassVar[int]
    kind: TaskAssignment.Kind
    index: int
    attempt_id: str
    split: Split
    temp_path: str
    def __init__(self, kind: _Optional[_Union[TaskAssignment.Kind, str]] = ..., index: _Optional[int] = ..., attempt_id: _Optional[str] = ..., split: _Optional[_Union[Split, _Mapping]] = ..., temp_path: _Optional[str] = ...) -> None: ...

class TaskReport(_message.Message):
    __slots__ = ("worker_id", "attempt_id", "ok", "error", "counters", "timings", "peak_rss", "skipped", "partition_records", "partition_bytes")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class TimingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    PEAK_RSS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    PARTITION_RECORDS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_BYTES_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    attempt_id: str
    ok: bool
    error: str
    counters: _containers.ScalarMap[str, int]
    timings: _containers.ScalarMap[str, float]
    peak_rss: int
    skipped: _containers.RepeatedScalarFieldContainer[str]
    partition_records: _containers.RepeatedScalarFieldContainer[int]
    partition_bytes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, worker_id: _Optional[str] = ..., attempt_id: _Optional[str] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ..., counters: _Optional[_Mapping[str, int]] = ..., timings: _Optional[_Mapping[str, float]] = ..., peak_rss: _Optional[int] = ..., skipped: _Optional[_Iterable[str]] = ..., partition_records: _Optional[_Iterable[int]] = ..., partition_bytes: _Optional[_Iterable[int]] = ...) -> None: ...

class ReportReply(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    def __init__(self, accepted: _Optional[bool] = ...) -> None: ...

class MapOutput(_message.Message):
    __slots__ = ("map_task", "attempt_id", "address")
    MAP_TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    map_task: int
    attempt_id: str
    address: str
    def __init__(self, map_task: _Optional[int] = ..., attempt_id: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class MapOutputsRequest(_message.Message):
    __slots__ = ("worker_id", "attempt_id", "have", "fetching")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    HAVE_FIELD_NUMBER: _ClassVar[int]
    FETCHING_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    attempt_id: str
    have: _containers.RepeatedScalarFieldContainer[int]
    fetching: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, worker_id: _Optional[str] = ..., attempt_id: _Optional[str] = ..., have: _Optional[_Iterable[int]] = ..., fetching: _Optional[_Iterable[str]] = ...) -> None: ...

class MapOutputsReply(_message.Message):
    __slots__ = ("outputs", "complete", "cancelled", "total", "lost")
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[MapOutput]
    complete: bool
    cancelled: bool
    total: int
    lost: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, outputs: _Optional[_Iterable[_Union[MapOutput, _Mapping]]] = ..., complete: _Optional[bool] = ..., cancelled: _Optional[bool] = ..., total: _Optional[int] = ..., lost: _Optional[_Iterable[int]] = ...) -> None: ...

class FetchFailure(_message.Message):
    __slots__ = ("worker_id", "attempt_id", "map_task", "map_attempt_id", "error")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    MAP_TASK_FIELD_NUMBER: _ClassVar[int]
    MAP_ATTEMPT_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    attempt_id: str
    map_task: int
    map_attempt_id: str
    error: str
    def __init__(self, worker_id: _Optional[str] = ..., attempt_id: _Optional[str] = ..., map_task: _Optional[int] = ..., map_attempt_id: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("worker_id", "reason")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    reason: str
    def __init__(self, worker_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("phase", "maps_total", "maps_done", "reduces_total", "reduces_done", "workers", "message", "summary_json", "step", "steps")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    MAPS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    MAPS_DONE_FIELD_NUMBER: _ClassVar[int]
    REDUCES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    REDUCES_DONE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_JSON_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    phase: str
    maps_total: int
    maps_done: int
    reduces_total: int
    reduces_done: int
    workers: int
    message: str
    summary_json: str
    step: int
    steps: int
    def __init__(self, phase: _Optional[str] = ..., maps_total: _Optional[int] = ..., maps_done: _Optional[int] = ..., reduces_total: _Optional[int] = ..., reduces_done: _Optional[int] = ..., workers: _Optional[int] = ..., message: _Optional[str] = ..., summary_json: _Optional[str] = ..., step: _Optional[int] = ..., steps: _Optional[int] = ...) -> None: ...

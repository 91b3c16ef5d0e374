"""The data types of the `flame` package, in flamepy 0.6's shapes: the type
aliases, constants, state enums, FlameError with its FlameErrorCode, and the
records the client returns (Task, Application, Event, ...).

Records the client builds also answer `record["key"]` with the dict the
earlier versions of this package returned (states as strings such as
"Succeed", times in Unix ms), so code written against those keeps working.
"""
import random
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import IntEnum
from typing import Any, Dict, List, Optional

# Type aliases (flamepy.core.types)
TaskID = str
SessionID = str
ApplicationID = str
Message = bytes
TaskInput = Message
TaskOutput = Message
CommonData = Message

DEFAULT_FLAME_CONF = "flame.yaml"
DEFAULT_FLAME_ENDPOINT = "http://127.0.0.1:8080"
DEFAULT_FLAME_CACHE_ENDPOINT = "grpc://127.0.0.1:9090"
DEFAULT_FLAME_RUNNER_TEMPLATE = "flmrun"


class SessionState(IntEnum):
    """A session's state (flame.v1 SessionState)."""

    OPEN = 0
    CLOSED = 1


class TaskState(IntEnum):
    """A task's state (flame.v1 TaskState). CANCELLED is ours: a task still
    Pending when its session closed."""

    PENDING = 0
    RUNNING = 1
    SUCCEED = 2
    FAILED = 3
    CANCELLED = 4


class ApplicationState(IntEnum):
    """An application's state."""

    ENABLED = 0
    DISABLED = 1


class Shim(IntEnum):
    """How an executor talks to its service."""

    HOST = 0
    WASM = 1


class FlameErrorCode(IntEnum):
    """The kind of a FlameError, flamepy's values. Errors without a closer
    kind (the network, timeouts, a failed task) are INTERNAL; FlameError.status
    says more."""

    INVALID_CONFIG = 0
    INVALID_STATE = 1
    INVALID_ARGUMENT = 2
    INTERNAL = 3
    ALREADY_EXISTS = 4
    NOT_FOUND = 5


# libflame's flame_status names -> FlameErrorCode
_STATUS_CODES = {
    "INVALID_ARGUMENT": FlameErrorCode.INVALID_ARGUMENT,
    "NOT_FOUND": FlameErrorCode.NOT_FOUND,
    "ALREADY_EXISTS": FlameErrorCode.ALREADY_EXISTS,
    "FAILED_PRECONDITION": FlameErrorCode.INVALID_STATE,
    "CONFIG": FlameErrorCode.INVALID_CONFIG,
}


class FlameError(Exception):
    """An error from Flame.

    Attributes:
        code: a FlameErrorCode (what flamepy programs test).
        message: the server's or the library's message.
        status: the finer cause, one of libflame's status names
            ("NOT_FOUND", "UNAVAILABLE", "TIMEOUT", "TASK_FAILED",
            "PERMISSION_DENIED", ...); defaults to the code's name.
    """

    def __init__(self, code: FlameErrorCode, message: str, status: Optional[str] = None):
        self.code = FlameErrorCode(code)
        self.message = message
        self.status = status or self.code.name
        super().__init__(code, message, self.status)

    def __str__(self) -> str:
        if self.status == self.code.name:
            return f"{self.message} (code: {self.code.name})"
        return f"{self.message} (code: {self.code.name}, {self.status})"

    def __repr__(self) -> str:
        return f"FlameError({self.code.name}, {self.message!r}, status={self.status!r})"

    def __reduce__(self) -> Any:
        return (type(self), (self.code, self.message, self.status))

    @classmethod
    def _from_status(cls, status: int, name: str, message: str) -> "FlameError":
        """What the C extension raises for a libflame status."""
        return cls(_STATUS_CODES.get(name, FlameErrorCode.INTERNAL), message, name)


class FlameTimeoutError(FlameError, TimeoutError):
    """A FlameError (status TIMEOUT) that is also a TimeoutError, what
    flamepy's TaskWatcher raises when its timeout passes."""


def _time(ms: int) -> Optional[datetime]:
    """Unix ms (0: unset) -> an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms else None


class _LegacyKeys:
    """`record["key"]`: the dict this package returned before it had
    flamepy's records."""

    _legacy: Optional[Dict[str, Any]]

    def __getitem__(self, key: str) -> Any:
        """The earlier dict's value for key."""
        if self._legacy is None:
            raise TypeError(f"{type(self).__name__} made by hand has no legacy keys")
        return self._legacy[key]

    def keys(self) -> Any:
        """The keys `record["key"]` knows."""
        return (self._legacy or {}).keys()


@dataclass
class Event:
    """An event of a task or session: code (a task state number, or
    1001/1002 for binding failures), message, time."""

    code: int
    message: Optional[str] = None
    creation_time: Optional[datetime] = None

    @classmethod
    def _from_dict(cls, d: Dict[str, Any]) -> "Event":
        return cls(d["code"], d["message"], _time(d["creation_time"]))


def _events(lst: List[Dict[str, Any]]) -> List[Event]:
    return [Event._from_dict(e) for e in lst]


@dataclass
class ResourceRequirement:
    """What each executor of a session needs: cpu (cores), memory (bytes),
    gpu."""

    cpu: int = 0
    memory: int = 0
    gpu: int = 0

    @classmethod
    def from_string(cls, s: str) -> "ResourceRequirement":
        """Parses "cpu=N,mem=SIZE,gpu=N" (SIZE: bytes, or with k/m/g/t/p,
        optionally b, i or ib, powers of 1024)."""
        if not s.strip():
            raise ValueError("resource requirement cannot be empty")
        r = cls()
        for part in s.split(","):
            key, sep, value = part.strip().partition("=")
            key, value = key.strip().lower(), value.strip()
            if not sep or not value or "=" in value:
                raise ValueError(f"invalid resource requirement entry {part!r}, expected key=value")
            if key == "cpu":
                r.cpu = int(value)
            elif key in ("mem", "memory"):
                r.memory = _parse_memory(value)
            elif key == "gpu":
                r.gpu = int(value)
            else:
                raise ValueError(f"unknown resource requirement key {key!r}")
        return r

    def __str__(self) -> str:
        return f"cpu={self.cpu},mem={self.memory},gpu={self.gpu}"


def _parse_memory(s: str) -> int:
    s = s.lower()
    for i, unit in enumerate("kmgtp", 1):
        for suffix in (unit + "ib", unit + "b", unit + "i", unit):
            if s.endswith(suffix):
                return int(s[: -len(suffix)]) * 1024 ** i
    return int(s)


@dataclass
class SessionAttributes:
    """What open_session creates a session with (flamepy's shape).
    priority is ours (higher runs first)."""

    application: str
    id: Optional[str] = None
    common_data: Any = None
    min_instances: int = 0
    max_instances: Optional[int] = None
    batch_size: int = 1
    resreq: Optional[ResourceRequirement] = None
    priority: int = 0


@dataclass
class ApplicationSchema:
    """JSON-Schema documents of an application's input, output and common
    data."""

    input: Optional[str] = None
    output: Optional[str] = None
    common_data: Optional[str] = None


@dataclass
class ApplicationAttributes:
    """What register_application takes (flamepy's shape). sandbox ("none",
    "process", "microvm") and network ("none", "host") are ours."""

    shim: Optional[Shim] = None
    image: Optional[str] = None
    description: Optional[str] = None
    labels: Optional[List[str]] = None
    command: Optional[str] = None
    arguments: Optional[List[str]] = None
    environments: Optional[Dict[str, str]] = None
    working_directory: Optional[str] = None
    max_instances: Optional[int] = None
    delay_release: Optional[int] = None
    schema: Optional[ApplicationSchema] = None
    url: Optional[str] = None
    installer: Optional[str] = None
    sandbox: Optional[str] = None
    network: Optional[str] = None


_TASK_STATES = {s.name.capitalize(): s for s in TaskState}


@dataclass
class Task(_LegacyKeys):
    """A task as the server reported it. message (the last event's
    message) is ours."""

    id: TaskID
    session_id: SessionID
    state: TaskState
    creation_time: Optional[datetime]
    input: Any = None
    output: Any = None
    completion_time: Optional[datetime] = None
    events: Optional[List[Event]] = None
    message: Optional[str] = None
    _legacy: Optional[Dict[str, Any]] = field(default=None, repr=False, compare=False)

    def is_completed(self) -> bool:
        """True once the task has ended (Succeed, Failed or Cancelled)."""
        return self.state in (TaskState.SUCCEED, TaskState.FAILED, TaskState.CANCELLED)

    def is_failed(self) -> bool:
        """True when the task failed."""
        return self.state == TaskState.FAILED

    @classmethod
    def _from_dict(cls, d: Dict[str, Any]) -> "Task":
        return cls(id=d["id"], session_id=d["session_id"], state=_TASK_STATES[d["state"]],
                   creation_time=_time(d["creation_time"]), input=d["input"], output=d["output"],
                   completion_time=_time(d["completion_time"]), events=_events(d["events"]),
                   message=d["message"], _legacy=d)


@dataclass
class Application(_LegacyKeys):
    """An application as the server reports it (flamepy's fields, plus our
    sandbox and network)."""

    id: ApplicationID
    name: str
    state: ApplicationState
    creation_time: Optional[datetime]
    shim: Optional[Shim] = None
    image: Optional[str] = None
    description: Optional[str] = None
    labels: Optional[List[str]] = None
    command: Optional[str] = None
    arguments: Optional[List[str]] = None
    environments: Optional[Dict[str, str]] = None
    working_directory: Optional[str] = None
    max_instances: Optional[int] = None
    delay_release: Optional[int] = None
    schema: Optional[ApplicationSchema] = None
    url: Optional[str] = None
    installer: Optional[str] = None
    sandbox: Optional[str] = None
    network: Optional[str] = None
    _legacy: Optional[Dict[str, Any]] = field(default=None, repr=False, compare=False)

    @classmethod
    def _from_dict(cls, d: Dict[str, Any]) -> "Application":
        schema = None
        if d["schema_input"] or d["schema_output"] or d["schema_common_data"]:
            schema = ApplicationSchema(d["schema_input"], d["schema_output"],
                                       d["schema_common_data"])
        return cls(id=d["name"], name=d["name"], state=ApplicationState[d["state"].upper()],
                   creation_time=_time(d["creation_time"]), shim=Shim[d["shim"].upper()],
                   image=d["image"], description=d["description"], labels=d["labels"],
                   command=d["command"], arguments=d["arguments"],
                   environments=d["environments"], working_directory=d["working_directory"],
                   max_instances=d["max_instances"], delay_release=d["delay_release"],
                   schema=schema, url=d["url"], installer=d["installer"], sandbox=d["sandbox"],
                   network=d["network"], _legacy=d)


@dataclass
class Executor(_LegacyKeys):
    """An executor: where it runs, its state and the session it is bound
    to."""

    id: str
    node: str
    state: str
    session_id: Optional[str] = None
    resreq: Optional[str] = None
    _legacy: Optional[Dict[str, Any]] = field(default=None, repr=False, compare=False)

    @classmethod
    def _from_dict(cls, d: Dict[str, Any]) -> "Executor":
        return cls(d["id"], d["node"], d["state"], d["session_id"], d["resreq"], _legacy=d)


@dataclass
class Node(_LegacyKeys):
    """A node (an executor manager's machine)."""

    name: str
    hostname: str
    state: str
    capacity: str
    allocatable: str
    arch: str
    os: str
    _legacy: Optional[Dict[str, Any]] = field(default=None, repr=False, compare=False)

    @classmethod
    def _from_dict(cls, d: Dict[str, Any]) -> "Node":
        return cls(d["name"], d["hostname"], d["state"], d["capacity"], d["allocatable"],
                   d["arch"], d["os"], _legacy=d)


class TaskInformer:
    """Receives a task's updates (flamepy's interface)."""

    def on_update(self, task: Task) -> None:
        """Called with the task at each change."""

    def on_error(self, error: FlameError) -> None:
        """Called when watching the task failed."""


def short_name(prefix: str, length: int = 6) -> str:
    """prefix-XXXXXX with random letters and digits: how flamepy names
    sessions."""
    alphabet = string.ascii_letters + string.digits
    return prefix + "-" + "".join(random.SystemRandom().choice(alphabet) for _ in range(length))


@dataclass
class FlameClientTls:
    """TLS of a connection: ca_file verifies the server; cert_file and
    key_file (ours) are the client's certificate for mutual TLS."""

    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None


@dataclass
class FlamePackage:
    """Where an application's package is stored (flamepy's Runner
    configuration; kept for programs that construct it)."""

    storage: str
    excludes: List[str] = field(default_factory=lambda: [".venv", "__pycache__", ".gitignore",
                                                         "*.pyc"])


@dataclass
class FlameContextRunner:
    """The application template flamepy's Runner uses."""

    template: Optional[str] = None

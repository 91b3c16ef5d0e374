"""The service side of the `flame` package in flamepy 0.6's shapes:
FlameService, its contexts, and run(), which serves flame.v1 Instance on
$FLAME_INSTANCE_ENDPOINT through libflame's service API.

Batching is the default: the executor manager hands a run of fast tasks in
one OnTaskInvokeBatch, which reaches Python as one call (_invoke_batch);
the user's on_task_invoke still sees one task at a time, in order, and an
exception fails only its own task.

Threads: run() blocks its caller; the callbacks run on libflame's service
thread, one at a time, holding the GIL.
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from . import _flame
from .types import TaskOutput

FLAME_INSTANCE_ENDPOINT = "FLAME_INSTANCE_ENDPOINT"


@dataclass
class ApplicationContext:
    """The application a session belongs to. Only name is known to a
    service here; the others stay None. Compares equal to its name, as the
    plain string this package gave before."""

    name: str
    image: Optional[str] = None
    command: Optional[str] = None
    working_directory: Optional[str] = None
    url: Optional[str] = None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.name == other
        if isinstance(other, ApplicationContext):
            return (self.name, self.image, self.command, self.working_directory,
                    self.url) == (other.name, other.image, other.command,
                                  other.working_directory, other.url)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name


class _CommonData(bytes):
    """A session's common data: bytes (this package's earlier attribute)
    that can also be called (flamepy's common_data() method)."""

    def __call__(self) -> bytes:
        return bytes(self)


class _NoCommonData:
    """No common data: falsy like the None it replaces, and common_data()
    returns None."""

    def __call__(self) -> None:
        return None

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, _NoCommonData)

    def __hash__(self) -> int:
        return hash(None)

    def __repr__(self) -> str:
        return "None"


class SessionContext:
    """What on_session_enter gets: session_id, application
    (ApplicationContext) and common_data. common_data works both as
    flamepy's method (ctx.common_data() -> bytes or None) and as bytes."""

    session_id: str
    application: ApplicationContext
    common_data: Any

    def __init__(self, session_id: str, application: ApplicationContext,
                 common_data: Optional[bytes]) -> None:
        self.session_id = session_id
        self.application = application
        self.common_data = _CommonData(common_data) if common_data is not None else _NoCommonData()

    def __repr__(self) -> str:
        return f"SessionContext(session_id={self.session_id!r}, application={self.application.name!r})"


@dataclass
class TaskContext:
    """What on_task_invoke gets: task_id, session_id and the input
    (bytes, or None)."""

    task_id: str
    session_id: str
    input: Optional[bytes]


class FlameService:
    """A Flame service: subclass, override what you need and serve it with
    run(service). An exception from a callback fails the session's binding
    (on_session_enter) or the task (on_task_invoke), with its str() as the
    message."""

    def on_session_enter(self, context: SessionContext) -> Any:
        """Called once when an executor binds to a session."""

    def on_task_invoke(self, context: TaskContext) -> Optional[TaskOutput]:
        """Called for each task; returns its output (bytes, a str taken as
        UTF-8, or None)."""
        return None

    def on_session_leave(self) -> Any:
        """Called once when the executor leaves the session."""


def _as_output(out: Any) -> Optional[bytes]:
    """A handler's return value as a task's output."""
    if out is None or isinstance(out, bytes):
        return out
    if isinstance(out, str):
        return out.encode()
    if isinstance(out, (bytearray, memoryview)):
        return bytes(out)
    raise TypeError("on_task_invoke must return bytes or None")


class _Adapter:
    """What the C extension calls: dicts in, the service's callbacks out."""

    def __init__(self, service: FlameService) -> None:
        self._s = service

    def _enter(self, d: Dict[str, Any]) -> None:
        self._s.on_session_enter(SessionContext(d["session_id"],
                                                ApplicationContext(d["application"]),
                                                d["common_data"]))

    def _invoke(self, d: Dict[str, Any]) -> Optional[bytes]:
        return _as_output(self._s.on_task_invoke(TaskContext(d["task_id"], d["session_id"],
                                                             d["input"])))

    def _invoke_batch(self, tasks: List[Tuple[str, str, Optional[bytes]]]) -> List[Any]:
        """The tasks of one batch, (task_id, session_id, input) each, run
        one after another; per task bytes or None (its output) or, when its
        handler raised or returned something else, a str (the failure)."""
        invoke = self._s.on_task_invoke
        out: List[Any] = []
        for task_id, session_id, data in tasks:
            try:
                r = invoke(TaskContext(task_id, session_id, data))
            except BaseException as e:  # as the per-task path: the task fails, not the service
                out.append(str(e))
                continue
            if r is None or type(r) is bytes:
                out.append(r)
                continue
            try:
                out.append(_as_output(r))
            except TypeError as e:
                out.append(str(e))
        return out

    def _leave(self) -> None:
        self._s.on_session_leave()


def run(service: FlameService) -> None:
    """Serves the service under a Flame executor manager (host shim) on
    $FLAME_INSTANCE_ENDPOINT until it is told to stop (SIGTERM)."""
    _flame.run(_Adapter(service))

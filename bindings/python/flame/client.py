"""The client side of the `flame` package in flamepy 0.6's shapes: connect,
Connection, Session (with invoke, run futures and their asyncio forms, map)
and the module-level functions, over the C extension (libflame's client
core).

Threads: every function may be called from any thread. Session.run futures
are completed by one thread per session with futures outstanding (_Completions:
the session's outcome stream, flame_session_watch), not one per call; it
exits when nothing is outstanding.
"""
import asyncio
import concurrent.futures
import os
import queue
import threading
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from . import _flame
from .types import (
    DEFAULT_FLAME_CACHE_ENDPOINT,
    DEFAULT_FLAME_ENDPOINT,
    Application,
    ApplicationAttributes,
    ApplicationSchema,
    Event,
    Executor,
    FlameClientTls,
    FlameError,
    FlameErrorCode,
    FlameTimeoutError,
    Node,
    ResourceRequirement,
    SessionAttributes,
    SessionID,
    SessionState,
    Task,
    TaskID,
    _events,
    _time,
    short_name,
)

_lock = threading.Lock()
_default_connection: Optional["Connection"] = None

# How long one outcome watch waits before the completion thread looks again
# at what is outstanding (futures cancelled by their caller are dropped then).
_WATCH_SLICE_MS = 30000


class Connection:
    """A connection to a session manager (flamepy's Connection; `Client` is
    the same class under this package's earlier name).

    Args:
        endpoint: "http://host:port", "https://host:port" or "host:port";
            None: $FLAME_ENDPOINT, then ~/.flame/flame.yaml ($FLAME_CONFIG),
            then http://127.0.0.1:8080.
        ca_file: PEM CA that verifies an https:// server (default: the
            context's cluster.tls.ca_file, $FLAME_CA_FILE, else the system's
            roots).
        cert_file, key_file: the client's certificate for mutual TLS
            (default: the context's, else $FLAME_CERT_FILE/$FLAME_KEY_FILE).

    Does not block on the network: the first call connects.
    """

    def __init__(self, endpoint: Optional[str] = None, ca_file: Optional[str] = None,
                 cert_file: Optional[str] = None, key_file: Optional[str] = None) -> None:
        self._c = _flame.Client(endpoint, ca_file, cert_file, key_file)

    @classmethod
    def connect(cls, addr: Optional[str] = None,
                tls_config: Optional[FlameClientTls] = None) -> "Connection":
        """flamepy's Connection.connect(addr, tls_config)."""
        tls = tls_config or FlameClientTls()
        return cls(addr, tls.ca_file, tls.cert_file, tls.key_file)

    @property
    def endpoint(self) -> str:
        """The endpoint, as "http://host:port" or "https://host:port"."""
        return self._c.endpoint

    @property
    def addr(self) -> str:
        """The endpoint (flamepy's name)."""
        return self._c.endpoint

    def close(self) -> None:
        """Kept for flamepy's shape; the connection is released with the
        object."""

    # -- sessions --------------------------------------------------------

    def create_session(self, application: Union[str, SessionAttributes],
                       common_data: Optional[bytes] = None, session_id: Optional[str] = None,
                       min_instances: int = 0, max_instances: Optional[int] = None,
                       batch_size: int = 1,
                       resreq: Union[ResourceRequirement, str, None] = None, *,
                       priority: int = 0) -> "Session":
        """Creates a session of an application and returns it. Takes
        flamepy's Connection.create_session(SessionAttributes) too. With no
        session_id the session is named "<application>-XXXXXX" as flamepy
        does. FlameError: NOT_FOUND (unknown application), ALREADY_EXISTS,
        INVALID_ARGUMENT."""
        if isinstance(application, SessionAttributes):
            a = application
            return self.create_session(a.application, a.common_data, a.id, a.min_instances,
                                       a.max_instances, a.batch_size, a.resreq,
                                       priority=a.priority)
        _check_bytes(common_data, "common_data")
        sid = session_id if session_id is not None else short_name(application)
        h = self._c.create_session(application, common_data, sid, min_instances, max_instances,
                                   priority, _resreq(resreq), batch_size=batch_size)
        return Session._new(self, h, application, common_data)

    def open_session(self, session_id: SessionID,
                     spec: Union[SessionAttributes, Dict[str, Any], None] = None) -> "Session":
        """Opens a session; with spec (SessionAttributes, or a dict of
        create_session's arguments) it is created when absent, and must
        match when present. FlameError: NOT_FOUND (absent and no spec),
        INVALID_STATE (closed), INVALID_ARGUMENT (spec differs)."""
        if spec is None:
            return Session._new(self, self._c.open_session(session_id))
        if isinstance(spec, dict):
            spec = SessionAttributes(**spec)
        _check_bytes(spec.common_data, "common_data")
        h = self._c.create_session(spec.application, spec.common_data, session_id,
                                   spec.min_instances, spec.max_instances, spec.priority,
                                   _resreq(spec.resreq), open=True, batch_size=spec.batch_size)
        return Session._new(self, h, spec.application, spec.common_data)

    def get_session(self, session_id: SessionID) -> "Session":
        """The session with this id (FlameError NOT_FOUND when unknown)."""
        return Session._from_info(self, self._c.get_session(session_id))

    def list_sessions(self) -> List["Session"]:
        """Every session, Open and Closed, in creation order."""
        return [Session._from_info(self, d) for d in self._c.list_sessions()]

    def close_session(self, session_id: SessionID) -> "Session":
        """Closes a session (Pending tasks are cancelled) and returns it as
        it is then. Closing a closed session succeeds."""
        self._c.attach_session(session_id).close()
        return self.get_session(session_id)

    # -- applications ------------------------------------------------------

    def register_application(self, name: str,
                             app_attrs: Union[ApplicationAttributes, Dict[str, Any]]) -> None:
        """Registers an application. FlameError: ALREADY_EXISTS,
        INVALID_ARGUMENT."""
        self._c.register_application(name, _app_dict(app_attrs))

    def update_application(self, name: str,
                           app_attrs: Union[ApplicationAttributes, Dict[str, Any]]) -> None:
        """Replaces an application's spec (FlameError INVALID_STATE while it
        has open sessions)."""
        self._c.register_application(name, _app_dict(app_attrs), update=True)

    def unregister_application(self, name: str) -> None:
        """Unregisters an application and deletes its closed sessions."""
        self._c.unregister_application(name)

    def get_application(self, name: str) -> Optional[Application]:
        """The application, or None when there is none of that name (as
        flamepy)."""
        try:
            return Application._from_dict(self._c.get_application(name))
        except FlameError as e:
            if e.code == FlameErrorCode.NOT_FOUND:
                return None
            raise

    def list_applications(self) -> List[Application]:
        """Every application, sorted by name."""
        return [Application._from_dict(d) for d in self._c.list_applications()]

    def list_executors(self) -> List[Executor]:
        """Every executor of the cluster."""
        return [Executor._from_dict(d) for d in self._c.list_executors()]

    def list_nodes(self) -> List[Node]:
        """Every node of the cluster."""
        return [Node._from_dict(d) for d in self._c.list_nodes()]

    def __repr__(self) -> str:
        return f"Connection({self.endpoint!r})"


Client = Connection


def _check_bytes(data: Any, what: str) -> None:
    if data is not None and not isinstance(data, (bytes, bytearray, memoryview)):
        raise FlameError(FlameErrorCode.INVALID_ARGUMENT, f"{what} must be bytes in core API")


def _resreq(r: Union[ResourceRequirement, str, None]) -> Optional[str]:
    if r is None or isinstance(r, str):
        return r
    return f"cpu={r.cpu},mem={r.memory},gpu={r.gpu}"


def _app_dict(attrs: Union[ApplicationAttributes, Dict[str, Any]]) -> Dict[str, Any]:
    """ApplicationAttributes or a dict (flamepy's keys, or this package's
    earlier ones) -> the dict the C extension reads."""
    d = dict(attrs) if isinstance(attrs, dict) else dict(vars(attrs))
    schema = d.pop("schema", None)
    if isinstance(schema, dict):
        schema = ApplicationSchema(**schema)
    if schema is not None:
        for k in ("input", "output", "common_data"):
            v = getattr(schema, k)
            if v and v.strip():
                d["schema_" + k] = v
    shim = d.get("shim")
    if shim is not None and not isinstance(shim, str):
        d["shim"] = int(shim)
    return d


class _Completions:
    """Completes a session's run() futures from its outcome stream: one
    thread per session while futures are outstanding.

    Ids: run() learns its task's id only once CreateTask returns, so the
    stream may report a task before its future is registered; outcomes of
    unknown tasks are kept while a submission is in flight and dropped when
    none is. The stream starts at the lowest id a registered or in-flight
    task can have (ids grow per session), so a running watch covers every
    task registered after it started.
    """

    def __init__(self, handle: Any, session_id: str) -> None:
        self._h = handle
        self._sid = session_id
        self._lock = threading.Lock()
        self._futures: Dict[int, concurrent.futures.Future] = {}
        self._early: Dict[int, tuple] = {}
        self._inflight: Dict[int, int] = {}  # token -> lowest id its task can have
        self._token = 0
        self._highest = 0  # highest id seen registered
        self._active = 0  # token of the completion thread running, 0: none

    def submit(self, input: Optional[bytes]) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._token += 1
            token = self._token
            self._inflight[token] = self._highest + 1
        try:
            tid = int(self._h.submit(input))
        except BaseException:
            with self._lock:
                del self._inflight[token]
                if not self._inflight:
                    self._early.clear()
            raise
        with self._lock:
            del self._inflight[token]
            self._highest = max(self._highest, tid)
            early = self._early.pop(tid, None)
            if early is None:
                self._futures[tid] = fut
            if not self._inflight:
                self._early.clear()
            start = bool(self._futures) and not self._active
            if start:
                self._active = token
        if early is not None:
            _complete(fut, self._sid, early)
        if start:
            threading.Thread(target=self._loop, args=(token,),
                             name=f"flame-completions-{self._sid}", daemon=True).start()
        return fut

    def _from(self) -> int:
        """The lowest id a registered or in-flight task can have (lock held)."""
        return min(list(self._futures) + list(self._inflight.values()))

    def _on_outcomes(self, outcomes: List[tuple], me: int) -> bool:
        done = []
        with self._lock:
            for o in outcomes:
                fut = self._futures.pop(o[0], None)
                if fut is not None:
                    done.append((fut, o))
                elif self._inflight:
                    self._early[o[0]] = o
            stop = not self._futures and not self._inflight
            if stop and self._active == me:
                self._active = 0  # the next run() starts a new thread
        for fut, o in done:
            _complete(fut, self._sid, o)
        return stop

    def _loop(self, me: int) -> None:
        """The completion thread `me`: watches until nothing is outstanding,
        or fails what is left when the session ends or the watch fails."""
        def on_outcomes(outcomes: List[tuple]) -> bool:
            return self._on_outcomes(outcomes, me)
        while True:
            with self._lock:
                for tid in [t for t, f in self._futures.items() if f.cancelled()]:
                    del self._futures[tid]
                if not self._futures and not self._inflight:
                    if self._active == me:
                        self._active = 0
                    return
                start = self._from()
            err: Optional[BaseException] = None
            try:
                ended = self._h.watch_outcomes(start, on_outcomes, _WATCH_SLICE_MS)
            except BaseException as e:  # handed to the futures
                ended, err = True, e
            if not ended:
                continue  # a slice passed: look again at what is outstanding
            with self._lock:
                if self._active != me:
                    # stopped by on_outcomes with nothing outstanding; what
                    # was registered since is another thread's
                    return
                # the session ended (or the watch failed) with futures left
                left = list(self._futures.values())
                self._futures.clear()
                self._active = 0
            if err is None:
                err = FlameError(FlameErrorCode.INVALID_STATE,
                                 f"session {self._sid} ended before its tasks did")
            for fut in left:
                _fail(fut, err)
            return


def _fail(fut: concurrent.futures.Future, err: BaseException) -> None:
    try:
        fut.set_exception(err)
    except concurrent.futures.InvalidStateError:
        pass  # cancelled by its caller


def _complete(fut: concurrent.futures.Future, sid: str, o: tuple) -> None:
    tid, state, output, message = o[0], o[1], o[2], o[3]
    try:
        if state == "Succeed":
            fut.set_result(output)
        elif state == "Failed":
            fut.set_exception(FlameError(FlameErrorCode.INTERNAL, message or "the task failed",
                                         "TASK_FAILED"))
        else:
            fut.set_exception(FlameError(FlameErrorCode.INVALID_STATE,
                                         message or f"task {tid} of session {sid} was cancelled",
                                         "CANCELLED"))
    except concurrent.futures.InvalidStateError:
        pass  # cancelled by its caller


_INFO_FIELDS = ("state", "creation_time", "completion_time", "pending", "running", "succeed",
                "failed", "cancelled", "events", "priority", "min_instances", "max_instances",
                "batch_size", "application")


class Session:
    """A session: its tasks run on executors bound to it, which keep state
    across them (flamepy's Session).

    Attributes (read from the server when first used, then kept: a
    snapshot, as flamepy's): id, application, state (SessionState),
    creation_time, completion_time (datetime or None), pending, running,
    succeed, failed, cancelled, events, priority, min_instances,
    max_instances, batch_size. `session["state"]` and the other keys of
    this package's earlier dicts still work.
    """

    id: SessionID
    application: str
    state: SessionState
    pending: int
    running: int
    succeed: int
    failed: int
    events: List[Event]

    def __init__(self, connection: Connection, id: SessionID, handle: Any = None) -> None:
        self.connection = connection
        self.id = id
        self._handle = handle
        self._info: Optional[Dict[str, Any]] = None
        self._common: Any = _UNKNOWN
        self._completions: Optional[_Completions] = None
        self._mutex = threading.Lock()

    @classmethod
    def _new(cls, conn: Connection, handle: Any, application: Optional[str] = None,
             common_data: Any = None) -> "Session":
        s = cls(conn, handle.id, handle)
        if application is not None:
            s.application = application
            s._common = bytes(common_data) if common_data is not None else None
        return s

    @classmethod
    def _from_info(cls, conn: Connection, d: Dict[str, Any]) -> "Session":
        s = cls(conn, d["id"])
        s._fill(d)
        return s

    def _fill(self, d: Dict[str, Any]) -> None:
        self._info = d
        self._common = d["common_data"]
        self.application = d["application"]
        self.state = SessionState[d["state"].upper()]
        self.creation_time = _time(d["creation_time"])
        self.completion_time = _time(d["completion_time"])
        for k in ("pending", "running", "succeed", "failed", "cancelled", "priority",
                  "min_instances", "max_instances", "batch_size"):
            setattr(self, k, d[k])
        self.events = _events(d["events"])

    def _load(self) -> Dict[str, Any]:
        if self._info is None:
            self._fill(self.connection._c.get_session(self.id))
        assert self._info is not None
        return self._info

    def __getattr__(self, name: str) -> Any:
        # only called for attributes not set yet: the server's view of it
        if name in _INFO_FIELDS:
            self._load()
            return self.__dict__[name]
        raise AttributeError(f"'Session' object has no attribute {name!r}")

    def __getitem__(self, key: str) -> Any:
        if key == "id":
            return self.id
        return self._load()[key]

    def refresh(self) -> "Session":
        """Reads the session's state and counts again; returns self."""
        self._fill(self.connection._c.get_session(self.id))
        return self

    @property
    def _h(self) -> Any:
        if self._handle is None:
            with self._mutex:
                if self._handle is None:
                    self._handle = self.connection._c.attach_session(self.id)
        return self._handle

    def common_data(self) -> Optional[bytes]:
        """The session's common data (bytes), or None."""
        if self._common is _UNKNOWN:
            self._load()
        return self._common

    # -- tasks -----------------------------------------------------------

    def create_task(self, input_data: Optional[bytes]) -> Task:
        """Submits a task without waiting for it; returns it as created."""
        _check_bytes(input_data, "input_data")
        return Task._from_dict(self._h.submit(input_data, True))

    def get_task(self, task_id: Union[TaskID, int]) -> Task:
        """The task with this id (FlameError NOT_FOUND when unknown)."""
        return Task._from_dict(self._h.get_task(str(task_id)))

    def list_tasks(self) -> List[Task]:
        """Every task of the session, in id order."""
        return [Task._from_dict(d) for d in self._h.list_tasks()]

    def watch_task(self, task_id: Union[TaskID, int], timeout: Optional[float] = None, *,
                   timeout_ms: Optional[int] = None) -> "TaskWatcher":
        """Iterates over the task at each state as it happens, the current
        one first, until it ends. timeout (seconds; flamepy's) or timeout_ms
        bounds the whole watch (FlameTimeoutError: a FlameError with status
        TIMEOUT that is also a TimeoutError)."""
        if timeout_ms is None:
            timeout_ms = -1 if timeout is None else max(1, int(timeout * 1000))
        return TaskWatcher(self._h, str(task_id), timeout_ms)

    def invoke(self, input_data: Optional[bytes]) -> Optional[bytes]:
        """Runs one task and returns its output (bytes, or None). A failed
        task raises FlameError (code INTERNAL, status TASK_FAILED) with the
        task's message."""
        _check_bytes(input_data, "input_data")
        return self._h.invoke(input_data)

    def run(self, input_data: Optional[bytes]) -> concurrent.futures.Future:
        """Submits one task and returns a concurrent.futures.Future of its
        output once the server has it. No thread per call: one thread per
        session completes the futures from the session's outcome stream.
        The future raises what invoke() raises."""
        _check_bytes(input_data, "input_data")
        if self._completions is None:
            with self._mutex:
                if self._completions is None:
                    self._completions = _Completions(self._h, self.id)
        return self._completions.submit(input_data)

    def map(self, inputs: Sequence[bytes]) -> List[Optional[bytes]]:
        """Runs one task per input and returns the outputs in input order:
        one batched submission and one outcome stream (the fast path).
        Raises FlameError with the first failed task's message."""
        return self._h.map(list(inputs))

    async def invoke_async(self, input_data: Optional[bytes]) -> Optional[bytes]:
        """invoke() for asyncio: awaits the task's output. The submission
        runs in the loop's default executor; the wait holds no thread."""
        loop = asyncio.get_running_loop()
        fut = await loop.run_in_executor(None, self.run, input_data)
        return await asyncio.wrap_future(fut)

    async def map_async(self, inputs: Sequence[bytes]) -> List[Optional[bytes]]:
        """map() for asyncio (runs in the loop's default executor)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.map, list(inputs))

    def close(self) -> None:
        """Closes the session: Pending tasks are cancelled; the attributes
        are read again on next use."""
        self._h.close()
        self._info = None
        for k in _INFO_FIELDS:
            if k != "application":
                self.__dict__.pop(k, None)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.close()
        return False

    def __repr__(self) -> str:
        return f"Session({self.id!r})"


_UNKNOWN = object()


class TaskWatcher:
    """Iterates over a task's states as they happen, until it ends
    (flamepy's TaskWatcher). The watch runs on a helper thread while the
    iterator is consumed."""

    def __init__(self, handle: Any, task_id: str, timeout_ms: int = -1) -> None:
        self._q: "queue.Queue[Any]" = queue.Queue()
        self._done = object()

        def watch() -> None:
            try:
                handle.watch_task(task_id, self._q.put, timeout_ms)
                self._q.put(self._done)
            except BaseException as e:  # handed to the consumer
                self._q.put(e)
        threading.Thread(target=watch, name=f"flame-watch-{task_id}", daemon=True).start()

    def __iter__(self) -> Iterator[Task]:
        return self

    def __next__(self) -> Task:
        item = self._q.get()
        if item is self._done:
            self._q.put(item)
            raise StopIteration
        if isinstance(item, BaseException):
            self._q.put(self._done)
            if isinstance(item, FlameError) and item.status == "TIMEOUT":
                raise FlameTimeoutError(item.code, item.message, item.status) from item
            raise item
        return Task._from_dict(item)


# -- the module-level functions (the default connection) --------------------

def connect(addr: Optional[str] = None, tls_config: Union[FlameClientTls, str, None] = None,
            cert_file: Optional[str] = None, key_file: Optional[str] = None, *,
            ca_file: Optional[str] = None) -> Connection:
    """Connects to a session manager and makes it the default of the
    module-level functions; returns the Connection.

    addr: None for $FLAME_ENDPOINT, then ~/.flame/flame.yaml, then
    http://127.0.0.1:8080. TLS: flamepy's tls_config (FlameClientTls), or
    this package's ca_file, cert_file, key_file (see Connection)."""
    global _default_connection
    if isinstance(tls_config, FlameClientTls):
        ca_file = ca_file or tls_config.ca_file
        cert_file = cert_file or tls_config.cert_file
        key_file = key_file or tls_config.key_file
    elif tls_config is not None:
        ca_file = tls_config
    c = Connection(addr, ca_file, cert_file, key_file)
    with _lock:
        _default_connection = c
    return c


class ConnectionInstance:
    """The default connection of the module-level functions (flamepy's
    name): made on first use from $FLAME_ENDPOINT, ~/.flame/flame.yaml
    ($FLAME_CONFIG) or http://127.0.0.1:8080, or set by connect()."""

    @classmethod
    def instance(cls) -> Connection:
        """The default connection, made on first use."""
        global _default_connection
        with _lock:
            if _default_connection is None:
                _default_connection = Connection(None)
            return _default_connection


def create_session(application: str, common_data: Optional[bytes] = None,
                   session_id: Optional[str] = None, min_instances: int = 0,
                   max_instances: Optional[int] = None, batch_size: int = 1,
                   resreq: Union[ResourceRequirement, str, None] = None, *,
                   priority: int = 0) -> Session:
    """Creates a session on the default connection (see
    Connection.create_session)."""
    return ConnectionInstance.instance().create_session(
        application, common_data, session_id, min_instances, max_instances, batch_size, resreq,
        priority=priority)


def open_session(session_id: SessionID,
                 spec: Union[SessionAttributes, Dict[str, Any], None] = None) -> Session:
    """Opens (or, with spec, gets or creates) a session (see
    Connection.open_session)."""
    return ConnectionInstance.instance().open_session(session_id, spec)


def get_session(session_id: SessionID) -> Session:
    """The session with this id."""
    return ConnectionInstance.instance().get_session(session_id)


def list_sessions() -> List[Session]:
    """Every session."""
    return ConnectionInstance.instance().list_sessions()


def close_session(session_id: SessionID) -> Session:
    """Closes a session and returns it."""
    return ConnectionInstance.instance().close_session(session_id)


def register_application(name: str,
                         app_attrs: Union[ApplicationAttributes, Dict[str, Any]]) -> None:
    """Registers an application (ApplicationAttributes or a dict of its
    fields)."""
    ConnectionInstance.instance().register_application(name, app_attrs)


def update_application(name: str,
                       app_attrs: Union[ApplicationAttributes, Dict[str, Any]]) -> None:
    """Replaces an application's spec."""
    ConnectionInstance.instance().update_application(name, app_attrs)


def unregister_application(name: str) -> None:
    """Unregisters an application."""
    ConnectionInstance.instance().unregister_application(name)


def get_application(name: str) -> Optional[Application]:
    """The application, or None when there is none of that name."""
    return ConnectionInstance.instance().get_application(name)


def list_applications() -> List[Application]:
    """Every application."""
    return ConnectionInstance.instance().list_applications()


def list_executors() -> List[Executor]:
    """Every executor."""
    return ConnectionInstance.instance().list_executors()


def list_nodes() -> List[Node]:
    """Every node."""
    return ConnectionInstance.instance().list_nodes()


class FlameContext:
    """The client's configuration as flamepy reads it: endpoint (from
    $FLAME_ENDPOINT, ~/.flame/flame.yaml or the default, as libflame
    resolves it) and the cache endpoint ($FLAME_CACHE_ENDPOINT or
    grpc://127.0.0.1:9090)."""

    def __init__(self) -> None:
        self._endpoint = _flame.Client(None).endpoint

    @property
    def endpoint(self) -> str:
        """The session manager's endpoint."""
        return self._endpoint or DEFAULT_FLAME_ENDPOINT

    @property
    def cache_endpoint(self) -> str:
        """The object cache's endpoint."""
        return os.environ.get("FLAME_CACHE_ENDPOINT", DEFAULT_FLAME_CACHE_ENDPOINT)

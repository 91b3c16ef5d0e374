"""Flame in C for Python: the client and service API of Flame (flamepy's
shape) over libflame's client core. Blocking calls release the GIL.

Client:   flame.create_session("app") -> Session; session.invoke(b"...")
Service:  class S(flame.FlameService): ...; flame.run(S())
"""
import concurrent.futures
import queue
import threading

from ._flame import Client, FlameError  # noqa: F401
from ._flame import Session as _Session
from ._flame import run as _run
from ._flame import version as _version

__all__ = [
    "FlameError", "Client", "Session", "FlameService", "SessionContext", "TaskContext",
    "connect", "create_session", "open_session", "get_session", "list_sessions",
    "close_session", "register_application", "unregister_application", "update_application",
    "get_application", "list_applications", "list_executors", "list_nodes", "run",
]

__version__ = _version()

_lock = threading.Lock()
_client = None


def connect(endpoint=None, ca_file=None, cert_file=None, key_file=None):
    """Connects to a session manager (default: $FLAME_ENDPOINT, then
    ~/.flame/flame.yaml, then http://127.0.0.1:8080) and makes it the
    default of the module-level functions.

    An https:// endpoint speaks TLS: ca_file verifies the server (default:
    the context's cluster.tls.ca_file, $FLAME_CA_FILE, else the system's
    roots); cert_file and key_file are the client's certificate (default:
    the context's, else $FLAME_CERT_FILE/$FLAME_KEY_FILE), required by a
    cluster with mutual TLS."""
    global _client
    c = Client(endpoint, ca_file, cert_file, key_file)
    with _lock:
        _client = c
    return c


def _default():
    global _client
    with _lock:
        if _client is None:
            _client = Client(None)
        return _client


class Session:
    """A session: tasks run on executors bound to it, which keep state."""

    _pool = None

    def __init__(self, handle):
        self._s = handle

    @property
    def id(self):
        return self._s.id

    def invoke(self, input):
        """Runs one task and returns its output (bytes, or None); raises
        FlameError with the task's message when it failed."""
        return self._s.invoke(input)

    def run(self, input):
        """Submits one task; returns a concurrent.futures.Future of its output
        (usable from asyncio through asyncio.wrap_future)."""
        if Session._pool is None:
            with _lock:
                if Session._pool is None:
                    Session._pool = concurrent.futures.ThreadPoolExecutor(max_workers=32)
        return Session._pool.submit(self._s.invoke, input)

    def map(self, inputs):
        """Submits a batch and returns the outputs in order."""
        return self._s.map(list(inputs))

    def list_tasks(self):
        return self._s.list_tasks()

    def get_task(self, task_id):
        return self._s.get_task(str(task_id))

    def watch_task(self, task_id, timeout_ms=-1):
        """Yields the task (a dict) at each state as it happens, the current
        one first, until it ends."""
        q = queue.Queue()
        done = object()

        def watch():
            try:
                self._s.watch_task(str(task_id), q.put, timeout_ms)
                q.put(done)
            except BaseException as e:  # handed to the consumer
                q.put(e)
        threading.Thread(target=watch, daemon=True).start()
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self):
        self._s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return f"Session({self.id!r})"


def create_session(application, common_data=None, session_id=None, min_instances=0,
                   max_instances=None, priority=0, resreq=None):
    return Session(_default().create_session(application, common_data, session_id,
                                             min_instances, max_instances, priority, resreq))


def open_session(session_id, spec=None):
    """Opens a session; with spec (a dict of create_session's arguments) it
    is created when absent."""
    if spec is None:
        return Session(_default().open_session(session_id))
    spec = dict(spec)
    app = spec.pop("application")
    return Session(_default().create_session(app, session_id=session_id, open=True, **spec))


def get_session(session_id):
    return _default().get_session(session_id)


def list_sessions():
    return _default().list_sessions()


def close_session(session_id):
    _default().open_session(session_id).close()


def register_application(name, attrs):
    _default().register_application(name, dict(attrs))


def update_application(name, attrs):
    _default().register_application(name, dict(attrs), update=True)


def unregister_application(name):
    _default().unregister_application(name)


def get_application(name):
    return _default().get_application(name)


def list_applications():
    return _default().list_applications()


def list_executors():
    return _default().list_executors()


def list_nodes():
    return _default().list_nodes()


class SessionContext:
    def __init__(self, d):
        self.session_id = d["session_id"]
        self.application = d["application"]
        self.common_data = d["common_data"]


class TaskContext:
    def __init__(self, d):
        self.task_id = d["task_id"]
        self.session_id = d["session_id"]
        self.input = d["input"]


class FlameService:
    """Subclass and override; run with flame.run(service)."""

    def on_session_enter(self, context):
        pass

    def on_task_invoke(self, context):
        return None

    def on_session_leave(self):
        pass

    # called by the extension
    def _enter(self, d):
        self.on_session_enter(SessionContext(d))

    def _invoke(self, d):
        out = self.on_task_invoke(TaskContext(d))
        if isinstance(out, str):
            out = out.encode()
        return out

    def _leave(self):
        self.on_session_leave()


def run(service):
    """Serves the service under a Flame executor manager (host shim) until it
    is told to stop."""
    _run(service)

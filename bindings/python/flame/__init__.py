"""Flame in C for Python: Flame's client and service API, in flamepy 0.6's
shapes, over libflame (a C extension; no other dependency). A program
written for flamepy's core API runs after `import flame as flamepy`.

Client:   flame.create_session("app") -> Session; session.invoke(b"..."),
          session.run(b"...") -> Future, session.map([...]),
          await session.invoke_async(b"...")
Service:  class S(flame.FlameService): ...; flame.run(S())
Errors:   flame.FlameError with .code (FlameErrorCode), .message, .status
Cache:    ref = flame.put_object("app/session", obj); flame.get_object(ref)

Blocking calls release the GIL.
"""
from . import _flame
from .cache import (
    WILDCARD_SESSION,
    ObjectRef,
    delete_objects,
    get_object,
    patch_object,
    put_object,
    update_object,
)
from .client import (
    Client,
    Connection,
    ConnectionInstance,
    FlameContext,
    Session,
    TaskWatcher,
    close_session,
    connect,
    create_session,
    get_application,
    get_session,
    list_applications,
    list_executors,
    list_nodes,
    list_sessions,
    open_session,
    register_application,
    unregister_application,
    update_application,
)
from .service import (
    FLAME_INSTANCE_ENDPOINT,
    ApplicationContext,
    FlameService,
    SessionContext,
    TaskContext,
    run,
)
from .types import (
    DEFAULT_FLAME_CACHE_ENDPOINT,
    DEFAULT_FLAME_CONF,
    DEFAULT_FLAME_ENDPOINT,
    Application,
    ApplicationAttributes,
    ApplicationID,
    ApplicationSchema,
    ApplicationState,
    CommonData,
    Event,
    Executor,
    FlameClientTls,
    FlameContextRunner,
    FlameError,
    FlameErrorCode,
    FlamePackage,
    FlameTimeoutError,
    Message,
    Node,
    ResourceRequirement,
    SessionAttributes,
    SessionID,
    SessionState,
    Shim,
    Task,
    TaskID,
    TaskInformer,
    TaskInput,
    TaskOutput,
    TaskState,
    short_name,
)

_flame._set_error_factory(FlameError._from_status)

__version__: str = _flame.version()

__all__ = [
    # type aliases
    "TaskID", "SessionID", "ApplicationID", "Message", "TaskInput", "TaskOutput", "CommonData",
    # constants
    "DEFAULT_FLAME_CONF", "DEFAULT_FLAME_ENDPOINT", "DEFAULT_FLAME_CACHE_ENDPOINT",
    "FLAME_INSTANCE_ENDPOINT",
    # enums
    "SessionState", "TaskState", "ApplicationState", "FlameErrorCode", "Shim",
    # errors
    "FlameError", "FlameTimeoutError",
    # records
    "Event", "ResourceRequirement", "SessionAttributes", "ApplicationSchema",
    "ApplicationAttributes", "Task", "Application", "Executor", "Node", "FlamePackage",
    "FlameContextRunner", "FlameClientTls", "TaskInformer", "FlameContext", "short_name",
    # client
    "connect", "create_session", "open_session", "register_application", "update_application",
    "unregister_application", "list_applications", "list_executors", "list_nodes",
    "get_application", "list_sessions", "get_session", "close_session",
    "Connection", "ConnectionInstance", "Client", "Session", "TaskWatcher",
    # service
    "ApplicationContext", "SessionContext", "TaskContext", "FlameService", "run",
    # object cache
    "ObjectRef", "WILDCARD_SESSION", "get_object", "put_object", "update_object", "patch_object",
    "delete_objects",
]

from . import core  # noqa: E402,F401  (flamepy.core's names, as flamepy.core is reachable)

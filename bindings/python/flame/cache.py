"""flamepy 0.6's object cache functions (put_object, get_object,
update_object, patch_object, ObjectRef) over libflame's cache client (Arrow
Flight, as Flame's cache speaks it), with no dependency beyond the standard
library.

Objects are pickled with flamepy's marker for pickled data, so flamepy reads
what this package writes and this package reads what flamepy pickles
(cloudpickle's output for importable types). flamepy's native numpy/Arrow
encodings need those libraries: reading one raises FlameError
(INVALID_ARGUMENT).

The cache endpoint: $FLAME_CACHE_ENDPOINT, else grpc://127.0.0.1:9090; TLS
roots for grpcs:// from $FLAME_CA_FILE, else the system's.

Threads: every function may be called from any thread; one cache client per
endpoint is shared.
"""
import os
import pickle
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from . import _flame
from .types import DEFAULT_FLAME_CACHE_ENDPOINT, FlameError, FlameErrorCode

WILDCARD_SESSION = "*"

# flamepy's markers in front of an object's bytes
_PICKLED = b"FLM\x00"
_NATIVE = {b"FLM\x01": "numpy", b"FLM\x02": "an Arrow table", b"FLM\x03": "an Arrow array",
           b"FLM\x04": "an Arrow record batch"}

Deserializer = Callable[[Any, List[Any]], Any]

_lock = threading.Lock()
_clients: Dict[str, Any] = {}


@dataclass
class ObjectRef:
    """A reference to a cached object (flamepy's ObjectRef): the cache's
    endpoint, the key "<app>/<session>/<id>" and the version (0: fetch
    afresh)."""

    endpoint: str
    key: str
    version: int = 0

    def encode(self) -> bytes:
        """The BSON document {endpoint, key, version}, as flamepy encodes
        it."""
        return _flame.ref_encode(self.endpoint, self.key, self.version)

    @classmethod
    def decode(cls, data: bytes) -> "ObjectRef":
        """The ObjectRef of a BSON document made by encode() or flamepy."""
        return cls(*_flame.ref_decode(bytes(data)))


def _endpoint() -> str:
    return os.environ.get("FLAME_CACHE_ENDPOINT") or DEFAULT_FLAME_CACHE_ENDPOINT


def _client(endpoint: Optional[str] = None) -> Any:
    ep = endpoint or _endpoint()
    with _lock:
        c = _clients.get(ep)
        if c is None:
            c = _clients[ep] = _flame.Cache(ep)
        return c


def _dumps(obj: Any) -> bytes:
    return _PICKLED + pickle.dumps(obj, protocol=pickle.DEFAULT_PROTOCOL)


def _loads(data: bytes) -> Any:
    head = data[:4]
    if head == _PICKLED:
        return pickle.loads(data[4:])
    if head in _NATIVE:
        raise FlameError(FlameErrorCode.INVALID_ARGUMENT,
                         f"the object is {_NATIVE[head]} in flamepy's native encoding: "
                         "read it with flamepy (numpy/pyarrow)")
    return pickle.loads(data)


def _ref(t: tuple) -> ObjectRef:
    return ObjectRef(t[0], t[1], int(t[2]))


def put_object(key_prefix: str, obj: Any) -> ObjectRef:
    """Stores obj (pickled) as a new object under "<app>/<session>" and
    returns its reference."""
    if key_prefix.count("/") != 1 or not all(key_prefix.split("/")):
        raise FlameError(FlameErrorCode.INVALID_ARGUMENT,
                         f"key prefix {key_prefix!r} is not <app>/<session>")
    return _ref(_client().put(key_prefix, _dumps(obj)))


def get_object(ref: ObjectRef, deserializer: Optional[Deserializer] = None) -> Any:
    """The object ref points at: its base, or with a deserializer,
    deserializer(base, [patches in order])."""
    _version, _nm, base, patches = _client(ref.endpoint).fetch(ref.key, 0)
    value = _loads(base) if base is not None else None
    if deserializer is None:
        return value
    return deserializer(value, [_loads(p) for _v, p in patches])


def update_object(ref: ObjectRef, new_obj: Any) -> ObjectRef:
    """Replaces the object (base and patches) with new_obj; returns the new
    reference."""
    return _ref(_client(ref.endpoint).put(ref.key, _dumps(new_obj)))


def patch_object(ref: ObjectRef, delta: Any) -> ObjectRef:
    """Appends delta to the object's patches (get_object's deserializer
    sees them); returns the new reference. FlameError NOT_FOUND when the
    object does not exist."""
    return _ref(_client(ref.endpoint).put(ref.key, _dumps(delta), patch=True))


def delete_objects(pattern: str, endpoint: Optional[str] = None) -> None:
    """Deletes an object ("<app>/<session>/<id>"), a session's objects
    ("<app>/<session>") or every session's of an app ("<app>/*")."""
    _client(endpoint).delete(pattern)

"""Flame 0.7's cache protocol, flame.v1.ObjectCacheService (proto/cache07.proto,
copied from flame-rs 0.7.0), served by flame-object-cache beside Arrow Flight
over one store: grpcio with stubs made here from the proto (grpcio-tools comes
with flamepy 0.6.0), and the cross-protocol mapping both ways (pyarrow.flight,
flamepy 0.6.0's cache functions). ECOSYSTEM.md section 9 is the contract."""
import importlib
import os
import sys

import bson
import grpc
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from grpc_tools import protoc

import flamepy.core.cache as fc

from conftest import cargo_build
from test_cache import batch, get as flight_get, put as flight_put, use_cache

PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
MiB = 1 << 20


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """cache07_pb2 and cache07_pb2_grpc, generated from proto/cache07.proto."""
    out = tmp_path_factory.mktemp("pb")
    rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"--python_out={out}",
                      f"--grpc_python_out={out}", os.path.join(PROTO_DIR, "cache07.proto")])
    assert rc == 0
    sys.path.insert(0, str(out))
    m = importlib.import_module("cache07_pb2")
    g = importlib.import_module("cache07_pb2_grpc")
    return m, g


@pytest.fixture
def cache(object_cache):
    return object_cache()


@pytest.fixture
def stub(cache, pb):
    ch = grpc.insecure_channel(f"127.0.0.1:{cache.port}",
                               options=[("grpc.max_receive_message_length", 64 * MiB)])
    yield pb[1].ObjectCacheServiceStub(ch)
    ch.close()


@pytest.fixture
def flight(cache):
    c = fl.FlightClient(cache.location)
    yield c
    c.close()


def header(pb, key, data_type="raw"):
    return pb[0].CacheWriteRequest(header=pb[0].CacheWriteHeader(key=key, data_type=data_type))


def chunks(pb, data, size=MiB):
    return [pb[0].CacheWriteRequest(data=data[i:i + size]) for i in range(0, len(data), size)]


def put07(stub, pb, key, data, data_type="raw", patch=False):
    msgs = [header(pb, key, data_type)] + chunks(pb, data)
    return (stub.Patch if patch else stub.Put)(iter(msgs), timeout=60)


def get07(stub, pb, key, version=0):
    """(header, [(part version, bytes)]) of a Get."""
    it = stub.Get(pb[0].CacheGetRequest(key=key, version=version), timeout=60)
    first = next(it)
    assert first.WhichOneof("payload") == "header"
    parts = []
    for m in it:
        assert m.WhichOneof("payload") == "chunk"
        if parts and parts[-1][0] == m.chunk.version:
            parts[-1] = (m.chunk.version, parts[-1][1] + m.chunk.data)
        else:
            assert m.chunk.version == (parts[-1][0] + 1 if parts else max(version, 0) + 1)
            parts.append((m.chunk.version, m.chunk.data))
    return first.header, parts


def test_put_get_patch_versions(stub, pb, cache):
    md = put07(stub, pb, "app/ssn", b"first", "client.codec.v1")
    assert md.key.startswith("app/ssn/") and len(md.key.split("/")[2]) == 36
    assert md.version == 1 and md.size == 5 and md.data_type == "client.codec.v1"
    assert md.endpoint == cache.uri and md.creation_time > 1_600_000_000_000
    key = md.key
    assert put07(stub, pb, key, b"second", "client.codec.v1", patch=True).version == 2
    md = put07(stub, pb, key, b"", "client.codec.v1", patch=True)
    assert md.version == 3 and md.size == 11
    h, parts = get07(stub, pb, key)
    assert (h.version, h.data_type) == (3, "client.codec.v1")
    assert parts == [(1, b"first"), (2, b"second"), (3, b"")]  # an empty part: one empty chunk
    assert get07(stub, pb, key, 1)[1] == [(2, b"second"), (3, b"")]
    h, parts = get07(stub, pb, key, 3)
    assert h.version == 3 and parts == []
    with pytest.raises(grpc.RpcError) as e:
        get07(stub, pb, key, 4)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid version 4" in e.value.details()
    # a Put to the full key replaces the object and its patches: version 1 again
    md = put07(stub, pb, key, b"new", "other")
    assert (md.version, md.data_type) == (1, "other")
    assert get07(stub, pb, key) == (pb[0].CacheGetHeader(version=1, data_type="other"),
                                    [(1, b"new")])
    # a patch must bring the object's type
    with pytest.raises(grpc.RpcError) as e:
        put07(stub, pb, key, b"x", "raw", patch=True)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "data_type" in e.value.details()


def test_big_objects_are_chunked(stub, pb):
    data = os.urandom(2 * MiB + 17)
    key = put07(stub, pb, "app/ssn/big", data).key
    it = stub.Get(pb[0].CacheGetRequest(key=key), timeout=60)
    sizes = [len(m.chunk.data) for m in it if m.WhichOneof("payload") == "chunk"]
    assert sizes == [MiB, MiB, 17]
    assert get07(stub, pb, key)[1] == [(1, data)]


def test_metadata_list_delete(stub, pb):
    a = put07(stub, pb, "app/s1/a", b"aaaa")
    put07(stub, pb, "app/s1/b", b"bb")
    put07(stub, pb, "app/s2/c", b"c")
    put07(stub, pb, "other/s1/d", b"d")
    md = stub.GetMetadata(pb[0].CacheGetMetadataRequest(key="app/s1/a"))
    assert (md.key, md.version, md.size, md.data_type) == ("app/s1/a", 1, 4, "raw")
    assert md.creation_time == a.creation_time
    listed = {m.key: m.size for m in stub.List(pb[0].CacheListRequest())}
    assert listed == {"app/s1/a": 4, "app/s1/b": 2, "app/s2/c": 1, "other/s1/d": 1}
    stub.Delete(pb[0].CacheDeleteRequest(key="app/s1/a"))
    stub.Delete(pb[0].CacheDeleteRequest(key="app/s1"))
    assert {m.key for m in stub.List(pb[0].CacheListRequest())} == {"app/s2/c", "other/s1/d"}
    stub.Delete(pb[0].CacheDeleteRequest(key="app/*"))
    assert [m.key for m in stub.List(pb[0].CacheListRequest())] == ["other/s1/d"]
    for call, req in ((stub.GetMetadata, pb[0].CacheGetMetadataRequest(key="app/s2/c")),
                      (lambda r: list(stub.Get(r)), pb[0].CacheGetRequest(key="app/s2/c"))):
        with pytest.raises(grpc.RpcError) as e:
            call(req)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert "object app/s2/c not found" in e.value.details()


@pytest.mark.parametrize("key", ["", "app", "../x/y", "a/b/c/d", "a//c", "app/*/x", "a/b\\c/d"])
def test_bad_keys(stub, pb, key):
    for call in (lambda: put07(stub, pb, key, b"x"),
                 lambda: list(stub.Get(pb[0].CacheGetRequest(key=key))),
                 lambda: stub.GetMetadata(pb[0].CacheGetMetadataRequest(key=key))):
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, key


def test_stream_errors(stub, pb, cache):
    req = pb[0].CacheWriteRequest

    def fails(msgs, method=stub.Put, code=grpc.StatusCode.INVALID_ARGUMENT):
        with pytest.raises(grpc.RpcError) as e:
            method(iter(msgs), timeout=60)
        assert e.value.code() == code
        return e.value.details()

    assert "data before the header" in fails([req(data=b"x"), header(pb, "a/b/c")])
    assert "a second header" in fails([header(pb, "a/b/c"), req(data=b"x"), header(pb, "a/b/c")])
    assert "no header" in fails([])
    assert "neither header nor data" in fails([req()])
    assert "neither header nor data" in fails([header(pb, "a/b/c"), req()])
    assert "at most 1048576" in fails([header(pb, "a/b/c"), req(data=b"x" * (MiB + 1))])
    assert "longer than" in fails([header(pb, "a/b/c", "t" * 257)])
    assert "longer than" in fails([header(pb, "a/b/" + "k" * 2000)])
    # Patch: a full key of an existing object
    assert "Patch needs" in fails([header(pb, "a/b")], stub.Patch)
    assert "not found for patch" in fails([header(pb, "a/b/none")], stub.Patch,
                                          grpc.StatusCode.NOT_FOUND)
    # a header without chunks stores an empty payload
    md = stub.Put(iter([header(pb, "a/b/empty")]))
    assert (md.version, md.size) == (1, 0)
    assert get07(stub, pb, "a/b/empty")[1] == [(1, b"")]
    assert cache.alive()


def test_object_size_limit(object_cache, pb):
    c = object_cache(args=["--max-object-size", "3M"])
    stub = pb[1].ObjectCacheServiceStub(grpc.insecure_channel(f"127.0.0.1:{c.port}"))
    with pytest.raises(grpc.RpcError) as e:
        put07(stub, pb, "a/b/c", b"x" * (4 * MiB))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert put07(stub, pb, "a/b/c", b"x" * (2 * MiB)).version == 1


# ---- one store, two protocols -------------------------------------------------------------


def test_flight_put_reads_through_07_and_back(stub, pb, flight):
    ref = flight_put(flight, fl.FlightDescriptor.for_path("app/ssn"), b"from flight")
    assert ref["version"] == 1
    key = ref["key"]
    flight_put(flight, fl.FlightDescriptor.for_command(f"PATCH:{key}".encode()), b"+patch")
    h, parts = get07(stub, pb, key)
    assert (h.version, h.data_type) == (2, "raw")  # a version is the number of parts
    assert parts == [(1, b"from flight"), (2, b"+patch")]
    # a 0.7 patch is a Flight patch
    assert put07(stub, pb, key, b"+07", patch=True).version == 3
    t = flight_get(flight, key)
    assert t.column("data").to_pylist() == [b"from flight", b"+patch", b"+07"]
    assert t.column("kind").to_pylist() == ["base", "patch", "patch"]
    # the Flight versions go on as before: two patches after the base
    assert t.column("version").to_pylist() == [1, 2, 3]


def test_07_put_reads_through_flight(stub, pb, flight):
    md = put07(stub, pb, "app/ssn", b"from 0.7", "raw.zstd")
    t = flight_get(flight, md.key + ":0")
    assert t.column("data").to_pylist() == [b"from 0.7"]
    # a Flight update has no data_type: the object is "raw" again
    flight_put(flight, fl.FlightDescriptor.for_path(md.key), b"flight update")
    h, parts = get07(stub, pb, md.key)
    assert (h.version, h.data_type, parts) == (1, "raw", [(1, b"flight update")])
    # ListFlights sees 0.7 objects, List sees Flight ones
    assert md.key in [f.descriptor.path[0].decode() for f in flight.list_flights()]
    flight_put(flight, fl.FlightDescriptor.for_path("app/ssn/f"), b"f")
    assert "app/ssn/f" in [m.key for m in stub.List(pb[0].CacheListRequest())]
    # and a Delete through one is gone from the other
    stub.Delete(pb[0].CacheDeleteRequest(key="app/ssn/f"))
    with pytest.raises(pa.ArrowException):
        flight_get(flight, "app/ssn/f")


def test_native_table_is_an_arrow_stream(stub, pb, flight):
    table = pa.table({"a": [1, 2, 3], "b": ["x", None, "z"]}).replace_schema_metadata(
        {b"flame.cache.format": b"arrow-table-v1", b"flame.cache.version": b"0"})
    w, r = flight.do_put(fl.FlightDescriptor.for_path("app/ssn/tab"), table.schema)
    w.write_table(table, max_chunksize=2)
    w.done_writing()
    bson.decode(bytes(r.read()))
    w.close()
    h, parts = get07(stub, pb, "app/ssn/tab")
    assert (h.version, h.data_type, len(parts)) == (1, "arrow.stream", 1)
    back = pa.ipc.open_stream(parts[0][1]).read_all()
    assert back.to_pydict() == table.to_pydict()
    assert back.schema.metadata[b"flame.cache.version"] == b"1"
    with pytest.raises(grpc.RpcError) as e:
        put07(stub, pb, "app/ssn/tab", b"x", "arrow.stream", patch=True)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_flamepy_06_objects_through_07(stub, pb, cache):
    use_cache(cache.endpoint)
    import cloudpickle
    ref = fc.put_object("app/ssn", {"answer": 42})
    h, parts = get07(stub, pb, ref.key)
    # flamepy's own bytes: a type marker, then the pickle
    assert h.data_type == "raw" and fc._deserialize_object_data(parts[0][1]) == {"answer": 42}
    # what a 0.7 client puts, flamepy 0.6.0 reads (its pickled bytes)
    md = put07(stub, pb, "app/ssn", cloudpickle.dumps([1, 2, 3]))
    assert fc.get_object(fc.ObjectRef(endpoint=md.endpoint, key=md.key, version=0)) == [1, 2, 3]
    put07(stub, pb, md.key, cloudpickle.dumps([4]), patch=True)
    merge = lambda base, deltas: base + [x for d in deltas for x in d]  # noqa: E731
    got = fc.get_object(fc.ObjectRef(endpoint=md.endpoint, key=md.key, version=0),
                        deserializer=merge)
    assert got == [1, 2, 3, 4]


def test_fs_store_keeps_data_type_and_parts(object_cache, pb, tmp_path):
    store = tmp_path / "store"
    c = object_cache(storage=store)
    stub = pb[1].ObjectCacheServiceStub(grpc.insecure_channel(f"127.0.0.1:{c.port}"))
    key = put07(stub, pb, "app/ssn/obj", b"base", "my.type").key
    put07(stub, pb, key, b"delta", "my.type", patch=True)
    created = stub.GetMetadata(pb[0].CacheGetMetadataRequest(key=key)).creation_time
    assert (store / "app/ssn/obj.type").read_text() == "my.type"
    c.stop()
    c2 = object_cache(storage=store)
    stub = pb[1].ObjectCacheServiceStub(grpc.insecure_channel(f"127.0.0.1:{c2.port}"))
    h, parts = get07(stub, pb, key)
    assert (h.version, h.data_type, parts) == (2, "my.type", [(1, b"base"), (2, b"delta")])
    md = stub.GetMetadata(pb[0].CacheGetMetadataRequest(key=key))
    # after a restart: the file's mtime, written before the put's own clock reading
    assert created - 600_000 < md.creation_time <= created
    # a raw put drops the type file; a delete removes it
    put07(stub, pb, key, b"raw now")
    assert not (store / "app/ssn/obj.type").exists()
    put07(stub, pb, key, b"typed", "t2")
    stub.Delete(pb[0].CacheDeleteRequest(key=key))
    assert not (store / "app/ssn/obj.type").exists()
    assert not (store / "app/ssn/obj.arrow").exists()


def test_tls(object_cache, pki, pb):
    c = object_cache(tls=(pki / "server.crt", pki / "server.key"))
    creds = grpc.ssl_channel_credentials((pki / "ca.crt").read_bytes())
    stub = pb[1].ObjectCacheServiceStub(grpc.secure_channel(f"127.0.0.1:{c.port}", creds))
    md = put07(stub, pb, "app/ssn", b"secret")
    assert md.endpoint.startswith("grpc+tls://")
    assert get07(stub, pb, md.key)[1] == [(1, b"secret")]


# ---- flame-rs 0.7.0's own cache client (tests/ecosystem/rust-cache07) ----------------------

RUST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rust-cache07")


@pytest.fixture(scope="module")
def rust_cache_bin():
    """Builds the crate (the target dir is shared with tests/ecosystem/rust: the
    dependencies are built once per machine)."""
    return cargo_build(RUST_DIR, "flame07-cache")[0]


def run_rust(binary, cache, arg, ca_file=None):
    """Runs flame07-cache with a flame.yaml of its own (flame-rs's put_object reads one)."""
    import subprocess
    import tempfile
    home = tempfile.mkdtemp(prefix="rs-cache07-", dir=os.environ["HOME"])
    os.makedirs(os.path.join(home, ".flame"))
    tls = f"\n      tls: {{ca_file: '{ca_file}'}}" if ca_file else ""
    with open(os.path.join(home, ".flame", "flame.yaml"), "w") as f:
        f.write("current-context: flame\ncontexts:\n  - name: flame\n"
                "    cluster: {endpoint: 'http://127.0.0.1:9'}\n"
                f"    cache:\n      endpoint: '{cache.endpoint}'{tls}\n")
    # flame-rs lets FLAME_* variables override the file (an earlier test's use_cache set some)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAME_")}
    env["HOME"] = home
    p = subprocess.run([binary, arg], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"flame07-cache failed:\n{p.stdout}\n{p.stderr}"
    return p.stdout


def test_flame_rs_cache_client(rust_cache_bin, cache, flight):
    key = flight_put(flight, fl.FlightDescriptor.for_path("app/ssn"), b"from flight")["key"]
    flight_put(flight, fl.FlightDescriptor.for_command(f"PATCH:{key}".encode()), b"+flight")
    out = run_rust(rust_cache_bin, cache, key)
    for step in ("put/patch/get ok", "big ok", "objectref ok", "flight object ok", "delete ok"):
        assert step in out, out
    keep, version = [ln.split()[1:] for ln in out.splitlines() if ln.startswith("KEEP ")][0]
    assert version == "2"
    # what flame-rs put and patched, Flight reads: base and patch
    t = flight_get(flight, keep + ":0")
    assert t.column("data").to_pylist() == [b"for flight", b"+07"]
    # the package, as the grpc:// installer reads it (DoGet <key>:0, data concatenated)
    pkg, size = [ln.split()[1:] for ln in out.splitlines() if ln.startswith("PKG ")][0]
    data = b"".join(flight_get(flight, pkg + ":0").column("data").to_pylist())
    assert len(data) == int(size) and data == bytes(i % 241 for i in range(int(size)))
    assert sorted(f.descriptor.path[0].decode() for f in flight.list_flights()) == \
        sorted([key, keep, pkg])


def test_flame_rs_cache_client_tls(rust_cache_bin, object_cache, pki):
    c = object_cache(tls=(pki / "server.crt", pki / "server.key"))
    f = fl.FlightClient(c.location, tls_root_certs=(pki / "ca.crt").read_bytes())
    key = flight_put(f, fl.FlightDescriptor.for_path("app/ssn"), b"from flight")["key"]
    flight_put(f, fl.FlightDescriptor.for_command(f"PATCH:{key}".encode()), b"+flight")
    out = run_rust(rust_cache_bin, c, key, ca_file=pki / "ca.crt")
    assert "delete ok" in out and "KEEP " in out, out
    f.close()


def test_evicted_objects_keep_their_metadata(object_cache, pb, tmp_path):
    """With an fs store, evicted objects leave memory only: List still tells
    their versions, sizes and types, and Get loads them back."""
    c = object_cache(storage=tmp_path / "store", args=["--max-objects", "1"])
    stub = pb[1].ObjectCacheServiceStub(grpc.insecure_channel(f"127.0.0.1:{c.port}"))
    for i in range(4):
        put07(stub, pb, f"app/ssn/o{i}", b"b" * (i + 1), f"t{i}")
        for _ in range(i):
            put07(stub, pb, f"app/ssn/o{i}", b"p", f"t{i}", patch=True)
    listed = {m.key: (m.version, m.size, m.data_type) for m in stub.List(pb[0].CacheListRequest())}
    assert listed == {f"app/ssn/o{i}": (i + 1, 2 * i + 1, f"t{i}") for i in range(4)}
    for i in range(4):
        h, parts = get07(stub, pb, f"app/ssn/o{i}")
        assert (h.version, h.data_type) == (i + 1, f"t{i}")
        assert parts == [(1, b"b" * (i + 1))] + [(v, b"p") for v in range(2, i + 2)]


def test_mutual_tls(object_cache, pki, pb):
    c = object_cache(tls=(pki / "server.crt", pki / "server.key"),
                     args=["--tls-ca", str(pki / "ca.crt"), "--mtls"])
    ca = (pki / "ca.crt").read_bytes()
    anon = pb[1].ObjectCacheServiceStub(
        grpc.secure_channel(f"127.0.0.1:{c.port}", grpc.ssl_channel_credentials(ca)))
    with pytest.raises(grpc.RpcError):
        put07(anon, pb, "app/ssn", b"x")
    creds = grpc.ssl_channel_credentials(ca, (pki / "user.key").read_bytes(),
                                         (pki / "user.crt").read_bytes())
    me = pb[1].ObjectCacheServiceStub(grpc.secure_channel(f"127.0.0.1:{c.port}", creds))
    assert get07(me, pb, put07(me, pb, "app/ssn", b"mine").key)[1] == [(1, b"mine")]

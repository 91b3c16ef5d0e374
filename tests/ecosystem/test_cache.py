"""The object cache (flame-object-cache) with Flame's clients: pyarrow.flight
for every RPC, and flamepy 0.6.0's own cache functions (flamepy.core.cache),
plain and TLS. ECOSYSTEM.md section 1 is the contract."""
import os

import bson
import grpc
import pyarrow as pa
import pyarrow.flight as fl
import pytest

import flamepy.core.cache as fc

SVC = "/arrow.flight.protocol.FlightService/"
OPAQUE = pa.schema([("version", pa.uint64()), ("data", pa.binary())])


def batch(data):
    return pa.RecordBatch.from_arrays([pa.array([0], pa.uint64()), pa.array([data], pa.binary())],
                                      schema=OPAQUE)


def put(client, descriptor, *chunks, schema=OPAQUE):
    w, r = client.do_put(descriptor, schema)
    for c in chunks:
        w.write_batch(batch(c) if isinstance(c, bytes) else c)
    w.done_writing()
    buf = r.read()
    w.close()
    return bson.decode(bytes(buf))


def get(client, ticket):
    return client.do_get(fl.Ticket(ticket.encode())).read_all()


def code_of(exc):
    return type(exc).__name__


@pytest.fixture
def cache(object_cache):
    return object_cache()


@pytest.fixture
def client(cache):
    c = fl.FlightClient(cache.location)
    yield c
    c.close()


def test_list_actions_and_schema(client):
    acts = list(client.list_actions())
    assert [a.type for a in acts] == ["DELETE"]
    s = client.get_schema(fl.FlightDescriptor.for_path("a/b/c")).schema
    assert s.names == ["version", "kind", "data"]
    assert s.types == [pa.uint64(), pa.string(), pa.binary()]


def test_put_get_versions_and_patches(client, cache):
    ref = put(client, fl.FlightDescriptor.for_path("app/ssn"), b"hello")
    app, ssn, oid = ref["key"].split("/")
    assert (app, ssn) == ("app", "ssn") and len(oid) == 36 and oid[14] == "4"
    assert ref["version"] == 1 and ref["endpoint"] == cache.uri
    key = ref["key"]

    t = get(client, key)
    assert t.to_pydict() == {"version": [1], "kind": ["base"], "data": [b"hello"]}
    assert get(client, key + ":0").num_rows == 1
    nm = get(client, key + ":1")  # not modified: the schema alone
    assert nm.num_rows == 0 and nm.schema.names == ["version", "kind", "data"]

    # a multi-row, multi-batch upload is concatenated; the client's version is ignored
    ref = put(client, fl.FlightDescriptor.for_path(key), b"ab", b"cd",
              pa.RecordBatch.from_arrays([pa.array([7, 9], pa.uint64()),
                                          pa.array([b"e", b"f"], pa.binary())], schema=OPAQUE))
    assert ref["version"] == 2
    assert get(client, key + ":0").to_pydict()["data"] == [b"abcdef"]

    p = fl.FlightDescriptor.for_command(f"PATCH:{key}".encode())
    assert put(client, p, b"+1")["version"] == 3
    assert put(client, p, b"+2")["version"] == 4
    assert get(client, key + ":2").to_pydict() == {
        "version": [3, 4], "kind": ["patch", "patch"], "data": [b"+1", b"+2"]}
    assert get(client, key + ":3").to_pydict()["data"] == [b"+2"]
    full = get(client, key + ":0").to_pydict()
    assert full["kind"] == ["base", "patch", "patch"] and full["version"] == [2, 3, 4]
    # an older client version than the base: the full object
    assert get(client, key + ":1").to_pydict()["kind"] == ["base", "patch", "patch"]
    # a client ahead of the server: the full object
    assert get(client, key + ":99").to_pydict()["kind"] == ["base", "patch", "patch"]

    # PUT replaces the base and drops the deltas; the version goes on
    assert put(client, fl.FlightDescriptor.for_path(key), b"new")["version"] == 5
    assert get(client, key).to_pydict() == {"version": [5], "kind": ["base"], "data": [b"new"]}

    with pytest.raises(pa.ArrowException) as e:
        put(client, fl.FlightDescriptor.for_command(b"PATCH:app/ssn/missing"), b"x")
    assert "object app/ssn/missing not found for patch" in str(e.value)
    with pytest.raises(pa.ArrowException) as e:
        get(client, "app/ssn/missing")
    assert "object app/ssn/missing not found" in str(e.value)


def test_native_table_round_trip(client):
    table = pa.table({"a": [1, 2, 3], "b": ["x", None, "z"],
                      "c": pa.array([[1], [], [2, 3]], pa.list_(pa.int32()))})
    md = {b"flame.cache.format": b"arrow-table-v1", b"flame.cache.version": b"0",
          b"flame.cache.logical_type": b"pyarrow.table", b"user": b"kept"}
    table = table.replace_schema_metadata(md)
    w, r = client.do_put(fl.FlightDescriptor.for_path("app/ssn/tab"), table.schema)
    w.write_table(table, max_chunksize=2)
    w.done_writing()
    ref = bson.decode(bytes(r.read()))
    w.close()
    assert ref["version"] == 1
    got = get(client, "app/ssn/tab:0")
    assert got.to_pydict() == table.to_pydict()
    assert got.schema.metadata[b"flame.cache.version"] == b"1"
    assert got.schema.metadata[b"user"] == b"kept"
    info = client.get_flight_info(fl.FlightDescriptor.for_path("app", "ssn", "tab"))
    assert info.schema.metadata[b"flame.cache.version"] == b"1"
    assert info.total_records == -1 and info.total_bytes == -1
    assert info.endpoints[0].ticket.ticket == b"app/ssn/tab"
    # an update bumps the version in the metadata
    w, r = client.do_put(fl.FlightDescriptor.for_path("app/ssn/tab"), table.schema)
    w.write_table(table)
    w.done_writing()
    assert bson.decode(bytes(r.read()))["version"] == 2
    w.close()
    assert get(client, "app/ssn/tab").schema.metadata[b"flame.cache.version"] == b"2"
    # not modified is the empty 3-column reply (what flamepy expects)
    assert get(client, "app/ssn/tab:2").num_rows == 0
    with pytest.raises(pa.ArrowException) as e:  # native tables take no patches
        put(client, fl.FlightDescriptor.for_command(b"PATCH:app/ssn/tab"), b"x")


def test_flight_info_list_flights_delete(client, cache):
    a = put(client, fl.FlightDescriptor.for_path("app/s1/a"), b"aaaa")
    put(client, fl.FlightDescriptor.for_path("app/s1/b"), b"bb")
    put(client, fl.FlightDescriptor.for_path("app/s2/c"), b"c")
    put(client, fl.FlightDescriptor.for_path("other/s1/d"), b"d")
    info = client.get_flight_info(fl.FlightDescriptor.for_path("app/s1/a"))
    assert info.endpoints[0].locations[0].uri.decode() == cache.uri
    assert info.schema is None or len(info.schema) == 0
    flights = {f.endpoints[0].ticket.ticket.decode(): f for f in client.list_flights()}
    assert set(flights) == {"app/s1/a", "app/s1/b", "app/s2/c", "other/s1/d"}
    assert flights["app/s1/a"].total_bytes == 4

    assert [r.body.to_pybytes() for r in client.do_action(fl.Action("DELETE", b"app/s1/a"))] == [b"OK"]
    with pytest.raises(pa.ArrowException):
        get(client, a["key"])
    list(client.do_action(fl.Action("DELETE", b"app/s1")))
    list(client.do_action(fl.Action("DELETE", b"app/*")))
    flights = [f.endpoints[0].ticket.ticket.decode() for f in client.list_flights()]
    assert flights == ["other/s1/d"]
    with pytest.raises(pa.ArrowException) as e:
        list(client.do_action(fl.Action("PURGE", b"x")))
    assert "Unknown action type: PURGE. Only DELETE is supported." in str(e.value)


@pytest.mark.parametrize("key", ["a", "a/../b/c", "a\\b/s/o", "a/*/o", "*/s", "a//o", "a/s/o/x",
                                 "a/s/."])
def test_bad_keys(client, key):
    with pytest.raises(pa.ArrowException) as e:
        put(client, fl.FlightDescriptor.for_path(key), b"x")
    assert "invalid key" in str(e.value)
    with pytest.raises(pa.ArrowException):
        get(client, key)
    assert list(client.list_actions())  # still serving


def test_delete_rejects_bad_patterns(client):
    with pytest.raises(pa.ArrowException):
        list(client.do_action(fl.Action("DELETE", b"../etc")))
    with pytest.raises(pa.ArrowException):
        put(client, fl.FlightDescriptor.for_path("app/*"), b"x")
    with pytest.raises(pa.ArrowException):  # PATCH needs a full key
        put(client, fl.FlightDescriptor.for_command(b"PATCH:app/ssn"), b"x")


def test_fs_store_restart_and_layout(object_cache, tmp_path):
    store = tmp_path / "store"
    c1 = object_cache(storage=store)
    cl = fl.FlightClient(c1.location)
    ref = put(cl, fl.FlightDescriptor.for_path("app/ssn/obj"), b"base")
    put(cl, fl.FlightDescriptor.for_command(b"PATCH:app/ssn/obj"), b"d0")
    put(cl, fl.FlightDescriptor.for_command(b"PATCH:app/ssn/obj"), b"d1")
    assert ref["version"] == 1
    # Flame's layout, IPC file format, one row (version, data)
    base = pa.ipc.open_file(store / "app/ssn/obj.arrow").read_all()
    assert base.to_pydict() == {"version": [1], "data": [b"base"]}
    d1 = pa.ipc.open_file(store / "app/ssn/obj.deltas/1.arrow").read_all()
    assert d1.to_pydict() == {"version": [3], "data": [b"d1"]}
    # a native table with a dictionary column survives the restart too
    table = pa.table({"cat": pa.array(["a", "b", "a"]).dictionary_encode(), "n": [1, 2, 3]})
    table = table.replace_schema_metadata({b"flame.cache.format": b"arrow-table-v1",
                                           b"flame.cache.version": b"0"})
    w, r = cl.do_put(fl.FlightDescriptor.for_path("app/ssn/dict"), table.schema)
    w.write_table(table)
    w.done_writing()
    r.read()
    w.close()
    assert get(cl, "app/ssn/dict").to_pydict() == table.to_pydict()
    cl.close()
    c1.stop()

    c2 = object_cache(storage=f"fs://{store}")
    cl = fl.FlightClient(c2.location)
    full = get(cl, "app/ssn/obj:0").to_pydict()
    assert full == {"version": [1, 2, 3], "kind": ["base", "patch", "patch"],
                    "data": [b"base", b"d0", b"d1"]}
    assert get(cl, "app/ssn/dict").to_pydict() == table.to_pydict()
    assert pa.ipc.open_file(store / "app/ssn/dict.arrow").read_all().to_pydict() == table.to_pydict()
    assert put(cl, fl.FlightDescriptor.for_command(b"PATCH:app/ssn/obj"), b"d2")["version"] == 4
    assert put(cl, fl.FlightDescriptor.for_path("app/ssn/obj"), b"b2")["version"] == 5
    assert not (store / "app/ssn/obj.deltas").exists()
    list(cl.do_action(fl.Action("DELETE", b"app/ssn/obj")))
    assert not (store / "app/ssn/obj.arrow").exists()
    cl.close()


def test_files_written_straight_into_the_store(object_cache, tmp_path):
    store = tmp_path / "store"
    c = object_cache(storage=store)
    (store / "app" / "ssn").mkdir(parents=True)
    with pa.ipc.new_file(store / "app/ssn/direct.arrow", OPAQUE) as w:
        w.write_batch(batch(b"written by a client"))
    table = pa.table({"x": [1.5, 2.5]}).replace_schema_metadata(
        {b"flame.cache.format": b"arrow-table-v1", b"flame.cache.version": b"0"})
    with pa.ipc.new_file(store / "app/ssn/native.arrow", table.schema) as w:
        w.write_table(table)
    cl = fl.FlightClient(c.location)
    assert get(cl, "app/ssn/direct:0").to_pydict() == {
        "version": [1], "kind": ["base"], "data": [b"written by a client"]}
    got = get(cl, "app/ssn/native")
    assert got.to_pydict() == {"x": [1.5, 2.5]}
    assert got.schema.metadata[b"flame.cache.version"] == b"1"
    assert put(cl, fl.FlightDescriptor.for_command(b"PATCH:app/ssn/direct"), b"!")["version"] == 2
    # a corrupt file is an error for that key only
    (store / "app/ssn/bad.arrow").write_bytes(b"ARROW1\0\0garbage")
    with pytest.raises(pa.ArrowException):
        get(cl, "app/ssn/bad")
    assert list(cl.list_actions())
    cl.close()


def test_eviction_keeps_disk_copies(object_cache, tmp_path):
    store = tmp_path / "store"
    c = object_cache(storage=store, args=["--max-objects", "2", "--max-memory", "64K"])
    cl = fl.FlightClient(c.location)
    for i in range(6):
        put(cl, fl.FlightDescriptor.for_path(f"app/ssn/o{i}"), bytes([65 + i]) * 20000)
    for i in range(6):  # the evicted ones come back from disk
        assert get(cl, f"app/ssn/o{i}").to_pydict()["data"] == [bytes([65 + i]) * 20000]
    assert len(list(cl.list_flights())) == 6
    cl.close()


def test_eviction_memory_only_drops_least_recent(object_cache):
    c = object_cache(args=["--max-objects", "2"])
    cl = fl.FlightClient(c.location)
    for i in range(3):
        put(cl, fl.FlightDescriptor.for_path(f"app/ssn/o{i}"), b"x")
    with pytest.raises(pa.ArrowException):
        get(cl, "app/ssn/o0")
    assert get(cl, "app/ssn/o2").num_rows == 1
    cl.close()


def test_limits_and_garbage(object_cache):
    c = object_cache(args=["--max-object-size", "1M"])
    cl = fl.FlightClient(c.location)
    with pytest.raises(pa.ArrowException) as e:
        put(cl, fl.FlightDescriptor.for_path("app/ssn/big"), b"x" * (600 << 10), b"y" * (600 << 10))
    assert "larger than" in str(e.value)

    ch = grpc.insecure_channel(f"127.0.0.1:{c.port}")
    raw = ch.stream_stream(SVC + "DoPut", request_serializer=lambda b: b,
                           response_deserializer=lambda b: b)
    # not protobuf at all
    with pytest.raises(grpc.RpcError) as e:
        list(raw(iter([b"\xff\xff\xff\xff garbage"]), timeout=30))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # FlightData{descriptor: path "app/ssn/g", data_header: garbage}
    desc = b"\x08\x01\x1a\x09app/ssn/g"
    msg = b"\x0a" + bytes([len(desc)]) + desc + b"\x12\x08" + b"\x04\x00\x00\x00garb"
    with pytest.raises(grpc.RpcError) as e:
        list(raw(iter([msg]), timeout=30))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # the methods Flame leaves out
    for m in ("Handshake", "DoExchange", "PollFlightInfo"):
        call = ch.stream_stream(SVC + m, request_serializer=lambda b: b,
                                response_deserializer=lambda b: b) if m != "PollFlightInfo" else \
            ch.unary_unary(SVC + m, request_serializer=lambda b: b,
                           response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as e:
            r = call(iter([b""]) if m != "PollFlightInfo" else b"", timeout=30)
            list(r) if m != "PollFlightInfo" else None
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    ch.close()
    assert c.alive()
    assert put(cl, fl.FlightDescriptor.for_path("app/ssn/ok"), b"fine")["version"] == 1
    cl.close()


# ---- flamepy 0.6.0's own cache functions ---------------------------------------------------


def use_cache(endpoint, storage=None, ca_file=None):
    """Points flamepy at a cache through its env variables and forgets what it cached."""
    os.environ["FLAME_CACHE_ENDPOINT"] = endpoint
    for var, val in (("FLAME_CACHE_STORAGE", storage), ("FLAME_CA_FILE", ca_file)):
        if val is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = str(val)
    fc._context_cache = None
    fc._client_pool.clear()
    fc._object_cache.clear()


def flamepy_round_trip():
    ref = fc.put_object("app/ssn", {"answer": 42, "list": list(range(10))})
    assert ref.version == 1 and ref.key.startswith("app/ssn/")
    assert fc.get_object(ref) == {"answer": 42, "list": list(range(10))}
    ref2 = fc.update_object(ref, [1, 2, 3])
    assert ref2.version == 2
    assert fc.get_object(ref2) == [1, 2, 3]
    ref3 = fc.patch_object(ref2, [4])
    ref4 = fc.patch_object(ref3, [5])
    assert ref4.version == 4
    merge = lambda base, deltas: base + [x for d in deltas for x in d]  # noqa: E731
    assert fc.get_object(ref4, deserializer=merge) == [1, 2, 3, 4, 5]
    # decoded as flamepy's BSON ObjectRef
    assert fc.ObjectRef.decode(ref4.encode()) == ref4
    table = pa.table({"n": [1, 2, 3]})
    tref = fc.put_object("app/ssn", table)
    back = fc.get_object(tref)
    assert back.to_pydict() == {"n": [1, 2, 3]}
    fc.delete_objects("app/*")
    with pytest.raises(Exception):
        fc.get_object(fc.ObjectRef(endpoint=ref.endpoint, key=ref.key, version=0))
    return ref


def test_flamepy_cache_functions(cache, tmp_path):
    use_cache(cache.endpoint)
    flamepy_round_trip()
    # upload_object/download_object (Runner's packages, grpc:// installer URLs)
    src = tmp_path / "pkg.tar.gz"
    src.write_bytes(os.urandom(3 << 20))
    ref = fc.upload_object("app/pkg/pkg.tar.gz", str(src))
    assert ref.key == "app/pkg/pkg.tar.gz"
    # what download_object and Flame's grpc:// installer read: DoGet <key>:0, every data
    # value concatenated (flamepy 0.6.0's download_object itself fails on pyarrow >= 18:
    # it calls .column on FlightStreamChunk)
    c = fl.FlightClient(cache.location)
    t = get(c, ref.key + ":0")
    assert b"".join(t.column("data").to_pylist()) == src.read_bytes()
    c.close()


def test_flamepy_client_fast_path(object_cache, tmp_path):
    store = tmp_path / "store"
    c = object_cache(storage=store)
    use_cache(c.endpoint, storage=store)
    ref = fc.put_object("app/ssn", {"fast": True})
    assert ref.version == 1 and (store / "app/ssn" / (ref.key.split("/")[2] + ".arrow")).exists()
    # another client, through the server
    use_cache(c.endpoint)
    assert fc.get_object(ref) == {"fast": True}
    assert fc.patch_object(ref, {"more": 1}).version == 2


def test_flamepy_tls(object_cache, pki):
    c = object_cache(tls=(pki / "server.crt", pki / "server.key"))
    assert c.uri.startswith("grpc+tls://")
    use_cache(c.endpoint, ca_file=pki / "ca.crt")
    flamepy_round_trip()
    # without the CA the handshake fails
    use_cache(c.endpoint, ca_file=pki / "other-ca.crt")
    with pytest.raises(Exception):
        fc.put_object("app/ssn", 1)
    # a plaintext client gets no answer
    with pytest.raises(Exception):
        put(fl.FlightClient(f"grpc://127.0.0.1:{c.port}"), fl.FlightDescriptor.for_path("a/b"), b"x")


def test_mutual_tls(object_cache, pki):
    c = object_cache(tls=(pki / "server.crt", pki / "server.key"),
                     args=["--tls-ca", str(pki / "ca.crt"), "--mtls"])
    ca = (pki / "ca.crt").read_bytes()
    anon = fl.FlightClient(c.location, tls_root_certs=ca)
    with pytest.raises(Exception):
        put(anon, fl.FlightDescriptor.for_path("a/b"), b"x")
    me = fl.FlightClient(c.location, tls_root_certs=ca, cert_chain=(pki / "user.crt").read_bytes(),
                         private_key=(pki / "user.key").read_bytes())
    assert put(me, fl.FlightDescriptor.for_path("a/b"), b"x")["version"] == 1
    me.close()

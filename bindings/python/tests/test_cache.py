"""flame's object cache functions (flamepy's put_object/get_object/...)
against a flame-object-cache daemon of the build."""
import os
import subprocess

import pytest

import flame
from conftest import BUILD


@pytest.fixture(scope="module")
def cache_endpoint():
    p = subprocess.Popen([os.path.join(BUILD, "daemons", "flame-object-cache"), "-e",
                          "grpc://127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()  # "... listening on port N (URI)"; bounded by its exit
    assert "listening on port" in line, line
    endpoint = f"grpc://127.0.0.1:{int(line.split('port ')[1].split()[0])}"
    old = os.environ.get("FLAME_CACHE_ENDPOINT")
    os.environ["FLAME_CACHE_ENDPOINT"] = endpoint
    yield endpoint
    if old is None:
        del os.environ["FLAME_CACHE_ENDPOINT"]
    else:
        os.environ["FLAME_CACHE_ENDPOINT"] = old
    p.terminate()
    assert p.wait(30) == 0


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


def test_put_get_update_patch(cache_endpoint):
    ref = flame.put_object("app/s1", {"a": [1, 2, 3], "p": Point(1, 2)})
    assert isinstance(ref, flame.ObjectRef) and ref.key.startswith("app/s1/") and ref.version == 1
    got = flame.get_object(ref)
    assert got["a"] == [1, 2, 3] and (got["p"].x, got["p"].y) == (1, 2)
    r2 = flame.patch_object(ref, [4])
    r3 = flame.patch_object(r2, [5])
    assert (r2.version, r3.version) == (2, 3) and r3.key == ref.key
    assert flame.get_object(ref, lambda base, deltas: base["a"] + sum(deltas, [])) == [1, 2, 3, 4, 5]
    assert flame.get_object(ref)["a"] == [1, 2, 3]  # the base only
    r4 = flame.update_object(ref, "fresh")
    assert r4.version == 4 and flame.get_object(r4) == "fresh"
    assert flame.get_object(r4, lambda base, deltas: (base, deltas)) == ("fresh", [])
    assert flame.ObjectRef.decode(r4.encode()) == r4
    flame.delete_objects("app/s1")
    with pytest.raises(flame.FlameError) as e:
        flame.get_object(r4)
    assert e.value.code == flame.FlameErrorCode.NOT_FOUND


def test_bad_keys(cache_endpoint):
    for prefix in ("app", "app/s/x", "/s", "app/"):
        with pytest.raises(flame.FlameError) as e:
            flame.put_object(prefix, 1)
        assert e.value.code == flame.FlameErrorCode.INVALID_ARGUMENT
    with pytest.raises(flame.FlameError) as e:
        flame.patch_object(flame.ObjectRef(cache_endpoint, "app/s/nope"), 1)
    assert e.value.code == flame.FlameErrorCode.NOT_FOUND
    with pytest.raises(flame.FlameError):
        flame.ObjectRef.decode(b"not bson")

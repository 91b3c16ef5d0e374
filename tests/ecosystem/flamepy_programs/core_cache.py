"""A flamepy 0.6 program on the object cache: put_object, get_object (with
and without a deserializer), patch_object, update_object, ObjectRef."""
import os

import flamepy
from flamepy import ObjectRef

TAG = os.environ["SWAP_TAG"]

ref = flamepy.put_object(f"app-{TAG}/s1", {"numbers": [1, 2, 3], "name": "flame"})
assert isinstance(ref, ObjectRef) and ref.key.startswith(f"app-{TAG}/s1/") and ref.version >= 1
assert flamepy.get_object(ref) == {"numbers": [1, 2, 3], "name": "flame"}
patched = flamepy.core.patch_object(ref, [4, 5])
assert patched.key == ref.key and patched.version == ref.version + 1
merged = flamepy.get_object(ObjectRef(ref.endpoint, ref.key, 0),
                            lambda base, deltas: base["numbers"] + [x for d in deltas for x in d])
assert merged == [1, 2, 3, 4, 5], merged
updated = flamepy.update_object(ref, ("replaced", 7))
assert updated.version > patched.version
assert flamepy.get_object(ObjectRef(updated.endpoint, updated.key, 0)) == ("replaced", 7)
again = ObjectRef.decode(updated.encode())
assert (again.endpoint, again.key, again.version) == (updated.endpoint, updated.key, updated.version)
print("PASS core_cache")

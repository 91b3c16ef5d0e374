package flame

// The object cache client of include/flame/cache.h: put/get/update/patch/
// delete of opaque objects over Arrow Flight (Flame's cache protocol, as
// flame-object-cache and Flame's own cache speak it), and ObjectRefs in
// flamepy's BSON form. Objects are bytes; a Python program reading one
// with flamepy's get_object needs bytes it can unpickle.

/*
#include <stdlib.h>
#include <flame/cache.h>

static flame_cache_patch_data *patch_at(flame_cache_patch_data *v, size_t i) { return &v[i]; }
*/
import "C"

import (
	"runtime"
	"time"
	"unsafe"
)

// ObjectRef is a reference to a cached object, as flamepy's ObjectRef: the
// endpoint of the cache that holds it, its key "<app>/<session>/<object>"
// and its version.
type ObjectRef struct {
	Endpoint string
	Key      string
	Version  int64
}

// Encode is the ref as the BSON document {endpoint, key, version} that
// flamepy and Flame's services exchange (task outputs, common data).
func (r ObjectRef) Encode() ([]byte, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cr := C.flame_cache_ref{endpoint: C.CString(r.Endpoint), key: C.CString(r.Key),
		version: C.int64_t(r.Version)}
	defer C.free(unsafe.Pointer(cr.endpoint))
	defer C.free(unsafe.Pointer(cr.key))
	var data unsafe.Pointer
	var n C.size_t
	if st := C.flame_cache_ref_encode(&cr, &data, &n); st != 0 {
		return nil, lastError(st)
	}
	defer C.free(data)
	return C.GoBytes(data, C.int(n)), nil
}

// DecodeObjectRef reads a BSON ObjectRef (made by Encode or flamepy);
// an InvalidArgument Error when data is not one.
func DecodeObjectRef(data []byte) (ObjectRef, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var cr C.flame_cache_ref
	var p unsafe.Pointer
	if len(data) > 0 {
		p = C.CBytes(data)
		defer C.free(p)
	}
	if st := C.flame_cache_ref_decode(&cr, p, C.size_t(len(data))); st != 0 {
		return ObjectRef{}, lastError(st)
	}
	defer C.flame_cache_ref_clear(&cr)
	return refFrom(&cr), nil
}

func refFrom(cr *C.flame_cache_ref) ObjectRef {
	return ObjectRef{Endpoint: C.GoString(cr.endpoint), Key: C.GoString(cr.key),
		Version: int64(cr.version)}
}

// Cache is a client of an object cache; safe for use from many goroutines.
type Cache struct {
	c *C.flame_cache
}

// CacheOptions are the settings of ConnectCache; the zero value is the
// default of each.
type CacheOptions struct {
	CAFile     string        // TLS roots for grpcs:// (default: $FLAME_CA_FILE, else the system's)
	Timeout    time.Duration // per call (default 5 minutes)
	MaxMessage int           // bytes (default 1 GiB)
}

// ConnectCache connects (lazily) to a cache: "grpc://HOST[:PORT]",
// "grpcs://..." (TLS) or "grpc+tls://..."; "" uses $FLAME_CACHE_ENDPOINT,
// else grpc://127.0.0.1:9090. opts may be nil.
func ConnectCache(endpoint string, opts *CacheOptions) (*Cache, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var o C.flame_cache_options
	C.flame_cache_options_init(&o)
	if opts != nil {
		o.ca_file = cstr(opts.CAFile)
		defer C.free(unsafe.Pointer(o.ca_file))
		o.timeout_ms = C.int(opts.Timeout / time.Millisecond)
		o.max_message = C.size_t(opts.MaxMessage)
	}
	ep := cstr(endpoint)
	defer C.free(unsafe.Pointer(ep))
	c := &Cache{}
	if st := C.flame_cache_connect(&c.c, ep, &o); st != 0 {
		return nil, lastError(st)
	}
	runtime.SetFinalizer(c, func(x *Cache) { x.Close() })
	return c, nil
}

// Close frees the client; it must not be used afterwards.
func (c *Cache) Close() {
	if c.c != nil {
		C.flame_cache_close(c.c)
		c.c = nil
	}
}

func (c *Cache) write(key string, data []byte, patch bool) (ObjectRef, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	var p unsafe.Pointer
	if len(data) > 0 {
		p = C.CBytes(data)
		defer C.free(p)
	}
	var cr C.flame_cache_ref
	var st C.flame_status
	if patch {
		st = C.flame_cache_patch(c.c, ck, p, C.size_t(len(data)), &cr)
	} else {
		st = C.flame_cache_put(c.c, ck, p, C.size_t(len(data)), &cr)
	}
	runtime.KeepAlive(c)
	if st != 0 {
		return ObjectRef{}, lastError(st)
	}
	defer C.flame_cache_ref_clear(&cr)
	return refFrom(&cr), nil
}

// Put stores data as a new object of "<app>/<session>" (the cache makes its
// id) and returns its reference.
func (c *Cache) Put(prefix string, data []byte) (ObjectRef, error) {
	return c.write(prefix, data, false)
}

// Update replaces the object key ("<app>/<session>/<object>", made if
// missing) and drops its patches; the version grows by one.
func (c *Cache) Update(key string, data []byte) (ObjectRef, error) {
	return c.write(key, data, false)
}

// Patch appends data to the object key as its next version; a NotFound
// Error when there is no such object.
func (c *Cache) Patch(key string, data []byte) (ObjectRef, error) {
	return c.write(key, data, true)
}

// ObjectPatch is one patch of an object.
type ObjectPatch struct {
	Version uint64
	Data    []byte
}

// Object is what Fetch returns.
type Object struct {
	Version     uint64 // the cache's version of the object
	NotModified bool   // the known version is current: nothing else is set
	HasBase     bool   // false: only the patches after the known version came
	BaseVersion uint64
	Base        []byte
	Patches     []ObjectPatch
}

// Fetch reads the object key. knownVersion 0: the whole object; the current
// version: NotModified; an older one: the patches after it when the cache
// can send only those, else the whole object.
func (c *Cache) Fetch(key string, knownVersion uint64) (*Object, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	var o C.flame_cache_object
	st := C.flame_cache_fetch(c.c, ck, C.uint64_t(knownVersion), &o)
	runtime.KeepAlive(c)
	if st != 0 {
		return nil, lastError(st)
	}
	defer C.flame_cache_object_clear(&o)
	obj := &Object{Version: uint64(o.version), NotModified: o.not_modified != 0,
		HasBase: o.has_base != 0, BaseVersion: uint64(o.base_version)}
	if obj.HasBase {
		obj.Base = C.GoBytes(o.base, C.int(o.base_len))
	}
	for i := C.size_t(0); i < o.n_patches; i++ {
		p := C.patch_at(o.patches, i)
		obj.Patches = append(obj.Patches, ObjectPatch{Version: uint64(p.version),
			Data: C.GoBytes(p.data, C.int(p.len))})
	}
	return obj, nil
}

// Get reads the whole object key: its base and every patch, in order.
func (c *Cache) Get(key string) (*Object, error) {
	return c.Fetch(key, 0)
}

// Delete removes an object ("<app>/<session>/<object>"), a session's objects
// ("<app>/<session>") or every session's of an app ("<app>/*").
func (c *Cache) Delete(pattern string) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cp := C.CString(pattern)
	defer C.free(unsafe.Pointer(cp))
	st := C.flame_cache_delete(c.c, cp)
	runtime.KeepAlive(c)
	if st != 0 {
		return lastError(st)
	}
	return nil
}

// CacheGet is what Flame's grpc:// downloader does: the object's data, base
// then patches, concatenated. urlOrEndpoint is "grpc(s)://HOST[:PORT]/<key>"
// with key "", or an endpoint with key given; caFile: TLS roots for grpcs
// ("": $FLAME_CA_FILE, else the system's).
func CacheGet(urlOrEndpoint, key, caFile string) ([]byte, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cu := C.CString(urlOrEndpoint)
	defer C.free(unsafe.Pointer(cu))
	ck := cstr(key)
	defer C.free(unsafe.Pointer(ck))
	ca := cstr(caFile)
	defer C.free(unsafe.Pointer(ca))
	var data unsafe.Pointer
	var n C.size_t
	if st := C.flame_cache_get(cu, ck, ca, &data, &n); st != 0 {
		return nil, lastError(st)
	}
	defer C.free(data)
	return C.GoBytes(data, C.int(n)), nil
}

package flame

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// startCache runs a flame-object-cache of the build on a free port; its
// endpoint, stopped at the end of the test.
func startCache(t *testing.T) string {
	build, _ := filepath.Abs("../../build")
	if b := os.Getenv("FLAME_BUILD_DIR"); b != "" {
		build = b
	}
	cmd := exec.Command(filepath.Join(build, "daemons/flame-object-cache"), "-e", "grpc://127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// "... listening on port N (URI)"; bounded by the daemon's exit
	line, _ := bufio.NewReader(out).ReadString('\n')
	var port int
	if i := strings.Index(line, "listening on port "); i < 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("flame-object-cache did not start: %q", line)
	} else {
		fmt.Sscanf(line[i+len("listening on port "):], "%d", &port)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("flame-object-cache: %v", err)
		}
	})
	return fmt.Sprintf("grpc://127.0.0.1:%d", port)
}

func TestCachePutGetUpdatePatchDelete(t *testing.T) {
	ep := startCache(t)
	c, err := ConnectCache(ep, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ref, err := c.Put("app/ssn", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if ref.Version != 1 || !strings.HasPrefix(ref.Key, "app/ssn/") || len(ref.Key) != len("app/ssn/")+36 ||
		!strings.HasPrefix(ref.Endpoint, "grpc://") {
		t.Fatalf("put: %+v", ref)
	}
	if r2, err := c.Patch(ref.Key, []byte(" world")); err != nil || r2.Version != 2 || r2.Key != ref.Key {
		t.Fatalf("patch: %+v %v", r2, err)
	}
	o, err := c.Get(ref.Key)
	if err != nil || !o.HasBase || string(o.Base) != "hello" || o.Version != 2 || len(o.Patches) != 1 ||
		string(o.Patches[0].Data) != " world" || o.Patches[0].Version != 2 {
		t.Fatalf("get: %+v %v", o, err)
	}
	if o, err = c.Fetch(ref.Key, 2); err != nil || !o.NotModified {
		t.Fatalf("fetch current: %+v %v", o, err)
	}
	if o, err = c.Fetch(ref.Key, 1); err != nil || o.HasBase || len(o.Patches) != 1 {
		t.Fatalf("fetch patches only: %+v %v", o, err)
	}
	all, err := CacheGet(ep+"/"+ref.Key, "", "")
	if err != nil || string(all) != "hello world" {
		t.Fatalf("CacheGet: %q %v", all, err)
	}
	// update: the patches go, the version grows
	r3, err := c.Update(ref.Key, []byte{})
	if err != nil || r3.Version != 3 {
		t.Fatalf("update: %+v %v", r3, err)
	}
	if o, err = c.Get(ref.Key); err != nil || len(o.Base) != 0 || len(o.Patches) != 0 {
		t.Fatalf("get after update: %+v %v", o, err)
	}
	if err := c.Delete("app/*"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ref.Key); !IsCode(err, NotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := c.Patch("app/ssn/none", []byte("x")); !IsCode(err, NotFound) {
		t.Fatalf("patch of a missing object: %v", err)
	}
	for _, bad := range []string{"app", "../x/y", "a/b/c/d"} {
		if _, err := c.Put(bad, []byte("x")); !IsCode(err, InvalidArgument) {
			t.Errorf("put %q: %v", bad, err)
		}
	}
	if err := c.Delete("a/../b"); !IsCode(err, InvalidArgument) {
		t.Errorf("delete of a bad pattern: %v", err)
	}
}

func TestCacheObjectRef(t *testing.T) {
	ref := ObjectRef{Endpoint: "grpc://10.0.0.1:9090", Key: "app/ssn/obj", Version: 7}
	b, err := ref.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeObjectRef(b)
	if err != nil || back != ref {
		t.Fatalf("decode: %+v %v", back, err)
	}
	for _, bad := range [][]byte{nil, []byte("not bson"), b[:len(b)-1]} {
		if _, err := DecodeObjectRef(bad); !IsCode(err, InvalidArgument) {
			t.Errorf("decode %q: %v", bad, err)
		}
	}
}

func TestCacheManyGoroutines(t *testing.T) {
	ep := startCache(t)
	c, err := ConnectCache(ep, &CacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			data := bytes.Repeat([]byte{byte(g)}, 100000+g)
			ref, err := c.Put(fmt.Sprintf("app/g%d", g), data)
			if err == nil {
				var o *Object
				if o, err = c.Get(ref.Key); err == nil && !bytes.Equal(o.Base, data) {
					err = fmt.Errorf("goroutine %d: the object differs", g)
				}
			}
			if err != nil {
				errs <- err
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

package flame

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var endpoint string

// TestMain starts a real local cluster from the repository's build.
func TestMain(m *testing.M) {
	build, _ := filepath.Abs("../../build")
	if b := os.Getenv("FLAME_BUILD_DIR"); b != "" {
		build = b
	}
	tmp, _ := os.MkdirTemp("", "flame-go-")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	endpoint = fmt.Sprintf("http://127.0.0.1:%d", port)
	sm := exec.Command(filepath.Join(build, "daemons/flame-session-manager"), "--endpoint", endpoint,
		"--storage", "sqlite://"+filepath.Join(tmp, "flame.db"))
	em := exec.Command(filepath.Join(build, "daemons/flame-executor-manager"), "--endpoint", endpoint,
		"--work-dir", filepath.Join(tmp, "work"), "--resources", "cpu=2,mem=2g")
	for _, c := range []*exec.Cmd{sm, em} {
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "cannot start the cluster:", err)
			os.Exit(1)
		}
		time.Sleep(200 * time.Millisecond)
	}
	code := m.Run()
	em.Process.Signal(os.Interrupt)
	sm.Process.Signal(os.Interrupt)
	em.Wait()
	sm.Wait()
	os.RemoveAll(tmp)
	os.Exit(code)
}

func connect(t *testing.T) *Client {
	c, err := Connect(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestApplications(t *testing.T) {
	c := connect(t)
	defer c.Close()
	three := uint32(3)
	if err := c.RegisterApplication("go-app", Application{Command: "/bin/true", Arguments: []string{"a"},
		Environments: map[string]string{"K": "V"}, MaxInstances: &three}); err != nil {
		t.Fatal(err)
	}
	a, err := c.GetApplication("go-app")
	if err != nil {
		t.Fatal(err)
	}
	if a.Command != "/bin/true" || len(a.Arguments) != 1 || a.Environments["K"] != "V" || *a.MaxInstances != 3 {
		t.Fatalf("unexpected application %+v", a)
	}
	if err := c.RegisterApplication("go-app", Application{}); !IsCode(err, AlreadyExists) {
		t.Fatalf("want AlreadyExists, got %v", err)
	}
	if err := c.UnregisterApplication("go-app"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetApplication("go-app"); !IsCode(err, NotFound) {
		t.Fatalf("want NotFound, got %v", err)
	}
}

func TestInvokeAndRun(t *testing.T) {
	c := connect(t)
	defer c.Close()
	s, err := c.CreateSession("", SessionSpec{Application: "flmping"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Free()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.Invoke(ctx, []byte("{}"))
	if err != nil || len(out) == 0 {
		t.Fatalf("invoke: %q %v", out, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := <-s.Run(ctx, []byte("{}"))
			if r.Err != nil {
				errs <- r.Err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	info, err := c.GetSession(s.ID)
	if err != nil || info.Succeed != 51 {
		t.Fatalf("session %+v %v", info, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Invoke(ctx, []byte("{}")); !IsCode(err, InvalidArgument) {
		t.Fatalf("want InvalidArgument on a closed session (Flame's code), got %v", err)
	}
	all, err := c.ListSessions()
	if err != nil || len(all) == 0 {
		t.Fatalf("list: %v %v", all, err)
	}
}

func TestErrorsAndContext(t *testing.T) {
	c := connect(t)
	defer c.Close()
	if _, err := c.OpenSession("nope", nil); !IsCode(err, NotFound) {
		t.Fatalf("want NotFound, got %v", err)
	}
	if _, err := c.CreateSession("", SessionSpec{Application: "no-such-app"}); !IsCode(err, NotFound) {
		t.Fatalf("want NotFound, got %v", err)
	}
	s, err := c.OpenSession("go-open", &SessionSpec{Application: "flmping", Priority: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Free()
	// a failed task is an error with its message
	_, err = s.Invoke(context.Background(), []byte("{not json"))
	if !IsCode(err, TaskFailed) {
		t.Fatalf("want TaskFailed, got %v", err)
	}
	// a deadline that passes while the task runs
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Invoke(ctx, []byte(`{"duration": 2000}`)); err != context.DeadlineExceeded {
		t.Fatalf("want DeadlineExceeded, got %v", err)
	}
}

func TestGoService(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "echo")
	build := exec.Command("go", "build", "-o", bin, "./testdata/echo")
	build.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	c := connect(t)
	defer c.Close()
	if err := c.RegisterApplication("go-echo", Application{Command: bin}); err != nil {
		t.Fatal(err)
	}
	one := uint32(1)
	s, err := c.CreateSession("", SessionSpec{Application: "go-echo", MaxInstances: &one})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Free()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, want := range []string{"a #1", "b #2"} {
		out, err := s.Invoke(ctx, []byte(want[:1]))
		if err != nil || string(out) != want {
			t.Fatalf("task %d: %q %v", i, out, err)
		}
	}
	if _, err := s.Invoke(ctx, []byte("fail")); !IsCode(err, TaskFailed) || !strings.Contains(err.Error(), "asked to fail") {
		t.Fatalf("want the task's failure, got %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMap(t *testing.T) {
	c := connect(t)
	defer c.Close()
	s, err := c.CreateSession("", SessionSpec{Application: "flmping"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Free()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inputs := make([][]byte, 100)
	for i := range inputs {
		inputs[i] = []byte("{}")
	}
	inputs[42] = []byte("{not json")
	res, err := s.Map(ctx, inputs)
	if err != nil || len(res) != len(inputs) {
		t.Fatalf("map: %d results, %v", len(res), err)
	}
	for i, r := range res {
		if i == 42 {
			if !IsCode(r.Err, TaskFailed) {
				t.Fatalf("task 42: want TaskFailed, got %v", r.Err)
			}
		} else if r.Err != nil || len(r.Output) == 0 {
			t.Fatalf("task %d: %q %v", i, r.Output, r.Err)
		}
	}
	if res, err := s.Map(ctx, nil); err != nil || len(res) != 0 {
		t.Fatalf("empty map: %v %v", res, err)
	}
	// the context's deadline bounds the wait
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := s.Map(short, [][]byte{[]byte(`{"duration": 2000}`)}); err != context.DeadlineExceeded && !IsCode(err, Timeout) {
		t.Fatalf("want a deadline error, got %v", err)
	}
	info, err := c.GetSession(s.ID)
	if err != nil || info.Succeed < 99 || info.Failed != 1 {
		t.Fatalf("session %+v %v", info, err)
	}
}

// TestTLS connects over mutual TLS to a session manager of its own, with
// certificates made by tests/tls/make_certs.sh.
func TestTLS(t *testing.T) {
	build, _ := filepath.Abs("../../build")
	if b := os.Getenv("FLAME_BUILD_DIR"); b != "" {
		build = b
	}
	pki := t.TempDir()
	if out, err := exec.Command("sh", "../../tests/tls/make_certs.sh", pki).CombinedOutput(); err != nil {
		t.Fatalf("make_certs: %v %s", err, out)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ep := fmt.Sprintf("https://127.0.0.1:%d", port)
	sm := exec.Command(filepath.Join(build, "daemons/flame-session-manager"), "--endpoint", ep,
		"--storage", "none", "--tls-cert", pki+"/server.crt", "--tls-key", pki+"/server.key",
		"--tls-ca", pki+"/ca.crt", "--mtls")
	if err := sm.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sm.Process.Signal(os.Interrupt)
		sm.Wait()
	}()
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, err := ConnectWith(ConnectOptions{Endpoint: ep, CAFile: pki + "/ca.crt",
		CertFile: pki + "/admin.crt", KeyFile: pki + "/admin.key"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.GetApplication("flmping"); err != nil {
		t.Fatalf("over mTLS: %v", err)
	}
	anon, err := ConnectWith(ConnectOptions{Endpoint: ep, CAFile: pki + "/ca.crt"})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.GetApplication("flmping"); err == nil {
		t.Fatal("a client without a certificate got in")
	}
}

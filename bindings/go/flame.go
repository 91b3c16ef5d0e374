// Package flame is the Go client of Flame in C: a cgo package over
// libflame's client core (no second gRPC implementation).
//
// libflame is found in ../../build/libflame (the repository's meson build)
// and its headers in ../../include; the rpath is recorded, so programs run
// without LD_LIBRARY_PATH. Every call is safe from many goroutines.
package flame

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../build/libflame -lflame -Wl,-rpath,${SRCDIR}/../../build/libflame
#include <stdlib.h>
#include <flame/flame.h>

static void set_bytes(flame_bytes *v, size_t i, void *data, size_t len) {
    v[i].data = data;
    v[i].len = len;
}
static flame_task_outcome *outcome_at(flame_task_outcome *v, size_t i) { return &v[i]; }
static const char *str_at(const char **v, size_t i) { return v[i]; }
static void set_str(const char **v, size_t i, const char *s) { v[i] = s; }
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"
)

// Code is a flame_status: 0 or a negative error code.
type Code int

// The error codes of include/flame/error.h.
const (
	OK                 Code = 0
	InvalidArgument    Code = -1
	NotFound           Code = -2
	AlreadyExists      Code = -3
	FailedPrecondition Code = -4
	Unavailable        Code = -5
	Timeout            Code = -6
	Cancelled          Code = -7
	ResourceExhausted  Code = -8
	Unimplemented      Code = -9
	Internal           Code = -13
	TaskFailed         Code = -14
	PermissionDenied   Code = -15
	Unauthenticated    Code = -16
)

// Error is a libflame error: its code and its one-line message.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", C.GoString(C.flame_status_str(C.flame_status(e.Code))), e.Message)
}

// lastError reads the thread-local error; callers lock the OS thread.
func lastError(st C.flame_status) error {
	return &Error{Code: Code(st), Message: C.GoString(C.flame_error_last())}
}

// IsCode tells whether err is a flame Error with the given code.
func IsCode(err error, c Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == c
}

// Client is a connection to a session manager.
type Client struct {
	c *C.flame_client
}

// Connect connects to endpoint ("http://host:port" or "https://host:port");
// "" uses $FLAME_ENDPOINT, then ~/.flame/flame.yaml, then
// http://127.0.0.1:8080.
func Connect(endpoint string) (*Client, error) {
	return ConnectWith(ConnectOptions{Endpoint: endpoint})
}

// ConnectOptions are the settings of ConnectWith; "" is the default of each.
type ConnectOptions struct {
	Endpoint string // as Connect's
	// TLS, for an https:// endpoint only (PEM files). CAFile verifies the
	// server (default: the flame.yaml context's cluster.tls.ca_file, then
	// $FLAME_CA_FILE, then the system's roots); CertFile and KeyFile are the
	// client's certificate (default: the context's, then $FLAME_CERT_FILE and
	// $FLAME_KEY_FILE), required by a cluster with mutual TLS.
	CAFile, CertFile, KeyFile string
}

// cstr is s as a C string to free, or nil for "".
func cstr(s string) *C.char {
	if s == "" {
		return nil
	}
	return C.CString(s)
}

// ConnectWith connects with the given options.
func ConnectWith(opts ConnectOptions) (*Client, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var o C.flame_client_options
	C.flame_client_options_init(&o)
	o.endpoint = cstr(opts.Endpoint)
	o.tls_ca_file = cstr(opts.CAFile)
	o.tls_cert_file = cstr(opts.CertFile)
	o.tls_key_file = cstr(opts.KeyFile)
	defer func() {
		for _, p := range []*C.char{o.endpoint, o.tls_ca_file, o.tls_cert_file, o.tls_key_file} {
			C.free(unsafe.Pointer(p))
		}
	}()
	cl := &Client{}
	if st := C.flame_client_connect(&cl.c, &o); st != 0 {
		return nil, lastError(st)
	}
	runtime.SetFinalizer(cl, func(x *Client) { x.Close() })
	return cl, nil
}

// Close frees the client.
func (cl *Client) Close() {
	if cl.c != nil {
		C.flame_client_free(cl.c)
		cl.c = nil
	}
}

// Endpoint is the session manager's address.
func (cl *Client) Endpoint() string { return C.GoString(C.flame_client_endpoint(cl.c)) }

// Application is what RegisterApplication takes and GetApplication returns.
type Application struct {
	Name             string
	Command          string
	Arguments        []string
	Environments     map[string]string
	WorkingDirectory string
	Description      string
	MaxInstances     *uint32
	DelayRelease     *int64
	State            string
}

func cstrOrNil(s string, free *[]unsafe.Pointer) *C.char {
	if s == "" {
		return nil
	}
	p := C.CString(s)
	*free = append(*free, unsafe.Pointer(p))
	return p
}

func (cl *Client) writeApp(name string, a Application, update bool) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var frees []unsafe.Pointer
	defer func() {
		for _, p := range frees {
			C.free(p)
		}
	}()
	var spec C.flame_application_spec
	C.flame_application_spec_init(&spec)
	spec.command = cstrOrNil(a.Command, &frees)
	spec.working_directory = cstrOrNil(a.WorkingDirectory, &frees)
	spec.description = cstrOrNil(a.Description, &frees)
	if len(a.Arguments) > 0 {
		args := (**C.char)(C.calloc(C.size_t(len(a.Arguments)), C.size_t(unsafe.Sizeof(uintptr(0)))))
		frees = append(frees, unsafe.Pointer(args))
		for i, s := range a.Arguments {
			C.set_str(args, C.size_t(i), cstrOrNil(s, &frees))
		}
		spec.arguments = args
		spec.arguments_len = C.size_t(len(a.Arguments))
	}
	if len(a.Environments) > 0 {
		envs := (*C.flame_env)(C.calloc(C.size_t(len(a.Environments)), C.size_t(unsafe.Sizeof(C.flame_env{}))))
		frees = append(frees, unsafe.Pointer(envs))
		ev := unsafe.Slice(envs, len(a.Environments))
		i := 0
		for k, v := range a.Environments {
			ev[i].name = cstrOrNil(k, &frees)
			ev[i].value = cstrOrNil(v, &frees)
			i++
		}
		spec.environments = envs
		spec.environments_len = C.size_t(len(a.Environments))
	}
	if a.MaxInstances != nil {
		spec.has_max_instances = 1
		spec.max_instances = C.uint32_t(*a.MaxInstances)
	}
	if a.DelayRelease != nil {
		spec.has_delay_release = 1
		spec.delay_release = C.int64_t(*a.DelayRelease)
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var st C.flame_status
	if update {
		st = C.flame_application_update(cl.c, cname, &spec)
	} else {
		st = C.flame_application_register(cl.c, cname, &spec)
	}
	if st != 0 {
		return lastError(st)
	}
	return nil
}

// RegisterApplication registers an application.
func (cl *Client) RegisterApplication(name string, a Application) error {
	return cl.writeApp(name, a, false)
}

// UpdateApplication replaces an application's spec.
func (cl *Client) UpdateApplication(name string, a Application) error {
	return cl.writeApp(name, a, true)
}

// UnregisterApplication unregisters an application.
func (cl *Client) UnregisterApplication(name string) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if st := C.flame_application_unregister(cl.c, cname); st != 0 {
		return lastError(st)
	}
	return nil
}

// GetApplication looks an application up.
func (cl *Client) GetApplication(name string) (*Application, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var a *C.flame_application
	if st := C.flame_application_get(&a, cl.c, cname); st != 0 {
		return nil, lastError(st)
	}
	defer C.flame_application_free(a)
	out := &Application{Name: C.GoString(a.name), Environments: map[string]string{}}
	if a.state == 0 {
		out.State = "Enabled"
	} else {
		out.State = "Disabled"
	}
	s := a.spec
	out.Command = C.GoString(s.command)
	out.WorkingDirectory = C.GoString(s.working_directory)
	out.Description = C.GoString(s.description)
	for i := C.size_t(0); i < s.arguments_len; i++ {
		out.Arguments = append(out.Arguments, C.GoString(C.str_at(s.arguments, i)))
	}
	for _, e := range unsafe.Slice(s.environments, int(s.environments_len)) {
		out.Environments[C.GoString(e.name)] = C.GoString(e.value)
	}
	if s.has_max_instances != 0 {
		m := uint32(s.max_instances)
		out.MaxInstances = &m
	}
	if s.has_delay_release != 0 {
		d := int64(s.delay_release)
		out.DelayRelease = &d
	}
	return out, nil
}

// SessionSpec is what CreateSession and OpenSession take.
type SessionSpec struct {
	Application  string
	CommonData   []byte
	MinInstances uint32
	MaxInstances *uint32
	Priority     uint32
	Resreq       string // "cpu=1,mem=1g"; "" for the cluster's default
}

// SessionInfo is a session as the server reports it.
type SessionInfo struct {
	ID, Application, State                       string
	Priority                                     uint32
	Pending, Running, Succeed, Failed, Cancelled int
	CreationTime                                 time.Time
}

// Session is a handle to a session; tasks run in it.
type Session struct {
	cl *Client
	s  *C.flame_session
	ID string
}

func (cl *Client) makeSpec(spec SessionSpec, frees *[]unsafe.Pointer) (C.flame_session_spec, error) {
	var cs C.flame_session_spec
	C.flame_session_spec_init(&cs)
	cs.application = cstrOrNil(spec.Application, frees)
	if len(spec.CommonData) > 0 {
		p := C.CBytes(spec.CommonData)
		*frees = append(*frees, p)
		cs.common_data.data = (*C.uint8_t)(p)
		cs.common_data.len = C.size_t(len(spec.CommonData))
	}
	cs.min_instances = C.uint32_t(spec.MinInstances)
	if spec.MaxInstances != nil {
		cs.has_max_instances = 1
		cs.max_instances = C.uint32_t(*spec.MaxInstances)
	}
	cs.priority = C.uint32_t(spec.Priority)
	if spec.Resreq != "" {
		cs.has_resreq = 1
		cs.resreq = C.flame_resreq{cpu: 1}
		if st := C.flame_resreq_parse(&cs.resreq, cstrOrNil(spec.Resreq, frees)); st != 0 {
			return cs, lastError(C.flame_status(st))
		}
	}
	return cs, nil
}

func (cl *Client) newSession(s *C.flame_session) *Session {
	x := &Session{cl: cl, s: s, ID: C.GoString(C.flame_session_id(s))}
	runtime.SetFinalizer(x, func(y *Session) { y.Free() })
	return x
}

// CreateSession creates a session (sessionID "" lets the server pick one).
func (cl *Client) CreateSession(sessionID string, spec SessionSpec) (*Session, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var frees []unsafe.Pointer
	defer func() {
		for _, p := range frees {
			C.free(p)
		}
	}()
	cs, err := cl.makeSpec(spec, &frees)
	if err != nil {
		return nil, err
	}
	var s *C.flame_session
	if st := C.flame_session_create(&s, cl.c, cstrOrNil(sessionID, &frees), &cs); st != 0 {
		return nil, lastError(st)
	}
	return cl.newSession(s), nil
}

// OpenSession opens a session; with a spec it is created when absent.
func (cl *Client) OpenSession(sessionID string, spec *SessionSpec) (*Session, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var frees []unsafe.Pointer
	defer func() {
		for _, p := range frees {
			C.free(p)
		}
	}()
	var csp *C.flame_session_spec
	if spec != nil {
		cs, err := cl.makeSpec(*spec, &frees)
		if err != nil {
			return nil, err
		}
		csp = &cs
	}
	var s *C.flame_session
	if st := C.flame_session_open(&s, cl.c, cstrOrNil(sessionID, &frees), csp); st != 0 {
		return nil, lastError(st)
	}
	return cl.newSession(s), nil
}

func infoFrom(i *C.flame_session_info) SessionInfo {
	return SessionInfo{
		ID: C.GoString(i.id), Application: C.GoString(i.spec.application),
		State:    C.GoString(C.flame_session_state_str(i.state)),
		Priority: uint32(i.spec.priority), Pending: int(i.pending), Running: int(i.running),
		Succeed: int(i.succeed), Failed: int(i.failed), Cancelled: int(i.cancelled),
		CreationTime: time.UnixMilli(int64(i.creation_time)),
	}
}

// GetSession looks a session up.
func (cl *Client) GetSession(sessionID string) (*SessionInfo, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cid := C.CString(sessionID)
	defer C.free(unsafe.Pointer(cid))
	var i *C.flame_session_info
	if st := C.flame_session_get(&i, cl.c, cid); st != 0 {
		return nil, lastError(st)
	}
	defer C.flame_session_info_free(i)
	info := infoFrom(i)
	return &info, nil
}

// ListSessions lists every session, Open and Closed, in creation order.
func (cl *Client) ListSessions() ([]SessionInfo, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var v **C.flame_session_info
	var n C.size_t
	if st := C.flame_session_list(&v, &n, cl.c); st != 0 {
		return nil, lastError(st)
	}
	defer C.flame_session_info_list_free(v, n)
	out := make([]SessionInfo, 0, int(n))
	for _, i := range unsafe.Slice(v, int(n)) {
		out = append(out, infoFrom(i))
	}
	return out, nil
}

// Free frees the handle (the session stays as it is on the server).
func (s *Session) Free() {
	if s.s != nil {
		C.flame_session_free(s.s)
		s.s = nil
	}
}

// Close closes the session on the server.
func (s *Session) Close() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.flame_session_close(s.s); st != 0 {
		return lastError(st)
	}
	return nil
}

// Invoke runs one task and returns its output. A failed task returns an
// Error with code TaskFailed and the task's message. The context's deadline
// and cancellation are honoured (the task itself is not cancelled). A
// session that cannot run (no executor: event 1002 or 1003) ends the wait
// with an Error of code FailedPrecondition naming the session's event.
func (s *Session) Invoke(ctx context.Context, input []byte) ([]byte, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var in unsafe.Pointer
	if input != nil {
		in = C.CBytes(input)
		defer C.free(in)
	}
	var t *C.flame_task
	if st := C.flame_task_create(&t, s.s, in, C.size_t(len(input))); st != 0 {
		return nil, lastError(st)
	}
	defer C.flame_task_free(t)
	silent := time.Duration(0) // waits in short slices: the core's check is ours to call
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if silent >= 3*time.Second {
			if st := C.flame_session_check(s.s); st != 0 {
				return nil, lastError(st)
			}
			silent = 0
		}
		wait := 200 * time.Millisecond
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			wait = time.Until(dl)
			if wait < time.Millisecond {
				wait = time.Millisecond
			}
		}
		var done *C.flame_task
		st := C.flame_task_wait(&done, s.s, t.id, C.int(wait.Milliseconds()))
		if Code(st) == Timeout {
			silent += wait
			continue
		}
		if st != 0 {
			return nil, lastError(st)
		}
		defer C.flame_task_free(done)
		if done.state != C.FLAME_TASK_SUCCEED {
			msg := "the task failed"
			if done.message != nil {
				msg = C.GoString(done.message)
			}
			return nil, &Error{Code: TaskFailed, Message: msg}
		}
		if done.output.data == nil {
			return nil, nil
		}
		return C.GoBytes(unsafe.Pointer(done.output.data), C.int(done.output.len)), nil
	}
}

// Result is what Run delivers.
type Result struct {
	Output []byte
	Err    error
}

// Run submits a task and delivers its result on the returned channel.
func (s *Session) Run(ctx context.Context, input []byte) <-chan Result {
	ch := make(chan Result, 1)
	go func() {
		out, err := s.Invoke(ctx, input)
		ch <- Result{out, err}
	}()
	return ch
}

// Map runs one task per input and returns their results in input order:
// one batched submission, one outcome stream (the C core's
// flame_session_map). A nil input is a task without input. A task that
// failed has an Error with code TaskFailed and its message in its Result;
// the returned error is for the call itself (submission, the context).
// The context's deadline bounds the wait (the error is then the context's,
// or an Error with code Timeout when the C core notices first); when the
// context ends first, Map returns at once and the tasks go on.
func (s *Session) Map(ctx context.Context, inputs [][]byte) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout := C.int(-1)
	if dl, ok := ctx.Deadline(); ok {
		timeout = C.int(time.Until(dl).Milliseconds())
		if timeout < 0 {
			timeout = 0
		}
	}
	type answer struct {
		res []Result
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		res, err := s.mapC(inputs, timeout)
		ch <- answer{res, err}
	}()
	select {
	case a := <-ch:
		return a.res, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Session) mapC(inputs [][]byte, timeout C.int) ([]Result, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n := len(inputs)
	total := 1 // one C buffer for every input; never empty, so never NULL
	for _, b := range inputs {
		total += len(b)
	}
	buf := C.malloc(C.size_t(total))
	defer C.free(buf)
	data := unsafe.Slice((*byte)(buf), total)
	var in *C.flame_bytes
	if n > 0 {
		in = (*C.flame_bytes)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.flame_bytes{}))))
		defer C.free(unsafe.Pointer(in))
	}
	off := 0
	for i, b := range inputs {
		if b == nil {
			continue // no input
		}
		copy(data[off:], b)
		C.set_bytes(in, C.size_t(i), unsafe.Pointer(&data[off]), C.size_t(len(b)))
		off += len(b)
	}
	var out *C.flame_task_outcome
	if st := C.flame_session_map(&out, s.s, in, C.size_t(n), timeout); st != 0 {
		return nil, lastError(st)
	}
	defer C.flame_task_outcome_list_free(out, C.size_t(n))
	res := make([]Result, n)
	for i := range res {
		o := C.outcome_at(out, C.size_t(i))
		if o.state != C.FLAME_TASK_SUCCEED {
			msg := "the task failed"
			if o.message != nil {
				msg = C.GoString(o.message)
			}
			res[i].Err = &Error{Code: TaskFailed, Message: msg}
		} else if o.output.data != nil {
			res[i].Output = C.GoBytes(unsafe.Pointer(o.output.data), C.int(o.output.len))
		}
	}
	return res, nil
}

package flame

/*
#include <stdlib.h>
#include <string.h>
#include <flame/flame.h>

extern int goEnter(uintptr_t h, char *session_id, char *app, void *cd, int cdlen, int hascd, char **msg);
extern int goInvoke(uintptr_t h, char *task_id, char *session_id, void *in, int inlen, int hasin,
                    flame_task_result *result);
extern void goLeave(uintptr_t h);

static int c_enter(const flame_session_context *ctx, char **message_out, void *payload) {
    return goEnter((uintptr_t)payload, (char *)ctx->session_id, (char *)ctx->application,
                   (void *)ctx->common_data.data, (int)ctx->common_data.len,
                   ctx->common_data.data != NULL, message_out);
}
static int c_invoke(const flame_task_context *ctx, flame_task_result *result, void *payload) {
    return goInvoke((uintptr_t)payload, (char *)ctx->task_id, (char *)ctx->session_id,
                    (void *)ctx->input.data, (int)ctx->input.len, ctx->input.data != NULL, result);
}
static void c_leave(void *payload) { goLeave((uintptr_t)payload); }

static flame_status serve(uintptr_t h) {
    flame_service s = { FLAME_SERVICE_VERSION, c_enter, c_invoke, c_leave, (void *)h };
    return flame_service_run(&s);
}
static char *copy_str(const char *s) { size_t n = strlen(s) + 1; char *d = malloc(n); memcpy(d, s, n); return d; }
*/
import "C"

import (
	"runtime"
	"runtime/cgo"
	"unsafe"
)

// SessionContext is what a service learns when it enters a session.
type SessionContext struct {
	SessionID   string
	Application string
	CommonData  []byte // nil when unset
}

// TaskContext is one task given to a service.
type TaskContext struct {
	TaskID    string
	SessionID string
	Input     []byte // nil when unset
}

// Service is an application written in Go. An error from OnSessionEnter
// refuses the session; an error from OnTaskInvoke fails the task with its
// message.
type Service interface {
	OnSessionEnter(ctx SessionContext) error
	OnTaskInvoke(ctx TaskContext) ([]byte, error)
	OnSessionLeave()
}

//export goEnter
func goEnter(h C.uintptr_t, sid, app *C.char, cd unsafe.Pointer, cdlen, hascd C.int, msg **C.char) C.int {
	svc := cgo.Handle(h).Value().(Service)
	ctx := SessionContext{SessionID: C.GoString(sid), Application: C.GoString(app)}
	if hascd != 0 {
		ctx.CommonData = C.GoBytes(cd, cdlen)
	}
	if err := svc.OnSessionEnter(ctx); err != nil {
		cs := C.CString(err.Error())
		*msg = C.copy_str(cs)
		C.free(unsafe.Pointer(cs))
		return 1
	}
	return 0
}

//export goInvoke
func goInvoke(h C.uintptr_t, tid, sid *C.char, in unsafe.Pointer, inlen, hasin C.int, result *C.flame_task_result) C.int {
	svc := cgo.Handle(h).Value().(Service)
	ctx := TaskContext{TaskID: C.GoString(tid), SessionID: C.GoString(sid)}
	if hasin != 0 {
		ctx.Input = C.GoBytes(in, inlen)
	}
	out, err := svc.OnTaskInvoke(ctx)
	if err != nil {
		cs := C.CString(err.Error())
		C.flame_task_result_set_message(result, cs)
		C.free(unsafe.Pointer(cs))
		return 1
	}
	if out != nil {
		p := C.CBytes(out)
		C.flame_task_result_set_output(result, p, C.size_t(len(out)))
		C.free(p)
	}
	return 0
}

//export goLeave
func goLeave(h C.uintptr_t) {
	cgo.Handle(h).Value().(Service).OnSessionLeave()
}

// Serve runs svc as a Flame service under an executor manager's host shim
// (it serves flame.v1 Instance on $FLAME_INSTANCE_ENDPOINT) until the
// executor manager stops it. Blocks.
func Serve(svc Service) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h := cgo.NewHandle(svc)
	defer h.Delete()
	if st := C.serve(C.uintptr_t(h)); st != 0 {
		return lastError(st)
	}
	return nil
}

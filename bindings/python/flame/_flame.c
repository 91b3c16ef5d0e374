/* flame._flame: the C extension behind the `flame` package. Thin: every
 * call goes to libflame's client core (client.h) or service API
 * (service.h); blocking calls release the GIL. The Python layer (client.py,
 * types.py, service.py) turns what it returns into flamepy's shapes.
 *
 * Threads: any Python thread may call in; watch callbacks run on the thread
 * that called watch_outcomes/watch_task and take the GIL for each call. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

#include <flame/flame.h>

/* Set by the Python layer (_set_error_factory): called as
 * factory(status: int, status_name: str, message: str) and returns the
 * exception to raise (flame.FlameError). */
static PyObject *error_factory;

static PyObject *raise_status(flame_status st, const char *message)
{
    if (!error_factory) {
        PyErr_Format(PyExc_RuntimeError, "%s (%s)", message, flame_status_str(st));
        return NULL;
    }
    PyObject *e = PyObject_CallFunction(error_factory, "iss", (int)st, flame_status_str(st),
                                        message);
    if (e) {
        PyErr_SetObject((PyObject *)Py_TYPE(e), e);
        Py_DECREF(e);
    }
    return NULL;
}

static PyObject *raise_flame(void)
{
    return raise_status(flame_error_last_code(), flame_error_last());
}

static PyObject *bytes_or_none(flame_bytes b)
{
    if (!b.data)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)b.data, (Py_ssize_t)b.len);
}

static PyObject *str_or_none(const char *s)
{
    if (!s)
        Py_RETURN_NONE;
    return PyUnicode_FromString(s);
}

static PyObject *resreq_str(const flame_resreq *r)
{
    return PyUnicode_FromFormat("cpu=%llu,mem=%llu,gpu=%d", (unsigned long long)r->cpu,
                                (unsigned long long)r->memory, r->gpu);
}

/* ---- Client ------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    flame_client *c;
} ClientObject;

static PyTypeObject ClientType;

typedef struct {
    PyObject_HEAD
    flame_session *s;
    PyObject *client; /* keeps the client alive */
} SessionObject;

static PyTypeObject SessionType;

static int Client_init(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "endpoint", "ca_file", "cert_file", "key_file", NULL };
    const char *endpoint = NULL, *ca = NULL, *cert = NULL, *key = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|zzzz", kwlist, &endpoint, &ca, &cert, &key))
        return -1;
    flame_client_options o;
    flame_client_options_init(&o);
    o.endpoint = endpoint;
    o.tls_ca_file = ca;
    o.tls_cert_file = cert;
    o.tls_key_file = key;
    if (flame_client_connect(&self->c, &o) != FLAME_OK) {
        raise_flame();
        return -1;
    }
    return 0;
}

static void Client_dealloc(ClientObject *self)
{
    flame_client_free(self->c);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Client_endpoint(ClientObject *self, void *closure)
{
    return PyUnicode_FromString(flame_client_endpoint(self->c));
}

static PyObject *make_session(ClientObject *client, flame_session *s)
{
    SessionObject *o = PyObject_New(SessionObject, &SessionType);
    if (!o) {
        flame_session_free(s);
        return NULL;
    }
    o->s = s;
    o->client = (PyObject *)client;
    Py_INCREF(client);
    return (PyObject *)o;
}

static int parse_resreq(PyObject *obj, flame_session_spec *spec)
{
    if (!obj || obj == Py_None)
        return 0;
    const char *text = PyUnicode_AsUTF8(obj);
    if (!text)
        return -1;
    spec->has_resreq = 1;
    spec->resreq = (flame_resreq){ 1, 0, 0 };
    if (flame_resreq_parse(&spec->resreq, text) != FLAME_OK) {
        raise_flame();
        return -1;
    }
    return 0;
}

/* create_session(application, common_data=None, session_id=None, min_instances=0,
 *                max_instances=None, priority=0, resreq=None, open=False, batch_size=1) */
static PyObject *Client_create_session(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "application", "common_data", "session_id", "min_instances",
                              "max_instances", "priority", "resreq", "open", "batch_size", NULL };
    const char *app, *sid = NULL;
    Py_buffer cd = { 0 };
    unsigned int min_i = 0, prio = 0, batch = 1;
    PyObject *max_o = Py_None, *resreq = Py_None;
    int open = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|z*zIOIOpI", kwlist, &app, &cd, &sid, &min_i,
                                     &max_o, &prio, &resreq, &open, &batch))
        return NULL;
    flame_session_spec spec;
    flame_session_spec_init(&spec);
    spec.application = app;
    if (cd.buf) {
        spec.common_data.data = cd.buf;
        spec.common_data.len = (size_t)cd.len;
    }
    spec.min_instances = min_i;
    spec.priority = prio;
    spec.batch_size = batch;
    if (max_o != Py_None) {
        spec.has_max_instances = 1;
        spec.max_instances = (uint32_t)PyLong_AsUnsignedLong(max_o);
    }
    if (PyErr_Occurred() || parse_resreq(resreq, &spec) < 0) {
        PyBuffer_Release(&cd);
        return NULL;
    }
    flame_session *s = NULL;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = open ? flame_session_open(&s, self->c, sid, &spec)
              : flame_session_create(&s, self->c, sid, &spec);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&cd);
    if (st)
        return raise_flame();
    return make_session(self, s);
}

static PyObject *Client_open_session(ClientObject *self, PyObject *args)
{
    const char *sid;
    if (!PyArg_ParseTuple(args, "s", &sid))
        return NULL;
    flame_session *s = NULL;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_session_open(&s, self->c, sid, NULL);
    Py_END_ALLOW_THREADS
    if (st)
        return raise_flame();
    return make_session(self, s);
}

/* attach_session(id): a handle without a call to the server */
static PyObject *Client_attach_session(ClientObject *self, PyObject *args)
{
    const char *sid;
    if (!PyArg_ParseTuple(args, "s", &sid))
        return NULL;
    flame_session *s = NULL;
    if (flame_session_attach(&s, self->c, sid))
        return raise_flame();
    return make_session(self, s);
}

static PyObject *events_list(const flame_event *ev, size_t n)
{
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++)
        PyList_SET_ITEM(l, (Py_ssize_t)i,
                        Py_BuildValue("{s:i,s:N,s:L}", "code", ev[i].code, "message",
                                      str_or_none(ev[i].message), "creation_time",
                                      (long long)ev[i].creation_time));
    return l;
}

static PyObject *session_dict(const flame_session_info *s)
{
    PyObject *d = Py_BuildValue(
        "{s:s,s:s,s:s,s:N,s:I,s:I,s:L,s:L,s:i,s:i,s:i,s:i,s:i,s:N,s:N}", "id", s->id,
        "application", s->spec->application, "state", flame_session_state_str(s->state),
        "common_data", bytes_or_none(s->spec->common_data), "priority", s->spec->priority,
        "min_instances", s->spec->min_instances, "creation_time", (long long)s->creation_time,
        "completion_time", (long long)s->completion_time, "pending", s->pending, "running",
        s->running, "succeed", s->succeed, "failed", s->failed, "cancelled", s->cancelled,
        "resreq", resreq_str(&s->spec->resreq), "events", events_list(s->events, s->events_len));
    if (d) {
        PyObject *m = s->spec->has_max_instances ? PyLong_FromUnsignedLong(s->spec->max_instances)
                                                 : (Py_INCREF(Py_None), Py_None);
        PyDict_SetItemString(d, "max_instances", m);
        Py_DECREF(m);
        m = PyLong_FromUnsignedLong(s->spec->batch_size);
        PyDict_SetItemString(d, "batch_size", m);
        Py_DECREF(m);
    }
    return d;
}

static PyObject *Client_get_session(ClientObject *self, PyObject *args)
{
    const char *sid;
    if (!PyArg_ParseTuple(args, "s", &sid))
        return NULL;
    flame_session_info *info;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_session_get(&info, self->c, sid);
    Py_END_ALLOW_THREADS
    if (st)
        return raise_flame();
    PyObject *d = session_dict(info);
    flame_session_info_free(info);
    return d;
}

static PyObject *Client_list_sessions(ClientObject *self, PyObject *unused)
{
    flame_session_info **v;
    size_t n;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_session_list(&v, &n, self->c);
    Py_END_ALLOW_THREADS
    if (st)
        return raise_flame();
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++)
        PyList_SET_ITEM(l, (Py_ssize_t)i, session_dict(v[i]));
    flame_session_info_list_free(v, n);
    return l;
}

/* ---- applications ------------------------------------------------------- */

static const char *dict_str(PyObject *d, const char *key)
{
    PyObject *v = PyDict_GetItemString(d, key);
    return v && v != Py_None ? PyUnicode_AsUTF8(v) : NULL;
}

static const char **str_list(PyObject *d, const char *key, size_t *n)
{
    PyObject *v = PyDict_GetItemString(d, key);
    *n = 0;
    if (!v || v == Py_None)
        return NULL;
    PyObject *seq = PySequence_Fast(v, "expected a list of strings");
    if (!seq)
        return NULL;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    const char **a = calloc((size_t)k + 1, sizeof *a);
    for (Py_ssize_t i = 0; i < k; i++)
        a[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
    Py_DECREF(seq); /* the strings live in v, which the dict holds */
    *n = (size_t)k;
    return a;
}

/* register_application(name, attrs: dict, update=False) */
static PyObject *Client_register_application(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "name", "attrs", "update", NULL };
    const char *name;
    PyObject *d;
    int update = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO!|p", kwlist, &name, &PyDict_Type, &d, &update))
        return NULL;
    flame_application_spec spec;
    flame_application_spec_init(&spec);
    PyObject *shim_o = PyDict_GetItemString(d, "shim");
    if (shim_o && PyLong_Check(shim_o)) {
        spec.shim = PyLong_AsLong(shim_o) == FLAME_SHIM_WASM ? FLAME_SHIM_WASM : FLAME_SHIM_HOST;
    } else {
        const char *shim = dict_str(d, "shim");
        spec.shim = shim && (strcmp(shim, "Wasm") == 0 || strcmp(shim, "wasm") == 0)
                        ? FLAME_SHIM_WASM
                        : FLAME_SHIM_HOST;
    }
    spec.schema_input = dict_str(d, "schema_input");
    spec.schema_output = dict_str(d, "schema_output");
    spec.schema_common_data = dict_str(d, "schema_common_data");
    spec.description = dict_str(d, "description");
    spec.image = dict_str(d, "image");
    spec.command = dict_str(d, "command");
    spec.working_directory = dict_str(d, "working_directory");
    spec.url = dict_str(d, "url");
    spec.installer = dict_str(d, "installer");
    spec.sandbox = dict_str(d, "sandbox");
    spec.network = dict_str(d, "network");
    spec.arguments = str_list(d, "arguments", &spec.arguments_len);
    spec.labels = str_list(d, "labels", &spec.labels_len);
    flame_env *envs = NULL;
    PyObject *ev = PyDict_GetItemString(d, "environments");
    if (ev && PyDict_Check(ev)) {
        Py_ssize_t pos = 0, i = 0;
        PyObject *k, *v;
        envs = calloc((size_t)PyDict_Size(ev) + 1, sizeof *envs);
        while (PyDict_Next(ev, &pos, &k, &v)) {
            envs[i].name = PyUnicode_AsUTF8(k);
            envs[i].value = PyUnicode_AsUTF8(v);
            i++;
        }
        spec.environments = envs;
        spec.environments_len = (size_t)i;
    }
    PyObject *mi = PyDict_GetItemString(d, "max_instances");
    if (mi && mi != Py_None) {
        spec.has_max_instances = 1;
        spec.max_instances = (uint32_t)PyLong_AsUnsignedLong(mi);
    }
    PyObject *dr = PyDict_GetItemString(d, "delay_release");
    if (dr && dr != Py_None) {
        spec.has_delay_release = 1;
        spec.delay_release = PyLong_AsLongLong(dr);
    }
    flame_status st = FLAME_OK;
    if (!PyErr_Occurred()) {
        Py_BEGIN_ALLOW_THREADS
        st = update ? flame_application_update(self->c, name, &spec)
                    : flame_application_register(self->c, name, &spec);
        Py_END_ALLOW_THREADS
    }
    free((void *)spec.arguments);
    free((void *)spec.labels);
    free(envs);
    if (PyErr_Occurred())
        return NULL;
    if (st)
        return raise_flame();
    Py_RETURN_NONE;
}

static PyObject *Client_unregister_application(ClientObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name))
        return NULL;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_application_unregister(self->c, name);
    Py_END_ALLOW_THREADS
    if (st)
        return raise_flame();
    Py_RETURN_NONE;
}

static PyObject *app_dict(const flame_application *a)
{
    const flame_application_spec *s = a->spec;
    PyObject *args = PyList_New((Py_ssize_t)s->arguments_len);
    for (size_t i = 0; args && i < s->arguments_len; i++)
        PyList_SET_ITEM(args, (Py_ssize_t)i, PyUnicode_FromString(s->arguments[i]));
    PyObject *envs = PyDict_New();
    for (size_t i = 0; envs && i < s->environments_len; i++) {
        PyObject *v = PyUnicode_FromString(s->environments[i].value);
        PyDict_SetItemString(envs, s->environments[i].name, v);
        Py_XDECREF(v);
    }
    PyObject *labels = PyList_New((Py_ssize_t)s->labels_len);
    for (size_t i = 0; labels && i < s->labels_len; i++)
        PyList_SET_ITEM(labels, (Py_ssize_t)i, PyUnicode_FromString(s->labels[i]));
    PyObject *d = Py_BuildValue(
        "{s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N}", "image", str_or_none(s->image), "labels", labels,
        "schema_input", str_or_none(s->schema_input), "schema_output",
        str_or_none(s->schema_output), "schema_common_data", str_or_none(s->schema_common_data),
        "installer", str_or_none(s->installer), "sandbox", str_or_none(s->sandbox), "network",
        str_or_none(s->network), "delay_release",
        s->has_delay_release ? PyLong_FromLongLong(s->delay_release)
                             : (Py_INCREF(Py_None), Py_None));
    PyObject *base = Py_BuildValue("{s:s,s:s,s:s,s:L,s:N,s:N,s:N,s:N,s:N,s:N,s:N}", "name", a->name, "state",
                         a->state == FLAME_APPLICATION_ENABLED ? "Enabled" : "Disabled", "shim",
                         flame_shim_str(s->shim), "creation_time", (long long)a->creation_time,
                         "command", str_or_none(s->command), "arguments", args, "environments",
                         envs, "working_directory", str_or_none(s->working_directory),
                         "description", str_or_none(s->description), "url",
                         str_or_none(s->url), "max_instances",
                         s->has_max_instances ? PyLong_FromUnsignedLong(s->max_instances)
                                              : (Py_INCREF(Py_None), Py_None));
    if (base && d && PyDict_Update(base, d) == 0) {
        Py_DECREF(d);
        return base;
    }
    Py_XDECREF(base);
    Py_XDECREF(d);
    return NULL;
}

static PyObject *Client_get_application(ClientObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name))
        return NULL;
    flame_application *a;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_application_get(&a, self->c, name);
    Py_END_ALLOW_THREADS
    if (st)
        return raise_flame();
    PyObject *d = app_dict(a);
    flame_application_free(a);
    return d;
}

static PyObject *Client_list_applications(ClientObject *self, PyObject *unused)
{
    flame_application **v;
    size_t n;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_application_list(&v, &n, self->c);
    Py_END_ALLOW_THREADS
    if (st)
        return raise_flame();
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++)
        PyList_SET_ITEM(l, (Py_ssize_t)i, app_dict(v[i]));
    flame_application_list_free(v, n);
    return l;
}

static PyObject *Client_list_executors(ClientObject *self, PyObject *unused)
{
    flame_executor_info **v;
    size_t n;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_executor_list(&v, &n, self->c);
    Py_END_ALLOW_THREADS
    if (st)
        return raise_flame();
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++)
        PyList_SET_ITEM(l, (Py_ssize_t)i,
                        Py_BuildValue("{s:s,s:s,s:s,s:N,s:N}", "id", v[i]->id, "node", v[i]->node,
                                      "state", flame_executor_state_str(v[i]->state), "session_id",
                                      str_or_none(v[i]->session_id), "resreq",
                                      resreq_str(&v[i]->resreq)));
    flame_executor_info_list_free(v, n);
    return l;
}

static PyObject *Client_list_nodes(ClientObject *self, PyObject *unused)
{
    flame_node_info **v;
    size_t n;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_node_list(&v, &n, self->c);
    Py_END_ALLOW_THREADS
    if (st)
        return raise_flame();
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++)
        PyList_SET_ITEM(l, (Py_ssize_t)i,
                        Py_BuildValue("{s:s,s:s,s:s,s:N,s:N,s:s,s:s}", "name", v[i]->name,
                                      "hostname", v[i]->hostname, "state",
                                      flame_node_state_str(v[i]->state), "capacity",
                                      resreq_str(&v[i]->capacity), "allocatable",
                                      resreq_str(&v[i]->allocatable), "arch", v[i]->arch, "os",
                                      v[i]->os));
    flame_node_info_list_free(v, n);
    return l;
}

static PyMethodDef Client_methods[] = {
    { "create_session", (PyCFunction)(void (*)(void))Client_create_session,
      METH_VARARGS | METH_KEYWORDS, NULL },
    { "open_session", (PyCFunction)Client_open_session, METH_VARARGS, NULL },
    { "attach_session", (PyCFunction)Client_attach_session, METH_VARARGS, NULL },
    { "get_session", (PyCFunction)Client_get_session, METH_VARARGS, NULL },
    { "list_sessions", (PyCFunction)Client_list_sessions, METH_NOARGS, NULL },
    { "register_application", (PyCFunction)(void (*)(void))Client_register_application,
      METH_VARARGS | METH_KEYWORDS, NULL },
    { "unregister_application", (PyCFunction)Client_unregister_application, METH_VARARGS, NULL },
    { "get_application", (PyCFunction)Client_get_application, METH_VARARGS, NULL },
    { "list_applications", (PyCFunction)Client_list_applications, METH_NOARGS, NULL },
    { "list_executors", (PyCFunction)Client_list_executors, METH_NOARGS, NULL },
    { "list_nodes", (PyCFunction)Client_list_nodes, METH_NOARGS, NULL },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef Client_getset[] = {
    { "endpoint", (getter)Client_endpoint, NULL, NULL, NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject ClientType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "flame._flame.Client",
    .tp_basicsize = sizeof(ClientObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Client_init,
    .tp_dealloc = (destructor)Client_dealloc,
    .tp_methods = Client_methods,
    .tp_getset = Client_getset,
};

/* ---- Session ------------------------------------------------------------ */

static void Session_dealloc(SessionObject *self)
{
    flame_session_free(self->s);
    Py_XDECREF(self->client);
    PyObject_Free(self);
}

static PyObject *Session_id(SessionObject *self, void *closure)
{
    return PyUnicode_FromString(flame_session_id(self->s));
}

static PyObject *task_dict(const flame_task *t)
{
    return Py_BuildValue("{s:s,s:s,s:s,s:N,s:N,s:N,s:L,s:L,s:N}", "id", t->id, "session_id",
                         t->session_id, "state", flame_task_state_str(t->state), "input",
                         bytes_or_none(t->input), "output", bytes_or_none(t->output), "message",
                         str_or_none(t->message), "creation_time", (long long)t->creation_time,
                         "completion_time", (long long)t->completion_time, "events",
                         events_list(t->events, t->events_len));
}

/* invoke(input) -> output bytes (or None); raises FlameError if it failed */
static PyObject *Session_invoke(SessionObject *self, PyObject *args)
{
    Py_buffer in = { 0 };
    if (!PyArg_ParseTuple(args, "z*", &in))
        return NULL;
    flame_task *t = NULL, *done = NULL;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_task_create(&t, self->s, in.buf, (size_t)in.len);
    if (!st)
        st = flame_task_wait(&done, self->s, t->id, -1);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&in);
    flame_task_free(t);
    if (st)
        return raise_flame();
    PyObject *r;
    if (done->state == FLAME_TASK_SUCCEED) {
        r = bytes_or_none(done->output);
    } else {
        r = raise_status(FLAME_ERR_TASK_FAILED, done->message ? done->message : "the task failed");
    }
    flame_task_free(done);
    return r;
}

/* map(inputs) -> [outputs] in input order (flame_session_map: one batched
 * submission, one outcome stream); raises FlameError with the first failed
 * task's message */
static PyObject *Session_map(SessionObject *self, PyObject *args)
{
    PyObject *seq_in;
    if (!PyArg_ParseTuple(args, "O", &seq_in))
        return NULL;
    PyObject *seq = PySequence_Fast(seq_in, "map() takes a sequence of bytes");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    flame_bytes *in = calloc((size_t)n + 1, sizeof *in);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *x = PySequence_Fast_GET_ITEM(seq, i);
        char *p;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(x, &p, &len) < 0) {
            free(in);
            Py_DECREF(seq);
            return NULL;
        }
        in[i] = (flame_bytes){ (const uint8_t *)p, (size_t)len };
    }
    flame_task_outcome *o = NULL;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_session_map(&o, self->s, in, (size_t)n, -1);
    Py_END_ALLOW_THREADS
    free(in);
    Py_DECREF(seq);
    if (st)
        return raise_flame();
    PyObject *out = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (o[i].state != FLAME_TASK_SUCCEED) {
            raise_status(FLAME_ERR_TASK_FAILED, o[i].message ? o[i].message : "a task failed");
            goto done;
        }
    out = PyList_New(n);
    for (Py_ssize_t i = 0; out && i < n; i++)
        PyList_SET_ITEM(out, i, bytes_or_none(o[i].output));
done:
    flame_task_outcome_list_free(o, (size_t)n);
    return out;
}

/* submit(input, full=False) -> the task's id (str), or with full the task
 * (dict) as created: CreateTask, without waiting for the task */
static PyObject *Session_submit(SessionObject *self, PyObject *args)
{
    Py_buffer in = { 0 };
    int full = 0;
    if (!PyArg_ParseTuple(args, "z*|p", &in, &full))
        return NULL;
    flame_task *t = NULL;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_task_create(&t, self->s, in.buf, (size_t)in.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&in);
    if (st)
        return raise_flame();
    PyObject *r = full ? task_dict(t) : PyUnicode_FromString(t->id);
    flame_task_free(t);
    return r;
}

typedef struct {
    PyObject *cb;
    PyObject *exc_type, *exc_value, *exc_tb; /* what the callback raised */
} outcomes_payload;

static int outcomes_cb(const flame_task_outcome *o, size_t n, void *payload)
{
    outcomes_payload *p = payload;
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = 1;
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++) {
        PyObject *t = Py_BuildValue("(KsNNL)", (unsigned long long)o[i].task_id,
                                    flame_task_state_str(o[i].state), bytes_or_none(o[i].output),
                                    str_or_none(o[i].message), (long long)o[i].completion_time);
        if (!t) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, t);
    }
    PyObject *r = l ? PyObject_CallFunctionObjArgs(p->cb, l, NULL) : NULL;
    Py_XDECREF(l);
    if (r) {
        stop = PyObject_IsTrue(r) == 1;
        Py_DECREF(r);
    }
    if (PyErr_Occurred()) {
        stop = 1; /* re-raised by watch_outcomes */
        PyErr_Fetch(&p->exc_type, &p->exc_value, &p->exc_tb);
    }
    PyGILState_Release(g);
    return stop;
}

/* watch_outcomes(from_task_id, callback, timeout_ms=-1) -> bool: the
 * session's outcome stream (flame_session_watch). callback(list of
 * (task_id, state, output, message, completion_time)) for each batch, on
 * this thread; a true return stops it. Returns True when stopped by the
 * callback or when the session is closed with nothing left to run, False on
 * timeout; what the callback raises stops the watch and is raised here. */
static PyObject *Session_watch_outcomes(SessionObject *self, PyObject *args)
{
    unsigned long long from;
    int timeout = -1;
    outcomes_payload p = { NULL, NULL, NULL, NULL };
    if (!PyArg_ParseTuple(args, "KO|i", &from, &p.cb, &timeout))
        return NULL;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_session_watch(self->s, (uint64_t)from, outcomes_cb, &p, timeout);
    Py_END_ALLOW_THREADS
    if (p.exc_type) {
        PyErr_Restore(p.exc_type, p.exc_value, p.exc_tb);
        return NULL;
    }
    if (st == FLAME_ERR_TIMEOUT)
        Py_RETURN_FALSE;
    if (st)
        return raise_flame();
    Py_RETURN_TRUE;
}

static PyObject *Session_list_tasks(SessionObject *self, PyObject *unused)
{
    flame_task **v;
    size_t n;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_task_list(&v, &n, self->s);
    Py_END_ALLOW_THREADS
    if (st)
        return raise_flame();
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++)
        PyList_SET_ITEM(l, (Py_ssize_t)i, task_dict(v[i]));
    flame_task_list_free(v, n);
    return l;
}

static PyObject *Session_get_task(SessionObject *self, PyObject *args)
{
    const char *id;
    if (!PyArg_ParseTuple(args, "s", &id))
        return NULL;
    flame_task *t;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_task_get(&t, self->s, id);
    Py_END_ALLOW_THREADS
    if (st)
        return raise_flame();
    PyObject *d = task_dict(t);
    flame_task_free(t);
    return d;
}

static int watch_cb(const flame_task *t, void *payload)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = 0;
    PyObject *d = task_dict(t);
    if (d) {
        PyObject *r = PyObject_CallFunctionObjArgs((PyObject *)payload, d, NULL);
        Py_DECREF(d);
        if (!r) {
            PyErr_Clear();
            stop = 1;
        } else {
            stop = PyObject_IsTrue(r) == 1;
            Py_DECREF(r);
        }
    }
    PyGILState_Release(g);
    return stop;
}

/* watch_task(id, callback, timeout_ms=-1): callback(task dict) at the
 * current state and at each change until the task ends; a true return
 * value stops the watch */
static PyObject *Session_watch_task(SessionObject *self, PyObject *args)
{
    const char *id;
    PyObject *cb;
    int timeout = -1;
    if (!PyArg_ParseTuple(args, "sO|i", &id, &cb, &timeout))
        return NULL;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_task_watch(self->s, id, watch_cb, cb, timeout);
    Py_END_ALLOW_THREADS
    if (st && st != FLAME_ERR_CANCELLED)
        return raise_flame();
    Py_RETURN_NONE;
}

static PyObject *Session_close(SessionObject *self, PyObject *unused)
{
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_session_close(self->s);
    Py_END_ALLOW_THREADS
    if (st)
        return raise_flame();
    Py_RETURN_NONE;
}

static PyMethodDef Session_methods[] = {
    { "invoke", (PyCFunction)Session_invoke, METH_VARARGS, NULL },
    { "map", (PyCFunction)Session_map, METH_VARARGS, NULL },
    { "submit", (PyCFunction)Session_submit, METH_VARARGS, NULL },
    { "watch_outcomes", (PyCFunction)Session_watch_outcomes, METH_VARARGS, NULL },
    { "list_tasks", (PyCFunction)Session_list_tasks, METH_NOARGS, NULL },
    { "get_task", (PyCFunction)Session_get_task, METH_VARARGS, NULL },
    { "watch_task", (PyCFunction)Session_watch_task, METH_VARARGS, NULL },
    { "close", (PyCFunction)Session_close, METH_NOARGS, NULL },
    { NULL, NULL, 0, NULL },
};

static PyGetSetDef Session_getset[] = {
    { "id", (getter)Session_id, NULL, NULL, NULL },
    { NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject SessionType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "flame._flame.Session",
    .tp_basicsize = sizeof(SessionObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_dealloc = (destructor)Session_dealloc,
    .tp_methods = Session_methods,
    .tp_getset = Session_getset,
};

/* ---- the object cache (cache.h's client) -------------------------------- */

typedef struct {
    PyObject_HEAD
    flame_cache *c;
} CacheObject;

static int Cache_init(CacheObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "endpoint", "ca_file", NULL };
    const char *endpoint = NULL, *ca = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|zz", kwlist, &endpoint, &ca))
        return -1;
    flame_cache_options o;
    flame_cache_options_init(&o);
    o.ca_file = ca;
    if (flame_cache_connect(&self->c, endpoint, &o) != FLAME_OK) {
        raise_flame();
        return -1;
    }
    return 0;
}

static void Cache_dealloc(CacheObject *self)
{
    flame_cache_close(self->c);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *ref_tuple(flame_cache_ref *ref)
{
    PyObject *t = Py_BuildValue("(ssL)", ref->endpoint ? ref->endpoint : "",
                                ref->key ? ref->key : "", (long long)ref->version);
    flame_cache_ref_clear(ref);
    return t;
}

/* put(key_or_prefix, data, patch=False) -> (endpoint, key, version) */
static PyObject *Cache_put(CacheObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = { "key", "data", "patch", NULL };
    const char *key;
    Py_buffer data;
    int patch = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sy*|p", kwlist, &key, &data, &patch))
        return NULL;
    flame_cache_ref ref = { 0 };
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = patch ? flame_cache_patch(self->c, key, data.buf, (size_t)data.len, &ref)
               : flame_cache_put(self->c, key, data.buf, (size_t)data.len, &ref);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    if (st)
        return raise_flame();
    return ref_tuple(&ref);
}

/* fetch(key, known_version=0) -> (version, not_modified, base or None,
 * [(version, patch bytes)]) */
static PyObject *Cache_fetch(CacheObject *self, PyObject *args)
{
    const char *key;
    unsigned long long known = 0;
    if (!PyArg_ParseTuple(args, "s|K", &key, &known))
        return NULL;
    flame_cache_object o;
    memset(&o, 0, sizeof o);
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_cache_fetch(self->c, key, (uint64_t)known, &o);
    Py_END_ALLOW_THREADS
    if (st)
        return raise_flame();
    PyObject *patches = PyList_New((Py_ssize_t)o.n_patches);
    for (size_t i = 0; patches && i < o.n_patches; i++) {
        PyObject *t = Py_BuildValue("(Ky#)", (unsigned long long)o.patches[i].version,
                                    (const char *)o.patches[i].data,
                                    (Py_ssize_t)o.patches[i].len);
        if (!t) {
            Py_CLEAR(patches);
            break;
        }
        PyList_SET_ITEM(patches, (Py_ssize_t)i, t);
    }
    PyObject *base = o.has_base ? PyBytes_FromStringAndSize((const char *)o.base,
                                                            (Py_ssize_t)o.base_len)
                                : (Py_INCREF(Py_None), Py_None);
    PyObject *r = patches && base ? Py_BuildValue("(KiOO)", (unsigned long long)o.version,
                                                  o.not_modified, base, patches)
                                  : NULL;
    Py_XDECREF(patches);
    Py_XDECREF(base);
    flame_cache_object_clear(&o);
    return r;
}

static PyObject *Cache_delete(CacheObject *self, PyObject *args)
{
    const char *pattern;
    if (!PyArg_ParseTuple(args, "s", &pattern))
        return NULL;
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_cache_delete(self->c, pattern);
    Py_END_ALLOW_THREADS
    if (st)
        return raise_flame();
    Py_RETURN_NONE;
}

static PyMethodDef Cache_methods[] = {
    { "put", (PyCFunction)(void (*)(void))Cache_put, METH_VARARGS | METH_KEYWORDS, NULL },
    { "fetch", (PyCFunction)Cache_fetch, METH_VARARGS, NULL },
    { "delete", (PyCFunction)Cache_delete, METH_VARARGS, NULL },
    { NULL, NULL, 0, NULL },
};

static PyTypeObject CacheType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "flame._flame.Cache",
    .tp_basicsize = sizeof(CacheObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Cache_init,
    .tp_dealloc = (destructor)Cache_dealloc,
    .tp_methods = Cache_methods,
};

/* ref_encode(endpoint, key, version) -> BSON bytes, as flamepy's ObjectRef */
static PyObject *mod_ref_encode(PyObject *mod, PyObject *args)
{
    const char *endpoint, *key;
    long long version;
    if (!PyArg_ParseTuple(args, "ssL", &endpoint, &key, &version))
        return NULL;
    flame_cache_ref ref = { (char *)endpoint, (char *)key, version };
    void *data = NULL;
    size_t len = 0;
    if (flame_cache_ref_encode(&ref, &data, &len))
        return raise_flame();
    PyObject *r = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    free(data);
    return r;
}

/* ref_decode(bytes) -> (endpoint, key, version) */
static PyObject *mod_ref_decode(PyObject *mod, PyObject *args)
{
    Py_buffer b;
    if (!PyArg_ParseTuple(args, "y*", &b))
        return NULL;
    flame_cache_ref ref = { 0 };
    flame_status st = flame_cache_ref_decode(&ref, b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    if (st) {
        flame_cache_ref_clear(&ref);
        return raise_flame();
    }
    return ref_tuple(&ref);
}

/* ---- the service side: run(service) ------------------------------------ */

static PyObject *py_service;

static void report(void)
{
    PyErr_Print();
}

static int svc_enter(const flame_session_context *ctx, char **message_out, void *payload)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = 0;
    PyObject *c = Py_BuildValue("{s:s,s:s,s:N}", "session_id", ctx->session_id, "application",
                                ctx->application, "common_data", bytes_or_none(ctx->common_data));
    PyObject *r = c ? PyObject_CallMethod(py_service, "_enter", "O", c) : NULL;
    if (!r) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyObject *s = v ? PyObject_Str(v) : NULL;
        *message_out = strdup(s && PyUnicode_AsUTF8(s) ? PyUnicode_AsUTF8(s) : "on_session_enter raised");
        Py_XDECREF(s);
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
        PyErr_Clear();
        rc = 1;
    }
    Py_XDECREF(r);
    Py_XDECREF(c);
    PyGILState_Release(g);
    return rc;
}

static int svc_invoke(const flame_task_context *ctx, flame_task_result *result, void *payload)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = 0;
    PyObject *c = Py_BuildValue("{s:s,s:s,s:N}", "task_id", ctx->task_id, "session_id",
                                ctx->session_id, "input", bytes_or_none(ctx->input));
    PyObject *r = c ? PyObject_CallMethod(py_service, "_invoke", "O", c) : NULL;
    if (!r) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyObject *s = v ? PyObject_Str(v) : NULL;
        flame_task_result_set_message(result, s && PyUnicode_AsUTF8(s) ? PyUnicode_AsUTF8(s)
                                                                         : "on_task_invoke raised");
        Py_XDECREF(s);
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
        PyErr_Clear();
        rc = 1;
    } else if (r != Py_None) {
        char *p;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(r, &p, &len) == 0) {
            flame_task_result_set_output(result, p, (size_t)len);
        } else {
            PyErr_Clear();
            flame_task_result_set_message(result, "on_task_invoke must return bytes or None");
            rc = 1;
        }
    }
    Py_XDECREF(r);
    Py_XDECREF(c);
    PyGILState_Release(g);
    return rc;
}

/* The n tasks of one OnTaskInvokeBatch in one Python call (one GIL take,
 * one list): the adapter's _invoke_batch runs the per-task handler on each
 * and answers, per task, bytes or None (succeeded) or a str (failed, its
 * message), so that an exception fails its task only. */
static void svc_invoke_batch(const flame_task_context *tasks, size_t n, int *rcs,
                             flame_task_result **results, void *payload)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *list = PyList_New((Py_ssize_t)n), *r = NULL;
    for (size_t i = 0; list && i < n; i++) {
        PyObject *t = Py_BuildValue("(ssN)", tasks[i].task_id, tasks[i].session_id,
                                    bytes_or_none(tasks[i].input));
        if (!t) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    if (list)
        r = PyObject_CallMethod(py_service, "_invoke_batch", "O", list);
    if (!r || !PyList_Check(r) || PyList_GET_SIZE(r) != (Py_ssize_t)n) {
        /* the adapter itself failed (not a handler: those are caught per
         * task): every task of the batch fails with why */
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyObject *s = v ? PyObject_Str(v) : NULL;
        const char *m = s && PyUnicode_AsUTF8(s) ? PyUnicode_AsUTF8(s) : "the batch adapter failed";
        for (size_t i = 0; i < n; i++) {
            rcs[i] = 1;
            flame_task_result_set_message(results[i], m);
        }
        Py_XDECREF(s);
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
        PyErr_Clear();
    } else {
        for (size_t i = 0; i < n; i++) {
            PyObject *o = PyList_GET_ITEM(r, (Py_ssize_t)i);
            rcs[i] = 0;
            if (PyBytes_Check(o)) {
                flame_task_result_set_output(results[i], PyBytes_AS_STRING(o),
                                             (size_t)PyBytes_GET_SIZE(o));
            } else if (PyUnicode_Check(o)) {
                const char *m = PyUnicode_AsUTF8(o);
                if (!m)
                    PyErr_Clear();
                flame_task_result_set_message(results[i], m ? m : "on_task_invoke raised");
                rcs[i] = 1;
            } else if (o != Py_None) {
                flame_task_result_set_message(results[i], "on_task_invoke must return bytes or None");
                rcs[i] = 1;
            }
        }
    }
    Py_XDECREF(r);
    Py_XDECREF(list);
    PyGILState_Release(g);
}

static void svc_leave(void *payload)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(py_service, "_leave", NULL);
    if (!r)
        report();
    Py_XDECREF(r);
    PyGILState_Release(g);
}

/* run(service): serves flame.v1 Instance on $FLAME_INSTANCE_ENDPOINT until
 * SIGTERM (what the executor manager sends at unbind). */
static PyObject *mod_run(PyObject *mod, PyObject *args)
{
    PyObject *svc;
    if (!PyArg_ParseTuple(args, "O", &svc))
        return NULL;
    Py_XSETREF(py_service, svc);
    Py_INCREF(svc);
    /* batches by default: the executor manager hands a run of fast tasks
     * in one OnTaskInvokeBatch, and they cost one GIL take and one Python
     * call together; the user's handler still sees one task at a time */
    flame_service s = { FLAME_SERVICE_VERSION, svc_enter, svc_invoke, svc_leave, NULL,
                        svc_invoke_batch };
    flame_status st;
    Py_BEGIN_ALLOW_THREADS
    st = flame_service_run(&s);
    Py_END_ALLOW_THREADS
    if (st)
        return raise_flame();
    Py_RETURN_NONE;
}

static PyObject *mod_set_error_factory(PyObject *mod, PyObject *factory)
{
    Py_INCREF(factory);
    Py_XSETREF(error_factory, factory);
    Py_RETURN_NONE;
}

static PyObject *mod_version(PyObject *mod, PyObject *unused)
{
    return PyUnicode_FromString(flame_version());
}

static PyMethodDef module_methods[] = {
    { "run", mod_run, METH_VARARGS, NULL },
    { "version", mod_version, METH_NOARGS, NULL },
    { "_set_error_factory", mod_set_error_factory, METH_O, NULL },
    { "ref_encode", mod_ref_encode, METH_VARARGS, NULL },
    { "ref_decode", mod_ref_decode, METH_VARARGS, NULL },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module = { PyModuleDef_HEAD_INIT, "_flame", NULL, -1, module_methods };

PyMODINIT_FUNC PyInit__flame(void)
{
    if (PyType_Ready(&ClientType) < 0 || PyType_Ready(&SessionType) < 0 ||
        PyType_Ready(&CacheType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Py_INCREF(&ClientType);
    PyModule_AddObject(m, "Client", (PyObject *)&ClientType);
    Py_INCREF(&SessionType);
    PyModule_AddObject(m, "Session", (PyObject *)&SessionType);
    Py_INCREF(&CacheType);
    PyModule_AddObject(m, "Cache", (PyObject *)&CacheType);
    return m;
}

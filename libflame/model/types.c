/* Public helpers of types.h: state names and resreq parsing. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "flame/types.h"
#include "util/util.h"

const char *flame_session_state_str(flame_session_state s)
{
    static const char *n[] = { "Open", "Closed", "Suspending", "Suspended" };
    return (unsigned)s < FL_ARRAY_LEN(n) ? n[s] : "Unknown";
}

const char *flame_task_state_str(flame_task_state s)
{
    static const char *n[] = { "Pending", "Running", "Succeed", "Failed", "Cancelled" };
    return (unsigned)s < FL_ARRAY_LEN(n) ? n[s] : "Unknown";
}

const char *flame_executor_state_str(flame_executor_state s)
{
    static const char *n[] = { "Unknown", "Void", "Idle", "Binding",
                               "Bound", "Unbinding", "Releasing", "Released" };
    return (unsigned)s < FL_ARRAY_LEN(n) ? n[s] : "Unknown";
}

const char *flame_shim_str(flame_shim s)
{
    return s == FLAME_SHIM_HOST    ? "Host"
           : s == FLAME_SHIM_WASM  ? "Wasm"
           : s == FLAME_SHIM_CRI   ? "Cri"
           : s == FLAME_SHIM_STDIO ? "Stdio"
           : s == FLAME_SHIM_REST  ? "Rest"
                                   : "Unknown";
}

const char *flame_node_state_str(flame_node_state s)
{
    static const char *n[] = { "Unknown", "Ready", "NotReady" };
    return (unsigned)s < FL_ARRAY_LEN(n) ? n[s] : "Unknown";
}

static int parse_size(const char *v, size_t n, uint64_t *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, v, n);
    buf[n] = 0;
    char *end;
    if (!isdigit((unsigned char)buf[0]))
        return -1;
    unsigned long long x = strtoull(buf, &end, 10);
    uint64_t mul = 1;
    if (*end) {
        switch (tolower((unsigned char)*end)) {
        case 'k': mul = 1ULL << 10; break;
        case 'm': mul = 1ULL << 20; break;
        case 'g': mul = 1ULL << 30; break;
        case 't': mul = 1ULL << 40; break;
        default: return -1;
        }
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end)
            return -1;
    }
    *out = (uint64_t)x * mul;
    return 0;
}

int flame_resreq_parse(flame_resreq *out, const char *text)
{
    if (!text)
        return fl_error(FLAME_ERR_INVALID_ARGUMENT, "resreq: empty");
    flame_resreq r = *out;
    const char *p = text;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq)
            return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                            "resreq \"%s\": expected key=value (cpu=1,mem=1g,gpu=0)", text);
        size_t kn = (size_t)(eq - p);
        const char *v = eq + 1;
        size_t vn = n - kn - 1;
        uint64_t x;
        if (parse_size(v, vn, &x) != 0)
            return fl_error(FLAME_ERR_INVALID_ARGUMENT, "resreq \"%s\": bad value for %.*s", text,
                            (int)kn, p);
        if (kn == 3 && strncasecmp(p, "cpu", 3) == 0)
            r.cpu = x;
        else if ((kn == 3 && strncasecmp(p, "mem", 3) == 0) ||
                 (kn == 6 && strncasecmp(p, "memory", 6) == 0))
            r.memory = x;
        else if (kn == 3 && strncasecmp(p, "gpu", 3) == 0)
            r.gpu = (int32_t)x;
        else
            return fl_error(FLAME_ERR_INVALID_ARGUMENT,
                            "resreq \"%s\": unknown key \"%.*s\" (cpu, mem, gpu)", text, (int)kn, p);
        p += n;
        if (*p == ',')
            p++;
    }
    *out = r;
    return FLAME_OK;
}

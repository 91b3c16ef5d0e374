/* $VAR and ${VAR} expansion as Flame does it (shellexpand::env with a
 * lookup that never fails): a name is letters, digits and '_'; ${VAR:-word}
 * gives word when VAR is unknown or empty; an unknown variable is left as
 * written; a '$' before anything else stays. No tilde, no command
 * substitution, no nesting. Threads: pure. */
#include <ctype.h>
#include <string.h>

#include "install.h"
#include "util/util.h"

const char *fl_env_lookup(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return env[i] + n + 1;
    return NULL;
}

typedef struct buf {
    char *s;
    size_t len, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = fl_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static bool name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static const char *lookup(const char *name, size_t n, char *const *first, char *const *second)
{
    char key[256];
    if (n >= sizeof key)
        return NULL;
    memcpy(key, name, n);
    key[n] = 0;
    const char *v = fl_env_lookup(first, key);
    return v ? v : fl_env_lookup(second, key);
}

char *fl_expand_vars(const char *s, char *const *first, char *const *second)
{
    buf b = { 0 };
    put(&b, "", 0);
    while (*s) {
        const char *dollar = strchr(s, '$');
        if (!dollar) {
            put(&b, s, strlen(s));
            break;
        }
        put(&b, s, (size_t)(dollar - s));
        const char *p = dollar + 1;
        if (*p == '{') {
            const char *close = strchr(p, '}');
            const char *name = p + 1;
            size_t n = 0;
            while (name + n < (close ? close : name) && name_char(name[n]))
                n++;
            const char *rest = name + n;
            bool dflt = rest[0] == ':' && rest[1] == '-';
            if (close && n > 0 && (rest == close || dflt)) {
                const char *v = lookup(name, n, first, second);
                if (v && (*v || !dflt))
                    put(&b, v, strlen(v));
                else if (dflt)
                    put(&b, rest + 2, (size_t)(close - rest - 2));
                else
                    put(&b, dollar, (size_t)(close + 1 - dollar));
                s = close + 1;
                continue;
            }
            put(&b, "$", 1);
            s = p;
            continue;
        }
        size_t n = 0;
        while (name_char(p[n]))
            n++;
        const char *v = n ? lookup(p, n, first, second) : NULL;
        if (v)
            put(&b, v, strlen(v));
        else
            put(&b, dollar, n + 1);
        s = p + n;
    }
    return b.s;
}

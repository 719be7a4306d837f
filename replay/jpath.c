/*
 * JSON paths of the replay rules (jpath.h): a small parser, no matching
 * (each user walks values its own way).
 */
#include "jpath.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void repro__jpath_release(struct jpath *p)
{
    for (size_t i = 0; i < p->n; i++)
        repro_free(p->segs[i].name);
    repro_free(p->segs);
}

static int push_seg(struct jpath *p, struct seg s)
{
    struct seg *v = repro_realloc(p->segs, (p->n + 1) * sizeof *v);
    if (!v) {
        repro_free(s.name);
        return REPRO_E_NOMEM;
    }
    p->segs = v;
    p->segs[p->n++] = s;
    return REPRO_OK;
}

/* "$", then ".name", ".*", "[N]", "[*]" or "['name']" segments. */
int repro__jpath_parse(const char *text, struct jpath *p, struct repro_error *err)
{
    const char *s = text;
    int rc;

    memset(p, 0, sizeof *p);
    if (*s++ != '$')
        goto bad;
    while (*s) {
        struct seg g = {0};
        if (s[0] == '.' && s[1] == '*' && (s[2] == 0 || s[2] == '.' || s[2] == '[')) {
            g.kind = SEG_ANY_KEY;
            s += 2;
        } else if (s[0] == '.') {
            size_t n = strcspn(s + 1, ".[");
            if (n == 0)
                goto bad;
            g.kind = SEG_KEY;
            g.name = repro_strndup(s + 1, n);
            s += 1 + n;
        } else if (s[0] == '[' && s[1] == '*' && s[2] == ']') {
            g.kind = SEG_ANY_INDEX;
            s += 3;
        } else if (s[0] == '[' && (s[1] == '\'' || s[1] == '"')) {
            const char *end = strchr(s + 2, s[1]);
            if (!end || end[1] != ']')
                goto bad;
            g.kind = SEG_KEY;
            g.name = repro_strndup(s + 2, (size_t)(end - (s + 2)));
            s = end + 2;
        } else if (s[0] == '[' && isdigit((unsigned char)s[1])) {
            char *end;
            g.kind = SEG_INDEX;
            g.index = strtoul(s + 1, &end, 10);
            if (*end != ']')
                goto bad;
            s = end + 1;
        } else {
            goto bad;
        }
        if (g.kind == SEG_KEY && !g.name) {
            repro__jpath_release(p);
            return REPRO_E_NOMEM;
        }
        if ((rc = push_seg(p, g)) != REPRO_OK) {
            repro__jpath_release(p);
            return rc;
        }
    }
    if (p->n == 0)
        return repro_error_set(err, REPRO_E_INVAL,
                               "refusing JSON path '%s': it ignores the whole body", text);
    return REPRO_OK;
bad:
    repro__jpath_release(p);
    return repro_error_set(err, REPRO_E_INVAL,
                           "cannot parse JSON path '%s' near offset %zu: use $.a.b[*].c",
                           text, (size_t)(s - text));
}


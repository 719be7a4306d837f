/*
 * JSON paths of the replay rules, private to replay/: "$" then ".name",
 * ".*", "[N]", "[*]" or "['name']" segments. compare.c matches them against
 * the path of each compared value (--ignore-json-path); rewrite.c follows
 * them to set a value (--set-json-field, no wildcards).
 */
#ifndef REPRO_REPLAY_JPATH_H
#define REPRO_REPLAY_JPATH_H

#include "repro/core.h"

#include <stddef.h>

enum seg_kind { SEG_KEY, SEG_ANY_KEY, SEG_INDEX, SEG_ANY_INDEX };

struct seg {
    enum seg_kind kind;
    char *name;   /* SEG_KEY */
    size_t index; /* SEG_INDEX */
};

/* A parsed path: segments from the root. */
struct jpath {
    struct seg *segs;
    size_t n;
};

/* Parses text into *p (transferred: repro__jpath_release). REPRO_E_INVAL
 * naming the path and the offset; "$" alone is refused (the whole body). */
int repro__jpath_parse(const char *text, struct jpath *p, struct repro_error *err);
void repro__jpath_release(struct jpath *p);

#endif

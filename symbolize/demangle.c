/*
 * C++ (and Rust, D) demangling exactly as binutils addr2line -C prints it:
 * bfd_demangle() over libiberty's cplus_demangle() with DMGL_PARAMS |
 * DMGL_ANSI, the same demangler binutils links. __cxa_demangle() is not
 * used: it refuses names that are not C++ and differs on some templates.
 *
 * bfd_demangle() sets leading '.' and '$' aside and cuts the name at '@'
 * (symbol versions, "@plt") before demangling, then puts both back.
 *
 * Also here: the per-name cache a module keeps, published with an atomic
 * compare-and-swap so concurrent lookups stay lock-free.
 */
#include "sym_internal.h"

#include <libiberty/demangle.h>
#include <stdlib.h>

char *repro_sym_demangle(const char *name)
{
    const char *pre = name, *suf;
    char *cut = NULL, *res, *out;
    size_t pre_len, res_len, suf_len;

    if (name == NULL)
        return NULL;
    while (*name == '.' || *name == '$')
        name++;
    pre_len = (size_t)(name - pre);
    suf = strchr(name, '@');
    if (suf != NULL) {
        cut = repro_malloc((size_t)(suf - name) + 1);
        if (cut == NULL)
            return NULL;
        memcpy(cut, name, (size_t)(suf - name));
        cut[suf - name] = '\0';
        name = cut;
    }
    res = cplus_demangle(name, DMGL_PARAMS | DMGL_ANSI);
    repro_free(cut);
    if (res == NULL)
        return NULL;
    res_len = strlen(res);
    suf_len = suf ? strlen(suf) : 0;
    out = repro_malloc(pre_len + res_len + suf_len + 1);
    if (out != NULL) {
        memcpy(out, pre, pre_len);
        memcpy(out + pre_len, res, res_len);
        if (suf_len)
            memcpy(out + pre_len + res_len, suf, suf_len);
        out[pre_len + res_len + suf_len] = '\0';
    }
    free(res); /* libiberty allocates with malloc */
    return out;
}

/* A name that does not demangle, or whose demangling ran out of memory,
 * caches itself. */
const char *repro__demangle_cached(_Atomic(const char *) *slot, const char *raw)
{
    const char *cur = atomic_load_explicit(slot, memory_order_acquire);
    const char *expected = NULL;
    char *d;
    if (cur != NULL || raw == NULL)
        return cur ? cur : raw;
    /* every mangling scheme starts with '_'; '.', '$' and '@' are set aside */
    if (raw[0] != '_' && raw[0] != '.' && raw[0] != '$' && strchr(raw, '@') == NULL) {
        atomic_compare_exchange_strong(slot, &expected, raw);
        return raw;
    }
    d = repro_sym_demangle(raw);
    if (d == NULL) {
        atomic_compare_exchange_strong(slot, &expected, raw);
        return raw;
    }
    if (!atomic_compare_exchange_strong_explicit(slot, &expected, d, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        repro_free(d);
        return expected;
    }
    return d;
}

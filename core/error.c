/*
 * Error codes and the first-error-wins error struct. The code table is the
 * X-macro REPRO_ERRNO_MAP in core.h, so names, numbers and texts cannot
 * drift apart.
 */
#include "repro/core.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *repro_strerror(int code)
{
    switch (code) {
#define X(name, num, text)                                                  \
    case num:                                                               \
        return text;
        REPRO_ERRNO_MAP(X)
#undef X
    }
    return "unknown error";
}

const char *repro_errname(int code)
{
    switch (code) {
#define X(name, num, text)                                                  \
    case num:                                                               \
        return #name;
        REPRO_ERRNO_MAP(X)
#undef X
    }
    return "E_UNKNOWN";
}

static int error_vset(struct repro_error *err, int code, int saved_errno, const char *fmt,
                      va_list ap)
{
    if (err == NULL || err->code != 0)
        return code;
    err->code = code;
    err->sys_errno = saved_errno;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return code;
}

int repro_error_set(struct repro_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, code, 0, fmt, ap);
    va_end(ap);
    return code;
}

int repro_error_sys(struct repro_error *err, int code, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, code, saved, fmt, ap);
    va_end(ap);
    return code;
}

void repro_error_prefix(struct repro_error *err, const char *fmt, ...)
{
    char prefix[128];
    char old[sizeof err->msg];
    va_list ap;

    if (err == NULL || err->code == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t n;

    memcpy(old, err->msg, sizeof old);
    n = strlen(prefix);
    if (n >= sizeof err->msg)
        n = sizeof err->msg - 1;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, old, sizeof err->msg - 1 - n);
    err->msg[sizeof err->msg - 1] = '\0';
}

void repro_error_clear(struct repro_error *err)
{
    if (err != NULL)
        memset(err, 0, sizeof *err);
}

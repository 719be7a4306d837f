/*
 * Fuzz target for repro_size_parse() (core/buf.c), which reads sizes from
 * the command line (--max-memory). The oracle is a slower reference
 * written apart from it: the input is accepted exactly when it is digits,
 * then optionally one of kKmMgGtT optionally followed by "B" or "iB", and
 * the value fits in 64 bits; the result is then digits x 1024^k. On
 * refusal the value is 0 and the error names the text.
 */
#include "repro/core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(c)                                                                              \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

/* The reference: 1 and *out when text is a valid size. */
static int reference(const char *text, uint64_t *out)
{
    static const char suffixes[] = "kKmMgGtT";
    const char *p = text, *s;
    unsigned __int128 v = 0;
    int shift = 0;

    if (*p < '0' || *p > '9')
        return 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (unsigned)(*p - '0');
        if (v > UINT64_MAX)
            return 0;
    }
    if (*p != '\0') {
        s = strchr(suffixes, *p);
        if (s == NULL)
            return 0;
        shift = 10 * (1 + (int)(s - suffixes) / 2);
        p++;
        if (strcmp(p, "B") == 0 || strcmp(p, "iB") == 0)
            p += strlen(p);
        if (*p != '\0')
            return 0;
    }
    v <<= shift;
    if (v > UINT64_MAX)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[64];
    uint64_t got = 1, want = 0;
    struct repro_error err = {0};
    int rc, ok;

    if (size >= sizeof text || memchr(data, '\0', size) != NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    rc = repro_size_parse(text, &got, &err);
    ok = reference(text, &want);
    FUZZ_CHECK((rc == REPRO_OK) == ok);
    if (ok)
        FUZZ_CHECK(got == want);
    else
        FUZZ_CHECK(rc == REPRO_E_INVAL && got == 0 && err.code == REPRO_E_INVAL);
    return 0;
}

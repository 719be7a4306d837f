/*
 * Fuzz target for repro_duration_parse (core/text.c), the parser of
 * --retain's text. Oracles: no memory error; a parsed value is never
 * negative and never over a hundred years; a value that parses prints back
 * (as seconds) to a duration that parses to the same value; a refusal
 * always carries a message.
 */
#include "repro/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[64], again[64];
    struct repro_error err = {0};
    int64_t us = -1, us2 = -1;
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;

    memcpy(text, data, n);
    text[n] = '\0';
    if (repro_duration_parse(text, &us, &err) != REPRO_OK) {
        if (err.msg[0] == '\0' || us != 0)
            abort();
        return 0;
    }
    if (us < 0 || us > (int64_t)100 * 366 * 86400 * 1000000)
        abort();
    snprintf(again, sizeof again, "%llds", (long long)(us / 1000000));
    if (us % 1000000 != 0 || repro_duration_parse(again, &us2, NULL) != REPRO_OK || us2 != us)
        abort();
    return 0;
}

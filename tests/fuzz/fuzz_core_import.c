/*
 * Fuzz target for core-file import (crash/core_import.c): the input is
 * written to a temporary file and imported without a binary. Any outcome
 * but a crash, a leak or a hang is fine, as long as a record that comes
 * back keeps its invariants. Seeds: tests/corpus/core_import/ (synthetic
 * cores from `test_core_import --write-seeds DIR`).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "repro/crash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/repro-fuzz-core-XXXXXX";
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    int fd = mkstemp(path);
    int rc;

    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    rc = repro_core_import(path, NULL, &c, &err);
    unlink(path);
    if (rc == REPRO_OK) {
        if (c == NULL || repro_crash_validate(c, &err) != REPRO_OK)
            abort();
    } else if (c != NULL || err.code != rc) {
        abort();
    }
    repro_crash_free(c);
    return 0;
}

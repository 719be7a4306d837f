/*
 * Helpers for the unit tests: guard-page buffers (over-reads fault) and
 * temporary paths.
 */
#ifndef REPRO_TEST_UTIL_H
#define REPRO_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Copies p[0..len) so that its last byte sits right before a PROT_NONE
 * page. Free with guard_free(). Aborts the test on failure. */
uint8_t *guard_copy(const void *p, size_t len);
void guard_free(uint8_t *p, size_t len);

/* Makes a fresh temporary directory; returns a static path. */
const char *test_tmpdir(void);

#endif

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

/* Writes an Ethernet/IPv4/TCP frame between 10.0.0.1:port[0] (side 0,
 * the client) and 10.0.0.2:port[1] (side 1) into out; returns its length.
 * Aborts when it does not fit in cap bytes. */
size_t tu_tcp_frame(uint8_t *out, size_t cap, int side, const uint16_t port[2], uint8_t flags,
                    uint32_t seq, uint32_t ack, const void *data, size_t len);

#endif

/*
 * Helpers for the unit tests: guard-page buffers (over-reads fault),
 * temporary paths, TCP frames, and skips that ctest sees.
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

/* Skips. A test that cannot run here (a tool such as gdb, cc or objcopy is
 * missing, the host cannot do it) must not pass: cmocka's skip() marks the
 * one test skipped but the binary still exits 0, and ctest calls that
 * "Passed". So every skip goes through tu_skip() (the whole test) or
 * tu_require() (one part of a test), which count it, and main() ends with
 *
 *     return tu_exit(cmocka_run_group_tests(tests, setup, teardown));
 *
 * which exits TU_SKIP_EXIT when something was skipped and nothing failed.
 * Every test is registered with SKIP_RETURN_CODE TU_SKIP_EXIT, so ctest
 * reports the binary "Skipped" while the rest of its tests still ran (a
 * missing gdb must not hide a failure in the tests that do not need it). */
#define TU_SKIP_EXIT 77

/* Skips the running cmocka test; reason says what is missing, e.g.
 * "gdb not found". Needs <cmocka.h>. Does not return. */
#define tu_skip(reason)                                                                            \
    do {                                                                                           \
        tu__note_skip(__FILE__, __LINE__, (reason));                                               \
        skip();                                                                                    \
    } while (0)

/* Returns ok; when ok is 0, counts a skipped part named by what (the test
 * goes on without it), e.g. if (tu_require(system(cmd) == 0, "strip")). */
#define tu_require(ok, what) tu__require((ok), (what), __FILE__, __LINE__)

/* The exit code of a cmocka binary: 1 when any test failed (failed is
 * cmocka_run_group_tests()'s count, which an exit status would truncate),
 * else TU_SKIP_EXIT when anything was skipped, else 0. Lists the skips on
 * stderr. */
int tu_exit(int failed);

void tu__note_skip(const char *file, int line, const char *reason);
int tu__require(int ok, const char *what, const char *file, int line);

/* Case checks that print and count instead of stopping the test, so that
 * one run shows every failing case of a table; the test asserts
 * tu_failures == 0 at its end. */
extern int tu_failures;
#define TU_CHECK(cond, ...)                                                 \
    do {                                                                    \
        if (!(cond)) {                                                      \
            print_error("%s:%d: check '%s' failed: ", __FILE__, __LINE__, #cond); \
            print_error(__VA_ARGS__);                                       \
            print_error("\n");                                              \
            tu_failures++;                                                  \
        }                                                                   \
    } while (0)

#endif

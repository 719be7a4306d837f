/*
 * repro core: what every component needs — error codes and the error
 * struct, logging, the allocation hook (for fault injection), bounded
 * growable buffers, byte slices, clocks and a small JSON writer.
 *
 * Nothing here speaks to the network, the disk or SQL.
 */
#ifndef REPRO_CORE_H
#define REPRO_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/*
 * Error codes. A code's number never changes once released; add new codes at
 * the end of the list with the next free number.
 */
#define REPRO_ERRNO_MAP(X)                                                  \
    X(OK, 0, "success")                                                     \
    X(E_NOMEM, -1, "out of memory")                                         \
    X(E_INVAL, -2, "invalid argument")                                      \
    X(E_IO, -3, "input/output error")                                       \
    X(E_MALFORMED, -4, "malformed input")                                   \
    X(E_LIMIT, -5, "limit reached")                                         \
    X(E_STORE, -6, "database error")                                        \
    X(E_PCAP, -7, "packet capture error")                                   \
    X(E_NOTFOUND, -8, "not found")                                          \
    X(E_UNSUPPORTED, -9, "unsupported")                                     \
    X(E_INTERRUPTED, -10, "interrupted")                                    \
    X(E_SCHEMA, -11, "database schema is newer than this program")         \
    X(E_BUSY, -12, "database is locked by another process")

enum repro_errno {
#define REPRO__ERR_ENUM(name, num, text) REPRO_##name = (num),
    REPRO_ERRNO_MAP(REPRO__ERR_ENUM)
#undef REPRO__ERR_ENUM
};

/* Returns a static description of code; never NULL. Thread-safe. */
const char *repro_strerror(int code);
/* Returns the symbolic name ("E_MALFORMED") of code; never NULL. */
const char *repro_errname(int code);

/*
 * Error detail. Invariant: once code != 0 the struct is frozen — the first
 * error recorded wins, later calls to repro_error_set() are ignored so outer
 * callers cannot overwrite the root cause (they may add context with
 * repro_error_prefix()).
 */
struct repro_error {
    int code;       /* REPRO_OK or a negative REPRO_E_* */
    int sys_errno;  /* errno saved at the failing call, 0 if none */
    char msg[256];  /* lower case, no final period */
};

/* Records code and a printf-style message into err unless err is NULL or
 * already holds an error. Always returns code so callers can
 * `return repro_error_set(err, REPRO_E_IO, ...)`. */
int repro_error_set(struct repro_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like repro_error_set, also saving errno (read before anything else). */
int repro_error_sys(struct repro_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes context ("capture 'x.pcap': ") to an existing message. */
void repro_error_prefix(struct repro_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void repro_error_clear(struct repro_error *err);

/* Runs call and keeps its result in rc only while rc is REPRO_OK: a chain
 * of appends stops at, and returns, the first error. */
#define REPRO_TRY(rc, call)                                                 \
    do {                                                                    \
        if ((rc) == REPRO_OK)                                               \
            (rc) = (call);                                                  \
    } while (0)

/* ---- logging ---------------------------------------------------------- */

enum repro_log_level {
    REPRO_LOG_ERROR = 0,
    REPRO_LOG_WARN = 1,
    REPRO_LOG_INFO = 2,
    REPRO_LOG_DEBUG = 3,
    REPRO_LOG_TRACE = 4
};

/* A sink receives one formatted line (no trailing newline). */
typedef void (*repro_log_sink_fn)(enum repro_log_level level, const char *component,
                                  const char *line, void *ctx);

/* Installs the sink (NULL restores the default: stderr). Not thread-safe:
 * call at start-up. */
void repro_log_set_sink(repro_log_sink_fn sink, void *ctx);
/* Messages above this level are dropped (default REPRO_LOG_WARN). */
void repro_log_set_level(enum repro_log_level level);
/* Comma-separated component prefixes ("capture.tcp,store", "all") whose
 * debug and trace messages are enabled. The string is copied. */
void repro_log_set_trace(const char *spec);
/* Checks a trace spec ("capture.http,store" or "all"): each name must be a
 * component that logs (or a prefix of one ending at a dot). Returns 1, or 0
 * with the first unknown name in bad. The names: repro_log_components. */
int repro_log_trace_valid(const char *spec, char *bad, size_t bad_len);
extern const char *const repro_log_components;

extern int repro__log_level;
int repro__log_enabled(enum repro_log_level level, const char *component);
void repro__log(enum repro_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A disabled level costs one branch. */
#define repro_log(level, component, ...)                                    \
    do {                                                                    \
        if ((int)(level) <= repro__log_level && repro__log_enabled((level), (component))) \
            repro__log((level), (component), __VA_ARGS__);                  \
    } while (0)

/* Writes at most out_len-1 printable bytes of p[0..len) into out, replacing
 * non-printable bytes with '.', appending "..." when cut. Returns out. */
char *repro_excerpt(char *out, size_t out_len, const uint8_t *p, size_t len);

/* ---- allocation ------------------------------------------------------- */

/* All library allocations go through these so tests can inject failures. */
void *repro_malloc(size_t n);
void *repro_calloc(size_t n, size_t size);
void *repro_realloc(void *p, size_t n);
void repro_free(void *p);
char *repro_strdup(const char *s);
/* The first n bytes of s (which need not be NUL-terminated) as a C string. */
char *repro_strndup(const char *s, size_t n);
/* Fault injection for tests: the n-th allocation from now (1-based) and all
 * later ones fail; 0 disables. Returns how many allocations were made since
 * the last call. Not thread-safe. */
unsigned long repro_alloc_fail_after(unsigned long n);

/* ---- byte slices and bounded buffers ---------------------------------- */

/* A borrowed view of bytes; never owns. */
struct repro_slice {
    const uint8_t *ptr;
    size_t len;
};

/*
 * Growable byte buffer with a hard cap. Invariants: len <= cap <= max;
 * data is NULL iff cap == 0. Growing past max fails with REPRO_E_LIMIT and
 * leaves the buffer unchanged.
 */
struct repro_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max;
};

void repro_buf_init(struct repro_buf *b, size_t max);
void repro_buf_release(struct repro_buf *b);
/* Empties the buffer but keeps its memory. */
void repro_buf_reset(struct repro_buf *b);
/* Makes room for n more bytes. REPRO_E_LIMIT past max, REPRO_E_NOMEM. */
int repro_buf_reserve(struct repro_buf *b, size_t n);
int repro_buf_append(struct repro_buf *b, const void *p, size_t n);
int repro_buf_printf(struct repro_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * A memory budget shared by many buffers (for example every stream of a
 * capture). Invariant: used <= max. Owners charge bytes before keeping them
 * and give them back when they free them; a refused charge is the caller's
 * cue to drop data and count it.
 */
struct repro_budget {
    size_t used;
    size_t max;
    uint64_t refused; /* bytes refused so far */
};

/* Charges n bytes: 1 on success, 0 (and counts the refusal) when it would
 * exceed max. A NULL budget always succeeds. */
int repro_budget_take(struct repro_budget *b, size_t n);
void repro_budget_give(struct repro_budget *b, size_t n);
/* Charges as much of n as fits and returns it (the rest is counted as
 * refused). A NULL budget grants everything. */
size_t repro_budget_take_upto(struct repro_budget *b, size_t n);
/*
 * Parses a size such as "65536", "512k", "256M" or "2G" (digits, then an
 * optional k, M, G or T meaning powers of 1024, optionally followed by
 * "B" or "iB") into *out bytes. text is borrowed for the call and is
 * outside input (a command line): anything else (empty, a sign, spaces,
 * a fraction, several suffixes, more than 2^64-1 bytes) is REPRO_E_INVAL
 * with the text quoted in err. Thread-safe.
 */
int repro_size_parse(const char *text, uint64_t *out, struct repro_error *err);
/* bytes in MiB, for messages ("%.1f MiB"). */
double repro_mib(uint64_t bytes);

/* ---- stored formats --------------------------------------------------- */

/* What capture writes in place of a secret (docs/capture.md); replay treats
 * it as a wildcard when it compares and flags requests that still carry it.
 * REPRO_REDACT_MARK_URL is the same mark percent-encoded, as written in
 * query strings. */
#define REPRO_REDACT_MARK "[REDACTED]"
#define REPRO_REDACT_MARK_URL "%5BREDACTED%5D"

/* ---- threads ---------------------------------------------------------- */

/* The calling thread's id (gettid(2)). */
int repro_gettid(void);
/* Sets thread tid's scheduling: policy SCHED_IDLE (nice left as it is), or
 * SCHED_OTHER at nice (-20..19). Returns 0 or an errno value (EPERM or
 * EACCES: leaving SCHED_IDLE, or a lower nice, needs CAP_SYS_NICE or
 * RLIMIT_NICE >= 20 - nice). Thread-safe. */
int repro_thread_set_sched(int tid, int policy, int nice);

/* ---- clocks ----------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds: for durations. */
uint64_t repro_mono_ns(void);
/* CLOCK_REALTIME in microseconds since the epoch: for recorded timestamps. */
int64_t repro_wall_us(void);
/* The time ms (>= 0) milliseconds from now on clock (the clock of the
 * condition variable), as pthread_cond_timedwait(3) wants it. Thread-safe. */
struct timespec repro_deadline_ms(clockid_t clock, int64_t ms);

/* ---- JSON output ------------------------------------------------------ */

/* Appends p[0..len) as a JSON string literal (with quotes). Bytes that are
 * not valid UTF-8 are written as \u00XX of the byte, so output is always
 * valid JSON. */
int repro_json_str(struct repro_buf *b, const void *p, size_t len);
/* Appends a C string or null when s is NULL. */
int repro_json_cstr(struct repro_buf *b, const char *s);
/* Appends epoch microseconds as seconds with 6 decimals, or null when
 * us < 0. */
int repro_json_time_us(struct repro_buf *b, int64_t us);

/* ---- text: times and addresses ---------------------------------------- */

/* Writes epoch microseconds as "YYYY-MM-DD HH:MM:SS.uuuuuu" (UTC), or "-"
 * when us < 0, into out (32 bytes suffice). Thread-safe. */
void repro_time_text(char *out, size_t out_len, int64_t us);
/*
 * Parses a duration such as "90s", "30m", "12h" or "7d" (digits, then one
 * unit: s, m, h or d; "0" alone is zero) into *out_us. text is borrowed
 * for the call and is outside input (a command line): anything else,
 * an empty string, a sign, spaces, several units or a value over 100
 * years is REPRO_E_INVAL with the text quoted in err. Thread-safe.
 */
int repro_duration_parse(const char *text, int64_t *out_us, struct repro_error *err);

/* Parses a time as listings print it, UTC: "YYYY-MM-DD[( |T)HH:MM[:SS[.frac]]][Z]",
 * or "@SECONDS[.frac]" since the epoch, into epoch microseconds. Returns
 * REPRO_OK, or REPRO_E_INVAL for anything else (a trailing byte, a field out
 * of range, a time before the epoch). s is a C string. Thread-safe. */
int repro_time_parse(const char *s, int64_t *us);

/* An inclusive range of ids. */
struct repro_id_range {
    int64_t lo, hi;
};
/* Parses "3,5-9" (positive ids, lo <= hi, no spaces) into at most max
 * ranges of out, setting *n. Returns REPRO_OK, REPRO_E_INVAL for a
 * malformed list (empty, an empty item, 0, a reversed range, an overflow),
 * REPRO_E_LIMIT for more than max ranges. s is a C string. Thread-safe. */
int repro_id_ranges_parse(const char *s, struct repro_id_range *out, size_t max, size_t *n);


/* Room for any address repro_ip_format writes, with its NUL. */
#define REPRO_IP_TEXT_MAX 46
/* Writes addr (family 6: 16 bytes, else IPv4: 4 bytes, network order) as
 * text the way inet_ntop(3) does ("10.0.0.1", "::1", "::ffff:1.2.3.4")
 * into out (REPRO_IP_TEXT_MAX bytes suffice). Thread-safe. */
void repro_ip_format(char *out, size_t out_len, int family, const uint8_t *addr);
/* Writes "ip:port", "[ip]:port" for IPv6 (64 bytes suffice). */
void repro_endpoint_format(char *out, size_t out_len, int family, const uint8_t *addr,
                           uint16_t port);

/* FNV-1a of p[0..len): a cheap, stable hash for table keys (not for
 * anything an attacker chooses to collide). */
static inline uint64_t repro_hash_bytes(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* The value of the hex digit c (either case), -1 for any other byte.
 * Every parser of hex text (chunk sizes, percent escapes, \u escapes,
 * crash records, /proc tables) uses this one. */
static inline int repro_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif

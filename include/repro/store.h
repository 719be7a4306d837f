/*
 * repro store: the only code that speaks SQL. A store handle dispatches
 * every call through a table of operations (struct repro_store_ops) that a
 * backend implements: SQLite today (store/sqlite_*.c: one file in WAL mode,
 * created mode 0600, a versioned schema with migrations, docs/schema.md),
 * PostgreSQL for fleets later (docs/store.md) without touching callers.
 *
 * The store speaks in its own row types, one set per domain (captures,
 * connections, exchanges, crashes; replay runs and incidents go next to
 * them), so it depends on no producer: capture/, crash/ and symbolize/
 * never appear here. app/ converts producers' records to rows.
 *
 * Ownership, unless a prototype says otherwise: pointers in rows passed to
 * the store are borrowed for the call (the writer copies what it queues);
 * pointers in rows the store hands to a callback borrow until the callback
 * returns. A store handle is not thread-safe: use one per thread.
 */
#ifndef REPRO_STORE_H
#define REPRO_STORE_H

#include "repro/core.h"

#include <stdint.h>

/* The schema version this build writes and understands. */
#define REPRO_SCHEMA_VERSION 6

struct repro_store;

enum {
    REPRO_STORE_READONLY = 1 << 0, /* open an existing file for reading */
};

/* ---- rows: captures ---------------------------------------------------- */

/* A capture as it begins. Strings borrowed for the call; filter may be
 * NULL. */
struct repro_store_capture {
    const char *source_kind; /* "file" or "live" */
    const char *source;      /* path or interface */
    const char *filter;
    int link_type;
    int64_t source_size, source_mtime_us; /* a file's size and time, 0 when unknown */
};

/* A stored capture as read; pointers borrow until the callback returns. */
struct repro_capture_row {
    int64_t id, started_us, finished_us; /* finished_us -1 while running */
    const char *source_kind, *source, *filter, *status, *stats_json;
    int64_t packets, bytes, connections, exchanges, incomplete, errors;
    const char *error; /* why a failed capture failed (version 5), else NULL */
};
typedef int (*repro_capture_fn)(void *ctx, const struct repro_capture_row *row);

/*
 * The counters the captures table keeps in columns of their own, in column
 * order. Every other counter goes only into stats_json. The store keeps
 * this list itself (it does not know capture/'s counters); a test in
 * tests/unit/test_app.c checks every name here is one of capture's.
 */
#define REPRO_STORE_CAPTURE_COLUMNS(X)                                      \
    X(packets) X(bytes) X(connections) X(exchanges) X(incomplete) X(errors)

/* One named counter (name borrowed, a C identifier). */
struct repro_store_counter {
    const char *name;
    uint64_t value;
};

/* A capture as it ends: its status ("complete", "partial" (input had
 * problems) or "failed") and every counter, in the order stats_json lists
 * them; error: why it failed (stored in captures.error), NULL otherwise.
 * Borrowed for the call. */
struct repro_store_capture_end {
    const char *status;
    const struct repro_store_counter *counters;
    size_t n_counters;
    const char *error;
};

/* ---- rows: connections ------------------------------------------------- */

/* A captured TCP connection. IP addresses are 4 (first 4 bytes used) or
 * 16 bytes in network order. */
struct repro_store_conn {
    int64_t id;         /* the store's id: 0 in a new row; required by update */
    uint64_t local_id;  /* the producer's id (writer: later rows refer to it) */
    int64_t capture_id;
    int family;         /* 4 or 6 */
    uint8_t client_ip[16], server_ip[16];
    uint16_t client_port, server_port;
    int64_t opened_us, closed_us; /* closed_us -1 while open */
    const char *end_reason;       /* "fin", "rst"... or NULL while open */
    int mid_stream, is_http;
    uint64_t bytes_c2s, bytes_s2c, gap_bytes, n_exchanges;
};

/* ---- rows: exchanges --------------------------------------------------- */

/* An exchange to write. Empty slices and NULL strings are stored as NULL,
 * except reason, stored ("" when empty) whenever status > 0. */
struct repro_store_exchange {
    int64_t capture_id;
    int64_t connection_id;   /* the store's id, or 0: use conn_local_id (writer) */
    uint64_t conn_local_id;  /* the producer's id of the connection */
    uint64_t seq;
    struct repro_slice method, uri, host, reason;
    struct repro_slice request, response; /* raw bytes as stored */
    const char *http_version, *interim, *note; /* NULL or "" when unknown */
    int status; /* 0 when no response */
    int64_t request_first_us, request_last_us, response_first_us, response_last_us; /* -1 */
    uint64_t request_bytes, response_bytes; /* on the wire */
    unsigned flags; /* exchange flags, stored as they are (docs/schema.md) */
    int complete;
    /* SHA-256 of the bodies (docs/schema.md); has_* 0 when unknown. */
    uint8_t request_digest[32], response_digest[32];
    int has_request_digest, has_response_digest;
};

/* One stored exchange as read. Every pointer borrows until the callback
 * returns; text fields are NULL when unknown. */
struct repro_exchange_row {
    int64_t id, capture_id, connection_id, seq;
    char client[64], server[64];
    const char *method, *uri, *host, *http_version, *reason, *interim, *note;
    int status; /* 0 when no response */
    int64_t request_first_us, request_last_us, response_first_us, response_last_us; /* -1 if none */
    int64_t request_bytes, response_bytes;
    unsigned flags;
    int complete;
    /* 64 lowercase hex digits, NULL when unknown. */
    const char *request_body_sha256, *response_body_sha256;
    struct repro_slice request, response; /* only when asked for bodies */
};

/* Filters for exchanges; zero/NULL fields do not filter. Strings borrowed
 * for the call. */
struct repro_exchange_filter {
    int64_t id;
    const char *method;
    const char *path_prefix; /* at most REPRO_STORE_MAX_PATTERN bytes */
    const char *host;
    int status;
    int64_t connection_id;
    int64_t capture_id;
    int64_t limit;
    /* the request's time (its response's when none), epoch us: since_us <=
     * t < until_us; 0 does not filter */
    int64_t since_us, until_us;
    const char *path_regex; /* POSIX ERE searched in the request target, or NULL */
    const struct repro_id_range *ids; /* any of these ids, when n_ids > 0 */
    size_t n_ids;                     /* at most REPRO_STORE_MAX_ID_RANGES */
};
#define REPRO_STORE_MAX_PATTERN 65536
#define REPRO_STORE_MAX_ID_RANGES 1024

typedef int (*repro_exchange_fn)(void *ctx, const struct repro_exchange_row *row);

/* ---- rows: crashes ----------------------------------------------------- */

struct repro_store_crash_module {
    const char *path;
    uint64_t start, end, load_bias;
    const char *build_id; /* lower-case hex or NULL */
};

struct repro_store_crash_frame {
    uint64_t pc;
    int module;      /* index into the crash's modules, -1 for none */
    uint64_t offset; /* valid when module >= 0 */
    const char *function, *file; /* NULL when unknown */
    int line, column; /* 0 when unknown */
    int inlined;
};

struct repro_store_crash_thread {
    int tid;
    const char *name, *registers; /* registers may be NULL */
    int crashed, partial;
    const struct repro_store_crash_frame *frames;
    size_t n_frames;
};

struct repro_store_crash_conn {
    int fd, family; /* family 4 or 6 */
    uint8_t local_ip[16], remote_ip[16];
    uint16_t local_port, remote_port;
    int state;
};

/*
 * A crash with its modules, threads, frames and open connections.
 * Invariant (the writer of the row checks it): every frame's module is -1
 * or < n_modules.
 */
struct repro_store_crash {
    int64_t time_us;
    int pid, tid;
    const char *executable, *cmdline, *service, *hostname; /* or NULL */
    int signo, si_code;
    const char *signal; /* "SIGSEGV" */
    uint64_t fault_address;
    const char *source; /* "ptrace", "inproc", "core" */
    int partial;
    const char *partial_reason; /* or NULL */
    const char *signature;      /* or NULL */
    const char *record_key;     /* or NULL: makes storing idempotent */
    const struct repro_store_crash_module *modules;
    size_t n_modules;
    const struct repro_store_crash_thread *threads;
    size_t n_threads;
    const struct repro_store_crash_conn *conns;
    size_t n_conns;
};

/* ---- rows: replay runs and their results ------------------------------- */

/* A replay run as it begins. Strings borrowed for the call. */
struct repro_store_replay_run {
    int64_t started_us;
    const char *target;    /* "ip:port" */
    const char *baseline;  /* or NULL */
    double speed;          /* 0: max */
    const char *selection; /* the command's filters and options, as text, or NULL */
};

/* A replay run as it ends. status: "complete" or "failed". */
struct repro_store_replay_run_end {
    int64_t ended_us;
    const char *status;
    uint64_t sent, matched, mismatched, errors, timeouts, crashes, unanswered;
    double duration_s, requests_per_s, sched_p50_us, sched_p99_us, sched_max_us;
};

/* One replayed request's result. Strings and bytes borrowed for the call. */
struct repro_store_replay_result {
    int64_t run_id, exchange_id;
    unsigned loop;
    const char *verdict;            /* "match", "mismatch", ... */
    const char *error;              /* "timeout", "reset", ... or NULL */
    int status;                     /* staging's, 0 without a response */
    double latency_us;              /* from the actual send; < 0 when not sent */
    double latency_intended_us;     /* from the intended send */
    double schedule_error_us;
    const char *differences_json;   /* [{kind, where, expected, actual}] or NULL */
    const char *substitutions_json; /* [{kind, name, old, new}] or NULL */
    int noise, still_redacted, reopened;
    struct repro_slice response;    /* staging's bytes (kept for what did not match) */
};

/* Rows as read; every pointer borrows until the callback returns. */
struct repro_replay_run_row {
    int64_t id, started_us, ended_us; /* ended_us -1 while running */
    const char *target, *baseline, *status, *selection;
    double speed, duration_s, requests_per_s, sched_p50_us, sched_p99_us, sched_max_us;
    int64_t sent, matched, mismatched, errors, timeouts, crashes, unanswered;
};
struct repro_replay_result_row {
    int64_t id, run_id, exchange_id;
    int loop, status, noise, still_redacted, reopened;
    const char *verdict, *error, *differences_json, *substitutions_json;
    double latency_us, latency_intended_us, schedule_error_us;
    struct repro_slice response;
};
typedef int (*repro_replay_run_fn)(void *ctx, const struct repro_replay_run_row *row);
typedef int (*repro_replay_result_row_fn)(void *ctx, const struct repro_replay_result_row *row);

/* ---- rows: later domains ----------------------------------------------- */
/* Incidents get their row types here, their operations in struct
 * repro_store_ops and their kinds in the writer (docs/store.md). */

/* ---- retention --------------------------------------------------------- */

/* What one call of repro_store_prune() may delete. */
struct repro_store_prune {
    uint64_t max_db_bytes; /* delete while the used size is above it; 0: no size limit */
    int64_t before_us;     /* delete exchanges whose first byte is older; 0: no age limit */
    unsigned max_rows;     /* at most this many exchanges, and connections, per call */
};

/* What it did. */
struct repro_store_prune_result {
    uint64_t exchanges, connections; /* rows deleted */
    uint64_t used_bytes;             /* the database's used size after it */
    int more;                        /* 1: limits still exceeded and more can go */
};

/* ---- the backend's table of operations -------------------------------- */

/*
 * What a backend implements; the public functions below check their
 * arguments and dispatch here with the backend's own handle (impl). Every
 * operation has the contract of the public function of the same name.
 * A backend may leave an operation NULL: the call then fails with
 * REPRO_E_UNSUPPORTED.
 */
struct repro_store_ops {
    const char *name; /* "sqlite" */
    int (*open)(const char *path, int flags, void **impl, struct repro_error *err);
    void (*close)(void *impl);
    void (*set_batch)(void *impl, unsigned rows);
    int (*flush)(void *impl, struct repro_error *err);
    /* optional: syncs commits not yet on disk once due; *next_ns: when
     * the next is due (0: none waits) */
    int (*sync)(void *impl, uint64_t *next_ns);
    int (*bulk_begin)(void *impl, struct repro_error *err);
    int (*bulk_end)(void *impl, struct repro_error *err);
    int (*capture_begin)(void *impl, const struct repro_store_capture *row, int64_t *id,
                         struct repro_error *err);
    int (*capture_end)(void *impl, int64_t id, const struct repro_store_capture_end *row,
                       struct repro_error *err);
    int (*conn_insert)(void *impl, const struct repro_store_conn *row, int64_t *id,
                       struct repro_error *err);
    int (*conn_update)(void *impl, const struct repro_store_conn *row, struct repro_error *err);
    /* rows[0..n) in order; their ids are consecutive from *first_id */
    int (*exchange_insert)(void *impl, const struct repro_store_exchange *rows, size_t n,
                           int64_t *first_id, struct repro_error *err);
    int (*exchanges)(void *impl, const struct repro_exchange_filter *f, int with_bodies,
                     repro_exchange_fn fn, void *ctx, struct repro_error *err);
    int (*crash_insert)(void *impl, const struct repro_store_crash *row, int64_t *id,
                        struct repro_error *err);
    int (*crash_get)(void *impl, int64_t id, struct repro_store_crash **out,
                     struct repro_error *err);
    int (*crash_ids)(void *impl, int (*fn)(void *ctx, int64_t id), void *ctx,
                     struct repro_error *err);
    int (*crash_in_flight)(void *impl, int64_t crash_id,
                           int (*fn)(void *ctx, int64_t exchange_id), void *ctx,
                           struct repro_error *err);
    int (*crash_group)(void *impl, const char *signature, int64_t *count, int64_t *first_us,
                       int64_t *last_us, struct repro_error *err);
    int (*crash_set_symbols)(void *impl, int64_t id, const struct repro_store_crash *row,
                             struct repro_error *err);
    int (*captures)(void *impl, repro_capture_fn fn, void *ctx, struct repro_error *err);
    int (*capture_find)(void *impl, const struct repro_store_capture *row, int64_t *id,
                        struct repro_error *err);
    int (*replay_run_begin)(void *impl, const struct repro_store_replay_run *row, int64_t *id,
                            struct repro_error *err);
    int (*replay_run_end)(void *impl, int64_t id, const struct repro_store_replay_run_end *row,
                          struct repro_error *err);
    int (*replay_result_insert)(void *impl, const struct repro_store_replay_result *row,
                                struct repro_error *err);
    int (*replay_runs)(void *impl, int64_t id, repro_replay_run_fn fn, void *ctx,
                       struct repro_error *err);
    int (*replay_results)(void *impl, int64_t run_id, int findings_only,
                          repro_replay_result_row_fn fn, void *ctx, struct repro_error *err);
    /* Optional: explicit write transactions, the busy timeout and
     * retention, for the background writer. */
    int (*begin)(void *impl, struct repro_error *err);
    void (*rollback)(void *impl);
    void (*set_busy_timeout)(void *impl, unsigned ms);
    int (*prune)(void *impl, const struct repro_store_prune *req,
                 struct repro_store_prune_result *out, struct repro_error *err);
};

/* The SQLite backend (store/sqlite_store.c). */
extern const struct repro_store_ops repro_store_sqlite_ops;

/* ---- handles ---------------------------------------------------------- */

/*
 * Opens the database at path with the SQLite backend (creating it mode
 * 0600 unless READONLY; ":memory:" for a private in-memory database) and
 * migrates it to REPRO_SCHEMA_VERSION. *out is transferred: close with
 * repro_store_close(). Errors: REPRO_E_STORE (cannot open, not a database,
 * corrupt), REPRO_E_SCHEMA (written by a newer repro), REPRO_E_NOTFOUND
 * (READONLY and missing), REPRO_E_NOMEM.
 */
int repro_store_open(const char *path, int flags, struct repro_store **out,
                     struct repro_error *err);
/* The same with the backend ops (borrowed for the handle's life). */
int repro_store_open_with(const struct repro_store_ops *ops, const char *path, int flags,
                          struct repro_store **out, struct repro_error *err);
/* The backend of s (never NULL; borrowed for the handle's life). */
const struct repro_store_ops *repro_store_backend(const struct repro_store *s);
/* Commits any open batch and closes. Accepts NULL. */
void repro_store_close(struct repro_store *s);

/* Rows per transaction for the single-row writers below (default 4096). */
void repro_store_set_batch(struct repro_store *s, unsigned rows);
/* Commits the open batch, if any. */
int repro_store_flush(struct repro_store *s, struct repro_error *err);
/* Syncs to disk the commits not yet synced, once the last sync is half a
 * second old (commits are synced then on their own; this is for the last
 * ones before a pause). Returns in how many ns to call it again, 0 when no
 * commit waits. Same thread as the writes. docs/store.md, "Durability". */
uint64_t repro_store_sync(struct repro_store *s);
/*
 * Commits the open batch, then opens a write transaction at once, taking
 * the write lock (SQLite: BEGIN IMMEDIATE), for the single-row writers
 * that follow; repro_store_flush() commits it, repro_store_rollback()
 * drops it. REPRO_E_BUSY when another process held the lock for longer
 * than the busy timeout (nothing is then open). A backend without
 * explicit transactions does nothing.
 */
int repro_store_begin(struct repro_store *s, struct repro_error *err);
/* Rolls the open transaction back, if any (never fails). */
void repro_store_rollback(struct repro_store *s);
/* How long a call waits for another process's lock before failing with
 * REPRO_E_BUSY (default 5000 ms). */
void repro_store_set_busy_timeout(struct repro_store *s, unsigned ms);
/*
 * Retention: in one short transaction, deletes the oldest exchanges (by
 * id) while the database's used size is above req->max_db_bytes, or those
 * among the oldest whose first byte (request, else response) is older than
 * req->before_us; then closed connections left without exchanges, at most
 * req->max_rows of each. Never deletes captures, crashes, replay runs or
 * results, or an exchange a replay result refers to. Freed pages are
 * reused by later rows, so the file stops growing. Commits the open batch
 * first. REPRO_E_BUSY as repro_store_begin().
 */
int repro_store_prune(struct repro_store *s, const struct repro_store_prune *req,
                      struct repro_store_prune_result *out, struct repro_error *err);

/*
 * Bulk import mode, for re-runnable imports such as a capture file: while
 * it is on, commits do not wait for the disk (synchronous=OFF), which more
 * than halves the cost of a large import. A crash of the process still
 * loses nothing committed; a power failure during the import may. Ending it
 * checkpoints the WAL into the database file and syncs it, so once
 * repro_store_bulk_end() returns the data is as durable as ever.
 */
int repro_store_bulk_begin(struct repro_store *s, struct repro_error *err);
int repro_store_bulk_end(struct repro_store *s, struct repro_error *err);

/* ---- single-row writers (batched into transactions) ------------------- */

int repro_store_capture_begin(struct repro_store *s, const struct repro_store_capture *row,
                              int64_t *capture_id, struct repro_error *err);
int repro_store_capture_end(struct repro_store *s, int64_t capture_id,
                            const struct repro_store_capture_end *row, struct repro_error *err);
/* Inserts a connection; *id (optional) gets the store's id. */
int repro_store_conn_insert(struct repro_store *s, const struct repro_store_conn *row,
                            int64_t *id, struct repro_error *err);
/* Updates close time, end reason and counters of connection row->id. */
int repro_store_conn_update(struct repro_store *s, const struct repro_store_conn *row,
                            struct repro_error *err);
/* Inserts an exchange of connection row->connection_id; *id (optional). */
int repro_store_exchange_insert(struct repro_store *s, const struct repro_store_exchange *row,
                                int64_t *id, struct repro_error *err);
/* Inserts rows[0..n) in one statement (each of connection
 * rows[k].connection_id); their ids are consecutive from *first_id
 * (optional). All or none: a failure stores none of them. */
int repro_store_exchange_insert_many(struct repro_store *s,
                                     const struct repro_store_exchange *rows, size_t n,
                                     int64_t *first_id, struct repro_error *err);

/* ---- the background writer -------------------------------------------- */

/*
 * Writes rows of any domain from a thread of its own so the producer's work
 * and the database's run on two cores. The producer copies each row into a
 * batch (bounded: at most three batches of about 4 MiB plus one row exist);
 * the writer thread writes a whole batch per transaction (a crash takes a
 * transaction of its own). Rows are written in the order they were queued,
 * whatever their kind. The store must not be used by anyone else until
 * repro_store_writer_finish() returns. One producer thread.
 */
struct repro_store_writer;

enum repro_store_row_kind {
    REPRO_ROW_CONN_OPEN = 1, /* conn: inserted; its local_id is remembered */
    REPRO_ROW_CONN_CLOSE,    /* conn: updated (by local_id; never opened: skipped) */
    REPRO_ROW_EXCHANGE,      /* exchange (connection by conn_local_id when id is 0) */
    REPRO_ROW_CRASH          /* crash */
};

/* A row of some kind; the pointer that matches kind is used. */
struct repro_store_row {
    enum repro_store_row_kind kind;
    union {
        const struct repro_store_conn *conn;
        const struct repro_store_exchange *exchange;
        const struct repro_store_crash *crash;
    } u;
};

/* max_row_bytes: the largest row's variable bytes (bodies, strings,
 * arrays, each piece padded to 8 bytes); a bigger row is refused with
 * REPRO_E_LIMIT. *out is transferred:
 * end it with repro_store_writer_finish(). */
int repro_store_writer_start(struct repro_store *s, size_t max_row_bytes,
                             struct repro_store_writer **out, struct repro_error *err);
/* Queues a row (copied; row borrowed for the call). Fails with the writer
 * thread's first error once it has failed. */
int repro_store_writer_put(struct repro_store_writer *w, const struct repro_store_row *row,
                           struct repro_error *err);
/* Waits until everything queued so far is committed. While another
 * process holds the write lock this waits with it (see below), unless
 * interrupted (repro_store_writer_interrupt) or past its deadline:
 * REPRO_E_BUSY. */
int repro_store_writer_flush(struct repro_store_writer *w, struct repro_error *err);
/*
 * Hands the batch being filled to the writer thread without waiting for
 * its commit (a live capture kicks once a second so readers see rows
 * within a second without blocking the producer). Does nothing when a
 * batch is already queued (the rows then go with the next one) or the
 * batch is empty. Producer thread only. Returns REPRO_OK, or the writer
 * thread's first error once it has failed.
 */
int repro_store_writer_kick(struct repro_store_writer *w, struct repro_error *err);

/*
 * A locked database: when another process holds the write lock longer
 * than the store's busy timeout, the writer thread keeps the batch, backs
 * off (10 ms doubling to 1 s) and tries again, for as long as it takes;
 * meanwhile the producer goes on queueing until the buffers are full, and
 * then put() blocks. Once finish() is called the writer waits at most
 * finish_wait_ms more (default REPRO_STORE_WRITER_FINISH_WAIT_MS) and then
 * fails with REPRO_E_BUSY ("... locked by another process ..."), the rows
 * not yet written lost. Call before put(); producer thread.
 */
#define REPRO_STORE_WRITER_FINISH_WAIT_MS 30000
void repro_store_writer_set_finish_wait(struct repro_store_writer *w, unsigned finish_wait_ms);

/*
 * Retention for long runs (0 turns a limit off; both off by default):
 * between batches, and at least once a second while idle, the writer
 * thread calls repro_store_prune() in transactions of
 * REPRO_STORE_PRUNE_ROWS rows, giving way to any queued batch between
 * them, while the used size is above max_db_bytes or exchanges are older
 * than now - retain_us (wall clock against the exchanges' packet times).
 * Any thread; takes effect at the next check.
 */
#define REPRO_STORE_PRUNE_ROWS 256
void repro_store_writer_set_retention(struct repro_store_writer *w, uint64_t max_db_bytes,
                                      int64_t retain_us);

/* The writer's figures. Rows count what is committed, not what was
 * queued: rows lost to a failure are in neither. */
struct repro_store_writer_stats {
    uint64_t exchanges, connections, crashes; /* rows committed: exchanges, connections opened, crashes */
    uint64_t connection_updates;              /* close rows committed */
    uint64_t transactions;                    /* commits of rows (not of pruning) */
    uint64_t queued_bytes;                    /* bytes of rows queued and not yet committed, now */
    uint64_t busy_retries;                    /* attempts that found the database locked */
    uint64_t blocked_ms;                      /* time spent waiting for the write lock */
    uint64_t pruned_exchanges, pruned_connections; /* rows deleted by retention */
    uint64_t used_bytes;                      /* the database's used size at the last check (retention on) */
    int failed;                               /* 1 once the writer thread has failed */
    char last_error[256];                     /* its first error, "" if none */
};
/* A producer blocked in repro_store_writer_put() because the writer is
 * retrying a database another process has locked waits for as long as the
 * lock lasts. After repro_store_writer_interrupt() (async-signal-safe: one
 * atomic store; for SIGINT/SIGTERM), or once the monotonic clock passes
 * the deadline set here (0: none), such a wait fails at once with
 * REPRO_E_BUSY instead; a wait for a writer that is only busy is not
 * affected. Thread-safe. */
void repro_store_writer_interrupt(struct repro_store_writer *w);
void repro_store_writer_set_deadline(struct repro_store_writer *w, uint64_t mono_ns);
/* Fills *out. Thread-safe: any thread, while the writer runs. */
void repro_store_writer_stats(struct repro_store_writer *w, struct repro_store_writer_stats *out);
/* How long rows handed to the writer thread have waited for their commit
 * (0 when none wait), at monotonic time now_ns. Any thread, lock-free: the
 * live agent's CPU policy reads it (app/live_priority.c). */
uint64_t repro_store_writer_wait_ns(struct repro_store_writer *w, uint64_t now_ns);
/* The writer thread's id (gettid), for repro_thread_set_sched(). */
int repro_store_writer_tid(const struct repro_store_writer *w);
/* Flushes, stops the thread and frees w (accepts NULL). Returns the first
 * error of the writer's life. */
int repro_store_writer_finish(struct repro_store_writer *w, struct repro_error *err);
/* The same, first filling *final (optional) with the last figures: what
 * the run committed. */
int repro_store_writer_finish_stats(struct repro_store_writer *w,
                                    struct repro_store_writer_stats *final,
                                    struct repro_error *err);

/* ---- readers ----------------------------------------------------------- */

/* Calls fn for each matching exchange in id order. A non-zero return from
 * fn stops the walk and is returned. REPRO_E_LIMIT for a path_prefix longer
 * than REPRO_STORE_MAX_PATTERN or more than REPRO_STORE_MAX_ID_RANGES id
 * ranges; REPRO_E_INVAL for a path_regex that does not compile. */
int repro_store_exchanges(struct repro_store *s, const struct repro_exchange_filter *f,
                          int with_bodies, repro_exchange_fn fn, void *ctx,
                          struct repro_error *err);

/* ---- crashes ----------------------------------------------------------- */

/* Stores a whole crash (modules, threads, frames, connections) in one
 * transaction; *id (optional) gets its id. With row->record_key set, a
 * crash already stored under that key is not stored again (*id gets the
 * existing id): insert-once, so retried ingests stay idempotent.
 * REPRO_E_MALFORMED when a frame names a module the row does not have. */
int repro_store_crash_add(struct repro_store *s, const struct repro_store_crash *row, int64_t *id,
                          struct repro_error *err);
/* Loads crash id into *out: transferred, every pointer in it owned by it;
 * free with repro_store_crash_free(). REPRO_E_NOTFOUND when there is no
 * such crash. */
int repro_store_crash_get(struct repro_store *s, int64_t id, struct repro_store_crash **out,
                          struct repro_error *err);
/* Frees a row from repro_store_crash_get (accepts NULL). */
void repro_store_crash_free(struct repro_store_crash *row);
/* Calls fn with every crash id in order (newest last). */
int repro_store_crash_ids(struct repro_store *s, int (*fn)(void *ctx, int64_t id), void *ctx,
                          struct repro_error *err);
/*
 * The exchanges in flight when crash crash_id happened: on a TCP connection
 * the process had open (crash connections, matched to captured connections
 * by both endpoints through the connections_by_endpoints index;
 * IPv4-mapped addresses count as IPv4), whose request had started by the
 * crash time and whose response had not (or never came). Calls fn with
 * each exchange id in id order; a non-zero return stops.
 */
int repro_store_crash_in_flight(struct repro_store *s, int64_t crash_id,
                                int (*fn)(void *ctx, int64_t exchange_id), void *ctx,
                                struct repro_error *err);
/* Crashes sharing a signature form a group: how many, first and last
 * seen (time_us). *count is 0 when signature is NULL or unknown. */
int repro_store_crash_group(struct repro_store *s, const char *signature, int64_t *count,
                            int64_t *first_us, int64_t *last_us, struct repro_error *err);
/* Replaces a stored crash's frames (symbolization may expand inlined
 * frames) and its signature with those of row (threads' frames and
 * signature only), in one transaction. */
int repro_store_crash_set_symbols(struct repro_store *s, int64_t id,
                                  const struct repro_store_crash *row, struct repro_error *err);

/* Calls fn for every capture in id order. */
int repro_store_captures(struct repro_store *s, repro_capture_fn fn, void *ctx,
                         struct repro_error *err);
/* *id: the newest finished capture of the same file (same base name, size
 * and time as row), 0 when none. */
int repro_store_capture_find(struct repro_store *s, const struct repro_store_capture *row,
                             int64_t *id, struct repro_error *err);

/* ---- replay runs ------------------------------------------------------- */

/* Starts a run (status "running"); *id gets its id. */
int repro_store_replay_run_begin(struct repro_store *s, const struct repro_store_replay_run *row,
                                 int64_t *id, struct repro_error *err);
/* Ends run id with its figures (commits the open batch of results). */
int repro_store_replay_run_end(struct repro_store *s, int64_t id,
                               const struct repro_store_replay_run_end *row,
                               struct repro_error *err);
/* Stores one result, batched like exchanges (repro_store_set_batch). */
int repro_store_replay_result_insert(struct repro_store *s,
                                     const struct repro_store_replay_result *row,
                                     struct repro_error *err);
/* Calls fn for run id (0: every run, in id order). REPRO_E_NOTFOUND when
 * id > 0 does not exist. */
int repro_store_replay_runs(struct repro_store *s, int64_t id, repro_replay_run_fn fn, void *ctx,
                            struct repro_error *err);
/* Calls fn for the results of run_id in id order; findings_only: only
 * verdicts other than match. */
int repro_store_replay_results(struct repro_store *s, int64_t run_id, int findings_only,
                               repro_replay_result_row_fn fn, void *ctx, struct repro_error *err);

#endif

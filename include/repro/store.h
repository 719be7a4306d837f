/*
 * repro store: the only code that speaks SQL. One SQLite file in WAL mode,
 * created mode 0600 (it holds production traffic), a versioned schema with
 * migrations (docs/schema.md), prepared statements and batched
 * transactions. The interface speaks in repro's own types so another
 * backend (PostgreSQL for many hosts) can implement it.
 *
 * A store handle is not thread-safe: use one per thread.
 */
#ifndef REPRO_STORE_H
#define REPRO_STORE_H

#include "repro/capture.h"
#include "repro/core.h"
#include "repro/crash.h"

#include <stdint.h>

/* The schema version this build writes and understands. */
#define REPRO_SCHEMA_VERSION 2

struct repro_store;

enum {
    REPRO_STORE_READONLY = 1 << 0, /* open an existing file for reading */
};

/*
 * Opens (creating it mode 0600 unless READONLY) the database at path
 * (":memory:" for a private in-memory database) and
 * migrates it to REPRO_SCHEMA_VERSION. *out is transferred: close with
 * repro_store_close(). Errors: REPRO_E_STORE (cannot open, not a database,
 * corrupt), REPRO_E_SCHEMA (written by a newer repro), REPRO_E_NOTFOUND
 * (READONLY and missing).
 */
int repro_store_open(const char *path, int flags, struct repro_store **out,
                     struct repro_error *err);
/* Commits any open batch and closes. Accepts NULL. */
void repro_store_close(struct repro_store *s);

/* Rows per transaction for the writers below (default 4096). */
void repro_store_set_batch(struct repro_store *s, unsigned rows);
/* Commits the open batch, if any. */
int repro_store_flush(struct repro_store *s, struct repro_error *err);

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

/* ---- capture writer ---------------------------------------------------- */

/* source_kind: "file" or "live"; source: path or interface; filter may be
 * NULL. Strings are borrowed for the call. */
int repro_store_capture_begin(struct repro_store *s, const char *source_kind, const char *source,
                              const char *filter, int link_type, int64_t *capture_id,
                              struct repro_error *err);
/* status: "complete", "partial" (input had problems) or "failed". */
int repro_store_capture_end(struct repro_store *s, int64_t capture_id,
                            const struct repro_capture_stats *st, const char *status,
                            struct repro_error *err);
/* Inserts a connection and sets c->store_id. */
int repro_store_conn_insert(struct repro_store *s, int64_t capture_id, struct repro_conn_info *c,
                            struct repro_error *err);
/* Updates close time, end reason and counters of c (by c->store_id). */
int repro_store_conn_update(struct repro_store *s, const struct repro_conn_info *c,
                            struct repro_error *err);
/* Inserts an exchange of connection c. *id (optional) gets its row id. */
int repro_store_exchange_insert(struct repro_store *s, int64_t capture_id,
                                const struct repro_conn_info *c, const struct repro_exchange *x,
                                int64_t *id, struct repro_error *err);

/* ---- the background writer -------------------------------------------- */

/*
 * Writes a capture's connections and exchanges from a thread of its own so
 * parsing and SQLite work run on two cores. The capture thread copies each
 * record into a batch (bounded: at most three batches of max_batch_bytes
 * exist); the writer thread inserts a whole batch per transaction. Records
 * are written in the order they were queued. The store must not be used by
 * anyone else until repro_store_writer_finish() returns.
 */
struct repro_store_writer;

/* max_batch_bytes 0 means 4 MiB (raised to hold the largest record). *out
 * is transferred: end it with repro_store_writer_finish(). */
int repro_store_writer_start(struct repro_store *s, int64_t capture_id, size_t max_record_bytes,
                             struct repro_store_writer **out, struct repro_error *err);
/* Queue records (copied; the arguments are borrowed for the call). They
 * fail with the writer's first error once the writer thread has failed. */
int repro_store_writer_conn_open(struct repro_store_writer *w, const struct repro_conn_info *c,
                                 struct repro_error *err);
int repro_store_writer_exchange(struct repro_store_writer *w, const struct repro_conn_info *c,
                                const struct repro_exchange *x, struct repro_error *err);
int repro_store_writer_conn_close(struct repro_store_writer *w, const struct repro_conn_info *c,
                                  struct repro_error *err);
/* Waits until everything queued so far is committed. */
int repro_store_writer_flush(struct repro_store_writer *w, struct repro_error *err);
/* Flushes, stops the thread and frees w (accepts NULL). Returns the first
 * error of the writer's life. */
int repro_store_writer_finish(struct repro_store_writer *w, struct repro_error *err);

/* ---- readers ----------------------------------------------------------- */

/* Filters for exchanges; zero/NULL fields do not filter. */
struct repro_exchange_filter {
    int64_t id;
    const char *method;
    const char *path_prefix;
    const char *host;
    int status;
    int64_t connection_id;
    int64_t capture_id;
    int64_t limit;
};

/* One stored exchange. Every pointer borrows until the callback returns;
 * text fields are NULL when unknown. */
struct repro_exchange_row {
    int64_t id, capture_id, connection_id, seq;
    char client[64], server[64];
    const char *method, *uri, *host, *http_version, *reason, *interim, *note;
    int status; /* 0 when no response */
    int64_t request_first_us, request_last_us, response_first_us, response_last_us; /* -1 if none */
    int64_t request_bytes, response_bytes;
    unsigned flags;
    int complete;
    struct repro_slice request, response; /* only when asked for bodies */
};

typedef int (*repro_exchange_fn)(void *ctx, const struct repro_exchange_row *row);

/* Calls fn for each matching exchange in id order. A non-zero return from
 * fn stops the walk and is returned. Thread-safety: one handle per thread. */
int repro_store_exchanges(struct repro_store *s, const struct repro_exchange_filter *f,
                          int with_bodies, repro_exchange_fn fn, void *ctx,
                          struct repro_error *err);

/* ---- crashes ----------------------------------------------------------- */

/* Stores a whole crash record (modules, threads, frames, connections) in
 * one transaction; *id (optional) gets its id. With c->record_key set, a
 * record already stored under that key is not stored again (*id gets the
 * existing id): insert-once, so retried ingests stay idempotent. */
int repro_store_crash_insert(struct repro_store *s, const struct repro_crash *c, int64_t *id,
                             struct repro_error *err);
/* Loads crash id into *out (transferred: repro_crash_free). REPRO_E_NOTFOUND
 * when there is no such crash. */
int repro_store_crash_load(struct repro_store *s, int64_t id, struct repro_crash **out,
                           struct repro_error *err);
/* Calls fn with every crash id in order (newest last). */
int repro_store_crash_ids(struct repro_store *s, int (*fn)(void *ctx, int64_t id), void *ctx,
                          struct repro_error *err);
/*
 * The exchanges in flight when crash crash_id happened: on a TCP connection
 * the process had open (crash_connections, matched to captured connections
 * by both endpoints; IPv4-mapped addresses count as IPv4), whose request
 * had started by the crash time and whose response had not (or never came).
 * Calls fn with each exchange id in id order; a non-zero return stops.
 */
int repro_store_crash_in_flight(struct repro_store *s, int64_t crash_id,
                                int (*fn)(void *ctx, int64_t exchange_id), void *ctx,
                                struct repro_error *err);

/* Crashes sharing a signature form a group: how many, first and last
 * seen (time_us). *count is 0 when signature is NULL or unknown. */
int repro_store_crash_group(struct repro_store *s, const char *signature, int64_t *count,
                            int64_t *first_us, int64_t *last_us, struct repro_error *err);
/* Replaces a stored crash's frames (symbolization may expand inlined
 * frames) and its signature with those of c, in one transaction. */
int repro_store_crash_update_symbols(struct repro_store *s, int64_t id, const struct repro_crash *c,
                                     struct repro_error *err);

/* Writes the stored flags as a JSON array of names into b. */
int repro_xflags_json(struct repro_buf *b, unsigned flags);

#endif

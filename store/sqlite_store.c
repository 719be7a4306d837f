/*
 * The SQLite backend of the store (struct repro_store_ops): schema and
 * migrations (documented in docs/schema.md), captures, connections and
 * exchanges; crashes are in sqlite_crash.c. Every statement is prepared
 * once per handle and owned by it. Writers batch rows into transactions of
 * `batch` rows; readers stream rows to a callback.
 *
 * Durability: WAL mode with synchronous=NORMAL — a committed batch survives
 * a crash of the process. NORMAL syncs the WAL only at checkpoints, so on
 * a quiet database a power cut could lose commits of the last half
 * minute (the kernel's writeback). So the WAL is synced (fdatasync, as
 * synchronous=FULL would at every commit) after a commit once the last
 * sync is SYNC_EVERY_NS old, and a commit that came sooner is synced by
 * repro_store_sync() when that time is up (the store writer calls it when
 * idle): a power cut loses about the last half second, for at most two
 * syncs a second. Bulk imports (synchronous=OFF) are re-runnable and
 * never sync.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How long a connection waits for another's write lock. */
#define BUSY_TIMEOUT_MS 5000
/* Commits are synced to disk at most this long after they are made. */
#define SYNC_EVERY_NS 500000000u

/* Every commit on the handle, batches, crash rows and single statements
 * alike, waits for a sync (SQLite calls this just before it commits). */
static int on_commit(void *arg)
{
    struct sqlite_store *s = arg;

    s->unsynced = !s->bulk;
    return 0;
}

/* Each entry migrates from version i to i+1. Never edit a released entry:
 * append a new one. */
static const char *const migrations[] = {
    /* 0 -> 1: captures, connections, exchanges */
    "CREATE TABLE captures ("
    " id INTEGER PRIMARY KEY,"
    " started_us INTEGER NOT NULL,"
    " finished_us INTEGER,"
    " source_kind TEXT NOT NULL,"
    " source TEXT NOT NULL,"
    " filter TEXT,"
    " link_type INTEGER,"
    " status TEXT NOT NULL DEFAULT 'running',"
    " packets INTEGER, bytes INTEGER, connections INTEGER, exchanges INTEGER,"
    " incomplete INTEGER, errors INTEGER,"
    " stats_json TEXT);"
    "CREATE TABLE connections ("
    " id INTEGER PRIMARY KEY,"
    " capture_id INTEGER NOT NULL REFERENCES captures(id),"
    " client_ip TEXT NOT NULL, client_port INTEGER NOT NULL,"
    " server_ip TEXT NOT NULL, server_port INTEGER NOT NULL,"
    " opened_us INTEGER NOT NULL,"
    " closed_us INTEGER,"
    " end_reason TEXT,"
    " mid_stream INTEGER NOT NULL,"
    " is_http INTEGER,"
    " bytes_c2s INTEGER, bytes_s2c INTEGER, gap_bytes INTEGER, exchanges INTEGER);"
    "CREATE TABLE exchanges ("
    " id INTEGER PRIMARY KEY,"
    " capture_id INTEGER NOT NULL REFERENCES captures(id),"
    " connection_id INTEGER NOT NULL REFERENCES connections(id),"
    " seq INTEGER NOT NULL,"
    " method TEXT, uri TEXT, host TEXT, http_version TEXT,"
    " status INTEGER, reason TEXT, interim TEXT,"
    " request_first_us INTEGER, request_last_us INTEGER,"
    " response_first_us INTEGER, response_last_us INTEGER,"
    " request_bytes INTEGER NOT NULL, response_bytes INTEGER NOT NULL,"
    " flags INTEGER NOT NULL, complete INTEGER NOT NULL, note TEXT,"
    " request BLOB, response BLOB);"
    "CREATE INDEX exchanges_by_connection ON exchanges(connection_id, seq);",
    /* 1 -> 2: crashes, their modules, threads, frames and open connections */
    "CREATE TABLE crashes ("
    " id INTEGER PRIMARY KEY,"
    " time_us INTEGER NOT NULL,"
    " pid INTEGER, tid INTEGER,"
    " executable TEXT, cmdline TEXT, service TEXT, hostname TEXT,"
    " signo INTEGER NOT NULL, signal TEXT NOT NULL, si_code INTEGER, fault_address INTEGER,"
    " source TEXT NOT NULL,"
    " partial INTEGER NOT NULL, partial_reason TEXT,"
    " signature TEXT, symbolized_us INTEGER, record_key TEXT);"
    "CREATE UNIQUE INDEX crashes_by_record_key ON crashes(record_key);"
    "CREATE INDEX crashes_by_signature ON crashes(signature);"
    "CREATE TABLE crash_modules ("
    " crash_id INTEGER NOT NULL REFERENCES crashes(id), idx INTEGER NOT NULL,"
    " path TEXT, start INTEGER, end INTEGER, load_bias INTEGER, build_id TEXT,"
    " PRIMARY KEY (crash_id, idx));"
    "CREATE TABLE crash_threads ("
    " crash_id INTEGER NOT NULL REFERENCES crashes(id), idx INTEGER NOT NULL,"
    " tid INTEGER, name TEXT, crashed INTEGER NOT NULL, registers TEXT, partial INTEGER,"
    " PRIMARY KEY (crash_id, idx));"
    "CREATE TABLE crash_frames ("
    " crash_id INTEGER NOT NULL REFERENCES crashes(id), thread_idx INTEGER NOT NULL,"
    " idx INTEGER NOT NULL, pc INTEGER NOT NULL, module_idx INTEGER, offset INTEGER,"
    " function TEXT, file TEXT, line INTEGER, column INTEGER, inlined INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (crash_id, thread_idx, idx));"
    "CREATE TABLE crash_connections ("
    " crash_id INTEGER NOT NULL REFERENCES crashes(id), fd INTEGER, family INTEGER,"
    " local_ip TEXT, local_port INTEGER, remote_ip TEXT, remote_port INTEGER, state INTEGER);"
    "CREATE INDEX crash_connections_by_endpoint ON crash_connections(remote_ip, remote_port);",
    /* 2 -> 3: the crash <-> exchange join looks captured connections up by
     * both endpoints and crash connections up by crash; body digests */
    "CREATE INDEX connections_by_endpoints"
    " ON connections(client_ip, client_port, server_ip, server_port);"
    "CREATE INDEX crash_connections_by_crash ON crash_connections(crash_id);"
    "ALTER TABLE exchanges ADD COLUMN request_body_sha256 BLOB;"
    "ALTER TABLE exchanges ADD COLUMN response_body_sha256 BLOB;",
    /* 3 -> 4: replay runs and their results (store/sqlite_replay.c); a
     * captured file's identity, so the same file is not stored twice */
    "ALTER TABLE captures ADD COLUMN source_size INTEGER;"
    "ALTER TABLE captures ADD COLUMN source_mtime_us INTEGER;"
    "CREATE TABLE replay_runs ("
    " id INTEGER PRIMARY KEY, started_us INTEGER NOT NULL, ended_us INTEGER,"
    " target TEXT NOT NULL, baseline TEXT, speed REAL NOT NULL, selection TEXT,"
    " status TEXT NOT NULL, sent INTEGER, matched INTEGER, mismatched INTEGER,"
    " errors INTEGER, timeouts INTEGER, crashes INTEGER, unanswered INTEGER,"
    " duration_s REAL, requests_per_s REAL, sched_p50_us REAL, sched_p99_us REAL,"
    " sched_max_us REAL);"
    "CREATE TABLE replay_results ("
    " id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES replay_runs(id),"
    " exchange_id INTEGER NOT NULL, loop INTEGER NOT NULL, verdict TEXT NOT NULL,"
    " error TEXT, status INTEGER, latency_us REAL, latency_intended_us REAL,"
    " schedule_error_us REAL, differences TEXT, substitutions TEXT, noise INTEGER,"
    " still_redacted INTEGER, reopened INTEGER, response BLOB);"
    "CREATE INDEX replay_results_by_run ON replay_results(run_id, verdict);",
    /* 4 -> 5: why a capture failed; retention skips the exchanges replay
     * results refer to, found through an index */
    ("ALTER TABLE captures ADD COLUMN error TEXT;"
     "CREATE INDEX replay_results_by_exchange ON replay_results(exchange_id);"),
    /* 5 -> 6: each connection's exchange id range replaces the index on
     * exchanges(connection_id, seq), which cost every stored exchange a
     * second B-tree insert (sqlite_ranges.c); the ranges of the rows
     * already there come from that index before it goes */
    ("ALTER TABLE connections ADD COLUMN first_exchange_id INTEGER;"
     "ALTER TABLE connections ADD COLUMN last_exchange_id INTEGER;"
     "UPDATE connections SET"
     " first_exchange_id = (SELECT min(e.id) FROM exchanges e WHERE e.connection_id = connections.id),"
     " last_exchange_id = (SELECT max(e.id) FROM exchanges e WHERE e.connection_id = connections.id);"
     "DROP INDEX IF EXISTS exchanges_by_connection;"),
};
#define N_MIGRATIONS (sizeof migrations / sizeof *migrations)

const char *repro__sqlite_migration(int from_version)
{
    if (from_version < 0 || from_version >= (int)N_MIGRATIONS)
        return NULL;
    return migrations[from_version];
}


static const char *const stmt_sql[ST__COUNT] = {
    "BEGIN",
    "COMMIT",
    "INSERT INTO connections(capture_id, client_ip, client_port, server_ip, server_port,"
    " opened_us, mid_stream, is_http) VALUES (?,?,?,?,?,?,?,?)",
    "UPDATE connections SET closed_us=?, end_reason=?, is_http=?, bytes_c2s=?, bytes_s2c=?,"
    " gap_bytes=?, exchanges=?,"
    " first_exchange_id=coalesce(min(first_exchange_id, ?9), first_exchange_id, ?9),"
    " last_exchange_id=coalesce(max(last_exchange_id, ?10), last_exchange_id, ?10) WHERE id=?8",
    /* widens a connection's exchange id range (sqlite_ranges.c) */
    "UPDATE connections SET first_exchange_id=coalesce(min(first_exchange_id, ?1), ?1),"
    " last_exchange_id=coalesce(max(last_exchange_id, ?2), ?2) WHERE id=?3",
    /* the rows the caller passes (sqlite_rows.c) */
    "INSERT INTO exchanges(capture_id, connection_id, seq, method, uri, host, http_version,"
    " status, reason, interim, request_first_us, request_last_us, response_first_us,"
    " response_last_us, request_bytes, response_bytes, flags, complete, note, request, response,"
    " request_body_sha256, response_body_sha256) SELECT * FROM repro_exchange_rows",
    "INSERT INTO replay_results(run_id, exchange_id, loop, verdict, error, status, latency_us,"
    " latency_intended_us, schedule_error_us, differences, substitutions, noise, still_redacted,"
    " reopened, response) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
};



/* SQLITE_BUSY and SQLITE_LOCKED (any extended code): another connection
 * held a lock for longer than the busy timeout. */
static int is_busy(int sqlite_rc)
{
    return (sqlite_rc & 0xff) == SQLITE_BUSY || (sqlite_rc & 0xff) == SQLITE_LOCKED;
}

/* Records the failure of the last call on s->db, with msg (or SQLite's own
 * message): REPRO_E_BUSY when the database was locked, else
 * REPRO_E_STORE. */
static int db_failure(struct sqlite_store *s, struct repro_error *err, const char *what,
                      const char *msg)
{
    if (is_busy(sqlite3_extended_errcode(s->db)))
        return repro_error_set(err, REPRO_E_BUSY,
                               "%s in database '%s': locked by another process for more than "
                               "%u ms (%s)",
                               what, s->path, s->busy_timeout_ms, msg ? msg : sqlite3_errmsg(s->db));
    return repro_error_set(err, REPRO_E_STORE, "%s in database '%s': %s", what, s->path,
                           msg ? msg : sqlite3_errmsg(s->db));
}

int repro__store_db_error(struct sqlite_store *s, struct repro_error *err, const char *what)
{
    return db_failure(s, err, what, NULL);
}

int repro__store_exec(struct sqlite_store *s, const char *sql, struct repro_error *err,
                    const char *what)
{
    char *msg = NULL;
    int rc = REPRO_OK;

    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK)
        rc = db_failure(s, err, what, msg);
    sqlite3_free(msg);
    return rc;
}

static int user_version(struct sqlite_store *s, int *v, struct repro_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);

    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        *v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return REPRO_OK;
    }
    repro__store_db_error(s, err, "cannot read the schema version");
    sqlite3_finalize(st);
    return REPRO_E_STORE;
}

static int too_new(struct sqlite_store *s, int v, struct repro_error *err)
{
    return repro_error_set(err, REPRO_E_SCHEMA,
                           "cannot use database '%s': schema version %d is newer than this "
                           "repro's %d",
                           s->path, v, (int)N_MIGRATIONS);
}

/* Whether the directory of path may be written (WAL's -wal and -shm). */
static int dir_writable(const char *path)
{
    char dir[1024];
    const char *slash = strrchr(path, '/');
    if (!slash)
        return access(".", W_OK) == 0;
    snprintf(dir, sizeof dir, "%.*s", (int)(slash == path ? 1 : slash - path), path);
    return access(dir, W_OK) == 0;
}

static int migrate(struct sqlite_store *s, int readonly, struct repro_error *err)
{
    int v, rc;
    char sql[64];

    rc = user_version(s, &v, err);
    if (rc)
        return rc;
    if (v > (int)N_MIGRATIONS)
        return too_new(s, v, err);
    if (v == (int)N_MIGRATIONS)
        return REPRO_OK;
    if (readonly) {
        /* An older file is brought forward through a short read-write
         * connection (migrations only add tables and columns), then read. */
        sqlite3 *rw = NULL;
        sqlite3 *ro = s->db;
        /* SQLite quietly opens a file it may not write read-only: ask */
        if (sqlite3_open_v2(s->path, &rw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
                SQLITE_OK ||
            sqlite3_db_readonly(rw, "main") != 0 || !dir_writable(s->path)) {
            sqlite3_close(rw);
            return repro_error_set(err, REPRO_E_SCHEMA,
                                   "cannot read database '%s': it has schema version %d, which "
                                   "this repro must migrate to %d first, and this user may not "
                                   "write it or its directory (run any writing command, such "
                                   "as 'repro capture', once as a user who may)",
                                   s->path, v, (int)N_MIGRATIONS);
        }
        sqlite3_busy_timeout(rw, BUSY_TIMEOUT_MS);
        s->db = rw;
        rc = migrate(s, 0, err);
        s->db = ro;
        sqlite3_close(rw);
        return rc;
    }
    /* The version read above only says whether to migrate. Another process
     * may be migrating the same file right now, so each step takes the
     * write lock first and reads the version again under it: a step that
     * someone else already made is skipped, not made twice. */
    for (;;) {
        if ((rc = repro__store_exec(s, "BEGIN IMMEDIATE", err, "cannot start a migration")) != 0)
            return rc;
        if ((rc = user_version(s, &v, err)) != 0)
            goto rollback;
        if (v >= (int)N_MIGRATIONS) {
            /* Another process finished the migration meanwhile (or a
             * newer repro took the file further). */
            repro__store_exec(s, "ROLLBACK", NULL, "rollback");
            return v > (int)N_MIGRATIONS ? too_new(s, v, err) : REPRO_OK;
        }
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v + 1);
        if ((rc = repro__store_exec(s, migrations[v], err, "cannot migrate the schema")) != 0 ||
            (rc = repro__store_exec(s, sql, err, "cannot migrate the schema")) != 0)
            goto rollback;
        if ((rc = repro__store_exec(s, "COMMIT", err, "cannot commit a migration")) != 0)
            return rc;
    }
rollback:
    repro__store_exec(s, "ROLLBACK", NULL, "rollback");
    return rc;
}

/* Switching a new file to WAL needs an exclusive lock, and SQLite returns
 * SQLITE_BUSY at once, without its busy handler, when two connections that
 * both read the file race for it (waiting could deadlock). One of them wins;
 * the others retry for as long as the busy timeout and then find the file
 * already in WAL mode. */
static int enable_wal(struct sqlite_store *s, struct repro_error *err)
{
    const struct timespec pause = {0, 2 * 1000 * 1000};
    struct timespec t0, now;
    long waited_ms;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        rc = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return REPRO_OK;
        clock_gettime(CLOCK_MONOTONIC, &now);
        waited_ms = (now.tv_sec - t0.tv_sec) * 1000L + (now.tv_nsec - t0.tv_nsec) / 1000000L;
        if ((rc & 0xff) != SQLITE_BUSY || waited_ms >= BUSY_TIMEOUT_MS)
            return repro__store_db_error(s, err, "cannot configure");
        nanosleep(&pause, NULL);
    }
}

static void sqlite_close(void *impl)
{
    struct sqlite_store *s = impl;
    int i;

    if (s == NULL)
        return;
    repro__store_flush(s, NULL);
    for (i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    repro__ranges_free(s);
    repro_free(s);
}

/* A reader who may read the file but not write its directory cannot
 * create the -shm file WAL mode wants, and SQLite refuses even a read.
 * Such a file is opened again as immutable: nobody this user could
 * coordinate with can write it anyway. Called with a read-only s->db. */
static int readable(struct sqlite_store *s, struct repro_error *err)
{
    char uri[3 * sizeof s->path + 32];
    size_t n;
    int v;

    if (sqlite3_exec(s->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) == SQLITE_OK)
        return REPRO_OK;
    if (dir_writable(s->path))
        return user_version(s, &v, err); /* something else: say what SQLite says */
    n = (size_t)snprintf(uri, sizeof uri, "file:");
    for (const char *p = s->path; *p && n + 4 < sizeof uri; p++)
        n += (size_t)(strchr("?#%", *p) ? snprintf(uri + n, sizeof uri - n, "%%%02X", (unsigned char)*p)
                                        : snprintf(uri + n, sizeof uri - n, "%c", *p));
    snprintf(uri + n, sizeof uri - n, "?immutable=1");
    sqlite3_close(s->db);
    s->db = NULL;
    if (sqlite3_open_v2(uri, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return repro__store_db_error(s, err, "cannot open");
    sqlite3_extended_result_codes(s->db, 1);
    return REPRO_OK;
}

static int sqlite_open(const char *path, int flags, void **out, struct repro_error *err)
{
    struct sqlite_store *s;
    int readonly = (flags & REPRO_STORE_READONLY) != 0, rc, i;

    *out = NULL;
    s = repro_calloc(1, sizeof *s);
    if (s == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot open database '%s': out of memory",
                               path);
    snprintf(s->path, sizeof s->path, "%s", path);
    s->batch = 4096;
    s->busy_timeout_ms = BUSY_TIMEOUT_MS;
    if (readonly && access(path, F_OK) != 0) {
        rc = repro_error_sys(err, REPRO_E_NOTFOUND, "cannot open database '%s': %s", path,
                             strerror(errno));
        goto fail;
    }
    /* SQLite opens a directory read-only and then reports "disk I/O
     * error" at the first read: say what is wrong instead. */
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = repro_error_set(err, REPRO_E_INVAL, "cannot open database '%s': is a directory",
                             path);
        goto fail;
    }
    if (!readonly && strcmp(path, ":memory:") != 0) {
        /* Create the file ourselves so it is 0600 from the start; SQLite
         * gives the -wal and -shm files the same mode. */
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = repro_error_sys(err, REPRO_E_STORE, "cannot open database '%s': %s", path,
                                 strerror(errno));
            goto fail;
        }
        close(fd);
    }
    /* Process-wide: memory statistics cost a global mutex per allocation.
     * Fails harmlessly once SQLite is initialised. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (sqlite3_open_v2(path, &s->db,
                        (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
                            SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = repro__store_db_error(s, err, "cannot open");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(s->db, 1);
    if (!readonly)
        sqlite3_commit_hook(s->db, on_commit, s);
    if (readonly && (rc = readable(s, err)) != 0)
        goto fail;
    /* page_size only takes effect on a new file, before WAL is enabled.
     * 64 KiB pages (about a hundred typical exchanges each) instead of 16:
     * a quarter of the page splits, WAL frames and checkpoint copies per
     * exchange; the live agent's CPU per exchange fell from 4.44 to 3.93 us
     * (bench/live_bench.sh). Checkpoints every 256 pages keep the -wal at
     * 16 MiB as before. */
    if (!readonly && ((rc = repro__store_exec(s, "PRAGMA page_size=65536;", err,
                                              "cannot configure")) != 0 ||
                      (rc = enable_wal(s, err)) != 0 ||
                      (rc = repro__store_exec(s, "PRAGMA synchronous=NORMAL;"
                                                 " PRAGMA cache_size=-8192;"
                                                 " PRAGMA wal_autocheckpoint=256;",
                                              err, "cannot configure")) != 0))
        goto fail;
    if ((rc = migrate(s, readonly, err)) != 0)
        goto fail;
    if (!readonly && repro__rows_register(s) != SQLITE_OK) {
        rc = repro__store_db_error(s, err, "cannot prepare a statement");
        goto fail;
    }
    if (!readonly) {
        for (i = 0; i < ST__COUNT; i++) {
            if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
                                   NULL) != SQLITE_OK) {
                rc = repro__store_db_error(s, err, "cannot prepare a statement");
                goto fail;
            }
        }
    }
    *out = s;
    return REPRO_OK;
fail:
    sqlite_close(s);
    return rc;
}

static void sqlite_set_batch(void *impl, unsigned rows)
{
    struct sqlite_store *s = impl;
    s->batch = rows ? rows : 1;
}

static void sqlite_set_busy_timeout(void *impl, unsigned ms)
{
    struct sqlite_store *s = impl;
    s->busy_timeout_ms = ms;
    sqlite3_busy_timeout(s->db, (int)(ms > INT32_MAX ? INT32_MAX : ms));
}

int repro__store_step(struct sqlite_store *s, sqlite3_stmt *st, struct repro_error *err,
                      const char *what)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rc = repro__store_db_error(s, err, what);
        /* cleared here too: the next use of a persistent statement binds
         * only what it has (ST_CONN_UPD leaves the range NULL) */
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return REPRO_OK;
}

/* Syncs the WAL, with every commit in it, when a commit waits for it and
 * the last sync is SYNC_EVERY_NS old. Its own descriptor: SQLite's is
 * its own; the file stays the same while the database is open. */
static void sync_if_due(struct sqlite_store *s)
{
    const char *main_file = sqlite3_db_filename(s->db, "main");
    const char *wal = main_file ? sqlite3_filename_wal(main_file) : NULL;
    uint64_t now = repro_mono_ns();
    int fd;

    if (s->bulk || !s->unsynced || now - s->synced_ns < SYNC_EVERY_NS || wal == NULL)
        return;
    fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (fdatasync(fd) == 0)
            s->unsynced = 0;
        close(fd);
    } else if (errno == ENOENT) {
        s->unsynced = 0; /* checkpointed and gone: in the database, synced */
    }
    s->synced_ns = now; /* a failure is tried again in SYNC_EVERY_NS */
}

static int sqlite_sync(void *impl, uint64_t *next_ns)
{
    struct sqlite_store *s = impl;
    uint64_t since;

    sync_if_due(s);
    since = repro_mono_ns() - s->synced_ns;
    *next_ns = !s->unsynced || s->bulk ? 0 : since >= SYNC_EVERY_NS ? 1 : SYNC_EVERY_NS - since;
    return REPRO_OK;
}


int repro__store_flush(void *impl, struct repro_error *err)
{
    struct sqlite_store *s = impl;
    int rc;
    if (!s->in_tx)
        return REPRO_OK;
    rc = repro__ranges_flush(s, err);
    if (rc == REPRO_OK)
        rc = repro__store_step(s, s->st[ST_COMMIT], err, "cannot commit");
    if (rc == REPRO_OK) {
        s->in_tx = 0;
        s->pending = 0;
        repro__ranges_committed(s);
        sync_if_due(s);
    }
    return rc;
}

int repro__store_begin(void *impl, struct repro_error *err)
{
    struct sqlite_store *s = impl;
    int rc = repro__store_flush(s, err);

    if (rc == REPRO_OK && (rc = repro__store_exec(s, "BEGIN IMMEDIATE", err,
                                                  "cannot begin a transaction")) == REPRO_OK)
        s->in_tx = 1;
    return rc;
}

void repro__store_rollback(void *impl)
{
    struct sqlite_store *s = impl;

    if (sqlite3_get_autocommit(s->db) == 0)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->in_tx = 0;
    s->pending = 0;
    repro__ranges_rolled_back(s);
}

int repro__store_batch_open(struct sqlite_store *s, struct repro_error *err)
{
    int rc = REPRO_OK;

    if (!s->in_tx && (rc = repro__store_step(s, s->st[ST_BEGIN], err,
                                             "cannot begin a transaction")) == REPRO_OK)
        s->in_tx = 1;
    return rc;
}

int repro__store_batch_done(struct sqlite_store *s, int rc, size_t n, struct repro_error *err)
{
    if (rc == REPRO_OK && (s->pending += (unsigned)n) >= s->batch)
        rc = repro__store_flush(s, err);
    return rc;
}

static int sqlite_bulk_begin(void *impl, struct repro_error *err)
{
    struct sqlite_store *s = impl;
    int rc = repro__store_flush(s, err);

    if (rc == REPRO_OK &&
        (rc = repro__store_exec(s, "PRAGMA synchronous=OFF", err, "cannot start a bulk import")) ==
            REPRO_OK)
        s->bulk = 1;
    return rc;
}

static int sqlite_bulk_end(void *impl, struct repro_error *err)
{
    struct sqlite_store *s = impl;
    int rc = repro__store_flush(s, err);
    if (rc == REPRO_OK)
        rc = repro__store_exec(s, "PRAGMA synchronous=NORMAL; PRAGMA wal_checkpoint(TRUNCATE);", err,
                      "cannot finish a bulk import");
    if (rc == REPRO_OK)
        s->bulk = 0;
    return rc;
}


int repro__store_prepare(struct sqlite_store *s, const char *sql, sqlite3_stmt **st,
                         struct repro_error *err, const char *what)
{
    *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
        return repro__store_db_error(s, err, what);
    return REPRO_OK;
}

const char *repro__store_col_text(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NULL
                                                       : (const char *)sqlite3_column_text(st, col);
}

void repro__store_bind_text(sqlite3_stmt *st, int col, const char *v)
{
    if (v)
        sqlite3_bind_text(st, col, v, -1, SQLITE_TRANSIENT);
}

void repro__store_bind_ip(sqlite3_stmt *st, int col, int family, const uint8_t *ip)
{
    char buf[REPRO_IP_TEXT_MAX];

    repro_ip_format(buf, sizeof buf, family, ip);
    sqlite3_bind_text(st, col, buf, -1, SQLITE_TRANSIENT);
}

static int sqlite_capture_begin(void *impl, const struct repro_store_capture *row,
                                int64_t *capture_id, struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *st = NULL;
    int rc = repro__store_flush(s, err);

    if (rc)
        return rc;
    if ((rc = repro__store_prepare(s,
                                   "INSERT INTO captures(started_us, source_kind, source, filter,"
                                   " link_type, source_size, source_mtime_us)"
                                   " VALUES (?,?,?,?,?,?,?)",
                                   &st, err, "cannot record the capture")) != 0)
        return rc;
    sqlite3_bind_int64(st, 1, repro_wall_us());
    sqlite3_bind_text(st, 2, row->source_kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, row->source, -1, SQLITE_TRANSIENT);
    repro__store_bind_text(st, 4, row->filter);
    sqlite3_bind_int(st, 5, row->link_type);
    if (row->source_size > 0) {
        sqlite3_bind_int64(st, 6, row->source_size);
        sqlite3_bind_int64(st, 7, row->source_mtime_us);
    }
    rc = repro__store_step(s, st, err, "cannot record the capture");
    sqlite3_finalize(st);
    if (rc == REPRO_OK)
        *capture_id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

static const char *base_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int sqlite_capture_find(void *impl, const struct repro_store_capture *row, int64_t *id,
                               struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *st = NULL;
    int rc, step;

    *id = 0;
    if (row->source_size <= 0)
        return REPRO_OK;
    if ((rc = repro__store_prepare(s,
                                   "SELECT id, source FROM captures WHERE source_kind = 'file'"
                                   " AND source_size = ? AND source_mtime_us = ?"
                                   " AND status <> 'failed' AND status <> 'running' ORDER BY id DESC",
                                   &st, err, "cannot look a capture up")) != 0)
        return rc;
    sqlite3_bind_int64(st, 1, row->source_size);
    sqlite3_bind_int64(st, 2, row->source_mtime_us);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *src = repro__store_col_text(st, 1);
        if (src && strcmp(base_of(src), base_of(row->source)) == 0) {
            *id = sqlite3_column_int64(st, 0);
            break;
        }
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = repro__store_db_error(s, err, "cannot look a capture up");
    sqlite3_finalize(st);
    return rc;
}

static int sqlite_captures(void *impl, repro_capture_fn fn, void *ctx, struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *st = NULL;
    int rc, step;

    if ((rc = repro__store_prepare(s,
                                   "SELECT id, started_us, finished_us, source_kind, source, filter,"
                                   " status, stats_json, packets, bytes, connections, exchanges,"
                                   " incomplete, errors, error FROM captures ORDER BY id",
                                   &st, err, "cannot list captures")) != 0)
        return rc;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct repro_capture_row r = {
            .id = sqlite3_column_int64(st, 0),
            .started_us = sqlite3_column_int64(st, 1),
            .finished_us = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 2),
            .source_kind = repro__store_col_text(st, 3),
            .source = repro__store_col_text(st, 4),
            .filter = repro__store_col_text(st, 5),
            .status = repro__store_col_text(st, 6),
            .stats_json = repro__store_col_text(st, 7),
            .packets = sqlite3_column_int64(st, 8),
            .bytes = sqlite3_column_int64(st, 9),
            .connections = sqlite3_column_int64(st, 10),
            .exchanges = sqlite3_column_int64(st, 11),
            .incomplete = sqlite3_column_int64(st, 12),
            .errors = sqlite3_column_int64(st, 13),
            .error = repro__store_col_text(st, 14)};
        if ((rc = fn(ctx, &r)) != 0)
            break;
    }
    if (rc == REPRO_OK && step != SQLITE_DONE)
        rc = repro__store_db_error(s, err, "cannot list captures");
    sqlite3_finalize(st);
    return rc;
}

/* Every counter as one JSON object, in the row's order. */
static int stats_json(struct repro_buf *b, const struct repro_store_capture_end *row)
{
    size_t i;
    int rc = repro_buf_append(b, "{", 1);

    for (i = 0; i < row->n_counters && rc == REPRO_OK; i++)
        rc = repro_buf_printf(b, "%s\"%s\":%llu", i ? "," : "", row->counters[i].name,
                              (unsigned long long)row->counters[i].value);
    return rc ? rc : repro_buf_append(b, "}", 1);
}

/* The columns of their own, in REPRO_STORE_CAPTURE_COLUMNS order. */
static const char *const capture_columns[] = {
#define COLUMN_NAME(name) #name,
    REPRO_STORE_CAPTURE_COLUMNS(COLUMN_NAME)
#undef COLUMN_NAME
};
#define N_CAPTURE_COLUMNS (sizeof capture_columns / sizeof *capture_columns)

static int sqlite_capture_end(void *impl, int64_t capture_id,
                              const struct repro_store_capture_end *row, struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *q = NULL;
    struct repro_buf js;
    size_t i, k;
    int rc = repro__store_flush(s, err);

    if (rc)
        return rc;
    repro_buf_init(&js, 4096);
    if (stats_json(&js, row) != REPRO_OK)
        js.len = 0;
    rc = repro__store_prepare(s,
                              "UPDATE captures SET finished_us=?, status=?, packets=?, bytes=?,"
                              " connections=?, exchanges=?, incomplete=?, errors=?, stats_json=?,"
                              " error=? WHERE id=?",
                              &q, err, "cannot finish the capture record");
    if (rc) {
        repro_buf_release(&js);
        return rc;
    }
    sqlite3_bind_int64(q, 1, repro_wall_us());
    sqlite3_bind_text(q, 2, row->status, -1, SQLITE_TRANSIENT);
    for (k = 0; k < N_CAPTURE_COLUMNS; k++)
        for (i = 0; i < row->n_counters; i++)
            if (strcmp(row->counters[i].name, capture_columns[k]) == 0)
                sqlite3_bind_int64(q, 3 + (int)k, (sqlite3_int64)row->counters[i].value);
    if (js.len)
        sqlite3_bind_text(q, 9, (const char *)js.data, (int)js.len, SQLITE_TRANSIENT);
    repro__store_bind_text(q, 10, row->error);
    sqlite3_bind_int64(q, 11, capture_id);
    rc = repro__store_step(s, q, err, "cannot finish the capture record");
    sqlite3_finalize(q);
    repro_buf_release(&js);
    return rc;
}

static int sqlite_conn_insert(void *impl, const struct repro_store_conn *row, int64_t *id,
                              struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *st = s->st[ST_CONN_INS];
    int rc = repro__store_batch_open(s, err);

    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, row->capture_id);
    repro__store_bind_ip(st, 2, row->family, row->client_ip);
    sqlite3_bind_int(st, 3, row->client_port);
    repro__store_bind_ip(st, 4, row->family, row->server_ip);
    sqlite3_bind_int(st, 5, row->server_port);
    sqlite3_bind_int64(st, 6, row->opened_us);
    sqlite3_bind_int(st, 7, row->mid_stream);
    sqlite3_bind_int(st, 8, row->is_http);
    rc = repro__store_step(s, st, err, "cannot store a connection");
    if (rc == REPRO_OK && id)
        *id = sqlite3_last_insert_rowid(s->db);
    return repro__store_batch_done(s, rc, 1, err);
}

static int sqlite_conn_update(void *impl, const struct repro_store_conn *row,
                              struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *st = s->st[ST_CONN_UPD];
    int rc = repro__store_batch_open(s, err);

    if (rc)
        return rc;
    if (row->closed_us >= 0)
        sqlite3_bind_int64(st, 1, row->closed_us);
    repro__store_bind_text(st, 2, row->end_reason);
    sqlite3_bind_int(st, 3, row->is_http);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)row->bytes_c2s);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)row->bytes_s2c);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)row->gap_bytes);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)row->n_exchanges);
    sqlite3_bind_int64(st, 8, row->id);
    if (row->closed_us >= 0) {
        int64_t first, last;
        repro__ranges_closing(s, row->id, &first, &last);
        if (first > 0) {
            sqlite3_bind_int64(st, 9, first);
            sqlite3_bind_int64(st, 10, last);
        }
    }
    rc = repro__store_step(s, st, err, "cannot update a connection");
    if (rc == REPRO_OK && row->closed_us >= 0)
        repro__ranges_closed(s, row->id);
    return repro__store_batch_done(s, rc, 1, err);
}

/* Stores n exchanges in one statement (sqlite_rows.c); *first_id gets
 * the first one's id, the others follow it. */
static int sqlite_exchange_insert(void *impl, const struct repro_store_exchange *rows, size_t n,
                                  int64_t *first_id, struct repro_error *err)
{
    struct sqlite_store *s = impl;
    int rc;

    if (n == 0)
        return REPRO_OK;
    if ((rc = repro__store_batch_open(s, err)) != REPRO_OK)
        return rc;
    rc = repro__rows_insert(s, rows, n, first_id, err);
    return repro__store_batch_done(s, rc, n, err);
}

/* ---- readers ---------------------------------------------------------- */

static int64_t col_time(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, col);
}

static void format_ep(char *out, size_t n, const char *ip, int port)
{
    if (ip && strchr(ip, ':'))
        snprintf(out, n, "[%s]:%d", ip, port);
    else
        snprintf(out, n, "%s:%d", ip ? ip : "?", port);
}

/* The path prefix as a LIKE pattern: %, _ and \ escaped, % appended. */
static int like_pattern(struct repro_buf *like, const char *prefix, struct repro_error *err)
{
    size_t i;
    int rc = REPRO_OK;

    if (strnlen(prefix, (size_t)REPRO_STORE_MAX_PATTERN + 1) > REPRO_STORE_MAX_PATTERN)
        return repro_error_set(err, REPRO_E_LIMIT,
                               "cannot query exchanges: the path prefix is longer than %d bytes",
                               REPRO_STORE_MAX_PATTERN);
    for (i = 0; prefix[i] && rc == REPRO_OK; i++) {
        char ch = prefix[i];
        if (ch == '%' || ch == '_' || ch == '\\')
            rc = repro_buf_append(like, "\\", 1);
        if (rc == REPRO_OK)
            rc = repro_buf_append(like, &ch, 1);
    }
    if (rc == REPRO_OK)
        rc = repro_buf_append(like, "%", 2); /* with its NUL */
    if (rc)
        return repro_error_set(err, rc, "cannot query exchanges: %s", repro_strerror(rc));
    return REPRO_OK;
}

int repro__sqlite_exchanges_sql(struct repro_buf *sql, const struct repro_exchange_filter *f,
                                int with_bodies)
{
    int rc, col = 1;

    rc = repro_buf_printf(
        sql,
        "SELECT e.id, e.capture_id, e.connection_id, e.seq, c.client_ip, c.client_port,"
        " c.server_ip, c.server_port, e.method, e.uri, e.host, e.http_version, e.status,"
        " e.reason, e.interim, e.note, e.request_first_us, e.request_last_us,"
        " e.response_first_us, e.response_last_us, e.request_bytes, e.response_bytes,"
        " e.flags, e.complete, %s, nullif(lower(hex(e.request_body_sha256)), ''),"
    " nullif(lower(hex(e.response_body_sha256)), '')"
        " FROM exchanges e JOIN connections c ON c.id = e.connection_id WHERE 1",
        with_bodies ? "e.request, e.response" : "NULL, NULL");
    if (rc == REPRO_OK && f->id)
        rc = repro_buf_printf(sql, " AND e.id = ?%d", col++);
    if (rc == REPRO_OK && f->method)
        rc = repro_buf_printf(sql, " AND e.method = ?%d COLLATE NOCASE", col++); /* post: POST */
    if (rc == REPRO_OK && f->path_prefix)
        rc = repro_buf_printf(sql, " AND e.uri LIKE ?%d ESCAPE '\\'", col++);
    if (rc == REPRO_OK && f->host)
        rc = repro_buf_printf(sql, " AND e.host = ?%d COLLATE NOCASE", col++);
    if (rc == REPRO_OK && f->status)
        rc = repro_buf_printf(sql, " AND e.status = ?%d", col++);
    /* through the connection's exchange id range: no index on
     * exchanges.connection_id (schema version 6) */
    if (rc == REPRO_OK && f->connection_id) {
        rc = repro_buf_printf(sql,
                              " AND e.connection_id = ?%d"
                              " AND e.id >= (SELECT first_exchange_id FROM connections WHERE id = ?%d)"
                              " AND e.id <= (SELECT last_exchange_id FROM connections WHERE id = ?%d)",
                              col, col, col);
        col++;
    }
    if (rc == REPRO_OK && f->capture_id)
        rc = repro_buf_printf(sql, " AND e.capture_id = ?%d", col++);
    /* the time listings show: the request's, else the response's */
    if (rc == REPRO_OK && f->since_us)
        rc = repro_buf_printf(sql, " AND coalesce(e.request_first_us, e.response_first_us) >= %lld",
                              (long long)f->since_us);
    if (rc == REPRO_OK && f->until_us)
        rc = repro_buf_printf(sql, " AND coalesce(e.request_first_us, e.response_first_us) < %lld",
                              (long long)f->until_us);
    /* parsed numbers, so written into the statement: no bound-parameter
     * limit for a long list */
    for (size_t k = 0; rc == REPRO_OK && k < f->n_ids; k++)
        rc = repro_buf_printf(sql, "%s e.id BETWEEN %lld AND %lld%s", k ? " OR" : " AND (",
                              (long long)f->ids[k].lo, (long long)f->ids[k].hi,
                              k + 1 == f->n_ids ? ")" : "");
    if (rc == REPRO_OK)
        rc = repro_buf_printf(sql, " ORDER BY e.id");
    /* with a regex the rows are filtered here, so the limit is counted here */
    if (rc == REPRO_OK && f->limit > 0 && !f->path_regex)
        rc = repro_buf_printf(sql, " LIMIT %lld", (long long)f->limit);
    return rc;
}

static void read_exchange_row(sqlite3_stmt *st, struct repro_exchange_row *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    r->capture_id = sqlite3_column_int64(st, 1);
    r->connection_id = sqlite3_column_int64(st, 2);
    r->seq = sqlite3_column_int64(st, 3);
    format_ep(r->client, sizeof r->client, repro__store_col_text(st, 4), sqlite3_column_int(st, 5));
    format_ep(r->server, sizeof r->server, repro__store_col_text(st, 6), sqlite3_column_int(st, 7));
    r->method = repro__store_col_text(st, 8);
    r->uri = repro__store_col_text(st, 9);
    r->host = repro__store_col_text(st, 10);
    r->http_version = repro__store_col_text(st, 11);
    r->status = sqlite3_column_int(st, 12);
    r->reason = repro__store_col_text(st, 13);
    r->interim = repro__store_col_text(st, 14);
    r->note = repro__store_col_text(st, 15);
    r->request_first_us = col_time(st, 16);
    r->request_last_us = col_time(st, 17);
    r->response_first_us = col_time(st, 18);
    r->response_last_us = col_time(st, 19);
    r->request_bytes = sqlite3_column_int64(st, 20);
    r->response_bytes = sqlite3_column_int64(st, 21);
    r->flags = (unsigned)sqlite3_column_int(st, 22);
    r->complete = sqlite3_column_int(st, 23);
    r->request.ptr = sqlite3_column_blob(st, 24);
    r->request.len = (size_t)sqlite3_column_bytes(st, 24);
    r->response.ptr = sqlite3_column_blob(st, 25);
    r->response.len = (size_t)sqlite3_column_bytes(st, 25);
    r->request_body_sha256 = repro__store_col_text(st, 26);
    r->response_body_sha256 = repro__store_col_text(st, 27);
}

static int sqlite_exchanges(void *impl, const struct repro_exchange_filter *f, int with_bodies,
                            repro_exchange_fn fn, void *ctx, struct repro_error *err)
{
    struct sqlite_store *s = impl;
    struct repro_buf sql, like;
    sqlite3_stmt *st = NULL;
    regex_t re;
    int rc, col = 1, step, have_re = 0;
    int64_t n_rows = 0;

    if (f->n_ids > REPRO_STORE_MAX_ID_RANGES)
        return repro_error_set(err, REPRO_E_LIMIT,
                               "cannot query exchanges: more than %d id ranges",
                               REPRO_STORE_MAX_ID_RANGES);
    if (f->path_regex && (rc = regcomp(&re, f->path_regex, REG_EXTENDED | REG_NOSUB)) != 0) {
        char why[128];
        regerror(rc, &re, why, sizeof why);
        return repro_error_set(err, REPRO_E_INVAL, "cannot use path regex '%.64s': %s",
                               f->path_regex, why);
    }
    have_re = f->path_regex != NULL;
    repro_buf_init(&sql, 4096 + 64 * f->n_ids);
    repro_buf_init(&like, 2 * (size_t)REPRO_STORE_MAX_PATTERN + 2);
    if (repro__sqlite_exchanges_sql(&sql, f, with_bodies) != REPRO_OK) {
        rc = repro_error_set(err, REPRO_E_NOMEM, "cannot build a query: out of memory");
        goto out;
    }
    if (f->path_prefix && (rc = like_pattern(&like, f->path_prefix, err)) != REPRO_OK)
        goto out;
    if (sqlite3_prepare_v2(s->db, (const char *)sql.data, (int)sql.len, &st, NULL) != SQLITE_OK) {
        rc = repro__store_db_error(s, err, "cannot query exchanges");
        goto out;
    }
    if (f->id)
        sqlite3_bind_int64(st, col++, f->id);
    if (f->method)
        sqlite3_bind_text(st, col++, f->method, -1, SQLITE_STATIC);
    if (f->path_prefix)
        sqlite3_bind_text(st, col++, (const char *)like.data, -1, SQLITE_STATIC);
    if (f->host)
        sqlite3_bind_text(st, col++, f->host, -1, SQLITE_STATIC);
    if (f->status)
        sqlite3_bind_int(st, col++, f->status);
    if (f->connection_id)
        sqlite3_bind_int64(st, col++, f->connection_id);
    if (f->capture_id)
        sqlite3_bind_int64(st, col++, f->capture_id);
    /* LIKE is case-insensitive for ASCII by default; paths are not. */
    sqlite3_exec(s->db, "PRAGMA case_sensitive_like=ON", NULL, NULL, NULL);

    rc = REPRO_OK;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct repro_exchange_row r;
        read_exchange_row(st, &r);
        if (have_re && (!r.uri || regexec(&re, r.uri, 0, NULL, 0) != 0))
            continue;
        rc = fn(ctx, &r);
        if (rc)
            goto out;
        if (have_re && f->limit > 0 && ++n_rows == f->limit)
            break;
    }
    if (step != SQLITE_DONE && step != SQLITE_ROW)
        rc = repro__store_db_error(s, err, "cannot read exchanges");
out:
    if (have_re)
        regfree(&re);
    sqlite3_finalize(st);
    repro_buf_release(&like);
    repro_buf_release(&sql);
    return rc;
}

const struct repro_store_ops repro_store_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .set_batch = sqlite_set_batch,
    .flush = repro__store_flush,
    .sync = sqlite_sync,
    .bulk_begin = sqlite_bulk_begin,
    .bulk_end = sqlite_bulk_end,
    .capture_begin = sqlite_capture_begin,
    .capture_end = sqlite_capture_end,
    .captures = sqlite_captures,
    .capture_find = sqlite_capture_find,
    .conn_insert = sqlite_conn_insert,
    .conn_update = sqlite_conn_update,
    .exchange_insert = sqlite_exchange_insert,
    .replay_run_begin = repro__sqlite_replay_run_begin,
    .replay_run_end = repro__sqlite_replay_run_end,
    .replay_result_insert = repro__sqlite_replay_result_insert,
    .replay_runs = repro__sqlite_replay_runs,
    .replay_results = repro__sqlite_replay_results,
    .exchanges = sqlite_exchanges,
    .crash_insert = repro__sqlite_crash_insert,
    .crash_get = repro__sqlite_crash_get,
    .crash_ids = repro__sqlite_crash_ids,
    .crash_in_flight = repro__sqlite_crash_in_flight,
    .crash_group = repro__sqlite_crash_group,
    .crash_set_symbols = repro__sqlite_crash_set_symbols,
    .begin = repro__store_begin,
    .rollback = repro__store_rollback,
    .set_busy_timeout = sqlite_set_busy_timeout,
    .prune = repro__sqlite_prune,
};

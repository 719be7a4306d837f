/*
 * Replay runs and their results in SQLite (tables replay_runs and
 * replay_results, schema version 4, docs/schema.md). Results are batched
 * in the same transactions as exchanges (repro_store_set_batch); ending a
 * run commits them.
 */
#include "store_int.h"

#include <string.h>

int repro__sqlite_replay_run_begin(void *impl, const struct repro_store_replay_run *row, int64_t *id,
                                   struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *st = NULL;
    int rc = repro__store_flush(s, err);

    if (rc == REPRO_OK)
        rc = repro__store_prepare(s,
                                  "INSERT INTO replay_runs(started_us, target, baseline, speed,"
                                  " selection, status) VALUES (?,?,?,?,?,'running')",
                                  &st, err, "cannot record the replay run");
    if (rc != REPRO_OK)
        return rc;
    sqlite3_bind_int64(st, 1, row->started_us);
    sqlite3_bind_text(st, 2, row->target, -1, SQLITE_TRANSIENT);
    repro__store_bind_text(st, 3, row->baseline);
    sqlite3_bind_double(st, 4, row->speed);
    repro__store_bind_text(st, 5, row->selection);
    rc = repro__store_step(s, st, err, "cannot record the replay run");
    sqlite3_finalize(st);
    if (rc == REPRO_OK)
        *id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

int repro__sqlite_replay_run_end(void *impl, int64_t id, const struct repro_store_replay_run_end *row,
                                 struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *st = NULL;
    int rc = repro__store_flush(s, err);

    if (rc == REPRO_OK)
        rc = repro__store_prepare(
            s,
            "UPDATE replay_runs SET ended_us=?, status=?, sent=?, matched=?, mismatched=?,"
            " errors=?, timeouts=?, crashes=?, unanswered=?, duration_s=?, requests_per_s=?,"
            " sched_p50_us=?, sched_p99_us=?, sched_max_us=? WHERE id=?",
            &st, err, "cannot end the replay run");
    if (rc != REPRO_OK)
        return rc;
    sqlite3_bind_int64(st, 1, row->ended_us);
    sqlite3_bind_text(st, 2, row->status, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)row->sent);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)row->matched);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)row->mismatched);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)row->errors);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)row->timeouts);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)row->crashes);
    sqlite3_bind_int64(st, 9, (sqlite3_int64)row->unanswered);
    sqlite3_bind_double(st, 10, row->duration_s);
    sqlite3_bind_double(st, 11, row->requests_per_s);
    sqlite3_bind_double(st, 12, row->sched_p50_us);
    sqlite3_bind_double(st, 13, row->sched_p99_us);
    sqlite3_bind_double(st, 14, row->sched_max_us);
    sqlite3_bind_int64(st, 15, id);
    rc = repro__store_step(s, st, err, "cannot end the replay run");
    if (rc == REPRO_OK && sqlite3_changes(s->db) != 1)
        rc = repro_error_set(err, REPRO_E_NOTFOUND, "cannot end replay run %lld: no such run",
                             (long long)id);
    sqlite3_finalize(st);
    return rc;
}

int repro__sqlite_replay_result_insert(void *impl, const struct repro_store_replay_result *row,
                                       struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *st = s->st[ST_REPLAY_RES_INS];
    int rc = repro__store_batch_open(s, err);

    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, row->run_id);
    sqlite3_bind_int64(st, 2, row->exchange_id);
    sqlite3_bind_int(st, 3, (int)row->loop);
    sqlite3_bind_text(st, 4, row->verdict, -1, SQLITE_STATIC);
    repro__store_bind_text(st, 5, row->error);
    sqlite3_bind_int(st, 6, row->status);
    if (row->latency_us >= 0) {
        sqlite3_bind_double(st, 7, row->latency_us);
        sqlite3_bind_double(st, 8, row->latency_intended_us);
        sqlite3_bind_double(st, 9, row->schedule_error_us);
    }
    repro__store_bind_text(st, 10, row->differences_json);
    repro__store_bind_text(st, 11, row->substitutions_json);
    sqlite3_bind_int(st, 12, row->noise);
    sqlite3_bind_int(st, 13, row->still_redacted);
    sqlite3_bind_int(st, 14, row->reopened);
    if (row->response.len)
        sqlite3_bind_blob(st, 15, row->response.ptr, (int)row->response.len, SQLITE_STATIC);
    rc = repro__store_step(s, st, err, "cannot store a replay result");
    return repro__store_batch_done(s, rc, 1, err);
}

static double col_real(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? -1 : sqlite3_column_double(st, col);
}

int repro__sqlite_replay_runs(void *impl, int64_t id, repro_replay_run_fn fn, void *ctx,
                              struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *st = NULL;
    int rc, step, n = 0;

    rc = repro__store_prepare(
        s,
        "SELECT id, started_us, ended_us, target, baseline, status, selection, speed,"
        " duration_s, requests_per_s, sched_p50_us, sched_p99_us, sched_max_us, sent, matched,"
        " mismatched, errors, timeouts, crashes, unanswered FROM replay_runs"
        " WHERE ?1 = 0 OR id = ?1 ORDER BY id",
        &st, err, "cannot list replay runs");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct repro_replay_run_row r = {
            .id = sqlite3_column_int64(st, 0),
            .started_us = sqlite3_column_int64(st, 1),
            .ended_us = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 2),
            .target = repro__store_col_text(st, 3),
            .baseline = repro__store_col_text(st, 4),
            .status = repro__store_col_text(st, 5),
            .selection = repro__store_col_text(st, 6),
            .speed = sqlite3_column_double(st, 7),
            .duration_s = col_real(st, 8),
            .requests_per_s = col_real(st, 9),
            .sched_p50_us = col_real(st, 10),
            .sched_p99_us = col_real(st, 11),
            .sched_max_us = col_real(st, 12),
            .sent = sqlite3_column_int64(st, 13),
            .matched = sqlite3_column_int64(st, 14),
            .mismatched = sqlite3_column_int64(st, 15),
            .errors = sqlite3_column_int64(st, 16),
            .timeouts = sqlite3_column_int64(st, 17),
            .crashes = sqlite3_column_int64(st, 18),
            .unanswered = sqlite3_column_int64(st, 19)};
        n++;
        if ((rc = fn(ctx, &r)) != 0)
            break;
    }
    if (rc == REPRO_OK && step != SQLITE_DONE)
        rc = repro__store_db_error(s, err, "cannot list replay runs");
    sqlite3_finalize(st);
    if (rc == REPRO_OK && id > 0 && n == 0)
        rc = repro_error_set(err, REPRO_E_NOTFOUND, "no replay run %lld in database '%s'",
                             (long long)id, s->path);
    return rc;
}

int repro__sqlite_replay_results(void *impl, int64_t run_id, int findings_only,
                                 repro_replay_result_row_fn fn, void *ctx, struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *st = NULL;
    int rc, step;

    rc = repro__store_prepare(
        s,
        "SELECT id, run_id, exchange_id, loop, status, noise, still_redacted, reopened, verdict,"
        " error, differences, substitutions, latency_us, latency_intended_us, schedule_error_us,"
        " response FROM replay_results WHERE run_id = ?1 AND (?2 = 0 OR verdict <> 'match')"
        " ORDER BY id",
        &st, err, "cannot list replay results");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int(st, 2, findings_only);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct repro_replay_result_row r = {
            .id = sqlite3_column_int64(st, 0),
            .run_id = sqlite3_column_int64(st, 1),
            .exchange_id = sqlite3_column_int64(st, 2),
            .loop = sqlite3_column_int(st, 3),
            .status = sqlite3_column_int(st, 4),
            .noise = sqlite3_column_int(st, 5),
            .still_redacted = sqlite3_column_int(st, 6),
            .reopened = sqlite3_column_int(st, 7),
            .verdict = repro__store_col_text(st, 8),
            .error = repro__store_col_text(st, 9),
            .differences_json = repro__store_col_text(st, 10),
            .substitutions_json = repro__store_col_text(st, 11),
            .latency_us = col_real(st, 12),
            .latency_intended_us = col_real(st, 13),
            .schedule_error_us = col_real(st, 14)};
        r.response.ptr = sqlite3_column_blob(st, 15);
        r.response.len = (size_t)sqlite3_column_bytes(st, 15);
        if ((rc = fn(ctx, &r)) != 0)
            break;
    }
    if (rc == REPRO_OK && step != SQLITE_DONE)
        rc = repro__store_db_error(s, err, "cannot list replay results");
    sqlite3_finalize(st);
    return rc;
}

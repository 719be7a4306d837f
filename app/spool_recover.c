/*
 * app/spool_recover: finds the spools live agents on a database left
 * behind and parses them into the current capture (app/spool_recover.h).
 *
 * Which files: "<db base name>.spool.<digits>" in the database's directory
 * (a directory the agent checked no other user can write to,
 * app/privilege.c), regular files only, opened without following links.
 * Which are left: each agent holds an exclusive flock() on its own spool
 * while it lives, so a spool whose lock is taken belongs to a running
 * agent; the lock is tried without waiting. A file unlinked by another
 * recovery between our open and our lock is seen by its link count.
 */
#include "app/spool_recover.h"

#include "app/capture_live.h"
#include "app/privilege.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

void repro_app_spool_name(const char *db, int64_t capture_id, char *out, size_t out_len)
{
    snprintf(out, out_len, "%s.spool.%" PRId64 ".%ld", base_of(db), capture_id, (long)getpid());
}

/* Whether name is "<base>.spool.<digits>.<digits>"; *capture_id gets the
 * first digits (the order spools are recovered in). */
static int is_spool_of(const char *name, const char *base, int64_t *capture_id)
{
    size_t n = strlen(base);
    const char *p;
    char *end;

    if (strncmp(name, base, n) != 0 || strncmp(name + n, ".spool.", 7) != 0)
        return 0;
    p = name + n + 7;
    if (*p < '0' || *p > '9')
        return 0;
    errno = 0;
    *capture_id = (int64_t)strtoll(p, &end, 10);
    if (errno || *end != '.' || end[1] == '\0')
        return 0;
    for (p = end + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}

/* Feeds one spool's unread batches to cap. Returns 0 (recovered, or left
 * with a warning: *removable says which) or the sink's error. */
static int recover_one(int fd, const char *path, int announce, struct repro_capture *cap, int dlt,
                       FILE *log, struct repro_app_recovery *out, struct repro_spool_info *infop,
                       int *removable, struct repro_error *err)
{
    struct repro_spool_recovery *rc = NULL;
    struct repro_spool_info info;
    struct repro_spool_recovery_stats st;
    struct repro_error e = {0};
    const struct repro_packet_batch *b;
    uint64_t fed = 0;
    int sink_rc = 0, stopped;

    *removable = 0;
    memset(infop, 0, sizeof *infop);
    if (repro_spool_recovery_open(fd, path, &rc, &info, &e) != REPRO_OK) {
        if (log)
            fprintf(log, "repro: warning: %s; left in place\n", e.msg);
        return 0;
    }
    if (info.dlt != dlt) {
        if (log)
            fprintf(log,
                    "repro: warning: spool %s holds packets of link type %d (capture %" PRId64
                    "), this capture reads link type %d: left in place; a capture on an "
                    "interface of that link type recovers it\n",
                    path, info.dlt, info.capture_id, dlt);
        repro_spool_recovery_free(rc);
        return 0;
    }
    if (log && announce) { /* it may take seconds */
        char when[32] = "?";
        time_t t = (time_t)(info.created_us / 1000000);
        struct tm tm;
        if (gmtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(log,
                "repro: recovering spool %s, left by capture %" PRId64 " (pid %u, started %s)\n",
                path, info.capture_id, info.pid, when);
        fflush(log);
    }
    /* each batch fed is marked read at once: a recovery cut short (a stop,
     * another crash) goes on where it was, as the live agent does */
    while (!(stopped = repro_app_live_stop_requested()) && repro_spool_recovery_next(rc, &b) == 1) {
        if ((sink_rc = repro_app_feed_batch(cap, dlt, b, 0, &fed, err)) != 0)
            break;
        repro_spool_recovery_mark_read(rc); /* if it cannot: parsed again next time */
    }
    repro_spool_recovery_stats(rc, &st);
    out->packets += st.packets;
    out->bytes += st.bytes;
    out->skipped_bytes += st.bad_bytes + st.torn_bytes;
    *infop = info;
    if (log && (st.packets || st.read_batches || st.bad_batches || st.torn_bytes)) {
        fprintf(log,
                "repro: recovered %" PRIu64 " packets (%.1f MiB) of capture %" PRId64
                " from its spool; %" PRIu64 " batches had been parsed before it ended",
                st.packets, repro_mib(st.bytes), info.capture_id, st.read_batches);
        if (st.bad_batches || st.torn_bytes)
            fprintf(log, "; skipped %" PRIu64 " damaged batches and %.1f MiB: %s", st.bad_batches,
                    repro_mib(st.bad_bytes + st.torn_bytes), repro_spool_recovery_problem(rc));
        fputc('\n', log);
        fflush(log);
    }
    if (stopped && log)
        fprintf(log, "repro: stopped while recovering; the rest of %s is recovered by the next "
                     "capture -i on the database\n", path);
    repro_spool_recovery_free(rc);
    *removable = sink_rc == 0 && !stopped;
    return sink_rc;
}

struct find_row {
    int64_t id, created_us;
    int running; /* a live capture, started before the spool, still "running" */
};

static int find_row(void *ctx, const struct repro_capture_row *row)
{
    struct find_row *f = ctx;

    if (row->id == f->id)
        f->running = strcmp(row->status, "running") == 0 &&
                     strcmp(row->source_kind, "live") == 0 && row->started_us <= f->created_us;
    return 0;
}

/* Ends the killed agent's captures row, if it still says "running" (a
 * live capture started before its spool): "failed", saying where its
 * packets went. Its own handle on db, next to the writer's. */
static void end_killed(const char *db, const struct repro_spool_info *info, uint64_t packets,
                       int64_t into_id, FILE *log)
{
    struct repro_store *store = NULL;
    struct find_row f = {info->capture_id, info->created_us, 0};
    struct repro_error err = {0};
    char why[256];
    struct repro_store_capture_end end = {"failed", NULL, 0, why};

    if (repro_store_open(db, 0, &store, &err) == REPRO_OK &&
        repro_store_captures(store, find_row, &f, &err) == REPRO_OK && f.running) {
        snprintf(why, sizeof why,
                 "the agent ended without finishing (kill -9, a power cut or a crash); %" PRIu64
                 " packets it had not parsed were recovered from its spool into capture %" PRId64,
                 packets, into_id);
        repro_store_capture_end(store, info->capture_id, &end, &err);
    }
    if (err.code && log)
        fprintf(log, "repro: warning: cannot end capture %" PRId64 ": %s\n", info->capture_id,
                err.msg);
    repro_store_close(store);
}

struct candidate {
    int64_t capture_id;
    char name[256];
};

static int by_capture(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;

    if (x->capture_id != y->capture_id)
        return x->capture_id < y->capture_id ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The spools of db in directory d, oldest capture first, in *out (to
 * free); their count, or 0 (also when out of memory: none recovered). */
static size_t find_spools(DIR *d, const char *base, struct candidate **out)
{
    struct dirent *de;
    size_t n = 0, cap = 0;
    int64_t id;

    *out = NULL;
    while ((de = readdir(d)) != NULL) {
        if (!is_spool_of(de->d_name, base, &id) || strlen(de->d_name) >= sizeof (*out)->name)
            continue;
        if (n == cap) {
            size_t more = cap ? cap * 2 : 16;
            struct candidate *grown = repro_realloc(*out, more * sizeof *grown);
            if (grown == NULL)
                break;
            *out = grown;
            cap = more;
        }
        (*out)[n].capture_id = id;
        snprintf((*out)[n].name, sizeof (*out)[n].name, "%s", de->d_name);
        n++;
    }
    if (n)
        qsort(*out, n, sizeof **out, by_capture);
    return n;
}

/* At most this many spools are recovered per start (the oldest). */
#define MAX_SPOOLS 64

int repro_app_recover_spools(const char *db, struct repro_capture *cap, int dlt, int64_t into_id,
                             struct repro_store_writer *writer, FILE *log,
                             struct repro_app_recovery *out, struct repro_error *err)
{
    char dir[4096], path[4096 + 256];
    struct candidate *found;
    DIR *d;
    size_t n;
    int rc = 0;

    memset(out, 0, sizeof *out);
    repro_app_dir_of(db, dir, sizeof dir);
    d = opendir(dir);
    if (d == NULL)
        return 0; /* nothing to recover where nothing can be listed */
    n = find_spools(d, base_of(db), &found);
    if (n > MAX_SPOOLS && log)
        fprintf(log, "repro: warning: %zu spools in %s; the %zu newest are left for the next "
                     "capture\n", n, dir, n - MAX_SPOOLS);
    for (size_t i = 0; rc == 0 && i < n && i < MAX_SPOOLS; i++) {
        struct repro_spool_info info;
        struct stat sb;
        uint64_t before = out->packets;
        int fd, removable = 0;


        snprintf(path, sizeof path, "%s/%s", dir, found[i].name);
        fd = openat(dirfd(d), found[i].name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
            if (errno != ENOENT && log) /* ENOENT: recovered by another meanwhile */
                fprintf(log, "repro: warning: cannot open spool %s: %s; left in place\n", path,
                        strerror(errno));
            continue;
        }
        if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || flock(fd, LOCK_EX | LOCK_NB) != 0 ||
            fstat(fd, &sb) != 0 || sb.st_nlink == 0) {
            /* not a file, a running agent's own, or just recovered by another */
            close(fd);
            continue;
        }
        rc = recover_one(fd, path, sb.st_size > 64, cap, dlt, log, out, &info, &removable, err);
        /* what was parsed is committed before the row says so and the
         * file goes (a stop interrupts the wait for a locked database) */
        if (removable && (rc = repro_store_writer_flush(writer, err)) != 0)
            removable = 0;
        if (removable) {
            if (info.capture_id)
                end_killed(db, &info, out->packets - before, into_id, log);
            unlinkat(dirfd(d), found[i].name, 0);
            out->spools++;
        }
        close(fd);
    }
    repro_free(found);
    closedir(d);
    return rc;
}

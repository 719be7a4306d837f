/*
 * app/ingest: crash records into the store — the spool directory that
 * librepro_crash.so writes (docs/crash-record.md) and core files.
 *
 * Each *.rcr file of the directory, in name order, is read, stored in one
 * transaction and removed only after that transaction committed, so running
 * it again stores nothing twice (the record key makes the insert
 * idempotent). A damaged record is reported with its file and line, stored
 * as a partial crash when part of it could be read, and moved to
 * DIR/damaged/ — never deleted. A .tmp file whose writer died is treated as
 * a damaged record. One ingest per directory at a time (flock).
 */
#include "app/ingest.h"

#include "app/crash_rows.h"
#include "app/symbolize_store.h"
#include "repro/crash.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RECORD_MAX_BYTES ((size_t)16 << 20)
#define MAX_FILES_PER_RUN 100000
#define STALE_TMP_S 10

struct ingest_run {
    struct repro_store *store;
    const char *dir;
    int damaged_dir_ready;
    struct repro_app_ingest_result *res;
    FILE *out, *log;
};

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Writes "a/b" (and suffix) into out; -1 when it does not fit. */
static int join(char *out, size_t cap, const char *a, const char *b, int suffix)
{
    int n = suffix > 0 ? snprintf(out, cap, "%s/%s.%d", a, b, suffix)
                       : snprintf(out, cap, "%s/%s", a, b);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* A crash-PID-TID-TOKEN.tmp file whose process is gone and that nobody has
 * written for a while: its writer died in the middle of the record. */
static int abandoned_tmp(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    long pid;
    char *end;

    if (strncmp(name, "crash-", 6) != 0 || !has_suffix(name, ".tmp"))
        return 0;
    errno = 0;
    pid = strtol(name + 6, &end, 10);
    if (errno || end == name + 6 || *end != '-' || pid <= 0)
        return 0;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
        return 0;
    if (join(path, sizeof path, dir, name, 0) != 0)
        return 0;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && time(NULL) - st.st_mtime >= STALE_TMP_S;
}

/* Lists the records of dir in name order (transferred: free each name and
 * the array). */
static int list_records(const char *dir, char ***names, size_t *n, struct repro_error *err)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t cap = 0;

    *names = NULL;
    *n = 0;
    if (d == NULL)
        return repro_error_sys(err, REPRO_E_IO, "cannot open crash directory '%s': %s", dir,
                               strerror(errno));
    while ((e = readdir(d)) != NULL && *n < MAX_FILES_PER_RUN) {
        char **grown, path[4096];
        struct stat st;
        if (e->d_name[0] == '.' ||
            !(has_suffix(e->d_name, ".rcr") || abandoned_tmp(dir, e->d_name)))
            continue;
        /* Directories are not records; anything else named like one (a
         * symbolic link, a FIFO) is a damaged record and is moved aside. */
        if (join(path, sizeof path, dir, e->d_name, 0) != 0 || lstat(path, &st) != 0 ||
            S_ISDIR(st.st_mode))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            grown = realloc(*names, cap * sizeof *grown);
            if (grown == NULL)
                break;
            *names = grown;
        }
        if (((*names)[*n] = strdup(e->d_name)) == NULL)
            break;
        (*n)++;
    }
    closedir(d);
    if (e != NULL && *n < MAX_FILES_PER_RUN)
        return repro_error_set(err, REPRO_E_NOMEM,
                               "cannot list crash directory '%s': out of memory", dir);
    if (*n > 0)
        qsort(*names, *n, sizeof **names, by_name);
    return REPRO_OK;
}

/* Reads a whole record file, at most RECORD_MAX_BYTES (transferred).
 * Anything but a regular file is refused before it is opened (no FIFO is
 * waited on, no device opened), and the open never blocks nor follows a
 * symbolic link. */
static int read_record(const char *path, unsigned char **data, size_t *len, struct repro_error *err)
{
    struct stat st;
    size_t got = 0;
    int fd;

    *data = NULL;
    *len = 0;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
        return repro_error_set(err, REPRO_E_MALFORMED, "crash record '%s' is not a regular file",
                               path);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ELOOP)
        return repro_error_set(err, REPRO_E_MALFORMED, "crash record '%s' is a symbolic link",
                               path);
    if (fd < 0)
        return repro_error_sys(err, REPRO_E_IO, "cannot open crash record '%s': %s", path,
                               strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return repro_error_set(err, REPRO_E_MALFORMED, "crash record '%s' is not a regular file",
                               path);
    }
    if ((uint64_t)st.st_size > RECORD_MAX_BYTES) {
        close(fd);
        return repro_error_set(err, REPRO_E_MALFORMED,
                               "crash record '%s' is larger than 16 MiB (%lld bytes)", path,
                               (long long)st.st_size);
    }
    *data = malloc((size_t)st.st_size + 1);
    if (*data == NULL) {
        close(fd);
        return repro_error_set(err, REPRO_E_NOMEM, "cannot read crash record '%s': out of memory",
                               path);
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, *data + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            repro_error_sys(err, REPRO_E_IO, "cannot read crash record '%s': %s", path,
                            strerror(errno));
            close(fd);
            free(*data);
            *data = NULL;
            return REPRO_E_IO;
        }
        if (r == 0)
            break; /* shrank meanwhile: parse what is there */
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    return REPRO_OK;
}

/* Moves DIR/name to DIR/damaged/name (name.1, name.2, ... when taken),
 * never overwriting anything. */
static int move_aside(struct ingest_run *run, const char *name, char *dest, size_t dest_len,
                      struct repro_error *err)
{
    char src[4096], damaged[4096];
    int i;

    if (join(src, sizeof src, run->dir, name, 0) != 0 ||
        join(damaged, sizeof damaged, run->dir, "damaged", 0) != 0)
        return repro_error_set(err, REPRO_E_IO, "cannot move '%s' aside: path too long", name);
    if (!run->damaged_dir_ready) {
        if (mkdir(damaged, 0700) != 0 && errno != EEXIST)
            return repro_error_sys(err, REPRO_E_IO, "cannot create '%s': %s", damaged,
                                   strerror(errno));
        run->damaged_dir_ready = 1;
    }
    for (i = 0; i < 1000; i++) {
        if (join(dest, dest_len, damaged, name, i) != 0)
            return repro_error_set(err, REPRO_E_IO, "cannot move '%s' aside: path too long", src);
        if (link(src, dest) == 0) {
            if (unlink(src) != 0)
                return repro_error_sys(err, REPRO_E_IO,
                                       "cannot remove '%s' after copying it to '%s': %s", src, dest,
                                       strerror(errno));
            return REPRO_OK;
        }
        if (errno != EEXIST)
            return repro_error_sys(err, REPRO_E_IO, "cannot move '%s' to '%s': %s", src, dest,
                                   strerror(errno));
    }
    return repro_error_set(err, REPRO_E_IO, "cannot move '%s' aside: 1000 names taken in '%s'", src,
                           damaged);
}

/* Symbolizes a just-stored crash when the debug information is at hand;
 * what is missing is said, and the crash stays stored either way. */
static void symbolize_stored(struct repro_store *store, int64_t id, FILE *log)
{
    struct repro_error err = {0};
    if (repro_app_symbolize_crashes(store, &id, 1, NULL, 0, 0, log, &err) != REPRO_OK && log)
        fprintf(log, "repro: ingest: crash %lld stored, not symbolized: %s\n", (long long)id, err.msg);
}

static void print_stored(FILE *out, int64_t id, const char *what, const struct repro_crash *c)
{
    char sigbuf[16], pid[16] = "unknown";
    if (out == NULL)
        return;
    if (c->pid > 0)
        snprintf(pid, sizeof pid, "%d", c->pid);
    fprintf(out, "stored crash %lld from %s (%s, pid %s%s%s)\n", (long long)id, what,
           c->signo ? repro_signal_name(c->signo, sigbuf, sizeof sigbuf) : "signal unknown", pid,
           c->partial ? ", partial: " : "", c->partial ? c->partial_reason : "");
}

/* Ingests one file. Returns REPRO_OK to go on (damage is counted, not
 * fatal) or a fatal error code. */
static int ingest_one(struct ingest_run *run, const char *name, struct repro_error *err)
{
    struct repro_error perr = {0};
    struct repro_crash *c = NULL;
    unsigned char *data = NULL;
    size_t len = 0;
    char path[4096], dest[4096];
    char stored[64] = "";
    int64_t id = 0;
    int rc, prc;

    if (join(path, sizeof path, run->dir, name, 0) != 0)
        return repro_error_set(err, REPRO_E_IO, "crash record path '%s/%s' is too long", run->dir,
                               name);
    prc = read_record(path, &data, &len, &perr);
    if (prc == REPRO_E_IO || prc == REPRO_E_NOMEM) {
        repro_error_set(err, prc, "%s", perr.msg);
        return prc;
    }
    if (prc == REPRO_OK)
        prc = repro_crash_file_parse(data, len, &c, &perr);
    free(data);
    if (prc == REPRO_E_NOMEM) {
        repro_error_set(err, prc, "%s", perr.msg);
        return prc;
    }
    if (prc == REPRO_E_UNSUPPORTED) {
        if (run->log)
            fprintf(run->log, "repro: ingest: '%s': %s; left in place\n", path, perr.msg);
        run->res->unsupported++;
        return REPRO_OK;
    }
    if (c != NULL) {
        char key[256];
        repro_crash_resolve_modules(c);
        /* The same record always gets the same key: a retry after a crash
         * between commit and unlink stores nothing twice. */
        snprintf(key, sizeof key, "inproc:%s:%d:%d:%lld:%s", c->hostname ? c->hostname : "",
                 c->pid, c->tid, (long long)c->time_us, name);
        if (repro_crash_set_str(&c->record_key, key) != REPRO_OK) {
            repro_crash_free(c);
            return repro_error_set(err, REPRO_E_NOMEM, "cannot ingest '%s': out of memory", path);
        }
        rc = repro_app_store_crash(run->store, c, &id, err);
        if (rc != REPRO_OK) {
            repro_crash_free(c);
            repro_error_prefix(err, "crash record '%s': ", path);
            return rc;
        }
        print_stored(run->out, id, name, c);
        symbolize_stored(run->store, id, run->log);
        snprintf(stored, sizeof stored, "stored as crash %lld%s, ", (long long)id,
                 c->partial ? " (partial)" : "");
        run->res->stored++;
        run->res->partial += c->partial != 0;
        repro_crash_free(c);
    }
    /* A whole record goes once its transaction has committed. */
    if (prc == REPRO_OK && has_suffix(name, ".rcr")) {
        if (unlink(path) != 0) {
            return repro_error_sys(err, REPRO_E_IO,
                                   "crash record '%s' is stored as crash %lld but cannot be "
                                   "removed: %s",
                                   path, (long long)id, strerror(errno));
        }
        return REPRO_OK;
    }
    /* Anything else is kept aside, stored or not. */
    if (prc == REPRO_OK)
        repro_error_set(&perr, REPRO_E_MALFORMED, "abandoned record: its writer died");
    run->res->damaged++;
    rc = move_aside(run, name, dest, sizeof dest, err);
    if (run->log)
        fprintf(run->log, "repro: ingest: damaged crash record '%s': %s; %s%s%s%s\n", path, perr.msg, stored,
            rc == REPRO_OK ? "moved to '" : "could not be moved aside", rc == REPRO_OK ? dest : "",
            rc == REPRO_OK ? "'" : "");
    return rc;
}

int repro_app_ingest_dir(const char *db, const char *dir, FILE *out, FILE *log,
                        struct repro_app_ingest_result *res, struct repro_error *err)
{
    struct ingest_run run;
    struct stat st;
    char **names = NULL;
    size_t n = 0, i;
    int lock_fd = -1, rc;

    memset(res, 0, sizeof *res);
    memset(&run, 0, sizeof run);
    run.dir = dir;
    run.res = res;
    run.out = out;
    run.log = log;
    /* One ingest per directory at a time, or two could store a record twice. */
    lock_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock_fd < 0) {
        rc = repro_error_sys(err, REPRO_E_IO, "cannot open crash directory '%s': %s", dir,
                             strerror(errno));
        goto out;
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = repro_error_sys(err, REPRO_E_IO,
                             "cannot ingest '%s': another repro ingest is working on it", dir);
        goto out;
    }
    /* The agent refuses such a directory: what is in it may be forged. */
    if (fstat(lock_fd, &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) && log)
        fprintf(log,
                "repro: warning: crash directory '%s' is writable by group or others: its records "
                "may have been written by anyone (see docs/crash-record.md)\n",
                dir);
    if ((rc = list_records(dir, &names, &n, err)) != REPRO_OK)
        goto out;
    res->n_records = n;
    if ((rc = repro_store_open(db, 0, &run.store, err)) != REPRO_OK)
        goto out;
    for (i = 0; i < n; i++)
        if ((rc = ingest_one(&run, names[i], err)) != REPRO_OK)
            goto out;
    if (n == MAX_FILES_PER_RUN && log)
        fprintf(log, "repro: ingest '%s': stopped after %d records, run again for the rest\n",
                dir, MAX_FILES_PER_RUN);
out:
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    repro_store_close(run.store);
    if (lock_fd >= 0)
        close(lock_fd);
    return rc;
}

int repro_app_ingest_core(const char *db, const char *core, const char *exe, FILE *out,
                          FILE *log, int *partial, struct repro_error *err)
{
    struct repro_store *store = NULL;
    struct repro_crash *c = NULL;
    int64_t id;
    int rc;

    *partial = 0;
    rc = repro_core_import(core, exe, &c, err);
    if (c == NULL)
        return rc ? rc : repro_error_set(err, REPRO_E_INVAL, "core '%s' gave no crash", core);
    if (rc != REPRO_OK) {
        if (log)
            fprintf(log, "repro: ingest: %s; storing what was read as partial\n", err->msg);
        repro_crash_mark_partial(c, "%s", err->msg);
        repro_error_clear(err);
    }
    if ((rc = repro_store_open(db, 0, &store, err)) == REPRO_OK &&
        (rc = repro_app_store_crash(store, c, &id, err)) == REPRO_OK) {
        print_stored(out, id, core, c);
        symbolize_stored(store, id, log);
        *partial = c->partial != 0;
    }
    repro_store_close(store);
    repro_crash_free(c);
    return rc;
}

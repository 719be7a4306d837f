/*
 * repro ingest [--db PATH] DIR
 * repro ingest --core CORE --exe BINARY [--db PATH]
 *
 * The first form moves the crash records that librepro_crash.so wrote into
 * DIR (docs/crash-record.md) into the database: each *.rcr file, in name
 * order, is read, stored in one transaction and removed only after that
 * transaction committed, so running it again stores nothing twice. A
 * damaged record is reported with its file and line, stored as a partial
 * crash when part of it could be read, and moved to DIR/damaged/ — never
 * deleted. A .tmp file whose writer died (see docs/crash-record.md) is
 * treated as a damaged record. The second form imports a core file.
 *
 * Exit: 0 every record read whole and stored (a record may still be a
 * partial crash, for example a stack cut at 256 frames); 1 some records
 * damaged or of an unknown version (the rest stored); 2 fatal (database,
 * I/O); 64 usage. --core: 1 when the core gave a partial crash.
 */
#include "cli.h"
#include "repro/crash.h"
#include "repro/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RECORD_MAX_BYTES ((size_t)16 << 20)
#define MAX_FILES_PER_RUN 100000
#define STALE_TMP_S 10

static void help(void)
{
    printf("usage: repro ingest [--db PATH] DIR\n"
           "       repro ingest --core CORE --exe BINARY [--db PATH]\n"
           "Moves the crash records that librepro_crash.so wrote into DIR (its\n"
           "REPRO_CRASH_DIR) into the database, oldest name first; a record is removed\n"
           "once it is stored. Damaged records are reported, stored as partial crashes\n"
           "when part of them is readable, and moved to DIR/damaged/.\n"
           "--core imports a core file of BINARY instead.\n"
           "Exit: 0 clean, 1 some records damaged (or a partial core), 2 error, 64 usage.\n");
}

struct ingest_run {
    struct repro_store *store;
    const char *dir;
    int damaged_dir_ready;
    unsigned stored, damaged, partial, unsupported;
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
static void symbolize_stored(struct repro_store *store, int64_t id)
{
    struct repro_error err = {0};
    if (cli_symbolize_crashes(store, &id, 1, NULL, 0, 0, &err) != REPRO_OK)
        fprintf(stderr, "repro: crash %lld stored, not symbolized: %s\n", (long long)id, err.msg);
}

static void print_stored(int64_t id, const char *what, const struct repro_crash *c)
{
    char sigbuf[16], pid[16] = "unknown";
    if (c->pid > 0)
        snprintf(pid, sizeof pid, "%d", c->pid);
    printf("stored crash %lld from %s (%s, pid %s%s%s)\n", (long long)id, what,
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
        fprintf(stderr, "repro: '%s': %s; left in place\n", path, perr.msg);
        run->unsupported++;
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
        rc = repro_store_crash_insert(run->store, c, &id, err);
        if (rc != REPRO_OK) {
            repro_crash_free(c);
            repro_error_prefix(err, "crash record '%s': ", path);
            return rc;
        }
        print_stored(id, name, c);
        symbolize_stored(run->store, id);
        snprintf(stored, sizeof stored, "stored as crash %lld%s, ", (long long)id,
                 c->partial ? " (partial)" : "");
        run->stored++;
        run->partial += c->partial != 0;
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
    run->damaged++;
    rc = move_aside(run, name, dest, sizeof dest, err);
    fprintf(stderr, "repro: damaged crash record '%s': %s; %s%s%s%s\n", path, perr.msg, stored,
            rc == REPRO_OK ? "moved to '" : "could not be moved aside", rc == REPRO_OK ? dest : "",
            rc == REPRO_OK ? "'" : "");
    return rc;
}

static int ingest_dir(struct cli_global *g, const char *dir)
{
    struct repro_error err = {0};
    struct ingest_run run;
    struct stat st;
    char **names = NULL;
    size_t n = 0, i;
    int lock_fd = -1, rc, exit_code = EXIT_FATAL;

    memset(&run, 0, sizeof run);
    run.dir = dir;
    /* One ingest per directory at a time, or two could store a record twice. */
    lock_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock_fd < 0) {
        repro_error_sys(&err, REPRO_E_IO, "cannot open crash directory '%s': %s", dir,
                        strerror(errno));
        goto out;
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        repro_error_sys(&err, REPRO_E_IO,
                        "cannot ingest '%s': another repro ingest is working on it", dir);
        goto out;
    }
    /* The agent refuses such a directory: what is in it may be forged. */
    if (fstat(lock_fd, &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)))
        fprintf(stderr,
                "repro: warning: crash directory '%s' is writable by group or others: its records "
                "may have been written by anyone (see docs/crash-record.md)\n",
                dir);
    if ((rc = list_records(dir, &names, &n, &err)) != REPRO_OK)
        goto out;
    if (repro_store_open(g->db, 0, &run.store, &err) != REPRO_OK)
        goto out;
    for (i = 0; i < n; i++)
        if ((rc = ingest_one(&run, names[i], &err)) != REPRO_OK)
            goto out;
    if (n == MAX_FILES_PER_RUN)
        fprintf(stderr, "repro: ingest '%s': stopped after %d records, run again for the rest\n",
                dir, MAX_FILES_PER_RUN);
    exit_code = run.damaged || run.unsupported ? EXIT_FINDINGS : EXIT_CLEAN;
out:
    if (err.code)
        cli_fail(&err);
    if (n > 0 || err.code)
        fprintf(stderr,
                "repro: ingest '%s': %u stored (%u partial), %u damaged, %u of an unknown "
                "version\n",
                dir, run.stored, run.partial, run.damaged, run.unsupported);
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    repro_store_close(run.store);
    if (lock_fd >= 0)
        close(lock_fd);
    return exit_code;
}

static int ingest_core(struct cli_global *g, const char *core, const char *exe)
{
    struct repro_error err = {0};
    struct repro_store *store = NULL;
    struct repro_crash *c = NULL;
    int64_t id;
    int rc, exit_code = EXIT_FATAL;

    rc = repro_core_import(core, exe, &c, &err);
    if (c == NULL) {
        if (rc == REPRO_OK)
            repro_error_set(&err, REPRO_E_INVAL, "core '%s' gave no crash", core);
        return cli_fail(&err);
    }
    if (rc != REPRO_OK) {
        fprintf(stderr, "repro: %s; storing what was read as partial\n", err.msg);
        repro_crash_mark_partial(c, "%s", err.msg);
        repro_error_clear(&err);
    }
    if (repro_store_open(g->db, 0, &store, &err) == REPRO_OK &&
        repro_store_crash_insert(store, c, &id, &err) == REPRO_OK) {
        print_stored(id, core, c);
        symbolize_stored(store, id);
        exit_code = c->partial ? EXIT_FINDINGS : EXIT_CLEAN;
    }
    if (err.code)
        cli_fail(&err);
    repro_store_close(store);
    repro_crash_free(c);
    return exit_code;
}

int cmd_ingest(struct cli_global *g, int argc, char **argv)
{
    enum { O_CORE = 1, O_EXE };
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"core", required_argument, NULL, O_CORE},
                                             {"exe", required_argument, NULL, O_EXE},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *core = NULL, *exe = NULL;
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        switch (opt) {
        case O_CORE: core = optarg; break;
        case O_EXE: exe = optarg; break;
        case 'h': help(); return EXIT_CLEAN;
        default: return EXIT_USAGE;
        }
    }
    if (core || exe) {
        if (core == NULL || exe == NULL)
            return cli_usage_error("ingest", "--core and --exe go together");
        if (optind < argc)
            return cli_usage_error("ingest", "--core takes no directory ('%s')", argv[optind]);
        return ingest_core(g, core, exe);
    }
    if (optind + 1 != argc)
        return cli_usage_error("ingest", "%s",
                               optind == argc ? "give the crash directory"
                                              : "give exactly one crash directory");
    return ingest_dir(g, argv[optind]);
}

/*
 * Least privilege for the live capture agent: after the interface is open
 * it needs neither root nor CAP_NET_RAW, so it gives them up the way
 * tcpdump -Z does (look the user up, initgroups, setgid, setuid, and check
 * that root cannot come back), or, started without root but with
 * capabilities, drops every capability. And it refuses a database
 * directory that another user could write.
 *
 * Deliberately left out: chroot (SQLite needs its directory and /dev),
 * seccomp filters, and checking the directories above the database's (a
 * sticky /tmp above a private directory is safe; anything stricter would
 * refuse common layouts).
 */
#include "app/privilege.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- capabilities (no libcap: two system calls) ------------------------- */

/* The capability sets of the calling thread. */
static int caps_get(struct __user_cap_data_struct d[2])
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    memset(d, 0, 2 * sizeof *d);
    return (int)syscall(SYS_capget, &h, d);
}

static int caps_held(void)
{
    struct __user_cap_data_struct d[2];
    if (caps_get(d) != 0)
        return 0;
    return (d[0].effective | d[0].permitted | d[0].inheritable | d[1].effective |
            d[1].permitted | d[1].inheritable) != 0;
}

/* Threads of this process ("Threads:" of /proc/self/status), 0 if unknown. */
static long thread_count(void)
{
    char line[128];
    long n = 0;
    FILE *f = fopen("/proc/self/status", "re");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "Threads:", 8) == 0)
            n = strtol(line + 8, NULL, 10);
    fclose(f);
    return n;
}

static int drop_caps(struct repro_error *err)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    long threads;

    if (!caps_held())
        return REPRO_OK;
    threads = thread_count();
    if (threads > 1)
        return repro_error_set(err, REPRO_E_INVAL,
                               "cannot drop capabilities: %ld threads run and capabilities "
                               "belong to each thread (drop them before starting threads)",
                               threads);
    /* Ambient capabilities would come back in a program run later. */
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    memset(d, 0, sizeof d);
    if (syscall(SYS_capset, &h, d) != 0)
        return repro_error_sys(err, REPRO_E_IO, "cannot drop capabilities: capset: %s",
                               strerror(errno));
    if (caps_held())
        return repro_error_set(err, REPRO_E_IO, "cannot drop capabilities: some are still held");
    return REPRO_OK;
}

/* ---- the user switch ------------------------------------------------------ */

struct who {
    uid_t uid;
    gid_t gid;
    char name[256];
};

static int lookup_user(const char *user, struct who *w, struct repro_error *err)
{
    struct passwd pw, *res = NULL;
    long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
    size_t len = hint > 0 ? (size_t)hint : 16384;
    char *buf = NULL;
    int rc;

    for (;;) {
        char *nb = repro_realloc(buf, len);
        if (nb == NULL) {
            repro_free(buf);
            return repro_error_set(err, REPRO_E_NOMEM, "cannot look up user '%s': out of memory",
                                   user);
        }
        buf = nb;
        rc = getpwnam_r(user, &pw, buf, len, &res);
        if (rc != ERANGE || len >= (1u << 20))
            break;
        len *= 2;
    }
    if (rc == 0 && res != NULL) {
        w->uid = pw.pw_uid;
        w->gid = pw.pw_gid;
        snprintf(w->name, sizeof w->name, "%s", pw.pw_name);
    }
    repro_free(buf);
    if (rc != 0) {
        errno = rc;
        return repro_error_sys(err, REPRO_E_IO, "cannot look up user '%s': %s", user,
                               strerror(rc));
    }
    if (res == NULL)
        return repro_error_set(err, REPRO_E_NOTFOUND,
                               "cannot drop privileges to user '%s': no such user", user);
    return REPRO_OK;
}

/* root -> w, then proof that it cannot be undone. */
static int switch_user(const char *user, const struct who *w, struct repro_error *err)
{
    const char *call = NULL;

    if (initgroups(w->name, w->gid) != 0)
        call = "initgroups";
    else if (setgid(w->gid) != 0)
        call = "setgid";
    else if (setuid(w->uid) != 0)
        call = "setuid";
    if (call != NULL)
        return repro_error_sys(err, REPRO_E_IO, "cannot drop privileges to user '%s': %s: %s",
                               user, call, strerror(errno));
    if (getuid() != w->uid || geteuid() != w->uid || getgid() != w->gid || getegid() != w->gid)
        return repro_error_set(err, REPRO_E_IO,
                               "cannot drop privileges to user '%s': ids did not change", user);
    if (setuid(0) == 0 || seteuid(0) == 0)
        return repro_error_set(err, REPRO_E_IO,
                               "cannot drop privileges to user '%s': root could be regained",
                               user);
    if (caps_held())
        return repro_error_set(err, REPRO_E_IO,
                               "cannot drop privileges to user '%s': capabilities are still held",
                               user);
    return REPRO_OK;
}

int repro_app_drop_privileges(const char *user, struct repro_error *err)
{
    struct who w;
    int rc;

    if (user == NULL || user[0] == '\0')
        return geteuid() == 0 ? REPRO_OK : drop_caps(err);
    if ((rc = lookup_user(user, &w, err)) != REPRO_OK)
        return rc;
    if (w.uid == 0)
        return repro_error_set(err, REPRO_E_INVAL,
                               "cannot drop privileges to user '%s': it has uid 0 (root)", user);
    if (geteuid() != 0) {
        if (getuid() == w.uid && geteuid() == w.uid)
            return drop_caps(err);
        return repro_error_set(err, REPRO_E_INVAL,
                               "cannot switch to user '%s': not running as root (started as that "
                               "user with CAP_NET_RAW, leave out --user)",
                               user);
    }
    return switch_user(user, &w, err);
}

/* ---- the database's directory -------------------------------------------- */

void repro_app_dir_of(const char *path, char *out, size_t out_len)
{
    const char *slash = strrchr(path, '/');
    size_t n;

    if (slash == NULL) {
        snprintf(out, out_len, ".");
        return;
    }
    n = slash == path ? 1 : (size_t)(slash - path);
    snprintf(out, out_len, "%.*s", (int)n, path);
}

static void warn(FILE *log, const char *what, const char *path, mode_t mode, const char *fix)
{
    if (log != NULL)
        fprintf(log,
                "repro: warning: %s '%s' is readable by other users (mode %04o): captured "
                "traffic may hold secrets; chmod %s '%s'\n",
                what, path, (unsigned)(mode & 07777), fix, path);
}

/* Checks one directory; abs gets its absolute path. */
static int check_dir(const char *dir, FILE *log, char *abs, struct repro_error *err)
{
    struct stat st;

    if (realpath(dir, abs) == NULL || stat(abs, &st) != 0)
        return repro_error_sys(err, errno == ENOENT ? REPRO_E_NOTFOUND : REPRO_E_IO,
                               "cannot check database directory '%s': %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return repro_error_set(err, REPRO_E_INVAL, "cannot check database directory '%s': not "
                               "a directory", abs);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return repro_error_set(err, REPRO_E_INVAL,
                               "refusing database directory '%s' (mode %04o): other users can "
                               "write there%s and plant the database's -wal and -shm files; "
                               "chmod 700 '%s'",
                               abs, (unsigned)(st.st_mode & 07777),
                               (st.st_mode & S_ISVTX) ? " (sticky or not)" : "", abs);
    if (st.st_uid != geteuid() && st.st_uid != 0)
        return repro_error_set(err, REPRO_E_INVAL,
                               "refusing database directory '%s': it belongs to uid %u, who can "
                               "plant the database's -wal and -shm files; use a directory of "
                               "your own (mkdir -m 700)",
                               abs, (unsigned)st.st_uid);
    if (st.st_mode & S_IROTH)
        warn(log, "database directory", abs, st.st_mode, "700");
    return REPRO_OK;
}

int repro_app_check_db_path(const char *db, FILE *log, struct repro_error *err)
{
    char dir[PATH_MAX], abs[PATH_MAX], real[PATH_MAX], real_dir[PATH_MAX];
    struct stat st;
    int rc;

    if (db == NULL || db[0] == '\0')
        return repro_error_set(err, REPRO_E_INVAL, "cannot check database '': empty path");
    repro_app_dir_of(db, dir, sizeof dir);
    if ((rc = check_dir(dir, log, abs, err)) != REPRO_OK)
        return rc;
    if (stat(db, &st) != 0) {
        if (errno == ENOENT)
            return REPRO_OK; /* created later, in the directory just checked */
        return repro_error_sys(err, REPRO_E_IO, "cannot check database '%s': %s%s", db,
                               strerror(errno),
                               errno == EACCES && geteuid() != 0
                                   ? " (after --user, the database and its directory must "
                                     "be that user's)"
                                   : "");
    }
    if (!S_ISREG(st.st_mode))
        return repro_error_set(err, REPRO_E_INVAL, "cannot use database '%s': not a regular file",
                               db);
    if (realpath(db, real) != NULL) {
        repro_app_dir_of(real, real_dir, sizeof real_dir);
        if (strcmp(real_dir, abs) != 0 && (rc = check_dir(real_dir, log, dir, err)) != REPRO_OK)
            return rc;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return repro_error_set(err, REPRO_E_INVAL,
                               "refusing database '%s' (mode %04o): other users can write it; "
                               "chmod 600 '%s'",
                               db, (unsigned)(st.st_mode & 07777), db);
    if (st.st_mode & S_IROTH)
        warn(log, "database", db, st.st_mode, "600");
    return REPRO_OK;
}

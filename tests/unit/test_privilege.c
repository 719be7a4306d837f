/*
 * Unit tests for app/privilege: dropping root to a user in a forked child
 * (ids, groups, no way back), refusals that change nothing, dropping
 * capabilities when not root, and the database directory check over the
 * modes that matter (700, 755, 775, 777, 1777; files 600, 644, 664),
 * relative paths, symbolic links and a directory of another user. The
 * parts that change ids need root and are skipped (77) without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app/privilege.h"
#include "test_util.h"

/* ---- dropping privileges ------------------------------------------------- */

/* Runs fn in a child; returns its exit status (0: every check passed;
 * otherwise the number of the failed check). */
static int in_child(int (*fn)(void))
{
    int status = 0;
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn());
    assert_true(pid > 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Runs fn in a child as root with a user 'nobody', or skips the test. */
static void as_root_child(int (*fn)(void))
{
    if (geteuid() != 0)
        tu_skip("changing ids and capabilities needs root");
    if (getpwnam("nobody") == NULL)
        tu_skip("no user 'nobody'");
    assert_int_equal(in_child(fn), 0);
}

static int caps_nonzero(void)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    if (syscall(SYS_capget, &h, d) != 0)
        return -1;
    return (d[0].effective | d[0].permitted | d[0].inheritable | d[1].effective |
            d[1].permitted | d[1].inheritable) != 0;
}

static int child_drop_to_nobody(void)
{
    struct repro_error err = {0};
    struct passwd *pw = getpwnam("nobody");
    gid_t groups[64];
    int n, i;

    if (pw == NULL)
        return 2;
    if (repro_app_drop_privileges("nobody", &err) != REPRO_OK) {
        fprintf(stderr, "drop: %s\n", err.msg);
        return 3;
    }
    if (getuid() != pw->pw_uid || geteuid() != pw->pw_uid)
        return 4;
    if (getgid() != pw->pw_gid || getegid() != pw->pw_gid)
        return 5;
    n = getgroups(64, groups);
    if (n < 0)
        return 6;
    for (i = 0; i < n; i++)
        if (groups[i] == 0) /* root's groups are gone */
            return 7;
    if (setuid(0) == 0 || errno != EPERM)
        return 8;
    if (seteuid(0) == 0 || setgid(0) == 0)
        return 9;
    if (caps_nonzero() != 0)
        return 10;
    /* Once dropped, the same call is a no-op for the same user. */
    if (repro_app_drop_privileges("nobody", &err) != REPRO_OK)
        return 11;
    if (repro_app_drop_privileges("root", &err) != REPRO_E_INVAL)
        return 12;
    return 0;
}

static void test_drop_to_nobody(void **state)
{
    (void)state;
    as_root_child(child_drop_to_nobody);
}

/* Refusals that change nothing: safe in the test process itself. */
static void test_drop_refusals(void **state)
{
    struct repro_error err = {0};
    uid_t uid = getuid();
    (void)state;

    assert_int_equal(repro_app_drop_privileges("no-such-user-repro", &err), REPRO_E_NOTFOUND);
    assert_string_equal(err.msg,
                        "cannot drop privileges to user 'no-such-user-repro': no such user");
    repro_error_clear(&err);
    assert_int_equal(repro_app_drop_privileges("root", &err), REPRO_E_INVAL);
    assert_string_equal(err.msg, "cannot drop privileges to user 'root': it has uid 0 (root)");
    assert_int_equal(getuid(), uid);
}

/* Becomes nobody keeping only CAP_NET_RAW, effective and permitted, as
 * `setcap cap_net_raw=eip` or AmbientCapabilities would grant it. Returns
 * nobody's uid, or (uid_t)-1. */
static uid_t become_nobody_with_net_raw(void)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    struct passwd *pw = getpwnam("nobody");
    uid_t uid;

    if (pw == NULL || prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0)
        return (uid_t)-1;
    uid = pw->pw_uid;
    if (setgid(pw->pw_gid) != 0 || setuid(uid) != 0)
        return (uid_t)-1;
    memset(d, 0, sizeof d);
    d[0].effective = d[0].permitted = 1u << CAP_NET_RAW;
    if (syscall(SYS_capset, &h, d) != 0 || caps_nonzero() != 1)
        return (uid_t)-1;
    return uid;
}

/* As a plain user: another user is refused; the capabilities are dropped. */
static int child_not_root(void)
{
    struct repro_error err = {0};
    uid_t nobody = become_nobody_with_net_raw();

    if (nobody == (uid_t)-1)
        return 2;
    if (repro_app_drop_privileges("root", &err) != REPRO_E_INVAL)
        return 5;
    repro_error_clear(&err);
    if (getpwnam("daemon") != NULL && repro_app_drop_privileges("daemon", &err) != REPRO_E_INVAL)
        return 6;
    if (strstr(err.msg, "not running as root") == NULL)
        return 7;
    if (caps_nonzero() != 1) /* refusals leave everything as it was */
        return 8;
    repro_error_clear(&err);
    if (repro_app_drop_privileges(NULL, &err) != REPRO_OK) {
        fprintf(stderr, "drop: %s\n", err.msg);
        return 9;
    }
    if (caps_nonzero() != 0 || getuid() != nobody)
        return 10;
    /* Naming the user it already is works too. */
    if (repro_app_drop_privileges("nobody", &err) != REPRO_OK)
        return 11;
    return 0;
}

static void test_drop_capabilities(void **state)
{
    (void)state;
    as_root_child(child_not_root);
}

static void *idle_thread(void *arg)
{
    int *fds = arg;
    char c;
    (void)!read(fds[0], &c, 1);
    return NULL;
}

/* Capabilities are per thread: with another thread running they cannot
 * all be dropped, and the call says so instead of half doing it. */
static int child_threads(void)
{
    struct repro_error err = {0};
    pthread_t t;
    int fds[2], rc;

    if (become_nobody_with_net_raw() == (uid_t)-1 || pipe(fds) != 0)
        return 2;
    if (pthread_create(&t, NULL, idle_thread, fds) != 0)
        return 5;
    rc = repro_app_drop_privileges(NULL, &err);
    (void)!write(fds[1], "x", 1);
    pthread_join(t, NULL);
    if (rc != REPRO_E_INVAL || strstr(err.msg, "threads") == NULL)
        return 6;
    return caps_nonzero() == 1 ? 0 : 7;
}

static void test_drop_capabilities_threads(void **state)
{
    (void)state;
    as_root_child(child_threads);
}

/* ---- the database directory ----------------------------------------------- */

/* Runs the check on dir/name with the modes given (file_mode 0: no file);
 * returns the code, the message in msg and what was logged in logged. */
static int check(const char *dir, mode_t dir_mode, mode_t file_mode, char *msg, size_t msg_len,
                 char *logged, size_t logged_len)
{
    char db[512];
    struct repro_error err = {0};
    FILE *log = fmemopen(logged, logged_len, "w");
    int rc;

    assert_non_null(log);
    memset(logged, 0, logged_len);
    snprintf(db, sizeof db, "%s/cap.db", dir);
    unlink(db);
    assert_int_equal(chmod(dir, dir_mode), 0);
    if (file_mode != 0) {
        int fd = open(db, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(fchmod(fd, file_mode), 0);
        close(fd);
    }
    rc = repro_app_check_db_path(db, log, &err);
    fclose(log);
    snprintf(msg, msg_len, "%s", err.msg);
    unlink(db);
    return rc;
}

static void test_db_modes(void **state)
{
    static const struct {
        mode_t dir, file;
        int rc;
        const char *msg;  /* start of the error message after the directory */
        const char *warn; /* part of the warning, or NULL for none */
    } cases[] = {
        {0700, 0, REPRO_OK, NULL, NULL},
        {0700, 0600, REPRO_OK, NULL, NULL},
        {0750, 0640, REPRO_OK, NULL, NULL},
        {0700, 0644, REPRO_OK, NULL, "database '"},
        {0755, 0, REPRO_OK, NULL, "database directory '"},
        {0755, 0600, REPRO_OK, NULL, "(mode 0755): captured traffic may hold secrets; chmod 700"},
        {0711, 0600, REPRO_OK, NULL, NULL},
        {0700, 0664, REPRO_E_INVAL, "refusing database '", NULL},
        {0700, 0606, REPRO_E_INVAL, "refusing database '", NULL},
        {0775, 0, REPRO_E_INVAL, "refusing database directory '", NULL},
        {0775, 0600, REPRO_E_INVAL, "refusing database directory '", NULL},
        {0777, 0600, REPRO_E_INVAL, "refusing database directory '", NULL},
        {0730, 0, REPRO_E_INVAL, "refusing database directory '", NULL},
        {01777, 0600, REPRO_E_INVAL, "refusing database directory '", NULL},
    };
    const char *dir = test_tmpdir();
    char msg[256], logged[1024];
    (void)state;

    tu_failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = check(dir, cases[i].dir, cases[i].file, msg, sizeof msg, logged, sizeof logged);
        TU_CHECK(rc == cases[i].rc, "dir %04o file %04o: rc %d '%s'", cases[i].dir,
                 cases[i].file, rc, msg);
        if (cases[i].msg != NULL)
            TU_CHECK(strncmp(msg, cases[i].msg, strlen(cases[i].msg)) == 0 &&
                         strstr(msg, "chmod ") != NULL,
                     "dir %04o file %04o: '%s'", cases[i].dir, cases[i].file, msg);
        if (cases[i].warn != NULL)
            TU_CHECK(strncmp(logged, "repro: warning: ", 16) == 0 &&
                         strstr(logged, cases[i].warn) != NULL,
                     "dir %04o file %04o: logged '%s'", cases[i].dir, cases[i].file, logged);
        else
            TU_CHECK(logged[0] == '\0', "dir %04o file %04o: logged '%s'", cases[i].dir,
                     cases[i].file, logged);
    }
    /* The sticky bit is named: it does not help here. */
    check(dir, 01777, 0, msg, sizeof msg, logged, sizeof logged);
    TU_CHECK(strstr(msg, "(mode 1777)") && strstr(msg, "sticky or not") &&
                 strstr(msg, "-wal and -shm") && strstr(msg, "chmod 700 '"),
             "sticky: '%s'", msg);
    assert_int_equal(tu_failures, 0);
    rmdir(dir);
}

/* A relative path is checked (and named) through its absolute directory. */
static void test_db_relative(void **state)
{
    const char *dir = test_tmpdir();
    char cwd[4096], msg[4200] = "", real[4096];
    struct repro_error err = {0};
    (void)state;

    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_non_null(realpath(dir, real));
    assert_int_equal(chmod(dir, 0777), 0);
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(repro_app_check_db_path("repro.db", NULL, &err), REPRO_E_INVAL);
    snprintf(msg, sizeof msg, "refusing database directory '%s' (mode 0777)", real);
    assert_int_equal(strncmp(err.msg, msg, strlen(msg)), 0);
    assert_int_equal(chmod(dir, 0700), 0);
    repro_error_clear(&err);
    assert_int_equal(repro_app_check_db_path("repro.db", NULL, &err), REPRO_OK);
    assert_int_equal(repro_app_check_db_path("./sub/../repro.db", NULL, &err), REPRO_E_NOTFOUND);
    assert_int_equal(chdir(cwd), 0);
    repro_error_clear(&err);
    assert_int_equal(repro_app_check_db_path("/no/such/dir/x.db", NULL, &err), REPRO_E_NOTFOUND);
    assert_string_equal(err.msg,
                        "cannot check database directory '/no/such/dir': No such file or directory");
    repro_error_clear(&err);
    assert_int_equal(repro_app_check_db_path("", NULL, &err), REPRO_E_INVAL);
    rmdir(dir);
}

/* A link in a private directory to a database in a shared one: the -wal
 * and -shm files would go to the shared one. */
static void test_db_symlink(void **state)
{
    const char *d = test_tmpdir();
    char priv[300], shared[300], link[400], target[400];
    struct repro_error err = {0};
    int fd;
    (void)state;

    snprintf(priv, sizeof priv, "%s/private", d);
    snprintf(shared, sizeof shared, "%s/shared", d);
    assert_int_equal(mkdir(priv, 0700), 0);
    assert_int_equal(mkdir(shared, 0700), 0);
    assert_int_equal(chmod(shared, 01777), 0);
    snprintf(link, sizeof link, "%s/cap.db", priv);
    snprintf(target, sizeof target, "%s/real.db", shared);
    fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(repro_app_check_db_path(link, NULL, &err), REPRO_E_INVAL);
    assert_non_null(strstr(err.msg, "/shared' (mode 1777)"));
    unlink(link);
    unlink(target);
    rmdir(priv);
    rmdir(shared);
    rmdir(d);
}

/* A directory of another user is refused even at 0700: they could plant
 * the files. */
static void test_db_other_owner(void **state)
{
    const char *dir = test_tmpdir();
    char db[300];
    struct repro_error err = {0};
    struct passwd *pw = getpwnam("nobody");
    (void)state;

    snprintf(db, sizeof db, "%s/cap.db", dir);
    if (tu_require(geteuid() == 0 && pw != NULL, "chown to nobody (needs root)")) {
        assert_int_equal(chown(dir, pw->pw_uid, pw->pw_gid), 0);
        assert_int_equal(chmod(dir, 0700), 0);
        assert_int_equal(repro_app_check_db_path(db, NULL, &err), REPRO_E_INVAL);
        assert_non_null(strstr(err.msg, "belongs to uid"));
    }
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop_to_nobody),
        cmocka_unit_test(test_drop_refusals),
        cmocka_unit_test(test_drop_capabilities),
        cmocka_unit_test(test_drop_capabilities_threads),
        cmocka_unit_test(test_db_modes),
        cmocka_unit_test(test_db_relative),
        cmocka_unit_test(test_db_symlink),
        cmocka_unit_test(test_db_other_owner),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}

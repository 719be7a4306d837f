/*
 * repro demo: the story on the bundled sample service, on loopback, in one
 * command (as root, for live capture on lo):
 *
 *   1. the sample service runs under `repro run` (the crash supervisor),
 *   2. `repro capture -i lo` records its traffic,
 *   3. a client sends a few requests, then the one that hits the planted
 *      bug (GET /crash?depth=3): the service dies of SIGSEGV,
 *   4. the crash is stored, symbolized, and joined to the requests that
 *      were in flight on the connections the process had open,
 *   5. `repro exchanges` and `repro crashes` show it all.
 *
 * Without root (no live capture) or without the sample service next to the
 * binary, it falls back to recording the bundled capture
 * fixtures/capture/nginx_curl.pcap. Replay, reproduce and verify join the
 * story as their issues land.
 */
#include "cli.h"
#include "repro/http.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef REPRO_FIXTURES_DIR
#define REPRO_FIXTURES_DIR "fixtures"
#endif

#define DEMO_WAIT_MS 15000

/* The directory of the running binary, for files installed next to it. */
static void self_dir(char *out, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", out, len - 1);
    char *slash;
    out[n > 0 ? n : 0] = '\0';
    slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
}

/* The bundled capture: $REPRO_FIXTURES, else the installed copy next to
 * the binary (PREFIX/share/repro/fixtures), else the source tree the
 * binary was built from. */
static void find_pcap(char *pcap, size_t len)
{
    const char *dir = getenv("REPRO_FIXTURES");
    char self[2048];
    if (dir && *dir) {
        snprintf(pcap, len, "%s/capture/nginx_curl.pcap", dir);
        return;
    }
    self_dir(self, sizeof self);
    snprintf(pcap, len, "%s/../share/repro/fixtures/capture/nginx_curl.pcap", self);
    if (access(pcap, R_OK) != 0)
        snprintf(pcap, len, "%s/capture/nginx_curl.pcap", REPRO_FIXTURES_DIR);
}

static int offline_demo(struct cli_global *g)
{
    char pcap[3072];
    char *cap_argv[] = {"capture", "-r", pcap, NULL};
    char *list_argv[] = {"exchanges", NULL};
    int rc;

    find_pcap(pcap, sizeof pcap);
    if (access(pcap, R_OK) != 0) {
        return cli_error("cannot find the demo capture '%s' (set REPRO_FIXTURES)", pcap);
    }
    printf("== repro capture -r %s --db %s\n", pcap, g->db);
    fflush(stdout);
    rc = cmd_capture(g, 3, cap_argv);
    if (rc == EXIT_FATAL || rc == EXIT_USAGE)
        return rc;
    printf("\n== repro exchanges --db %s\n", g->db);
    fflush(stdout);
    rc = cmd_exchanges(g, 1, list_argv);
    if (rc == EXIT_CLEAN)
        printf("\nNext: 'repro show ID --curl --db %s' prints a request as a curl command.\n",
               g->db);
    return rc;
}

/* Starts argv with its stdout (pipe_stdout) or its stderr piped to *fd. */
static pid_t spawn(char *const argv[], int pipe_stdout, int *fd)
{
    int p[2];
    pid_t pid;

    if (pipe(p) != 0)
        return -1;
    pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(p[1], pipe_stdout ? STDOUT_FILENO : STDERR_FILENO);
        close(p[0]);
        close(p[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    *fd = p[0];
    return pid;
}

static uint64_t now_ms(void)
{
    return repro_mono_ns() / 1000000u;
}

/* Reads from fd into buf (NUL-terminated) until needle appears or the
 * deadline passes. Returns 0 when found. */
static int wait_for(int fd, char *buf, size_t len, size_t *used, const char *needle)
{
    uint64_t deadline = now_ms() + DEMO_WAIT_MS;
    while (strstr(buf, needle) == NULL) {
        struct pollfd pf = {fd, POLLIN, 0};
        uint64_t t = now_ms();
        ssize_t n;
        if (t >= deadline || *used + 1 >= len)
            return -1;
        if (poll(&pf, 1, (int)(deadline - t)) <= 0)
            return -1;
        n = read(fd, buf + *used, len - 1 - *used);
        if (n <= 0)
            return -1;
        *used += (size_t)n;
        buf[*used] = '\0';
    }
    return 0;
}

/* One HTTP request on the demo's connection (opened when closed, closed
 * when the server will not take another request); prints the status
 * line. -1 when the service cannot be reached, 1 when it did not answer. */
static int http_get(struct repro_http_client *c, int port, const char *method, const char *target,
                    const char *body)
{
    char req[512], port_s[16];
    struct repro_http_response resp;
    struct repro_error err = {0};
    int rc;

    if (c->fd < 0) {
        snprintf(port_s, sizeof port_s, "%d", port);
        if (repro_http_client_connect(c, "127.0.0.1", port_s, 5000, 0, &err) != REPRO_OK)
            return -1;
    }
    /* The Authorization header shows redaction at work: it is stored as
     * [REDACTED]. */
    if (body)
        snprintf(req, sizeof req,
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: repro-demo\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 method, target, port, strlen(body), body);
    else
        snprintf(req, sizeof req,
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: repro-demo\r\n"
                 "Authorization: Bearer demo-secret-token\r\n\r\n",
                 method, target, port);
    rc = repro_http_client_exchange(c, (const uint8_t *)req, strlen(req), &resp, &err);
    if (rc == REPRO_OK) {
        size_t n = 0;
        while (n < resp.raw.len && resp.raw.data[n] != '\r' && resp.raw.data[n] != '\n')
            n++;
        printf("   %s %s -> %.*s\n", method, target, (int)n, (const char *)resp.raw.data);
    } else if (rc == REPRO_E_IO && strstr(err.msg, "cannot send") != NULL) {
        rc = -1;
    } else {
        printf("   %s %s -> no response (%s)\n", method, target,
               err.sys_errno ? strerror(err.sys_errno) : "closed");
        rc = 1;
    }
    if (rc != REPRO_OK || !resp.keep_alive) {
        repro_http_client_close(c);
        c->fd = -1;
    }
    repro_http_response_release(&resp);
    return rc;
}

/* The story. live: with a live capture of the traffic (root); else the
 * crash part only (repro run needs no root), after the bundled capture. */
static int live_demo(struct cli_global *g, const char *self, const char *service, int live)
{
    char port_s[16], filter[64], out[4096] = "", err[65536] = "";
    size_t out_n = 0, err_n = 0;
    char *run_argv[] = {(char *)self, "--db", (char *)g->db, "run", "--service", "sample",
                        "--", (char *)service, NULL};
    char *cap_argv[] = {(char *)self, "--db", (char *)g->db, "capture", "-i", "lo", "-f",
                        filter, "--redact-json-field", "password", NULL};
    int run_out = -1, cap_err = -1, port, status = 0;
    struct repro_http_client sock = {.fd = -1}, sock2 = {.fd = -1};
    pid_t run_pid, cap_pid = -1;
    char *list_argv[] = {"exchanges", NULL};
    char *crash_argv[] = {"crashes", NULL};
    const char *p;

    printf("== 1. the sample service under the crash supervisor: repro run -- %s\n", service);
    fflush(stdout);
    run_pid = spawn(run_argv, 1, &run_out);
    if (run_pid < 0 || wait_for(run_out, out, sizeof out, &out_n, "\n") != 0 ||
        (p = strstr(out, "LISTENING ")) == NULL) {
        fprintf(stderr, "repro: demo: the sample service did not start\n");
        goto fail;
    }
    port = atoi(p + 10);
    snprintf(port_s, sizeof port_s, "%d", port);
    printf("   listening on 127.0.0.1:%d\n", port);
    snprintf(filter, sizeof filter, "tcp port %d", port);
    if (live) {
        printf("== 2. live capture of its traffic: repro capture -i lo -f '%s' "
               "--redact-json-field password\n", filter);
        fflush(stdout);
        cap_pid = spawn(cap_argv, 0, &cap_err);
        if (cap_pid < 0 || wait_for(cap_err, err, sizeof err, &err_n, "listening on") != 0) {
            fprintf(stderr, "repro: demo: the capture did not start:\n%s\n", err);
            goto fail;
        }
    } else {
        printf("== 2. (no live capture without root: the requests below are not recorded)\n");
    }
    printf("== 3. traffic, then the request that hits the planted bug\n");
    fflush(stdout);
    if (http_get(&sock, port, "GET", "/health", NULL) < 0 ||
        http_get(&sock, port, "GET", "/items/42", NULL) < 0 ||
        http_get(&sock, port, "POST", "/items", "{\"name\":\"widget\",\"password\":\"hunter2\"}") < 0) {
        fprintf(stderr, "repro: demo: cannot talk to the sample service\n");
        goto fail;
    }
    http_get(&sock2, port, "GET", "/crash?depth=3", NULL);
    fflush(stdout);
    waitpid(run_pid, &status, 0);
    run_pid = -1;
    printf("   the service died: repro run exited %d\n",
           WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    repro_http_client_close(&sock);
    repro_http_client_close(&sock2);
    if (live) {
        /* The capture sees the resets; then it is stopped like a user would. */
        kill(cap_pid, SIGINT);
        waitpid(cap_pid, &status, 0);
        cap_pid = -1;
        while (err_n + 1 < sizeof err) {
            ssize_t n = read(cap_err, err + err_n, sizeof err - 1 - err_n);
            if (n <= 0)
                break;
            err_n += (size_t)n;
        }
        err[err_n] = '\0';
        printf("   capture summary:\n%s", err);
        printf("\n== 4. repro exchanges --db %s\n", g->db);
        fflush(stdout);
        cmd_exchanges(g, 1, list_argv);
    }
    printf("\n== 5. repro crashes --db %s (symbolized%s)\n", g->db,
           live ? ", with the requests in flight" : "");
    fflush(stdout);
    cmd_crashes(g, 1, crash_argv);
    printf("Next: 'repro show ID --curl --db %s' for a request, 'repro crashes --format json "
           "--db %s' for tools.\n",
           g->db, g->db);
    close(run_out);
    if (cap_err >= 0)
        close(cap_err);
    return EXIT_CLEAN;
fail:
    repro_http_client_close(&sock);
    repro_http_client_close(&sock2);
    if (run_pid > 0) {
        kill(run_pid, SIGTERM);
        waitpid(run_pid, NULL, 0);
    }
    if (cap_pid > 0) {
        kill(cap_pid, SIGINT);
        waitpid(cap_pid, NULL, 0);
    }
    if (run_out >= 0)
        close(run_out);
    if (cap_err >= 0)
        close(cap_err);
    return EXIT_FATAL;
}

int cmd_demo(struct cli_global *g, int argc, char **argv)
{
    enum { O_OFFLINE = 1 };
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"offline", no_argument, NULL, O_OFFLINE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    char self[4096], service[4200];
    ssize_t n;
    char *slash;
    int opt, offline = 0;

    optind = 1;
    while ((opt = cli_getopt(argc, argv, "h", longopts)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        switch (opt) {
        case O_OFFLINE: offline = 1; break;
        case 'h':
            printf("usage: repro demo [--db PATH] [--offline]\n"
                   "Runs the story on loopback: the sample service under repro run, live\n"
                   "capture on lo, a few requests and one that crashes it, then the exchanges\n"
                   "and the symbolized crash joined to the requests in flight. Needs root for\n"
                   "live capture; --offline (or no root) records the bundled capture instead.\n");
            return EXIT_CLEAN;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("demo", "unexpected argument '%s'", argv[optind]);
    /* the story interleaves our lines with the tools' stderr: keep their
     * order when stdout is a pipe or a file */
    setvbuf(stdout, NULL, _IOLBF, 0);
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return offline_demo(g);
    self[n] = '\0';
    snprintf(service, sizeof service, "%s", self);
    slash = strrchr(service, '/');
    if (slash)
        snprintf(slash + 1, sizeof service - (size_t)(slash + 1 - service), "fixtures/sample_service");
    if (access(service, X_OK) != 0 && slash) /* installed: PREFIX/libexec/repro/sample_service */
        snprintf(slash + 1, sizeof service - (size_t)(slash + 1 - service),
                 "../libexec/repro/sample_service");
    signal(SIGPIPE, SIG_IGN);
    if (access(service, X_OK) != 0) {
        if (!offline)
            printf("(the live demo needs %s; recording the bundled capture instead)\n\n", service);
        return offline_demo(g);
    }
    if (offline || geteuid() != 0) {
        /* no root: the bundled capture, then the crash story without a
         * live capture (repro run needs no root) */
        if (!offline)
            printf("(live capture needs root: the bundled capture, then the crash story)\n\n");
        int rc = offline_demo(g);
        if (rc == EXIT_FATAL || rc == EXIT_USAGE)
            return rc;
        printf("\n");
        return live_demo(g, self, service, 0);
    }
    return live_demo(g, self, service, 1);
}

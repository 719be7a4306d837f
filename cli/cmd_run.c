/*
 * repro run [--service NAME] [--follow-forks] [--db PATH] -- CMD [ARGS...]
 *
 * Runs CMD under the ptrace supervisor through app/run.c (which stores
 * each crash and forwards signals) and exits with its status: its exit
 * code, or 128+signal when a signal killed it. This file parses, prints
 * one stderr line per crash, symbolizes the stored crashes once CMD is
 * done, and maps the result to an exit code.
 */
#include "cli.h"
#include "app/run.h"
#include "app/symbolize_store.h"
#include "repro/crash.h"
#include "repro/store.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void)
{
    printf("usage: repro run [--service NAME] [--follow-forks] [--db PATH] -- CMD [ARGS...]\n"
           "Runs CMD under a ptrace supervisor. When a thread of it takes SIGSEGV, SIGBUS,\n"
           "SIGFPE, SIGILL, SIGABRT, SIGTRAP or SIGSYS (and the program has no handler of\n"
           "its own), the registers and stack of every thread, the module table with\n"
           "build-ids and the open TCP connections are stored in the database as a crash,\n"
           "then the signal is delivered so that the process dies as it would have.\n"
           "  --service NAME    stored with every crash of this run\n"
           "  --follow-forks    also trace child processes and the programs they exec\n"
           "Exit: CMD's exit code, 128+signal when a signal killed it, 127/126 when CMD\n"
           "cannot be run, 2 when the database cannot be opened or CMD cannot be traced,\n"
           "64 usage.\n");
}

#define RUN_MAX_SYMBOLIZE 64

struct run_ctx {
    const char *db;
    int64_t ids[RUN_MAX_SYMBOLIZE]; /* stored crashes, symbolized once CMD is done */
    size_t n_ids;
};

/* One line on stderr per crash; stdout belongs to the command. */
static void on_crash(void *ctx, const struct repro_crash *c,
                     const struct repro_app_run_crash_info *info)
{
    struct run_ctx *r = ctx;
    char sbuf[16], where[64] = "";
    const char *sig = repro_signal_name(c->signo, sbuf, sizeof sbuf);
    size_t i;

    for (i = 0; i < c->n_threads; i++)
        if (c->threads[i].crashed && c->threads[i].n_frames > 0)
            snprintf(where, sizeof where, " at 0x%llx",
                     (unsigned long long)c->threads[i].frames[0].pc);
    if (info->crash_id >= 0 && r->n_ids < RUN_MAX_SYMBOLIZE)
        r->ids[r->n_ids++] = info->crash_id;
    if (info->crash_id >= 0)
        fprintf(stderr, "repro: %d crashed with %s%s, crash %lld stored in '%s'%s%s%s\n", c->pid,
                sig, where, (long long)info->crash_id, r->db, c->partial ? " (partial: " : "",
                c->partial ? c->partial_reason : "", c->partial ? ")" : "");
    else
        fprintf(stderr, "repro: %d crashed with %s%s, cannot store the crash in '%s': %s\n", c->pid,
                sig, where, r->db,
                info->store_err && info->store_err->msg[0] ? info->store_err->msg : "no database");
}

int cmd_run(struct cli_global *g, int argc, char **argv)
{
    enum { O_SERVICE = 1, O_FOLLOW };
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"service", required_argument, NULL, O_SERVICE},
                                             {"follow-forks", no_argument, NULL, O_FOLLOW},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    struct repro_app_run_opts o;
    struct repro_app_run_result res;
    struct repro_error err = {0};
    struct repro_store *store = NULL;
    struct run_ctx ctx;
    int opt;

    memset(&o, 0, sizeof o);
    optind = 1;
    /* '+': options end at the first non-option, so CMD's own options need
     * no '--' in front of them. */
    while ((opt = cli_getopt(argc, argv, "+h", longopts)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        switch (opt) {
        case O_SERVICE: o.service = optarg; break;
        case O_FOLLOW: o.follow_forks = 1; break;
        case 'h': help(); return EXIT_CLEAN;
        default: return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("run", "no command given (repro run [OPTIONS] -- CMD [ARGS...])");
    if (repro_store_open(g->db, 0, &store, &err) != REPRO_OK)
        return cli_fail(&err);
    memset(&ctx, 0, sizeof ctx);
    ctx.db = g->db;
    o.argv = argv + optind;
    o.store = store;
    o.forward_signals = 1;
    o.on_crash = on_crash;
    o.ctx = &ctx;
    if (repro_app_run(&o, &res, &err) != REPRO_OK) {
        repro_store_close(store);
        return cli_fail(&err);
    }
    /* Symbolize now that the process is gone (never while it waits to
     * die); a failure here leaves the crash stored with module+offset. */
    if (ctx.n_ids > 0) {
        struct repro_error serr = {0};
        if (repro_app_symbolize_crashes(store, ctx.ids, ctx.n_ids, NULL, 0, 0, stderr, &serr) != REPRO_OK)
            cli_error("crashes stored, not symbolized: %s", serr.msg);
    }
    repro_store_close(store);
    if (res.sup.exec_errno != 0)
        cli_error("cannot run '%s': %s", o.argv[0], strerror(res.sup.exec_errno));
    /* Without --follow-forks a child's crash goes unrecorded: say so. */
    if (res.sup.n_unfollowed == 1)
        fprintf(stderr, "repro: run: 1 child process was not followed; a crash in it is not "
                        "recorded (use --follow-forks)\n");
    else if (res.sup.n_unfollowed > 1)
        fprintf(stderr, "repro: run: %u child processes were not followed; a crash in one is not "
                        "recorded (use --follow-forks)\n",
                res.sup.n_unfollowed);
    return res.sup.exit_code;
}

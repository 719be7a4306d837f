/*
 * The TCP connections a process has open, read from /proc: the socket
 * inodes behind /proc/PID/fd/N ("socket:[INODE]") matched against the rows
 * of /proc/PID/net/tcp and /proc/PID/net/tcp6 (the tables of the process's
 * own network namespace). This is how a crash is joined to the captured
 * requests that were in flight on its connections.
 *
 * Row format: the kernel's tcp4_seq_show()/tcp6_seq_show()
 * (net/ipv4/tcp_ipv4.c, net/ipv6/tcp_ipv6.c): addresses are hex words
 * printed in host byte order, ports and states hex, the inode decimal in
 * the tenth column. IPv4-mapped rows of tcp6 are stored as IPv4. UDP, UNIX
 * sockets and TIME_WAIT rows (no descriptor owns them) are left out.
 *
 * Reading a tcp table costs a walk of the kernel's whole established hash,
 * whatever the number of sockets: 1.1 ms per table for 262144 buckets on
 * the development machine (more on large servers), 2.3 ms for tcp + tcp6 of
 * the 4-5 ms that a whole crash record takes. So when the process has at
 * most FAST_MAX_SOCKETS sockets, each one is instead looked at directly:
 * pidfd_getfd(2) lends us the socket (allowed: the caller traces the
 * process), getsockname/getpeername/TCP_INFO give the same 4-tuple and
 * state, and it is closed again (the process keeps its own descriptor, so
 * nothing changes for it). Sockets that the tables would not list (not
 * TCP, not hashed: state CLOSE) are skipped, so both ways give the same
 * rows; tests/unit/test_supervisor.c compares them. Any failure of the
 * direct way falls back to the tables.
 *
 * Workload: called once per crash, on a stopped process; a few thousand
 * descriptors at most (REPRO_CRASH_MAX_CONNS connections are kept).
 */
#include "supervisor.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Above this many sockets the two table walks are cheaper than one
 * pidfd_getfd and four socket calls per socket (about 4 us each). */
#define FAST_MAX_SOCKETS 256

/* ---- pure parsing ------------------------------------------------------ */

/* Parses exactly n (<= 16) hex digits at p. */
static int hex_exact(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        int d = repro_hex_digit((unsigned char)p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* Splits line into at most max whitespace-separated tokens. */
static size_t tokenize(const char *p, size_t len, const char **tok, size_t *tok_len, size_t max)
{
    size_t i = 0, n = 0;
    while (i < len && n < max) {
        while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
            i++;
        if (i >= len)
            break;
        tok[n] = p + i;
        while (i < len && p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
            i++;
        tok_len[n] = (size_t)(p + i - tok[n]);
        n++;
    }
    return n;
}

/* "0100007F:1F90" (family 4) or 32 hex digits ":" port (family 6). */
static int parse_endpoint(const char *p, size_t len, int family, uint8_t ip[16], uint16_t *port)
{
    size_t words = family == 4 ? 1 : 4, w;
    uint64_t v;
    if (len != words * 8 + 5 || p[words * 8] != ':')
        return -1;
    memset(ip, 0, 16);
    for (w = 0; w < words; w++) {
        uint32_t word;
        if (hex_exact(p + w * 8, 8, &v) != 0)
            return -1;
        /* The kernel printed the 32-bit word as it sits in memory, read
         * as a host integer: copying it back restores network order. */
        word = (uint32_t)v;
        memcpy(ip + w * 4, &word, 4);
    }
    if (hex_exact(p + words * 8 + 1, 4, &v) != 0)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

static int is_v4_mapped(const uint8_t ip[16])
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(ip, prefix, 12) == 0;
}

static int is_unspecified(const uint8_t ip[16])
{
    static const uint8_t zero[16];
    return memcmp(ip, zero, 16) == 0;
}

/* A tcp6 row of a dual-stack socket talking IPv4 becomes an IPv4 row. */
static void unmap_v4(struct repro__tcp_row *row)
{
    uint8_t l[4], r[4];
    if (row->family != 6 || !is_v4_mapped(row->local_ip) ||
        !(is_v4_mapped(row->remote_ip) || is_unspecified(row->remote_ip)))
        return;
    memcpy(l, row->local_ip + 12, 4);
    if (is_unspecified(row->remote_ip))
        memset(r, 0, 4);
    else
        memcpy(r, row->remote_ip + 12, 4);
    memset(row->local_ip, 0, 16);
    memset(row->remote_ip, 0, 16);
    memcpy(row->local_ip, l, 4);
    memcpy(row->remote_ip, r, 4);
    row->family = 4;
}

int repro__proc_tcp_parse(const char *line, size_t len, int family, struct repro__tcp_row *row)
{
    const char *tok[12];
    size_t tok_len[12], n, i;
    uint64_t v;

    if (line == NULL || row == NULL || (family != 4 && family != 6))
        return REPRO_E_MALFORMED;
    n = tokenize(line, len, tok, tok_len, 12);
    /* sl local remote st tx:rx tr:when retrnsmt uid timeout inode ... */
    if (n < 10 || tok_len[0] < 2 || tok[0][tok_len[0] - 1] != ':')
        return REPRO_E_MALFORMED;
    for (i = 0; i + 1 < tok_len[0]; i++)
        if (tok[0][i] < '0' || tok[0][i] > '9')
            return REPRO_E_MALFORMED;
    memset(row, 0, sizeof *row);
    row->family = family;
    if (parse_endpoint(tok[1], tok_len[1], family, row->local_ip, &row->local_port) != 0 ||
        parse_endpoint(tok[2], tok_len[2], family, row->remote_ip, &row->remote_port) != 0)
        return REPRO_E_MALFORMED;
    if (tok_len[3] != 2 || hex_exact(tok[3], 2, &v) != 0 || v == 0 || v > 12)
        return REPRO_E_MALFORMED;
    row->state = (int)v;
    if (tok_len[9] == 0 || tok_len[9] > 20)
        return REPRO_E_MALFORMED;
    v = 0;
    for (i = 0; i < tok_len[9]; i++) {
        char ch = tok[9][i];
        if (ch < '0' || ch > '9' || v > (UINT64_MAX - (uint64_t)(ch - '0')) / 10)
            return REPRO_E_MALFORMED;
        v = v * 10 + (uint64_t)(ch - '0');
    }
    row->inode = v;
    unmap_v4(row);
    return REPRO_OK;
}

int repro__socket_inode(const char *target, size_t len, uint64_t *inode)
{
    static const char pre[] = "socket:[";
    size_t i, pre_len = sizeof pre - 1;
    uint64_t v = 0;
    if (len < pre_len + 2 || memcmp(target, pre, pre_len) != 0 || target[len - 1] != ']')
        return REPRO_E_NOTFOUND;
    for (i = pre_len; i + 1 < len; i++) {
        char ch = target[i];
        if (ch < '0' || ch > '9' || v > (UINT64_MAX - (uint64_t)(ch - '0')) / 10)
            return REPRO_E_NOTFOUND;
        v = v * 10 + (uint64_t)(ch - '0');
    }
    *inode = v;
    return REPRO_OK;
}

/* ---- reading /proc ----------------------------------------------------- */

struct sock_fd {
    uint64_t inode;
    int fd;
};

struct sock_list {
    struct sock_fd *v;
    size_t n, cap;
};

/* At most this many socket descriptors are considered. */
#define MAX_SOCKET_FDS (4 * REPRO_CRASH_MAX_CONNS)

static int cmp_sock(const void *a, const void *b)
{
    const struct sock_fd *x = a, *y = b;
    if (x->inode != y->inode)
        return x->inode < y->inode ? -1 : 1;
    return x->fd < y->fd ? -1 : x->fd > y->fd;
}

static int list_sockets(int pid, struct sock_list *l, struct repro_error *err)
{
    char dir[64], target[128];
    struct dirent *de;
    DIR *d;
    int rc = REPRO_OK;

    snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
    d = opendir(dir);
    if (d == NULL)
        return repro_error_sys(err, REPRO_E_IO, "cannot list descriptors '%s': %s", dir,
                               strerror(errno));
    while ((de = readdir(d)) != NULL) {
        char *end;
        long fd;
        ssize_t n;
        uint64_t inode;
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        fd = strtol(de->d_name, &end, 10);
        if (*end != '\0' || fd < 0 || fd > INT32_MAX)
            continue;
        n = readlinkat(dirfd(d), de->d_name, target, sizeof target);
        if (n <= 0 || (size_t)n >= sizeof target) /* closed meanwhile, or not a socket */
            continue;
        if (repro__socket_inode(target, (size_t)n, &inode) != REPRO_OK)
            continue;
        if (l->n == l->cap) {
            size_t ncap = l->cap ? l->cap * 2 : 64;
            struct sock_fd *p;
            if (l->n >= MAX_SOCKET_FDS) {
                rc = repro_error_set(err, REPRO_E_LIMIT,
                                     "cannot list all sockets of process %d: more than %d", pid,
                                     MAX_SOCKET_FDS);
                break;
            }
            p = repro_realloc(l->v, ncap * sizeof *p);
            if (p == NULL) {
                rc = repro_error_set(err, REPRO_E_NOMEM, "cannot list sockets of process %d: %s",
                                     pid, repro_strerror(REPRO_E_NOMEM));
                break;
            }
            l->v = p;
            l->cap = ncap;
        }
        l->v[l->n].inode = inode;
        l->v[l->n].fd = (int)fd;
        l->n++;
    }
    closedir(d);
    if (l->n > 1)
        qsort(l->v, l->n, sizeof *l->v, cmp_sock);
    return rc;
}

/* Index of the first socket with this inode, or -1. */
static long find_inode(const struct sock_list *l, uint64_t inode)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid].inode < inode)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->n && l->v[lo].inode == inode ? (long)lo : -1;
}

static int add_row(struct repro_crash *c, const struct sock_list *l, const struct repro__tcp_row *r,
                   int pid, struct repro_error *err)
{
    long i = r->inode ? find_inode(l, r->inode) : -1;
    /* Every descriptor of the socket (dup, inherited) is listed. */
    for (; i >= 0 && (size_t)i < l->n && l->v[i].inode == r->inode; i++) {
        struct repro_crash_conn k;
        int rc;
        memset(&k, 0, sizeof k);
        k.fd = l->v[i].fd;
        k.family = r->family;
        memcpy(k.local_ip, r->local_ip, 16);
        memcpy(k.remote_ip, r->remote_ip, 16);
        k.local_port = r->local_port;
        k.remote_port = r->remote_port;
        k.state = r->state;
        rc = repro_crash_add_conn(c, &k);
        if (rc == REPRO_E_LIMIT)
            return repro_error_set(err, rc,
                                   "cannot keep every connection of process %d: more than %d", pid,
                                   REPRO_CRASH_MAX_CONNS);
        if (rc != REPRO_OK)
            return repro_error_set(err, rc, "cannot keep a connection of process %d: %s", pid,
                                   repro_strerror(rc));
    }
    return REPRO_OK;
}

/* Reads one table; a missing tcp6 (IPv6 disabled) is not an error. */
static int read_table(struct repro_crash *c, int pid, int family, const struct sock_list *l,
                      struct repro_error *err)
{
    char path[64], line[1024];
    unsigned long lineno = 0;
    int rc = REPRO_OK, bad = REPRO_OK;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/net/%s", pid, family == 4 ? "tcp" : "tcp6");
    f = fopen(path, "re");
    if (f == NULL) {
        if (errno == ENOENT && family == 6)
            return REPRO_OK;
        return repro_error_sys(err, REPRO_E_IO, "cannot open '%s': %s", path, strerror(errno));
    }
    while (rc == REPRO_OK && fgets(line, sizeof line, f) != NULL) {
        size_t len = strlen(line);
        struct repro__tcp_row row;
        lineno++;
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ;
            bad = repro_error_set(err, REPRO_E_MALFORMED, "malformed line %lu of '%s': too long",
                                  lineno, path);
            continue;
        }
        if (lineno == 1) /* the column header */
            continue;
        if (repro__proc_tcp_parse(line, len, family, &row) != REPRO_OK) {
            char ex[48];
            bad =
                repro_error_set(err, REPRO_E_MALFORMED, "malformed line %lu of '%s': '%s'", lineno,
                                path, repro_excerpt(ex, sizeof ex, (const uint8_t *)line, len));
            continue;
        }
        rc = add_row(c, l, &row, pid, err);
    }
    if (rc == REPRO_OK && ferror(f))
        rc = repro_error_sys(err, REPRO_E_IO, "cannot read '%s': %s", path, strerror(errno));
    fclose(f);
    return rc != REPRO_OK ? rc : bad;
}

/* Fills row from a socket address; 0, or -1 for a family we skip. */
static int from_sockaddr(const struct sockaddr_storage *ss, uint8_t ip[16], uint16_t *port)
{
    memset(ip, 0, 16);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        memcpy(ip, &a->sin_addr, 4);
        *port = ntohs(a->sin_port);
        return 4;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        memcpy(ip, &a->sin6_addr, 16);
        *port = ntohs(a->sin6_port);
        return 6;
    }
    return -1;
}

/* Describes socket fd (ours, lent by the process) as its tcp table row
 * would. Returns 1 with *row, 0 when the tables would not list it. */
static int describe_socket(int fd, uint64_t inode, struct repro__tcp_row *row)
{
    struct sockaddr_storage ss;
    struct tcp_info ti;
    socklen_t len;
    int v, fam;

    len = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &len) != 0 || v != IPPROTO_TCP)
        return 0;
    len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || ti.tcpi_state == TCP_CLOSE ||
        ti.tcpi_state == 0 || ti.tcpi_state > 12)
        return 0;
    memset(row, 0, sizeof *row);
    row->state = ti.tcpi_state;
    row->inode = inode;
    len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
        (fam = from_sockaddr(&ss, row->local_ip, &row->local_port)) < 0)
        return 0;
    row->family = fam;
    len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = (sa_family_t)(fam == 4 ? AF_INET : AF_INET6);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        ss.ss_family = (sa_family_t)(fam == 4 ? AF_INET : AF_INET6); /* not connected: zeros */
    if (from_sockaddr(&ss, row->remote_ip, &row->remote_port) != fam)
        return 0;
    unmap_v4(row);
    return 1;
}

/* The direct way (see the top of the file). REPRO_E_UNSUPPORTED when the
 * kernel or our privileges do not allow it: the caller then reads the
 * tables. Connections are added only once every socket was looked at. */
static int read_direct(struct repro_crash *c, int pid, const struct sock_list *l,
                       struct repro_error *err)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
    struct repro__tcp_row *rows = NULL;
    size_t n = 0, i;
    int pidfd, rc = REPRO_OK, saved = 0;

    if (l->n == 0)
        return REPRO_OK;
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return REPRO_E_UNSUPPORTED;
    rows = repro_calloc(l->n, sizeof *rows);
    if (rows == NULL) {
        close(pidfd);
        return repro_error_set(err, REPRO_E_NOMEM, "cannot list connections of process %d: %s", pid,
                               repro_strerror(REPRO_E_NOMEM));
    }
    for (i = 0; i < l->n; i++) {
        int fd = (int)syscall(SYS_pidfd_getfd, pidfd, l->v[i].fd, 0);
        if (fd < 0) {
            if (errno == EBADF) /* closed meanwhile */
                continue;
            saved = errno;
            rc = REPRO_E_UNSUPPORTED;
            break;
        }
        if (describe_socket(fd, l->v[i].inode, &rows[n]))
            n++;
        close(fd);
    }
    close(pidfd);
    errno = saved;
    /* Rows are per inode; add_row lists every descriptor of one. */
    for (i = 0; rc == REPRO_OK && i < n; i++)
        if (i == 0 || rows[i].inode != rows[i - 1].inode)
            rc = add_row(c, l, &rows[i], pid, err);
    repro_free(rows);
    return rc;
#else
    (void)c;
    (void)pid;
    (void)l;
    (void)err;
    return REPRO_E_UNSUPPORTED;
#endif
}

int repro__proc_conns_read(struct repro_crash *c, int pid, int how, struct repro_error *err)
{
    struct sock_list l = {NULL, 0, 0};
    int rc, rc4, rc6;

    if (c == NULL || pid <= 0)
        return repro_error_set(err, REPRO_E_INVAL, "cannot list connections of process %d: %s", pid,
                               "invalid argument");
    rc = list_sockets(pid, &l, err);
    if (rc == REPRO_E_IO || rc == REPRO_E_NOMEM)
        goto out;
    if (how == REPRO__CONNS_DIRECT || (how == REPRO__CONNS_AUTO && l.n <= FAST_MAX_SOCKETS)) {
        size_t before = c->n_conns;
        int d = read_direct(c, pid, &l, err);
        if (d != REPRO_E_UNSUPPORTED) {
            if (rc == REPRO_OK)
                rc = d;
            goto out;
        }
        c->n_conns = before;
        if (how == REPRO__CONNS_DIRECT) {
            rc = repro_error_set(err, REPRO_E_UNSUPPORTED,
                                 "cannot borrow the sockets of process %d: %s", pid,
                                 strerror(errno));
            goto out;
        }
    }
    /* A table that cannot be read is reported; the other one is still
     * read (the first error is the one kept). */
    rc4 = read_table(c, pid, 4, &l, err);
    if (rc == REPRO_OK)
        rc = rc4;
    if (rc4 == REPRO_E_LIMIT || rc4 == REPRO_E_NOMEM)
        goto out;
    rc6 = read_table(c, pid, 6, &l, err);
    if (rc == REPRO_OK)
        rc = rc6;
out:
    repro_free(l.v);
    return rc;
}

int repro_crash_add_proc_connections(struct repro_crash *c, int pid, struct repro_error *err)
{
    return repro__proc_conns_read(c, pid, REPRO__CONNS_AUTO, err);
}

/*
 * Fuzz target for redaction, whose oracle is "no byte of a planted secret
 * reaches the store". The input picks a message template with a secret in
 * a place the rules promise to redact (headers and their malformed forms,
 * obs-fold, trailers, JSON, forms, query strings, Referer/Location, gzip,
 * long and crowded heads, malformed responses, an HTTP/2 preface), the
 * filler around it, how the stream is cut into segments and where a gap or
 * the end of the connection falls. The secret is a run of '~', a byte the
 * filler never holds, so any '~' in a stored message or note is a leak.
 */
#include "repro/capture.h"

#include <pcap/dlt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define S "~~~~~~~~~~~~"

static const char *const templates[] = {
    "GET /%F?a=%F&token=" S "&b=1 HTTP/1.1\r\nHost: %F\r\n\r\n",
    "GET / HTTP/1.1\r\nAuthorization: Bearer " S "\r\nX-%F: %F\r\n\r\n",
    "GET / HTTP/1.1\r\nAuthorization : " S "\r\n\r\n",
    "GET / HTTP/1.1\r\nCookie: a=%F\r\n " S "\r\n\r\n",
    "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\nProxy-Authorization: " S
    "\r\n\r\nab",
    "POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %L\r\n\r\n"
    "{\"%F\":1,\"password\":\"" S "\",\"x\":[\"%F\"]}",
    "POST / HTTP/1.1\r\nContent-Length: %L\r\n\r\n{\"p\\u0061ssword\":[\"" S "\",{\"a\":\"" S
    "\"}],\"%F\":2}",
    "POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %L\r\n"
    "\r\nuser=%F&pass%%77ord=" S "&x=%F",
    "GET / HTTP/1.1\r\nReferer: http://%F/?%F=1&access_token=" S "#%F\r\n\r\n",
    "POST / HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%C",
    "POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    "Content-Length: %L\r\n\r\n%Z",
    "GET / HTTP/1.1\r\n%P" "X-Auth-Token: " S "\r\n\r\n",
    "HTTP/1.1 200 OK\r\nSet-Cookie: " S "\r\nContent-Length: x\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n%F\r\n0\r\nSet-Cookie: " S
    "\r\n\r\n",
    "HTTP/1.1 302 Found\r\nLocation: /%F#id_token=" S "&s=%F\r\nContent-Length: 0\r\n\r\n",
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nAuthorization: " S "\r\n",
};
#define N_TEMPLATES (sizeof templates / sizeof *templates)

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "redaction oracle violated: %s\n", what);
        abort();
    }
}

static int on_exchange(void *ctx, const struct repro_conn_info *c, const struct repro_exchange *x)
{
    (void)ctx;
    (void)c;
    check(x->request.len == 0 || memchr(x->request.ptr, '~', x->request.len) == NULL,
          "a byte of the secret in a stored request");
    check(x->response.len == 0 || memchr(x->response.ptr, '~', x->response.len) == NULL,
          "a byte of the secret in a stored response");
    check(x->note == NULL || strchr(x->note, '~') == NULL, "a byte of the secret in a note");
    return 0;
}

struct gen {
    char *b;
    size_t n, cap;
};

static void add(struct gen *g, const void *p, size_t n)
{
    if (g->n + n > g->cap)
        n = g->cap - g->n;
    memcpy(g->b + g->n, p, n);
    g->n += n;
}

/* Expands a template; %F filler, %L the body length (patched after), %C a
 * chunked JSON body split at a chosen place with a secret trailer, %Z a
 * gzip JSON body, %P many filler headers. */
static size_t expand(const char *t, const char *fill, size_t fill_len, unsigned split,
                     unsigned pad, char *out, size_t cap)
{
    struct gen g = {out, 0, cap};
    char body[512], tmp[64 * 1024];
    const char *json = "{\"a\":1,\"token\":\"" S "\"}";
    size_t lpos = (size_t)-1, k;

    for (; *t; t++) {
        if (*t != '%') {
            add(&g, t, 1);
            continue;
        }
        t++;
        switch (*t) {
        case 'F': add(&g, fill, fill_len); break;
        case 'L': lpos = g.n; add(&g, "00000", 5); break;
        case 'C': {
            size_t jl = strlen(json), a = split % (jl + 1);
            int n = snprintf(body, sizeof body, "%zx\r\n%.*s\r\n%zx\r\n%s\r\n0\r\nX-Api-Key: " S
                             "\r\n\r\n", a ? a : 1, (int)(a ? a : 1), json, jl - (a ? a : 1),
                             json + (a ? a : 1));
            add(&g, body, (size_t)n);
            break;
        }
        case 'Z': {
            z_stream z;
            memset(&z, 0, sizeof z);
            if (deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
                abort();
            z.next_in = (Bytef *)(uintptr_t)json;
            z.avail_in = (uInt)strlen(json);
            z.next_out = (Bytef *)body;
            z.avail_out = sizeof body;
            deflate(&z, Z_FINISH);
            add(&g, body, sizeof body - z.avail_out);
            deflateEnd(&z);
            break;
        }
        case 'P':
            for (k = 0; k < pad; k++) {
                int n = snprintf(tmp, sizeof tmp, "X-%zu: %.*s\r\n", k, (int)fill_len, fill);
                add(&g, tmp, (size_t)n);
            }
            break;
        default: add(&g, "%", 1); break;
        }
    }
    if (lpos != (size_t)-1) {
        const char *he = memmem(out, g.n, "\r\n\r\n", 4);
        size_t bl = he ? g.n - (size_t)(he + 4 - out) : 0;
        char num[8];
        snprintf(num, sizeof num, "%05zu", bl % 100000);
        memcpy(out + lpos, num, 5);
    }
    return g.n;
}

/* One raw-IPv4 TCP segment. */
static void segment(struct repro_capture *cap, int side, uint8_t flags, uint32_t seq,
                    uint32_t ack, const char *p, size_t len, uint64_t *rec)
{
    uint8_t f[40 + 1500];
    memset(f, 0, 40);
    f[0] = 0x45;
    f[2] = (uint8_t)((40 + len) >> 8);
    f[3] = (uint8_t)(40 + len);
    f[9] = 6;
    f[12] = 10; f[15] = (uint8_t)(side + 1);
    f[16] = 10; f[19] = (uint8_t)(2 - side);
    f[20] = side ? 0 : 0x9c; f[21] = side ? 80 : 0x40;
    f[22] = side ? 0x9c : 0; f[23] = side ? 0x40 : 80;
    f[24] = (uint8_t)(seq >> 24); f[25] = (uint8_t)(seq >> 16);
    f[26] = (uint8_t)(seq >> 8); f[27] = (uint8_t)seq;
    f[28] = (uint8_t)(ack >> 24); f[29] = (uint8_t)(ack >> 16);
    f[30] = (uint8_t)(ack >> 8); f[31] = (uint8_t)ack;
    f[32] = 0x50;
    f[33] = flags;
    if (len > 0)
        memcpy(f + 40, p, len);
    ++*rec;
    repro_capture_packet(cap, DLT_RAW, f, 40 + len, (int64_t)(*rec) * 1000, *rec, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char msg[96 * 1024];
    struct repro_capture_sink sink = {NULL, NULL, on_exchange, NULL};
    struct repro_capture *cap;
    char fill[64];
    size_t fill_len = 0, len, off = 0, cut, gap_len, k;
    unsigned tpl, mode, pad;
    uint32_t seq[2] = {1000, 5000};
    uint64_t rec = 0;
    int side;
    const uint8_t *segs;
    size_t n_segs;

    if (size < 8)
        return 0;
    tpl = data[0] % N_TEMPLATES;
    mode = data[1];
    cut = (size_t)data[2] << 8 | data[3];
    gap_len = (size_t)data[4] % 64 + 1;
    pad = mode & 0x40 ? 110 : (mode & 0x80 ? 1000 : 2);
    n_segs = data[5] % 16;
    segs = data + 6;
    if (6 + n_segs > size)
        n_segs = size - 6;
    for (k = 6 + n_segs; k < size && fill_len < sizeof fill; k++) {
        /* the filler never holds '~' nor anything that makes structure */
        static const char alnum[] =
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        fill[fill_len++] = alnum[data[k] % 62];
    }
    len = expand(templates[tpl], fill, fill_len, data[2], pad, msg, sizeof msg);
    side = memcmp(msg, "HTTP/", 5) == 0;
    cut = cut % (len + 1);

    repro_log_set_level(REPRO_LOG_ERROR);
    cap = repro_capture_new(&sink, NULL, NULL);
    if (cap == NULL)
        return 0;
    segment(cap, 0, 0x02, seq[0]++, 0, NULL, 0, &rec);
    segment(cap, 1, 0x12, seq[1]++, seq[0], NULL, 0, &rec);
    if (side) { /* a response needs a request to answer */
        static const char get[] = "GET / HTTP/1.1\r\n\r\n";
        segment(cap, 0, 0x18, seq[0], seq[1], get, sizeof get - 1, &rec);
        seq[0] += sizeof get - 1;
    }
    for (k = 0; off < len; k++) {
        size_t n = k < n_segs ? (size_t)segs[k] + 1 : 1400;
        if (n > len - off)
            n = len - off;
        if ((mode & 3) == 1 && off <= cut && cut < off + n)
            n = cut - off; /* the gap starts at cut */
        if (n > 0) {
            segment(cap, side, 0x18, seq[side], seq[!side], msg + off, n, &rec);
            seq[side] += (uint32_t)n;
            off += n;
        }
        if ((mode & 3) == 1 && off == cut) {
            size_t g = gap_len < len - off ? gap_len : len - off;
            off += g; /* bytes the capture never saw */
            seq[side] += (uint32_t)g;
            mode &= ~3u;
        }
        if ((mode & 3) == 2 && off >= cut)
            break; /* the connection ends here */
    }
    /* the peer acknowledges everything: holes become gaps */
    segment(cap, !side, 0x11, seq[!side], seq[side] + 64, NULL, 0, &rec);
    segment(cap, side, 0x04, seq[side] + 64, 0, NULL, 0, &rec);
    repro_capture_finish(cap, NULL);
    repro_capture_free(cap);
    return 0;
}

/*
 * repro http: HTTP/1.0 and 1.1 message framing (RFC 9112), shared by capture
 * (passive, over possibly gappy reassembled streams) and replay (reading
 * staging responses).
 *
 * Two layers:
 *  - repro_http_parse_head() and repro_http_chunked_scan(): pure parsers that
 *    never allocate and return slices into the caller's bytes;
 *  - struct repro_http_framer: one direction of one connection. It is fed
 *    bytes in order (plus gap and end-of-stream notices) and reports where
 *    each message ends, keeping the message's raw bytes up to a cap.
 *
 * Deliberately not here: content decoding (gzip), HTTP/2, TLS, semantics of
 * individual headers beyond framing (Content-Length, Transfer-Encoding,
 * Connection, Upgrade, Expect, Host).
 */
#ifndef REPRO_HTTP_H
#define REPRO_HTTP_H

#include "repro/core.h"

#include <stdint.h>

enum repro_http_kind { REPRO_HTTP_REQUEST = 0, REPRO_HTTP_RESPONSE = 1 };

/* Outcome of every incremental parser in this component. */
enum repro_http_outcome {
    REPRO_HTTP_DONE = 0,      /* a unit finished; *consumed says where */
    REPRO_HTTP_NEED_MORE = 1, /* all input consumed, nothing finished */
    REPRO_HTTP_MALFORMED = 2  /* input is not HTTP; *consumed is the offset */
};

#define REPRO_HTTP_MAX_HEADERS 100

struct repro_http_header {
    struct repro_slice name;
    struct repro_slice value; /* without surrounding whitespace */
};

/* Head flags derived while parsing. */
enum {
    REPRO_HTTP_H_CHUNKED = 1u << 0,         /* Transfer-Encoding ends in chunked */
    REPRO_HTTP_H_TE_OTHER = 1u << 1,        /* Transfer-Encoding without final chunked */
    REPRO_HTTP_H_CONN_CLOSE = 1u << 2,      /* Connection: close */
    REPRO_HTTP_H_CONN_KEEPALIVE = 1u << 3,  /* Connection: keep-alive */
    REPRO_HTTP_H_UPGRADE = 1u << 4,         /* Upgrade header present */
    REPRO_HTTP_H_EXPECT_CONTINUE = 1u << 5, /* Expect: 100-continue */
    REPRO_HTTP_H_CL_AND_TE = 1u << 6,       /* both Content-Length and T-E */
    REPRO_HTTP_H_BARE_LF = 1u << 7,         /* some line ended in LF only */
    /* framer only: limits.watched_names was given and no header name's
     * repro_http_name_bit() is in it */
    REPRO_HTTP_H_UNWATCHED = 1u << 8
};

/*
 * A parsed message head. All slices borrow from the bytes passed to
 * repro_http_parse_head() and stay valid as long as those bytes do.
 * Invariants after REPRO_HTTP_DONE: head_len > 0; n_headers <=
 * REPRO_HTTP_MAX_HEADERS; for requests method and target are non-empty; for
 * responses 100 <= status <= 999; content_length is -1 or >= 0.
 */
struct repro_http_head {
    enum repro_http_kind kind;
    struct repro_slice method; /* request */
    struct repro_slice target; /* request */
    int status;                /* response */
    struct repro_slice reason; /* response */
    int version_major, version_minor;
    struct repro_slice host; /* request Host header, len 0 if none */
    int64_t content_length;  /* -1 when absent */
    unsigned flags;          /* REPRO_HTTP_H_* */
    size_t head_len;         /* start line + headers + empty line */
    size_t n_headers;
    struct repro_http_header headers[REPRO_HTTP_MAX_HEADERS];
    /* The value of the first Content-Type field (ptr NULL when none) and of
     * the last Content-Encoding field with a value (ptr NULL when none). */
    struct repro_slice content_type, content_encoding;
    /* Bit repro_http_name_bit() of every header name: a name whose bit is
     * clear is not in the head (field-by-field checks can be skipped). */
    uint64_t name_bits[4];
};

/* A hash of a field name (its length and first and last bytes, A-Z folded
 * to a-z as repro_slice_ieq() folds) in [0, 256): names that
 * repro_slice_ieq() finds equal have the same bit. Thread-safe. */
unsigned repro_http_name_bit(const uint8_t *p, size_t n);

/* Sets of such bits, 256 as uint64_t[4] (name_bits, limits.watched_names,
 * capture's redaction filter): add a name, or ask whether it may be in
 * (a clear bit: it is not; a set one: it may be). */
static inline void repro_http_name_set_add(uint64_t set[4], const uint8_t *p, size_t n)
{
    unsigned b = repro_http_name_bit(p, n);
    set[b >> 6] |= UINT64_C(1) << (b & 63);
}

static inline int repro_http_name_set_has(const uint64_t set[4], const uint8_t *p, size_t n)
{
    unsigned b = repro_http_name_bit(p, n);
    return (int)((set[b >> 6] >> (b & 63)) & 1);
}

/*
 * Parses a complete message head from p[0..len). Returns DONE with
 * h->head_len set; NEED_MORE when the empty line ending the head is not in
 * the input yet and len < max_head; MALFORMED otherwise, with *why a static
 * description and *err_off the byte offset of the problem (both optional).
 * Bare LF line endings are accepted (lenient, like real servers). Never
 * allocates; thread-safe.
 */
enum repro_http_outcome repro_http_parse_head(struct repro_http_head *h, enum repro_http_kind kind,
                                              const uint8_t *p, size_t len, size_t max_head,
                                              size_t *err_off, const char **why);

/* How the body after a head is delimited (RFC 9112 section 6.3). */
enum repro_http_body {
    REPRO_HTTP_BODY_NONE = 0,
    REPRO_HTTP_BODY_LENGTH,  /* Content-Length bytes */
    REPRO_HTTP_BODY_CHUNKED, /* chunked coding with optional trailers */
    REPRO_HTTP_BODY_CLOSE,   /* until the connection closes */
    REPRO_HTTP_BODY_TUNNEL   /* the rest of the connection is not HTTP */
};

/*
 * Body framing for a parsed head. req_method is the method of the request a
 * response answers (len 0 when unknown, treated like GET). For requests a
 * Transfer-Encoding other than chunked yields -1 (malformed, RFC 9112 6.3
 * rule 4). Thread-safe.
 */
int repro_http_body_kind(const struct repro_http_head *h, struct repro_slice req_method);

/* Incremental chunked-body scanner. Zero-initialise before the first call. */
struct repro_http_chunked {
    int state;
    uint64_t remaining; /* data bytes left in the current chunk */
    unsigned line_len;  /* bytes of the current size/extension/trailer line */
    unsigned n_digits;
    unsigned trailer_bytes;
};

/*
 * Consumes chunked framing from p[0..len). DONE: the last chunk and the
 * trailers ended at *consumed. NEED_MORE: everything consumed. MALFORMED:
 * bad framing at offset *consumed (non-hex size, size over 2^60, missing
 * CRLF after data, line longer than 4 KiB, trailers over max_trailer).
 */
enum repro_http_outcome repro_http_chunked_scan(struct repro_http_chunked *c, const uint8_t *p,
                                                size_t len, size_t max_trailer, size_t *consumed);
/* Like repro_http_chunked_scan(); on_data(ctx, p, n) also receives each run
 * of data bytes (framing, extensions and trailers left out), in order, as
 * slices of p valid during the call. */
enum repro_http_outcome repro_http_chunked_scan_data(struct repro_http_chunked *c,
                                                     const uint8_t *p, size_t len,
                                                     size_t max_trailer, size_t *consumed,
                                                     void (*on_data)(void *ctx, const uint8_t *p,
                                                                     size_t n),
                                                     void *ctx);
/* Skips n data bytes lost in a capture gap. Returns DONE when the gap fits
 * inside the current chunk's data (the scanner stays in sync), MALFORMED
 * otherwise (sync is lost). */
enum repro_http_outcome repro_http_chunked_skip(struct repro_http_chunked *c, uint64_t n);

/* Decodes a chunked body p[0..len) into out (data bytes only). Returns
 * DONE when the last chunk was seen, NEED_MORE when the input ended first
 * (out holds what was decoded), MALFORMED on bad framing; REPRO_E_LIMIT or
 * REPRO_E_NOMEM (negative) when out cannot grow. */
int repro_http_dechunk(const uint8_t *p, size_t len, struct repro_buf *out);
/* Like repro_http_dechunk(); also sets *trailer_off (optional) to the offset
 * just after the last-chunk line ("0\r\n"), where the trailer section
 * starts, or 0 when the input ended before it. */
int repro_http_dechunk_trailers(const uint8_t *p, size_t len, struct repro_buf *out,
                                size_t *trailer_off);

/*
 * The body of a whole raw message raw whose head h parsed from it: the
 * bytes after the head, or, when h says chunked, those bytes dechunked
 * into tmp (reset first). Returns the body (borrowed from raw or tmp);
 * an empty slice when chunked framing is broken or tmp cannot grow.
 */
struct repro_slice repro_http_message_body(struct repro_slice raw, const struct repro_http_head *h,
                                           struct repro_buf *tmp);

/* Quick check whether p[0..len) can be the start of a message of this kind:
 * 1 yes, 0 no, -1 cannot tell yet (too few bytes). */
int repro_http_looks_like_start(enum repro_http_kind kind, const uint8_t *p, size_t len);

/* ---- content codings (http/http_inflate.c) ---------------------------- */

enum repro_http_coding {
    REPRO_HTTP_CODING_NONE = 0, /* absent or identity */
    REPRO_HTTP_CODING_GZIP,     /* gzip, x-gzip */
    REPRO_HTTP_CODING_DEFLATE,  /* deflate (zlib, or raw deflate as sent in practice) */
    REPRO_HTTP_CODING_OTHER     /* br, zstd, a list of codings ...: not decoded */
};
/* The coding a Content-Encoding value names. Thread-safe. */
enum repro_http_coding repro_http_coding_of(struct repro_slice content_encoding);

/* Outcomes of repro_http_inflate (errors are negative REPRO_E_*). */
enum {
    REPRO_HTTP_INFLATE_END = 0,     /* the stream ended (concatenated gzip members too) */
    REPRO_HTTP_INFLATE_PARTIAL = 1, /* the input ended first: out holds a valid prefix */
    REPRO_HTTP_INFLATE_CAPPED = 2,  /* cap bytes were written and more would follow */
    REPRO_HTTP_INFLATE_CORRUPT = 3  /* not a valid stream (out holds what came before) */
};
/*
 * Undoes content coding c (GZIP or DEFLATE) of p[0..n) into out (reset
 * first), writing at most cap bytes whatever the input claims. Returns an
 * outcome above; REPRO_E_INVAL for another coding; REPRO_E_NOMEM (zlib or
 * out cannot grow), REPRO_E_LIMIT (out's own cap is below cap). Never
 * reads past p[n-1]. Thread-safe.
 */
int repro_http_inflate(const uint8_t *p, size_t n, enum repro_http_coding c, size_t cap,
                       struct repro_buf *out);

/* ---- body digests ----------------------------------------------------- */

#define REPRO_HTTP_DIGEST_LEN 32

/*
 * SHA-256 of a message body with the transfer coding removed: the data
 * bytes of a chunked body (sizes, extensions and trailers left out), the
 * bytes of any other body as they are. Content codings (gzip) are not
 * undone. Capture and replay compute it the same way, so a stored digest
 * can be compared with the digest of a staging response. Invariant: state
 * holds a nettle sha256_ctx; n_bytes counts the data bytes hashed.
 */
struct repro_http_digest {
    uint64_t state[16];
    struct repro_http_chunked chunk;
    int body;        /* enum repro_http_body being decoded */
    uint64_t n_bytes;
};

/* Starts a digest of a body framed as body (enum repro_http_body). */
void repro_http_digest_init(struct repro_http_digest *d, int body);
/* Adds n data bytes (already without transfer coding). */
void repro_http_digest_data(struct repro_http_digest *d, const uint8_t *p, size_t n);
/*
 * Adds body bytes as they are on the wire (chunked framing included for a
 * CHUNKED body). Returns NEED_MORE when all of p[0..len) was taken; DONE
 * when a chunked body ended at *consumed (the rest is not body); MALFORMED
 * on broken chunked framing at *consumed (the digest is then meaningless).
 */
enum repro_http_outcome repro_http_digest_update(struct repro_http_digest *d, const uint8_t *p,
                                                 size_t len, size_t *consumed);
/* Writes the digest to out; d must be initialised again before reuse. */
void repro_http_digest_final(struct repro_http_digest *d, uint8_t out[REPRO_HTTP_DIGEST_LEN]);

/*
 * One call: the digest of the body p[0..len) framed as body (as the
 * framer reported it in repro_http_info.body). Returns DONE when the whole
 * body was there (for CHUNKED: its last chunk was seen; bytes after it are
 * ignored), NEED_MORE when a chunked body was cut short, MALFORMED on bad
 * chunked framing; out is written only on DONE. Thread-safe.
 */
enum repro_http_outcome repro_http_body_digest(int body, const uint8_t *p, size_t len,
                                               uint8_t out[REPRO_HTTP_DIGEST_LEN]);

/* ---- the framer ------------------------------------------------------- */

struct repro_http_limits {
    size_t max_head;    /* a head longer than this is malformed (default 64 KiB) */
    size_t max_store;   /* raw bytes kept per message; the rest is counted only */
    size_t max_trailer; /* chunked trailer bytes (default 16 KiB) */
    struct repro_budget *budget; /* optional, borrowed: charged for kept bytes */
    /* optional, borrowed for the framer's life: 4 words, a set of
     * repro_http_name_bit() values; heads none of whose names is in it get
     * REPRO_HTTP_H_UNWATCHED (capture watches the names it redacts) */
    const uint64_t *watched_names;
};

void repro_http_limits_default(struct repro_http_limits *l);

/* Message flags. */
enum {
    REPRO_HTTP_M_GAP = 1u << 0,         /* bytes missing from the capture */
    REPRO_HTTP_M_TRUNCATED = 1u << 1,   /* the stream ended mid-message, or no memory was
                                           left for its head (with BODY_CAPPED) */
    REPRO_HTTP_M_MALFORMED = 1u << 2,   /* framing could not be parsed */
    REPRO_HTTP_M_BODY_CAPPED = 1u << 3, /* raw bytes beyond max_store not kept */
    REPRO_HTTP_M_TUNNEL = 1u << 4       /* opaque tunnel data, not a message */
};

/* Where a field lies in a message's raw bytes (offsets survive the buffer
 * growing or moving, unlike pointers). */
struct repro_http_span {
    uint32_t off, len;
};

/* The compact result of a parsed head that a framer keeps per message (the
 * full header array is transient: re-parse raw bytes when needed). */
struct repro_http_info {
    enum repro_http_kind kind;
    int status;
    int version_major, version_minor;
    int64_t content_length;
    unsigned flags; /* REPRO_HTTP_H_* */
    int body;       /* enum repro_http_body chosen for this message */
    size_t head_len;
    struct repro_http_span method, target, reason, host;
    /* The head's content_type and content_encoding; off 0 (no value can
     * start there, the start line does) when the head had none. */
    struct repro_http_span content_type, content_encoding;
};

/* Fills info from a parsed head whose bytes start at base. */
void repro_http_info_from_head(struct repro_http_info *info, const struct repro_http_head *h,
                               const uint8_t *base);

/* The bytes of a span inside raw (empty slice when out of range). */
static inline struct repro_slice repro_http_span_slice(struct repro_slice raw,
                                                       struct repro_http_span s)
{
    if ((size_t)s.off + s.len > raw.len)
        return (struct repro_slice){raw.ptr, 0};
    return (struct repro_slice){raw.ptr + s.off, s.len};
}

/* A finished message, valid until the next call on its framer. */
struct repro_http_msg {
    const struct repro_http_info *info; /* NULL if the head never completed */
    struct repro_slice raw;             /* stored bytes (up to max_store) */
    uint64_t wire_bytes;                /* bytes on the wire, gaps included */
    int64_t first_us, last_us;          /* times of the first and last byte */
    unsigned flags;                     /* REPRO_HTTP_M_* */
    const char *why;                    /* static text when MALFORMED */
    /* repro_http_body_digest() of the whole body on the wire, bytes past
     * max_store included; has_body_digest is 0 when not every body byte
     * was seen (GAP, TRUNCATED, MALFORMED, a head that never parsed). */
    uint8_t body_digest[REPRO_HTTP_DIGEST_LEN];
    int has_body_digest;
};

/*
 * One direction of one connection. Owns its raw-message buffer. Invariants:
 * raw.len <= max(limits.max_store, head length) — a head is always kept
 * whole (up to max_head), the body only up to max_store; in state BODY
 * with LENGTH framing body_remaining > 0.
 */
struct repro_http_framer {
    enum repro_http_kind kind;
    struct repro_http_limits limits;
    int state;
    int body;                  /* enum repro_http_body of the current message */
    uint64_t body_remaining;   /* LENGTH framing */
    struct repro_http_chunked chunk;
    size_t head_raw_len;       /* head bytes in raw */
    struct repro_buf raw;
    struct repro_http_info info;
    struct repro_http_msg msg;
    uint64_t wire_bytes;
    int64_t first_us, last_us;
    unsigned flags;
    const char *why;
    char req_method[24];       /* hint: method of the request being answered */
    int at_line_start;         /* resync: the next byte may start a message */
    int finished;              /* msg is valid; reset before the next input */
    int resync_any;            /* after a gap (responses): a start may be at any byte */
    uint64_t skipped_bytes;    /* bytes dropped while resynchronising */
    uint64_t tunnel_bytes;     /* bytes passed through as an opaque tunnel */
    uint64_t capped_bytes;     /* message bytes not kept (max_store or budget) */
    uint64_t n_messages;
    struct repro_http_digest digest; /* of the current message's body */
};

/* mid_stream: the capture may start inside a message, so leading bytes that
 * do not look like a message start are skipped (counted), not malformed. */
void repro_http_framer_init(struct repro_http_framer *f, enum repro_http_kind kind,
                            const struct repro_http_limits *limits, int mid_stream);
void repro_http_framer_release(struct repro_http_framer *f);

/* Sets the method of the request the next response answers (responses
 * only; HEAD and CONNECT change framing). NULL or "" means unknown. */
void repro_http_framer_set_request_method(struct repro_http_framer *f, const char *method,
                                          size_t len);

/*
 * Feeds p[0..len) received at ts_us. Returns NEED_MORE when all bytes were
 * consumed without finishing a message; DONE or MALFORMED when a message
 * ended (read it with repro_http_framer_msg()) after *consumed bytes — call
 * again with the rest. After MALFORMED the framer resynchronises at the next
 * plausible message start. Errors: never fails; memory limits are reported
 * through REPRO_HTTP_M_BODY_CAPPED / MALFORMED.
 */
enum repro_http_outcome repro_http_framer_feed(struct repro_http_framer *f, const uint8_t *p,
                                               size_t len, int64_t ts_us, size_t *consumed);
/* Reports n bytes lost in the capture. DONE if this ended the current
 * message (flagged GAP), NEED_MORE otherwise. */
enum repro_http_outcome repro_http_framer_gap(struct repro_http_framer *f, uint64_t n,
                                              int64_t ts_us);
/* End of stream. DONE if a message ended (a close-delimited body is
 * complete; anything else in progress is flagged TRUNCATED). */
enum repro_http_outcome repro_http_framer_eof(struct repro_http_framer *f, int64_t ts_us);
/* Switches to tunnel mode: all further bytes are opaque and counted. */
void repro_http_framer_tunnel(struct repro_http_framer *f);
/* 1 when the framer is inside a message (bytes seen, not finished). */
int repro_http_framer_busy(const struct repro_http_framer *f);
/* Wire bytes (gaps included) of the message in progress, 0 when not busy:
 * the message began that many bytes before the end of the input fed so far.
 * Capture uses it to find the segment a message started in. */
uint64_t repro_http_framer_pending_wire(const struct repro_http_framer *f);

/* The message that the last DONE/MALFORMED reported; borrowed until the
 * next call on f. */
const struct repro_http_msg *repro_http_framer_msg(const struct repro_http_framer *f);
/* Moves the finished message's raw buffer into *out so the bytes outlive
 * the framer's next call (transferred: the caller releases it with
 * repro_buf_release and gives its len back to limits.budget). */
void repro_http_framer_take_raw(struct repro_http_framer *f, struct repro_buf *out);
/* Buffer reuse for a caller that keeps spare buffers (capture): _lend()
 * gives f the memory of the empty buffer *b for the bytes it is fed next
 * when f is between messages and holds none (returns 1, *b emptied: the
 * memory is f's now), else returns 0. _reclaim() takes back the empty
 * buffer of a framer between messages (returns 1 with *b filled,
 * transferred), else returns 0. A framer keeps memory only while a
 * message is in progress or finished and not taken. */
int repro_http_framer_lend(struct repro_http_framer *f, struct repro_buf *b);
int repro_http_framer_reclaim(struct repro_http_framer *f, struct repro_buf *b);

/* The method of the message in progress once its head has parsed (a
 * request framer), else an empty slice. Borrowed: valid until the next
 * call on f. Capture uses it to frame an early response to a request still
 * being sent. */
struct repro_slice repro_http_framer_current_method(const struct repro_http_framer *f);

/* Counters of one framer since its init. */
struct repro_http_framer_stats {
    uint64_t skipped_bytes; /* dropped while resynchronising */
    uint64_t tunnel_bytes;  /* passed through as an opaque tunnel */
    uint64_t capped_bytes;  /* message bytes not kept (max_store or budget) */
    uint64_t n_messages;    /* messages reported (DONE or MALFORMED) */
};
void repro_http_framer_stats(const struct repro_http_framer *f, struct repro_http_framer_stats *out);

/* ---- pairing by order (RFC 9112 section 9.3) -------------------------- */

/* What a response does to the request it answers. */
enum repro_http_role {
    REPRO_HTTP_ROLE_INTERIM = 0, /* 1xx other than 101: the request still waits */
    REPRO_HTTP_ROLE_FINAL,       /* completes the oldest waiting request */
    REPRO_HTTP_ROLE_TUNNEL       /* final, and the connection becomes a tunnel
                                    (101, or 2xx to CONNECT) */
};

/* The role of a finished response; info NULL (a head that never parsed)
 * counts as FINAL. Thread-safe. */
enum repro_http_role repro_http_response_role(const struct repro_http_info *info);

/*
 * Interim (1xx) responses waiting for the final response of the same
 * request: their statuses ("100" or "100,102") and their raw bytes, which
 * go in front of the final response's bytes. Owns its buffer; bytes are
 * charged to the optional budget (borrowed, must outlive the object).
 * Invariants: raw.len <= max_bytes; statuses is NUL-terminated.
 */
struct repro_http_interim {
    struct repro_buf raw;
    char statuses[64];
    struct repro_budget *budget;
};

void repro_http_interim_init(struct repro_http_interim *it, size_t max_bytes,
                             struct repro_budget *budget);
void repro_http_interim_release(struct repro_http_interim *it);
/* Forgets the waiting interim responses (a capture gap lost their place). */
void repro_http_interim_reset(struct repro_http_interim *it);
/* Adds one interim response: its status is always listed; its bytes are
 * kept when max_bytes and the budget allow (else silently left out). */
void repro_http_interim_add(struct repro_http_interim *it, int status, struct repro_slice raw);
/*
 * Moves the waiting interim responses in front of a final response whose
 * bytes are *raw (charged to the budget) and spans *info (optional): on
 * success *raw becomes the joined bytes, info's spans and *wire_bytes
 * (optional) are shifted by the prefix length, and the interim object
 * takes the old buffer's memory for reuse. The statuses are copied to
 * statuses (size n, optional) and the object is emptied either way.
 * Returns the prefix length added (0 when none, or when memory ran out:
 * then *raw is unchanged and the interim bytes are dropped).
 */
size_t repro_http_interim_attach(struct repro_http_interim *it, struct repro_buf *raw,
                                 struct repro_http_info *info, uint64_t *wire_bytes,
                                 char *statuses, size_t n);

/*
 * Pairing by message order for one connection whose two directions are
 * both seen in full (a client, or capture without loss): requests are
 * answered in the order they were sent, 1xx responses are interim, and
 * the method of the oldest waiting request decides how the next response
 * is framed (HEAD: no body; CONNECT 2xx and 101: tunnel). Capture places
 * responses after packet loss by TCP evidence on top of these rules
 * (capture/http_conn.c). Invariant: n_waiting <= REPRO_HTTP_PAIRER_DEPTH.
 */
#define REPRO_HTTP_PAIRER_DEPTH 32
struct repro_http_pairer {
    struct repro_http_framer *resp; /* borrowed: the response framer it steers */
    char methods[REPRO_HTTP_PAIRER_DEPTH][24]; /* ring of waiting requests' methods */
    unsigned head, n_waiting;
    int tunnel; /* a 101 or CONNECT 2xx was paired: no more HTTP */
    struct repro_http_interim interim;
};

/* resp: the framer reading responses (borrowed until _release). */
void repro_http_pairer_init(struct repro_http_pairer *p, struct repro_http_framer *resp,
                            size_t max_interim);
void repro_http_pairer_release(struct repro_http_pairer *p);
/* A request with this method was sent (or seen complete). Returns
 * REPRO_OK, or REPRO_E_LIMIT when REPRO_HTTP_PAIRER_DEPTH requests already
 * wait (nothing changes). */
int repro_http_pairer_request(struct repro_http_pairer *p, struct repro_slice method);
/*
 * A response finished on the response framer (info as the framer reported
 * it, NULL when its head never parsed). Returns the role: INTERIM (status
 * listed and bytes kept for the final one, the request still waits), FINAL
 * or TUNNEL (the oldest waiting request is answered; *answered, optional,
 * is 1 when there was one and 0 for a response nobody asked for). The
 * framer is told the method of the next waiting request. After FINAL or
 * TUNNEL, p->interim holds the 1xx responses that came before it: move them
 * with repro_http_interim_attach() or drop them with
 * repro_http_interim_reset() before the next call.
 */
enum repro_http_role repro_http_pairer_response(struct repro_http_pairer *p,
                                                const struct repro_http_info *info,
                                                struct repro_slice raw, int *answered);
/* Requests sent and not answered yet. */
unsigned repro_http_pairer_waiting(const struct repro_http_pairer *p);

/*
 * Whether the connection may carry another request after this exchange
 * (RFC 9112 section 9.3): not after a close-delimited response, a 101 or a
 * CONNECT tunnel, or "Connection: close" in either message; HTTP/1.0 (in
 * the request or the response) only with "Connection: keep-alive"; HTTP/1.1
 * otherwise. req may be NULL (unknown: only the response decides); resp
 * NULL gives 0. 1 reuse, 0 close. Thread-safe.
 */
int repro_http_keep_alive(const struct repro_http_info *req, const struct repro_http_info *resp);

/* ---- the head writer/rewriter ------------------------------------------ */

/* One line of a head as the lenient scanner sees it: offsets into the
 * scanned bytes; [start, eol) is the content, [eol, next) the line ending
 * (CRLF, LF, or nothing at the end of input). */
enum {
    REPRO_HTTP_LINE_FIELD = 0, /* "name: value" with a token name */
    REPRO_HTTP_LINE_CONT,      /* obs-fold: starts with SP or HTAB */
    REPRO_HTTP_LINE_OTHER,     /* anything else (a start line, garbage) */
    REPRO_HTTP_LINE_END        /* the empty line ending the head */
};
struct repro_http_line {
    int kind;
    size_t start, eol, next;
    struct repro_slice name, value; /* FIELD: trimmed of SP/HTAB; borrowed from p */
    size_t after_colon;             /* FIELD: offset just past the colon */
    size_t value_start;             /* FIELD: offset of the value (eol when empty) */
};

/* Scans the line at p[off..n) (off < n). Lenient: accepts what the strict
 * parser rejects (whitespace before the colon, obs-fold, bare LF, no final
 * line ending). Returns l->next. Never allocates; thread-safe. */
size_t repro_http_head_line(const uint8_t *p, size_t n, size_t off, struct repro_http_line *l);

/* The common case of repro_http_head_line(), cheaper: when the line at
 * p[off..n) is a token from its first byte followed by ':' and ends in an
 * LF, sets *name to the token (borrowed from p) and returns the offset
 * after the line; repro_http_head_line() would call it a FIELD of that
 * name ending there. Otherwise returns 0 and leaves *name alone. Never
 * allocates; thread-safe. */
size_t repro_http_head_field_quick(const uint8_t *p, size_t n, size_t off, struct repro_slice *name);

/* An edit of a head. name and value are borrowed for the call. */
enum repro_http_edit_op {
    REPRO_HTTP_EDIT_SET = 0, /* field name gets value: the first field of that name
                                keeps its place, later ones are removed; added
                                before the empty line when absent */
    REPRO_HTTP_EDIT_REPLACE, /* like SET, only when the field is present */
    REPRO_HTTP_EDIT_REMOVE,  /* every field of that name goes */
    REPRO_HTTP_EDIT_TARGET,  /* the request target becomes value (path and query) */
    REPRO_HTTP_EDIT_HOST     /* SET of Host */
};
struct repro_http_edit {
    enum repro_http_edit_op op;
    const char *name;         /* SET, REPLACE, REMOVE: a token, compared case-insensitively */
    struct repro_slice value; /* SET, REPLACE, TARGET, HOST: no control byte but HTAB */
};

/* The first field edit (not TARGET) that names name, or NULL. Returns a
 * pointer into edits. */
const struct repro_http_edit *repro_http_edit_find(const struct repro_http_edit *edits, size_t n,
                                                   struct repro_slice name);

/*
 * Writes the head at the start of p[0..len) to out with edits applied
 * (at most 64): a changed field keeps its name's spelling, the bytes up to
 * its value and its line ending (continuation lines of a changed or
 * removed field go); every other byte is copied. Added fields use the
 * start line's line ending. *head_len (optional) gets the length of the
 * input head; bytes after it (a body) are not touched: append them. out is
 * appended to. Returns REPRO_OK; REPRO_E_INVAL for a bad edit (name not a
 * token, a control byte in a value, an empty target or one with white
 * space); REPRO_E_MALFORMED when p
 * has no complete start line or no empty line ending the head;
 * REPRO_E_LIMIT/NOMEM when out cannot grow (out then holds a prefix).
 * Thread-safe.
 */
int repro_http_head_rewrite(enum repro_http_kind kind, const uint8_t *p, size_t len,
                            const struct repro_http_edit *edits, size_t n_edits,
                            struct repro_buf *out, size_t *head_len, struct repro_error *err);

/* ---- a small blocking client ------------------------------------------ */

/*
 * One connection to an HTTP/1.x server, for replay and the demo: connect
 * with a timeout, send a request's bytes, read exactly one response with
 * the framer (HEAD, 1xx, chunked and close-delimited bodies honoured). Not
 * thread-safe per connection; any number of connections may be used from
 * different threads. No TLS, no proxies.
 */
struct repro_http_client {
    int fd;               /* -1 when closed */
    int timeout_ms;       /* per call: connect, or send + whole response */
    size_t max_response;  /* bytes kept of one response (head and body) */
    struct repro_buf rest; /* bytes read past the last response */
};

/* A response read by repro_http_client_exchange(). Owns its buffers;
 * release with repro_http_response_release(). Invariant: when has_info,
 * info's spans lie in raw and raw[info.head_len..] is the body as framed. */
struct repro_http_response {
    struct repro_buf raw;        /* the final response's bytes, up to max_response */
    struct repro_http_info info; /* its head (spans into raw) */
    int has_info;
    int status;
    struct repro_buf body;       /* the body, dechunked (up to max_response) */
    unsigned flags;              /* REPRO_HTTP_M_* (BODY_CAPPED: max_response cut it) */
    char interim[64];            /* "100" or "100,103" of 1xx before it, or "" */
    int keep_alive;              /* the connection may carry another request */
    uint8_t body_digest[REPRO_HTTP_DIGEST_LEN]; /* repro_http_body_digest of the whole body */
    uint64_t wire_bytes;         /* bytes of the final response on the wire */
};

/*
 * Connects to host:port (numeric or a name; IPv4 or IPv6) within
 * timeout_ms. c is initialised here (close an open one first); host and
 * port are borrowed for the call. max_response caps the bytes kept of each response (0: 16
 * MiB). Returns REPRO_OK, or REPRO_E_IO (cannot resolve, refused, timed
 * out: err->sys_errno is ETIMEDOUT) with err set; c->fd is -1 on failure.
 */
int repro_http_client_connect(struct repro_http_client *c, const char *host, const char *port,
                              int timeout_ms, size_t max_response, struct repro_error *err);
/* Closes the connection (if open) and frees its memory; accepts NULL and
 * a client whose connect failed. */
void repro_http_client_close(struct repro_http_client *c);

/*
 * Sends req[0..len) (a whole request, head and body) and reads the one
 * response that answers it, within c->timeout_ms in all. resp is
 * initialised here (callee fills, caller releases even on failure).
 * Returns REPRO_OK; REPRO_E_MALFORMED when the response cannot be framed
 * or req's head does not parse; REPRO_E_IO when sending or reading failed,
 * timed out (sys_errno ETIMEDOUT) or the connection closed before the
 * response ended (sys_errno 0 when it closed before any byte). After
 * anything but REPRO_OK with resp->keep_alive, close the connection.
 */
int repro_http_client_exchange(struct repro_http_client *c, const uint8_t *req, size_t len,
                               struct repro_http_response *resp, struct repro_error *err);
void repro_http_response_release(struct repro_http_response *r);

/* Case-insensitive lookup of a header in a parsed head; NULL if absent. */
const struct repro_http_header *repro_http_find_header(const struct repro_http_head *h,
                                                       const char *name);
/* Case-insensitive comparison of a slice with a C string. */
int repro_slice_ieq(struct repro_slice s, const char *str);

#endif

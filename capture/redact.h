/*
 * Redaction internals shared by capture/redact.c, capture/redact_json.c,
 * capture/http_conn.c and the unit tests (never installed).
 */
#ifndef REPRO_CAPTURE_REDACT_H
#define REPRO_CAPTURE_REDACT_H

#include "repro/capture.h"

/* What replaces a secret value (REPRO_REDACT_MARK, and percent-encoded
 * REPRO_REDACT_MARK_URL in URLs and form bodies) is in repro/core.h: replay
 * reads it too. */

/* The result of redacting one message. */
struct repro_redact_result {
    struct repro_buf out;        /* the bytes to store when redact returned 1 */
    struct repro_http_info info; /* spans into out (when has_info) */
    int has_info;
    unsigned xflags; /* REPRO_XF_REDACTED, _DECODED, _BODY_DROPPED, _BODY_CAPPED */
    char note[200];  /* "" or why the body was decoded or dropped */
    /* What the digest of the stored body is (docs/capture.md, "Body
     * digests"): REPRO_REDACT_DIGEST_WIRE: the body is stored as it came
     * (transfer coding aside), and would be past any cap too, so the
     * framer's digest of the whole wire body stands; _OWN: redaction or
     * decoding changed the body and all of it is here: body_digest is the
     * digest of the stored data; _NONE: no digest may be given (the body
     * is not stored, or was cut at a cap where redaction could change what
     * was not kept). */
    int digest;
    uint8_t body_digest[REPRO_HTTP_DIGEST_LEN];
};

enum { REPRO_REDACT_DIGEST_NONE = 0, REPRO_REDACT_DIGEST_WIRE, REPRO_REDACT_DIGEST_OWN };

/*
 * Quick tests that reject most header names at once. Every name a head
 * pass compares header names with (the secret headers of the rules, the
 * URL headers, Content-Type, Content-Encoding and Content-Length) sets its
 * repro_http_name_bit() in bits; the secret and URL headers alone also in
 * secret_bits. A name whose bit is clear equals none of them; one whose
 * bit is set is compared as before. Built by repro__redact_filter_init()
 * from the rules it is used with.
 */
struct repro__name_filter {
    uint64_t bits[4];
    uint64_t secret_bits[4];
};

/* Fills f for rules (NULL: the defaults). rules' strings are read only
 * during the call. */
void repro__redact_filter_init(struct repro__name_filter *f, const struct repro_redact_rules *rules);

/*
 * Redacts one message: raw is what the framer kept, info its parsed head or
 * NULL when the head never parsed (malformed, truncated, gapped), mflags its
 * REPRO_XF_* flags so far, max_body the cap on a decoded body. Fail-closed:
 * a head that does not parse keeps its start line and header names but no
 * value of a secret (or unparseable) field; a body that could hold a secret
 * and cannot be scrubbed with certainty is not stored.
 *
 * Returns 1 with res->out filled (transferred: repro_buf_release) when the
 * stored bytes differ from raw; 0 when raw may be stored as it is (res->out
 * is empty); REPRO_E_NOMEM or REPRO_E_LIMIT when memory ran out (then
 * nothing of raw may be stored). res->xflags and res->note are set in every
 * case. Thread-safe; rules are only read.
 */
int repro__redact(const struct repro_redact_rules *rules, enum repro_http_kind kind,
                  struct repro_slice raw, const struct repro_http_info *info, unsigned mflags,
                  size_t max_body, struct repro_redact_result *res);
/* The same with f built from rules beforehand (a capture builds it once).
 * head_as_parsed: info is a framer's for raw[0..info->head_len) exactly as
 * it is (no interim heads put in front since), and the framer watched
 * f->secret_bits (repro_http_limits.watched_names); then a head flagged
 * REPRO_HTTP_H_UNWATCHED is not scanned again field by field. */
int repro__redact_filtered(const struct repro_redact_rules *rules,
                           const struct repro__name_filter *f, enum repro_http_kind kind,
                           struct repro_slice raw, const struct repro_http_info *info,
                           int head_as_parsed, unsigned mflags, size_t max_body,
                           struct repro_redact_result *res);

/* Whether a request head asks to upgrade to h2c (Upgrade lists "h2c"). */
int repro__is_h2c_upgrade(struct repro_slice raw);

/* What a first payload segment shows, for connections that are not HTTP/1:
 * REPRO_PROTO_HTTP2 for the HTTP/2 connection preface (or a prefix of it),
 * REPRO_PROTO_TLS for a TLS record header, else REPRO_PROTO_OTHER. */
enum { REPRO_PROTO_OTHER = 0, REPRO_PROTO_HTTP2, REPRO_PROTO_TLS };
int repro__sniff_proto(const uint8_t *p, size_t len);

enum repro_json_scrub {
    REPRO_JSON_OK = 0,  /* valid JSON text(s); out holds the scrubbed copy */
    REPRO_JSON_PREFIX,  /* valid so far but the input ended inside a value */
    REPRO_JSON_EMPTY,   /* only whitespace */
    REPRO_JSON_INVALID, /* not JSON (out holds garbage) */
    REPRO_JSON_NOMEM    /* out could not grow */
};

/*
 * Copies the JSON text p[0..len) to out, replacing the value of every
 * member whose decoded name is_secret() accepts by "[REDACTED]" (a JSON
 * string). *n_redacted counts them. See capture/redact_json.c.
 */
enum repro_json_scrub repro__json_scrub(const uint8_t *p, size_t len,
                                        int (*is_secret)(void *ctx, const uint8_t *name, size_t n),
                                        void *ctx, struct repro_buf *out, size_t *n_redacted);

#endif

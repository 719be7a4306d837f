/*
 * repro capture: packets in, HTTP exchanges out.
 *
 *   source (pcap file | live interface, libpcap)
 *     -> decode (link, VLAN, IPv4/IPv6, TCP; bounds-checked)
 *     -> TCP reassembly (per direction, gaps reported with their length)
 *     -> HTTP framing and request/response pairing (repro/http.h)
 *     -> redaction -> sink (the store writer, or a test's callback)
 *
 * Memory is capped per message, per stream and overall; whatever a cap drops
 * is counted in struct repro_capture_stats.
 */
#ifndef REPRO_CAPTURE_H
#define REPRO_CAPTURE_H

#include "repro/core.h"
#include "repro/http.h"

#include <stdint.h>

/* ---- decoding ---------------------------------------------------------- */

/* A decoded TCP segment. Pointers borrow from the packet buffer passed to
 * repro_decode_packet() and are valid while it is. */
struct repro_pkt {
    int64_t ts_us;
    uint8_t family; /* 4 or 6 */
    uint8_t tcp_flags;
    uint16_t sport, dport;
    uint8_t src[16], dst[16]; /* IPv4 uses the first 4 bytes */
    uint32_t seq, ack;
    const uint8_t *payload;
    uint32_t payload_len; /* bytes present in the capture */
    uint32_t seg_len;     /* bytes the IP header says the segment carries */
};

#define REPRO_TCP_FIN 0x01
#define REPRO_TCP_SYN 0x02
#define REPRO_TCP_RST 0x04
#define REPRO_TCP_PSH 0x08
#define REPRO_TCP_ACK 0x10

enum repro_decode_result {
    REPRO_DECODE_TCP = 0,  /* *out holds a TCP segment */
    REPRO_DECODE_SKIP = 1, /* a valid packet that is not TCP over IP (or a fragment) */
    REPRO_DECODE_MALFORMED = 2
};

/* Why a packet was skipped, for the summary counters. */
enum repro_skip_reason {
    REPRO_SKIP_NONE = 0,
    REPRO_SKIP_NOT_IP,
    REPRO_SKIP_NOT_TCP,
    REPRO_SKIP_FRAGMENT,
    REPRO_SKIP_LINKTYPE,
    REPRO_SKIP__COUNT
};

/*
 * Decodes one captured frame of libpcap link type dlt (DLT_EN10MB,
 * DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_NULL, DLT_LOOP, DLT_RAW, DLT_IPV4,
 * DLT_IPV6), with 802.1Q/802.1ad/QinQ tags, IPv4 options and IPv6
 * extension headers. caplen bytes are present at p. On MALFORMED, *why is a
 * static description; on SKIP, *skip says why. Never allocates;
 * thread-safe.
 */
enum repro_decode_result repro_decode_packet(int dlt, const uint8_t *p, size_t caplen,
                                             struct repro_pkt *out, enum repro_skip_reason *skip,
                                             const char **why);


/* ---- capture sessions -------------------------------------------------- */

/* Exchange flags, stored in exchanges.flags (docs/schema.md). Values never
 * change once released. */
enum {
    REPRO_XF_GAP = 1u << 0,         /* bytes of the request or response were not captured */
    REPRO_XF_TRUNCATED = 1u << 1,   /* the connection or capture ended mid-message */
    REPRO_XF_UNANSWERED = 1u << 2,  /* no response was captured */
    REPRO_XF_NO_REQUEST = 1u << 3,  /* a response whose request was not captured */
    REPRO_XF_MALFORMED = 1u << 4,   /* framing could not be parsed */
    REPRO_XF_REDACTED = 1u << 5,    /* secrets were replaced before storage */
    REPRO_XF_BODY_CAPPED = 1u << 6, /* stored bytes were cut at a cap */
    REPRO_XF_TUNNEL = 1u << 7,      /* the connection became a tunnel after this exchange */
    REPRO_XF_INTERIM = 1u << 8,     /* 1xx interim responses preceded the final one */
    /* After packet loss the TCP evidence did not decide which request this
     * response answers: the pair is a guess (docs/capture.md). */
    REPRO_XF_PAIRING_UNCERTAIN = 1u << 9,
    REPRO_XF_BODY_DROPPED = 1u << 10, /* a body was not stored: it could not be scrubbed */
    REPRO_XF_DECODED = 1u << 11       /* a gzip/deflate body is stored decoded */
};
#define REPRO_XF_INCOMPLETE                                                 \
    (REPRO_XF_GAP | REPRO_XF_TRUNCATED | REPRO_XF_UNANSWERED | REPRO_XF_NO_REQUEST | \
     REPRO_XF_MALFORMED | REPRO_XF_PAIRING_UNCERTAIN)
/* Number of flag bits defined above. */
#define REPRO_XF__BITS 12

/* Name of a single flag bit ("gap"), NULL for unknown bits. */
const char *repro_xflag_name(unsigned bit);

/* How a connection ended (connections.end_reason). */
enum repro_conn_end {
    REPRO_END_FIN = 0, /* both sides closed */
    REPRO_END_RST,     /* reset */
    REPRO_END_TIMEOUT, /* idle longer than the idle timeout */
    REPRO_END_EOF,     /* still open when the capture ended */
    REPRO_END_EVICTED, /* dropped because the connection table was full */
    REPRO_END_MEMORY   /* closed early to free held bytes for newer traffic */
};
const char *repro_conn_end_name(int reason);

/* A connection as handed to the sink. Borrowed for the callback's duration;
 * conn_open may set store_id, which later callbacks see. */
struct repro_conn_info {
    uint64_t id; /* capture-local, 1-based, in order of first packet */
    int64_t store_id; /* set by the sink (for example the database row id) */
    int is_http;      /* 0 when the payload never looked like HTTP */
    int family;
    uint8_t client_ip[16], server_ip[16];
    uint16_t client_port, server_port;
    int64_t opened_us, closed_us; /* closed_us -1 while open */
    int end_reason;               /* enum repro_conn_end, -1 while open */
    int mid_stream;               /* no SYN seen: picked up mid-connection */
    uint64_t bytes_c2s, bytes_s2c, gap_bytes;
    uint64_t n_exchanges;
};

/* An exchange as handed to the sink. Every pointer borrows until the
 * callback returns. */
struct repro_exchange {
    uint64_t conn_id;
    uint64_t seq; /* 0-based position of the exchange on its connection */
    struct repro_slice request, response; /* raw bytes after redaction (may be empty) */
    struct repro_slice method, uri, host, reason;
    char version[12]; /* "HTTP/1.1" of the request (else the response), "" if unknown */
    int status; /* 0 when no response */
    char interim[64]; /* "100,100" or "" */
    int64_t req_first_us, req_last_us, resp_first_us, resp_last_us; /* -1 if absent */
    uint64_t request_bytes, response_bytes; /* on the wire */
    unsigned flags; /* REPRO_XF_* */
    const char *note; /* why it is malformed, or NULL */
    /* SHA-256 of each message body as stored: after redaction, transfer
     * coding removed (dechunked), computed over the whole body even when
     * the stored bytes were cut at a cap, so replay can compare bodies too
     * big to store (repro_http_body_digest() computes the same of a staging
     * response). has_*_digest is 0 when not every body byte was seen (gap,
     * truncation, malformed, no such message), when the body was not stored
     * (REPRO_XF_BODY_DROPPED), and when a body cut at the cap could have
     * been changed by redaction past the cap (JSON, form, decoded gzip):
     * never a digest of bytes redaction changed. An empty body has a
     * digest. docs/capture.md, "Body digests". */
    uint8_t request_digest[32], response_digest[32];
    int has_request_digest, has_response_digest;
};

/* Where a session delivers its results. All callbacks are optional; a
 * non-zero return from one stops the session with that code. ctx is
 * borrowed for the session's life. Callbacks run inside
 * repro_capture_packet() and repro_capture_finish() (never in
 * repro_capture_free(), which drops open connections silently) on the
 * calling thread and must not call back into the same session. Their
 * pointer arguments are borrowed until the callback returns: copy what
 * must outlive it (a sink that batches writes copies the bytes). */
struct repro_capture_sink {
    void *ctx;
    int (*conn_open)(void *ctx, struct repro_conn_info *c); /* at its first payload byte */
    int (*exchange)(void *ctx, const struct repro_conn_info *c, const struct repro_exchange *x);
    int (*conn_close)(void *ctx, const struct repro_conn_info *c);
};

/*
 * Redaction rules (docs/capture.md). Strings are borrowed for the session's
 * life; names compare case-insensitively. By default the headers
 * Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key,
 * X-Auth-Token, X-Csrf-Token and the fields password, passwd, pwd, secret,
 * client_secret, token, access_token, refresh_token, id_token, api_key,
 * apikey, auth, credentials, private_key, session, sessionid, csrftoken,
 * csrf_token (in JSON bodies, form bodies, query strings of the target and
 * of Referer, Location and Origin) are redacted. keep names defaults that
 * stay (per-rule opt-out); no_defaults drops all of them.
 */
struct repro_redact_rules {
    int no_defaults; /* 1: none of the default names above */
    const char **headers;      /* more header names */
    size_t n_headers;
    const char **query_params; /* more query and form field names */
    size_t n_query_params;
    const char **json_fields;  /* more JSON member names */
    size_t n_json_fields;
    const char **keep;         /* default names not to redact */
    size_t n_keep;
};

/*
 * A session's caps. Memory comes in two budgets, both counted by
 * repro_capture_memory(): held bytes (max_total: messages, out-of-order
 * segments with their bookkeeping, the queues of requests waiting for
 * responses) and the connection table (max_table: per-connection state
 * and the hash table). When held bytes run out, the least recently active
 * connection holding bytes is closed (end reason "memory") so new traffic
 * is still stored; when the table runs out, the oldest connection that
 * never carried payload is, else the least recently active one (end reason
 * "evicted"). docs/capture.md, "Memory".
 */
struct repro_capture_limits {
    struct repro_http_limits http;  /* per message */
    size_t max_stream_ooo;          /* out-of-order bytes held per direction */
    size_t max_total;               /* all held bytes (messages + out-of-order + queues) */
    size_t max_table;               /* bytes of connection state (the table) */
    size_t max_connections;         /* open connections tracked */
    size_t max_pipeline;            /* requests waiting for responses per connection */
    int64_t idle_timeout_us;        /* a silent connection is closed after this */
};
/* What a capture session may use when --max-memory is left at its default
 * (256 MiB, less the live pipeline's shares: docs/capture.md). */
#define REPRO_CAPTURE_DEFAULT_MEMORY ((size_t)176 << 20)
/* The least repro_capture_limits_from_memory() accepts. */
#define REPRO_CAPTURE_MIN_MEMORY ((size_t)4 << 20)
/* Defaults: 1 MiB per message, 64 requests waiting, 300 s idle timeout,
 * and the memory caps of repro_capture_limits_from_memory(l,
 * REPRO_CAPTURE_DEFAULT_MEMORY). */
void repro_capture_limits_default(struct repro_capture_limits *l);
/*
 * Splits a memory budget of bytes for one capture session: 3/8 held bytes
 * (max_total), 3/8 the connection table (max_table, and max_connections
 * as many connections as that holds before any payload), the last 1/4 as
 * room for the allocator's rounding of growing message buffers and the
 * transient copy redaction makes while storing; max_stream_ooo is
 * max_total/64 within [64 KiB, 1 MiB]. The other fields are left as they
 * are. Returns REPRO_OK, or REPRO_E_INVAL when bytes is below
 * REPRO_CAPTURE_MIN_MEMORY (l unchanged). Thread-safe.
 */
int repro_capture_limits_from_memory(struct repro_capture_limits *l, size_t bytes);

/*
 * The counters of one session, shown in the summary and stored with it
 * (captures.stats_json, docs/schema.md): every scalar counter is listed
 * once here, X(name, description), and the struct, the stored counters
 * (app/capture_rows.c) and the summary's check below follow this list.
 */
#define REPRO_CAPTURE_COUNTERS(X)                                                        \
    X(packets, "frames read")                                                            \
    X(bytes, "bytes of those frames")                                                    \
    X(tcp_packets, "frames that held a TCP segment")                                     \
    X(malformed_packets, "frames that could not be decoded")                             \
    X(connections, "TCP connections seen")                                               \
    X(http_connections, "connections that carried HTTP/1.x")                             \
    X(non_http_connections, "connections that never looked like HTTP")                   \
    X(exchanges, "request/response pairs handed to the sink")                            \
    X(incomplete, "exchanges with an incompleteness flag")                               \
    X(redacted, "exchanges in which secrets were replaced")                              \
    X(bodies_decoded, "gzip/deflate bodies stored decoded")                              \
    X(bodies_dropped, "bodies not stored because they could not be scrubbed")           \
    X(tls_connections, "connections that start with a TLS record")                       \
    X(http2_connections, "connections that start with the HTTP/2 preface")               \
    X(h2c_upgrades, "requests upgraded to h2c by a 101 response")                        \
    X(retransmitted_bytes, "bytes seen again")                                           \
    X(overlap_bytes, "bytes of overlapping segments")                                    \
    X(gap_bytes, "bytes never captured")                                                 \
    X(gaps, "holes in streams")                                                          \
    X(dropped_ooo_bytes, "out-of-order data dropped at a cap")                           \
    X(dropped_body_bytes, "message bytes not stored (per-message cap or budget)")        \
    X(dropped_connections, "connections evicted because the table was full")             \
    X(evicted_pressure_connections, "connections closed to free held bytes (memory)")    \
    X(evicted_pressure_bytes, "held bytes those closings freed")                         \
    X(capped_budget_messages, "messages cut because held bytes ran out (body_capped)")   \
    X(dropped_alloc_packets, "packets dropped: connection state could not be allocated") \
    X(dropped_pipeline, "requests beyond max_pipeline")                                  \
    X(skipped_stream_bytes, "bytes skipped while resynchronising")                       \
    X(tunnel_bytes, "bytes of connections that became tunnels")                          \
    X(errors, "input problems reported (records, streams)")

struct repro_capture_stats {
#define REPRO__CAPTURE_COUNTER_FIELD(name, doc) uint64_t name;
    REPRO_CAPTURE_COUNTERS(REPRO__CAPTURE_COUNTER_FIELD)
#undef REPRO__CAPTURE_COUNTER_FIELD
    uint64_t skipped[REPRO_SKIP__COUNT];    /* per enum repro_skip_reason */
    uint64_t incomplete_by[REPRO_XF__BITS]; /* per REPRO_XF_* bit index, for the incomplete reasons */
};

struct repro_capture;

/* Creates a session; sink, rules and limits are copied (the rules'
 * strings and sink->ctx are borrowed until repro_capture_free()). Returns
 * NULL on allocation failure; free with repro_capture_free(). Not
 * thread-safe: one thread per session. */
struct repro_capture *repro_capture_new(const struct repro_capture_sink *sink,
                                        const struct repro_redact_rules *rules,
                                        const struct repro_capture_limits *limits);
void repro_capture_free(struct repro_capture *cap);
/* Names the input in warnings ("capture 'x.pcap'"); copied. */
void repro_capture_set_source(struct repro_capture *cap, const char *name);

/*
 * Feeds one frame (libpcap link type dlt, caplen bytes at p, captured at
 * ts_us). record_no identifies the frame in messages. Bad packets are
 * counted and logged, not returned as errors. Returns REPRO_OK, or the
 * non-zero code a sink callback returned (with err filled).
 */
int repro_capture_packet(struct repro_capture *cap, int dlt, const uint8_t *p, size_t caplen,
                         int64_t ts_us, uint64_t record_no, struct repro_error *err);
/* Ends every open connection (reason eof) and flushes their exchanges. */
int repro_capture_finish(struct repro_capture *cap, struct repro_error *err);
/*
 * Lets time pass without a packet: closes connections idle for longer than
 * the idle timeout at now_us (reason timeout), so a quiet interface still
 * expires them. now_us is on the packets' clock (wall clock for a live
 * interface: libpcap stamps packets with it); a now_us earlier than the
 * last packet expires nothing. Callbacks run as in repro_capture_packet().
 * Returns REPRO_OK, or the non-zero code a sink callback returned (err
 * filled); REPRO_E_INVAL after a sink failure. Same thread as the session.
 */
int repro_capture_tick(struct repro_capture *cap, int64_t now_us, struct repro_error *err);
/*
 * Bytes the session holds now: held bytes (messages, out-of-order data,
 * queues) plus the connection table, as charged to the two budgets of
 * struct repro_capture_limits (requested sizes with a fixed per-allocation
 * overhead; the allocator's rounding of growing buffers is the headroom
 * repro_capture_limits_from_memory() leaves). Never above max_total +
 * max_table but for one connection's state and the transient copy
 * redaction makes while storing. Not thread-safe: call on the session's
 * thread (a status line from elsewhere reads a copy made there).
 */
size_t repro_capture_memory(const struct repro_capture *cap);
/* Connections tracked now (the status line's open streams). Same thread
 * as the session. */
size_t repro_capture_open_streams(const struct repro_capture *cap);
/* The session's counters: callee-owned, valid until repro_capture_free(),
 * updated in place by every later call on cap. */
const struct repro_capture_stats *repro_capture_stats(const struct repro_capture *cap);
/* Prints the summary (packets, bytes, connections, exchanges, incomplete by
 * reason, dropped by cap) to f. */
void repro_capture_print_summary(const struct repro_capture *cap, FILE *f);

/* ---- packet sources ---------------------------------------------------- */

struct repro_source;

struct repro_source_opts {
    const char *file;      /* -r: pcap or pcapng file ("-" for stdin) */
    const char *iface;     /* -i: live interface */
    const char *filter;    /* BPF in tcpdump syntax, or NULL */
    int snaplen;           /* live: 0 for 262144 */
    int buffer_kib;        /* live: kernel buffer, 0 for 32 MiB */
};

/* Writes the interfaces live capture can open, one per line as tcpdump -D
 * does ("1.lo [Up, Running, Loopback]"). REPRO_E_PCAP when libpcap cannot
 * list them. */
int repro_source_list_interfaces(FILE *out, struct repro_error *err);

/* Opens a source (file or live backend). Returns NULL with err set. */
struct repro_source *repro_source_open(const struct repro_source_opts *opts,
                                       struct repro_error *err);
void repro_source_close(struct repro_source *src);
/* Link type (DLT_*) of the frames. */
int repro_source_dlt(const struct repro_source *src);

enum repro_source_next {
    REPRO_SOURCE_PACKET = 0,  /* *data, *caplen, *ts_us filled (borrowed until next call) */
    REPRO_SOURCE_TIMEOUT = 1, /* live: nothing within the read timeout */
    REPRO_SOURCE_END = 2,     /* end of file */
    REPRO_SOURCE_ERROR = 3    /* err says what; e.g. a truncated file */
};
enum repro_source_next repro_source_next(struct repro_source *src, const uint8_t **data,
                                         size_t *caplen, int64_t *ts_us, struct repro_error *err);
/* Human-readable description ("file 'x.pcap'", "interface 'lo'"). */
const char *repro_source_name(const struct repro_source *src);

/* ---- the live reader ---------------------------------------------------- */

/*
 * A thread that empties a live source's kernel ring into batches of copied
 * packets, so packet reads never wait for parsing or the database
 * (capture/source_reader.c says why this shape). One consumer thread takes
 * batches with repro_reader_next() and gives each back with
 * repro_reader_release(). When no batch is free (the consumer is behind by
 * the whole queue budget) packets are dropped and counted, never blocked.
 */
struct repro_reader;

/* One packet of a batch: caplen bytes at batch->data + off. */
struct repro_batch_pkt {
    int64_t ts_us;
    uint32_t caplen, off;
    uint64_t record_no; /* 1-based, in order of reading, for messages */
};

struct repro_packet_batch {
    uint32_t n;    /* packets */
    uint32_t used; /* data bytes in use */
    struct repro_batch_pkt *pkts;
    uint8_t *data;
    struct repro_packet_batch *next; /* the reader's lists */
    /* -1; in the reader's ready list, >= 0 marks a shell: no buffers, its
     * packets at this offset of the spool (never handed to the consumer) */
    int64_t spool_off;
    uint64_t spool_caplen; /* a shell's packets' bytes (caplen), for the drop counts */
    uint64_t queued_ns;    /* when it was handed over (monotonic), for its wait */
};

/* Counters of a reader; every field may be read while it runs. */
struct repro_reader_stats {
    uint64_t packets, bytes;                 /* read from the kernel */
    uint64_t kernel_drops;                   /* ring full (pcap_stats ps_drop) */
    uint64_t iface_drops;                    /* dropped by the interface (ps_ifdrop) */
    uint64_t queue_drops, queue_drop_bytes;  /* no free batch: the consumer was behind */
    uint64_t queued_bytes;                   /* in batches not yet released (gauge) */
    uint64_t batches, wakeups;               /* batches handed over; poll wakeups */
    uint64_t spooled_bytes;                  /* in the spool, not yet read back (gauge) */
    uint64_t spool_peak_bytes;               /* the most spooled_bytes ever was */
    uint64_t spooled_batches, spool_errors;  /* batches written to the spool; failed
                                                writes and reads (their packets are
                                                in queue_drops) */
    uint64_t spool_left_batches;             /* at the end: unread, so the file was
                                                kept for recovery */
};

/* Starts the reader on a live source (which it switches to non-blocking
 * reads). The source is borrowed, and must not be read by anyone else,
 * until repro_reader_finish(). max_queue_bytes bounds the batches (at
 * least two of about 1.2 MiB). REPRO_E_INVAL for a file source,
 * REPRO_E_PCAP, REPRO_E_NOMEM. */
int repro_reader_start(struct repro_source *src, size_t max_queue_bytes,
                       struct repro_reader **out, struct repro_error *err);
/* Gives the reader a spool: batches the queue budget cannot hold are
 * written to the file name in directory dir (created, mode 0600; it must
 * not exist) instead
 * of being dropped, up to max_bytes not yet read back (0: no spool, the
 * default). repro_reader_next() reads them back in order; the consumer
 * must give each batch back before it asks for the next. The file is in
 * the spool format (docs/spool-format.md; capture_id goes in its header),
 * flock()ed while the reader lives and synced to disk every half second
 * while written, so after a kill -9 or a power cut what was not yet read
 * back can be recovered (repro_spool_recovery_open). repro_reader_finish()
 * removes it, unless batches were left unread (then spool_left_batches).
 * Once, before traffic matters (a second call is refused); REPRO_E_IO when
 * the file cannot be made (the message quotes it). */
int repro_reader_spool(struct repro_reader *r, const char *dir, const char *name,
                       int64_t capture_id, uint64_t max_bytes, struct repro_error *err);
/* Waits up to timeout_ms for a batch. Returns 1 with *batch (borrowed until
 * repro_reader_release), 0 on timeout, -1 once the reader has ended (after
 * repro_reader_stop() and its drain, or a read error) and every batch was
 * taken. Consumer thread only. */
int repro_reader_next(struct repro_reader *r, int timeout_ms, struct repro_packet_batch **batch);
void repro_reader_release(struct repro_reader *r, struct repro_packet_batch *batch);
/* Asks the reader to end: it reads what the kernel hands over in the next
 * 150 ms (the last partly filled block), then ends. Any thread;
 * async-signal-safe (one atomic store). */
void repro_reader_stop(struct repro_reader *r);
/* How long the oldest batch handed over (spooled or not) has waited for
 * the consumer to take it (0 when none waits), at monotonic time now_ns. Any thread,
 * lock-free: the live agent's CPU policy reads it (app/live_priority.c). */
uint64_t repro_reader_wait_ns(struct repro_reader *r, uint64_t now_ns);
/* How long the reader thread has waited for the lock it shares with the
 * consumer (0 when it does not wait): a consumer starved while holding it
 * stalls the reader. Any thread, lock-free. */
uint64_t repro_reader_blocked_ns(struct repro_reader *r, uint64_t now_ns);
/* Thread-safe snapshot of the counters. */
void repro_reader_stats(struct repro_reader *r, struct repro_reader_stats *out);
/* Stops, joins and frees the reader (accepts NULL); batches not yet taken
 * are discarded, so call it after repro_reader_next() returned -1. *final
 * (may be NULL) gets the last counters. Returns REPRO_OK or the read error
 * that ended the thread (err set). */
int repro_reader_finish(struct repro_reader *r, struct repro_reader_stats *final,
                        struct repro_error *err);

/* ---- a spool left behind: recovery ---------------------------------------- */

/*
 * A live agent that ends without cleaning up (kill -9, a power cut, a
 * failure with batches unread) leaves its spool file (repro_reader_spool)
 * behind. The recovery reader walks it and hands back, in order, every
 * batch not yet read back, after checking its checksum and its packet
 * records (a crash can tear the last writes; docs/spool-format.md). It
 * reads bytes from disk that no one vouches for: anything it cannot trust
 * is skipped and counted, never handed back.
 */
struct repro_spool_recovery;

struct repro_spool_info {
    int dlt;             /* the link type of the packets */
    int64_t capture_id;  /* the capture that wrote it */
    int64_t created_us;  /* when (wall clock) */
    uint32_t pid;        /* by which process */
};

struct repro_spool_recovery_stats {
    uint64_t batches, packets, bytes; /* handed back (bytes: caplen) */
    uint64_t read_batches;            /* parsed before the writer ended */
    uint64_t bad_batches, bad_bytes;  /* a wrong checksum or packet record: skipped */
    uint64_t torn_bytes;              /* from the first header that is cut short or
                                         wrong to the end: not walked */
};

/* Starts recovering the spool open at fd (borrowed; name is for
 * messages). REPRO_E_MALFORMED when its header is not a spool's (err
 * names the file and what is wrong), REPRO_E_UNSUPPORTED for another
 * version, REPRO_E_IO, REPRO_E_NOMEM. */
int repro_spool_recovery_open(int fd, const char *name, struct repro_spool_recovery **out,
                              struct repro_spool_info *info, struct repro_error *err);
/* The next unread batch, borrowed until the next call: 1, or 0 at the
 * end. Skipped batches are counted; the first problem is described by
 * repro_spool_recovery_problem(). */
int repro_spool_recovery_next(struct repro_spool_recovery *rc,
                              const struct repro_packet_batch **batch);
void repro_spool_recovery_stats(const struct repro_spool_recovery *rc,
                                struct repro_spool_recovery_stats *out);
/* Marks the batch last handed back as read in the file (its state word),
 * so that a recovery interrupted later (a stop, another crash) does not
 * hand it back again. REPRO_E_IO when the file cannot be written. */
int repro_spool_recovery_mark_read(struct repro_spool_recovery *rc);
/* The first thing found wrong ("" when none), naming the offset. */
const char *repro_spool_recovery_problem(const struct repro_spool_recovery *rc);
void repro_spool_recovery_free(struct repro_spool_recovery *rc);

#endif

/*
 * Unit tests for capture/decode.c: one table line per frame shape (link
 * types, VLAN tags, IPv4/IPv6 with options and extension headers,
 * fragments, non-TCP, padding, offload, snap length, malformed headers).
 * Every frame sits right before a PROT_NONE page and is also decoded cut at
 * every length from 0 to its full size. Also repro_endpoint_format().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pcap/dlt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "repro/capture.h"
#include "test_util.h"

/* ---- frame builder ------------------------------------------------------ */

enum link {
    L_ETH,
    L_SLL,
    L_SLL2,
    L_NULL_LE, /* DLT_NULL, family in little-endian host order */
    L_NULL_BE, /* DLT_NULL, family in big-endian host order */
    L_LOOP,    /* DLT_LOOP: family in network order */
    L_RAW,
    L_RAW_OPENBSD,  /* DLT_RAW as numbered on OpenBSD (14) */
    L_LINKTYPE_RAW, /* 101 */
    L_DLT_IPV4,
    L_DLT_IPV6,
    L_UNKNOWN /* a link type the decoder does not know (DLT_IEEE802_11) */
};

#define EXT_HBH 1u  /* IPv6 hop-by-hop options (8 bytes) */
#define EXT_DST 2u  /* IPv6 destination options (16 bytes) */
#define EXT_FRAG 4u /* IPv6 fragment header */
#define EXT_RT 8u   /* IPv6 routing header (24 bytes) */
#define EXT_AH 16u  /* IPv6 authentication header (12 + 4 bytes) */

enum bad {
    BAD_NONE,
    BAD_IHL,          /* IPv4 IHL 4 (16 bytes) */
    BAD_IHL_BIG,      /* IPv4 IHL 15 with a shorter packet */
    BAD_DOFF,         /* TCP data offset 4 (16 bytes) */
    BAD_DOFF_BIG,     /* TCP data offset 15 with a shorter segment */
    BAD_EXT_LEN,      /* IPv6 hop-by-hop header claiming 1608 bytes */
    BAD_IP_VERSION,   /* version nibble other than the ethertype says */
    BAD_TOTAL_SHORT,  /* IPv4 total length 10 */
    BAD_V6_PLEN0,     /* IPv6 payload length 0 (jumbogram) */
    BAD_RAW_VERSION,  /* raw packet with version 5 */
    BAD_V6_PLEN_SHORT /* IPv6 payload length shorter than the TCP header */
};

struct spec {
    int link;
    int tags; /* VLAN tags: outer TPID tpid0 (0: 0x8100), inner ones 0x8100 */
    uint16_t tpid0;
    int ip;        /* 4, 6; 0: ARP */
    uint32_t af;   /* DLT_NULL/DLT_LOOP family; 0: 2 for IPv4, 30 for IPv6 */
    uint8_t proto; /* 0: TCP (6); 17: UDP */
    unsigned ext;  /* IPv6 extension headers, in the order hbh, dst, rt, ah, frag */
    uint16_t frag; /* IPv4 flags and offset field; IPv6 fragment offset field */
    int ip_opts;   /* IPv4 option bytes (multiple of 4) */
    int tcp_opts;  /* TCP option bytes (multiple of 4) */
    int payload;
    int pad;        /* link-layer bytes after the IP packet */
    int cut;        /* bytes cut from the end by the snap length */
    int total_zero; /* IPv4 total length 0 (segmentation offload) */
    int bad;
};

struct frame {
    uint8_t b[2048];
    size_t len;
    size_t payload_off;
    int dlt;
};

static const uint8_t ip4_src[4] = {192, 168, 1, 10};
static const uint8_t ip4_dst[4] = {93, 184, 216, 34};
static const uint8_t ip6_src[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
static const uint8_t ip6_dst[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80};
#define SPORT 51234
#define DPORT 80
#define SEQ 0x11223344u
#define ACK 0xf5667788u
#define FLAGS (REPRO_TCP_PSH | REPRO_TCP_ACK)

static void put8(struct frame *f, unsigned v)
{
    assert_true(f->len < sizeof f->b);
    f->b[f->len++] = (uint8_t)v;
}

static void put16(struct frame *f, unsigned v)
{
    put8(f, (v >> 8) & 0xff);
    put8(f, v & 0xff);
}

static void put32(struct frame *f, uint32_t v)
{
    put16(f, v >> 16);
    put16(f, v & 0xffff);
}

static void putmem(struct frame *f, const void *p, size_t n)
{
    assert_true(f->len + n <= sizeof f->b);
    memcpy(f->b + f->len, p, n);
    f->len += n;
}

static void putfill(struct frame *f, size_t n, unsigned v)
{
    while (n--)
        put8(f, v);
}

/* TCP header, options and payload, or a UDP datagram. */
static void put_l4(struct frame *f, const struct spec *s)
{
    int i;
    if (s->proto == 17) {
        put16(f, SPORT);
        put16(f, 53);
        put16(f, (unsigned)(8 + s->payload));
        put16(f, 0);
    } else {
        unsigned doff = (unsigned)(20 + s->tcp_opts) / 4;
        if (s->bad == BAD_DOFF)
            doff = 4;
        if (s->bad == BAD_DOFF_BIG)
            doff = 15;
        put16(f, SPORT);
        put16(f, DPORT);
        put32(f, SEQ);
        put32(f, ACK);
        put8(f, doff << 4);
        put8(f, FLAGS);
        put16(f, 65535);
        put16(f, 0);
        put16(f, 0);
        putfill(f, (size_t)s->tcp_opts, 1); /* NOPs */
    }
    f->payload_off = f->len;
    for (i = 0; i < s->payload; i++)
        put8(f, 'a' + i % 26);
}

static size_t l4_len(const struct spec *s)
{
    return (size_t)((s->proto == 17 ? 8 : 20 + s->tcp_opts) + s->payload);
}

static void put_ipv4(struct frame *f, const struct spec *s)
{
    unsigned ihl = (unsigned)(20 + s->ip_opts) / 4;
    size_t total = ihl * 4 + l4_len(s);

    if (s->bad == BAD_IHL)
        ihl = 4;
    if (s->bad == BAD_IHL_BIG)
        ihl = 15;
    put8(f, (s->bad == BAD_IP_VERSION ? 0x60 : 0x40) | ihl);
    put8(f, 0);
    put16(f, s->total_zero ? 0 : s->bad == BAD_TOTAL_SHORT ? 10 : (unsigned)total);
    put16(f, 0x1234);
    put16(f, s->frag);
    put8(f, 64);
    put8(f, s->proto ? s->proto : 6);
    put16(f, 0);
    putmem(f, ip4_src, 4);
    putmem(f, ip4_dst, 4);
    putfill(f, (size_t)s->ip_opts, 1); /* NOP options */
    put_l4(f, s);
}

static void put_ipv6(struct frame *f, const struct spec *s)
{
    static const unsigned order[] = {EXT_HBH, EXT_DST, EXT_RT, EXT_AH, EXT_FRAG};
    static const unsigned number[] = {0, 60, 43, 51, 44};
    size_t plen = l4_len(s), i;
    unsigned first = s->proto ? s->proto : 6;
    int last = -1;

    for (i = 0; i < 5; i++)
        if (s->ext & order[i]) {
            plen += order[i] == EXT_DST  ? 16
                    : order[i] == EXT_RT ? 24
                    : order[i] == EXT_AH ? 16
                                         : 8;
            if (last < 0)
                first = number[i];
            last = (int)i;
        }
    put32(f, s->bad == BAD_IP_VERSION ? 0x40000000u : 0x60000000u);
    put16(f, s->bad == BAD_V6_PLEN0 ? 0 : s->bad == BAD_V6_PLEN_SHORT ? 10 : (unsigned)plen);
    put8(f, first);
    put8(f, 64);
    putmem(f, ip6_src, 16);
    putmem(f, ip6_dst, 16);
    for (i = 0; i < 5; i++) {
        size_t nxt_i;
        unsigned next = s->proto ? s->proto : 6;
        if (!(s->ext & order[i]))
            continue;
        for (nxt_i = i + 1; nxt_i < 5; nxt_i++)
            if (s->ext & order[nxt_i]) {
                next = number[nxt_i];
                break;
            }
        put8(f, next);
        switch (order[i]) {
        case EXT_HBH:
            put8(f, s->bad == BAD_EXT_LEN ? 200 : 0);
            put8(f, 1); /* PadN of 4 */
            put8(f, 4);
            put32(f, 0);
            break;
        case EXT_DST:
            put8(f, 1); /* 16 bytes */
            put8(f, 1);
            put8(f, 12);
            putfill(f, 12, 0);
            break;
        case EXT_RT:
            put8(f, 2); /* 24 bytes: type 0, segments left 0, one address */
            put8(f, 0);
            put8(f, 0);
            put32(f, 0);
            putmem(f, ip6_dst, 16);
            break;
        case EXT_AH:
            put8(f, 2); /* (2 + 2) * 4 = 16 bytes */
            put16(f, 0);
            put32(f, 0x100); /* SPI */
            put32(f, 1);     /* sequence */
            put32(f, 0);     /* ICV */
            break;
        default: /* EXT_FRAG */
            put8(f, 0);
            put16(f, s->frag);
            put32(f, 0xabcd);
            break;
        }
    }
    put_l4(f, s);
}

static void put_ip(struct frame *f, const struct spec *s)
{
    if (s->bad == BAD_RAW_VERSION) {
        put8(f, 0x50);
        putfill(f, 39, 0);
        return;
    }
    if (s->ip == 6)
        put_ipv6(f, s);
    else
        put_ipv4(f, s);
}

static unsigned ethertype(const struct spec *s)
{
    if (s->ip == 0)
        return 0x0806;
    return s->ip == 6 ? 0x86dd : 0x0800;
}

static void build(struct frame *f, const struct spec *s)
{
    static const uint8_t mac1[6] = {2, 0, 0, 0, 0, 1}, mac2[6] = {2, 0, 0, 0, 0, 2};
    uint32_t af = s->af ? s->af : s->ip == 6 ? 30u : 2u;
    int i;

    memset(f, 0, sizeof *f);
    switch (s->link) {
    case L_ETH:
        f->dlt = DLT_EN10MB;
        putmem(f, mac1, 6);
        putmem(f, mac2, 6);
        for (i = 0; i < s->tags; i++) {
            put16(f, i == 0 && s->tpid0 ? s->tpid0 : 0x8100);
            put16(f, (unsigned)(100 + i)); /* TCI: VLAN id */
        }
        put16(f, ethertype(s));
        break;
    case L_SLL:
        f->dlt = DLT_LINUX_SLL;
        put16(f, 0); /* to us */
        put16(f, 1); /* ARPHRD_ETHER */
        put16(f, 6);
        putmem(f, mac1, 6);
        put16(f, 0);
        put16(f, ethertype(s));
        break;
    case L_SLL2:
        f->dlt = DLT_LINUX_SLL2;
        put16(f, ethertype(s));
        put16(f, 0);
        put32(f, 2); /* ifindex */
        put16(f, 1);
        put8(f, 0);
        put8(f, 6);
        putmem(f, mac1, 6);
        put16(f, 0);
        break;
    case L_NULL_LE:
        f->dlt = DLT_NULL;
        put8(f, af & 0xff);
        put8(f, (af >> 8) & 0xff);
        put16(f, 0);
        break;
    case L_NULL_BE:
        f->dlt = DLT_NULL;
        put32(f, af);
        break;
    case L_LOOP:
        f->dlt = DLT_LOOP;
        put32(f, af);
        break;
    case L_RAW: f->dlt = DLT_RAW; break;
    case L_RAW_OPENBSD: f->dlt = 14; break;
    case L_LINKTYPE_RAW: f->dlt = 101; break;
    case L_DLT_IPV4: f->dlt = DLT_IPV4; break;
    case L_DLT_IPV6: f->dlt = DLT_IPV6; break;
    default: f->dlt = DLT_IEEE802_11; break;
    }
    if (s->ip == 0) { /* ARP request */
        put16(f, 1);
        put16(f, 0x0800);
        put8(f, 6);
        put8(f, 4);
        put16(f, 1);
        putmem(f, mac1, 6);
        putmem(f, ip4_src, 4);
        putfill(f, 6, 0);
        putmem(f, ip4_dst, 4);
    } else {
        put_ip(f, s);
    }
    putfill(f, (size_t)s->pad, 0);
    assert_true((size_t)s->cut <= f->len);
    f->len -= (size_t)s->cut;
}

/* ---- the table ---------------------------------------------------------- */

#define TCP REPRO_DECODE_TCP
#define SKIP REPRO_DECODE_SKIP
#define BAD REPRO_DECODE_MALFORMED
#define DEF (-1) /* payload_len/seg_len: the spec's payload */

struct dcase {
    const char *desc;
    struct spec s;
    int result;
    int skip;
    int payload_len, seg_len;
};

/* clang-format off */
static const struct dcase cases[] = {
    {"Ethernet IPv4 TCP", {.link = L_ETH, .ip = 4, .payload = 10}, TCP, 0, DEF, DEF},
    {"Ethernet IPv6 TCP", {.link = L_ETH, .ip = 6, .payload = 10}, TCP, 0, DEF, DEF},
    {"Ethernet IPv4 TCP, no payload", {.link = L_ETH, .ip = 4}, TCP, 0, DEF, DEF},
    {"802.1Q IPv4", {.link = L_ETH, .tags = 1, .ip = 4, .payload = 7}, TCP, 0, DEF, DEF},
    {"802.1Q IPv6", {.link = L_ETH, .tags = 1, .ip = 6, .payload = 7}, TCP, 0, DEF, DEF},
    {"QinQ 0x88a8 + 0x8100", {.link = L_ETH, .tags = 2, .tpid0 = 0x88a8, .ip = 4, .payload = 3}, TCP, 0, DEF, DEF},
    {"QinQ old 0x9100 + 0x8100", {.link = L_ETH, .tags = 2, .tpid0 = 0x9100, .ip = 6, .payload = 3}, TCP, 0, DEF, DEF},
    {"8 VLAN tags", {.link = L_ETH, .tags = 8, .ip = 4, .payload = 3}, TCP, 0, DEF, DEF},
    {"9 VLAN tags: too many", {.link = L_ETH, .tags = 9, .ip = 4, .payload = 3}, BAD, 0, 0, 0},
    {"Linux SLL IPv4", {.link = L_SLL, .ip = 4, .payload = 5}, TCP, 0, DEF, DEF},
    {"Linux SLL IPv6", {.link = L_SLL, .ip = 6, .payload = 5}, TCP, 0, DEF, DEF},
    {"Linux SLL2 IPv4", {.link = L_SLL2, .ip = 4, .payload = 5}, TCP, 0, DEF, DEF},
    {"Linux SLL2 IPv6", {.link = L_SLL2, .ip = 6, .payload = 5}, TCP, 0, DEF, DEF},
    {"DLT_NULL LE AF_INET", {.link = L_NULL_LE, .ip = 4, .payload = 4}, TCP, 0, DEF, DEF},
    {"DLT_NULL BE AF_INET", {.link = L_NULL_BE, .ip = 4, .payload = 4}, TCP, 0, DEF, DEF},
    {"DLT_NULL LE AF_INET6 24 (NetBSD)", {.link = L_NULL_LE, .ip = 6, .af = 24, .payload = 4}, TCP, 0, DEF, DEF},
    {"DLT_NULL LE AF_INET6 28 (FreeBSD)", {.link = L_NULL_LE, .ip = 6, .af = 28, .payload = 4}, TCP, 0, DEF, DEF},
    {"DLT_NULL LE AF_INET6 30 (macOS)", {.link = L_NULL_LE, .ip = 6, .af = 30, .payload = 4}, TCP, 0, DEF, DEF},
    {"DLT_NULL BE AF_INET6 24", {.link = L_NULL_BE, .ip = 6, .af = 24, .payload = 4}, TCP, 0, DEF, DEF},
    {"DLT_NULL BE AF_INET6 28", {.link = L_NULL_BE, .ip = 6, .af = 28, .payload = 4}, TCP, 0, DEF, DEF},
    {"DLT_NULL BE AF_INET6 30", {.link = L_NULL_BE, .ip = 6, .af = 30, .payload = 4}, TCP, 0, DEF, DEF},
    {"DLT_NULL unknown family", {.link = L_NULL_LE, .ip = 4, .af = 7, .payload = 4}, SKIP, REPRO_SKIP_NOT_IP, 0, 0},
    {"DLT_LOOP AF_INET", {.link = L_LOOP, .ip = 4, .payload = 4}, TCP, 0, DEF, DEF},
    {"DLT_LOOP AF_INET6 (24)", {.link = L_LOOP, .ip = 6, .af = 24, .payload = 4}, TCP, 0, DEF, DEF},
    {"DLT_RAW IPv4", {.link = L_RAW, .ip = 4, .payload = 9}, TCP, 0, DEF, DEF},
    {"DLT_RAW IPv6", {.link = L_RAW, .ip = 6, .payload = 9}, TCP, 0, DEF, DEF},
    {"DLT_RAW (OpenBSD 14) IPv4", {.link = L_RAW_OPENBSD, .ip = 4, .payload = 9}, TCP, 0, DEF, DEF},
    {"LINKTYPE_RAW (101) IPv6", {.link = L_LINKTYPE_RAW, .ip = 6, .payload = 9}, TCP, 0, DEF, DEF},
    {"DLT_IPV4", {.link = L_DLT_IPV4, .ip = 4, .payload = 9}, TCP, 0, DEF, DEF},
    {"DLT_IPV6", {.link = L_DLT_IPV6, .ip = 6, .payload = 9}, TCP, 0, DEF, DEF},
    {"unknown link type", {.link = L_UNKNOWN, .ip = 4, .payload = 9}, SKIP, REPRO_SKIP_LINKTYPE, 0, 0},
    {"IPv4 options and TCP options", {.link = L_ETH, .ip = 4, .ip_opts = 8, .tcp_opts = 12, .payload = 6}, TCP, 0, DEF, DEF},
    {"IPv6 TCP options", {.link = L_RAW, .ip = 6, .tcp_opts = 40, .payload = 6}, TCP, 0, DEF, DEF},
    {"IPv6 hop-by-hop + dst options + fragment (off 0, M=0)", {.link = L_ETH, .ip = 6, .ext = EXT_HBH | EXT_DST | EXT_FRAG, .payload = 8}, TCP, 0, DEF, DEF},
    {"IPv6 routing + AH", {.link = L_ETH, .ip = 6, .ext = EXT_RT | EXT_AH, .payload = 8}, TCP, 0, DEF, DEF},
    {"IPv6 fragment, reserved bits set (off 0, M=0)", {.link = L_ETH, .ip = 6, .ext = EXT_FRAG, .frag = 0x0006, .payload = 8}, TCP, 0, DEF, DEF},
    {"IPv6 non-first fragment", {.link = L_ETH, .ip = 6, .ext = EXT_HBH | EXT_FRAG, .frag = 185 << 3, .payload = 8}, SKIP, REPRO_SKIP_FRAGMENT, 0, 0},
    {"IPv6 first fragment, more to come", {.link = L_ETH, .ip = 6, .ext = EXT_FRAG, .frag = 1, .payload = 8}, SKIP, REPRO_SKIP_FRAGMENT, 0, 0},
    {"IPv4 fragment, more fragments", {.link = L_ETH, .ip = 4, .frag = 0x2000, .payload = 8}, SKIP, REPRO_SKIP_FRAGMENT, 0, 0},
    {"IPv4 fragment, offset", {.link = L_ETH, .ip = 4, .frag = 0x00b9, .payload = 8}, SKIP, REPRO_SKIP_FRAGMENT, 0, 0},
    {"IPv4 don't-fragment only", {.link = L_ETH, .ip = 4, .frag = 0x4000, .payload = 8}, TCP, 0, DEF, DEF},
    {"IPv4 UDP", {.link = L_ETH, .ip = 4, .proto = 17, .payload = 8}, SKIP, REPRO_SKIP_NOT_TCP, 0, 0},
    {"IPv6 UDP", {.link = L_ETH, .ip = 6, .proto = 17, .payload = 8}, SKIP, REPRO_SKIP_NOT_TCP, 0, 0},
    {"IPv6 dst options then UDP", {.link = L_ETH, .ip = 6, .ext = EXT_DST, .proto = 17, .payload = 8}, SKIP, REPRO_SKIP_NOT_TCP, 0, 0},
    {"ARP", {.link = L_ETH, .ip = 0}, SKIP, REPRO_SKIP_NOT_IP, 0, 0},
    {"ARP in 802.1Q", {.link = L_ETH, .tags = 1, .ip = 0}, SKIP, REPRO_SKIP_NOT_IP, 0, 0},
    {"Ethernet padding is not payload", {.link = L_ETH, .ip = 4, .pad = 6}, TCP, 0, 0, 0},
    {"Ethernet padding after payload", {.link = L_ETH, .ip = 4, .payload = 3, .pad = 3}, TCP, 0, 3, 3},
    {"IPv6 trailing bytes are not payload", {.link = L_ETH, .ip = 6, .payload = 3, .pad = 9}, TCP, 0, 3, 3},
    {"IPv4 total length 0 (TSO)", {.link = L_ETH, .ip = 4, .payload = 1400, .total_zero = 1}, TCP, 0, DEF, DEF},
    {"snap length cuts the payload", {.link = L_ETH, .ip = 4, .payload = 100, .cut = 30}, TCP, 0, 70, 100},
    {"snap length cuts all the payload", {.link = L_ETH, .ip = 6, .payload = 100, .cut = 100}, TCP, 0, 0, 100},
    {"bad IHL (4)", {.link = L_ETH, .ip = 4, .payload = 4, .bad = BAD_IHL}, BAD, 0, 0, 0},
    {"IHL longer than the packet", {.link = L_ETH, .ip = 4, .bad = BAD_IHL_BIG}, BAD, 0, 0, 0},
    {"IPv4 total length shorter than its header", {.link = L_ETH, .ip = 4, .payload = 4, .bad = BAD_TOTAL_SHORT}, BAD, 0, 0, 0},
    {"IPv4 ethertype, version 6 header", {.link = L_ETH, .ip = 4, .payload = 4, .bad = BAD_IP_VERSION}, BAD, 0, 0, 0},
    {"IPv6 ethertype, version 4 header", {.link = L_ETH, .ip = 6, .payload = 4, .bad = BAD_IP_VERSION}, BAD, 0, 0, 0},
    {"raw packet, version 5", {.link = L_RAW, .ip = 4, .bad = BAD_RAW_VERSION}, BAD, 0, 0, 0},
    {"bad TCP data offset (4)", {.link = L_ETH, .ip = 4, .payload = 4, .bad = BAD_DOFF}, BAD, 0, 0, 0},
    {"TCP data offset past the segment", {.link = L_ETH, .ip = 4, .payload = 10, .bad = BAD_DOFF_BIG}, BAD, 0, 0, 0},
    {"TCP data offset past the IPv6 segment", {.link = L_RAW, .ip = 6, .payload = 10, .bad = BAD_DOFF_BIG}, BAD, 0, 0, 0},
    {"IPv6 ext header longer than the packet", {.link = L_ETH, .ip = 6, .ext = EXT_HBH, .payload = 10, .bad = BAD_EXT_LEN}, BAD, 0, 0, 0},
    {"IPv6 payload length 0", {.link = L_ETH, .ip = 6, .payload = 4, .bad = BAD_V6_PLEN0}, BAD, 0, 0, 0},
    {"IPv6 payload length shorter than TCP", {.link = L_ETH, .ip = 6, .payload = 4, .bad = BAD_V6_PLEN_SHORT}, BAD, 0, 0, 0},
};
/* clang-format on */

/* ---- checks ------------------------------------------------------------- */

static void check_tcp_fields(const struct dcase *c, const struct frame *f, const uint8_t *buf,
                             const struct repro_pkt *pk)
{
    static const uint8_t zero[12];
    int full_payload = c->s.payload;
    uint32_t want_plen = (uint32_t)(c->payload_len == DEF ? full_payload : c->payload_len);
    uint32_t want_seg = (uint32_t)(c->seg_len == DEF ? full_payload : c->seg_len);

    assert_int_equal(pk->ts_us, 0x5a5a5a5a5a5a5a5a); /* not the decoder's to set */
    if (c->s.ip == 6) {
        assert_int_equal(pk->family, 6);
        assert_memory_equal(pk->src, ip6_src, 16);
        assert_memory_equal(pk->dst, ip6_dst, 16);
    } else {
        assert_int_equal(pk->family, 4);
        assert_memory_equal(pk->src, ip4_src, 4);
        assert_memory_equal(pk->dst, ip4_dst, 4);
        assert_memory_equal(pk->src + 4, zero, 12);
        assert_memory_equal(pk->dst + 4, zero, 12);
    }
    assert_int_equal(pk->sport, SPORT);
    assert_int_equal(pk->dport, DPORT);
    assert_int_equal(pk->seq, SEQ);
    assert_int_equal(pk->ack, ACK);
    assert_int_equal(pk->tcp_flags, FLAGS);
    assert_ptr_equal(pk->payload, buf + f->payload_off);
    assert_int_equal(pk->payload_len, want_plen);
    assert_int_equal(pk->seg_len, want_seg);
    if (want_plen > 0)
        assert_memory_equal(pk->payload, f->b + f->payload_off, want_plen);
}

static enum repro_decode_result decode(const struct frame *f, const uint8_t *buf, size_t len,
                                       struct repro_pkt *pk, enum repro_skip_reason *skip,
                                       const char **why)
{
    memset(pk, 0x5a, sizeof *pk);
    *skip = (enum repro_skip_reason)77;
    *why = "unset";
    return repro_decode_packet(f->dlt, buf, len, pk, skip, why);
}

static void test_table(void **state)
{
    size_t i;
    (void)state;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct dcase *c = &cases[i];
        struct frame f;
        struct repro_pkt pk;
        enum repro_skip_reason skip;
        const char *why;
        enum repro_decode_result res;
        uint8_t *buf;

        print_message("case %zu: %s\n", i, c->desc);
        build(&f, &c->s);
        buf = guard_copy(f.b, f.len);
        res = decode(&f, buf, f.len, &pk, &skip, &why);
        if ((int)res != c->result)
            fail_msg("case '%s': result %d, want %d (%s)", c->desc, res, c->result,
                     why ? why : "-");
        switch (res) {
        case REPRO_DECODE_TCP:
            assert_null(why);
            assert_int_equal(skip, REPRO_SKIP_NONE);
            check_tcp_fields(c, &f, buf, &pk);
            break;
        case REPRO_DECODE_SKIP:
            assert_null(why);
            assert_int_equal(skip, c->skip);
            break;
        default:
            assert_non_null(why);
            assert_true(strlen(why) > 0);
            break;
        }
        guard_free(buf, f.len);
    }
}

/* Every case cut at every length: never a fault, and any TCP result stays
 * within what was captured and agrees with the full frame's headers. */
static void test_truncated_everywhere(void **state)
{
    size_t i, n;
    (void)state;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct dcase *c = &cases[i];
        struct frame f;
        struct repro_pkt full, pk;
        enum repro_skip_reason skip;
        const char *why;
        enum repro_decode_result full_res, res;
        uint8_t *buf;
        ptrdiff_t full_off;

        build(&f, &c->s);
        buf = guard_copy(f.b, f.len);
        full_res = decode(&f, buf, f.len, &full, &skip, &why);
        full_off = full_res == REPRO_DECODE_TCP ? full.payload - buf : -1;
        guard_free(buf, f.len);
        for (n = 0; n <= f.len; n++) {
            buf = guard_copy(f.b, n);
            res = decode(&f, buf, n, &pk, &skip, &why);
            switch (res) {
            case REPRO_DECODE_TCP:
                if (full_res != REPRO_DECODE_TCP)
                    fail_msg("case '%s' cut at %zu: TCP, but not when whole", c->desc, n);
                assert_null(why);
                assert_true(pk.payload >= buf);
                assert_true(pk.payload <= buf + n);
                assert_true(pk.payload_len <= (size_t)(buf + n - pk.payload));
                assert_true(pk.payload_len <= pk.seg_len);
                assert_true(pk.payload_len <= full.payload_len);
                assert_int_equal(pk.payload - buf, full_off);
                assert_int_equal(pk.family, full.family);
                assert_memory_equal(pk.src, full.src, 16);
                assert_memory_equal(pk.dst, full.dst, 16);
                assert_int_equal(pk.sport, full.sport);
                assert_int_equal(pk.dport, full.dport);
                assert_int_equal(pk.seq, full.seq);
                assert_int_equal(pk.ack, full.ack);
                assert_int_equal(pk.tcp_flags, full.tcp_flags);
                if (!c->s.total_zero)
                    assert_int_equal(pk.seg_len, full.seg_len);
                break;
            case REPRO_DECODE_SKIP:
                assert_null(why);
                assert_true(skip > REPRO_SKIP_NONE && skip < REPRO_SKIP__COUNT);
                break;
            case REPRO_DECODE_MALFORMED: assert_non_null(why); break;
            default: fail_msg("case '%s' cut at %zu: result %d", c->desc, n, res);
            }
            guard_free(buf, n);
        }
    }
}

/* Arbitrary bytes of every length under every link type: no faults, sane
 * results. */
static void test_garbage(void **state)
{
    static const int dlts[] = {DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_NULL,
                               DLT_LOOP,   DLT_RAW,       DLT_IPV4,       DLT_IPV6};
    uint64_t x = 88172645463325252ull;
    size_t i, n, k;
    uint8_t bytes[160];
    (void)state;

    for (i = 0; i < 400; i++) {
        for (k = 0; k < sizeof bytes; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes[k] = (uint8_t)x;
        }
        /* Make deep layers likely: plausible version nibbles and types. */
        bytes[0] = (uint8_t)(i % 2 ? 0x45 : 0x60);
        bytes[12] = i % 3 ? 0x08 : 0x86;
        bytes[13] = i % 3 ? 0x00 : 0xdd;
        for (n = 0; n <= sizeof bytes; n += 1 + (i % 7)) {
            for (k = 0; k < sizeof dlts / sizeof dlts[0]; k++) {
                uint8_t *buf = guard_copy(bytes, n);
                struct repro_pkt pk;
                enum repro_skip_reason skip;
                const char *why;
                enum repro_decode_result res =
                    repro_decode_packet(dlts[k], buf, n, &pk, &skip, &why);
                if (res == REPRO_DECODE_TCP) {
                    assert_true(pk.payload >= buf && pk.payload <= buf + n);
                    assert_true(pk.payload_len <= (size_t)(buf + n - pk.payload));
                    assert_true(pk.payload_len <= pk.seg_len);
                    assert_true(pk.family == 4 || pk.family == 6);
                } else if (res == REPRO_DECODE_MALFORMED) {
                    assert_non_null(why);
                } else {
                    assert_int_equal(res, REPRO_DECODE_SKIP);
                    assert_true(skip > REPRO_SKIP_NONE && skip < REPRO_SKIP__COUNT);
                }
                guard_free(buf, n);
            }
        }
    }
}

/* ---- endpoints as capture writes them (core's repro_endpoint_format) ----------------------------------------------- */

/* Formats into exactly 64 bytes that end at a guard page. */
static void check_endpoint(int family, const uint8_t *addr, uint16_t port, const char *want)
{
    static const char filler[64];
    uint8_t *b = guard_copy(filler, sizeof filler);
    repro_endpoint_format((char *)b, sizeof filler, family, addr, port);
    assert_string_equal((char *)b, want);
    guard_free(b, sizeof filler);
}

static void test_format_endpoint(void **state)
{
    static const uint8_t v4[4] = {192, 168, 1, 10};
    static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
    static const uint8_t v6max[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1};
    static const uint8_t zero[16];
    uint8_t *b;
    (void)state;

    check_endpoint(4, v4, 51234, "192.168.1.10:51234");
    check_endpoint(4, zero, 0, "0.0.0.0:0");
    check_endpoint(4, v6max, 65535, "255.255.255.255:65535");
    check_endpoint(6, v6, 443, "[2001:db8::10]:443");
    check_endpoint(6, zero, 80, "[::]:80");
    check_endpoint(6, mapped, 8080, "[::ffff:10.0.0.1]:8080");
    check_endpoint(6, v6max, 65535, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");

    /* A short buffer is cut, terminated and never overrun. */
    b = guard_copy("xxxxxxxx", 8);
    repro_endpoint_format((char *)b, 8, 4, v4, 51234);
    assert_string_equal((char *)b, "192.168");
    guard_free(b, 8);
    b = guard_copy("xxxxxxxxxxxx", 12);
    repro_endpoint_format((char *)b, 12, 6, v6, 443);
    assert_string_equal((char *)b, "[2001:db8::");
    guard_free(b, 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_format_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

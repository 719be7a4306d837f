/*
 * Link-layer, IP and TCP decoding (RFC 791, RFC 8200, RFC 9293 section 3.1).
 *
 * The input model is tcpdump's: any arbitrary sequence of octets. Every field
 * is read through the bounds-checked, endian-explicit accessors below, and
 * every length taken from a header is checked against what was captured.
 * Frames that are valid but not TCP over IP are skipped with a reason; IP
 * fragments are skipped (reassembling them is left out on purpose: HTTP over
 * TCP practically never fragments at the IP layer). A frame cut by the
 * capture's snap length still yields its captured payload, and seg_len says
 * how long the segment really was, so reassembly can account for the
 * missing bytes as a gap.
 */
#include "repro/capture.h"

#include <pcap/dlt.h>
#include <stdio.h>
#include <string.h>

/* A bounded read cursor. */
struct cur {
    const uint8_t *p;
    size_t len;
};

static int rd_u8(const struct cur *c, size_t off, uint8_t *v)
{
    if (off >= c->len)
        return -1;
    *v = c->p[off];
    return 0;
}

static int rd_be16(const struct cur *c, size_t off, uint16_t *v)
{
    if (c->len < 2 || off > c->len - 2)
        return -1;
    *v = (uint16_t)((c->p[off] << 8) | c->p[off + 1]);
    return 0;
}

static int rd_be32(const struct cur *c, size_t off, uint32_t *v)
{
    if (c->len < 4 || off > c->len - 4)
        return -1;
    *v = ((uint32_t)c->p[off] << 24) | ((uint32_t)c->p[off + 1] << 16) |
         ((uint32_t)c->p[off + 2] << 8) | c->p[off + 3];
    return 0;
}

static int advance(struct cur *c, size_t n)
{
    if (n > c->len)
        return -1;
    c->p += n;
    c->len -= n;
    return 0;
}

#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86dd
#define ETH_VLAN 0x8100
#define ETH_QINQ 0x88a8
#define ETH_QINQ_OLD 0x9100

#define MALFORMED(text)                                                     \
    do {                                                                    \
        *why = (text);                                                      \
        return REPRO_DECODE_MALFORMED;                                      \
    } while (0)

static enum repro_decode_result decode_tcp(struct cur c, size_t ip_payload_len,
                                           struct repro_pkt *out, const char **why)
{
    uint8_t off_byte, flags;
    size_t hdr_len;

    if (ip_payload_len < 20)
        MALFORMED("TCP segment shorter than its 20-byte header");
    if (rd_be16(&c, 0, &out->sport) || rd_be16(&c, 2, &out->dport) || rd_be32(&c, 4, &out->seq) ||
        rd_be32(&c, 8, &out->ack) || rd_u8(&c, 12, &off_byte) || rd_u8(&c, 13, &flags))
        MALFORMED("TCP header cut short by the capture");
    hdr_len = (size_t)(off_byte >> 4) * 4;
    if (hdr_len < 20 || hdr_len > ip_payload_len)
        MALFORMED("bad TCP data offset");
    if (hdr_len > c.len)
        MALFORMED("TCP options cut short by the capture");
    out->tcp_flags = flags;
    out->seg_len = (uint32_t)(ip_payload_len - hdr_len);
    out->payload = c.p + hdr_len;
    out->payload_len = (uint32_t)(c.len - hdr_len < out->seg_len ? c.len - hdr_len : out->seg_len);
    return REPRO_DECODE_TCP;
}

static enum repro_decode_result decode_ipv4(struct cur c, struct repro_pkt *out,
                                            enum repro_skip_reason *skip, const char **why)
{
    uint8_t vihl, proto;
    uint16_t total, frag;
    size_t ihl;

    if (rd_u8(&c, 0, &vihl) || rd_be16(&c, 2, &total) || rd_be16(&c, 6, &frag) ||
        rd_u8(&c, 9, &proto) || c.len < 20)
        MALFORMED("IPv4 header cut short");
    if ((vihl >> 4) != 4)
        MALFORMED("IPv4 header with version other than 4");
    ihl = (size_t)(vihl & 15) * 4;
    if (ihl < 20 || ihl > c.len)
        MALFORMED("bad IPv4 header length");
    /* Segmentation offload on the capturing host can leave total length 0:
     * then the captured length is all there is. */
    if (total == 0)
        total = (uint16_t)(c.len > 65535 ? 65535 : c.len);
    if (total < ihl)
        MALFORMED("IPv4 total length shorter than its header");
    out->family = 4;
    memset(out->src, 0, sizeof out->src);
    memset(out->dst, 0, sizeof out->dst);
    memcpy(out->src, c.p + 12, 4);
    memcpy(out->dst, c.p + 16, 4);
    if ((frag & 0x3fff) != 0) {
        *skip = REPRO_SKIP_FRAGMENT;
        return REPRO_DECODE_SKIP;
    }
    if (proto != 6) {
        *skip = REPRO_SKIP_NOT_TCP;
        return REPRO_DECODE_SKIP;
    }
    if (c.len > total)
        c.len = total; /* link-layer padding */
    advance(&c, ihl);
    return decode_tcp(c, total - ihl, out, why);
}

static enum repro_decode_result decode_ipv6(struct cur c, struct repro_pkt *out,
                                            enum repro_skip_reason *skip, const char **why)
{
    uint8_t vtc, next;
    uint16_t plen;
    size_t remaining;
    int n_ext = 0;

    if (rd_u8(&c, 0, &vtc) || rd_be16(&c, 4, &plen) || rd_u8(&c, 6, &next) || c.len < 40)
        MALFORMED("IPv6 header cut short");
    if ((vtc >> 4) != 6)
        MALFORMED("IPv6 header with version other than 6");
    if (plen == 0)
        MALFORMED("IPv6 jumbogram or zero payload length");
    out->family = 6;
    memcpy(out->src, c.p + 8, 16);
    memcpy(out->dst, c.p + 24, 16);
    advance(&c, 40);
    if (c.len > plen)
        c.len = plen;
    remaining = plen;
    for (;;) {
        uint8_t nh, hlen;
        uint16_t fragoff;
        size_t ext;

        switch (next) {
        case 6:
            return decode_tcp(c, remaining, out, why);
        case 0:  /* hop-by-hop */
        case 43: /* routing */
        case 60: /* destination options */
        case 51: /* authentication header */
            if (rd_u8(&c, 0, &nh) || rd_u8(&c, 1, &hlen))
                MALFORMED("IPv6 extension header cut short");
            ext = next == 51 ? ((size_t)hlen + 2) * 4 : ((size_t)hlen + 1) * 8;
            break;
        case 44: /* fragment */
            if (rd_u8(&c, 0, &nh) || rd_be16(&c, 2, &fragoff))
                MALFORMED("IPv6 fragment header cut short");
            if ((fragoff & 0xfff9) != 0) {
                *skip = REPRO_SKIP_FRAGMENT;
                return REPRO_DECODE_SKIP;
            }
            ext = 8;
            break;
        default:
            *skip = REPRO_SKIP_NOT_TCP;
            return REPRO_DECODE_SKIP;
        }
        if (ext > remaining || advance(&c, ext) != 0)
            MALFORMED("IPv6 extension header longer than the packet");
        remaining -= ext;
        next = nh;
        if (++n_ext > 16)
            MALFORMED("too many IPv6 extension headers");
    }
}

static enum repro_decode_result decode_ethertype(struct cur c, uint16_t type, struct repro_pkt *out,
                                                 enum repro_skip_reason *skip, const char **why)
{
    int tags = 0;

    while (type == ETH_VLAN || type == ETH_QINQ || type == ETH_QINQ_OLD) {
        if (++tags > 8)
            MALFORMED("too many VLAN tags");
        if (rd_be16(&c, 2, &type) || advance(&c, 4))
            MALFORMED("VLAN tag cut short");
    }
    if (type == ETH_IPV4)
        return decode_ipv4(c, out, skip, why);
    if (type == ETH_IPV6)
        return decode_ipv6(c, out, skip, why);
    *skip = REPRO_SKIP_NOT_IP;
    return REPRO_DECODE_SKIP;
}

static enum repro_decode_result decode_by_version(struct cur c, struct repro_pkt *out,
                                                  enum repro_skip_reason *skip, const char **why)
{
    uint8_t v;
    if (rd_u8(&c, 0, &v))
        MALFORMED("empty raw IP packet");
    if ((v >> 4) == 4)
        return decode_ipv4(c, out, skip, why);
    if ((v >> 4) == 6)
        return decode_ipv6(c, out, skip, why);
    MALFORMED("raw packet is neither IPv4 nor IPv6");
}

/* BSD loopback: the address family in the capturing host's byte order. */
static enum repro_decode_result decode_null(struct cur c, int network_order, struct repro_pkt *out,
                                            enum repro_skip_reason *skip, const char **why)
{
    uint32_t fam;
    if (rd_be32(&c, 0, &fam))
        MALFORMED("loopback header cut short");
    if (!network_order && (fam & 0xffff) == 0)
        fam = ((fam >> 24) & 0xff) | ((fam >> 8) & 0xff00);
    advance(&c, 4);
    if (fam == 2)
        return decode_ipv4(c, out, skip, why);
    if (fam == 10 || fam == 24 || fam == 28 || fam == 30)
        return decode_ipv6(c, out, skip, why);
    *skip = REPRO_SKIP_NOT_IP;
    return REPRO_DECODE_SKIP;
}

enum repro_decode_result repro_decode_packet(int dlt, const uint8_t *p, size_t caplen,
                                             struct repro_pkt *out, enum repro_skip_reason *skip,
                                             const char **why)
{
    struct cur c = {p, caplen};
    uint16_t type;

    *skip = REPRO_SKIP_NONE;
    *why = NULL;
    switch (dlt) {
    case DLT_EN10MB:
        if (rd_be16(&c, 12, &type) || advance(&c, 14))
            MALFORMED("Ethernet header cut short");
        return decode_ethertype(c, type, out, skip, why);
    case DLT_LINUX_SLL:
        if (rd_be16(&c, 14, &type) || advance(&c, 16))
            MALFORMED("Linux cooked (SLL) header cut short");
        return decode_ethertype(c, type, out, skip, why);
    case DLT_LINUX_SLL2:
        if (rd_be16(&c, 0, &type) || advance(&c, 20))
            MALFORMED("Linux cooked v2 (SLL2) header cut short");
        return decode_ethertype(c, type, out, skip, why);
    case DLT_NULL:
        return decode_null(c, 0, out, skip, why);
    case DLT_LOOP:
        return decode_null(c, 1, out, skip, why);
    case DLT_RAW:
    case 14: /* DLT_RAW on OpenBSD */
    case 101: /* LINKTYPE_RAW, if a reader passes it through */
        return decode_by_version(c, out, skip, why);
    case DLT_IPV4:
        return decode_ipv4(c, out, skip, why);
    case DLT_IPV6:
        return decode_ipv6(c, out, skip, why);
    default:
        *skip = REPRO_SKIP_LINKTYPE;
        return REPRO_DECODE_SKIP;
    }
}

/*
 * The live backend: an interface through libpcap (pcap_create and
 * pcap_activate, so snap length and buffer size can be set). Buffered
 * mode, not immediate: on Linux the kernel hands packets over a block at a
 * time (TPACKET_V3), when the block is full or 50 ms after its first
 * packet, so a busy interface costs one wakeup per block, not per packet.
 * The reader thread (source_reader.c) polls the socket with a timeout of
 * its own, so stop requests and clocks work on a quiet interface too.
 */
#include "source_int.h"

#include <stdio.h>
#include <string.h>

static int live_open(struct repro_source *src, const struct repro_source_opts *opts,
                     struct repro_error *err)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    bpf_u_int32 net = 0, mask = PCAP_NETMASK_UNKNOWN;
    int rc;

    src->live = 1;
    snprintf(src->name, sizeof src->name, "interface '%s'", opts->iface);
    src->pcap = pcap_create(opts->iface, ebuf);
    if (src->pcap == NULL)
        return repro_error_set(err, REPRO_E_PCAP, "cannot open interface '%s': %s", opts->iface,
                               ebuf);
    pcap_set_snaplen(src->pcap, opts->snaplen > 0 ? opts->snaplen : 262144);
    pcap_set_buffer_size(src->pcap, (opts->buffer_kib > 0 ? opts->buffer_kib : 32 * 1024) * 1024);
    pcap_set_timeout(src->pcap, 50);
    pcap_set_immediate_mode(src->pcap, 0);
    pcap_set_tstamp_precision(src->pcap, PCAP_TSTAMP_PRECISION_MICRO);
    rc = pcap_activate(src->pcap);
    if (rc < 0)
        return repro_error_set(err, REPRO_E_PCAP, "cannot capture on interface '%s': %s%s%s",
                               opts->iface, pcap_statustostr(rc),
                               rc == PCAP_ERROR ? ": " : "", rc == PCAP_ERROR ? pcap_geterr(src->pcap) : "");
    if (rc > 0)
        repro_log(REPRO_LOG_WARN, "capture", "interface '%s': %s", opts->iface,
                  pcap_statustostr(rc));
    if (pcap_lookupnet(opts->iface, &net, &mask, ebuf) != 0)
        mask = PCAP_NETMASK_UNKNOWN;
    return repro__source_set_filter(src, opts->filter, mask, err);
}

const struct repro_source_ops repro__source_live_ops = {
    .kind = "live",
    .open = live_open,
};

int repro_source_list_interfaces(FILE *out, struct repro_error *err)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    pcap_if_t *all = NULL;
    int i = 1;

    if (pcap_findalldevs(&all, ebuf) != 0)
        return repro_error_set(err, REPRO_E_PCAP, "cannot list interfaces: %s", ebuf);
    for (pcap_if_t *d = all; d; d = d->next, i++) {
        fprintf(out, "%d.%s", i, d->name);
        if (d->description)
            fprintf(out, " (%s)", d->description);
        fprintf(out, " [%s%s%s]\n", (d->flags & PCAP_IF_UP) ? "Up" : "Down",
                (d->flags & PCAP_IF_RUNNING) ? ", Running" : "",
                (d->flags & PCAP_IF_LOOPBACK) ? ", Loopback" : "");
    }
    pcap_freealldevs(all);
    return REPRO_OK;
}

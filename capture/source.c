/*
 * Packet sources: the front of the capture pipeline. Both backends use
 * libpcap (pcap and pcapng files, live interfaces); this file holds what
 * they share: opening by option, the read loop step, filters, errors that
 * name the source and the record number.
 */
#include "source_int.h"

#include <string.h>

struct repro_source *repro_source_open(const struct repro_source_opts *opts,
                                       struct repro_error *err)
{
    struct repro_source *src;
    const struct repro_source_ops *ops;

    if ((opts->file == NULL) == (opts->iface == NULL)) {
        repro_error_set(err, REPRO_E_INVAL, "give exactly one of a file and an interface");
        return NULL;
    }
    ops = opts->file ? &repro__source_file_ops : &repro__source_live_ops;
    src = repro_calloc(1, sizeof *src);
    if (src == NULL) {
        repro_error_set(err, REPRO_E_NOMEM, "cannot open packet source: out of memory");
        return NULL;
    }
    src->ops = ops;
    if (ops->open(src, opts, err) != REPRO_OK) {
        repro_source_close(src);
        return NULL;
    }
    return src;
}

void repro_source_close(struct repro_source *src)
{
    if (src == NULL)
        return;
    if (src->pcap)
        pcap_close(src->pcap);
    repro_free(src);
}

int repro_source_dlt(const struct repro_source *src)
{
    return pcap_datalink(src->pcap);
}

const char *repro_source_name(const struct repro_source *src)
{
    return src->name;
}

int repro__source_set_filter(struct repro_source *src, const char *filter, bpf_u_int32 netmask,
                             struct repro_error *err)
{
    struct bpf_program prog;

    if (filter == NULL || filter[0] == '\0')
        return REPRO_OK;
    if (pcap_compile(src->pcap, &prog, filter, 1, netmask) != 0)
        return repro_error_set(err, REPRO_E_INVAL, "cannot compile filter '%s': %s", filter,
                               pcap_geterr(src->pcap));
    if (pcap_setfilter(src->pcap, &prog) != 0) {
        repro_error_set(err, REPRO_E_PCAP, "cannot install filter '%s' on %s: %s", filter,
                        src->name, pcap_geterr(src->pcap));
        pcap_freecode(&prog);
        return REPRO_E_PCAP;
    }
    pcap_freecode(&prog);
    return REPRO_OK;
}

enum repro_source_next repro_source_next(struct repro_source *src, const uint8_t **data,
                                         size_t *caplen, int64_t *ts_us, struct repro_error *err)
{
    struct pcap_pkthdr *hdr;
    const u_char *bytes;
    int rc = pcap_next_ex(src->pcap, &hdr, &bytes);

    switch (rc) {
    case 1:
        src->record_no++;
        *data = bytes;
        *caplen = hdr->caplen;
        *ts_us = (int64_t)hdr->ts.tv_sec * 1000000 + hdr->ts.tv_usec;
        return REPRO_SOURCE_PACKET;
    case 0:
        return REPRO_SOURCE_TIMEOUT;
    case PCAP_ERROR_BREAK:
        return REPRO_SOURCE_END;
    default:
        repro_error_set(err, REPRO_E_MALFORMED, "cannot read %s after record %llu: %s", src->name,
                        (unsigned long long)src->record_no, pcap_geterr(src->pcap));
        return REPRO_SOURCE_ERROR;
    }
}

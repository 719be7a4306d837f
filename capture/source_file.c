/*
 * The file backend: pcap and pcapng files (or "-" for stdin) through
 * libpcap's offline reader, which also maps LINKTYPE_* values to DLT_*.
 */
#include "source_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int file_open(struct repro_source *src, const struct repro_source_opts *opts,
                     struct repro_error *err)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";

    snprintf(src->name, sizeof src->name, "capture '%s'", opts->file);
    src->pcap = pcap_open_offline_with_tstamp_precision(opts->file, PCAP_TSTAMP_PRECISION_MICRO,
                                                        ebuf);
    if (src->pcap == NULL) {
        /* libpcap starts its message with the file name ("x.pcap: No such
         * file or directory"): name the file once */
        const char *why = ebuf;
        size_t n = strlen(opts->file);
        if (strncmp(ebuf, opts->file, n) == 0 && ebuf[n] == ':' && ebuf[n + 1] == ' ')
            why = ebuf + n + 2;
        return repro_error_set(err, REPRO_E_IO, "cannot open capture '%s': %s", opts->file, why);
    }
    return repro__source_set_filter(src, opts->filter, PCAP_NETMASK_UNKNOWN, err);
}

const struct repro_source_ops repro__source_file_ops = {
    .kind = "file",
    .open = file_open,
};

/*
 * Packet source backends: a small table of function pointers, one file per
 * backend (source_file.c, source_live.c). Private to capture.
 */
#ifndef REPRO_CAPTURE_SOURCE_INT_H
#define REPRO_CAPTURE_SOURCE_INT_H

#include "repro/capture.h"

#include <pcap/pcap.h>

struct repro_source_ops {
    const char *kind;
    int (*open)(struct repro_source *src, const struct repro_source_opts *opts,
                struct repro_error *err);
};

struct repro_source {
    const struct repro_source_ops *ops;
    pcap_t *pcap;
    char name[300];
    uint64_t record_no;
    int live;
};

extern const struct repro_source_ops repro__source_file_ops;
extern const struct repro_source_ops repro__source_live_ops;

/* Compiles and installs a BPF filter; shared by both backends. */
int repro__source_set_filter(struct repro_source *src, const char *filter,
                             bpf_u_int32 netmask, struct repro_error *err);

#endif

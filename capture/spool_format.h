/*
 * The spool file's layout (docs/spool-format.md), shared by its writer
 * (source_reader.c) and its recovery reader (spool_file.c). Private to
 * capture.
 */
#ifndef REPRO_CAPTURE_SPOOL_FORMAT_H
#define REPRO_CAPTURE_SPOOL_FORMAT_H

#include "repro/capture.h"

#include <stdint.h>

#define REPRO_SPOOL_MAGIC "REPROSPL"
#define REPRO_SPOOL_VERSION 1u
#define REPRO_SPOOL_FILE_HEADER 64u
#define REPRO_SPOOL_BATCH_MAGIC 0x42535052u /* "RPSB" read as little-endian bytes */
#define REPRO_SPOOL_BATCH_HEADER 32u
#define REPRO_SPOOL_UNREAD 1u
#define REPRO_SPOOL_READ 2u
/* Where a batch header's state is, from the header's start. */
#define REPRO_SPOOL_STATE_OFF 4u

/* The limits a batch of the live reader keeps (source_reader.c); the
 * recovery reader refuses a batch beyond them. */
#define REPRO_SPOOL_MAX_PKTS 16384u
#define REPRO_SPOOL_MAX_DATA (1024u * 1024u)

/* Fills the 64-byte file header. */
void repro__spool_file_header(uint8_t out[REPRO_SPOOL_FILE_HEADER], int dlt, int64_t capture_id,
                              int64_t created_us, uint32_t pid);
/* Fills the 32-byte header of batch b, state unread, with the checksum
 * of its records and data and seq, its place in packet order (the record
 * number of its first packet: batches are not always written in that
 * order, and the recovery sorts by it). */
void repro__spool_batch_header(uint8_t out[REPRO_SPOOL_BATCH_HEADER],
                               const struct repro_packet_batch *b, uint64_t seq);

#endif

/*
 * Internals shared by the http component's files (never installed).
 */
#ifndef REPRO_HTTP_INT_H
#define REPRO_HTTP_INT_H

#include <stdint.h>

/* 1 for the tchar bytes of RFC 9110 section 5.6.2 (field names, methods),
 * else 0: a table, since it is the hot loop of head parsing and of the
 * lenient line scanner (http_parse.c). */
extern const uint8_t repro__http_tchar[256];

#endif

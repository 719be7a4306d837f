/*
 * The text GNU binutils addr2line (2.40, translate_addresses()) prints for
 * one address, byte for byte: "0x%016x" with -a, "??" and "??:0" when the
 * address is unknown, "??:?" / "file:?" when the line is, " (discriminator
 * N)" after every level's line (binutils keeps the line table's value for
 * the inlined-by levels too), " at " and " (inlined by) " with -p, base
 * names with -s. Kept apart from the lookup so crash reports can print
 * frames differently.
 */
#include "sym_internal.h"

/* Writes v in decimal ending at end; returns the first digit. */
static char *utoa_end(char *end, uint32_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return end;
}

/* ":LINE\n" or ":LINE (discriminator D)\n", as "%u" prints them. */
static int append_line(struct repro_buf *out, uint32_t line, uint32_t disc)
{
    char tmp[64], *end = tmp + sizeof tmp, *p = end;
    *--p = '\n';
    if (disc != 0) {
        *--p = ')';
        p = utoa_end(p, disc);
        p -= 16;
        memcpy(p, " (discriminator ", 16);
    }
    p = utoa_end(p, line);
    *--p = ':';
    return repro_buf_append(out, p, (size_t)(end - p));
}

int repro_sym_format_addr2line(struct repro_buf *out, const struct repro_sym_result *r,
                               unsigned fl)
{
    int pretty = (fl & REPRO_A2L_PRETTY) != 0, rc = REPRO_OK;
    size_t k, n;

    if (fl & REPRO_A2L_ADDRESSES)
        rc = repro_buf_printf(out, "0x%016llx%s", (unsigned long long)r->addr,
                              pretty ? ": " : "\n");
    if (rc != REPRO_OK)
        return rc;
    if (r->status != REPRO_SYM_FOUND || r->n_frames == 0) {
        if (fl & REPRO_A2L_FUNCTIONS)
            rc = repro_buf_append(out, pretty ? "?? " : "??\n", 3);
        return rc != REPRO_OK ? rc : repro_buf_append(out, "??:0\n", 5);
    }
    n = (fl & REPRO_A2L_INLINES) ? r->n_frames : 1;
    for (k = 0; k < n && rc == REPRO_OK; k++) {
        const struct repro_sym_frame *f = &r->frames[k];
        const char *file = f->file;
        if (k > 0 && pretty)
            rc = repro_buf_append(out, " (inlined by) ", 14);
        if (rc == REPRO_OK && (fl & REPRO_A2L_FUNCTIONS)) {
            const char *name = (fl & REPRO_A2L_DEMANGLE) && f->demangled ? f->demangled
                                                                          : f->function;
            if (name == NULL || *name == '\0')
                name = "??";
            rc = repro_buf_append(out, name, strlen(name));
            if (rc == REPRO_OK)
                rc = pretty ? repro_buf_append(out, " at ", 4) : repro_buf_append(out, "\n", 1);
        }
        if (rc != REPRO_OK)
            break;
        if ((fl & REPRO_A2L_BASENAMES) && file != NULL) {
            const char *slash = strrchr(file, '/');
            if (slash != NULL)
                file = slash + 1;
        }
        if (file == NULL)
            file = "??";
        rc = repro_buf_append(out, file, strlen(file));
        if (rc != REPRO_OK)
            break;
        if (f->line == 0)
            rc = repro_buf_append(out, ":?\n", 3);
        else
            rc = append_line(out, f->line, r->frames[0].discriminator);
    }
    return rc;
}

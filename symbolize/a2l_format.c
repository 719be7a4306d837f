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
        else if (r->frames[0].discriminator != 0)
            rc = repro_buf_printf(out, ":%u (discriminator %u)\n", f->line,
                                  r->frames[0].discriminator);
        else
            rc = repro_buf_printf(out, ":%u\n", f->line);
    }
    return rc;
}

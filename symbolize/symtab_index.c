/*
 * The ELF symbol table as binutils uses it to name code that DWARF does not
 * describe (or describes without a linkage name): bfd's
 * _bfd_elf_maybe_function_sym() filter, _bfd_elf_find_function()'s choice
 * (the nearest symbol at or below the address, ties broken by better_fit():
 * covering, then STT_FUNC, then typed, then smaller), and its one-entry
 * cache, which makes the answer depend on the previous lookup when aliases
 * of different sizes share an address. The cache lives in the caller's
 * struct repro_sym_result, so a module stays read-only.
 *
 * The STT_FILE name binutils attaches to a symbol is kept with it: the file
 * symbol in force for local symbols, and for global ones only while no file
 * symbol has followed a non-file symbol.
 *
 * Workload: one table load per module (libc's debug file: 10,000 symbols),
 * then a binary search per lookup that DWARF does not answer.
 */
#include "sym_internal.h"

#include <stdlib.h>

void repro__symtab_release(struct sym_symtab *t)
{
    if (t == NULL)
        return;
    repro_free(t->syms);
    repro_free(t->names);
    memset(t, 0, sizeof *t);
}

static int cmp_sym(const void *a, const void *b)
{
    const struct sym_elfsym *x = a, *y = b;
    if (x->shndx != y->shndx)
        return x->shndx < y->shndx ? -1 : 1;
    if (x->value != y->value)
        return x->value < y->value ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

int repro__symtab_load(struct sym_symtab *t, Elf *elf, int want_dynsym, struct repro_error *err)
{
    Elf_Scn *scn = NULL;
    GElf_Shdr sh;
    Elf_Data *data;
    size_t n, i, strndx, k = 0;
    const char *file = NULL;
    enum { NOTHING_SEEN, SYMBOL_SEEN, FILE_AFTER_SYMBOL_SEEN } state = NOTHING_SEEN;
    Elf32_Word want = want_dynsym ? SHT_DYNSYM : SHT_SYMTAB;

    memset(t, 0, sizeof *t);
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        if (gelf_getshdr(scn, &sh) != NULL && sh.sh_type == want)
            break;
    }
    if (scn == NULL || sh.sh_entsize == 0)
        return REPRO_E_NOTFOUND;
    data = elf_getdata(scn, NULL);
    if (data == NULL || data->d_size == 0)
        return REPRO_E_NOTFOUND;
    n = data->d_size / sh.sh_entsize;
    strndx = sh.sh_link;
    if (n <= 1)
        return REPRO_E_NOTFOUND;
    t->syms = repro_calloc(n, sizeof *t->syms);
    if (t->syms == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "out of memory loading %zu symbols", n);
    for (i = 1; i < n; i++) { /* bfd leaves out the null symbol */
        GElf_Sym s;
        const char *name;
        int type, bind, vis;
        uint64_t size;
        struct sym_elfsym *o;
        if (gelf_getsym(data, (int)i, &s) == NULL)
            continue;
        type = GELF_ST_TYPE(s.st_info);
        bind = GELF_ST_BIND(s.st_info);
        vis = GELF_ST_VISIBILITY(s.st_other);
        name = elf_strptr(elf, strndx, s.st_name);
        if (type == STT_FILE) {
            file = name;
            if (state == SYMBOL_SEEN)
                state = FILE_AFTER_SYMBOL_SEEN;
            continue;
        }
        if (state == NOTHING_SEEN)
            state = SYMBOL_SEEN;
        if (type == STT_SECTION || type == STT_OBJECT || type == STT_COMMON || type == STT_TLS)
            continue;
        if (s.st_shndx == SHN_UNDEF || s.st_shndx >= SHN_LORESERVE)
            continue;
        size = s.st_size;
        if (size == 0 && bind == STB_LOCAL && type == STT_NOTYPE && vis == STV_HIDDEN)
            continue; /* annobin markers */
        o = &t->syms[k++];
        o->value = s.st_value;
        o->size = size ? size : 1;
        o->name = name ? name : "";
        o->file = file != NULL && (bind == STB_LOCAL || state != FILE_AFTER_SYMBOL_SEEN) ? file
                                                                                        : NULL;
        atomic_init(&o->demangled, NULL);
        o->order = (uint32_t)i;
        o->shndx = s.st_shndx;
        o->is_func = type == STT_FUNC || type == STT_GNU_IFUNC;
        o->is_notype = type == STT_NOTYPE;
    }
    t->n = k;
    if (k > 1)
        qsort(t->syms, k, sizeof *t->syms, cmp_sym);
    return REPRO_OK;
}

/* binutils better_fit(): should sym replace the current choice c (size cs)
 * for addr? Both start at the same address here. */
static int better_fit(const struct sym_elfsym *c, uint64_t cs, const struct sym_elfsym *s,
                      uint64_t addr)
{
    if (c->value + cs <= addr) /* the current one does not reach addr */
        return s->size > cs;
    if (s->value + s->size <= addr)
        return 0;
    if (c->is_func && !s->is_func)
        return 0;
    if (s->is_func && !c->is_func)
        return 1;
    if (c->is_notype && !s->is_notype)
        return 1;
    if (!c->is_notype && s->is_notype)
        return 0;
    return s->size < cs;
}

const struct sym_elfsym *repro__symtab_find(const struct sym_symtab *t, int table_id,
                                            uint32_t shndx, uint64_t addr,
                                            struct repro_sym_result *r)
{
    const struct sym_elfsym *c = r->priv_cache_sym, *best;
    size_t lo, hi, first, last, i;
    uint64_t size;

    if (t->n == 0)
        return NULL;
    if (c != NULL && r->priv_cache_table == table_id && c->shndx == shndx && addr >= c->value
        && addr < c->value + r->priv_cache_size)
        return c;
    /* the symbols of section shndx at or below addr: last one */
    lo = 0;
    hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct sym_elfsym *s = &t->syms[mid];
        if (s->shndx < shndx || (s->shndx == shndx && s->value <= addr))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || t->syms[lo - 1].shndx != shndx) {
        r->priv_cache_sym = NULL;
        return NULL;
    }
    last = lo - 1;
    first = last;
    while (first > 0 && t->syms[first - 1].shndx == shndx
           && t->syms[first - 1].value == t->syms[last].value)
        first--;
    best = &t->syms[first];
    size = best->size;
    for (i = first + 1; i <= last; i++) {
        if (better_fit(best, size, &t->syms[i], addr)) {
            best = &t->syms[i];
            size = best->size;
        }
    }
    /* a later symbol inside the chosen one shortens what the cache covers */
    if (lo < t->n && t->syms[lo].shndx == shndx && t->syms[lo].value < best->value + size)
        size = t->syms[lo].value - best->value;
    r->priv_cache_sym = best;
    r->priv_cache_size = size;
    r->priv_cache_table = table_id;
    return best;
}

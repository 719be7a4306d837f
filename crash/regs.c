/*
 * The register text of a crash record, written once for the three crash
 * producers (see regs.h for the format and docs/crash-record.md). The
 * tables map each printed slot to its word in the kernel's NT_PRSTATUS
 * block (PTRACE_GETREGSET and core files carry the same layout); the
 * in-process agent fills the slots from its ucontext itself.
 *
 * Async-signal-safe: no allocation, no stdio, no locale, no library call
 * at all, so that librepro_crash.so can format in its signal handler.
 */
#include "regs.h"

static const char *const x86_names[REPRO__X86_N] = {
    "rip",      "rsp", "rbp", "rax", "rbx", "rcx", "rdx", "rsi",     "rdi",
    "r8",       "r9",  "r10", "r11", "r12", "r13", "r14", "r15",     "eflags",
    "orig_rax", "cs",  "ss",  "ds",  "es",  "fs",  "gs",  "fs_base", "gs_base"};

/* Word of struct user_regs_struct (r15 r14 r13 r12 rbp rbx r11 r10 r9 r8
 * rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es
 * fs gs) for each slot. */
static const unsigned char x86_word[REPRO__X86_N] = {16, 19, 4,  10, 5,  11, 12, 13, 14,
                                                     9,  8,  7,  6,  3,  2,  1,  0,  18,
                                                     15, 17, 20, 23, 24, 25, 26, 21, 22};

static const char *const a64_names[REPRO__A64_N] = {
    "pc",  "sp",  "x0",  "x1",  "x2",  "x3",  "x4",  "x5",  "x6",  "x7",    "x8",  "x9",
    "x10", "x11", "x12", "x13", "x14", "x15", "x16", "x17", "x18", "x19",   "x20", "x21",
    "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29", "x30", "pstate"};

/* struct user_pt_regs: x0..x30, sp, pc, pstate. */
static const unsigned char a64_word[REPRO__A64_N] = {32, 31, 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,
                                                     10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                                                     22, 23, 24, 25, 26, 27, 28, 29, 30, 33};

static unsigned n_slots(int arch)
{
    return arch == REPRO__REGS_X86_64    ? REPRO__X86_N
           : arch == REPRO__REGS_AARCH64 ? REPRO__A64_N
                                         : 0;
}

void repro__regs_init(struct repro__regs *r, int arch)
{
    unsigned i;
    r->arch = arch;
    r->present = 0;
    for (i = 0; i < REPRO__MAX_REGS; i++)
        r->v[i] = 0;
}

void repro__regs_set(struct repro__regs *r, unsigned slot, uint64_t v)
{
    if (slot >= n_slots(r->arch))
        return;
    r->v[slot] = v;
    r->present |= UINT64_C(1) << slot;
}

int repro__regs_from_prstatus(struct repro__regs *r, int arch, const uint64_t *w, size_t n_words)
{
    const unsigned char *word = arch == REPRO__REGS_X86_64 ? x86_word : a64_word;
    unsigned i, n = n_slots(arch);
    int set = 0;

    repro__regs_init(r, arch);
    for (i = 0; i < n; i++) {
        if (word[i] < n_words) {
            repro__regs_set(r, i, w[word[i]]);
            set++;
        }
    }
    return set;
}

/* Appends "name=0xhex" (with a space before unless first) when it fits
 * in out[*used .. len-1). Returns 0, or -1 when it does not fit. */
static int append(char *out, size_t len, size_t *used, const char *name, uint64_t v)
{
    static const char hexdig[] = "0123456789abcdef";
    char hex[16];
    size_t nlen = 0, nhex = 0, need, at = *used, i;

    while (name[nlen] != '\0')
        nlen++;
    do {
        hex[nhex++] = hexdig[v & 15];
        v >>= 4;
    } while (v != 0);
    need = (at > 0 ? 1 : 0) + nlen + 3 + nhex;
    if (need >= len - at)
        return -1;
    if (at > 0)
        out[at++] = ' ';
    for (i = 0; i < nlen; i++)
        out[at++] = name[i];
    out[at++] = '=';
    out[at++] = '0';
    out[at++] = 'x';
    while (nhex > 0)
        out[at++] = hex[--nhex];
    out[at] = '\0';
    *used = at;
    return 0;
}

int repro__regs_format(const struct repro__regs *r, char *out, size_t len)
{
    const char *const *names = r->arch == REPRO__REGS_X86_64 ? x86_names : a64_names;
    unsigned i, n = n_slots(r->arch);
    size_t used = 0;

    if (len == 0)
        return REPRO_E_LIMIT;
    out[0] = '\0';
    for (i = 0; i < n; i++) {
        if (!(r->present & (UINT64_C(1) << i)))
            continue;
        if (append(out, len, &used, names[i], r->v[i]) != 0)
            return REPRO_E_LIMIT;
    }
    return (int)used;
}

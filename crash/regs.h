/*
 * Private to crash/: the one register formatter of the three crash
 * producers (crash/supervisor.c, crash/crash_agent.c, crash/core_import.c),
 * so that a thread's `registers` text is the same whoever recorded it.
 * Format (docs/crash-record.md#registers): `name=0xvalue` per register,
 * lower-case hex without leading zeros, one space between registers, in a
 * fixed order per architecture (pc and stack pointer first); a register
 * the producer could not read is left out.
 *
 * crash/regs.c is compiled into repro_lib and into librepro_crash.so: it
 * depends on nothing but this header, allocates nothing, and every
 * function is async-signal-safe and thread-safe.
 */
#ifndef REPRO_CRASH_REGS_H
#define REPRO_CRASH_REGS_H

#include "repro/core.h"

#include <stddef.h>
#include <stdint.h>

enum repro__regs_arch { REPRO__REGS_NONE = 0, REPRO__REGS_X86_64 = 1, REPRO__REGS_AARCH64 = 2 };

#if defined(__x86_64__)
#define REPRO__REGS_HOST REPRO__REGS_X86_64
#elif defined(__aarch64__)
#define REPRO__REGS_HOST REPRO__REGS_AARCH64
#else
#define REPRO__REGS_HOST REPRO__REGS_NONE
#endif

/* x86-64 slots, in the order they are printed. */
enum {
    REPRO__X86_RIP,
    REPRO__X86_RSP,
    REPRO__X86_RBP,
    REPRO__X86_RAX,
    REPRO__X86_RBX,
    REPRO__X86_RCX,
    REPRO__X86_RDX,
    REPRO__X86_RSI,
    REPRO__X86_RDI,
    REPRO__X86_R8,
    REPRO__X86_R9,
    REPRO__X86_R10,
    REPRO__X86_R11,
    REPRO__X86_R12,
    REPRO__X86_R13,
    REPRO__X86_R14,
    REPRO__X86_R15,
    REPRO__X86_EFLAGS,
    REPRO__X86_ORIG_RAX,
    REPRO__X86_CS,
    REPRO__X86_SS,
    REPRO__X86_DS,
    REPRO__X86_ES,
    REPRO__X86_FS,
    REPRO__X86_GS,
    REPRO__X86_FS_BASE,
    REPRO__X86_GS_BASE,
    REPRO__X86_N
};

/* aarch64 slots, in the order they are printed: pc, sp, x0 ... x30, pstate. */
enum {
    REPRO__A64_PC,
    REPRO__A64_SP,
    REPRO__A64_X0,
    REPRO__A64_PSTATE = REPRO__A64_X0 + 31,
    REPRO__A64_N
};

#define REPRO__MAX_REGS 34
/* Enough for every register of either architecture at full width. */
#define REPRO__REGS_TEXT_MAX 1024

/*
 * The general-purpose registers of one thread. Invariant: bit i of present
 * is set only for i < the architecture's slot count, and then v[i] holds
 * slot i's value.
 */
struct repro__regs {
    int arch; /* enum repro__regs_arch */
    uint64_t present;
    uint64_t v[REPRO__MAX_REGS];
};

/* Empties r for arch (nothing present). */
void repro__regs_init(struct repro__regs *r, int arch);

/* Sets slot (an REPRO__X86_* or REPRO__A64_* of r's arch) to v; a slot out
 * of range is ignored. */
void repro__regs_set(struct repro__regs *r, unsigned slot, uint64_t v);

/*
 * Fills r (arch) from the kernel's NT_PRSTATUS register block read as
 * words (x86-64 struct user_regs_struct, aarch64 struct user_pt_regs, in
 * the kernel's order, already in host byte order): w[0..n_words). The
 * slots whose word lies past n_words stay absent (a truncated note).
 * Returns the number of registers set (0 for REPRO__REGS_NONE).
 */
int repro__regs_from_prstatus(struct repro__regs *r, int arch, const uint64_t *w, size_t n_words);

/*
 * Formats r into out (len bytes, always NUL-terminated when len > 0).
 * Returns the length written, or REPRO_E_LIMIT when out is too small (out
 * then holds the registers that fit, whole). Nothing present gives "".
 */
int repro__regs_format(const struct repro__regs *r, char *out, size_t len);

#endif

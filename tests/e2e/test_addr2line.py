#!/usr/bin/env python3
"""repro addr2line against GNU binutils addr2line, the oracle.

Builds test programs at -O2 -g (C with inline functions over several units,
DWARF 5 and DWARF 4; C++ with templates, lambdas and the standard library),
samples addresses in every function plus addresses outside any function, and
requires byte-identical output from `repro addr2line` and `addr2line` for
the same flags (-f -i -C on stdin; -a, -p, -s, none; addresses as
arguments in every spelling). Also: libc.so.6 when libc6-dbg is installed
(skipped with a message otherwise), a stripped binary with its debug file
in a build-id tree (--debug-dir) and next to it through .gnu_debuglink, a
build-id mismatch refused with a warning, a missing file, files cut at
several offsets (binutils: "file format not recognized", exit 1), a section
that runs past the end of the file (a warning, exit 0), a coprocess.

usage: test_addr2line.py REPRO [--keep]
Exit 0 pass, 1 fail, 77 when binutils addr2line or gcc is missing.
"""
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile

from e2e_common import exit_code, skip_part

REPRO = None
FAILS = []

C_UTIL_H = r"""
#ifndef UTIL_H
#define UTIL_H
static inline int clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static inline unsigned mix(unsigned h, unsigned v)
{
    h ^= v + 0x9e3779b9u + (h << 6) + (h >> 2);
    return h;
}
static inline unsigned hash_buf(const unsigned char *p, int n)
{
    unsigned h = 2166136261u;
    for (int i = 0; i < n; i++)
        h = mix(h, p[i]);
    return h;
}
#endif
"""

C_A = r"""
#include "util.h"
#include <string.h>
static int table[64];
static inline int lookup(int i) { return table[clamp(i, 0, 63)]; }
__attribute__((noinline)) int a_fill(int seed)
{
    for (int i = 0; i < 64; i++)
        table[i] = (int)mix((unsigned)seed, (unsigned)i) & 0xffff;
    return lookup(seed);
}
static int helper(const char *s) { return (int)hash_buf((const unsigned char *)s, (int)strlen(s)); }
int a_hash(const char *s, int k)
{
    int r = 0;
    for (int i = 0; i < k; i++) {
        if (i & 1)
            r += helper(s) ^ lookup(i);
        else
            r -= clamp(r, -1000, 1000);
    }
    return r;
}
"""

C_B = r"""
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
struct node { struct node *next; int v; };
static inline struct node *push(struct node *h, int v)
{
    struct node *n = malloc(sizeof *n);
    if (n == NULL)
        abort();
    n->next = h;
    n->v = clamp(v, 0, 1 << 20);
    return n;
}
static int sum(const struct node *n) { int s = 0; for (; n; n = n->next) s += n->v; return s; }
__attribute__((noinline)) static int cold_path(int x)
{
    fprintf(stderr, "cold %d\n", x);
    return x * 3;
}
int b_list(int n)
{
    struct node *h = NULL;
    for (int i = 0; i < n; i++)
        h = push(h, (int)mix(7u, (unsigned)i));
    int s = sum(h);
    if (__builtin_expect(s == 42, 0))
        s = cold_path(s);
    while (h) { struct node *t = h->next; free(h); h = t; }
    return s;
}
"""

C_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
int a_fill(int);
int a_hash(const char *, int);
int b_list(int);
int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 10;
    printf("%d %d %d\n", a_fill(n), a_hash(argv[0], n), b_list(n));
    return 0;
}
"""

CPP_SRC = r"""
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>
namespace geo {
template <typename T> struct Vec { T x, y; Vec operator+(const Vec &o) const { return {x + o.x, y + o.y}; } };
template <typename T> T dot(const Vec<T> &a, const Vec<T> &b) { return a.x * b.x + a.y * b.y; }
template <typename T, int N> struct Poly {
    Vec<T> p[N];
    T area() const { T s = 0; for (int i = 0; i < N; i++) s += dot(p[i], p[(i + 1) % N]); return s; }
};
class Shape { public: virtual ~Shape() {} virtual double size() const = 0; };
class Circle : public Shape { double r; public: explicit Circle(double rr) : r(rr) {} double size() const override { return 3.14159 * r * r; } };
}
template <typename C> static long total(const C &c) { long s = 0; for (auto &v : c) s += v.second.size(); return s; }
__attribute__((noinline)) double shapes(int n)
{
    std::vector<geo::Shape *> v;
    for (int i = 0; i < n; i++) v.push_back(new geo::Circle(i));
    double s = 0;
    for (auto *p : v) { s += p->size(); delete p; }
    return s;
}
int main(int argc, char **argv)
{
    std::vector<int> v;
    for (int i = 0; i < argc * 100; i++) v.push_back((i * 7919) % 1000);
    std::sort(v.begin(), v.end(), [](int a, int b) { return a > b; });
    std::map<int, std::string> m;
    for (int i = 0; i < argc * 10; i++) m[i] = std::string(argv[0]) + std::to_string(i);
    geo::Poly<int, 4> q{{{0, 0}, {1, 0}, {1, 1}, {0, 1}}};
    geo::Poly<double, 3> t{{{0, 0}, {1, 0}, {0, 1}}};
    std::printf("%d %ld %d %g %g\n", v[0], total(m), q.area(), t.area(), shapes(argc));
    return 0;
}
"""


def run(cmd, inp=None, check=True):
    p = subprocess.run(cmd, input=inp, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr))
    return p


def functions(path):
    """(start, size) of every sized function symbol of path."""
    out = run(["nm", "-S", "--defined-only", path], check=False).stdout
    res = []
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and f[2] in "tTwWi":
            s = int(f[1], 16)
            if s > 0:
                res.append((int(f[0], 16), s))
    return sorted(set(res))


def sample(path, every_byte_max=6000, n_random=3000, seed=1):
    """Every byte of every function when that is few, else a sample; plus
    addresses outside any function (before, between, after, huge)."""
    rnd = random.Random(seed)
    fns = functions(path)
    total = sum(s for _, s in fns)
    addrs = []
    if total <= every_byte_max:
        for a, s in fns:
            addrs.extend(range(a, a + s))
    else:
        for a, s in fns:  # every function's start, middle and end
            addrs.extend([a, a + s // 2, a + s - 1])
        for _ in range(n_random):
            a, s = rnd.choice(fns)
            addrs.append(a + rnd.randrange(s))
    if fns:
        hi = max(a + s for a, s in fns)
        addrs.extend([0, 1, 0x400, hi, hi + 1, hi + 0x1000, 0xffffffffffffffff, 0x7fffffffffff])
        for i in range(len(fns) - 1):  # gaps between functions
            end = fns[i][0] + fns[i][1]
            if end < fns[i + 1][0]:
                addrs.append(end)
    return addrs


def fmt_addrs(addrs):
    return "".join("%x\n" % a for a in addrs)


def compare(label, flags, path, addrs=None, text=None, extra=()):
    inp = text if text is not None else fmt_addrs(addrs)
    mine = run([REPRO, "addr2line"] + list(extra) + flags + ["-e", path], inp, check=False)
    ref = run(["addr2line"] + flags + ["-e", path], inp, check=False)
    if mine.returncode != ref.returncode or mine.stdout != ref.stdout:
        a, b = mine.stdout.splitlines(), ref.stdout.splitlines()
        FAILS.append(label)
        print("FAIL %s: %s (exit %d vs %d, %d vs %d lines)" % (label, " ".join(flags),
              mine.returncode, ref.returncode, len(a), len(b)))
        shown = 0
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else "<missing>"
            y = b[i] if i < len(b) else "<missing>"
            if x != y:
                print("  line %d: repro   %r\n  %s  binutils %r" % (i + 1, x, " " * len(str(i + 1)), y))
                shown += 1
                if shown >= 8:
                    break
        if mine.stderr:
            print("  repro stderr:", mine.stderr.strip()[:500])
        return False
    n = len(inp.splitlines())
    print("ok   %s: %s (%d addresses, %d lines)" % (label, " ".join(flags) or "(no flags)", n,
                                                   len(mine.stdout.splitlines())))
    return True


def compare_args(label, path, addrs, flags=("-f", "-i", "-C")):
    """Addresses as arguments, in every spelling bfd_scan_vma accepts."""
    rnd = random.Random(7)
    args = []
    for a in addrs[:300]:
        form = rnd.randrange(5)
        args.append(["%x" % a, "0x%x" % a, "0X%X" % a, "%X" % a, "  0x%x" % a][form])
    args += ["zz", "0x", "g12", "12g", "-0"]
    flags = list(flags)
    mine = run([REPRO, "addr2line"] + flags + ["-e", path, "--"] + args, check=False)
    ref = run(["addr2line"] + flags + ["-e", path, "--"] + args, check=False)
    if mine.stdout != ref.stdout or mine.returncode != ref.returncode:
        FAILS.append(label)
        print("FAIL %s: arguments differ" % label)
        for x, y in zip(mine.stdout.splitlines(), ref.stdout.splitlines()):
            if x != y:
                print("  repro %r\n  binutils %r" % (x, y))
                break
    else:
        print("ok   %s: %d addresses as arguments" % (label, len(args)))


def full_suite(label, path, addrs):
    text = fmt_addrs(addrs)
    compare(label, ["-f", "-i", "-C"], path, text=text)
    compare(label, ["-a", "-f", "-i", "-C"], path, text=text)
    compare(label, ["-p", "-f", "-i", "-C"], path, text=text)
    compare(label, ["-a", "-p", "-f", "-i", "-s"], path, text=text)
    compare(label, ["-f"], path, text=text)
    compare(label, [], path, text=text)
    compare(label, ["-s", "-i"], path, text=text)
    compare_args(label, path, addrs)


def coprocess(path, addr):
    """One address in, its answer out, with stdin kept open: the answer must
    arrive without closing stdin (addr2line flushes per line)."""
    p = subprocess.Popen([REPRO, "addr2line", "-f", "-e", path], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    try:
        got = []
        fd = p.stdout.fileno()
        for a in (addr, addr + 1):
            p.stdin.write(b"%x\n" % a)
            p.stdin.flush()
            data = b""
            while data.count(b"\n") < 2:  # -f: function line, then file:line
                r, _, _ = select.select([fd], [], [], 10)
                if not r:
                    FAILS.append("coprocess")
                    print("FAIL coprocess: no answer within 10 s while stdin is open")
                    return
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
            got.append(data.decode())
        ref = run(["addr2line", "-f", "-e", path, "%x" % addr, "%x" % (addr + 1)]).stdout
        if "".join(got) != ref:
            FAILS.append("coprocess")
            print("FAIL coprocess: %r vs %r" % ("".join(got), ref))
        else:
            print("ok   coprocess: answers arrive line by line")
    finally:
        p.stdin.close()
        p.wait(10)


def build_id(path):
    out = run(["readelf", "-n", path]).stdout
    for line in out.splitlines():
        if "Build ID:" in line:
            return line.split("Build ID:")[1].strip()
    return None


def truncated_files(path, addrs):
    """A cut copy of path at several offsets: binutils refuses each one with
    "file format not recognized" and exit 1, printing nothing on stdout;
    repro must too. A whole file whose section runs past its end: binutils
    warns "section extending past end of file" and answers (exit 0)."""
    with open(path, "rb") as f:
        img = f.read()
    text = fmt_addrs(addrs)
    for cut in (64, 100, 1000, len(img) // 2, len(img) - 64, len(img) - 1):
        cpath = "%s.cut%d" % (path, cut)
        with open(cpath, "wb") as f:
            f.write(img[:cut])
        ref = run(["addr2line", "-f", "-e", cpath], text, check=False)
        mine = run([REPRO, "addr2line", "-f", "-e", cpath], text, check=False)
        label = "truncated at %d of %d bytes" % (cut, len(img))
        if (mine.returncode, mine.stdout) != (ref.returncode, ref.stdout) or \
                "file format not recognized" not in ref.stderr or \
                "file format not recognized" not in mine.stderr or cpath not in mine.stderr:
            FAILS.append("truncated file")
            print("FAIL %s: repro exit %d %r %r, binutils exit %d %r %r" % (
                label, mine.returncode, mine.stdout[:80], mine.stderr, ref.returncode,
                ref.stdout[:80], ref.stderr))
        else:
            print("ok   %s: exit %d as binutils, %s" % (label, mine.returncode,
                                                        mine.stderr.strip()))
    # .text reaching past the end of the file (its sh_size enlarged)
    shoff = int.from_bytes(img[0x28:0x30], "little")
    shentsize = int.from_bytes(img[0x3a:0x3c], "little")
    shnum = int.from_bytes(img[0x3c:0x3e], "little")
    shstrndx = int.from_bytes(img[0x3e:0x40], "little")
    strtab = int.from_bytes(img[shoff + shstrndx * shentsize + 24:][:8], "little")
    for i in range(shnum):
        h = shoff + i * shentsize
        name_off = strtab + int.from_bytes(img[h:h + 4], "little")
        if img[name_off:name_off + 6] == b".text\0":
            big = bytearray(img)
            big[h + 32:h + 40] = (len(img) + 4096).to_bytes(8, "little")
            bpath = path + ".bigtext"
            with open(bpath, "wb") as f:
                f.write(big)
            ref = run(["addr2line", "-f", "-e", bpath], text, check=False)
            mine = run([REPRO, "addr2line", "-f", "-e", bpath], text, check=False)
            if (mine.returncode, mine.stdout) != (ref.returncode, ref.stdout) or \
                    "past end of file" not in ref.stderr or ".text" not in mine.stderr or \
                    "past the end of the file" not in mine.stderr:
                FAILS.append("section past end of file")
                print("FAIL section past end of file: repro exit %d %r, binutils exit %d %r" % (
                    mine.returncode, mine.stderr, ref.returncode, ref.stderr))
            else:
                print("ok   section past end of file: same answers, exit %d, %s" % (
                    mine.returncode, mine.stderr.strip()))
            break


def main():
    global REPRO
    if len(sys.argv) < 2:
        print(__doc__)
        return 64
    REPRO = os.path.abspath(sys.argv[1])
    keep = "--keep" in sys.argv
    for tool in ("addr2line", "gcc", "g++", "nm", "objcopy", "readelf"):
        if shutil.which(tool) is None:
            print("SKIP: %s not installed" % tool)
            return 77
    tmp = tempfile.mkdtemp(prefix="repro-a2l-")
    try:
        for name, src in (("util.h", C_UTIL_H), ("a.c", C_A), ("b.c", C_B), ("main.c", C_MAIN),
                          ("t.cc", CPP_SRC)):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(src)
        os.chdir(tmp)
        run(["gcc", "-O2", "-g", "-o", "prog5", "main.c", "a.c", "b.c"])
        run(["gcc", "-O2", "-gdwarf-4", "-o", "prog4", "main.c", "a.c", "b.c"])
        run(["g++", "-O2", "-g", "-o", "progxx", "t.cc"])
        run(["gcc", "-O0", "-o", "nodebug", "main.c", "a.c", "b.c"])

        for prog in ("prog5", "prog4", "progxx"):
            full_suite(prog, os.path.join(tmp, prog), sample(prog))
        compare("nodebug", ["-f", "-i"], os.path.join(tmp, "nodebug"), sample("nodebug"))

        # libc with libc6-dbg: thousands of addresses, the full flag set
        libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"
        bid = build_id(libc) if os.path.exists(libc) else None
        dbg = "/usr/lib/debug/.build-id/%s/%s.debug" % (bid[:2], bid[2:]) if bid else None
        if dbg and os.path.exists(dbg):
            addrs = sample(dbg, every_byte_max=0, n_random=20000)
            compare("libc", ["-f", "-i", "-C"], libc, addrs)
            compare("libc", ["-a", "-p", "-f", "-i", "-s"], libc, addrs[:5000])
            compare_args("libc", libc, addrs)
        else:
            skip_part("libc: libc6-dbg is not installed (apt-get install libc6-dbg)")

        # debug file through .gnu_debuglink next to a stripped binary
        os.makedirs("dl", exist_ok=True)
        run(["objcopy", "--only-keep-debug", "prog5", "dl/prog5.debug"])
        run(["objcopy", "--strip-debug", "--add-gnu-debuglink=dl/prog5.debug", "prog5",
             "dl/prog5"])
        addrs = sample("prog5")
        compare("debuglink", ["-f", "-i", "-C"], os.path.join(tmp, "dl/prog5"), addrs)

        # stripped binary, debug file in a build-id tree given with --debug-dir:
        # must answer as binutils does on the unstripped binary
        pbid = build_id("prog5")
        os.makedirs("tree/.build-id/%s" % pbid[:2], exist_ok=True)
        run(["objcopy", "--only-keep-debug", "prog5",
             "tree/.build-id/%s/%s.debug" % (pbid[:2], pbid[2:])])
        run(["strip", "-o", "stripped", "prog5"])
        text = fmt_addrs(addrs)
        mine = run([REPRO, "addr2line", "--debug-dir", os.path.join(tmp, "tree"), "-f", "-i",
                    "-e", "stripped"], text).stdout
        ref = run(["addr2line", "-f", "-i", "-e", "prog5"], text).stdout
        if mine != ref:
            FAILS.append("build-id tree")
            diff = [(x, y) for x, y in zip(mine.splitlines(), ref.splitlines()) if x != y][:5]
            print("FAIL build-id tree: %d vs %d lines, first differences %r" % (
                len(mine.splitlines()), len(ref.splitlines()), diff))
        else:
            print("ok   build-id tree: stripped binary symbolized from --debug-dir")

        # a debug file of another build under the right build-id name is refused
        os.makedirs("bad/.build-id/%s" % pbid[:2], exist_ok=True)
        run(["objcopy", "--only-keep-debug", "prog4",
             "bad/.build-id/%s/%s.debug" % (pbid[:2], pbid[2:])])
        p = run([REPRO, "addr2line", "--debug-dir", os.path.join(tmp, "bad"), "-f", "-e",
                 "stripped", "%x" % addrs[0]], check=False)
        if p.returncode != 0 or "build-id" not in p.stderr or "refusing" not in p.stderr:
            FAILS.append("build-id mismatch")
            print("FAIL build-id mismatch: exit %d, stderr %r" % (p.returncode, p.stderr))
        else:
            print("ok   build-id mismatch refused: %s" % p.stderr.strip().splitlines()[0])

        # missing file: binutils says "addr2line: 'x': No such file" and exits 1
        p = run([REPRO, "addr2line", "-e", "/nonexistent/file", "0x10"], check=False)
        if p.returncode != 1 or "'/nonexistent/file': No such file" not in p.stderr:
            FAILS.append("missing file")
            print("FAIL missing file: exit %d, %r" % (p.returncode, p.stderr))
        else:
            print("ok   missing file: exit 1, %s" % p.stderr.strip())
        p = run([REPRO, "addr2line", "-e", os.path.join(tmp, "a.c"), "0x10"], check=False)
        if p.returncode != 1 or "a.c" not in p.stderr:
            FAILS.append("not elf")
            print("FAIL not an ELF file: exit %d, %r" % (p.returncode, p.stderr))
        else:
            print("ok   not an ELF file: exit 1, %s" % p.stderr.strip())

        truncated_files(os.path.join(tmp, "prog5"), addrs[:50])

        # stdin edge cases: long lines are read in 99-byte pieces, no final newline
        text = "%x\n%s\n  0x%x\n%x" % (addrs[1], "0" * 150 + "%x" % addrs[2], addrs[3], addrs[4])
        compare("stdin edges", ["-f", "-a"], os.path.join(tmp, "prog5"), text=text)
        coprocess(os.path.join(tmp, "prog5"), addrs[len(addrs) // 2])
    finally:
        os.chdir("/")
        if keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        print("FAILED: %s" % ", ".join(sorted(set(FAILS))))
        return 1
    print("all addr2line comparisons identical")
    return exit_code(False)


if __name__ == "__main__":
    sys.exit(main())

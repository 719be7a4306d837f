#!/usr/bin/env bash
# repro addr2line against binutils addr2line, eu-addr2line (elfutils) and
# llvm-symbolizer (Debian llvm) on 100,000 random addresses inside functions
# of (a) libc.so.6 with libc6-dbg and (b) a generated C program of a few
# thousand functions over many units at -O2 -g. Start-up included: each
# number is one process symbolizing the whole list from stdin.
#
#   bench/addr2line_bench.sh [REPRO]      (default: build/repro)
#
# Environment: RUNS (default 5; eu-addr2line runs once: it takes seconds),
# N (addresses, default 100000), UNITS and FUNCS_PER_UNIT for the generated
# program (default 200 x 20), KEEP=1 keeps the work directory.
#
# Reports per tool the median wall time, addresses/s and its ratio to repro;
# repro's warm rate (a 10x longer list minus the 1x list: index building
# cancels out) and its index timings (--stats: open = sections, symbols,
# unit map; units = every unit's lines and functions, built lazily); for
# libc also the whole index built on all cores by bench/sym_index_bench
# (built next to REPRO with -DREPRO_BUILD_BENCH=ON, the default). Checks
# that repro's output is byte-identical to binutils'. A JSON summary goes to
# bench/results/addr2line-DATE.json.
set -euo pipefail
export LC_ALL=C  # EPOCHREALTIME and the number formats below use "."
cd "$(dirname "$0")/.."
REPRO=$(realpath "${1:-build/repro}")
RUNS=${RUNS:-5}
N=${N:-100000}
UNITS=${UNITS:-200}
FUNCS_PER_UNIT=${FUNCS_PER_UNIT:-20}
WORK=$(mktemp -d /tmp/repro-a2l-bench.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
[ -x "$REPRO" ] || { echo "no repro binary at $REPRO (build first)" >&2; exit 2; }
command -v addr2line >/dev/null || { echo "binutils addr2line is needed" >&2; exit 2; }

# bash's own clock: timing with $(date) would add two process starts (2-4 ms)
# to every run, a 5% error on a 60 ms run
[ -n "${EPOCHREALTIME:-}" ] || { echo "bash >= 5 is needed (EPOCHREALTIME)" >&2; exit 2; }
median() { python3 -c 'import sys,statistics; print("%.4f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
rate() { python3 -c 'import sys; print("%.0f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }

# time_runs RUNS OUT CMD... : median wall seconds of RUNS runs (stdin: $INPUT)
time_runs() {
  local runs=$1 out=$2; shift 2
  local ts=() i t0 t1
  for ((i = 0; i < runs; i++)); do
    t0=$EPOCHREALTIME; "$@" < "$INPUT" > "$out" 2>>"$WORK/stderr"; t1=$EPOCHREALTIME
    ts+=("$(python3 -c "print($t1 - $t0)")")
  done
  median "${ts[@]}"
}

# addresses FILE_WITH_SYMBOLS OUT: N random addresses inside sized functions
addresses() {
  nm -S --defined-only "$1" | python3 -c '
import random, sys
random.seed(20261125)
fs = []
for line in sys.stdin:
    f = line.split()
    if len(f) >= 4 and f[2] in "tTwWi" and int(f[1], 16) > 0:
        fs.append((int(f[0], 16), int(f[1], 16)))
n = int(sys.argv[1])
sys.stdout.write("".join("%x\n" % (a + random.randrange(s)) for a, s in (random.choice(fs) for _ in range(n))))
' "$N" > "$2"
}

gen_program() {
  local dir=$WORK/gen
  mkdir -p "$dir"
  python3 - "$dir" "$UNITS" "$FUNCS_PER_UNIT" <<'EOF'
import os, sys
d, units, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(os.path.join(d, "common.h"), "w") as f:
    f.write("""
static inline unsigned mix(unsigned h, unsigned v) { h ^= v + 0x9e3779b9u + (h << 6) + (h >> 2); return h; }
static inline unsigned rot(unsigned x, int k) { return (x << (k & 31)) | (x >> ((32 - k) & 31)); }
static inline unsigned step(unsigned h, const unsigned *p, int n)
{ for (int i = 0; i < n; i++) h = mix(rot(h, i), p[i]); return h; }
""")
for u in range(units):
    with open(os.path.join(d, "u%03d.c" % u), "w") as f:
        f.write('#include "common.h"\n')
        f.write("static unsigned tab%d[64];\n" % u)
        for k in range(per):
            f.write("static inline unsigned h%d_%d(unsigned x) { return step(x, tab%d, (int)(x & 15)) ^ mix(x, %d); }\n" % (u, k, u, k))
        for k in range(per):
            f.write("__attribute__((noinline)) unsigned f%d_%d(unsigned x)\n{\n    unsigned r = 0;\n" % (u, k))
            f.write("    for (unsigned i = 0; i < (x & 7); i++)\n        r += h%d_%d(x + i) + rot(r, (int)i);\n" % (u, k))
            f.write("    if (r & 1)\n        r ^= h%d_%d(r);\n    return r;\n}\n" % (u, (k + 1) % per))
with open(os.path.join(d, "main.c"), "w") as f:
    for u in range(units):
        f.write("unsigned f%d_0(unsigned);\n" % u)
    f.write("int main(int c, char **v) { (void)v; unsigned r = 0;\n")
    for u in range(units):
        f.write("    r += f%d_0((unsigned)c);\n" % u)
    f.write("    return (int)(r & 1); }\n")
EOF
  (cd "$dir" && ls u*.c main.c | xargs -P 2 -n 8 gcc -O2 -g -c && gcc -O2 -g -o prog ./*.o) >&2
  echo "$dir/prog"
}

declare -A RESULT
bench_target() {  # bench_target NAME ELF SYMBOLS_FILE
  local name=$1 elf=$2 syms=$3
  INPUT=$WORK/$name.addrs
  addresses "$syms" "$INPUT"
  local n; n=$(wc -l < "$INPUT")
  echo "== $name: $elf ($n addresses, median of $RUNS runs)"
  local t_repro t_bu t_eu t_llvm
  t_repro=$(time_runs "$RUNS" "$WORK/repro.out" "$REPRO" addr2line -f -i -C -e "$elf")
  t_bu=$(time_runs "$RUNS" "$WORK/bu.out" addr2line -f -i -C -e "$elf")
  if cmp -s "$WORK/repro.out" "$WORK/bu.out"; then same=identical; else same=DIFFERENT; fi
  printf '  %-34s %8.3f s %12s addr/s\n' "repro addr2line -f -i -C" "$t_repro" "$(rate "$n" "$t_repro")"
  printf '  %-34s %8.3f s %12s addr/s   repro is %.1fx faster (output %s)\n' \
    "binutils addr2line -f -i -C" "$t_bu" "$(rate "$n" "$t_bu")" \
    "$(python3 -c "print($t_bu / $t_repro)")" "$same"
  t_eu=null; t_llvm=null
  if command -v eu-addr2line >/dev/null; then
    t_eu=$(time_runs 1 "$WORK/eu.out" eu-addr2line -f -i -e "$elf")
    printf '  %-34s %8.3f s %12s addr/s   repro is %.0fx faster (1 run)\n' \
      "eu-addr2line -f -i" "$t_eu" "$(rate "$n" "$t_eu")" "$(python3 -c "print($t_eu / $t_repro)")"
  fi
  if command -v llvm-symbolizer >/dev/null; then
    t_llvm=$(time_runs "$RUNS" "$WORK/llvm.out" llvm-symbolizer --obj="$elf" --inlining --demangle --functions=linkage)
    printf '  %-34s %8.3f s %12s addr/s   repro is %.1fx faster\n' \
      "llvm-symbolizer --inlining" "$t_llvm" "$(rate "$n" "$t_llvm")" "$(python3 -c "print($t_llvm / $t_repro)")"
  fi
  # warm: 10x the list in one process; the difference is pure lookups
  for i in 1 2 3 4 5 6 7 8 9 10; do cat "$WORK/$name.addrs"; done > "$WORK/$name.addrs10"
  INPUT=$WORK/$name.addrs10
  local t10; t10=$(time_runs "$RUNS" /dev/null "$REPRO" addr2line -f -i -C -e "$elf")
  local warm; warm=$(python3 -c "print('%.0f' % (9 * $n / max($t10 - $t_repro, 1e-9)))")
  printf '  %-34s %12s addr/s (10x list %.3f s minus 1x list)\n' "repro warm (incl. inlined frames)" "$warm" "$t10"
  INPUT=$WORK/$name.addrs
  local stats; stats=$("$REPRO" addr2line --stats -f -i -C -e "$elf" < "$INPUT" 2>&1 >/dev/null | tail -1)
  echo "  $stats"
  RESULT[$name]=$(printf '{"elf": "%s", "addresses": %d, "repro_s": %s, "binutils_s": %s, "eu_addr2line_s": %s, "llvm_symbolizer_s": %s, "repro_warm_addr_per_s": %s, "output_identical": %s, "stats": "%s"}' \
    "$elf" "$n" "$t_repro" "$t_bu" "$t_eu" "$t_llvm" "$warm" "$([ $same = identical ] && echo true || echo false)" "${stats//\"/}")
}

LIBC=/usr/lib/x86_64-linux-gnu/libc.so.6
BID=$(readelf -n "$LIBC" | awk '/Build ID/{print $3}')
LIBC_DBG=/usr/lib/debug/.build-id/${BID:0:2}/${BID:2}.debug
if [ -f "$LIBC_DBG" ]; then
  bench_target libc "$LIBC" "$LIBC_DBG"
  IDX=$(dirname "$REPRO")/bench/sym_index_bench
  if [ -x "$IDX" ]; then
    echo "  libc index, 11 fresh processes (open = sections, symbols, unit map; index = every unit's"
    echo "  lines and functions built on all cores, wall time from the start of the open):"
    for i in $(seq 11); do "$IDX" "$LIBC"; done | python3 -c '
import re, statistics, sys
rows = [dict(kv.split("=") for kv in line.split()) for line in sys.stdin]
for key, label in (("open_ms", "open"), ("index_ms", "index"), ("units_cpu_ms", "units CPU")):
    v = [float(r[key]) for r in rows]
    print("    %-9s median %.1f ms (min %.1f, max %.1f)" % (label, statistics.median(v), min(v), max(v)))
'
  else
    echo "  (no $IDX: configure with -DREPRO_BUILD_BENCH=ON for the index timings)"
  fi
else
  echo "== libc: skipped, libc6-dbg is not installed"
fi
echo "== generating a C program: $UNITS units x $FUNCS_PER_UNIT functions at -O2 -g"
PROG=$(gen_program)
bench_target generated "$PROG" "$PROG"

mkdir -p bench/results
OUT=bench/results/addr2line-$(date +%Y%m%d-%H%M%S).json
{
  echo "{\"host_cpus\": $(nproc), \"runs\": $RUNS, \"targets\": {"
  first=1
  for k in "${!RESULT[@]}"; do
    [ $first = 1 ] || echo ","
    first=0
    printf '"%s": %s' "$k" "${RESULT[$k]}"
  done
  echo "}}"
} > "$OUT"
echo "summary: $OUT"

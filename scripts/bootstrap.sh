#!/usr/bin/env bash
# repro's set-up in one command, on a fresh Debian 12 machine (as root):
#
#   scripts/bootstrap.sh demo   install what is missing, build, run `repro demo`
#   scripts/bootstrap.sh test   install what is missing, build twice (plain and
#                               AddressSanitizer+UBSan) and run the whole suite
#
# Environment: JOBS (default: all cores), REPRO_CTEST_ARGS (extra ctest args),
# REPRO_SKIP_ASAN=1 (skip the sanitizer pass, for quick local runs).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in demo|test|deps) ;; *) echo "usage: $0 demo|test|deps" >&2; exit 64;; esac

# Debian packages the build, the tests and the demo need.
PKGS=(build-essential cmake pkg-config python3 libpcap-dev libsqlite3-dev sqlite3
      libcmocka-dev tshark tcpdump nginx wrk curl iproute2 time
      libunwind-dev libdw-dev libdeflate-dev libdebuginfod-dev elfutils gdb libiberty-dev libc6-dbg
      debuginfod binutils valgrind dwz zlib1g-dev nettle-dev libjansson-dev)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_deps() {
  local missing=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # Do not let package scripts start services (nginx) on this machine.
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
    as_root rm -f /usr/sbin/policy-rc.d
  fi
}

JOBS=${JOBS:-$(nproc)}

build() {  # build DIR [cmake args...]
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}

run_tests() {  # run_tests DIR
  # The slow label holds soak and long fuzz runs; CI leaves them out.
  (cd "$1" && ctest --output-on-failure -j "$JOBS" -LE slow ${REPRO_CTEST_ARGS:-})
}

install_deps
case "$mode" in
  deps) ;;
  demo)
    build build
    rm -f demo.db demo.db-wal demo.db-shm
    ./build/repro --db demo.db demo
    ;;
  test)
    echo "== plain build"
    build build
    run_tests build
    if [ "${REPRO_SKIP_ASAN:-0}" != 1 ]; then
      echo "== AddressSanitizer + UBSan build"
      build build-asan -DREPRO_SANITIZE=ON
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_tests build-asan
    fi
    ;;
esac

#!/usr/bin/env bash
# repro's set-up in one command, on a fresh Debian 12 machine (as root):
#
#   scripts/bootstrap.sh demo   install what is missing, build, run `repro demo`
#   scripts/bootstrap.sh test   install what is missing, check the house rules
#                               (scripts/check_rules.py), build three times
#                               (plain, AddressSanitizer+UBSan, ThreadSanitizer)
#                               and run the suite (ctest -LE slow; under TSan
#                               the threaded tests); what .ci/run calls
#   scripts/bootstrap.sh tsan   install what is missing, build with
#                               ThreadSanitizer into build-tsan and run the
#                               tests that exercise threads (TSAN_TESTS below)
#
# A skipped test (ctest "Skipped": a tool missing, not root ...) is listed
# after each ctest run; with CI=true it fails the run, because this script
# installs everything the tests need.
#
# Environment: JOBS (default: all cores), REPRO_CTEST_ARGS (extra ctest args),
# REPRO_SKIP_ASAN=1 / REPRO_SKIP_TSAN=1 (skip a sanitizer pass, for quick
# local runs),
# REPRO_CHECK_RULES=1|warn|0 (test mode: rule violations fail the run (1,
# the default), are only printed (warn), or the check is not run (0)).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in demo|test|tsan|deps) ;; *) echo "usage: $0 demo|test|tsan|deps" >&2; exit 64;; esac

# Debian packages the build, the tests and the demo need.
PKGS=(build-essential cmake pkg-config python3 libpcap-dev libsqlite3-dev sqlite3
      libcmocka-dev tshark tcpdump nginx wrk curl iproute2 time
      libunwind-dev libdw-dev libdeflate-dev libdebuginfod-dev elfutils gdb libiberty-dev libc6-dbg
      debuginfod binutils valgrind dwz zlib1g-dev nettle-dev libjansson-dev
      python3-prometheus-client strace)

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

# Prints the tests a ctest run (its output in LOG) reported skipped, each
# with the SKIPPED lines of its output (what it missed). In CI a skip fails.
report_skips() {  # report_skips DIR LOG
  local dir=$1 log=$2 names n
  names=$(sed -n 's/^[[:space:]]*[0-9][0-9]* - \(.*\) (Skipped)$/\1/p' "$log")
  [ -n "$names" ] || return 0
  n=$(printf '%s\n' "$names" | wc -l)
  if [ "${CI:-}" = true ]; then
    echo "error: $n test(s) skipped in $dir; CI runs every test (this script installs what they need):" >&2
  else
    echo "note: $n test(s) skipped in $dir (allowed outside CI; with CI=true this fails):" >&2
  fi
  # LastTest.log holds each test's output between "N/M Testing: NAME" and
  # "NAME" end time; show why each skipped test did not run.
  printf '%s\n' "$names" | while read -r t; do
    echo "  $t" >&2
    awk -v t="$t" '$0 ~ /^[0-9]+\/[0-9]+ Testing: / { on = ($3 == t); next }
                   on && !/^\[/ && tolower($0) ~ /skip/ && !seen[$0]++ { print "      " $0 }' \
      "$dir"/Testing/Temporary/LastTest*.log 2>/dev/null | head -5 >&2
  done
  [ "${CI:-}" != true ]
}

run_tests() {  # run_tests DIR [ctest args...]
  # The slow label holds soaks (ctest -L slow runs them); CI leaves them out.
  local dir=$1 rc=0; shift
  (cd "$dir" && ctest --output-on-failure -j "$JOBS" -LE slow "$@" ${REPRO_CTEST_ARGS:-}) 2>&1 |
    tee "$dir/ctest-output.txt" || rc=$?
  report_skips "$dir" "$dir/ctest-output.txt" || rc=1
  return $rc
}

check_rules() {
  case "${REPRO_CHECK_RULES:-1}" in
    0) echo "== house rules: not checked (REPRO_CHECK_RULES=0)" ;;
    warn)
      echo "== house rules (scripts/check_rules.py; REPRO_CHECK_RULES=warn: violations do not fail)"
      python3 scripts/check_rules.py || echo "== house rules: the violations above are not fatal (REPRO_CHECK_RULES=warn)" ;;
    *)
      echo "== house rules (scripts/check_rules.py)"
      python3 scripts/check_rules.py ;;
  esac
}

# The tests that run threads: the store's batching writer (test_store, and
# capture through it: test_capture, the capture e2e tests, repro capture in
# e2e.cli) and the symbolizer's background index threads (test_symbolize,
# the symbolize fuzz replay, repro addr2line, repro symbolize/crashes).
TSAN_TESTS='^(unit[.]test_(store|store_writer|capture|symbolize|app|supervisor|replay_engine|metrics|source_reader|live_priority)|fuzz[.]replay_(symbolize|pipeline)|e2e[.](addr2line|symbolize_crashes|cli|metrics|replay_progress|replay_hang|golden_fixture[.].*|live_capture[.]service))$'

tsan_pass() {
  echo "== ThreadSanitizer build"
  build build-tsan -DREPRO_TSAN=ON
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
    run_tests build-tsan -R "$TSAN_TESTS"
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
    check_rules
    echo "== plain build"
    build build
    run_tests build
    if [ "${REPRO_SKIP_ASAN:-0}" != 1 ]; then
      echo "== AddressSanitizer + UBSan build"
      build build-asan -DREPRO_SANITIZE=ON
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_tests build-asan
    fi
    # about 1.5 min on 2 cores: the whole of .ci/run stays far under 20 min
    if [ "${REPRO_SKIP_TSAN:-0}" != 1 ]; then
      tsan_pass
    fi
    ;;
  tsan)
    tsan_pass
    ;;
esac

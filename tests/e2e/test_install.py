#!/usr/bin/env python3
"""cmake --install installs what the README promises (issue 12, item 6):
the binary, librepro_crash.so, the demo's service and capture, the
documents, a man page with a section per command that says what `repro
COMMAND --help` says, and bash completion; `repro demo --offline` works
from the installed binary.

usage: test_install.py BUILD_DIR
Exit 0 pass, 1 fail, 77 skipped (no bash).
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import Fail, run, run_test, skip_all  # noqa: E402

BUILD = sys.argv[1]


def main(tmp, procs):
    prefix = os.path.join(tmp, "prefix")
    run(["cmake", "--install", BUILD, "--prefix", prefix], timeout=120)
    for rel in ("bin/repro", "lib/librepro_crash.so", "libexec/repro/sample_service",
                "share/repro/fixtures/capture/nginx_curl.pcap", "share/doc/repro/README.md",
                "share/doc/repro/schema.md", "share/man/man1/repro.1",
                "share/bash-completion/completions/repro"):
        if not os.path.exists(os.path.join(prefix, rel)):
            raise Fail("not installed: " + rel)
    repro = os.path.join(prefix, "bin", "repro")
    man = open(os.path.join(prefix, "share/man/man1/repro.1")).read()
    out, _, _ = run([repro, "--help"])
    commands = [l.split()[0] for l in out.decode().splitlines() if l.startswith("  ") and l.split()]
    for c in commands:
        usage = subprocess.run([repro, c, "--help"], stdout=subprocess.PIPE).stdout.decode()
        first = usage.splitlines()[0].replace("\\", "\\e")
        if (".SS %s\n" % c) not in man or first not in man:
            raise Fail("the man page lacks command %s or its usage line %r" % (c, first))
    # the completion offers the commands, and a command's options
    comp = os.path.join(prefix, "share/bash-completion/completions/repro")
    script = ('source %s; COMP_WORDS=(repro re); COMP_CWORD=1; _repro; echo "${COMPREPLY[*]}";'
              ' COMP_WORDS=(repro replay --ta); COMP_CWORD=2; _repro; echo "${COMPREPLY[*]}"' % comp)
    r = subprocess.run(["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = r.stdout.decode().splitlines()
    if r.returncode or len(lines) != 2 or set(lines[0].split()) != {"replay", "replays"} \
            or lines[1] != "--target":
        raise Fail("completion: %r %s" % (lines, r.stderr.decode()))
    db = os.path.join(tmp, "demo.db")
    env = dict(os.environ)
    env.pop("REPRO_FIXTURES", None)
    r = subprocess.run([repro, "demo", "--offline", "--db", db], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env, timeout=60)
    text = r.stdout.decode()
    if r.returncode != 0 or "share/repro/fixtures/capture/nginx_curl.pcap" not in text:
        raise Fail("the installed demo: exit %d\n%s" % (r.returncode, text[-1500:]))
    print("PASSED install")


if not shutil.which("bash"):
    skip_all("needs bash")
run_test("install", main)

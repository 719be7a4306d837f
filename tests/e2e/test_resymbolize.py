#!/usr/bin/env python3
"""Symbolizing a crash again gives the same frames, and never a worse
result (issue 12, items 1 and 2).

A NULL dereference in total(), inlined into process() at -O1: `repro run`
stores #0 total (inlined) crashme.c:4 and the signature
SIGSEGV|total|process|main. `repro symbolize` and `repro symbolize --force`
must keep exactly those frames (the faulting address is the first physical
frame, not frame 0, once inlined frames are stored in front of it). After
`objcopy --strip-debug`, `repro symbolize` keeps the better stored result
and says so; `--force` replaces it.

usage: test_resymbolize.py REPRO_BIN
Exit 0 pass, 1 fail, 77 skipped (no cc or objcopy).
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import Fail, run, run_test, skip_all  # noqa: E402

REPRO = sys.argv[1]
SOURCE = """#include <stdlib.h>
static int total(int *p)
{
    return *p + 1;
}
__attribute__((noinline)) int process(int *p)
{
    return total(p) * 2;
}
int main(int argc, char **argv)
{
    (void)argv;
    return process(argc > 5 ? &argc : NULL);
}
"""


def frames(db):
    out, _, _ = run([REPRO, "crashes", "--db", db, "--format", "json"])
    c = json.loads(out.decode().splitlines()[-1])
    t = [t for t in c["threads"] if t["crashed"]][0]
    return c["signature"], [(f["function"], f["file"] and os.path.basename(f["file"]), f["line"],
                             f["inlined"]) for f in t["frames"]]


def main(tmp, procs):
    src, exe, db = (os.path.join(tmp, n) for n in ("crashme.c", "crashme", "c.db"))
    with open(src, "w") as f:
        f.write(SOURCE)
    subprocess.run(["cc", "-g", "-O1", "-o", exe, src], check=True)
    run([REPRO, "run", "--db", db, "--", exe], ok_codes=(139,))
    first = frames(db)
    if first[0] != "SIGSEGV|total|process|main" or first[1][0][:4] != ("total", "crashme.c", 4, True):
        raise Fail("repro run: unexpected first frames %s" % (first,))
    for args in ([], ["--force"], []):
        _, e, _ = run([REPRO, "symbolize", "--db", db] + args)
        again = frames(db)
        if again != first:
            raise Fail("repro symbolize %s changed the frames:\n before %s\n after  %s\n%s" % (
                " ".join(args), first, again, e))
    subprocess.run(["objcopy", "--strip-debug", exe], check=True)
    _, e, _ = run([REPRO, "symbolize", "--db", db])
    if frames(db) != first or "kept the earlier symbols" not in e:
        raise Fail("without debug information the better result was not kept:\n%s" % e)
    _, e, _ = run([REPRO, "symbolize", "--db", db, "--force"])
    sig, fr = frames(db)
    if sig == first[0] or "kept" in e or "frames symbolized" not in e:
        raise Fail("--force did not replace the symbols: %s\n%s" % (sig, e))
    print("PASSED resymbolize")


for tool in ("cc", "objcopy"):
    if not shutil.which(tool):
        skip_all("needs " + tool)
run_test("resymbolize", main)

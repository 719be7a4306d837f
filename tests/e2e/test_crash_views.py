#!/usr/bin/env python3
"""A stack overflow shows as a few lines, not 256 (issue 12, item 11): the
recursion's identical frames are one line `#1-#255 ... recurse so.c:6
(x255)` in the text view, while JSON keeps every frame; the markdown view
starts with a summary table (crash, time, signal, signature, count, top
frame).

usage: test_crash_views.py REPRO_BIN
Exit 0 pass, 1 fail, 77 skipped (no cc).
"""
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import Fail, run, run_test, skip_all  # noqa: E402

REPRO = sys.argv[1]
SOURCE = """__attribute__((noinline)) int recurse(volatile int n)
{
    volatile char pad[256];
    pad[0] = (char)n;
    return recurse(n + 1) + pad[0];
}
int main(void) { return recurse(0); }
"""


def main(tmp, procs):
    src, exe, db = (os.path.join(tmp, n) for n in ("so.c", "so", "so.db"))
    with open(src, "w") as f:
        f.write(SOURCE)
    subprocess.run(["cc", "-g", "-O0", "-o", exe, src], check=True)
    run([REPRO, "run", "--db", db, "--", exe], ok_codes=(139,))
    out, _, _ = run([REPRO, "crashes", "--db", db])
    text = out.decode()
    frames = [l for l in text.splitlines() if re.match(r"\s+#\d", l)]
    if not (2 <= len(frames) <= 4) or not re.search(r"#1-#\d+ .*recurse .*so\.c:5 \(\u00d7\d+\)",
                                                     text):
        raise Fail("the recursion is not collapsed:\n" + text[:2000])
    out, _, _ = run([REPRO, "crashes", "--db", db, "--format", "json"])
    c = json.loads(out.decode().splitlines()[0])
    t = [t for t in c["threads"] if t["crashed"]][0]
    if len(t["frames"]) < 100:
        raise Fail("JSON lost frames: %d" % len(t["frames"]))
    # markdown: a summary table (| escaped in cells) above the stacks
    out, _, _ = run([REPRO, "crashes", "--db", db, "--format", "markdown"])
    md = out.decode()
    rows = [l for l in md.splitlines() if l.startswith("| ")]
    if len(rows) != 2 or rows[0].count(" | ") != 5 or rows[1].replace("\\|", "").count(" | ") != 5 \
            or "SIGSEGV\\|recurse" not in rows[1] or md.index("| crash |") > md.index("### crash 1"):
        raise Fail("markdown summary table:\n" + md[:800])
    print("PASSED crash_views")


if not shutil.which("cc"):
    skip_all("needs cc")
run_test("crash-views", main)

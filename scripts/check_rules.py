#!/usr/bin/env python3
"""check_rules.py - the house rules of STYLE.md 1 and DESIGN.md that a
machine can check, on #include lines, calls and file sizes.

usage: scripts/check_rules.py [--root DIR]   check the tree (default: this checkout)
       scripts/check_rules.py --self-test    plant one violation of each kind
                                             in a temporary tree, expect each

Prints every violation as `file:line: rule: what` and exits 1 if there is
any, 0 if none, 2 when it cannot run. scripts/bootstrap.sh test runs it
before building (REPRO_CHECK_RULES=1|warn|0).

Rules (names as printed):
  depends      a component includes the public header (include/repro/X.h) or
               a file of a component it must not depend on (DEPENDS below);
  private      a component includes another component's private header: a
               file under another folder (capture/tcp_reasm.h, store_int.h),
               except app/'s headers in cli/ (OPEN_HEADERS); tests/, bench/
               and fixtures/ may include what they test;
  table        a folder holds C sources but has no row in DEPENDS;
  cli-sql      cli/*.c calls SQLite (sqlite3_*): store/ alone speaks SQL;
  cli-socket   cli/*.c calls a socket function (SOCKET_CALLS);
  size         a .c/.h file is over MAX_LINES lines (STYLE.md 1: split it);
  unit-skip    a unit test skips with cmocka's bare skip() (ctest would say
               Passed) or uses tu_skip() without main returning tu_exit().

Calls are matched on the code with comments, strings and character literals
blanked out, so a message that mentions "connect(" is not a call.
"""
import os
import re
import subprocess
import sys
import tempfile

MAX_LINES = 1500


def may_use(*components):
    """Allow-list: the component may include these components' headers
    (core is always allowed) and nothing else."""
    return ("allow", frozenset(components))


def must_not_use(*components):
    """Deny-list: the component may include any public header but these."""
    return ("deny", frozenset(components))


# One row per top-level folder of library code: what it may depend on. The
# folder's own files and public header, and core, are always allowed. A new
# component gets a row here (the `table` rule reports a folder without one).
DEPENDS = {
    "core": may_use(),
    "http": must_not_use("app", "cli"),
    # capture keeps the traffic path only and hands exchanges to a sink
    "capture": must_not_use("store", "crash", "app", "cli"),
    "crash": must_not_use("app", "cli"),
    "symbolize": must_not_use("app", "cli"),
    # store/ is fed by every producer and must not know any of them
    "store": must_not_use("capture", "crash", "symbolize", "http", "app", "cli"),
    "app": must_not_use("cli"),
    "cli": must_not_use(),
    # coming components
    "replay": may_use("http", "crash", "store"),
    "incident": may_use("store"),
    "alert": may_use(),
}
# Components whose API is the headers in their own folder, and the
# components that may include them: app/ is the application layer that
# cli/ alone calls (no include/repro/app.h).
OPEN_HEADERS = {"app": {"cli"}}
# Folders that are not components: they may include any header, private
# ones included, of what they test or measure.
NOT_COMPONENTS = {"tests", "bench", "fixtures", "docs", "scripts", "include"}
PUBLIC_DIR = "include/repro"

SOCKET_CALLS = ("socket", "connect", "bind", "listen", "accept", "accept4", "send", "recv",
                "sendto", "recvfrom", "sendmsg", "recvmsg", "getaddrinfo", "setsockopt",
                "getsockopt", "shutdown")
# A call: the name followed by '(', not preceded by a word character, '.'
# or '->' (a member). A declaration of such a name would match too: cli/ has
# no business declaring them either.
CALL_RE = {
    "cli-sql": (re.compile(r"(?<![\w.>])(sqlite3_\w+)\s*\("), "calls SQLite's %s(); store/ alone speaks SQL"),
    "cli-socket": (re.compile(r"(?<![\w.>])(%s)\s*\(" % "|".join(SOCKET_CALLS)),
                   "calls the socket function %s(); cli/ parses arguments and calls the library"),
}
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')
SKIP_DIRS = {".git", "__pycache__"}


class Violation:
    def __init__(self, path, line, rule, what):
        self.path, self.line, self.rule, self.what = path, line, rule, what

    def __str__(self):
        return "%s:%d: %s: %s" % (self.path, self.line, self.rule, self.what)


def source_files(root):
    """Relative paths of the tree's .c/.h files: when root is a git
    checkout, the tracked ones and the untracked ones git does not ignore
    (build trees are ignored); elsewhere a walk that skips build*/."""
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z", "-co", "--exclude-standard",
                              "--", "*.c", "*.h"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
        top = subprocess.run(["git", "-C", root, "rev-parse", "--show-toplevel"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
        if os.path.realpath(top.stdout.decode().strip()) == os.path.realpath(root):
            return sorted(p for p in out.decode().split("\0") if p and os.path.isfile(os.path.join(root, p)))
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for d, dirs, names in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith("build"))
        for n in names:
            if n.endswith((".c", ".h")):
                files.append(os.path.relpath(os.path.join(d, n), root))
    return sorted(files)


def component_of(rel):
    """The component a file belongs to: its top folder, or X for
    include/repro/X.h; None for folders that are not components."""
    parts = rel.split("/")
    if rel.startswith(PUBLIC_DIR + "/") and len(parts) == 3:
        return parts[2][:-2]
    if len(parts) < 2 or parts[0] in NOT_COMPONENTS:
        return None
    return parts[0]


def strip_code(text):
    """Blanks comments, string and character literals (newlines kept, so
    line numbers stay), leaving the code to match calls in."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + c)
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def resolve_include(root, rel, target, by_name):
    """What an #include names: ("public", X) for repro/X.h, ("file", path)
    for a file of the tree, or None (a system or unknown header)."""
    if target.startswith("repro/"):
        return ("public", target[len("repro/"):-2] if target.endswith(".h") else target)
    here = os.path.dirname(rel)
    for cand in (os.path.normpath(os.path.join(here, target)), os.path.normpath(target)):
        if os.path.isfile(os.path.join(root, cand)):
            return ("file", cand)
    base = os.path.basename(target)
    if "/" not in target and base in by_name:
        # a bare name found through -I: the first file of that name
        return ("file", by_name[base][0])
    return None


def allowed(comp, other):
    """May component comp include component other's public header?"""
    if other is None or other == comp or other == "core":
        return True
    kind, names = DEPENDS[comp]
    return other in names if kind == "allow" else other not in names


def check_includes(root, rel, lines, by_name, v):
    comp = component_of(rel)
    for no, line in enumerate(lines, 1):
        m = INCLUDE_RE.match(line)
        if not m:
            continue
        target = m.group(2)
        r = resolve_include(root, rel, target, by_name)
        if r is None:
            continue
        if r[0] == "public":
            other = r[1]
        else:
            other = component_of(r[1])
            if comp is not None and r[1].split("/")[0] not in NOT_COMPONENTS:
                owner = r[1].split("/")[0]
                if owner != comp and comp not in OPEN_HEADERS.get(owner, ()):
                    v.append(Violation(rel, no, "private",
                                       "includes '%s', a private header of %s/ (the API is in %s/)"
                                       % (target, owner, PUBLIC_DIR)))
        if comp is None or comp not in DEPENDS:
            continue
        if not allowed(comp, other):
            kind, names = DEPENDS[comp]
            v.append(Violation(rel, no, "depends", "includes '%s': %s must not depend on %s%s" % (
                target, comp, other,
                "" if kind == "deny" else " (it may use %s)" % ", ".join(sorted(names | {"core"})))))


def check_calls(rel, text, v):
    if not (rel.startswith("cli/") and rel.endswith(".c")):
        return
    code = strip_code(text)
    for rule, (rx, what) in CALL_RE.items():
        for m in rx.finditer(code):
            v.append(Violation(rel, code.count("\n", 0, m.start()) + 1, rule, what % m.group(1)))


def check_unit_skips(rel, text, v):
    if not re.match(r"tests/unit/test_\w+\.c$", rel):
        return
    code = strip_code(text)
    for m in re.finditer(r"(?<![\w.>])skip\s*\(\s*\)", code):
        v.append(Violation(rel, code.count("\n", 0, m.start()) + 1, "unit-skip",
                           "cmocka's bare skip() exits 0 and ctest says Passed; use tu_skip(reason)"))
    m = re.search(r"(?<![\w.>])tu_(skip|require)\s*\(", code)
    if m and not re.search(r"return\s+tu_exit\s*\(", code):
        v.append(Violation(rel, code.count("\n", 0, m.start()) + 1, "unit-skip",
                           "uses tu_%s() but main() does not return tu_exit(...): the skip "
                           "would pass" % m.group(1)))


def check_tree(root):
    v = []
    files = source_files(root)
    by_name = {}
    for f in files:
        by_name.setdefault(os.path.basename(f), []).append(f)
    for top in sorted({f.split("/")[0] for f in files if "/" in f}):
        if top not in NOT_COMPONENTS and top not in DEPENDS:
            first = next(f for f in files if f.startswith(top + "/"))
            v.append(Violation(first, 1, "table", "folder %s/ holds C sources but has no row in "
                                                  "DEPENDS (scripts/check_rules.py)" % top))
    for rel in files:
        try:
            with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError as e:
            print("check_rules: cannot read '%s': %s" % (rel, e.strerror), file=sys.stderr)
            sys.exit(2)
        lines = text.split("\n")
        n = len(lines) - (1 if text.endswith("\n") else 0)
        if n > MAX_LINES:
            v.append(Violation(rel, MAX_LINES + 1, "size", "%d lines, over %d: split it (one job per file)"
                               % (n, MAX_LINES)))
        check_includes(root, rel, lines, by_name, v)
        check_calls(rel, text, v)
        check_unit_skips(rel, text, v)
    return v


# ---- self-test ---------------------------------------------------------------

# path -> content; each planted violation is in EXPECT as (path, line, rule).
SELF_TREE = {
    "include/repro/core.h": "#include <stddef.h>\n",
    "include/repro/capture.h": '#include "repro/core.h"\n',
    "include/repro/crash.h": '#include "repro/core.h"\n',
    "include/repro/store.h": '#include "repro/core.h"\n#include "repro/capture.h"\n',
    "include/repro/http.h": '#include "repro/core.h"\n',
    "core/log.c": '#include "repro/core.h"\n#include <stdio.h>\n',
    "http/http_parse.c": '#include "repro/http.h"\n#include "app/app_int.h"\n',
    "capture/tcp_reasm.h": "int x;\n",
    "capture/tcp_reasm.c": '#include "tcp_reasm.h"\n#include "repro/capture.h"\n#include "repro/http.h"\n',
    "capture/pipeline.c": '#include "repro/capture.h"\n#include "repro/store.h"\n',
    "crash/supervisor.c": '#include "repro/crash.h"\n#include "cli/cli.h"\n',
    "store/store_int.h": "int y;\n",
    "store/store.c": '#include "store_int.h"\n#include "repro/store.h"\n#include "repro/crash.h"\n',
    "store/writer.c": '#include "../capture/tcp_reasm.h"\n',
    "symbolize/dwfl.c": '#include "store_int.h"\n',
    "app/app_int.h": "int z;\n",
    "app/demo.c": '#include "app_int.h"\n#include "repro/store.h"\n#include "repro/capture.h"\n',
    "cli/cli.h": "int w;\n",
    "cli/cmd_run.c": '#include "cli.h"\n#include "app/app_int.h"\n',   # allowed: app's API
    "cli/cmd_demo.c": (
        '#include "cli.h"\n#include "repro/store.h"\n'
        "/* sqlite3_open(x) in a comment is not a call; nor is socket( */\n"
        'static const char *m = "connect(\\"x\\") failed";\n'
        "int f(void) { return sqlite3_exec(db, q, 0, 0, 0); }\n"
        "int g(void) { int s = socket(AF_INET, SOCK_STREAM, 0); return repro_store_shutdown(s) + it.send(1); }\n"
        "// connect(s) in a line comment\n"
        "int h(void) { return connect(s, a, n); }\n"),
    "replay/schedule.c": '#include "repro/http.h"\n#include "repro/capture.h"\n',
    "newthing/a.c": "int v;\n",
    "tests/unit/test_store.c": ('#include "store/store_int.h"\n#include "capture/tcp_reasm.h"\n'
                                "static void t(void **s) { tu_skip(\"no gdb\"); }\n"
                                "int main(void) { return cmocka_run_group_tests(t, 0, 0); }\n"),
    "tests/unit/test_http.c": "static void t(void **s) { if (1) skip(); }\n",
    "tests/unit/test_core.c": "static void t(void **s) { tu_skip(\"x\"); }\nint main(void) { return tu_exit(0); }\n",
    "bench/b.c": '#include "symbolize/sym_internal.h"\n',
    "core/big.c": "int a;\n" * (MAX_LINES + 1),
    "core/ok.c": "int a;\n" * MAX_LINES,
}
EXPECT = {
    ("include/repro/store.h", 2, "depends"),   # store.h includes a producer's header
    ("http/http_parse.c", 2, "private"),       # app's private header
    ("http/http_parse.c", 2, "depends"),       # and app at all
    ("capture/pipeline.c", 2, "depends"),      # capture -> store
    ("crash/supervisor.c", 2, "private"),      # cli's header outside cli/
    ("crash/supervisor.c", 2, "depends"),
    ("store/store.c", 3, "depends"),           # store -> crash
    ("store/writer.c", 1, "private"),          # capture's private header, by a relative path
    ("store/writer.c", 1, "depends"),
    ("symbolize/dwfl.c", 1, "private"),        # a bare name of store's private header
    ("cli/cmd_demo.c", 5, "cli-sql"),
    ("cli/cmd_demo.c", 6, "cli-socket"),
    ("cli/cmd_demo.c", 8, "cli-socket"),
    ("replay/schedule.c", 2, "depends"),       # replay may not use capture
    ("newthing/a.c", 1, "table"),
    ("tests/unit/test_store.c", 3, "unit-skip"),
    ("tests/unit/test_http.c", 1, "unit-skip"),
    ("core/big.c", MAX_LINES + 1, "size"),
}


def self_test():
    expect = set(EXPECT)
    with tempfile.TemporaryDirectory(prefix="repro-rules-") as tmp:
        for rel, body in SELF_TREE.items():
            os.makedirs(os.path.join(tmp, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(tmp, rel), "w") as fh:
                fh.write(body)
        got = check_tree(tmp)
    seen = {(x.path, x.line, x.rule) for x in got}
    missing = sorted(expect - seen)
    extra = sorted(seen - expect)
    for x in got:
        print("  %s" % x)
    for m in missing:
        print("FAIL: expected %s:%d: %s, not reported" % m)
    for e in extra:
        print("FAIL: unexpected %s:%d: %s (a false positive)" % e)
    rules = {r for _, _, r in expect}
    print("check_rules self-test: %d planted violations (%s), %d missing, %d unexpected" % (
        len(expect), ", ".join(sorted(rules)), len(missing), len(extra)))
    return 1 if missing or extra else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if len(argv) == 3 and argv[1] == "--root":
        root = argv[2]
    elif len(argv) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 64
    if not os.path.isdir(root):
        print("check_rules: no directory '%s'" % root, file=sys.stderr)
        return 2
    v = check_tree(root)
    for x in v:
        print(x)
    if v:
        print("check_rules: %d violation(s) of the house rules (rules: scripts/check_rules.py)" % len(v),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

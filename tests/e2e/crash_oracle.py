"""gdb as the oracle for crash stacks: what gdb's `bt` says about a crashing
program, and whether the frames repro stored agree with it.

Every crash path (core import, `repro run`, librepro_crash.so) is checked the
same way: run the fixture under gdb, take gdb's view of the crash, then load
repro's record from the SQLite db and compare. stdlib only (python3 >= 3.7),
gdb from Debian (with its Python support; without it the `bt` text alone is
used).

Using it from another test
--------------------------

    import crash_oracle as co

    # 1. gdb's view. gdb disables ASLR, so addresses equal those of a run under
    #    `setarch -R` (or of a core gdb wrote in the same session).
    o = co.run_under_gdb(["build/fixtures/crash/thread_crash"], core="/tmp/x.core")
    o.signo, o.signal, o.si_code, o.fault_address   # 11, "SIGSEGV", 1, 0
    o.crashed_tid                                   # the LWP that took the signal
    o.threads                                       # {tid: Thread(tid, num, name, frames)}
    o.crashed_thread().physical()                   # [Frame], inlined frames dropped
    o.modules                                       # [Mapping(path, start, end, load_bias)]
    o.exit_code                                     # set instead when it did not crash

    # 2. repro's view, from any db it wrote (tables crashes, crash_threads,
    #    crash_frames, crash_modules: docs/schema.md).
    r = co.load_repro_crash("/tmp/repro.db")        # newest crash; or crash_id=N

    # 3. compare. Each returns a list of problems (empty = agree).
    co.compare_crash(o, r, by="pc")                 # same ASLR-free addresses
    co.compare_crash(o, r, by="offset", same_tids=False)  # (module, offset): any ASLR;
                                                    # other runs have other tids

`compare_crash` checks the signal, that repro marks exactly one thread as
crashed, and that the crashing thread's frames agree with gdb's `bt` of the
crashing thread: gdb's physical frames (inlined frames folded into the frame
that holds them, and the tail-call frames gdb reconstructs from DWARF
call-site data dropped, since they are not on the stack) must equal repro's
non-inlined frames, frame by frame, up to
the shorter of the two stacks, and repro must have at least
`min(len(gdb), min_frames)` of them (repro may unwind past a frame where gdb
stops, and keeps at most 256 frames). With `same_tids` (core import of a core
gdb wrote in the same session) every gdb thread must be in repro's record
under the same tid, and the crashing tids must be equal; `all_threads=True`
compares every thread's stack too.

Frame model: `pc` is what gdb and repro both store: the activation pc for
frame 0, the return address for callers. An inlined frame (gdb's INLINE_FRAME:
a function inlined into the frame below it) has the pc of the physical frame
that holds it; `Frame.inline` marks it. `Frame.tailcall` marks gdb's
TAILCALL_FRAME: a caller that left the stack with a tail call (glibc's
__pthread_kill_internal under abort() is one), which gdb shows from DWARF
call-site data; only gdb's Python API can tell it apart, the bt text cannot.
gdb prints "??" for a frame it cannot name: `function` is then None.

`parse_bt(text)` parses the output of `thread apply all bt` on its own (with or
without `set print frame-info location-and-address`); `run_under_gdb` runs
both it and a small gdb-Python walker in the same session and checks that they
agree (the walker is the one that knows inlined frames for certain).

Run as a script for a quick look:  crash_oracle.py PROGRAM [ARGS...]
Check the bt parser on canned gdb output:  crash_oracle.py --selftest
"""
import json
import os
import re
import sqlite3
import struct
import subprocess
import sys
import tempfile

GDB = os.environ.get("GDB", "gdb")
GDB_TIMEOUT_S = 120
U64 = (1 << 64) - 1

SIGNALS = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
           7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
           13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 31: "SIGSYS"}
SIGNOS = {v: k for k, v in SIGNALS.items()}

# Settings that make `bt` output regular: one line per frame, an address on
# every frame, no argument values (they hold parentheses and quotes), the
# whole stack (past main, like repro), no debuginfod prompts.
GDB_SETTINGS = [
    "set pagination off", "set width 0", "set height 0", "set confirm off",
    "set print frame-arguments none", "set print frame-info location-and-address",
    "set print entry-values no", "set backtrace past-main on",
    "set debuginfod enabled off",
]
MARK_BT_BEGIN, MARK_BT_END = "@@ORACLE-BT-BEGIN@@", "@@ORACLE-BT-END@@"
MARK_JSON = "@@ORACLE-JSON@@"
MARK_MAPS_BEGIN, MARK_MAPS_END = "@@ORACLE-MAPS-BEGIN@@", "@@ORACLE-MAPS-END@@"

# Runs inside gdb: walks every thread's frames with gdb's Python API.
GDB_PY = r'''
import gdb, json
def _repro_oracle_dump(limit):
    out = {"selected": None, "signal": None, "threads": []}
    sel = gdb.selected_thread()
    if sel is None:
        print("@@ORACLE-JSON@@" + json.dumps(out))
        return
    out["selected"] = sel.ptid[1]
    try:
        si = gdb.parse_and_eval("$_siginfo")
        sig = {"signo": int(si["si_signo"]), "code": int(si["si_code"]), "addr": None}
        try:
            sig["addr"] = int(si["_sifields"]["_sigfault"]["si_addr"]) & 0xffffffffffffffff
        except gdb.error:
            pass
        out["signal"] = sig
    except gdb.error:
        pass
    for th in sorted(gdb.selected_inferior().threads(), key=lambda t: t.num):
        th.switch()
        frames = []
        try:
            f = gdb.newest_frame()
        except gdb.error:
            f = None
        while f is not None and (limit <= 0 or len(frames) < limit):
            sal = f.find_sal()
            frames.append({
                "pc": f.pc(), "function": f.name(),
                "inline": f.type() == gdb.INLINE_FRAME,
                "tailcall": f.type() == gdb.TAILCALL_FRAME,
                "signal_frame": f.type() == gdb.SIGTRAMP_FRAME,
                "file": sal.symtab.filename if sal.symtab else None,
                "line": sal.line or None})
            try:
                f = f.older()
            except gdb.error:
                break
        out["threads"].append({"num": th.num, "tid": th.ptid[1], "name": th.name,
                               "frames": frames})
    sel.switch()
    print("@@ORACLE-JSON@@" + json.dumps(out))
'''


class OracleError(Exception):
    """gdb could not be run or said something this module cannot read."""


class Frame:
    """One frame of a stack, gdb's or repro's."""

    def __init__(self, level, pc, function=None, file=None, line=None, inline=False,
                 module=None, offset=None, lib=None, tailcall=False):
        self.level = level
        self.pc = pc              # int, or None when gdb printed no address
        self.function = function  # None for "??"
        self.file = file
        self.line = line
        self.inline = inline      # an inlined function's frame (folded by physical())
        self.tailcall = tailcall  # gdb's reconstruction of a tail call: not on the stack
        self.module = module      # path of the module holding pc, when known
        self.offset = offset      # pc - module's load bias, when known
        self.lib = lib            # gdb's "from LIB" (frames without debug info)

    def __repr__(self):
        where = ""
        if self.file:
            where = " at %s:%s" % (self.file, self.line)
        elif self.module:
            where = " in %s+0x%x" % (os.path.basename(self.module), self.offset or 0)
        return "#%d %s %s%s%s" % (self.level, "0x%x" % self.pc if self.pc is not None else "?",
                                  self.function or "??",
                                  " [inline]" if self.inline else
                                  " [tail call]" if self.tailcall else "", where)


class Thread:
    def __init__(self, tid, num=None, name=None, frames=None, crashed=False, partial=False):
        self.tid = tid
        self.num = num          # gdb's thread number
        self.name = name
        self.frames = frames or []
        self.crashed = crashed
        self.partial = partial

    def physical(self):
        """The frames that are real stack frames: inlined and tail-call
        frames dropped."""
        return physical(self.frames)


def physical(frames):
    return [f for f in frames if not f.inline and not f.tailcall]


class Mapping:
    def __init__(self, path, start, end, load_bias):
        self.path, self.start, self.end, self.load_bias = path, start, end, load_bias

    def __repr__(self):
        return "%s 0x%x-0x%x bias 0x%x" % (self.path, self.start, self.end, self.load_bias)


class GdbCrash:
    """gdb's view of one run of a program."""

    def __init__(self):
        self.crashed_tid = None
        self.signo = None
        self.signal = None
        self.si_code = None
        self.fault_address = None
        self.threads = {}       # tid -> Thread
        self.modules = []       # [Mapping]
        self.exit_code = None   # when the program exited instead of crashing
        self.core = None        # the core gdb wrote, if asked
        self.bt_text = ""
        self.output = ""

    def crashed_thread(self):
        return self.threads.get(self.crashed_tid)

    def module_of(self, pc):
        for m in self.modules:
            if m.start <= pc < m.end:
                return m
        return None


# ---- parsing `thread apply all bt` ------------------------------------------

THREAD_RE = re.compile(r'^Thread (\d+) \((.*)\):\s*$')
LWP_RE = re.compile(r'\b(?:LWP|process) (\d+)')
THREAD_NAME_RE = re.compile(r'"((?:[^"\\]|\\.)*)"\s*$')
FRAME_RE = re.compile(r'^#(\d+)\s+(.*)$')
ADDR_RE = re.compile(r'^(0x[0-9a-fA-F]+) in (.*)$')
AT_RE = re.compile(r'^(.*) at (.+):(\d+)$')
FROM_RE = re.compile(r'^(.*) from (\S+)$')


def _split_function(rest):
    """'name (args)' -> name. The args group is the last balanced (...),
    found scanning backwards and skipping quoted strings and characters in
    the argument values; names may hold parentheses themselves
    ("(anonymous namespace)::f", "operator()", "{lambda(int)#1}")."""
    rest = rest.strip()
    if not rest.endswith(")"):
        return rest or None
    depth = 0
    i = len(rest) - 1
    while i >= 0:
        c = rest[i]
        if c in "\"'" and depth > 0:
            j = i - 1
            while j >= 0 and (rest[j] != c or (j > 0 and rest[j - 1] == "\\")):
                j -= 1
            i = j - 1
            continue
        if c == ")":
            depth += 1
        elif c == "(":
            depth -= 1
            if depth == 0:
                name = rest[:i].rstrip()
                return name if name else rest
        i -= 1
    return rest


def parse_frame_line(line):
    """Parses one '#N ...' line of gdb's bt into a Frame, or returns None."""
    m = FRAME_RE.match(line.rstrip())
    if not m:
        return None
    level, rest = int(m.group(1)), m.group(2)
    pc = None
    a = ADDR_RE.match(rest)
    if a:
        pc, rest = int(a.group(1), 16), a.group(2)
    file = line_no = lib = None
    at = AT_RE.match(rest)
    if at:
        rest, file, line_no = at.group(1), at.group(2), int(at.group(3))
    else:
        fr = FROM_RE.match(rest)
        if fr:
            rest, lib = fr.group(1), fr.group(2)
    func = _split_function(rest)
    if func == "??":
        func = None
    return Frame(level, pc, func, file, line_no, lib=lib)


def _mark_inline(frames):
    """Without gdb's frame types: a frame is an inlined function's when the
    next (outer) frame has the same pc (or prints none, gdb's default format
    for the frame holding inlined code) and is a different function; a
    recursion at one call site repeats the pc with the same function."""
    for i in range(len(frames) - 1):
        cur, nxt = frames[i], frames[i + 1]
        if nxt.pc is None and nxt.level > 0 and not (nxt.function or "").startswith("<"):
            nxt.pc = cur.pc
            cur.inline = True
        elif cur.pc is not None and nxt.pc == cur.pc and nxt.function != cur.function:
            cur.inline = True
    return frames


def parse_bt(text):
    """Parses `thread apply all bt` (or a plain `bt`, as thread 0) output.
    Returns {gdb thread number: Thread}; Thread.tid is the LWP."""
    threads = {}
    cur = None
    for line in text.splitlines():
        t = THREAD_RE.match(line)
        if t:
            desc = t.group(2)
            lwp = LWP_RE.search(desc)
            name = THREAD_NAME_RE.search(desc)
            cur = Thread(int(lwp.group(1)) if lwp else None, int(t.group(1)),
                         name.group(1) if name else None)
            threads[cur.num] = cur
            continue
        f = parse_frame_line(line)
        if f is None:
            continue
        if cur is None:
            cur = Thread(None, 0)
            threads[0] = cur
        cur.frames.append(f)
    for th in threads.values():
        _mark_inline(th.frames)
    return threads


# ---- modules ----------------------------------------------------------------

MAPS_RE = re.compile(r'^\s*(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)'
                     r'(?:\s+([r-][w-][x-][ps-]))?\s*(.*)$')


def first_load_vaddr(path):
    """p_vaddr of the first PT_LOAD of an ELF file rounded down to its page,
    or None (not ELF, unreadable)."""
    try:
        with open(path, "rb") as f:
            eh = f.read(64)
            if len(eh) < 52 or eh[:4] != b"\x7fELF":
                return None
            is64, end = eh[4] == 2, "<" if eh[5] == 1 else ">"
            if is64:
                phoff, = struct.unpack_from(end + "Q", eh, 32)
                phentsize, phnum = struct.unpack_from(end + "HH", eh, 54)
            else:
                phoff, = struct.unpack_from(end + "I", eh, 28)
                phentsize, phnum = struct.unpack_from(end + "HH", eh, 42)
            for i in range(min(phnum, 4096)):
                f.seek(phoff + i * phentsize)
                ph = f.read(phentsize)
                if is64 and len(ph) >= 56:
                    p_type, _, _, p_vaddr, _, _, _, p_align = struct.unpack(end + "IIQQQQQQ", ph[:56])
                elif not is64 and len(ph) >= 32:
                    p_type, _, p_vaddr, _, _, _, _, p_align = struct.unpack(end + "8I", ph[:32])
                else:
                    return None
                if p_type == 1:
                    page = p_align if p_align and p_align & (p_align - 1) == 0 else 4096
                    return p_vaddr & ~(page - 1)
    except OSError:
        return None
    return None


def parse_mappings(text):
    """`info proc mappings` -> [Mapping] per file (whole mapped range; load
    bias from the mapping of file offset 0 and the file's first PT_LOAD)."""
    per = {}
    order = []
    for line in text.splitlines():
        m = MAPS_RE.match(line)
        if not m:
            continue
        start, end, offset = int(m.group(1), 16), int(m.group(2), 16), int(m.group(4), 16)
        path = m.group(6).strip()
        if not path or (path.startswith("[") and path != "[vdso]"):
            continue
        if path not in per:
            per[path] = [start, end, None]
            order.append(path)
        e = per[path]
        e[0], e[1] = min(e[0], start), max(e[1], end)
        if offset == 0 and e[2] is None:
            e[2] = start
    out = []
    for path in order:
        start, end, base = per[path]
        if base is None:
            base = start
        vaddr = first_load_vaddr(path) if not path.startswith("[") else 0
        out.append(Mapping(path, start, end, base - (vaddr or 0)))
    return out


# ---- running gdb ------------------------------------------------------------

def gdb_available():
    try:
        r = subprocess.run([GDB, "-nx", "-batch", "-ex", "python print(1)"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def _between(text, begin, end):
    i = text.find(begin)
    j = text.find(end, i + 1) if i >= 0 else -1
    return text[i + len(begin):j] if i >= 0 and j >= 0 else ""


def run_under_gdb(argv, core=None, frame_limit=64, timeout=GDB_TIMEOUT_S, env=None, cwd=None):
    """Runs argv under gdb (ASLR off) until it crashes or exits.

    At the crash: gdb's `thread apply all bt` (at most frame_limit frames per
    thread; 0 = all), the Python walker, $_siginfo and `info proc mappings`;
    with core, `generate-core-file core` writes a core of that very state.
    Returns a GdbCrash; raises OracleError when gdb fails or times out."""
    limit = int(frame_limit or 0)
    bt = "thread apply all bt" + (" %d" % limit if limit > 0 else "")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as py:
        py.write(GDB_PY)
        py_path = py.name
    cmd = [GDB, "-nx", "-batch", "-q"]
    for s in GDB_SETTINGS:
        cmd += ["-ex", s]
    cmd += ["-ex", "source " + py_path, "-ex", "run",
            "-ex", "echo \\n" + MARK_BT_BEGIN + "\\n", "-ex", bt,
            "-ex", "echo \\n" + MARK_BT_END + "\\n",
            "-ex", "python _repro_oracle_dump(%d)" % limit,
            "-ex", "echo \\n" + MARK_MAPS_BEGIN + "\\n", "-ex", "info proc mappings",
            "-ex", "echo \\n" + MARK_MAPS_END + "\\n"]
    if core:
        cmd += ["-ex", "generate-core-file " + core]
    cmd += ["-ex", "kill", "--args"] + list(argv)
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise OracleError("gdb timed out after %d s: %s" % (timeout, " ".join(argv)))
    except OSError as e:
        raise OracleError("cannot run gdb: %s" % e)
    finally:
        os.unlink(py_path)
    out = r.stdout.decode(errors="replace")
    return _read_gdb_output(out, core)


def _read_gdb_output(out, core):
    o = GdbCrash()
    o.output = out
    m = re.search(r'\[Inferior \d+ \(process \d+\) exited (?:normally|with code (\d+))\]', out)
    if m:
        o.exit_code = int(m.group(1), 8) if m.group(1) else 0
        return o
    sig = re.search(r'(?:Program|Thread \d+(?: "[^"]*")?) received signal (SIG[A-Z0-9]+)', out)
    if not sig:
        raise OracleError("gdb neither saw a signal nor an exit; output:\n" + out[-3000:])
    o.signal = sig.group(1)
    o.signo = SIGNOS.get(o.signal)
    o.bt_text = _between(out, MARK_BT_BEGIN, MARK_BT_END)
    text_threads = parse_bt(o.bt_text)
    js = None
    for line in out.splitlines():
        if line.startswith(MARK_JSON):
            js = json.loads(line[len(MARK_JSON):])
    o.modules = parse_mappings(_between(out, MARK_MAPS_BEGIN, MARK_MAPS_END))
    if js and js["threads"]:
        o.crashed_tid = js["selected"]
        if js["signal"]:
            o.signo = js["signal"]["signo"]
            o.signal = SIGNALS.get(o.signo, o.signal)
            o.si_code = js["signal"]["code"]
            o.fault_address = js["signal"]["addr"]
        for t in js["threads"]:
            frames = [Frame(i, f["pc"], f["function"], f["file"], f["line"], f["inline"],
                            tailcall=f.get("tailcall", False))
                      for i, f in enumerate(t["frames"])]
            o.threads[t["tid"]] = Thread(t["tid"], t["num"], t["name"], frames)
        problems = _check_text_agrees(text_threads, o.threads)
        if problems:
            raise OracleError("gdb's bt text and its Python frames disagree:\n  " +
                              "\n  ".join(problems) + "\nbt:\n" + o.bt_text[-3000:])
    else:
        # No Python in this gdb: the text is all there is.
        for th in text_threads.values():
            o.threads[th.tid] = th
        cur = re.search(r'^\*\s+\d+\s+.*?\(LWP (\d+)\)', out, re.M)
        sw = re.search(r'\[Switching to .*?\(LWP (\d+)\)\]', out)
        o.crashed_tid = int((sw or cur).group(1)) if (sw or cur) else (
            next(iter(o.threads)) if len(o.threads) == 1 else None)
    for th in o.threads.values():
        th.crashed = th.tid == o.crashed_tid
        for f in th.frames:
            mod = o.module_of(f.pc) if f.pc is not None else None
            if mod:
                f.module, f.offset = mod.path, f.pc - mod.load_bias
    if core:
        if not os.path.exists(core):
            raise OracleError("gdb did not write the core '%s':\n%s" % (core, out[-3000:]))
        o.core = core
    return o


def _check_text_agrees(text_threads, py_threads):
    """The bt parser against gdb's own frame walk: same threads, same pcs,
    same functions, same inline marks."""
    problems = []
    by_tid = {t.tid: t for t in text_threads.values()}
    for tid, pt in py_threads.items():
        tt = by_tid.get(tid)
        if tt is None:
            problems.append("thread %s: missing from the bt text" % tid)
            continue
        n = min(len(tt.frames), len(pt.frames))
        for i in range(n):
            a, b = tt.frames[i], pt.frames[i]
            if a.pc != b.pc or (a.function or None) != (b.function or None) or a.inline != b.inline:
                problems.append("thread %s frame %d: text %r, python %r" % (tid, i, a, b))
                break
    return problems


# ---- repro's record ---------------------------------------------------------

class ReproCrash:
    def __init__(self):
        self.id = None
        self.pid = self.tid = None
        self.signo = self.si_code = None
        self.signal = None
        self.fault_address = None
        self.executable = None
        self.source = None
        self.partial = False
        self.partial_reason = None
        self.modules = []   # [dict(path, start, end, load_bias, build_id)]
        self.threads = []   # [Thread] in record order

    def crashed_threads(self):
        return [t for t in self.threads if t.crashed]


def _u64(v):
    return None if v is None else v & U64


def load_repro_crash(db, crash_id=None):
    """Loads crash crash_id (default: the newest) from repro's SQLite db."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        con.row_factory = sqlite3.Row
        if crash_id is None:
            row = con.execute("SELECT * FROM crashes ORDER BY id DESC LIMIT 1").fetchone()
        else:
            row = con.execute("SELECT * FROM crashes WHERE id = ?", (crash_id,)).fetchone()
        if row is None:
            raise OracleError("no crash %s in '%s'" % (crash_id if crash_id else "at all", db))
        c = ReproCrash()
        c.id, c.pid, c.tid = row["id"], row["pid"], row["tid"]
        c.signo, c.signal, c.si_code = row["signo"], row["signal"], row["si_code"]
        c.fault_address = _u64(row["fault_address"])
        c.executable, c.source = row["executable"], row["source"]
        c.partial, c.partial_reason = bool(row["partial"]), row["partial_reason"]
        for m in con.execute("SELECT * FROM crash_modules WHERE crash_id = ? ORDER BY idx", (c.id,)):
            c.modules.append({"path": m["path"], "start": _u64(m["start"]), "end": _u64(m["end"]),
                              "load_bias": _u64(m["load_bias"]), "build_id": m["build_id"]})
        for t in con.execute("SELECT * FROM crash_threads WHERE crash_id = ? ORDER BY idx", (c.id,)):
            th = Thread(t["tid"], t["idx"], t["name"], [], bool(t["crashed"]), bool(t["partial"]))
            for f in con.execute("SELECT * FROM crash_frames WHERE crash_id = ? AND thread_idx = ?"
                                 " ORDER BY idx", (c.id, t["idx"])):
                mi = f["module_idx"]
                mod = c.modules[mi]["path"] if mi is not None and 0 <= mi < len(c.modules) else None
                th.frames.append(Frame(f["idx"], _u64(f["pc"]), f["function"], f["file"], f["line"],
                                       bool(f["inlined"]), mod,
                                       _u64(f["offset"]) if mod is not None else None))
            c.threads.append(th)
        return c
    finally:
        con.close()


# ---- comparing --------------------------------------------------------------

def _key(f, by):
    if by == "pc":
        return f.pc
    return (os.path.basename(f.module) if f.module else None, f.offset)


def _show(f, by):
    if by == "pc":
        return "0x%x" % f.pc if f.pc is not None else "?"
    return "%s+0x%x" % (os.path.basename(f.module) if f.module else "?", f.offset or 0)


def compare_stacks(gdb_frames, repro_frames, by="pc", min_frames=8, what="stack"):
    """gdb's frames vs repro's, physical frames only. Returns problems."""
    g = physical(gdb_frames)
    r = physical(repro_frames)
    n = min(len(g), len(r))
    want = min(len(g), min_frames)
    problems = []
    if len(r) < want:
        problems.append("%s: repro has %d frames, gdb %d" % (what, len(r), len(g)))
    for i in range(n):
        if _key(g[i], by) != _key(r[i], by):
            problems.append("%s: frame %d differs: gdb %s (%s), repro %s (%s)\n  gdb:   %s\n"
                            "  repro: %s" % (what, i, _show(g[i], by), g[i].function or "??",
                                             _show(r[i], by), r[i].function or "-",
                                             " ".join(_show(f, by) for f in g[:n]),
                                             " ".join(_show(f, by) for f in r[:n])))
            break
    return problems


def compare_crash(o, r, by="pc", same_tids=True, all_threads=False, min_frames=8,
                  count_threads=True):
    """gdb's view (GdbCrash) vs repro's record (ReproCrash). Returns problems.
    count_threads=False for records of the crashing thread alone (the
    in-process agent)."""
    problems = []
    if o.signo is not None and r.signo != o.signo:
        problems.append("signal: gdb %s (%s), repro %s (%s)" % (o.signo, o.signal, r.signo, r.signal))
    if o.si_code is not None and r.si_code != o.si_code:
        problems.append("si_code: gdb %s, repro %s" % (o.si_code, r.si_code))
    crashed = r.crashed_threads()
    if len(crashed) != 1:
        problems.append("repro marks %d threads as crashed" % len(crashed))
        return problems
    rt, gt = crashed[0], o.crashed_thread()
    if gt is None:
        problems.append("gdb names no crashing thread")
        return problems
    if same_tids:
        if rt.tid != gt.tid or r.tid != gt.tid:
            problems.append("crashing thread: gdb %s, repro %s (crashes.tid %s)" % (gt.tid, rt.tid, r.tid))
        have = {t.tid for t in r.threads}
        missing = sorted(t for t in o.threads if t not in have)
        if missing:
            problems.append("threads missing from repro's record: %s" % missing)
    elif count_threads and len(r.threads) != len(o.threads):
        problems.append("threads: gdb %d, repro %d" % (len(o.threads), len(r.threads)))
    problems += compare_stacks(gt.frames, rt.frames, by, min_frames, "crashing thread %s" % gt.tid)
    if all_threads and same_tids:
        by_tid = {t.tid: t for t in r.threads}
        for tid, th in sorted(o.threads.items()):
            if tid != gt.tid and tid in by_tid:
                problems += compare_stacks(th.frames, by_tid[tid].frames, by, min_frames,
                                           "thread %s" % tid)
    return problems


SELFTEST_BT = r'''
Thread 2 (Thread 0x7ffff7a00640 (LWP 1235) "worker-1"):
#0  0x00007ffff7e58f16 in __futex_abstimed_wait_common64 (private=..., cancel=...) at ./nptl/futex-internal.c:57
#1  0x00007ffff7e58f16 in __futex_abstimed_wait_common (futex_word=...) at ./nptl/futex-internal.c:87
#2  0x0000000000401136 in ?? ()
#3  0x00007ffff7e5c1f5 in start_thread (arg=...) at ./nptl/pthread_create.c:442
#4  0x00007ffff7edc8ec in clone3 () from /lib/x86_64-linux-gnu/libc.so.6

Thread 1 (Thread 0x7ffff7dd0740 (LWP 1234) "odd (name)"):
#0  0x000055555555517b in checksum (seed=3, j=0x0) at omit_fp.c:26
#1  step_three (j=0x0, seed=3) at omit_fp.c:31
#2  0x00005555555551f8 in step_two (seed=2) at omit_fp.c:39
#3  <signal handler called>
#4  0x0000555555555190 in Pipeline<Widget>::run (this=0x7fffffffe4e0, item=0x0) at cpp_template.cpp:32
#5  0x0000555555555200 in main::{lambda(int)#1}::operator()(int) const (__closure=0x0, x=1) at l.cpp:3
#6  0x0000555555555210 in (anonymous namespace)::helper (p=0x4006 "x)(", c=40 '(') at l.cpp:9
#7  0x0000555555555220 in recurse (n=...) at r.c:23
#8  0x0000555555555220 in recurse (n=...) at r.c:23
#9  0x0000555555555230 in std::_Function_handler<void (int), main::{lambda(int)#1}>::_M_invoke (__functor=...) at /usr/include/c++/12/bits/std_function.h:290
(More stack frames follow...)
'''

SELFTEST_WANT = {
    1235: [(0x7ffff7e58f16, "__futex_abstimed_wait_common64", True),
           (0x7ffff7e58f16, "__futex_abstimed_wait_common", False),
           (0x401136, None, False), (0x7ffff7e5c1f5, "start_thread", False),
           (0x7ffff7edc8ec, "clone3", False)],
    1234: [(0x55555555517b, "checksum", True), (0x55555555517b, "step_three", False),
           (0x5555555551f8, "step_two", False), (None, "<signal handler called>", False),
           (0x555555555190, "Pipeline<Widget>::run", False),
           (0x555555555200, "main::{lambda(int)#1}::operator()(int) const", False),
           (0x555555555210, "(anonymous namespace)::helper", False),
           (0x555555555220, "recurse", False), (0x555555555220, "recurse", False),
           (0x555555555230, "std::_Function_handler<void (int), main::{lambda(int)#1}>::_M_invoke",
            False)],
}


def selftest():
    """Checks parse_bt on canned gdb output; returns problems."""
    problems = []
    threads = {t.tid: t for t in parse_bt(SELFTEST_BT).values()}
    if sorted(threads) != sorted(SELFTEST_WANT):
        return ["threads %s, expected %s" % (sorted(threads), sorted(SELFTEST_WANT))]
    if threads[1234].name != "odd (name)" or threads[1235].name != "worker-1":
        problems.append("thread names %r %r" % (threads[1234].name, threads[1235].name))
    for tid, want in SELFTEST_WANT.items():
        got = [(f.pc, f.function, f.inline) for f in threads[tid].frames]
        for i, (g, w) in enumerate(zip(got, want)):
            if g != w:
                problems.append("thread %d frame %d: parsed %r, expected %r" % (tid, i, g, w))
        if len(got) != len(want):
            problems.append("thread %d: %d frames, expected %d" % (tid, len(got), len(want)))
    f = threads[1235].frames[4]
    if f.lib != "/lib/x86_64-linux-gnu/libc.so.6" or f.file is not None:
        problems.append("'from LIB' frame: lib %r file %r" % (f.lib, f.file))
    f = threads[1234].frames[5]
    if (f.file, f.line) != ("l.cpp", 3):
        problems.append("file:line %r:%r" % (f.file, f.line))
    if [x.pc for x in threads[1234].physical()][:2] != [0x55555555517b, 0x5555555551f8]:
        problems.append("physical() keeps an inlined frame")
    return problems


def main(argv):
    if len(argv) == 2 and argv[1] == "--selftest":
        problems = selftest()
        for p in problems:
            print("FAIL: " + p)
        if not problems:
            print("crash_oracle selftest: bt parser ok")
        return 1 if problems else 0
    if len(argv) < 2:
        print("usage: crash_oracle.py PROGRAM [ARGS...]", file=sys.stderr)
        return 64
    o = run_under_gdb(argv[1:])
    if o.exit_code is not None:
        print("exited with code %d" % o.exit_code)
        return 0
    print("%s (si_code %s, address %s), crashing thread %s" % (
        o.signal, o.si_code, hex(o.fault_address) if o.fault_address is not None else "?",
        o.crashed_tid))
    for tid, th in sorted(o.threads.items()):
        print("thread %s %s%s" % (tid, th.name or "", " (crashed)" if th.crashed else ""))
        for f in th.frames:
            print("  %r" % f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

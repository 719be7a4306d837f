#!/usr/bin/env python3
"""Generates the man page repro.1 and the bash completion from the
binary's own --help texts, so that both always match what the commands
say (issue 12). Run by the build (CMake target repro_docs).

usage: gen_docs.py REPRO_BIN OUT_MAN OUT_BASH
"""
import re
import subprocess
import sys

repro, out_man, out_bash = sys.argv[1:4]


def help_of(*args):
    r = subprocess.run([repro] + list(args) + ["--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return r.stdout.decode(errors="replace")


def roff(text):
    out = []
    for line in text.rstrip("\n").split("\n"):
        line = line.replace("\\", "\\e")
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line)
    return "\n".join(out)


top = help_of()
commands = []
for line in top.splitlines():
    m = re.match(r"^  ([a-z0-9]+)\s{2,}(.*)$", line)
    if m:
        commands.append((m.group(1), m.group(2)))
if not commands:
    sys.exit("gen_docs: no commands in 'repro --help':\n" + top)
version = subprocess.run([repro, "--version"], stdout=subprocess.PIPE).stdout.decode().strip()

man = ['.TH REPRO 1 "" "%s" "User Commands"' % version,
       ".SH NAME",
       "repro \\- record production traffic and crashes, replay them against staging",
       ".SH SYNOPSIS",
       ".B repro",
       "[\\-\\-db PATH] [\\-\\-trace=COMPONENTS] [\\-\\-verbose] COMMAND [ARGS...]",
       ".SH DESCRIPTION",
       ".nf", roff(top), ".fi",
       ".SH COMMANDS"]
options = {}
for name, summary in commands:
    text = help_of(name)
    man += [".SS %s" % name, roff(summary), ".PP", ".nf", roff(text), ".fi"]
    options[name] = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text)) |
                           {"--db", "--trace", "--verbose", "--help"})
man += [".SH EXIT STATUS",
        "0 success; 1 finished with findings (input problems, mismatches, crashes in a replay);",
        "2 error; 64 usage.",
        "\\fBrepro run\\fR exits with the command's own status.",
        ".SH ENVIRONMENT",
        "REPRO_DB (the default database), REPRO_TRACE (like \\-\\-trace), REPRO_FIXTURES",
        "(the demo's data), DEBUGINFOD_URLS (debug files for symbolization).",
        ".SH FILES",
        "./repro.db, the default database (SQLite, docs/schema.md).",
        ".SH SEE ALSO",
        "tcpdump(1), addr2line(1), gdb(1); the documents in /usr/local/share/doc/repro."]
with open(out_man, "w") as f:
    f.write("\n".join(man) + "\n")

cases = "\n".join("        %s) opts=\"%s\" ;;" % (name, " ".join(opts))
                  for name, opts in options.items())
bash = """# bash completion for repro (generated from 'repro COMMAND --help' by
# scripts/gen_docs.py)
_repro()
{
    local cur=${COMP_WORDS[COMP_CWORD]} cmd= i opts=
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            --db|--trace) ((i++)) ;;
            -*) ;;
            *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "%s --db --trace --verbose --help --version" -- "$cur"))
        return
    fi
    case $cmd in
%s
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -F _repro repro
""" % (" ".join(n for n, _ in commands), cases)
with open(out_bash, "w") as f:
    f.write(bash)

"""Man pages and shell completions against the programs themselves.

The flags each program's --help lists (rund and its subcommands, runctl and
every verb, runproc, runrpc) are parsed out of the help texts and must
appear in the matching man page source (docs/man/*.scd) and, for runctl and
rund, be offered by the installed bash completion for that verb; so neither
can drift from the programs. The installed man pages render without groff
warnings; the bash completion is driven as bash drives it (COMP_WORDS,
COMP_CWORD, or COMP_LINE/COMP_POINT) in `bash --norc`, job ids come from a
real rund; the zsh completions parse and load with compinit."""

import os
import re
import shutil
import socket
import subprocess

import pytest

from conftest import RUNCTL, RUND, RUNPROC, ROOT, Ctl, ULID_RE, check_no_sanitizer

PREFIX = os.environ.get("PREFIX") or os.path.dirname(os.path.dirname(RUNCTL))
RUNRPC = os.path.join(os.path.dirname(RUND), "runrpc")
MAN_SRC = os.path.join(ROOT, "docs", "man")
MANDIR = os.path.join(PREFIX, "share", "man")
BASH_DIR = os.path.join(PREFIX, "share", "bash-completion", "completions")
ZSH_DIR = os.path.join(PREFIX, "share", "zsh", "vendor-completions")
PAGES = {"rund": "8", "runctl": "1", "runproc": "8", "runrpc": "1"}

FLAG_RE = re.compile(r"(?<![\w-])(--?[A-Za-z](?:[\w-]*[A-Za-z0-9])?)(?![\w*-])")
SEED_RE = re.compile(r"(?<![\w-])(-max_[a-z_]+)")


def run_help(*argv):
    p = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    check_no_sanitizer(p.stderr, repr(argv))
    assert p.returncode == 0, "%r: exit %d: %r" % (argv, p.returncode, p.stderr)
    return p.stdout.decode()


def usage_block(text):
    """The lines from 'Usage:' to the first blank line."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.lower().startswith("usage:"))
    out = []
    for l in lines[start:]:
        if not l.strip():
            break
        out.append(l)
    return out


def option_lines_flags(text):
    """Flags that start an option line (indented at most 6 columns; deeper
    lines continue a description), from the line's option column."""
    flags = set()
    for l in text.splitlines():
        s = l.lstrip(" ")
        if not s.startswith("-") or len(l) - len(s) > 6 or l.lower().startswith("usage"):
            continue
        column = re.split(r"\s{2,}", s)[0]
        flags.update(FLAG_RE.findall(column))
    flags.update(SEED_RE.findall(text))
    return flags


def runctl_verbs():
    text = run_help(RUNCTL, "--help")
    lines = text.splitlines()
    i = lines.index("Commands:")
    verbs = []
    for l in lines[i + 1:]:
        if not l.strip():
            break
        verbs.append(l.split()[0])
    return verbs


def runctl_verb_flags(verb):
    """{subverb or '': flags} from 'runctl help VERB' (image has subverbs)."""
    text = run_help(RUNCTL, "help", verb)
    usage = " ".join(l.strip() for l in usage_block(text))
    usage = usage.split(" %s " % verb, 1)[1] if (" %s " % verb) in usage else ""
    per = {}
    if verb == "image":
        for seg in usage.split(" | "):
            words = seg.split()
            per.setdefault(words[0], set()).update(FLAG_RE.findall(seg))
    else:
        per[""] = set(FLAG_RE.findall(usage))
    per.setdefault("", set()).update(option_lines_flags(text))
    return {k: {f for f in v if f != "--"} for k, v in per.items()}


def rund_sub_flags(sub):
    """{verb: flags} from 'rund SUB --help' usage lines; option lines under ''."""
    text = run_help(RUND, sub, "--help")
    per, current = {}, [""]
    for l in usage_block(text):
        m = re.search(r"rund %s ([a-z|]+)" % sub, l)
        if m:
            current = m.group(1).split("|")
            l = l[m.end():]
        for v in current:
            per.setdefault(v, set()).update(FLAG_RE.findall(l))
    per.setdefault("", set()).update(option_lines_flags(text))
    return per


def man_source(name):
    with open(os.path.join(MAN_SRC, "%s.%s.scd" % (name, PAGES[name]))) as f:
        return f.read()


def in_text(flag, text):
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(flag), text) is not None


# --------------------------------------------------------------------------
# bash


def bash_complete(file, words, line=None, cwd=None, env=None):
    """COMPREPLY of the completion function of FILE for WORDS (the last is
    the word being completed), or for the command line LINE (cursor at its
    end) as bash gives it in COMP_LINE/COMP_POINT."""
    func = "_" + os.path.basename(file)
    script = ('source "$1" || exit 99; shift\n'
              'if [ -n "${LINE+x}" ]; then COMP_LINE=$LINE; COMP_POINT=${#LINE}; fi\n'
              'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))\n'
              'complete -p %s >/dev/null || exit 98\n'
              '%s; rc=$?\n'
              'for w in "${COMPREPLY[@]}"; do printf "%%s\\n" "$w"; done\n'
              'exit $rc\n') % (os.path.basename(file), func)
    # a loaded machine: the server's ids are waited for longer than by default
    e = dict(os.environ, RUNRPC_COMPLETION_TIMEOUT="30")
    e.pop("LINE", None)
    if line is not None:
        e["LINE"] = line
    if env:
        e.update(env)
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", file] + list(words),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, cwd=cwd,
                       env=e)
    assert p.returncode == 0, "completion of %r failed (%d): %s" % (words, p.returncode,
                                                                 p.stderr.decode())
    assert p.stderr == b"", "completion of %r wrote on stderr: %r" % (words, p.stderr)
    return p.stdout.decode().splitlines()


@pytest.fixture(scope="module")
def bash_runctl():
    f = os.path.join(BASH_DIR, "runctl")
    assert os.path.isfile(f), "bash completion not installed at " + f
    return f


@pytest.fixture(scope="module")
def bash_rund():
    f = os.path.join(BASH_DIR, "rund")
    assert os.path.isfile(f), "bash completion not installed at " + f
    return f


def test_help_parsers_find_known_flags():
    # the parsers below must see what is there, or every other test is empty
    exec_flags = runctl_verb_flags("exec")[""]
    for f in ("-t", "--tty", "--env", "--timeout-grace", "--max-wiops", "--profile", "--user",
              "-max_cpu_bandwidth"):
        assert f in exec_flags, (f, exec_flags)
    assert "--max-" not in exec_flags and "--addr" not in exec_flags
    assert runctl_verb_flags("image")["import"] >= {"--name", "--format", "--json"}
    assert {"--listen", "--client-ca", "--image-roots", "--version"} <= option_lines_flags(
        run_help(RUND, "--help"))
    certs = rund_sub_flags("certs")
    assert {"--san", "--days", "--out", "--state-dir"} <= certs["issue"], certs
    assert {"exec", "start", "list", "image", "run"} <= set(runctl_verbs())


@pytest.mark.parametrize("verb", ["exec", "start", "run", "status", "logs", "wait", "signal",
                                  "stop", "list", "image", "attach", "send"])
def test_runctl_verb_flags_in_man_page_and_bash_completion(verb, bash_runctl):
    man = man_source("runctl")
    assert re.search(r"^## %s$" % verb, man, re.M), "runctl.1.scd has no section for " + verb
    per = runctl_verb_flags(verb)
    if verb == "run":  # every flag of exec applies but --in (no running job)
        per[""] |= runctl_verb_flags("exec")[""] - {"--in"}
    for sub, flags in per.items():
        missing_man = sorted(f for f in flags if not in_text(f, man))
        assert not missing_man, "runctl %s: flags not in runctl.1.scd: %s" % (verb, missing_man)
        subs = [s for s in per if s] if (verb == "image" and not sub) else [sub]
        offered = set()
        for s in subs:
            offered |= set(bash_complete(bash_runctl,
                                         [RUNCTL, verb] + ([s] if s else []) + ["-"]))
        missing = sorted(flags - offered)
        assert not missing, "runctl %s %s: bash completion does not offer %s (offers %s)" % (
            verb, sub, missing, sorted(offered))


def test_runctl_global_flags_and_verbs(bash_runctl):
    text = run_help(RUNCTL, "--help")
    flags = option_lines_flags(text)
    assert {"--addr", "--tls-cert", "--token", "--no-session-cache", "-v"} <= flags
    man = man_source("runctl")
    assert not sorted(f for f in flags if not in_text(f, man)), flags
    offered = set(bash_complete(bash_runctl, [RUNCTL, "-"]))
    assert flags <= offered, sorted(flags - offered)
    verbs = set(runctl_verbs()) | {"help"}
    assert set(bash_complete(bash_runctl, [RUNCTL, ""])) == verbs
    assert bash_complete(bash_runctl, [RUNCTL, "--addr", "unix:/x", "st"]) == ["start", "status",
                                                                              "stop"]
    assert set(bash_complete(bash_runctl, [RUNCTL, "help", ""])) == verbs
    # every $RUNRPC_* the help names is documented
    for var in set(re.findall(r"RUNRPC_[A-Z_]+", text)):
        assert in_text(var, man), var


def test_rund_flags_in_man_page_and_bash_completion(bash_rund):
    text = run_help(RUND, "--help")
    flags = option_lines_flags(text)
    man = man_source("rund")
    missing = sorted(f for f in flags if not in_text(f, man))
    assert not missing, "rund flags not in rund.8.scd: %s" % missing
    offered = set(bash_complete(bash_rund, [RUND, "--"]))
    assert flags - {"-h"} <= offered, sorted(flags - offered)
    # the seed's spellings the help names: rund serve -addr ... (single-dash flags)
    seed_line = next(l for l in text.splitlines() if "rund serve [" in l)
    seed = set(FLAG_RE.findall(seed_line.split("rund serve", 1)[1].split(" is ")[0]))
    assert {"-addr", "-ca", "-cert", "-key"} <= seed, seed_line
    assert not sorted(f for f in seed if not in_text(f, man)), seed
    offered = set(bash_complete(bash_rund, [RUND, "serve", "-"]))
    assert seed | {"--listen", "--config"} <= offered, sorted(seed - offered)
    subs = set(bash_complete(bash_rund, [RUND, ""]))
    assert subs == {"certs", "tokens", "secrets", "image"}
    for sub in subs:
        assert re.search(r"^## rund %s$" % sub, man, re.M), "rund.8.scd: no section for " + sub
        per = rund_sub_flags(sub)
        verbs = set(bash_complete(bash_rund, [RUND, sub, ""]))
        assert set(v for v in per if v) <= verbs, (sub, per.keys(), verbs)
        union = set()
        for verb, vflags in per.items():
            assert not sorted(f for f in vflags if not in_text(f, man)), (sub, verb, vflags)
            if verb:
                offered = set(bash_complete(bash_rund, [RUND, sub, verb, "--"]))
                union |= offered
                assert vflags <= offered, "rund %s %s: not offered: %s" % (
                    sub, verb, sorted(vflags - offered))
        assert per[""] <= union, "rund %s: not offered: %s" % (sub, sorted(per[""] - union))


def test_runproc_and_runrpc_flags_in_man_pages():
    text = run_help(RUNPROC, "--help")
    man = man_source("runproc")
    lines = text.splitlines()
    cmds = lines[lines.index("Commands:") + 1:]
    cmds = cmds[:cmds.index("")]
    assert len(cmds) >= 15, cmds
    for l in cmds:
        name = l.split()[0]
        assert re.search(r"^\*%s\*" % name, man, re.M), "runproc.8.scd: no entry for " + name
        missing = sorted(f for f in FLAG_RE.findall(l) if not in_text(f, man))
        assert not missing, "runproc %s: flags not in runproc.8.scd: %s" % (name, missing)
    glob = option_lines_flags(text)
    assert {"--root", "--log-format", "--systemd-cgroup", "--rootless"} <= glob
    assert not sorted(f for f in glob if not in_text(f, man)), glob
    for var in set(re.findall(r"RUNPROC_[A-Z_]+", text)):
        assert in_text(var, man), var

    text = run_help(RUNRPC, "--help")
    man = man_source("runrpc")
    flags = set(FLAG_RE.findall(text))
    assert {"--listen", "--init", "--token-file", "--client-ca"} <= flags
    assert not sorted(f for f in flags if not in_text(f, man)), flags
    for var in set(re.findall(r"RUNRPC_[A-Z_]+", text)):
        assert in_text(var, man), var


def test_bash_enumerations(bash_runctl, bash_rund, tmp_path):
    # the values the help texts list
    states = re.search(r"--state (\S+)\]", run_help(RUNCTL, "help", "list")).group(1)
    assert bash_complete(bash_runctl, [RUNCTL, "list", "--state", ""]) == states.split("|")
    assert bash_complete(bash_runctl, [RUNCTL, "list", "--state=ki"]) == ["killed"]
    assert bash_complete(bash_runctl, [RUNCTL, "exec", "--profile", ""]) == [
        "host", "default", "strict"]
    assert bash_complete(bash_runctl, [RUNCTL, "start", "--net", ""]) == ["none", "host"]
    assert bash_complete(bash_runctl, [RUNCTL, "image", "import", "--format", ""]) == [
        "auto", "oci-archive", "docker-archive", "rootfs"]
    assert bash_complete(bash_runctl, [RUNCTL, "exec", "--timeout", "5s", "--pro"]) == [
        "--profile"]
    sigs = bash_complete(bash_runctl, [RUNCTL, "signal", "01J0000000000000000000000", ""])
    assert {"TERM", "KILL", "HUP", "USR1", "WINCH"} <= set(sigs)
    assert bash_complete(bash_runctl, [RUNCTL, "signal", "X", "SIGKI"]) == ["SIGKILL"]
    # after -- (and after CMD): the command's words, not runctl's flags
    assert "--profile" not in bash_complete(bash_runctl, [RUNCTL, "exec", "--", "ls", "--pro"])
    assert "--env" not in bash_complete(bash_runctl, [RUNCTL, "exec", "ls", "--en"])
    # files for image import
    (tmp_path / "busybox.tar").write_bytes(b"")
    (tmp_path / "other").mkdir()
    assert bash_complete(bash_runctl, [RUNCTL, "image", "import", "bus"],
                         cwd=str(tmp_path)) == ["busybox.tar"]
    # rund's enumerations
    assert bash_complete(bash_rund, [RUND, "--log-level", ""]) == ["debug", "info", "warn",
                                                                   "error"]
    assert bash_complete(bash_rund, [RUND, "--min-profile=s"]) == ["strict"]
    assert bash_complete(bash_rund, [RUND, "--image-roots", ""]) == ["auto", "overlay", "copy"]
    assert bash_complete(bash_rund, [RUND, "certs", ""]) == ["init", "server", "issue"]


def test_bash_job_ids_from_the_server(rund, bash_runctl):
    ctl = Ctl(rund.addr)
    r = ctl("start", "--", "sleep", "60")
    assert r.rc == 0, r
    running = r.text.strip()
    r = ctl("start", "--", "true")
    assert r.rc == 0, r
    done = r.text.strip()
    assert ULID_RE.match(running) and ULID_RE.match(done)
    assert ctl("wait", done).rc == 0
    try:
        # bash splits --addr=unix:/path at '=' and ':'; the completion reads COMP_LINE
        for line in ("runctl --addr %s status " % rund.addr,
                     "runctl --addr=%s logs -f " % rund.addr):
            ids = bash_complete(bash_runctl, ["x"], line=line.replace("runctl", RUNCTL, 1))
            assert set(ids) == {running, done}, (line, ids)
        # the same through COMP_WORDS as a caller may set it, and $RUNRPC_ADDR
        ids = bash_complete(bash_runctl, [RUNCTL, "wait", running[:5]],
                            env={"RUNRPC_ADDR": rund.addr})
        assert set(ids) == {i for i in (running, done) if i.startswith(running[:5])}
        # stop and signal: running jobs only
        ids = bash_complete(bash_runctl, [RUNCTL, "--addr", rund.addr, "stop", ""])
        assert ids == [running]
        ids = bash_complete(bash_runctl, [RUNCTL, "--addr", rund.addr, "signal", ""])
        assert ids == [running]
        # no server: nothing, quietly
        assert bash_complete(bash_runctl, [RUNCTL, "--addr", "unix:/nonexistent/rund.sock",
                                           "status", ""]) == []
        # a server that never answers: nothing once RUNRPC_COMPLETION_TIMEOUT passed
        mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        mute.bind(os.path.join(rund.base, "mute.sock"))
        mute.listen(8)
        try:
            assert bash_complete(bash_runctl, [RUNCTL, "--addr", "unix:" + mute.getsockname(),
                                               "status", ""],
                                 env={"RUNRPC_COMPLETION_TIMEOUT": "1"}) == []
        finally:
            mute.close()
    finally:
        ctl("stop", running, "--grace", "0")


# --------------------------------------------------------------------------
# man pages


def scdoc():
    return shutil.which("scdoc")


@pytest.mark.parametrize("name", sorted(PAGES))
def test_man_page_installed_and_renders(name, tmp_path):
    sec = PAGES[name]
    page = os.path.join(MANDIR, "man" + sec, "%s.%s" % (name, sec))
    if not os.path.exists(page):
        if not scdoc():
            pytest.skip("scdoc is not installed: the build skips the man pages")
        pytest.fail("%s not installed (scdoc is there)" % page)
    with open(page, "rb") as f:
        troff = f.read()
    assert troff.startswith(b'.\\" Generated by scdoc') and b".TH " in troff, troff[:200]
    # the installed page is the source's
    with open(os.path.join(MAN_SRC, "%s.%s.scd" % (name, sec)), "rb") as f:
        src = f.read()
    if scdoc():
        fresh = subprocess.run([scdoc()], input=src, stdout=subprocess.PIPE, check=True).stdout
        strip = lambda t: re.sub(rb'\n\.TH .*', b"", t)  # the date
        assert strip(fresh) == strip(troff), "installed %s is not docs/man's (rebuild)" % page
    groff = shutil.which("groff")
    if groff:
        p = subprocess.run([groff, "-man", "-ww", "-z", "-Tutf8", page], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()
    if shutil.which("man"):
        p = subprocess.run(["man", "--warnings", "-l", "-Tutf8", page], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60,
                           env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
        assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()
        text = re.sub(r".\x08", "", p.stdout.decode())
        need = ["NAME", "SYNOPSIS", "DESCRIPTION", "ENVIRONMENT", "FILES", "EXIT STATUS",
                "EXAMPLES", "SEE ALSO"] + (["SIGNALS"] if name == "rund" else [])
        for section in need:
            assert re.search(r"^%s$" % section, text, re.M), (name, section)
        assert re.search(r"^ +%s - " % name, text, re.M), text[:500]
        # the manual can find it where it was installed
        p = subprocess.run(["man", "-M", MANDIR, "-w", sec, name], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        assert p.stdout.decode().strip() == page, (p.stdout, p.stderr)


def test_readme_lists_the_man_pages():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    docs = readme[readme.index("## Docs"):]
    for name, sec in PAGES.items():
        assert "%s(%s)" % (name, sec) in docs, name


# --------------------------------------------------------------------------
# zsh


ZSH = shutil.which("zsh")


@pytest.mark.skipif(not ZSH, reason="zsh is not installed")
@pytest.mark.parametrize("name", ["_runctl", "_rund"])
def test_zsh_completion_parses_and_loads(name, tmp_path):
    f = os.path.join(ZSH_DIR, name)
    assert os.path.isfile(f), "zsh completion not installed at " + f
    p = subprocess.run([ZSH, "-n", f], stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()
    script = ('fpath=(%s $fpath); autoload -Uz compinit; compinit -u -d %s/zcompdump\n'
              'print -r -- "${_comps[%s]}"\n'
              'autoload -Uz +X %s\n'
              'print -r -- "${functions[%s]:+defined}"\n') % (
                  ZSH_DIR, tmp_path, name[1:], name, name)
    p = subprocess.run([ZSH, "-f", "-c", script], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60, env=dict(os.environ, HOME=str(tmp_path)))
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()
    assert p.stdout.decode().split() == [name, "defined"], p.stdout


# An interactive zsh in a pty (zsh/zpty) with compinit and the installed
# completions; compadd is wrapped to print every match it is given, then
# TAB is typed after the line to complete.
ZPTY_HARNESS = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1=''; fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -d $2/zcompdump"
zpty -w z "zstyle ':completion:*' menu no; zstyle ':completion:*:default' list-prompt ''"
zpty -w z 'compprefuncs=(_t_hook); _t_hook() { compadd() { builtin compadd -O _t_m "$@"; print -rl -- "<M>"${^_t_m} >/dev/tty; builtin compadd "$@" } }'
zpty -w z 'comppostfuncs=(_t_end); _t_end() { print -r -- "<E""ND>" >/dev/tty }'
zpty -w z 'print -r -- __REA""DY__'
zpty -r z out '*__READY__*'
zpty -w -n z "$3"$'\t'
# no more input until the completion ran (zsh skips work when keys wait)
zpty -r z out '*<END>*'
print -r -- ${out//$'\r'/}
zpty -w z $'\x15''print -r -- __DO""NE__'
zpty -r z rest '*__DONE__*'
zpty -d z
"""


def zsh_complete(line, tmp_path, env=None):
    """The matches zsh's completion offers for LINE (cursor at its end)."""
    harness = tmp_path / "zpty-harness.zsh"
    harness.write_text(ZPTY_HARNESS)
    e = dict(os.environ, HOME=str(tmp_path), TERM="dumb", RUNRPC_COMPLETION_TIMEOUT="30")
    e.update(env or {})
    p = subprocess.run([ZSH, "-f", str(harness), ZSH_DIR, str(tmp_path), line],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, env=e)
    assert p.returncode == 0, p.stderr.decode()
    out = p.stdout.decode("utf-8", "replace")
    # (a compadd that adds nothing, e.g. for a message, prints a bare <M>)
    return sorted({l.split("<M>", 1)[1] for l in out.splitlines() if "<M>" in l} - {""})


@pytest.mark.skipif(not ZSH, reason="zsh is not installed")
def test_zsh_completion_offers(tmp_path):
    verbs = set(runctl_verbs()) | {"help"}
    assert set(zsh_complete("runctl ", tmp_path)) == verbs
    offered = set(zsh_complete("runctl exec -", tmp_path))
    missing = runctl_verb_flags("exec")[""] - offered - {"-tt"}
    assert not missing, sorted(missing)
    assert zsh_complete("runctl list --state ", tmp_path) == sorted(
        ["running", "exited", "killed", "failed"])
    assert zsh_complete("runctl --addr unix:/x list --state=k", tmp_path) == ["killed"]
    assert {"TERM", "KILL", "WINCH"} <= set(zsh_complete("runctl signal X ", tmp_path))
    assert zsh_complete("rund --log-level ", tmp_path) == ["debug", "error", "info", "warn"]
    assert zsh_complete("rund certs ", tmp_path) == ["init", "issue", "server"]
    flags = option_lines_flags(run_help(RUND, "--help")) - {"-h"}
    offered = set(zsh_complete("rund -", tmp_path))
    assert flags <= offered, sorted(flags - offered)


@pytest.mark.skipif(not ZSH, reason="zsh is not installed")
def test_zsh_job_ids_from_the_server(rund, tmp_path):
    ctl = Ctl(rund.addr)
    r = ctl("start", "--", "true")
    assert r.rc == 0, r
    job = r.text.strip()
    assert ctl("wait", job).rc == 0
    # runctl by its path: the line's first word is what the completion calls
    ids = zsh_complete("%s --addr %s status " % (RUNCTL, rund.addr), tmp_path)
    assert ids == [job], ids
    assert zsh_complete("%s --addr unix:/nonexistent/x.sock status " % RUNCTL, tmp_path) == []

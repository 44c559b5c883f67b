"""sluice's `rpmbuild` builder: one SRPM rebuilt on a host that has no mock.

Why: the host's rpmdb knows nothing of the buildroot repos. So BuildRequires
are looked up in the given repos and recorded in a PRIVATE rpmdb (`rpm
--justdb`), and `rpmbuild --rebuild --dbpath DB` checks them (versions too).
The build is NOT isolated. The mock test double runs this same code. It
travels as text (`python3 -c SOURCE`): one stdlib-only file for Python 3.6+
that never hands package-controlled text to a shell.

Usage: --srpm PATH --resultdir DIR --arch ARCH [--repo URL]...
  --repo: http(s):// or file:// createrepo_c repos; the first that has a name wins.
Exit status: rpmbuild's own (0 built, 1 failed, 11 its BuildRequires check
  failed, on rpm >= 4.15), else mock's number for the same trouble:
  2 bad usage; 20 buildroot not prepared (repo unreachable, bad metadata,
  checksum mismatch, rpm --justdb failed, rpm missing); 30 a BuildRequires is in no repo,
  after the line `sluice: missing BuildRequires: A, B (not in any of: URL, ...)`;
  40 unreadable SRPM; 70 result dir not writable; 143 SIGTERM (cleaned up).
Writes to RESULTDIR: the binary RPMs, NAME-VERSION-RELEASE.src.rpm, build.log
(rpmbuild's output, also streamed to stdout), root.log (what came from which
repo into the private rpmdb), state.log (phase times).
"""
import argparse
import bz2
import gzip
import hashlib
import lzma
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import namedtuple
from functools import cmp_to_key
from itertools import zip_longest
from xml.etree import ElementTree

BANNER = ("sluice: rpmbuild builder: this build is NOT isolated (no mock chroot); "
          "BuildRequires come from a private rpmdb")
USAGE, SETUP, MISSING, BAD_SRPM, BAD_RESULTDIR, TERMINATED = 2, 20, 30, 40, 70, 143

_COMMON = "{http://linux.duke.edu/metadata/common}"
_RPM = "{http://linux.duke.edu/metadata/rpm}"
_REPO = "{http://linux.duke.edu/metadata/repo}"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_RICH_WORDS = {"and", "or", "if", "else", "with", "without", "unless"}
_OPERATORS = {"<", ">", "=", "<=", ">=", "=="}
_SEGMENT = re.compile(r"[0-9]+|[A-Za-z]+|~|\^")

Package = namedtuple("Package", "name epoch version release arch url checksum_type checksum")


class Failure(Exception):
    """The build cannot go on; `status` is the exit status to end with."""

    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status


class Logs(object):
    """The live log (stdout) plus build.log, root.log and state.log in RESULTDIR."""

    def __init__(self, resultdir):
        self.build = open(os.path.join(resultdir, "build.log"), "wb")
        self.root = open(os.path.join(resultdir, "root.log"), "w", encoding="utf-8")
        self.state_log = open(os.path.join(resultdir, "state.log"), "w", encoding="utf-8")
        self.echo = True

    def out(self, data):
        """Stream to stdout; a dropped connection must not stop the build."""
        if self.echo:
            try:
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            except (OSError, ValueError):
                self.echo = False

    def say(self, line, build_log=False):
        data = (line + "\n").encode("utf-8", "replace")
        self.out(data)
        self.root.write(line + "\n")
        self.root.flush()
        if build_log:
            self.build.write(data)
            self.build.flush()

    def state(self, what):
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        self.state_log.write("%s,%03d - %s\n" % (stamp, int(now * 1000) % 1000, what))
        self.state_log.flush()

    def close(self):
        for handle in (self.build, self.root, self.state_log):
            handle.close()


# ------------------------------------------------------------ the SRPM

def read_srpm(srpm, db):
    """(NVR, BuildRequires as written, required names, names worth fetching
    from rich dependencies) of the SRPM."""
    nvr = _rpm_query(srpm, db, ["--qf", "%{NAME}-%{VERSION}-%{RELEASE}"])
    written, required, optional = [], [], []
    for line in _rpm_query(srpm, db, ["--requires"]).splitlines():
        line = line.strip()
        if not line or line.startswith("rpmlib("):
            continue
        written.append(line)
        if line.startswith("("):
            optional.extend(n for n in _rich_names(line) if n not in optional)
        elif line.split()[0] not in required:
            required.append(line.split()[0])
    return nvr, written, required, optional


def _rpm_query(srpm, db, what):
    command = ["rpm", "-qp", "--nosignature", "--dbpath", db] + what + ["--", srpm]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise Failure(BAD_SRPM, "sluice: cannot read %s: %s" % (srpm, err.decode("utf-8", "replace").strip()))
    return out.decode("utf-8", "replace")


def _rich_names(expression):
    """Package names inside a rich dependency such as `(foo >= 2 or bar)`.
    Only fetched when a repo has them; rpmbuild then judges the expression."""
    names, after_operator = [], False
    for token in re.findall(r"[^\s()]+(?:\([^\s()]*\))?", expression):
        if token in _RICH_WORDS:
            after_operator = False
        elif token in _OPERATORS:
            after_operator = True
        elif after_operator:
            after_operator = False  # a version
        else:
            names.append(token)
    return names


# ------------------------------------------------------------ repos

def scan_repo(url, wanted, work):
    """{name: [Package]} for the packages of one repo that provide a wanted
    name (as their name, a <rpm:provides> entry, or a file in primary)."""
    base, found = (url if url.endswith("/") else url + "/"), {}
    local = os.path.join(work, "repo-" + hashlib.sha256(url.encode()).hexdigest()[:12])
    try:
        _download(urllib.parse.urljoin(base, "repodata/repomd.xml"), local + "-repomd.xml")
        data = [d for d in ElementTree.parse(local + "-repomd.xml").getroot().findall(_REPO + "data")
                if d.get("type") == "primary"]
        if not data:
            raise Failure(SETUP, "sluice: %s has no primary metadata in repodata/repomd.xml" % url)
        location, checksum = data[0].find(_REPO + "location").get("href"), data[0].find(_REPO + "checksum")
        _download(urllib.parse.urljoin(base, location), local, (checksum.get("type"), checksum.text.strip()))
        with _open_metadata(local, location) as stream:
            for _, element in ElementTree.iterparse(stream):
                if element.tag == _COMMON + "package":
                    _match(element, base, wanted, found)
                    element.clear()
    except (ElementTree.ParseError, EOFError, OSError) as exc:
        raise Failure(SETUP, "sluice: the metadata of %s is broken (%s); run createrepo_c on it again" % (url, exc))
    return found


def _match(element, base, wanted, found):
    if element.get("type", "rpm") != "rpm":
        return
    arch = element.findtext(_COMMON + "arch")
    if arch in ("src", "nosrc"):
        return
    name = element.findtext(_COMMON + "name")
    fmt = element.find(_COMMON + "format")
    names = {name}
    if fmt is not None:
        names.update(e.get("name") for e in fmt.iterfind(_RPM + "provides/" + _RPM + "entry"))
        names.update(f.text for f in fmt.iterfind(_COMMON + "file"))
    hits = names & wanted
    if not hits:
        return
    version, location, checksum = (element.find(_COMMON + tag) for tag in ("version", "location", "checksum"))
    xml_base = location.get(_XML_BASE)
    url = urllib.parse.urljoin(xml_base.rstrip("/") + "/" if xml_base else base, location.get("href"))
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https", "file") or scheme == "file" != urllib.parse.urlsplit(base).scheme:
        return  # remote metadata may not send a download to this host's files (file:// from http://)
    package = Package(name, version.get("epoch") or "0", version.get("ver"), version.get("rel"), arch,
                      url, checksum.get("type"), checksum.text.strip())
    for hit in hits:
        found.setdefault(hit, []).append(package)


def _open_metadata(path, location):
    """gz is what sluice publishes; xz and bz2 come free with Python."""
    openers = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open, ".xml": open}
    for suffix, opener in openers.items():
        if location.endswith(suffix):
            return opener(path, "rb")
    raise Failure(SETUP, "sluice: cannot read %s (only gz, xz or bz2 metadata): publish the repo with "
                         "`createrepo_c --general-compress-type gz`" % location)


def _download(url, path, checksum=None):
    """Fetch `url` to `path`, checking (type, hex digest) when given."""
    kind = {"sha": "sha1"}.get(checksum[0], checksum[0]) if checksum else "sha256"
    if kind not in ("sha1", "sha224", "sha256", "sha384", "sha512"):  # never a traceback for a bad repo
        raise Failure(SETUP, "sluice: %s names checksum type %r, which sluice does not accept" % (url, kind))
    digest = hashlib.new(kind)
    try:
        with urllib.request.urlopen(url, timeout=120) as response, open(path, "wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
    except (OSError, ValueError) as exc:
        raise Failure(SETUP, "sluice: cannot read %s: %s (is the repo reachable from this host?)" % (url, exc))
    if checksum and digest.hexdigest() != checksum[1]:
        raise Failure(SETUP, "sluice: %s does not match the %s checksum in the repo metadata; the repo "
                             "changed during the build or is corrupt: retry" % (url, checksum[0]))


# ------------------------------------------------------------ choosing

def rpmvercmp(a, b):
    """rpm's version comparison (lib/rpmvercmp.c), so the newest build wins."""
    for x, y in zip_longest(_SEGMENT.findall(a), _SEGMENT.findall(b)):
        if x == y:
            continue
        if "~" in (x, y):  # a tilde sorts before everything, even the end
            return -1 if x == "~" else 1
        if "^" in (x, y) and None not in (x, y):  # a caret: after the end, before the rest
            return -1 if x == "^" else 1
        if None in (x, y):  # the longer one is newer
            return -1 if x is None else 1
        if x.isdigit() != y.isdigit():  # a number is newer than letters
            return 1 if x.isdigit() else -1
        if x.isdigit():
            x, y = x.lstrip("0"), y.lstrip("0")
            if len(x) != len(y):
                return 1 if len(x) > len(y) else -1
        if x != y:
            return 1 if x > y else -1
    return 0


def _compare(p, q, arch):
    def arch_rank(package):
        return 2 if package.arch == arch else 1 if package.arch == "noarch" else 0
    for x, y in ((arch_rank(p), arch_rank(q)), (int(p.epoch), int(q.epoch))):
        if x != y:
            return 1 if x > y else -1
    return rpmvercmp(p.version, q.version) or rpmvercmp(p.release, q.release)


def resolve(names, optional, repos, arch, work, logs):
    """{name: (Package, repo)} taking each name from the first repo that has
    it (the newest build there), plus the required names no repo has."""
    chosen, wanted = {}, set(names) | set(optional)
    for repo in repos:
        if not wanted:
            break
        found = scan_repo(repo, wanted, work)
        for name in sorted(found):
            best = max(found[name], key=cmp_to_key(lambda p, q: _compare(p, q, arch)))
            chosen[name] = (best, repo)
            wanted.discard(name)
        logs.say("sluice: repo %s provides %d of the BuildRequires" % (repo, len(found)))
    return chosen, [n for n in names if n not in chosen]


# ------------------------------------------------------------ building

def prepare_buildroot(chosen, db, work, logs):
    """Download what was chosen and record it in the private rpmdb only."""
    files, seen = [], set()
    for name in sorted(chosen):
        package, repo = chosen[name]
        nevra = "%s-%s-%s.%s" % (package.name, package.version, package.release, package.arch)
        logs.say("sluice: BuildRequires %s -> %s from %s" % (name, nevra, repo))
        if package.url in seen:
            continue
        seen.add(package.url)
        path = os.path.join(work, "%d.rpm" % len(files))  # metadata text never becomes a path
        _download(package.url, path, (package.checksum_type, package.checksum))
        files.append(path)
    if not files:
        return
    command = ["rpm", "--dbpath", db, "-i", "--justdb", "--nodeps", "--noscripts", "--notriggers",
               "--ignorearch", "--ignoreos", "--nosignature", "--replacefiles", "--replacepkgs", "--"] + files
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.communicate()[0].decode("utf-8", "replace")
    logs.root.write(output)
    if proc.returncode != 0:
        raise Failure(SETUP, "sluice: recording the BuildRequires in the private rpmdb failed:\n" + output)
    logs.say("sluice: installed into the private rpmdb (--justdb): %d package(s)" % len(files))


def run_rpmbuild(srpm, db, arch, top, logs):
    """rpmbuild's exit status; its output goes to stdout and build.log as it comes."""
    command = ["rpmbuild", "--rebuild", "--dbpath", db, "--target", arch,
               "--define", "_topdir " + top, "--define", "_tmppath " + os.path.join(top, "tmp"), "--", srpm]
    logs.say("sluice: running " + " ".join(command[:-1]) + " SRPM", build_log=True)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        for chunk in iter(lambda: os.read(proc.stdout.fileno(), 65536), b""):
            logs.build.write(chunk)
            logs.build.flush()
            logs.out(chunk)
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
        proc.stdout.close()


def collect(top, srpm, nvr, resultdir):
    """Copy the binary RPMs and the SRPM that was rebuilt into RESULTDIR."""
    copied = []
    for folder, _, names in os.walk(os.path.join(top, "RPMS")):
        for name in sorted(n for n in names if n.endswith(".rpm")):
            shutil.copyfile(os.path.join(folder, name), os.path.join(resultdir, name))
            copied.append(name)
    target = os.path.join(resultdir, os.path.basename(nvr) + ".src.rpm")
    if not (os.path.exists(target) and os.path.samefile(srpm, target)):
        shutil.copyfile(srpm, target)
    return copied + [os.path.basename(target)]


def build(srpm, resultdir, arch, repos, banner=BANNER):
    """Rebuild `srpm` for `arch` against `repos`; returns the exit status."""
    try:
        os.makedirs(resultdir, exist_ok=True)
        logs = Logs(resultdir)
    except OSError as exc:
        print("sluice: cannot write to the result directory %s: %s" % (resultdir, exc))
        return BAD_RESULTDIR
    work = tempfile.mkdtemp(prefix="sluice-rpmbuild-")
    try:
        logs.say(banner, build_log=True)
        return _build(os.path.abspath(srpm), resultdir, arch, list(repos), work, logs)
    except Failure as failure:
        logs.say(str(failure), build_log=True)
        return failure.status
    except OSError as exc:  # rpm or rpmbuild missing: a set-up problem, never "the build failed"
        logs.say("sluice: cannot run %s: %s; install rpm-build here" % (exc.filename, exc.strerror), True)
        return SETUP
    finally:
        logs.close()
        shutil.rmtree(work, ignore_errors=True)


def _build(srpm, resultdir, arch, repos, work, logs):
    db, top = os.path.join(work, "rpmdb"), os.path.join(work, "top")
    os.makedirs(db)
    if subprocess.call(["rpm", "--dbpath", db, "--initdb"]) != 0:
        raise Failure(SETUP, "sluice: `rpm --initdb` failed for the private rpmdb in %s" % db)
    logs.state("Start: resolve BuildRequires")
    nvr, written, names, optional = read_srpm(srpm, db)
    logs.say("sluice: %s BuildRequires: %s" % (nvr, ", ".join(written) or "(none)"))
    chosen, missing = resolve(names, optional, repos, arch, work, logs)
    if missing:
        where = "not in any of: " + ", ".join(repos) if repos else "not in any repo: none were given"
        raise Failure(MISSING, "sluice: missing BuildRequires: %s (%s)" % (", ".join(missing), where))
    prepare_buildroot(chosen, db, work, logs)
    logs.state("Finish: resolve BuildRequires")
    logs.state("Start: rpmbuild %s" % nvr)
    status = run_rpmbuild(srpm, db, arch, top, logs)
    logs.state("Finish: rpmbuild %s (exit %d)" % (nvr, status))
    if status == 0:
        logs.say("sluice: results: " + ", ".join(collect(top, srpm, nvr, resultdir)))
    return status


def main(argv):
    parser = argparse.ArgumentParser(prog="sluice-rpmbuild-helper", allow_abbrev=False,
                                     description="Rebuild an SRPM with rpmbuild against a private rpmdb.")
    parser.add_argument("--srpm", required=True)
    parser.add_argument("--resultdir", required=True)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--repo", action="append", default=[])
    args = parser.parse_args(argv)
    for repo in args.repo:
        if urllib.parse.urlsplit(repo).scheme not in ("http", "https", "file"):
            parser.error("--repo %s: use an http://, https:// or file:// URL" % repo)
    signal.signal(signal.SIGTERM, _terminate)
    return build(args.srpm, args.resultdir, args.arch, args.repo)


def _terminate(signum, frame):
    raise SystemExit(TERMINATED)  # runs the `finally` blocks: rpmbuild stopped, temp dir removed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

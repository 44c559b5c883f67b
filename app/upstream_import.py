"""`sluice import URL --target T`: rebuild what an upstream repo has that we do not.

Steps, each refusing before anything is stored:
1. Only admins import; the target must exist and trust at least one key.
2. The upstream's repomd.xml and primary.xml are read (checksum-checked); an
   unreachable or inconsistent upstream stops here (exit 1, nothing queued).
3. Each source package is decided by the target's `[import]` rules
   (`app.import_policy`). "Already seen" means: for `rebuild`, a build of the
   same NVR exists in the target in any state (a failed one is resubmitted by
   a person, not re-imported); for `skip`/`replace`, an earlier import record
   of the target decided the same for the same NEVR.
4. New rebuilds are downloaded (named by their index, never by the
   metadata), checked against the metadata's checksum, then their signature
   against only the target's trusted keys, then their header digests, and
   the header's NVR against the metadata's.
5. One commit adds the queued builds and the import record; refusals are
   mailed to the admins. A refusal is tried again by every later import (a
   mirror mid-sync heals); one identical to the last recorded refusal is
   shown but neither recorded nor mailed again.
"""
from __future__ import annotations

import dataclasses
import os
import re
import secrets
from typing import Callable

from app import audit, builds, import_policy, import_record
from app.errors import BadInput, StateConflict, UsageError
from app.import_record import ImportReport, Outcome
from app.index import Index
from app.model import timestamp
from app.submit import Submission, Submitter
from app.targets import Target, target_path
from backends.base import (ArtifactStore, Change, PackageReader, Person, SignatureChecker, Snapshot, SourcePackage,
                           StateStore, UpstreamFetchFailed, UpstreamPackage, UpstreamRepo)

_URL = re.compile(r"(https?|file)://[^\s]+")


@dataclasses.dataclass
class _Candidate:
    upstream: UpstreamPackage
    path: str
    package: SourcePackage | None = None
    signer: str = ""


class Importer:
    def __init__(self, store: StateStore, submitter: Submitter, artifacts: ArtifactStore, reader: PackageReader,
                 upstream: UpstreamRepo, checker: SignatureChecker, index: Index, actor: Person) -> None:
        self.store, self.submitter, self.artifacts, self.reader = store, submitter, artifacts, reader
        self.upstream, self.checker, self.index, self.actor = upstream, checker, index, actor

    # ------------------------------------------------------------ trusting keys

    def trust(self, target: str, armored: bytes) -> str:
        """Add the public key in `armored` to the keys `target`'s imports accept."""
        fingerprints = self.checker.fingerprints(armored)
        if len(fingerprints) != 1:
            raise BadInput(f"the key file holds {len(fingerprints)} keys ({', '.join(fingerprints)})",
                           "trust one key at a time: gpg --armor --export FPR > KEYFILE")
        fingerprint = fingerprints[0]

        def plan(snap: Snapshot) -> Change:
            current = self._allowed(snap, target, "trust upstream keys")
            if fingerprint in current.trusted_keys:
                raise StateConflict(f"target {target} already trusts key {fingerprint}", "nothing was changed")
            changed = dataclasses.replace(current, trusted_keys=(*current.trusted_keys, fingerprint))
            text = audit.message(f"target {target}: trust upstream key {fingerprint}", "",
                                 [("Op", "target-trust"), ("Target", target), ("Key", fingerprint),
                                  ("Actor", self.actor.email)])
            return Change({target_path(target): changed.dump(), import_record.key_path(fingerprint): armored},
                          text, self.actor)
        self.store.update(plan)
        return fingerprint

    def _allowed(self, snap: Snapshot, target: str, what: str) -> Target:
        builds.load_policy(snap).require_admin(self.actor.email, what)
        return builds.load_target(snap, target)

    # ------------------------------------------------------------ importing

    def run(self, url: str, target_name: str, dry_run: bool = False,
            progress: Callable[[str], None] = lambda line: None) -> ImportReport:
        if not _URL.fullmatch(url):
            raise UsageError(f"{url!r} is not an http, https or file URL",
                             "give the upstream repo's base URL, the folder holding repodata/")
        snap = self.store.snapshot()
        target = self._allowed(snap, target_name, "import upstream packages")
        keys = self._keys(snap, target)
        upstream = self.upstream.source_packages(url)
        self.index.refresh(snap)
        before = import_record.earlier(snap, target.name)
        outcomes: dict[str, Outcome] = {}
        wanted: list[UpstreamPackage] = []
        seen = 0
        for package in {p.nevr: p for p in reversed(upstream)}.values():
            decision = import_policy.decide(target.import_rules, package.name)
            outcome = self._decided(package, decision, before)
            if outcome is None and decision.action == import_policy.REBUILD:
                if self.index.same_nvr(target.name, package.nvr):
                    seen += 1
                else:
                    wanted.append(package)
            elif outcome is None:
                seen += 1
            else:
                outcomes[package.nevr] = outcome
        with self.artifacts.scratch(".import-") as work:  # held while it lives: a killed import is swept
            candidates = self._fetch(url, wanted, work, outcomes, before, progress)
            self._verify(candidates, keys, target, outcomes, before)
            report = ImportReport(target.name, url, self.actor.email, timestamp(), "", dry_run,
                                  tuple(sorted(outcomes.values(), key=lambda o: (o.outcome, o.nevr))), seen)
            if dry_run or not report.news:
                return report
            return self._write(report, [c for c in candidates if c.package is not None])

    def _keys(self, snap: Snapshot, target: Target) -> dict[str, bytes]:
        if not target.trusted_keys:
            raise BadInput(f"target {target.name} trusts no upstream keys, so an import could queue nothing",
                           f"check the upstream's key, then `sluice target trust {target.name} KEYFILE`")
        keys = {}
        for fingerprint in target.trusted_keys:
            data = snap.read(import_record.key_path(fingerprint))
            if data is None:
                raise BadInput(f"target {target.name} trusts key {fingerprint}, but "
                               f"{import_record.key_path(fingerprint)} is not in the state tree",
                               f"add it again with `sluice target trust {target.name} KEYFILE`")
            keys[fingerprint] = data
        return keys

    def _decided(self, package: UpstreamPackage, decision: import_policy.Decision,
                 before: dict[str, tuple[str, dict]]) -> Outcome | None:
        """The outcome of a skip or replace rule; None when an earlier import
        said the same (or the rule is rebuild)."""
        if decision.action == import_policy.REBUILD:
            return None
        rule = f"[import] {decision.rule} = {decision.action}"
        if decision.action == import_policy.SKIP:
            outcome = Outcome(package.nevr, package.name, "skipped", f"target policy: {rule}", package.checksum)
        else:
            outcome = Outcome(package.nevr, package.name, "replaced",
                              f"our package {decision.replacement} replaces it ({rule} {decision.replacement})",
                              package.checksum, replaced_by=decision.replacement)
        _, last = before.get(package.nevr, ("", {}))
        if last.get("outcome") == outcome.outcome and last.get("replaced_by", "") == outcome.replaced_by:
            return None
        return outcome

    def _fetch(self, url: str, wanted: list[UpstreamPackage], work: str, outcomes: dict[str, Outcome],
               before: dict[str, tuple[str, dict]], progress: Callable[[str], None]) -> list[_Candidate]:
        fetched = []
        for n, package in enumerate(wanted):
            path = os.path.join(work, f"{n}.src.rpm")  # never a name the upstream chose
            progress(f"fetching {package.nevr}")
            try:
                self.upstream.fetch(url, package, path)
            except UpstreamFetchFailed as exc:
                outcomes[package.nevr] = _refused(package, exc.reason, before)
                continue
            fetched.append(_Candidate(package, path))
        return fetched

    def _verify(self, candidates: list[_Candidate], keys: dict[str, bytes], target: Target,
                outcomes: dict[str, Outcome], before: dict[str, tuple[str, dict]]) -> None:
        verdicts = self.checker.verify([c.path for c in candidates], keys) if candidates else {}
        for candidate in candidates:
            up, verdict = candidate.upstream, verdicts[candidate.path]
            if verdict.signer is None:
                outcomes[up.nevr] = _refused(up, verdict.problem, before)
                continue
            try:
                package = self.reader.read_source(candidate.path)
            except BadInput as exc:
                outcomes[up.nevr] = _refused(up, f"damaged: {exc.message}", before)
                continue
            if package.nvr != up.nvr or str(package.epoch or 0) != (up.epoch or "0"):
                outcomes[up.nevr] = _refused(up, f"the metadata says {up.nevr} but the package is "
                                                 f"{package.epoch or 0}:{package.nvr}", before)
                continue
            try:
                target.task_arches(package)
            except BadInput as exc:
                outcomes[up.nevr] = Outcome(up.nevr, up.name, "skipped", exc.message, up.checksum)
                continue
            candidate.package = dataclasses.replace(package, filename=f"{package.nvr}.src.rpm")
            candidate.signer = verdict.signer
            outcomes[up.nevr] = Outcome(up.nevr, up.name, "queued", f"signed by trusted key {verdict.signer}",
                                        up.checksum, signed_by=verdict.signer)

    def _write(self, report: ImportReport, queued: list[_Candidate]) -> ImportReport:
        for candidate in queued:
            self.artifacts.adopt(candidate.path, candidate.package.sha256)  # hashed by read_source, in our scratch
        ids = [secrets.token_hex(20) for _ in queued]
        by_nevr = {c.upstream.nevr: build_id for c, build_id in zip(queued, ids)}
        record_id = f"{report.at[:19].replace('-', '').replace(':', '')}Z-{secrets.token_hex(4)}"
        report = dataclasses.replace(report, record=record_id, outcomes=tuple(
            dataclasses.replace(o, build=by_nevr.get(o.nevr, "")) if o.outcome == "queued" else o
            for o in report.outcomes))
        submit = self.submitter.plan(Submission([c.path for c in queued], report.target),
                                     [c.package for c in queued], ids, report.at)

        def plan(snap: Snapshot) -> Change:
            self._allowed(snap, report.target, "import upstream packages")
            files = dict(submit(snap).files) if queued else {}
            files[import_record.record_path(report.target, record_id)] = report.encode()
            lines = [f"{o.nevr}: {o.outcome}, {o.reason}" + (f" (build {o.build[:7]})" if o.build else "")
                     for o in report.news]
            text = audit.message(f"import into {report.target} from {report.url}: {report.summary()}",
                                 "\n".join(lines),
                                 [("Op", "import"), ("Target", report.target), ("Import", record_id),
                                  *(("Build", build_id) for build_id in ids), ("Actor", self.actor.email)])
            return Change(files, text, self.actor)
        self.store.update(plan)
        return report


def _refused(package: UpstreamPackage, reason: str, before: dict[str, tuple[str, dict]]) -> Outcome:
    record, last = before.get(package.nevr, ("", {}))
    again = record if (last.get("outcome") == "refused" and last.get("reason") == reason
                       and last.get("checksum") == package.checksum) else ""
    return Outcome(package.nevr, package.name, "refused", reason, package.checksum, again=again)

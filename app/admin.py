"""Creating the queue and changing its config: the policy and the targets.

Only admins change config. Each change is one commit whose author is the
admin, so `git log` shows who granted what and when.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from app import audit, builds
from app.errors import StateConflict, UsageError
from app.policy import POLICY_PATH, Policy
from app.targets import Target, target_path
from backends.base import Change, Person, Snapshot, StateStore, Written


class Admin:
    def __init__(self, store: StateStore, actor: Person) -> None:
        self.store = store
        self.actor = actor

    def init(self, arch: str) -> Written:
        """The first commit: a policy whose only admin is the current user and
        one target, `default`, building for this machine's arch."""
        policy = Policy.initial(self.actor.email)
        target = Target("default", (arch,))

        def plan(snap: Snapshot) -> Change:
            if snap.commit is not None:
                admins = ", ".join(builds.load_policy(snap).holders("admin"))
                raise StateConflict(f"this repository already holds a sluice queue (admins: {admins})",
                                    "nothing was changed; ask an admin to grant you a role")
            files = {POLICY_PATH: policy.dump(), target_path("default"): target.dump()}
            text = audit.message(f"init sluice queue, admin {self.actor.email}", "",
                                 [("Op", "init"), ("Actor", self.actor.email), ("Target", "default")])
            return Change(files, text, self.actor)
        return self.store.update(plan)

    # ------------------------------------------------------------ policy

    def policy(self) -> Policy:
        return builds.load_policy(self.store.snapshot())

    def grant(self, role: str, email: str, package: str | None = None) -> Policy:
        return self._policy(lambda p: p.grant(role, email, package), f"grant {role} to {email}",
                            [("Op", "policy-grant"), ("Role", role), ("Email", email),
                             ("Package", package or "*")])

    def revoke(self, role: str, email: str, package: str | None = None) -> Policy:
        return self._policy(lambda p: p.revoke(role, email, package), f"revoke {role} from {email}",
                            [("Op", "policy-revoke"), ("Role", role), ("Email", email),
                             ("Package", package or "*")])

    def set_key(self, email: str, fingerprint: str | None) -> Policy:
        return self._policy(lambda p: p.with_key(email, fingerprint),
                            f"{'name' if fingerprint else 'forget'} the commit key of {email}",
                            [("Op", "policy-key"), ("Email", email), ("Key", fingerprint or "none")])

    def require_signed(self, on: bool) -> Policy:
        return self._policy(lambda p: p.requiring_signatures(on),
                            f"{'require' if on else 'stop requiring'} signed commits",
                            [("Op", "policy-signed"), ("Required", "yes" if on else "no")])

    def load_policy_file(self, path: str) -> Policy:
        new = Policy.parse(_read(path), path)
        return self._policy(lambda _: new, f"load policy from {path}", [("Op", "policy-load")])

    def _policy(self, edit: Callable[[Policy], Policy], title: str,
                trailers: list[tuple[str, str]]) -> Policy:
        result: list[Policy] = []

        def plan(snap: Snapshot) -> Change:
            current = self._admin_policy(snap, "change the policy")
            changed = edit(current)
            if changed == current:
                raise UsageError(f"the policy already says that: {title}", "nothing was changed")
            result[:] = [changed]
            text = audit.message(f"policy: {title}", "", [*trailers, ("Actor", self.actor.email)])
            return Change({POLICY_PATH: changed.dump()}, text, self.actor)
        self.store.update(plan)
        return result[0]

    def _admin_policy(self, snap: Snapshot, what: str) -> Policy:
        policy = builds.load_policy(snap)
        policy.require_admin(self.actor.email, what)
        return policy

    # ------------------------------------------------------------ targets

    def add_target(self, target: Target, *, replace: bool = False, source: str = "") -> Target:
        def plan(snap: Snapshot) -> Change:
            self._admin_policy(snap, "change targets")
            exists = snap.object_id(target_path(target.name)) is not None
            chosen = target
            if exists:
                chosen = _keep_keys(target, builds.load_target(snap, target.name))
            if exists and not replace:
                raise StateConflict(f"target {target.name} exists",
                                    f"see it with `sluice target show {target.name}`; replace it with "
                                    f"`sluice target load {target.name} FILE`")
            verb = "replace" if exists else "add"
            text = audit.message(f"target: {verb} {target.name}" + (f" from {source}" if source else ""), "",
                                 [("Op", f"target-{verb}"), ("Target", target.name),
                                  ("Actor", self.actor.email)])
            result[:] = [chosen]
            return Change({target_path(target.name): chosen.dump()}, text, self.actor)
        result: list[Target] = []
        self.store.update(plan)
        return result[0]

    def load_target_file(self, name: str, path: str) -> Target:
        return self.add_target(Target.parse(name, _read(path), path), replace=True, source=path)

    def target(self, name: str) -> Target:
        return builds.load_target(self.store.snapshot(), name)

    def targets(self) -> list[Target]:
        snap = self.store.snapshot()
        return [builds.load_target(snap, name) for name in builds.target_names(snap)]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", "check the path") from exc


def _keep_keys(loaded: Target, have: Target) -> Target:
    """A reloaded target keeps its signing key unless the file names one,
    and never forgets a retired key (nor the key a new one replaces): a
    retired key must never sign again, and its public key stays published
    while the repos hold its signatures."""
    signing = loaded.signing_key or have.signing_key
    replaced = (have.signing_key,) if have.signing_key and have.signing_key != signing else ()
    retired = tuple(dict.fromkeys((*have.retired_keys, *loaded.retired_keys, *replaced)))
    return dataclasses.replace(loaded, signing_key=signing, retired_keys=retired)

"""The services the cockpit calls: the CLI's own, wired the CLI's way.

The screens hold no rules; they call these from worker threads. One lock
serialises the calls, because the git store and the index connection are
shared by the poller, the loaders and the actions, and none of them is
meant to be used by two threads at once.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from app import cockpit, keymap, repos, tasklog, waits
from app.actions import Action
from app.builders import RunnerSettings
from app.errors import NotAvailable, SluiceError
from app.index import Index
from app.keys import TargetKey
from app.lifecycle import BuildView
from app.model import Op
from app.queue import Queue
from app.release import Releases
from app.rescue import rescue
from app.review import Review, Reviewer
from app.signing import Signing
from backends.base import Person, StateStore


@dataclass
class Services:
    store: StateStore
    index: Index
    queue: Queue
    actor: Person
    repo: str
    keys: keymap.Keymap = field(default_factory=keymap.default)
    artifact_path: Callable[[str], str] = lambda digest: ""
    live_root: str = ""  # where this machine's runner writes the output of running builds
    rescuer: Callable[[str], BuildView] | None = None  # `sluice rescue`'s service, wired to this machine
    status_file: str = ""  # the status file of this machine's runner (app/waits.py); "" for none
    settings: Callable[[], RunnerSettings] = lambda: RunnerSettings(())  # the local config's builders
    now: Callable[[], float] = time.time  # fixed in snapshot tests, so ages do not move
    lock: threading.RLock = field(default_factory=threading.RLock)
    notes: list[str] = field(default_factory=list)  # warnings the CLI would print to stderr
    signing: Signing | None = None  # `sluice sign`'s service
    releases: Releases | None = None  # `sluice push`'s and `publish`'s, noting into `published`
    published: list[str] = field(default_factory=list)  # what the last push's publish said
    reviewer: Callable[[bool], Reviewer] | None = None  # `sluice review`'s service; False: `--no-lint`

    def perform(self, action: Action) -> list[BuildView]:
        """An action as the CLI performs it: rescue re-imports results
        through its own service, every other op is one `Queue.perform`."""
        if action.op is Op.RESCUE:
            if self.rescuer is None:
                raise NotAvailable("this cockpit has no builders configured to rescue from",
                                   f"run `sluice rescue {action.build[:7]}` in a shell")
            return [self.rescuer(action.build)]
        return self.queue.perform(action)

    def refusal(self, action: Action) -> SluiceError | None:
        """Why `action` would be refused now (see `app.cockpit.refusal`)."""
        return cockpit.refusal(self.queue, action, self.signing.keys if self.signing else None)

    # Sign and push take a passphrase: the screens ask for it (a password
    # field) only when `ready` says a key needs one, hand it over in a dict
    # keyed by fingerprint, and clear the dict when the work is done.

    def ready(self, op: Op, ids: Sequence[str]) -> tuple[list[BuildView], list[TargetKey]]:
        """The builds `op` on `ids` acts on (batches whole), checked as the
        service checks them, and the keys it needs a passphrase for (none:
        a key without one, or one gpg-agent unlocks). Call under `lock`."""
        signing = self._signing(op)
        members = {m.id: m for build in ids for m in self.queue.check(build, op)}
        return list(members.values()), signing.keys.locked({m.record.target for m in members.values()})

    def sign(self, ids: Sequence[str], phrases: dict[str, str]) -> list[BuildView]:
        """`sluice sign ID…`: every build (with its batch) in one go."""
        signing = self._signing(Op.SIGN)
        return signing.sign(signing.plan(list(ids), False), lambda fingerprint, uid: phrases.get(fingerprint))

    def push(self, stage: str, ids: Sequence[str], phrases: dict[str, str]) -> tuple[list[BuildView], list[str]]:
        """`sluice push STAGE ID…`: the builds pushed, and what the publish said."""
        if self.releases is None:
            raise self._missing(f"push {stage}")
        self.published.clear()
        views = self.releases.push(stage, list(ids), lambda fingerprint, uid: phrases.get(fingerprint))
        said = list(self.published)
        self.published.clear()
        return views, said

    def repos(self) -> list[repos.TargetRepos]:
        """What `sluice repos` shows. Call under `lock`."""
        if self.releases is None:
            raise self._missing("repos")
        return repos.overview(self.releases)

    def review(self, build_id: str, lint: bool = True) -> Review:
        """`sluice review ID` (`--no-lint` when not `lint`). Call under
        `lock`: it reads the store and the index (rpmlint runs last)."""
        if self.reviewer is None:
            raise NotAvailable("this cockpit was opened without the artifact store to review from",
                               f"run `sluice review {build_id[:7]}` in a shell")
        self.index.refresh()
        return self.reviewer(lint).review(build_id)

    def _signing(self, op: Op) -> Signing:
        if self.signing is None:
            raise self._missing(str(op))
        return self.signing

    @staticmethod
    def _missing(command: str) -> NotAvailable:
        return NotAvailable("this cockpit was opened without the signing keys and repos",
                            f"run `sluice {command} …` in a shell")

    def find_log(self, detail: dict, arch: str, kind: str) -> tasklog.LogRef | None:
        """The seam to the builders' logs (see app/tasklog.py)."""
        return tasklog.locate(detail, arch, kind, self.artifact_path, self.live_root)

    def stored_log(self, live: tasklog.LogRef) -> tasklog.LogRef | None:
        """The stored copy of a live log whose attempt has ended (the same
        bytes, so a reader goes on from where it was), or None."""
        try:
            with self.lock:
                detail = self.queue.view(live.build).detail()
        except SluiceError:
            return None
        found = self.find_log(detail, live.arch, live.kind)
        return found if found is not None and not found.live else None

    def runner_status(self) -> dict | None:
        """What the live runner on this machine last wrote, or None."""
        return waits.read_status(self.status_file) if self.status_file else None

    def builders(self) -> waits.BuildersStatus:
        """The builders' health, slots and running tasks (a file read: no lock needed)."""
        return waits.builders_status(self.settings, self.runner_status())

    def waiting(self, view: BuildView) -> dict[str, str]:
        """Why each queued task of `view` waits, as `sluice show` says it.
        Call under `lock`: an `--after` build is read from the store."""
        return waits.explain(view, self.queue.view, self.settings, self.runner_status())

    @classmethod
    def from_context(cls, ctx, notes: list[str] | None = None) -> "Services":
        """From the CLI's `Context` (app/cli/context.py): same repo, identity,
        config and backends as every other command."""
        ctx.ready()
        keys = keymap.load(ctx.config)
        artifacts = ctx.backends.artifacts
        def rescuer(build: str) -> BuildView:
            return rescue(ctx.queue, build, ctx.settings, ctx.connect, artifacts, ctx.backends.reader)
        services = cls(ctx.backends.store, ctx.index, ctx.queue, ctx.actor, ctx.paths.repo, keys,
                       artifacts.path, ctx.live_root, rescuer,
                       status_file=waits.status_path(ctx.backends.store.index_dir()),
                       settings=lambda: ctx.settings, notes=notes if notes is not None else [],
                       signing=ctx.signing, reviewer=ctx.reviewer)
        services.releases = ctx.releases_saying(services.published.append)
        return services

"""What every command shares: paths, backends, identity, services and output.

Everything is opened lazily, so `sluice list --json` pays only for what it
reads. Commands never hold logic of their own: they parse, call a service and
print.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from functools import cached_property
from typing import Any

from app import builders, builds, config, identity, trust, updateinfo, waits
from app.advisories import Advisory
from app.admin import Admin
from app.buildroot import Buildroots
from app.errors import ConfigError, SluiceError, UsageError
from app.index import Index
from app.keys import Keys
from app.notify import Mailer, Outbox, SmtpSettings, announcement_mail
from app.queue import Queue
from app.release import Releases
from app.review import Reviewer
from app.signing import Signing
from app.submit import Submitter
from app.sync import Syncer
from backends.base import Person
from backends.factory import (Backends, RepoService, commit_signer, commit_verifier, contents_reader, git_config,
                              keyring, linter, machine_arch, open_transport, signer, smtp_notifier)


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = getattr(args, "json", False)
        self.yes: bool = getattr(args, "yes", False)
        self.create = False  # `init` (and joining by sync) may create the repo

    # ------------------------------------------------------------ wiring

    @cached_property
    def config(self) -> config.LocalConfig:
        return config.load(getattr(self.args, "config", None))

    @cached_property
    def paths(self) -> config.Paths:
        return config.paths(self.config, getattr(self.args, "repo", None))

    @cached_property
    def backends(self) -> Backends:
        create = self.create or (self.paths.is_default and not os.path.exists(self.paths.repo))
        made = Backends(self.paths.repo, self.paths.artifacts, create=create)
        phrase = self._setting("commit_passphrase_file", "SLUICE_COMMIT_PASSPHRASE_FILE")
        made.store.sign_commits(commit_signer(self.user_gnupg, phrase), trust.commit_key)
        return made

    def _setting(self, key: str, env: str) -> str | None:
        value = os.environ.get(env) or self.config.get(key)
        return os.path.abspath(os.path.expanduser(value)) if value else None

    @cached_property
    def user_gnupg(self) -> str | None:
        """The GnuPG home with the user's own key, that signs their commits
        and checks others'; None: gpg's default ($GNUPGHOME, else ~/.gnupg).
        Never sluice's home of target signing keys."""
        return self._setting("user_gnupg", "SLUICE_USER_GNUPGHOME")

    @cached_property
    def verifier(self):
        return commit_verifier(self.backends.store, self.user_gnupg)

    @cached_property
    def actor(self) -> Person:
        repo = self.paths.repo if os.path.exists(self.paths.repo) else None
        return identity.current(lambda key: git_config(key, repo), self.note)

    @cached_property
    def index(self) -> Index:
        return Index(self.backends.store)

    @cached_property
    def queue(self) -> Queue:
        queue = Queue(self.backends.store, self.actor, self.index)
        queue.listeners.append(self._mail)
        return queue

    def _mail(self, changes) -> None:
        """The queue's listener: [smtp] is read at the first write, so a bad
        table never stops a command that only reads, and never fails a write
        (its event is in); it is said instead."""
        try:
            mailer = self.mailer
        except ConfigError as exc:
            self.note(f"warning: no mail about this change: {exc}")
            return
        if mailer is not None:
            mailer(changes)

    @cached_property
    def mailer(self) -> Mailer | None:
        """Mail about builds, when the local config has [smtp] (see app.notify)."""
        smtp = SmtpSettings.load(self.config)
        if smtp is None:
            return None
        store = self.backends.store
        return Mailer(Outbox(os.path.join(store.index_dir(), "outbox")),
                      smtp_notifier(smtp.host, smtp.port, smtp.starttls, smtp.user, smtp.password_file),
                      smtp.sender, lambda: builds.load_policy(store.snapshot()), self.note)

    @cached_property
    def submitter(self) -> Submitter:
        b = self.backends
        return Submitter(b.store, b.artifacts, b.reader, self.index, self.actor)

    @cached_property
    def keys(self) -> Keys:
        return Keys(self.backends.store, keyring(self.paths.gnupg), self.actor, self.paths.repos, self.paths.gnupg)

    @cached_property
    def signing(self) -> Signing:
        return Signing(self.queue, self.index, self.keys, signer(self.paths.gnupg), self.backends.artifacts)

    def reviewer(self, lint: bool = True) -> Reviewer:
        """`sluice review`'s service (`lint=False`: `--no-lint`, rpmlint is not run)."""
        b = self.backends
        return Reviewer(self.index, b.store.snapshot, b.artifacts, contents_reader(), linter() if lint else None)

    @cached_property
    def releases(self) -> Releases:
        return self.releases_saying(self.note)

    def releases_saying(self, note) -> Releases:
        """The release service, its notes going to `note` (the cockpit's own
        list); advisories reaching stable are announced whoever pushes."""
        b = self.backends
        releases = Releases(self.queue, self.index, self.keys, b.publisher, b.artifacts, self.paths.repos, note)
        releases.announce = self.announce
        return releases

    def announcement(self, advisory: Advisory) -> str:
        return updateinfo.announcement_of(self.backends.store.snapshot(), advisory)

    def announce(self, advisory: Advisory) -> None:
        """An advisory just reached a stable repo: say so, and mail its
        announcement to `[smtp] announce` through the outbox (once: the
        outbox is keyed by the advisory id)."""
        self.note(f"advisory {advisory.id} is published in the stable repo of {advisory.target}")
        try:
            smtp, mailer = SmtpSettings.load(self.config), self.mailer
        except ConfigError as exc:
            self.note(f"warning: advisory {advisory.id} not announced by mail: {exc}")
            return
        if mailer is None or smtp is None or not smtp.announce:
            return
        mail = announcement_mail(advisory.id, advisory.target, advisory.type, advisory.severity, advisory.title,
                                 self.announcement(advisory), mailer.sender, smtp.announce)
        mailer.outbox.put(f"advisory-{advisory.id}", mail)
        mailer.flush()

    @cached_property
    def admin(self) -> Admin:
        return Admin(self.backends.store, self.actor)

    @cached_property
    def syncer(self) -> Syncer:
        b = self.backends
        return Syncer(b.store, b.transport, b.merger, self.actor, self.verifier)

    @cached_property
    def settings(self) -> builders.RunnerSettings:
        """The builders (the embedded local one when none are declared)."""
        where = self.config.path or "the local config"
        return builders.settings(self.config.values, where, machine_arch(), self.paths.work)

    @cached_property
    def repo_service(self) -> RepoService:
        return RepoService(self.paths.repos)

    def connect(self, builder: builders.Builder):
        return open_transport(builder.transport, builder.host, builder.port, builder.user, builder.key,
                              builder.known_hosts, builder.max_sessions)

    @cached_property
    def buildroots(self) -> Buildroots:
        b = self.backends
        return Buildroots(self.index, b.publisher, b.artifacts, self.paths.repos, self.note, b.repo_merger)

    def republish(self) -> None:
        """Bring this machine's buildroot repos up to the queue now (after a
        withdraw), when this machine has any; otherwise its runner does."""
        if os.path.isdir(self.paths.repos):
            snap = self.backends.store.snapshot()
            self.index.refresh(snap)
            self.buildroots.publish(snap)

    def unpush(self, target: str) -> None:
        """Take a build withdrawn from testing out of the testing repo now,
        when this user may publish and the key needs no passphrase here;
        otherwise say who must run `sluice publish`."""
        try:
            for line in self.releases.publish([target], lambda fingerprint, uid: None):
                self.note(line)
        except SluiceError as exc:
            self.note(f"the testing repo of {target} still lists it ({exc.message}); a signer or admin "
                      f"runs `sluice publish {target}` to take it out")

    @property
    def live_root(self) -> str:
        return f"{self.paths.artifacts}/live"

    @cached_property
    def runner_status(self) -> dict | None:
        """The live runner's status, read once per command."""
        return waits.read_status(waits.status_path(self.backends.store.index_dir()))

    def waiting(self, view) -> dict[str, str]:
        """Why each queued task of `view` waits (the live runner says best)."""
        return waits.explain(view, self.queue.view, lambda: self.settings, self.runner_status)

    def ready(self) -> None:
        """Make sure there is a queue to work on; the embedded default is
        created on first use, any other repo must be `sluice init`ed."""
        if self.backends.store.head() is not None:
            return
        if self.paths.is_default:
            self.admin.init(machine_arch())
            self.note(f"created a new queue in {self.paths.repo}; you ({self.actor.email}) are its admin")
            return
        raise UsageError(f"{self.paths.repo} holds no sluice queue",
                         f"run `sluice --repo {self.paths.repo} init`, or `sluice sync REMOTE` to join one")

    def refresh_index(self) -> Index:
        self.ready()
        self.index.refresh()
        for problem in self.index.problems:
            self.note(f"warning: {problem}")
        return self.index

    # ------------------------------------------------------------ output

    def out(self, line: str = "") -> None:
        print(line)

    def emit(self, doc: Any) -> None:
        """Print one JSON document (pre-rendered UTF-8 bytes pass through as they are)."""
        if isinstance(doc, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(doc)
            sys.stdout.buffer.write(b"\n")
            sys.stdout.buffer.flush()
            return
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")

    def note(self, line: str) -> None:
        print(f"sluice: {line}", file=sys.stderr)

    def confirm(self, question: str) -> None:
        """Destructive actions ask first (default No); `--yes` answers for scripts."""
        if self.yes:
            return
        if not sys.stdin.isatty():
            raise UsageError(f"{question} needs confirmation", "add --yes to confirm")
        answer = input(f"{question} [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise UsageError("not confirmed; nothing was changed")

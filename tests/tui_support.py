"""What the TUI tests share: the cockpit on a test clone, and a fixed clock."""
from __future__ import annotations

import asyncio
import html
import re
import calendar
import time

from app.index import Index
from backends.base import Person
from screens.app import SluiceApp
from screens.services import Services
from tests.conftest import ALICE

# 2024-01-02 00:00 UTC: a day after bench.fixture's first build, so ages are fixed.
FIXED_NOW = float(calendar.timegm(time.strptime("2024-01-02T00:00:00", "%Y-%m-%dT%H:%M:%S")))


def services(clone, who: Person = ALICE, **how) -> Services:
    """The cockpit's services on `clone`, wired as `Services.from_context`
    wires them: the signing keys and repos where the test's environment
    puts them (SLUICE_GNUPGHOME, $XDG_DATA_HOME/sluice/repos)."""
    from app import config
    from app.keys import Keys
    from app.queue import Queue
    from app.release import Releases
    from app.review import Reviewer
    from app.signing import Signing
    from backends.factory import contents_reader, keyring, linter, signer
    from backends.publisher import CreaterepoPublisher
    index = Index(clone.store)
    queue = Queue(clone.store, who, index)
    paths = config.paths(config.load(None), str(clone.path))
    keys = Keys(clone.store, keyring(paths.gnupg), who, paths.repos, paths.gnupg)

    def reviewer(lint: bool) -> Reviewer:
        return Reviewer(index, clone.store.snapshot, clone.artifacts, contents_reader(), linter() if lint else None)
    made = Services(clone.store, index, queue, who, str(clone.path), artifact_path=clone.artifacts.path,
                    signing=Signing(queue, index, keys, signer(paths.gnupg), clone.artifacts),
                    **{"reviewer": reviewer, **how})
    made.releases = Releases(queue, index, keys, CreaterepoPublisher(clone.artifacts), clone.artifacts, paths.repos,
                             made.published.append)
    return made


def cockpit(clone, who: Person = ALICE, *, poll_every: float | None = None, **how) -> SluiceApp:
    return SluiceApp(services(clone, who, **how), poll_every=poll_every)


async def settle(pilot, app: SluiceApp) -> None:
    """Wait until the workers are done and the screen has caught up."""
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def drive(app: SluiceApp, script, size: tuple[int, int] = (80, 24)) -> None:
    """Run `await script(pilot)` against the app in a headless terminal
    (plain asyncio: no async plugin for pytest needed)."""
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await settle(pilot, app)
            await script(pilot)
    asyncio.run(main())


def screen_text(app: SluiceApp) -> str:
    """What the terminal shows, as text (from the SVG screenshot, one line
    per row of the terminal)."""
    svg = app.export_screenshot()
    rows: dict[str, list[str]] = {}
    for y, text in re.findall(r'<text [^>]*?y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        rows.setdefault(y, []).append(html.unescape(text).replace("\xa0", " "))
    return "\n".join("".join(parts) for _, parts in sorted(rows.items(), key=lambda kv: float(kv[0])))

"""SVG snapshots of every screen at 80x24 and 160x48, on fixed data: the
benchmark fixture's seeded repo (same ids, times and commits on every run)
and a fixed clock, so ages do not move. After a deliberate change of looks,
review and accept with `./scripts/test tests/test_tui_snapshots.py --snapshot-update`."""
from __future__ import annotations

import pytest

from backends.gitstore import GitStateStore
from bench import fixture
from screens.app import SluiceApp
from tests.conftest import ALICE, Clone
from tests.tui_support import FIXED_NOW, services, settle

SIZES = [(80, 24), (160, 48)]
BUILD = None  # set from the fixture: the newest build that is built


@pytest.fixture
def seeded(tmp_path):
    path = tmp_path / "seeded.git"
    fixture.generate(str(path), 24, 5, quiet=True)
    from backends.artifacts import FileArtifactStore
    return Clone(path, GitStateStore.open(str(path)), FileArtifactStore(str(tmp_path / "artifacts")))


def app_on(clone) -> SluiceApp:
    return SluiceApp(services(clone, ALICE, now=lambda: FIXED_NOW), poll_every=None)


def _built_id(app) -> str:
    return next(r.id for r in app.rows if r.state == "built")


def _go(*steps):
    """run_before for snap_compare: settle, then each step (keys, or a
    callable taking the app), settling after each."""
    async def run(pilot):
        await settle(pilot, pilot.app)
        for step in steps:
            if callable(step):
                step(pilot.app)
            else:
                await pilot.press(*step)
            await settle(pilot, pilot.app)
    return run


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_queue(snap_compare, seeded, size):
    assert snap_compare(app_on(seeded), terminal_size=size, run_before=_go(("j", "j")))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_queue_filtered(snap_compare, seeded, size):
    assert snap_compare(app_on(seeded), terminal_size=size, run_before=_go(("slash", "b", "o", "b", "enter"),
                                                                            ("2",)))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_build(snap_compare, seeded, size):
    assert snap_compare(app_on(seeded), terminal_size=size,
                        run_before=_go(lambda app: app.open_build(_built_id(app))))


def test_build_confirm_withdraw(snap_compare, seeded):
    def confirm(app):
        from screens.dialogs import Confirm
        app.push_screen(Confirm("Withdraw vim-1.0-1.fc40 (1234567)?", "This is: sluice withdraw 1234567 -m abi"))
    assert snap_compare(app_on(seeded), terminal_size=(80, 24),
                        run_before=_go(lambda app: app.open_build(_built_id(app)), confirm))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_history(snap_compare, seeded, size):
    assert snap_compare(app_on(seeded), terminal_size=size, run_before=_go(("H",)))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_log_without_a_log(snap_compare, seeded, size):
    assert snap_compare(app_on(seeded), terminal_size=size,
                        run_before=_go(lambda app: app.open_build(_built_id(app)), ("l",)))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help(snap_compare, seeded, size):
    assert snap_compare(app_on(seeded), terminal_size=size,
                        run_before=_go(lambda app: app.open_build(_built_id(app)), ("question_mark",)))


def test_command_log(snap_compare, seeded):
    assert snap_compare(app_on(seeded), terminal_size=(80, 24), run_before=_go(("at",)))


def builders_app(clone, runner: bool) -> SluiceApp:
    """The builders screen over a status file written as a runner writes it
    (fixed builders, tasks and load; ages from the fixed clock)."""
    from app import waits
    from tests.test_tui_builders import SETTINGS, status_doc
    path = waits.status_path(clone.store.index_dir())
    if runner:
        waits.write_status(path, status_doc())
    return SluiceApp(services(clone, ALICE, now=lambda: FIXED_NOW, status_file=path, settings=lambda: SETTINGS),
                     poll_every=None)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_builders(snap_compare, seeded, size):
    assert snap_compare(builders_app(seeded, runner=True), terminal_size=size, run_before=_go(("b",)))


def test_builders_without_a_runner(snap_compare, seeded):
    assert snap_compare(builders_app(seeded, runner=False), terminal_size=(80, 24), run_before=_go(("b",)))


def sign_app(clone) -> SluiceApp:
    """The Sign screen over the fixture with three of its built builds
    approved (their ids and creation times are the fixture's)."""
    from app.actions import Action
    from app.model import Op
    made = services(clone, ALICE, now=lambda: FIXED_NOW)
    made.index.refresh()
    for row in [r for r in made.index.rows() if r["state"] == "built"][:3]:
        made.queue.perform(Action(Op.APPROVE, row["id"]))
    return SluiceApp(made, poll_every=None)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_sign(snap_compare, seeded, size):
    assert snap_compare(sign_app(seeded), terminal_size=size, run_before=_go(("S",), ("space",)))


def test_sign_passphrase(snap_compare, seeded):
    def ask(app):
        from app.keys import TargetKey
        from backends.base import KeyInfo
        from screens.dialogs import Passphrase
        key = KeyInfo("0123456789ABCDEF0123456789ABCDEF01234567", "sluice default signing key <alice@example.org>",
                      "2024-01-01T00:00:00Z", None, "ed25519")
        app.push_screen(Passphrase(TargetKey("default", key.fingerprint, key), {}))
    assert snap_compare(sign_app(seeded), terminal_size=(80, 24), run_before=_go(("S",), ask, tuple("secret")))


def fixed_repos(rows):
    """What `app.repos.overview` would say about the fixture, were its
    builds' RPMs signed and published: fixed packages on the fixture's ids."""
    from app.manifests import Package
    from app.repos import Move, TargetRepos
    key = "0123456789ABCDEF0123456789ABCDEF01234567"
    ids = {r.nvr: r.id for r in rows}

    def rpm(nvr, signed=True):
        return Package(f"{nvr}.x86_64.rpm", f"{nvr}.x86_64", "ab" * 32, key if signed else "", ids[nvr])
    buildroot = tuple(rpm(n, False) for n in ("inventor-1.0-1.fc40", "kdelibs-1.0-3.fc40", "vim-1.0-2.fc40"))
    testing = (rpm("kdelibs-1.0-3.fc40"), rpm("openssl-1.1-3.fc40"))
    moves = (Move(f"sluice push testing {ids['vim-1.0-2.fc40'][:7]}", (ids["vim-1.0-2.fc40"],),
                  (("testing", rpm("vim-1.0-2.fc40")),), ()),
             Move("sluice publish default", (), (), (("testing", rpm("openssl-1.1-3.fc40")),)))
    return [TargetRepos("default", key, buildroot, testing, (rpm("glibc-1.0-3.fc40"),),
                        (("testing", 4), ("stable", 2)), moves, ())]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_repos(snap_compare, seeded, size):
    app = app_on(seeded)
    app.services.repos = lambda: fixed_repos(app.rows)
    assert snap_compare(app, terminal_size=size, run_before=_go(("R",)))


def fixed_review(services, rows, build_id: str):
    """What `Reviewer.review` would say about one of the fixture's builds,
    had it RPMs: a soname gone with two builds requiring it, a long file
    list (folded), the changelog and rpmlint findings of each severity."""
    from app.review import AbiChange, PackageDiff, Review
    from backends.base import LintFinding
    view = services.queue.view(build_id)
    others = [r for r in rows if r.id != build_id]
    package = view.record.package
    previous = services.queue.view(next(r.id for r in others if r.nvr.rsplit("-", 2)[0] == package))
    files = tuple(f"/usr/share/{package}/doc/page{n:02}.html" for n in range(12))
    packages = (PackageDiff(f"{package}.x86_64", "changed", (1_310_720, 1_415_577), files, (),
                            ("libvim.so.2()(64bit)",), ("libvim.so.1()(64bit)",), ("libc.so.6(GLIBC_2.38)(64bit)",)),
                PackageDiff(f"{package}-devel.x86_64", "new", (0, 20_480)))
    users = [(r.id, r.nvr, f"{r.nvr.rsplit('-', 2)[0]}.x86_64") for r in others
             if r.nvr.rsplit("-", 2)[0] != package][:2]
    abi = (AbiChange("libvim.so.1()(64bit)", ("libvim.so.2()(64bit)",), tuple(users)),)
    lint = (LintFinding(f"{package}.x86_64", "E", "invalid-soname", "/usr/lib64/libvim.so.2 libvim.so"),
            LintFinding(f"{package}.x86_64", "W", "no-manual-page-for-binary", "vim"),
            LintFinding(f"{package}-devel.x86_64", "W", "no-documentation", ""),
            LintFinding(f"{package}.x86_64", "I", "polkit-cant-acl-file", "not applicable"))
    changelog = ("* Bob Packager <bob@example.org> - 2.0-1\n- new soname: libvim.so.2\n- drop the old plugin API",)
    return Review(view, previous, packages, changelog, abi, lint)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_review(snap_compare, seeded, size):
    app = app_on(seeded)
    app.services.review = lambda build_id, lint=True: fixed_review(app.services, app.rows, build_id)
    assert snap_compare(app, terminal_size=size, run_before=_go(lambda app: app.open_build(_built_id(app)), ("v",)))

"""Mail about builds through a real SMTP server (aiosmtpd on 127.0.0.1).

The runner and the CLI write the events; whoever writes one mails it. The
tests read what the server received: recipients, headers, body; then stop
the server to prove the outbox keeps and later sends what could not go, once.
"""
from __future__ import annotations

import email
import socket
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import ALICE, BOB, CAROL
from tests.test_runner import run_once, show, submit

REFUSED_SENDER = "nobody@refused.example"


class Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[list[str], email.message.Message]] = []
        self.refuse: set[str] = set()  # recipients this server does not know

    async def handle_MAIL(self, server, session, envelope, address, options):
        if address == REFUSED_SENDER:
            return "553 5.7.1 sender not allowed here"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.mails.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """aiosmtpd on one port, stopped and started again like a real server."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox, self.port, self.controller = inbox, free_port(), None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp():
    inbox = Inbox()
    server = Server(inbox)
    server.start()
    yield inbox, server
    server.stop()


@pytest.fixture
def mailing(sluice, isolated, smtp):
    inbox, controller = smtp
    config = isolated / ".config/sluice/config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'[smtp]\nhost = "127.0.0.1"\nport = {controller.port}\nsender = "sluice@example.org"\n')
    assert sluice("init").code == 0
    assert sluice("policy", "grant", "owner", BOB.email).code == 0
    assert sluice("policy", "grant", "watcher", CAROL.email, "--package", "fail*").code == 0
    return sluice, inbox, controller


def test_a_failed_build_mails_owner_watchers_and_admins_with_headers_and_next_step(mailing, make_srpm):
    sluice, inbox, _ = mailing
    build = submit(sluice, make_srpm("failing", "1.0", "1", build="exit 1"))
    run_once(sluice)
    assert show(sluice, build)["state"] == "failed"
    assert len(inbox.mails) == 1
    to, mail = inbox.mails[0]
    assert sorted(to) == sorted([BOB.email, CAROL.email, ALICE.email])
    assert mail["Subject"] == f"[sluice {build[:7]}] failing-1.0-1 for default: failed"
    assert mail["X-Sluice-Build"] == build and mail["X-Sluice-State"] == "failed"
    assert mail["X-Sluice-Target"] == "default" and mail["X-Sluice-Package"] == "failing"
    assert mail["X-Sluice-Owner"] == BOB.email and mail["From"] == "sluice@example.org"
    body = mail.get_payload(decode=True).decode()
    for words in ("failing-1.0-1", "duration:", f"sluice log {build[:7]} --arch", "next:", "resubmit"):
        assert words in body, words


def test_approve_and_withdraw_mail_once_each_and_a_hold_is_no_news(mailing, make_srpm):
    sluice, inbox, _ = mailing
    build = submit(sluice, make_srpm("quiet", "1.0", "1"))
    run_once(sluice)
    assert inbox.mails == []  # built is not news for mail; the owner reviews it
    assert sluice("approve", build[:7], user=BOB).code == 0
    assert sluice("hold", build[:7], "-m", "wait", user=BOB).code == 0
    assert sluice("withdraw", build[:7], "-m", "broken ABI", "--yes", user=BOB).code == 0
    states = [m["X-Sluice-State"] for _, m in inbox.mails]
    assert states == ["needsign", "withdrawn"]
    assert [to for to, _ in inbox.mails][0] == [BOB.email, ALICE.email]  # CAROL watches fail* only
    assert "sluice sign" in inbox.mails[0][1].get_payload(decode=True).decode()
    assert "broken ABI" in inbox.mails[1][1].get_payload(decode=True).decode()


def test_mail_waits_in_the_outbox_while_the_server_is_down_and_goes_once_when_it_is_back(mailing, make_srpm):
    sluice, inbox, controller = mailing
    first = submit(sluice, make_srpm("outboxed", "1.0", "1"))
    second = submit(sluice, make_srpm("outboxed", "1.0", "2"))
    run_once(sluice)
    controller.stop()
    approved = sluice("approve", first[:7], user=BOB)
    assert approved.code == 0, approved.err  # the event is written whatever the mail does
    assert "mail not sent, 1 waiting" in approved.err
    assert show(sluice, first)["state"] == "needsign"
    controller.start()
    assert sluice("approve", second[:7], user=BOB).code == 0
    ids = [m["Message-ID"] for _, m in inbox.mails]
    assert sorted(m["X-Sluice-Build"] for _, m in inbox.mails) == sorted([first, second])
    assert len(set(ids)) == 2
    assert sluice("hold", second[:7], "-m", "x", user=BOB).code == 0  # a write that flushes: nothing again
    assert len(inbox.mails) == 2


def test_a_refused_sender_is_said_with_what_to_change_and_the_mail_is_kept(mailing, make_srpm, isolated):
    sluice, inbox, controller = mailing
    config = isolated / ".config/sluice/config.toml"
    good = config.read_text()
    config.write_text(good.replace("sluice@example.org", REFUSED_SENDER))
    build = submit(sluice, make_srpm("refused", "1.0", "1"))
    run_once(sluice)
    approved = sluice("approve", build[:7], user=BOB)
    assert approved.code == 0
    assert "refused the sender" in approved.err and "[smtp]" in approved.err
    assert inbox.mails == []
    config.write_text(good)
    assert sluice("hold", build[:7], "-m", "x", user=BOB).code == 0  # sends what waits: the old mail as written
    assert [m["X-Sluice-State"] for _, m in inbox.mails] == ["needsign"]


def test_a_mail_refused_for_good_is_kept_aside_and_the_ones_behind_it_go(mailing, make_srpm):
    sluice, inbox, _ = mailing
    first = submit(sluice, make_srpm("unknown", "1.0", "1"))
    second = submit(sluice, make_srpm("unknown", "1.0", "2"))
    run_once(sluice)
    inbox.refuse = {BOB.email, ALICE.email}  # every recipient of the first mail
    approved = sluice("approve", first[:7], user=BOB)
    assert approved.code == 0 and "refused for good" in approved.err and "550" not in approved.out
    inbox.refuse = set()
    assert sluice("approve", second[:7], user=BOB).code == 0
    assert [m["X-Sluice-Build"] for _, m in inbox.mails] == [second]  # not stuck behind the first
    outbox = Path(sluice.repo) / "sluice" / "outbox"
    assert len(list(outbox.glob("*.refused"))) == 1 and not list(outbox.glob("*.json"))


@pytest.mark.parametrize("table, words", [
    ('[smtp]\nhost = "h"\n', "sender is required"),
    ('[smtp]\nhost = "h"\nsender = "s@x"\npassword = "hunter2"\n', "password_file"),
    ('[smtp]\nhost = "h"\nsender = "s@x"\nport = "25"\n', "port must be a int"),
    ('[smtp]\nhost = "h"\nsender = "s@x"\nuser = "u"\n', "user needs password_file"),
])
def test_a_bad_smtp_table_is_said_at_the_first_write_and_never_stops_a_command(sluice, isolated, make_srpm,
                                                                                table, words):
    """A typo in [smtp] must not lock a maintainer out of the queue: reading
    commands never parse it, and a write lands (its event is in) and says
    what is wrong with the table and where."""
    assert sluice("init").code == 0
    assert sluice("policy", "grant", "owner", BOB.email).code == 0
    build = submit(sluice, make_srpm("typo", "1.0", "1"))
    config = isolated / ".config/sluice/config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(table)
    assert sluice("show", build[:7]).code == 0
    cancelled = sluice("cancel", build[:7], "--yes", user=BOB)
    assert cancelled.code == 0, cancelled.err
    assert "no mail about this change" in cancelled.err and words in cancelled.err
    assert str(config) in cancelled.err
    assert show(sluice, build)["state"] == "cancelled"

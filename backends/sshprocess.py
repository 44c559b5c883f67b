"""A build running on an SSH builder host: its channel and process group.

Split from `transport_ssh` for size; the transport creates these. A build
holds one of the connection's SSH sessions from its start until its exit
status arrives, it is killed, or the connection drops (`_end`).
"""
from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Sequence

import paramiko

if TYPE_CHECKING:
    from backends.transport_ssh import SshTransport


class SshProcess:
    """A build on a builder host; see `backends.base.Process`. `pgid` is its
    process group on the host."""

    def __init__(self, owner: "SshTransport", channel: paramiko.Channel, pgid: int,
                 pending: bytes, argv: Sequence[str]) -> None:
        self.owner, self.channel, self.pgid, self.argv = owner, channel, pgid, tuple(argv)
        self._pending = pending
        self._session = True  # holds one of the owner's sessions until it ends

    def _end(self) -> None:
        if self._session:
            self._session = False
            self.owner._sessions.release()

    def read(self, timeout: float) -> bytes | None:
        if self._pending:
            chunk, self._pending = self._pending, b""
            return chunk
        self.channel.settimeout(max(timeout, 0.0))
        try:
            chunk = self.channel.recv(65536)
        except socket.timeout:
            return None
        if not chunk and dropped(self.channel):
            self._end()
            raise self.owner._lost(self.argv)
        return chunk

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status; -1 when a signal ended it (paramiko does not report which)."""
        if not self.channel.status_event.wait(timeout):
            return None
        self._end()
        if dropped(self.channel):
            raise self.owner._lost(self.argv)
        return self.channel.exit_status

    def kill(self) -> None:
        """End the group over a new channel (reconnecting if the old one died)."""
        try:
            self.owner.end_group(self.pgid)
        finally:
            self.channel.close()
            self._end()


def dropped(channel: paramiko.Channel) -> bool:
    """Closed without an exit status or signal because the connection died."""
    transport = channel.get_transport()
    return channel.exit_status == -1 and (transport is None or not transport.is_active())

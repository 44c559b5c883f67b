"""Carrying a reverse-forwarded SSH connection to a port on this machine.

sshd on a builder host listens on its 127.0.0.1 for the runner; each
connection arrives here as a paramiko channel and is pumped both ways to the
local repo server. The handler is called on paramiko's transport thread,
which must never block, so each connection gets a thread of its own.
"""
from __future__ import annotations

import selectors
import socket
import threading
from typing import Callable

import paramiko


def handler(local_port: int) -> Callable[[paramiko.Channel, tuple, tuple], None]:
    def accept(channel: paramiko.Channel, origin: tuple, server: tuple) -> None:
        threading.Thread(target=pump, args=(channel, local_port), daemon=True,
                         name=f"sluice-forward-{local_port}").start()
    return accept


def pump(channel: paramiko.Channel, local_port: int) -> None:
    """Carry one forwarded connection both ways until both sides are done."""
    try:
        sock = socket.create_connection(("127.0.0.1", local_port), timeout=5)
    except OSError:
        channel.close()
        return
    sock.settimeout(None)
    open_ends = {sock, channel}
    try:
        while open_ends and channel.get_transport() and channel.get_transport().is_active():
            for end in readable(list(open_ends), 1.0):
                data = end.recv(65536)
                other = channel if end is sock else sock
                if data:
                    other.sendall(data)
                    continue
                open_ends.discard(end)
                if other is channel:
                    channel.shutdown_write()
                else:
                    sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        sock.close()
        channel.close()


def readable(ends: list, timeout: float) -> list:
    """The channels and sockets among `ends` with data or EOF waiting (epoll:
    a busy runner may hold more descriptors than select() takes)."""
    with selectors.DefaultSelector() as selector:
        for end in ends:
            selector.register(end, selectors.EVENT_READ)
        return [key.fileobj for key, _ in selector.select(timeout)]

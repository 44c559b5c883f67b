"""A tiny read-only HTTP server for repo directories.

Remote builders reach the private buildroot repo through an SSH reverse port
forward to this server, so it listens on 127.0.0.1 only and needs nothing but
the standard library. It serves GET and HEAD of files under `root` and nothing
else: no directory listings, no hidden files (a repo's `.lock`, `.published`
and createrepo_c's half-written `.repodata/` are sluice's own), and no path
that resolves outside `root`, even through a symlink.
"""
from __future__ import annotations

import os
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit


class _Handler(SimpleHTTPRequestHandler):
    timeout = 60  # a stalled client must not hold a thread forever
    stage: str | None = None  # serve only <target>/<stage>/… when set

    def send_head(self):  # noqa: ANN201 - the stdlib's own signature
        if not self._allowed():
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        return super().send_head()

    def _allowed(self) -> bool:
        """Refuse hidden names and anything that resolves outside the root.
        The stdlib already drops `..` after unquoting; this also covers
        symlinks and keeps sluice's own dotfiles private."""
        words = unquote(urlsplit(self.path).path).split("/")
        if any(word.startswith(".") for word in words if word):
            return False
        if self.stage is not None and [w for w in words if w][1:2] != [self.stage]:
            return False
        root = os.path.realpath(self.directory)
        target = os.path.realpath(self.translate_path(self.path))
        return target == root or target.startswith(root + os.sep)

    def list_directory(self, path):  # noqa: ANN001,ANN201 - the stdlib's own signature
        """dnf never lists directories; a listing would only show what is there."""
        self.send_error(HTTPStatus.NOT_FOUND, "File not found")
        return None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: request lines on stderr would break into the TUI and the CLI."""


class RepoServer:
    """Serves `root` on 127.0.0.1 on a free port, from a background thread;
    with `stage`, only `<target>/<stage>/` folders (builders get the
    buildroot repos and nothing else)."""

    def __init__(self, root: str, stage: str | None = None) -> None:
        self.root = root
        self.stage = stage
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int | None:
        return self._server.server_address[1] if self._server else None

    def start(self) -> int:
        """Listen and serve; returns the port. Starting twice keeps the port."""
        if self._server is None:
            handler = type("_StageHandler", (_Handler,), {"stage": self.stage})
            server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=self.root))
            server.daemon_threads = True
            # a short poll interval makes stop() quick; the idle cost is negligible
            self._thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                                            name="sluice-reposerver", daemon=True)
            self._server = server
            self._thread.start()
        return self._server.server_address[1]

    def stop(self) -> None:
        """Stop serving and free the port (no-op when not started)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def url(self, path: str = "") -> str:
        """The URL of `path` (relative to root) on this machine."""
        if self._server is None:
            raise RuntimeError("RepoServer.url() before start()")
        return f"http://127.0.0.1:{self.port}/{quote(path.lstrip('/'))}"

    def __enter__(self) -> "RepoServer":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

"""The content-addressed artifact store: put copies, adopt links."""
from __future__ import annotations

import hashlib
import os
import stat

from backends.artifacts import FileArtifactStore


def test_adopt_links_a_finished_file_under_its_digest_without_copying(tmp_path):
    store = FileArtifactStore(str(tmp_path / "store"))
    live = tmp_path / "store" / "live" / "x.log"
    live.parent.mkdir(parents=True)
    live.write_bytes(b"build output\n" * 1000)
    digest = hashlib.sha256(live.read_bytes()).hexdigest()

    stored = store.adopt(str(live))

    assert stored.sha256 == digest and stored.size == 13000
    final = store.path(digest)
    assert os.path.samefile(final, live), "a link, not a copy"
    assert stat.S_IMODE(os.stat(final).st_mode) == 0o444
    live.unlink()  # the caller's name goes; the stored one stays
    assert hashlib.sha256(open(final, "rb").read()).hexdigest() == digest


def test_adopting_bytes_already_stored_keeps_the_stored_file(tmp_path):
    store = FileArtifactStore(str(tmp_path / "store"))
    first, second = tmp_path / "a", tmp_path / "store" / "b"
    first.write_bytes(b"same")
    second.parent.mkdir(parents=True, exist_ok=True)
    second.write_bytes(b"same")
    kept = store.put(str(first))
    inode = os.stat(store.path(kept.sha256)).st_ino

    again = store.adopt(str(second), kept.sha256)

    assert again == kept and os.stat(store.path(kept.sha256)).st_ino == inode
    assert not os.path.samefile(store.path(kept.sha256), second)

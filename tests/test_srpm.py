"""Reading SRPM headers with the real rpm bindings, and refusing broken ones."""
from __future__ import annotations

import hashlib
import struct
import subprocess

import pytest

from backends.base import BadInput
from backends.srpm import RpmReader


def test_reads_name_version_buildrequires_and_digest(make_srpm):
    path = make_srpm("inventor", "2.1.5", "12", "BuildRequires: gcc >= 4\nBuildRequires: libcdio-devel\n"
                                                "ExcludeArch: s390x")
    package = RpmReader().read_source(str(path))
    assert (package.name, package.version, package.release, package.epoch) == ("inventor", "2.1.5", "12", None)
    assert package.nvr == "inventor-2.1.5-12"
    assert package.buildrequires == ("gcc >= 4", "libcdio-devel")
    assert package.excludearch == ("s390x",)
    assert package.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert package.size == path.stat().st_size


def test_epoch_is_read(make_srpm):
    assert RpmReader().read_source(str(make_srpm("ep", extra="Epoch: 3"))).epoch == 3


def test_binary_rpm_is_refused(make_srpm, tmp_path):
    spec = next(make_srpm("binpkg").parent.parent.glob("binpkg.spec"))
    subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {tmp_path}", str(spec)], check=True,
                   capture_output=True)
    binary = next(tmp_path.glob("RPMS/*/*.rpm"))
    with pytest.raises(BadInput, match="binary RPM"):
        RpmReader().read_source(str(binary))


def test_text_file_is_refused(tmp_path):
    fake = tmp_path / "notes.src.rpm"
    fake.write_text("this is not an rpm\n")
    with pytest.raises(BadInput, match="not a readable RPM"):
        RpmReader().read_source(str(fake))


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(BadInput, match="cannot read"):
        RpmReader().read_source(str(tmp_path / "nope.src.rpm"))


@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_truncated_srpm_is_refused(make_srpm, tmp_path, cut):
    data = make_srpm().read_bytes()
    short = tmp_path / "short.src.rpm"
    short.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(BadInput, match="truncated or corrupted|not a readable"):
        RpmReader().read_source(str(short))


def main_header_span(data: bytes) -> tuple[int, int]:
    """Where the main header lies: after the 96-byte lead and the signature
    header (whose reserved padding no digest covers, so it is skipped)."""
    entries, size = struct.unpack(">II", data[96 + 8:96 + 16])
    start = 96 + 16 + 16 * entries + size
    start += -start % 8
    entries, size = struct.unpack(">II", data[start + 8:start + 16])
    return start, start + 16 + 16 * entries + size


@pytest.mark.parametrize("where", ["payload", "header"])
def test_corrupted_srpm_is_refused(make_srpm, tmp_path, where):
    data = bytearray(make_srpm().read_bytes())
    start, end = main_header_span(data)
    spot = len(data) - 10 if where == "payload" else (start + end) // 2
    data[spot] ^= 0xFF
    bad = tmp_path / "bad.src.rpm"
    bad.write_bytes(bytes(data))
    with pytest.raises(BadInput):
        RpmReader().read_source(str(bad))

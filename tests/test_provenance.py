"""Reading which repo each buildroot package came from out of root.log."""
from __future__ import annotations

from app.provenance import installed, summary

DNF4 = """\
DEBUG util.py:446:  Dependencies resolved.
DEBUG util.py:446:  ================================================================================
DEBUG util.py:446:   Package                  Arch    Version                 Repository     Size
DEBUG util.py:446:  ================================================================================
DEBUG util.py:446:  Installing:
DEBUG util.py:446:   bash                     x86_64  5.2.15-5.fc39           fedora        1.8 M
DEBUG util.py:446:   libfoo-devel             x86_64  2.0-1.fc39              http_127_0_0_1_40123_el_buildroot_  12 k
DEBUG util.py:446:  Installing dependencies:
DEBUG util.py:446:   a-package-name-far-too-long-for-its-column
DEBUG util.py:446:                            noarch  1:3.1-2.fc39            updates        40 k
DEBUG util.py:446:   extlib                   noarch  1.0-1                   http_mirror_epel_9  8 k
DEBUG util.py:446:
DEBUG util.py:446:  Transaction Summary
DEBUG util.py:446:  ================================================================================
DEBUG util.py:446:  Install  4 Packages
"""

DNF5 = """\
DEBUG util.py:461:  Package                Arch   Version                Repository      Size
DEBUG util.py:461:  Installing:
DEBUG util.py:461:   bash                  x86_64 5.2.26-3.fc40          fedora       8.1 MiB
DEBUG util.py:461:  Installing dependencies:
DEBUG util.py:461:   extlib                noarch 1.0-1                  sluice_br    2.0 KiB
DEBUG util.py:461:
DEBUG util.py:461:  Transaction Summary:
DEBUG util.py:461:   Installing:         2 packages
"""

HELPER = """\
sluice: rpmbuild builder: this build is NOT isolated (no mock chroot); BuildRequires come from a private rpmdb
sluice: BuildRequires libfoo -> libfoo-2.0-1.x86_64 from file:///srv/repos/el/buildroot/
sluice: BuildRequires extlib -> extlib-1.0-1.noarch from file:///srv/repos/el/buildroot/
sluice: BuildRequires /usr/bin/ext -> extlib-1.0-1.noarch from file:///srv/repos/el/buildroot/
"""

ORIGINS = {"libfoo-devel-2.0-1.fc39.x86_64": "buildroot", "extlib-1.0-1.noarch": "epel",
           "libfoo-2.0-1.x86_64": "buildroot"}


def test_mock_root_log_with_dnf4_table_credits_sluice_repos_by_nevra_and_the_rest_by_repo_id():
    assert installed(DNF4, ORIGINS) == [
        ["bash-5.2.15-5.fc39.x86_64", "fedora"],
        ["libfoo-devel-2.0-1.fc39.x86_64", "buildroot"],
        ["a-package-name-far-too-long-for-its-column-3.1-2.fc39.noarch", "updates"],
        ["extlib-1.0-1.noarch", "epel"]]


def test_mock_root_log_with_dnf5_table():
    assert installed(DNF5, ORIGINS) == [["bash-5.2.26-3.fc40.x86_64", "fedora"], ["extlib-1.0-1.noarch", "epel"]]


def test_sluice_rpmbuild_helper_lines_each_package_once():
    assert installed(HELPER, ORIGINS) == [["libfoo-2.0-1.x86_64", "buildroot"], ["extlib-1.0-1.noarch", "epel"]]
    assert installed("no table here\nInstall 3 Packages\n", ORIGINS) == []


def test_summary_lists_small_repos_and_counts_large_ones():
    many = [[f"p{n}-1-1.x86_64", "fedora"] for n in range(30)] + [["extlib-1.0-1.noarch", "epel"]]
    lines = summary(many)
    assert lines[0].startswith("fedora: 30 packages (p0-1-1.x86_64, ")
    assert lines[1] == "epel: extlib-1.0-1.noarch"

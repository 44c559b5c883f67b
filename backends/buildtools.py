"""The build tools a builder host runs: `mock`, or plain `rpmbuild` where mock
is not available.

A tool only turns a `BuildSpec` into an argv list; the transport runs it (and
quotes it for SSH), streams its merged output as the live log and fetches
`spec.resultdir`; the exit status decides success. Nothing here joins or
quotes arguments, so a package-controlled path is always one argv element.

Both tools leave the same files in the result directory: the binary RPMs, an
SRPM, `build.log`, `root.log` and `state.log`. A missing BuildRequires makes
both exit 30 (mock's "package manager error"); the rpmbuild helper also prints
`sluice: missing BuildRequires: NAME, ... (not in any of: URL, ...)`.
"""
from __future__ import annotations

from importlib import resources

from backends.base import BadInput, BuildSpec, BuildTool

HELPER = "rpmbuild_helper.py"


def helper_source() -> str:
    """The rpmbuild helper's text, read from the installed package."""
    return resources.files("backends.remote").joinpath(HELPER).read_text(encoding="utf-8")


class MockTool:
    """`mock --rebuild` in the chroot that the mock config (`-r`) names.

    The config selects the architecture (sluice keeps one mock config per
    target arch), so no `--arch` (a kernel personality) or `--forcearch`
    (qemu emulation) is passed: both change what mock does, not just a label.
    The buildroot repos go in with `--addrepo`, in priority order."""

    name = "mock"

    def command(self, spec: BuildSpec) -> list[str]:
        if not spec.config:
            raise BadInput(f"no mock config for {spec.arch}",
                           f"set one for the target with `--mock-config {spec.arch}=CONFIG`")
        argv = ["mock", "-r", spec.config, "--resultdir", spec.resultdir]
        for url in spec.repos:
            argv += ["--addrepo", url]
        # "--" ends the options, so an SRPM path starting with "-" stays a path
        return argv + ["--rebuild", "--", spec.srpm]

    def probe(self) -> list[str]:
        return ["mock", "--version"]


class RpmbuildTool:
    """`rpmbuild --rebuild` on the host itself, for hosts without mock.

    The helper travels inside the command (`python3 -c SOURCE`), so the host
    needs only python3 (3.6 or later), rpm and rpmbuild. The build is not
    isolated; the helper says so in the first line of the log."""

    name = "rpmbuild"

    def command(self, spec: BuildSpec) -> list[str]:
        argv = ["python3", "-c", helper_source(), "--srpm", spec.srpm,
                "--resultdir", spec.resultdir, "--arch", spec.arch]
        for url in spec.repos:
            argv += ["--repo", url]
        return argv

    def probe(self) -> list[str]:
        return ["sh", "-c", "command -v rpmbuild && command -v rpm && "
                "python3 -c 'import sys; sys.exit(sys.version_info < (3, 6))'"]


TOOLS: dict[str, type] = {MockTool.name: MockTool, RpmbuildTool.name: RpmbuildTool}


def tool_for(name: str) -> BuildTool:
    """The build tool a builder's config names."""
    try:
        return TOOLS[name]()
    except KeyError:
        raise BadInput(f"unknown build tool {name!r}",
                       f"set the builder's tool to one of: {', '.join(sorted(TOOLS))}") from None

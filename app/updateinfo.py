"""What a published advisory looks like: updateinfo.xml for dnf, and the announcement for people.

updateinfo.xml is the format createrepo_c's `UpdateInfo` writes and
`dnf updateinfo`/`dnf upgrade --advisory` read: one `<update>` per advisory
with its id, type, severity, dates, references and a `<pkglist>` naming each
package by NEVRA, file name and sha256. It is derived from the state tree
alone (the advisory's `created` is its issued date), so the same queue always
writes the same bytes and a publish with nothing new rewrites nothing.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

from app import builds, tasks
from app.advisories import Advisory
from app.manifests import Package, nevra
from backends.base import Snapshot

FROM = "sluice"


def split(package: Package) -> tuple[str, str, str, str, str]:
    """(name, epoch, version, release, arch) of a package in a repo."""
    nvr, arch = package.name[:-len(".rpm")].rsplit(".", 1)
    name, version, release = nvr.rsplit("-", 2)
    evr = package.nevra[len(name) + 1:]
    epoch = evr.split(":", 1)[0] if ":" in evr.split("-", 1)[0] else "0"
    return name, epoch, version, release, arch


def render(advisories: Sequence[Advisory], packages: Iterable[Package], sources: Mapping[str, str]) -> bytes:
    """updateinfo.xml of `advisories`, each listing the `packages` of its
    builds; `sources` maps a build id to its source RPM's file name."""
    by_build: dict[str, list[Package]] = {}
    for package in packages:
        by_build.setdefault(package.build, []).append(package)
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<updates>\n']
    for adv in advisories:
        out.append(f'  <update from="{FROM}" status="stable" type={quoteattr(adv.type)} version="2.0">\n'
                   f"    <id>{escape(adv.id)}</id>\n    <title>{escape(adv.title)}</title>\n"
                   f'    <issued date="{adv.issued}"/>\n    <updated date="{adv.issued}"/>\n'
                   f"    <rights/>\n    <release>{escape(adv.target)}</release>\n")
        if adv.severity:
            out.append(f"    <severity>{adv.severity.capitalize()}</severity>\n")
        out.append(f"    <summary>{escape(adv.title)}</summary>\n"
                   f"    <description>{escape(adv.description)}</description>\n    <references>\n")
        for ref in adv.references:
            out.append(f"      <reference href={quoteattr(ref.href)} id={quoteattr(ref.id)} "
                       f"type={quoteattr(ref.type)} title={quoteattr(ref.title)}/>\n")
        out.append(f'    </references>\n    <pkglist>\n      <collection short={quoteattr(adv.target)}>\n'
                   f"        <name>{escape(adv.target)}</name>\n")
        for package in sorted(p for build in adv.builds for p in by_build.get(build, ())):
            name, epoch, version, release, arch = split(package)
            out.append(f"        <package name={quoteattr(name)} version={quoteattr(version)} "
                       f"release={quoteattr(release)} epoch={quoteattr(epoch)} arch={quoteattr(arch)} "
                       f"src={quoteattr(sources.get(package.build, ''))}>\n"
                       f"          <filename>{escape(package.name)}</filename>\n"
                       f'          <sum type="sha256">{package.sha256}</sum>\n        </package>\n')
        out.append("      </collection>\n    </pkglist>\n  </update>\n")
    out.append("</updates>\n")
    return "".join(out).encode()


def announcement(adv: Advisory, packages: Iterable[Package], nvrs: Mapping[str, str]) -> str:
    """The text an announce list gets: what, how bad, which packages
    (NEVRA and sha256, to check a mirror against), why, and how to update.
    `nvrs` maps a build id to its NVR."""
    kind = {"security": "Security update", "bugfix": "Bug fix update", "enhancement": "Enhancement update"}[adv.type]
    lines = [f"{adv.id}: {adv.title}", "=" * min(72, len(adv.id) + 2 + len(adv.title)), "",
             f"Advisory:   {adv.id}", f"Type:       {adv.type} ({kind})"]
    if adv.severity:
        lines.append(f"Severity:   {adv.severity}")
    lines += [f"Target:     {adv.target}", f"Issued:     {adv.issued} UTC", f"Author:     {adv.actor}",
              "Builds:     " + ", ".join(f"{nvrs.get(b, b[:7])} ({b[:7]})" for b in adv.builds)]
    refs = adv.references
    if refs:
        lines += ["", "References:"]
        lines += [f"  {r.id or r.title}  {r.href}" if r.type == "cve" else f"  {r.href}" for r in refs]
    mine = sorted(p for p in packages if p.build in adv.builds)
    lines += ["", "Packages (NEVRA, sha256):"]
    lines += [f"  {p.nevra}\n    {p.sha256}  {p.name}" for p in mine] or ["  (none published yet)"]
    if adv.description.strip():
        lines += ["", "Description:", *("  " + line if line else "" for line in adv.description.splitlines())]
    lines += ["", "How to update:", f"  dnf upgrade --advisory {adv.id}",
              "  (dnf updateinfo info " + adv.id + " shows this advisory as dnf sees it)"]
    return "\n".join(lines) + "\n"


def announcement_of(snap: Snapshot, adv: Advisory) -> str:
    """The announcement of `adv` as the queue in `snap` has it: the packages
    are its builds' signed RPMs (what the stable repo gets)."""
    views = [builds.load_build(snap, b) for b in adv.builds]
    packages = [Package(a.name, nevra(a.name, v.record.epoch), a.sha256, a.signed_by, v.id)
                for v in views for a in tasks.rpms(v, signed=True)]
    return announcement(adv, packages, {v.id: v.record.nvr for v in views})

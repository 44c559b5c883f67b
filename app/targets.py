"""Build targets: `config/targets/<name>.toml` in the state tree.

A target says which arches its packages build for, the mock config per arch,
the dist tag, the external repos that feed its buildroot (in priority order,
first match wins), and whether approving a newer build supersedes older ones.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from app import import_policy, tomlfile
from app.errors import BadInput, ConfigError, UsageError
from app.model import ARCH, FINGERPRINT, NAME
from backends.base import LOCAL, SourcePackage

TARGETS_DIR = "config/targets"
_KEYS = {"arches", "mock_config", "dist_tag", "external_repo", "supersede", "signing_key", "retired_keys",
         "trusted_keys", "import"}
_URL = re.compile(r"(https?|file)://\S+")
DEFAULT_PRIORITY = 99


def target_path(name: str) -> str:
    return f"{TARGETS_DIR}/{name}.toml"


@dataclass(frozen=True)
class ExternalRepo:
    name: str
    url: str
    priority: int = DEFAULT_PRIORITY  # dnf's convention: lower comes first; ties keep the file's order


@dataclass(frozen=True)
class Target:
    name: str
    arches: tuple[str, ...]
    mock_config: Mapping[str, str] = field(default_factory=dict)
    dist_tag: str = ""
    external_repos: tuple[ExternalRepo, ...] = ()
    supersede: bool = True
    signing_key: str = ""  # the fingerprint of the key that signs this target's RPMs
    retired_keys: tuple[str, ...] = ()  # keys it signed with before, oldest first: never to sign again
    trusted_keys: tuple[str, ...] = ()  # upstream import: keys whose signatures it accepts (config/keys/<fpr>.asc)
    import_rules: Mapping[str, str] = field(default_factory=dict)  # upstream import: package glob -> rule

    def __post_init__(self) -> None:
        check_name(self.name, "target")
        for key in (self.signing_key, *self.retired_keys):
            if key and not FINGERPRINT.fullmatch(key):
                raise UsageError(f"signing key {key!r} is not a key fingerprint",
                                 "give the full fingerprint in upper-case hex, as `sluice key list` shows it")
        if self.signing_key in self.retired_keys or len(set(self.retired_keys)) != len(self.retired_keys):
            raise UsageError(f"target {self.name} lists a retired key twice, or as its signing_key",
                             "a retired key never signs again: rotate to a new one with `sluice key rotate`")
        for fingerprint in self.trusted_keys:
            if not isinstance(fingerprint, str) or not FINGERPRINT.fullmatch(fingerprint):
                raise UsageError(f"trusted_keys: {fingerprint!r} is not a key fingerprint",
                                 "add keys with `sluice target trust TARGET KEYFILE`")
        import_policy.check(self.import_rules)
        if not self.arches:
            raise UsageError(f"target {self.name} needs at least one arch", "pass --arch ARCH")
        for arch in (*self.arches, *self.mock_config):
            if not ARCH.fullmatch(arch) or arch in ("src", "noarch"):
                raise UsageError(f"{arch!r} is not a build arch", "use arches like x86_64 or aarch64")
        for arch in self.mock_config:
            if arch not in self.arches:
                raise UsageError(f"mock config for {arch}, which target {self.name} does not build",
                                 f"its arches are {', '.join(self.arches)}")
        names = [repo.name for repo in self.external_repos]
        if len(set(names)) != len(names):
            raise UsageError(f"target {self.name} names an external repo twice")
        for repo in self.external_repos:
            check_name(repo.name, "external repo")
            if repo.name == LOCAL:
                raise UsageError(f"external repo name {LOCAL!r} is taken by the target's own builds",
                                 "give the external repo another name")
            if isinstance(repo.priority, bool) or not isinstance(repo.priority, int) or not 1 <= repo.priority <= 99:
                raise UsageError(f"external repo {repo.name}: priority must be a whole number from 1 to 99")
            if not _URL.fullmatch(repo.url):
                raise UsageError(f"external repo {repo.name}: {repo.url!r} is not an http(s) or file URL")
        object.__setattr__(self, "external_repos",  # stable: equal priorities keep their order
                           tuple(sorted(self.external_repos, key=lambda repo: repo.priority)))

    def mock_config_for(self, arch: str) -> str:
        return self.mock_config.get(arch, "default")

    def task_arches(self, package: SourcePackage, requested: Sequence[str] = ()) -> tuple[str, ...]:
        """The arches to build `package` for: the request (or all the target's
        arches), minus what the SRPM's ExclusiveArch/ExcludeArch rule out."""
        for arch in requested:
            if arch not in self.arches:
                raise UsageError(f"target {self.name} does not build {arch}",
                                 f"its arches are {', '.join(self.arches)}")
        arches = [a for a in (requested or self.arches)
                  if (not package.exclusivearch or a in package.exclusivearch)
                  and a not in package.excludearch]
        if not arches:
            raise BadInput(f"{package.nvr} builds on none of {', '.join(requested or self.arches)} "
                           f"(ExclusiveArch: {' '.join(package.exclusivearch) or '-'}, "
                           f"ExcludeArch: {' '.join(package.excludearch) or '-'})",
                           "pick another target or --arch")
        return tuple(dict.fromkeys(arches))

    def dump(self) -> bytes:
        doc = {"arches": list(self.arches), "dist_tag": self.dist_tag, "supersede": self.supersede,
               "mock_config": dict(self.mock_config),
               "external_repo": [{"name": r.name, "url": r.url, "priority": r.priority}
                                 for r in self.external_repos]}
        if self.signing_key:
            doc["signing_key"] = self.signing_key
        if self.retired_keys:
            doc["retired_keys"] = list(self.retired_keys)
        if self.trusted_keys:
            doc["trusted_keys"] = list(self.trusted_keys)
        if self.import_rules:
            doc["import"] = dict(self.import_rules)
        header = (f"sluice target {self.name}. External repos feed the buildroot after the target's own\n"
                  "builds, lowest priority first: the first repo with a source package offers it, and\n"
                  "no later repo offers any package built from that source.")
        return tomlfile.dumps(doc, header).encode()

    @classmethod
    def parse(cls, name: str, data: bytes, where: str | None = None) -> "Target":
        where = where or target_path(name)
        text, doc = tomlfile.decode(data, where, "fix it and load it with `sluice target load`")

        def at(key: str) -> str:
            return tomlfile.locate(text, where, tomlfile.key_pattern(key))

        for key in doc:
            if key not in _KEYS:
                raise ConfigError(at(key), f"unknown setting {key!r}; settings are {', '.join(sorted(_KEYS))}")
        arches = doc.get("arches")
        if not (isinstance(arches, list) and all(isinstance(a, str) for a in arches)):
            raise ConfigError(at("arches"), "arches must be a list of arch names")
        mock = doc.get("mock_config", {})
        if not (isinstance(mock, dict) and all(isinstance(v, str) for v in mock.values())):
            raise ConfigError(tomlfile.locate(text, where, r"\[\s*mock_config\s*\]"),
                              "[mock_config] maps arch = \"config name\"")
        repos = doc.get("external_repo", [])
        if not (isinstance(repos, list) and all(isinstance(r, dict) and isinstance(r.get("name"), str)
                                                and isinstance(r.get("url"), str)
                                                and set(r) <= {"name", "url", "priority"} for r in repos)):
            raise ConfigError(tomlfile.locate(text, where, r"\[\[\s*external_repo\s*\]\]"),
                              "each [[external_repo]] has name, url and optionally priority (1-99), nothing else")
        trusted = doc.get("trusted_keys", [])
        if not (isinstance(trusted, list) and all(isinstance(k, str) for k in trusted)):
            raise ConfigError(at("trusted_keys"), "trusted_keys must be a list of key fingerprints")
        if not isinstance(doc.get("import", {}), dict):
            raise ConfigError(at("import"), '[import] maps package = "rebuild" | "skip" | "replace OURS"')
        for key, kind in (("dist_tag", str), ("supersede", bool), ("signing_key", str)):
            if key in doc and not isinstance(doc[key], kind):
                raise ConfigError(at(key), f"{key} must be a {kind.__name__}")
        retired = doc.get("retired_keys", [])
        if not (isinstance(retired, list) and all(isinstance(k, str) for k in retired)):
            raise ConfigError(at("retired_keys"), "retired_keys must be a list of key fingerprints")
        try:
            return cls(name, tuple(arches), dict(mock), doc.get("dist_tag", ""),
                       tuple(ExternalRepo(r["name"], r["url"], r.get("priority", DEFAULT_PRIORITY)) for r in repos),
                       doc.get("supersede", True), doc.get("signing_key", ""), tuple(retired), tuple(trusted),
                       dict(doc.get("import", {})))
        except UsageError as exc:
            raise ConfigError(where, exc.message, exc.hint) from exc

    def describe(self) -> list[str]:
        lines = [f"target {self.name}", f"  arches:   {' '.join(self.arches)}",
                 f"  dist tag: {self.dist_tag or '-'}", f"  supersede older builds: {'yes' if self.supersede else 'no'}",
                 f"  signing key: {self.signing_key or '- (`sluice key create --target ' + self.name + '`)'}"]
        lines += [f"  retired key: {key}" for key in self.retired_keys]
        lines += [f"  mock {arch}: {self.mock_config_for(arch)}" for arch in self.arches]
        lines += [f"  import trusts key {fingerprint}" for fingerprint in self.trusted_keys]
        lines += [f"  import {glob}: {rule}" for glob, rule in self.import_rules.items()]
        lines += [f"  buildroot feed 1. {LOCAL} (this target's own builds)"]
        lines += [f"  buildroot feed {n}. {r.name} {r.url} (priority {r.priority})"
                  for n, r in enumerate(self.external_repos, 2)]
        return lines


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UsageError(f"{name!r} is not a valid {what} name",
                         "use letters, digits and . _ + - (at most 64, starting with a letter or digit)")
    return name

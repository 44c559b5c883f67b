"""Who may do what: `config/policy.toml` in the state tree.

A policy is a list of grants (role, email, package globs). `owner` grants are
per package: they let a maintainer submit those packages and review, hold,
withdraw and approve their builds. `admin` may do every owner action on any
package and is the only role that changes the policy or targets. `signer`,
`tester` and `watcher` are per package too. The runner's own events (start,
finish, supersede) are written with an admin's identity.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field, replace

from app import tomlfile
from app.errors import ConfigError, NotPermitted, UsageError

POLICY_PATH = "config/policy.toml"
ROLES = ("admin", "signer", "tester", "owner", "watcher")
FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")  # OpenPGP v4 / v5, as gpg prints them
_HEADER = ("sluice policy: who may do what. Change it with `sluice policy grant|revoke`;\n"
           "only admins may, and every change is a commit on refs/sluice/state.")


@dataclass(frozen=True)
class Grant:
    role: str
    email: str
    packages: tuple[str, ...] = ("*",)

    def covers(self, package: str | None) -> bool:
        return package is None or any(fnmatch.fnmatchcase(package, glob) for glob in self.packages)


@dataclass(frozen=True)
class Policy:
    grants: tuple[Grant, ...] = ()
    owner_may_mark_tested: bool = False
    require_signed_commits: bool = False
    # email -> the fingerprint of the OpenPGP key that signs that person's commits
    keys: dict[str, str] = field(default_factory=dict, hash=False)

    # ------------------------------------------------------------ queries

    def key_for(self, email: str) -> str | None:
        return self.keys.get(email)

    def has(self, email: str, role: str, package: str | None = None) -> bool:
        return any(g.role == role and g.email == email and g.covers(package) for g in self.grants)

    def is_admin(self, email: str) -> bool:
        return self.has(email, "admin")

    def may_publish(self, email: str) -> bool:
        """Signers and admins publish repos and write their manifests."""
        return self.is_admin(email) or self.has(email, "signer")

    def require_publisher(self, email: str, what: str) -> None:
        if not self.may_publish(email):
            raise NotPermitted(f"{email} may not {what}: only signers and admins may",
                               f"ask an admin ({', '.join(self.holders('admin'))})")

    def require_admin(self, email: str, what: str) -> None:
        """NotPermitted unless `email` is an admin: `what` says what was refused."""
        if not self.is_admin(email):
            raise NotPermitted(f"{email} may not {what}: only admins may",
                               f"ask an admin ({', '.join(self.holders('admin'))})")

    def holders(self, role: str, package: str | None = None) -> list[str]:
        return sorted({g.email for g in self.grants if g.role == role and g.covers(package)})

    def permits(self, email: str, roles: frozenset[str], package: str) -> bool:
        """Whether `email` holds one of `roles` for `package` ("runner" means admin)."""
        if "admin" in roles or "runner" in roles:
            if self.is_admin(email):
                return True
        return any(self.has(email, role, package) for role in roles if role not in ("admin", "runner"))

    # ------------------------------------------------------------ changes

    def grant(self, role: str, email: str, package: str | None = None) -> "Policy":
        _check_role(role)
        _check_email(email)
        globs = (package or "*",)
        if any(g.role == role and g.email == email and set(globs) <= set(g.packages) for g in self.grants):
            return self
        kept = [g for g in self.grants if not (g.role == role and g.email == email)]
        merged = tuple(dict.fromkeys(
            [p for g in self.grants if g.role == role and g.email == email for p in g.packages] + list(globs)))
        if "*" in merged:
            merged = ("*",)
        return replace(self, grants=tuple(kept) + (Grant(role, email, merged),))

    def with_key(self, email: str, fingerprint: str | None) -> "Policy":
        """Name `email`'s commit-signing key (None: forget it)."""
        _check_email(email)
        keys = {k: v for k, v in self.keys.items() if k != email}
        if fingerprint is not None:
            fingerprint = fingerprint.replace(" ", "").upper()
            if not FINGERPRINT.fullmatch(fingerprint):
                raise UsageError(f"{fingerprint!r} is not a key fingerprint",
                                 "give the full fingerprint (40 hex digits) as `gpg --fingerprint EMAIL` shows it")
            keys[email] = fingerprint
        return replace(self, keys=keys)._checked_signing()

    def requiring_signatures(self, on: bool) -> "Policy":
        return replace(self, require_signed_commits=on)._checked_signing()

    def _checked_signing(self) -> "Policy":
        if self.require_signed_commits and not any(self.key_for(a) for a in self.holders("admin")):
            raise UsageError("signed commits would be required, but no admin's key is named",
                             "name an admin's key first: `sluice policy key EMAIL FINGERPRINT`")
        return self

    def revoke(self, role: str, email: str, package: str | None = None) -> "Policy":
        _check_role(role)
        grants = []
        for g in self.grants:
            if g.role == role and g.email == email:
                rest = tuple(p for p in g.packages if package is not None and p != package)
                if rest:
                    grants.append(Grant(role, email, rest))
            else:
                grants.append(g)
        changed = replace(self, grants=tuple(grants))
        if changed == self:
            raise UsageError(f"{email} holds no {role} grant{f' for {package}' if package else ''}",
                             "see the grants with `sluice policy show`")
        if not changed.holders("admin"):
            raise UsageError("that would leave the queue without an admin",
                             "grant admin to someone else first")
        return changed

    # ------------------------------------------------------------ TOML

    def dump(self) -> bytes:
        doc = {"version": 1, "owner_may_mark_tested": self.owner_may_mark_tested,
               "require_signed_commits": self.require_signed_commits,
               "grant": [{"role": g.role, "email": g.email, "packages": list(g.packages)}
                         for g in self.grants]}
        if self.keys:
            doc["keys"] = dict(sorted(self.keys.items()))
        return tomlfile.dumps(doc, _HEADER).encode()

    @classmethod
    def parse(cls, data: bytes, where: str = POLICY_PATH) -> "Policy":
        text, doc = tomlfile.decode(data, where, "fix it with `sluice policy load FILE`")
        grants = []
        for n, item in enumerate(doc.pop("grant", []), 1):
            at = tomlfile.locate(text, where, r"\[\[\s*grant\s*\]\]", n)
            if not isinstance(item, dict):
                raise ConfigError(at, "each [[grant]] must be a table")
            unknown = set(item) - {"role", "email", "packages"}
            if unknown:
                raise ConfigError(at, f"unknown key {sorted(unknown)[0]!r} in [[grant]]; "
                                      "a grant has role, email and packages")
            role, email, packages = item.get("role"), item.get("email"), item.get("packages", ["*"])
            if role not in ROLES:
                raise ConfigError(at, f"unknown role {role!r}; roles are {', '.join(ROLES)}")
            if not isinstance(email, str) or "@" not in email:
                raise ConfigError(at, f"grant needs an email, not {email!r}")
            if not (isinstance(packages, list) and packages and all(isinstance(p, str) and p for p in packages)):
                raise ConfigError(at, "packages must be a non-empty list of globs")
            grants.append(Grant(role, email, tuple(packages)))
        version = doc.pop("version", 1)
        if version != 1:
            raise ConfigError(where, f"policy version {version!r} is newer than this sluice",
                              "upgrade sluice")
        flags = {}
        for key in ("owner_may_mark_tested", "require_signed_commits"):
            value = doc.pop(key, False)
            if not isinstance(value, bool):
                raise ConfigError(tomlfile.locate(text, where, tomlfile.key_pattern(key)),
                                  f"{key} must be true or false")
            flags[key] = value
        keys = _parse_keys(doc.pop("keys", {}), text, where)
        for key in doc:
            raise ConfigError(tomlfile.locate(text, where, tomlfile.key_pattern(key)),
                              f"unknown setting {key!r}")
        policy = cls(tuple(grants), **flags, keys=keys)
        if not policy.holders("admin"):
            raise ConfigError(where, "the policy names no admin", "keep at least one admin grant")
        if policy.require_signed_commits and not any(policy.key_for(a) for a in policy.holders("admin")):
            raise ConfigError(tomlfile.locate(text, where, tomlfile.key_pattern("require_signed_commits")),
                              "require_signed_commits is on, but [keys] names no admin's key",
                              "add `\"ADMIN-EMAIL\" = \"FINGERPRINT\"` under [keys], or nobody could "
                              "change the policy again")
        return policy

    @classmethod
    def initial(cls, admin: str) -> "Policy":
        return cls((Grant("admin", admin), Grant("owner", admin)))

    def describe(self) -> list[str]:
        lines = [f"{g.role:8} {g.email}  {' '.join(g.packages)}" for g in
                 sorted(self.grants, key=lambda g: (ROLES.index(g.role), g.email))]
        lines += [f"{'key':8} {email}  {fingerprint}" for email, fingerprint in sorted(self.keys.items())]
        if self.require_signed_commits:
            lines.append("every commit must be signed with its author's key above")
        return lines


def _parse_keys(table: object, text: str, where: str) -> dict[str, str]:
    at = tomlfile.locate(text, where, r"\[\s*keys\s*\]")
    if not isinstance(table, dict):
        raise ConfigError(at, "keys must be a table: [keys] then \"EMAIL\" = \"FINGERPRINT\" lines")
    keys = {}
    for email, fingerprint in table.items():
        if "@" not in email:
            raise ConfigError(at, f"[keys] names {email!r}, which is not an email address")
        if not isinstance(fingerprint, str) or not FINGERPRINT.fullmatch(fingerprint):
            raise ConfigError(at, f"the key of {email} must be a full fingerprint in upper-case hex "
                                  f"(40 digits), not {fingerprint!r}",
                              "`gpg --list-keys --with-colons EMAIL` prints it on the fpr line")
        keys[email] = fingerprint
    return keys


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}", f"roles are {', '.join(ROLES)}")


def _check_email(email: str) -> None:
    if "@" not in email or any(c.isspace() for c in email):
        raise UsageError(f"{email!r} is not an email address", "name people by their git user.email")

"""Signing keys in a GnuPG home of sluice's own, through python-gnupg.

The home (`$XDG_DATA_HOME/sluice/gnupg`, mode 0700) holds only sluice's
keys, so `rpmsign` can be pointed at it with `_gpg_path` and nothing of the
user's own keyring is touched. Its gpg-agent caches no passphrase
(`default-cache-ttl 0`): a wrong passphrase must fail even right after a
right one, and sluice hands the passphrase to gpg itself each time.

Passphrases go to gpg on a pipe (python-gnupg's `--passphrase-fd 0`), never
in argv.
"""
from __future__ import annotations

import datetime
import os
import subprocess

from backends.base import BackendError, KeyInfo

_AGENT_CONF = ("# written by sluice: never cache a passphrase, sluice passes it each time\n"
               "default-cache-ttl 0\nmax-cache-ttl 0\nallow-loopback-pinentry\n")
_SOCKET_MAX = 100  # sun_path is 108 bytes; gpg adds "/S.gpg-agent.browser"


def gpg_binary() -> str:
    """gpg2 where it exists (Fedora's rpm default), else gpg (Debian)."""
    for path in ("/usr/bin/gpg2", "/usr/bin/gpg"):
        if os.access(path, os.X_OK):
            return path
    raise BackendError("GnuPG is not installed", "install gnupg (Debian) or gnupg2 (Fedora)")


def prepare_home(home: str) -> str:
    """Create the home 0700 with the agent config; make sure the agent's
    socket fits (a deep home gets its sockets under /run/user via gpgconf)."""
    os.makedirs(home, mode=0o700, exist_ok=True)
    os.chmod(home, 0o700)
    conf = os.path.join(home, "gpg-agent.conf")
    if not os.path.exists(conf):
        with open(conf, "w") as f:
            f.write(_AGENT_CONF)
    if len(home) + len("/S.gpg-agent.browser") > _SOCKET_MAX:
        made = subprocess.run(["gpgconf", "--create-socketdir"], env={**os.environ, "GNUPGHOME": home},
                              capture_output=True, text=True)
        if made.returncode != 0:
            raise BackendError(f"the GnuPG home {home} is too deep for gpg-agent's socket",
                               "set SLUICE_GNUPGHOME (or `gnupg` in the config) to a shorter path",
                               command=["gpgconf", "--create-socketdir"], status=made.returncode,
                               output=made.stderr)
    return home


def _iso(epoch: str) -> str | None:
    if not epoch:
        return None
    moment = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class GnupgKeyring:
    def __init__(self, home: str) -> None:
        self.home = home
        self._gpg = None

    @property
    def gpg(self):
        if self._gpg is None:
            import gnupg
            prepare_home(self.home)
            self._gpg = gnupg.GPG(gpgbinary=gpg_binary(), gnupghome=self.home)
            self._gpg.encoding = "utf-8"
        return self._gpg

    def create(self, uid: str, passphrase: str | None, rsa: bool, expires: str) -> KeyInfo:
        name, _, email = uid.partition(" <")
        params = dict(name_real=name, name_email=email.rstrip(">"), expire_date=expires, key_usage="sign")
        if rsa:
            params.update(key_type="RSA", key_length=4096)
        else:
            params.update(key_type="EDDSA", key_curve="ed25519")
        if passphrase:
            params["passphrase"] = passphrase
        else:
            params["no_protection"] = True
        made = self.gpg.gen_key(self.gpg.gen_key_input(**params))
        if not made.fingerprint:
            raise BackendError(f"gpg could not create the key for {uid}", "see gpg's output below",
                               command=["gpg", "--gen-key"], output=_tail(made.stderr))
        return self.key(made.fingerprint)

    def keys(self) -> list[KeyInfo]:
        return [KeyInfo(k["fingerprint"], (k.get("uids") or [""])[0], _iso(k.get("date", "")) or "",
                        _iso(k.get("expires", "")), _algorithm(k)) for k in self.gpg.list_keys(secret=True)]

    def key(self, fingerprint: str) -> KeyInfo:
        for info in self.keys():
            if info.fingerprint == fingerprint:
                return info
        raise BackendError(f"key {fingerprint} is not in {self.home}")

    def export(self, *fingerprints: str) -> bytes:
        missing = [f for f in fingerprints if not self.has_public(f)]
        armored = self.gpg.export_keys(list(fingerprints)) if fingerprints and not missing else ""
        if not armored:
            raise BackendError(f"cannot export key {', '.join(missing or fingerprints)} from {self.home}")
        return armored.encode()

    def has_public(self, fingerprint: str) -> bool:
        return any(k["fingerprint"] == fingerprint for k in self.gpg.list_keys(keys=[fingerprint]))

    def unlocks(self, fingerprint: str, passphrase: str | None) -> bool:
        signed = self.gpg.sign("sluice passphrase check", keyid=fingerprint, passphrase=passphrase or "",
                               detach=True)
        return bool(signed.data)

    def sign_detached(self, fingerprint: str, data: bytes, passphrase: str | None) -> bytes:
        # No passphrase must be None, not "": python-gnupg then passes no
        # --passphrase-fd 0, which would eat the data's first line as one.
        signed = self.gpg.sign(data, keyid=fingerprint, passphrase=passphrase or None, detach=True,
                               clearsign=False, binary=False)
        if not signed.data:
            raise BackendError(f"gpg could not sign with key {fingerprint}",
                               "check the key and its passphrase (`sluice key list`)",
                               command=["gpg", "--detach-sign", "--armor"], output=_tail(signed.stderr))
        return signed.data


def _algorithm(key: dict) -> str:
    if key.get("curve"):
        return key["curve"]
    return {"1": "rsa", "17": "dsa", "22": "eddsa"}.get(str(key.get("algo")), str(key.get("algo"))) + \
        str(key.get("length", ""))


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join((text or "").splitlines()[-lines:])

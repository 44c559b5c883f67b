"""Signing and checking state commits with people's own OpenPGP keys.

These keys live in the user's own GnuPG home (`GNUPGHOME`, else ~/.gnupg, or
the one the config names), never in sluice's home of target signing keys.
A commit is signed the way `git commit -S` signs it: an armoured detached
signature over the commit object, kept in its `gpgsig` header, so stock
`git log --show-signature` checks it too.

The passphrase comes from gpg-agent (cached, or asked by pinentry) or, when
given, goes to gpg on a pipe (python-gnupg's `--passphrase-fd 0`); it is
never in argv, in an event or in a commit.
"""
from __future__ import annotations

import os
import tempfile

from backends.base import BackendError, Verdict, secret_line
from backends.keys import gpg_binary
from backends.trust_protocols import BAD, GOOD, UNKNOWN_KEY, UNSIGNED


def _gpg(home: str | None):
    import gnupg
    gpg = gnupg.GPG(gpgbinary=gpg_binary(), gnupghome=home or None)
    gpg.encoding = "utf-8"
    return gpg


class GnupgCommitSigner:
    """`CommitSigner` over the user's keyring; the gpg process starts on first use."""

    def __init__(self, home: str | None, passphrase_file: str | None = None) -> None:
        self.home, self.passphrase_file, self._gpg = home, passphrase_file, None

    def _passphrase(self) -> str | None:
        if not self.passphrase_file:
            return None  # gpg-agent's cache, or its pinentry
        try:
            return secret_line(self.passphrase_file)
        except (OSError, UnicodeDecodeError) as exc:
            raise BackendError(f"cannot read the commit passphrase file {self.passphrase_file}: {exc.strerror}",
                               "fix commit_passphrase_file (or SLUICE_COMMIT_PASSPHRASE_FILE)") from exc

    def sign(self, payload: bytes, fingerprint: str) -> bytes:
        if self._gpg is None:
            self._gpg = _gpg(self.home)
        # None, not "": python-gnupg then passes no --passphrase-fd 0
        signed = self._gpg.sign(payload, keyid=fingerprint, passphrase=self._passphrase(), detach=True,
                                clearsign=False, binary=False)
        if not signed.data:
            where = self.home or os.environ.get("GNUPGHOME") or "~/.gnupg"
            raise BackendError(f"gpg could not sign the commit with your key {fingerprint} (from {where})",
                               "check that the secret key is there (`gpg --list-secret-keys`) and that "
                               "gpg-agent has its passphrase, or set commit_passphrase_file",
                               command=["gpg", "--detach-sign", "--armor", "-u", fingerprint],
                               output="\n".join((signed.stderr or "").splitlines()[-10:]))
        return signed.data


class GnupgCommitVerifier:
    """`CommitVerifier` over a keyring of public keys and a pygit2 repo."""

    def __init__(self, repo, home: str | None) -> None:
        self.repo, self.home, self._gpg = repo, home, None
        self._seen: dict[str, Verdict] = {}

    def check(self, commit: str) -> Verdict:
        if commit not in self._seen:
            self._seen[commit] = self._check(commit)
        return self._seen[commit]

    def _check(self, commit: str) -> Verdict:
        signature, payload = self.repo[commit].gpg_signature
        if not signature:
            return Verdict(UNSIGNED)
        if self._gpg is None:
            self._gpg = _gpg(self.home)
        with tempfile.NamedTemporaryFile(prefix="sluice-sig-") as sig:
            sig.write(signature)
            sig.flush()
            verified = self._gpg.verify_data(sig.name, payload)
        if verified.valid:
            found = (verified.pubkey_fingerprint, verified.fingerprint)
            return Verdict(GOOD, tuple(dict.fromkeys(f.upper() for f in found if f)))
        if verified.status == "no public key":
            return Verdict(UNKNOWN_KEY, (str(verified.key_id or "").upper(),), "no public key")
        return Verdict(BAD, (), str(verified.status or "no valid OpenPGP signature"))

"""Signed history: which state commits must be signed, with whose key.

The rule, applied alike when sluice writes a commit, when `sync` checks a
fetched one, by `sluice verify` and by the pre-receive hook: a commit must
be signed when the policy in force at its parent says
`require_signed_commits = true`, and then by the key that policy names for
the commit's author under `[keys]`. The commit that switches the
requirement on is held to the policy it writes (its author must sign it
with the key it names), so the switch itself is signed and an admin cannot
lock the queue with a key they do not hold. Commits from before the switch
stay valid unsigned: that is the bootstrap.
"""
from __future__ import annotations

from app import builds
from app.errors import NotPermitted
from app.policy import POLICY_PATH, Policy
from backends.base import BAD, GOOD, UNKNOWN_KEY, UNSIGNED, Change, Snapshot, Verdict

_ASK = "ask an admin to add your key's fingerprint under [keys] in the policy (`sluice policy key EMAIL FPR`)"


def rule(parent: Policy | None, new: Policy | None, author: str) -> tuple[bool, str | None]:
    """(must the commit be signed, by which key) for a commit whose parent has
    policy `parent` and which writes policy `new` (None: no change)."""
    if parent is not None and parent.require_signed_commits:
        return True, parent.key_for(author)
    if new is not None and new.require_signed_commits:
        return True, new.key_for(author)
    return False, None


def commit_key(snap: Snapshot, change: Change) -> str | None:
    """The key `change` is signed with when written on `snap` (the store's
    `sign_commits` rule); refuses, before anything is written, when the
    policy requires a signature and names no key for the author."""
    parent = builds.load_policy(snap) if snap.commit is not None else None
    written = change.files.get(POLICY_PATH)
    new = Policy.parse(written) if written is not None else None
    return _required(rule(parent, new, change.author.email), change.author.email)


def merge_key(ours: Policy | None, theirs: Policy | None, author: str) -> str | None:
    """The key a sync's merge commit is signed with: the merged tree holds
    one side's policy, so sign when either side requires it."""
    must, key = rule(ours, None, author)
    if not must:
        must, key = rule(theirs, None, author)
    return _required((must, key), author)


def _required(found: tuple[bool, str | None], author: str) -> str | None:
    must, key = found
    if must and key is None:
        raise NotPermitted(f"the policy requires signed commits, but names no key for {author}", _ASK)
    return key if must else None


def signature_problems(verdict: "Verdict | None", parent: Policy | None, new: Policy | None,
                       author: str) -> list[str]:
    """What is wrong with a commit's signature under the rule; `verdict`
    None means no keyring to check it with."""
    must, key = rule(parent, new, author)
    if not must:
        return []
    if key is None:
        return [f"the policy requires signed commits but names no key for {author}"]
    if verdict is None:
        return ["cannot check its signature: no keyring to check it with"]
    if verdict.status == UNSIGNED:
        return [f"is not signed, but the policy requires signed commits (with {author}'s key {key})"]
    if verdict.status == BAD:
        return [f"has a signature that does not verify ({verdict.detail}): the commit was changed "
                "after it was signed, or the signature is forged"]
    if verdict.status == UNKNOWN_KEY:
        keyid = verdict.fingerprints[0] if verdict.fingerprints else "?"
        if keyid and key.endswith(keyid):
            return [f"is signed by {author}'s key {key}, whose public key is not in this keyring: "
                    f"import it (`gpg --import`) to check it"]
        return [f"is signed by key {keyid}, but the policy names {key} for {author}"]
    if verdict.status == GOOD and key in verdict.fingerprints:
        return []
    signer = verdict.fingerprints[0] if verdict.fingerprints else "?"
    return [f"is signed by key {signer}, but the policy names {key} for {author}"]

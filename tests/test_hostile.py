"""Hostile input, fuzzed with hypothesis: whatever the bytes, sluice answers
with its own error (a SluiceError with a hint for the user), never a Python
exception that would reach the user as a trace.

Why hypothesis only: atheris is not installable here (it needs a clang with
libFuzzer for this Python); hypothesis shrinks a failure to a small,
replayable example and runs inside the ordinary test suite.
"""
from __future__ import annotations

import json
import shutil

from hypothesis import HealthCheck, given, settings, strategies as st

from app.errors import SluiceError
from app.model import decode_event, decode_record
from app.policy import Policy
from app.targets import Target
from backends.srpm import RpmReader

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
EVENT = {"op": "hold", "from": "built", "to": "held", "actor": "a@example.org", "replica": "3c0ffee1",
         "lamport": 5, "prev": ["00000004-3c0ffee1-9a8b7c6d"], "at": "2026-11-21T16:40:01.456Z",
         "reason": "x", "data": {}}
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=12)


def _only_sluice_errors(call) -> None:
    try:
        call()
    except SluiceError as exc:
        assert exc.message and exc.exit_code in (1, 2, 3, 4)


@FAST
@given(st.binary(max_size=400))
def test_any_bytes_as_an_event_or_record_are_refused_cleanly(body):
    _only_sluice_errors(lambda: decode_event("00000005-3c0ffee1-00000000", body))
    _only_sluice_errors(lambda: decode_record("ab" * 20, body))


@FAST
@given(st.sampled_from(sorted(EVENT)), json_values)
def test_an_event_with_any_field_replaced_is_refused_cleanly(field, value):
    body = json.dumps({**EVENT, field: value}).encode()
    _only_sluice_errors(lambda: decode_event("00000005-3c0ffee1-00000000", body))


toml_text = st.text(alphabet=st.sampled_from(list('[]{}="\'.,#\n -_aelrsoctuh*@0123456789')), max_size=200)


@FAST
@given(toml_text)
def test_any_text_as_policy_or_target_is_refused_cleanly(text):
    _only_sluice_errors(lambda: Policy.parse(text.encode()))
    _only_sluice_errors(lambda: Target.parse("default", text.encode()))


@FAST
@given(st.text(max_size=60), st.text(max_size=60))
def test_policy_and_target_with_odd_values_are_refused_cleanly(key, value):
    text = f'[roles]\n{json.dumps(key)} = [{json.dumps(value)}]\n[owners]\n{json.dumps(value)} = 3\n'
    _only_sluice_errors(lambda: Policy.parse(text.encode()))
    text = f'arches = [{json.dumps(key)}]\ndist_tag = {json.dumps(value)}\n[mock]\n{json.dumps(key)} = 1\n'
    _only_sluice_errors(lambda: Target.parse("default", text.encode()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_corrupted_srpm_is_refused_with_a_hint(make_srpm, tmp_path, data):
    original = make_srpm("fuzzed", "1.0", "1").read_bytes()
    body = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(body)))
    path = tmp_path / "fuzzed-1.0-1.src.rpm"
    path.write_bytes(bytes(body[:cut]))
    reader = RpmReader()
    for read in (reader.read_source, reader.read_binary):
        try:
            read(str(path))
        except SluiceError as exc:
            assert exc.hint, exc.message


def test_the_corrupted_copies_really_differ(make_srpm, tmp_path):
    """The fuzz above must be able to fail: the untouched SRPM reads fine."""
    path = tmp_path / "copy.src.rpm"
    shutil.copy(make_srpm("fuzzed", "1.0", "1"), path)
    assert RpmReader().read_source(str(path)).name == "fuzzed"

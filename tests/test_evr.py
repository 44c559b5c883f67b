"""rpm's version order is written twice on purpose: in app/evr.py for the
domain, and in the rpmbuild helper, which travels to build hosts as one
self-contained file. Both must agree with rpm itself."""
from __future__ import annotations

import rpm
from hypothesis import given, settings
from hypothesis import strategies as st

from app.evr import rpmvercmp
from backends.remote import rpmbuild_helper

versions = st.builds(lambda head, rest: head + rest, st.sampled_from("019azZ"),
                     st.text(alphabet="0123456789abcXYZ.~^_+", max_size=8))


@settings(max_examples=400, deadline=None)
@given(versions, versions)
def test_both_copies_order_versions_as_rpm_does(a, b):
    expected = rpm.labelCompare(("0", a, "1"), ("0", b, "1"))
    assert rpmvercmp(a, b) == expected
    assert rpmbuild_helper.rpmvercmp(a, b) == expected

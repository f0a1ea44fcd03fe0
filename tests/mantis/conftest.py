"""Every lifecycle transition a test in this folder drives is checked against the
machines' invariants (``validate()``), which production leaves off for speed."""
import pytest

from mantis.lifecycles import tables as lifecycle


@pytest.fixture(autouse=True)
def validate_every_transition(monkeypatch):
    """Switch on mantis.lifecycles.tables.VALIDATE for the test."""
    monkeypatch.setattr(lifecycle, "VALIDATE", True)

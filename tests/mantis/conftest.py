"""Every lifecycle transition a test in this folder drives is checked against the
machines' invariants (``validate()``), which production leaves off for speed."""
import pytest

from mantis import lifecycle


@pytest.fixture(autouse=True)
def validate_every_transition(monkeypatch):
    """Switch on mantis.lifecycle.VALIDATE for the test."""
    monkeypatch.setattr(lifecycle, "VALIDATE", True)

"""Fixtures for the netem tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def shared_traces() -> Path:
    """The measured traces shared with the project, or skip when absent."""
    for root in (Path(__file__).resolve().parents[3] / "shared" / "traces", Path("/work/shared/traces")):
        if root.is_dir():
            return root
    pytest.skip("shared traces folder absent")

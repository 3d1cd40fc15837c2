"""Keep every data test away from the user's real cache (one private cache
for the session; tests of the cache itself pass their own cache_dir)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("parse-sim-cache")


@pytest.fixture(autouse=True)
def _private_cache(_session_cache, monkeypatch):
    monkeypatch.setenv("PARSE_SIM_CACHE", str(_session_cache))

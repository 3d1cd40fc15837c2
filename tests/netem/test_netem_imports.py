"""netem is a standalone library: importing it pulls in neither torch nor parse_actors."""

from __future__ import annotations

import json
import subprocess
import sys


def test_netem_imports_no_torch_and_no_parse_actors():
    code = (
        "import sys, json, netem, netem.network, netem.access, netem.dynamics, netem.tracefiles;"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'parse_actors', 'ray'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_public_api():
    import netem

    for name in ("Network", "NetworkConfig", "MessageRecord", "ConfigError"):
        assert hasattr(netem, name)

"""Scenario files: YAML in, one typed, fully defaulted `Scenario` out.

    yaml_safe  hardened YAML loading (bounded, strict keys)
    overrides  `--set a.b.c=VALUE`
    schema     the pydantic `Scenario` and its own sections
    errors     pydantic errors rendered as one line
    checks     checks that need the whole scenario (counts, files)

Every problem becomes a `ScenarioError` naming the file, the key path as the
user wrote it (empty for whole-document problems) and what was expected, on
one line.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from pydantic import ValidationError

from parse_actors.errors import ScenarioError

from .checks import check_scenario
from .errors import format_validation_error
from .overrides import apply_override
from .schema import (
    AgentGroup,
    AgentsConfig,
    EngineConfig,
    OutputConfig,
    ProtocolConfig,
    Scenario,
    TrainConfig,
)
from .yaml_safe import MAX_BYTES, MAX_COMPOSED, MAX_DEPTH, MAX_NODES, MAX_NUMBER_CHARS, _check_keys, load_document, parse_yaml

__all__ = [
    "MAX_BYTES",
    "MAX_COMPOSED",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_NUMBER_CHARS",
    "AgentGroup",
    "AgentsConfig",
    "EngineConfig",
    "OutputConfig",
    "ProtocolConfig",
    "Scenario",
    "ScenarioError",
    "TrainConfig",
    "apply_override",
    "build_scenario",
    "check_scenario",
    "format_validation_error",
    "json_schema",
    "load_document",
    "load_scenario",
    "parse_yaml",
    "scenario_to_yaml",
]


def build_scenario(doc: dict, file: str | None = None, overrides: list[str] | None = None,
                   base_dir: Path | None = None, check: bool = True) -> Scenario:
    """Validate a raw document (after overrides) into a Scenario."""
    doc = copy.deepcopy(doc)
    for assignment in overrides or []:
        apply_override(doc, assignment)
    _check_keys(doc, file)
    try:
        sc = Scenario.model_validate(doc)
    except ValidationError as e:
        raise format_validation_error(e, file, Scenario) from None
    except (RecursionError, OverflowError, MemoryError) as e:
        raise ScenarioError(file, "", f"document cannot be validated ({type(e).__name__})") from None
    if sc.base_dir is None:
        sc.base_dir = str((base_dir or Path(".")).resolve())
    if check:
        check_scenario(sc, file)
    return sc


def load_scenario(path: str | Path, overrides: list[str] | None = None, check: bool = True,
                  regular_only: bool = False) -> Scenario:
    """Read, override, validate and semantically check a scenario file (`regular_only`:
    see `load_document`)."""
    path = Path(path)
    doc = load_document(path, regular_only=regular_only)
    return build_scenario(doc, str(path), overrides, base_dir=path.parent, check=check)


def scenario_to_yaml(sc: Scenario) -> str:
    """The resolved scenario as YAML; loading it again gives the same Scenario."""
    return yaml.safe_dump(sc.model_dump(mode="json"), sort_keys=False, default_flow_style=False)


def json_schema() -> dict:
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "parse-sim scenario"
    return schema

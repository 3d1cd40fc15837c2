"""Base class for every scenario section: strict, typed, documented defaults.

Unknown keys are rejected (the loader suggests the closest valid one), NaN and
infinities are refused, and defaults are validated like user values.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        validate_default=True,
        frozen=False,
        use_attribute_docstrings=True,
    )

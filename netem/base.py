"""Shared pieces of netem's config models: the strict base class, numeric
aliases and tagged unions whose tag may be omitted."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

from .limits import MAX_LATENCY_MS, MAX_RATE_MBPS, MIN_RATE_MBPS

Prob = Annotated[float, Field(ge=0.0, le=1.0)]
PosFloat = Annotated[float, Field(gt=0.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosInt = Annotated[int, Field(gt=0)]


def _at_least_one_bit_per_s(v: float) -> float:
    if v < MIN_RATE_MBPS:
        raise ValueError(f"rate {v:g} Mbit/s is below 1 bit/s ({MIN_RATE_MBPS:g} Mbit/s)")
    return v


#: A link or access rate in Mbit/s: from 1 bit/s to 10 Tbit/s (netem.limits).
Mbps = Annotated[float, Field(gt=0.0, le=MAX_RATE_MBPS), AfterValidator(_at_least_one_bit_per_s)]
#: A latency in ms: from 0 to one day (netem.limits).
LatencyMs = Annotated[float, Field(ge=0.0, le=MAX_LATENCY_MS)]


def _tagged(field: str, default: str, *models: type[BaseModel]):
    """A union discriminated by `field`, which may be omitted (then `default` applies).

    `loss: {mtu_bytes: 9000}` thus means the default model, a bare string is
    shorthand for the tag (`topology: complete`), and an unknown value lists
    the valid ones.
    """
    tags = [m.model_fields[field].default for m in models]

    def tag_of(v):
        if isinstance(v, dict):
            return v.get(field, default)
        return getattr(v, field, default)

    def shorthand(v):
        return {field: v} if isinstance(v, str) else v

    members = tuple(Annotated[m, Tag(t)] for m, t in zip(models, tags))
    return Annotated[
        Union[members],
        Discriminator(
            tag_of,
            custom_error_type="unknown_tag",
            custom_error_message=f"unknown {field}; expected one of: {', '.join(tags)}",
        ),
        BeforeValidator(shorthand),
    ]


class StrictModel(BaseModel):
    """Strict base: unknown keys, NaN and infinities are errors; defaults are validated."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        validate_default=True,
        use_attribute_docstrings=True,
    )


def ordered(model: BaseModel, low: str, high: str) -> BaseModel:
    """`model` unchanged when its field `high` is >= its field `low`; else a ValueError naming both."""
    lo, hi = getattr(model, low), getattr(model, high)
    if hi < lo:
        raise ValueError(f"{high} ({hi}) must be >= {low} ({lo})")
    return model

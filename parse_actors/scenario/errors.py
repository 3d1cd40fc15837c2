"""Pydantic validation errors rendered as one line: the key path as the user
wrote it (union tags pydantic inserts dropped) and what was expected."""

from __future__ import annotations

import difflib
import math
import reprlib
import typing
from typing import Any, Optional

from pydantic import BaseModel, ValidationError

from parse_actors.errors import ScenarioError


def _members(tp: Any) -> list[tuple[Any, Optional[str]]]:
    """The concrete types a field annotation may hold, each with its union tag
    (discriminated unions carry one): Optional/Union/Annotated peeled."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        args = typing.get_args(tp)
        tag = next((getattr(m, "tag") for m in args[1:] if type(m).__name__ == "Tag"), None)
        return [(t, tag if t_tag is None else t_tag) for t, t_tag in _members(args[0])]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        out = []
        for a in typing.get_args(tp):
            if a is not type(None):
                out.extend(_members(a))
        return out
    return [(tp, None)]


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types a field annotation may hold (Optional/Union/Annotated peeled)."""
    return [t for t, _ in _members(tp)]


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _walk_loc(loc: tuple, root: type[BaseModel]) -> tuple[list, list[Any]]:
    """A pydantic error location as the key path the user wrote, and the types there.

    Pydantic inserts the member of a union it tried into locations ('ring' for
    a discriminated union, 'int' or 'list[constrained-float]' otherwise) and
    '[key]' for dict keys; those are not keys of the document and are dropped.
    A union with two or more members is always followed by such a tag.
    """
    out: list = []
    current: list[Any] = [root]
    tag_next = False
    for part in loc:
        if tag_next:
            tag_next = False
            members = [(t, tag) for a in current for t, tag in _members(a)]
            tagged = [t for t, tag in members if tag is not None and tag == part]
            current = tagged or [t for t, _ in members]
            continue
        nxt: list[Any] = []
        for t in (t for a in current for t in _unwrap(a)):
            origin = typing.get_origin(t)
            if _is_model(t):
                if isinstance(part, str) and part in t.model_fields:
                    nxt.append(t.model_fields[part].annotation)
            elif origin in (list, tuple, set, frozenset) and isinstance(part, int):
                args = typing.get_args(t)
                nxt.append(args[0] if args else Any)
            elif origin is dict and isinstance(part, str) and part != "[key]":
                args = typing.get_args(t)
                nxt.append(args[1] if len(args) == 2 else Any)
            elif t is Any:
                nxt.append(Any)
        if not nxt:
            continue  # not a key of any candidate: a tag pydantic inserted
        out.append(part)
        current = nxt
        tag_next = any(len(_members(a)) >= 2 for a in current)
    return out, current


def _models_at(loc: tuple, root: type[BaseModel]) -> list[type[BaseModel]]:
    """Candidate model classes whose fields live at `loc` (for key suggestions)."""
    _, current = _walk_loc(loc, root)
    out: list[type[BaseModel]] = []
    for t in (t for a in current for t in _unwrap(a)):
        if _is_model(t) and t not in out:
            out.append(t)
    return out


class _ShortRepr(reprlib.Repr):
    """repr() that stays short whatever the value (huge lists, 10^5-digit integers)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = self.maxother = 60
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdict = 6

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 200:
            return f"<integer with {int(x.bit_length() * 0.30103) + 1} digits>"
        return repr(x)

    def repr_bool(self, x: bool, level: int) -> str:
        return repr(x)


_SHORT = _ShortRepr()


def _fmt_value(v: Any) -> str:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    r = _SHORT.repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


_COMPARATORS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _describe(err: dict) -> str:
    typ, ctx, inp = err["type"], err.get("ctx") or {}, err.get("input")
    got = f", got {_fmt_value(inp)}"
    if typ in _COMPARATORS:
        bound = next(iter(ctx.values()))
        if typ == "greater_than" and bound == 0:
            return f"expected a positive number{got}"
        return f"expected a number {_COMPARATORS[typ]} {bound}{got}"
    if typ == "missing":
        return "required key is missing"
    if typ == "finite_number":
        return f"expected a finite number{got}"
    if typ in ("int_parsing", "int_type", "int_from_float", "int_parsing_size"):
        return f"expected an integer{got}"
    if typ in ("float_parsing", "float_type"):
        return f"expected a number{got}"
    if typ in ("bool_parsing", "bool_type"):
        return f"expected true or false{got}"
    if typ in ("string_type", "string_unicode"):
        return f"expected a string{got}"
    if typ == "string_too_short":
        return f"expected at least {ctx.get('min_length')} character(s){got}"
    if typ == "string_too_long":
        return f"expected at most {ctx.get('max_length')} characters{got}"
    if typ in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of keys{got}"
    if typ in ("list_type", "tuple_type", "set_type"):
        return f"expected a list{got}"
    if typ == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s){got}"
    if typ == "too_long":
        return f"expected at most {ctx.get('max_length')} item(s){got}"
    if typ == "literal_error":
        expected = ctx.get("expected", "")
        return f"expected one of {expected}{got}" + _suggest_literal(inp, expected)
    if typ == "union_tag_invalid":
        return (f"expected {ctx.get('discriminator')} to be one of {ctx.get('expected_tags')}"
                f", got {_fmt_value(ctx.get('tag'))}")
    if typ == "union_tag_not_found":
        return f"expected a {ctx.get('discriminator')} key"
    if typ == "string_pattern_mismatch":
        return f"expected text matching {ctx.get('pattern')}{got}"
    if typ == "value_error":
        msg = str(ctx.get("error", err.get("msg", "")))
        return msg
    msg = err.get("msg", typ)
    if msg.startswith("Input should be "):
        msg = "expected " + msg[len("Input should be "):]
    return f"{msg}{got}"


def _suggest_literal(inp: Any, expected: str) -> str:
    if not isinstance(inp, str) or len(inp) > 200:
        return ""
    options = [o.strip().strip("'") for o in expected.replace(" or ", ",").split(",") if o.strip()]
    hint = difflib.get_close_matches(inp, options, n=1)
    return f"; did you mean '{hint[0]}'?" if hint else ""


def format_validation_error(exc: ValidationError, file: str | None, root: type[BaseModel],
                            prefix: tuple = ()) -> ScenarioError:
    """The first (most specific) pydantic error as a ScenarioError (`root`: the model validated)."""
    errors = exc.errors(include_url=False)
    # prefer an unknown-key or value error over the noise pydantic adds for unions
    errors.sort(key=lambda e: (e["type"].startswith("union_tag") is False and "." in e["type"], len(e["loc"])))
    err = errors[0] if len(errors) == 1 else _best(errors)
    loc = prefix + tuple(err["loc"])
    if err["type"] == "extra_forbidden" and loc:
        key = loc[-1]
        valid = sorted({f for m in _models_at(loc[:-1], root) for f in m.model_fields})
        hint = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5) if len(str(key)) <= 200 else []
        msg = f"unknown key {_fmt_value(str(key))}"
        msg += f"; did you mean '{hint[0]}'?" if hint else (f" (valid keys: {', '.join(valid)})" if valid else "")
        path = ".".join(str(p) for p in _clean_loc(loc[:-1], root) + [key])
        return ScenarioError(file, path, msg)
    path = ".".join(str(p) for p in _clean_loc(loc, root))
    return ScenarioError(file, path, _describe(err))


def _best(errors: list[dict]) -> dict:
    for kind in ("extra_forbidden", "missing"):
        for e in errors:
            if e["type"] == kind:
                return e
    # deepest location first: it names the actual key
    return max(errors, key=lambda e: len(e["loc"]))


def _clean_loc(loc: tuple, root: type[BaseModel]) -> list:
    """Drop discriminator tags / union member names pydantic inserts into locations."""
    return _walk_loc(loc, root)[0]

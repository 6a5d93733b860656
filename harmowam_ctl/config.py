"""Turning command-line flags into validated pydantic configs, with errors that name the flag."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A config value is wrong; the message names the field (as a --flag) and what is allowed."""


def _flag(loc: tuple[Any, ...]) -> str:
    return "--" + ".".join(str(p) for p in loc).replace("_", "-") if loc else "(config)"


def explain(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        got = e.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{_flag(tuple(e['loc']))}: {e['msg']}{shown}")
    return "\n".join(lines)


def build(model: type[M], values: dict[str, Any]) -> M:
    """Validate ``values`` (None means "not given": the model default applies)."""
    given = {k: v for k, v in values.items() if v is not None}
    try:
        return model(**given)
    except ValidationError as err:
        raise ConfigError(explain(err)) from None

"""One declaration, three uses: parse, default and describe a spec section.

Every ModelRoute section is a frozen dataclass whose fields are declared with
:func:`spec_field`. From those declarations this module

* parses a plain YAML/JSON mapping into the dataclass, filling defaults and
  collecting *every* problem with its field path (``spec.models[1].name``)
  instead of stopping at the first;
* renders the structural OpenAPI v3 schema the CRD publishes, so the API
  server's validation and the router's can never disagree about a field.

Defaults are written in the user's spelling (``"2s"``, ``"10Mi"``) and parsed
like user input, so the schema shows users the same default they would write.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NewType, TypeVar, Union, get_args, get_origin

from modelroute.spec.units import DURATION_PATTERN, SIZE_PATTERN, parse_duration, parse_size

Duration = NewType("Duration", float)
"""Seconds, written as a Go-style duration string (``2s``)."""

ByteSize = NewType("ByteSize", int)
"""Bytes, written as an integer or a Kubernetes quantity (``10Mi``)."""

_NO_DEFAULT: Any = object()
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SpecError:
    """One problem in a spec, located by its field path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SpecInvalid(ValueError):
    """A spec failed validation; ``errors`` lists every problem found."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))


def spec_field(
    default: Any = _NO_DEFAULT,
    *,
    doc: str,
    key: str | None = None,
    pattern: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    min_items: int | None = None,
    max_items: int | None = None,
    max_length: int | None = None,
) -> Any:
    """Declare a spec field; ``default`` is in the YAML spelling, parsed like input."""
    return dataclasses.field(
        metadata={
            "default": default,
            "doc": doc,
            "key": key,
            "pattern": pattern,
            "minimum": minimum,
            "maximum": maximum,
            "min_items": min_items,
            "max_items": max_items,
            "max_length": max_length,
        }
    )


def yaml_key(field: dataclasses.Field[Any]) -> str:
    explicit: str | None = field.metadata.get("key")
    if explicit:
        return explicit
    head, *rest = field.name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [arg for arg in get_args(tp) if arg is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Parser:
    def __init__(self) -> None:
        self.errors: list[SpecError] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(SpecError(path, message))

    def value(self, tp: Any, raw: Any, path: str, meta: typing.Mapping[str, Any]) -> Any:
        optional, inner = _is_optional(tp)
        if raw is None:
            if optional:
                return None
            self.fail(path, "must not be null")
            return _NO_DEFAULT
        tp = inner
        origin = get_origin(tp)
        if dataclasses.is_dataclass(tp):
            return self.section(typing.cast(type, tp), raw, path)
        if origin in (list, tuple):
            return self._list(get_args(tp)[0], raw, path, meta)
        if origin in (dict, Mapping):
            return self._dict(get_args(tp)[1], raw, path)
        if origin is Literal:
            choices = get_args(tp)
            if isinstance(raw, int) and not isinstance(raw, bool) and str(raw) in choices:
                raw = str(raw)  # YAML reads an unquoted 429 as a number
            if raw not in choices:
                allowed = ", ".join(repr(choice) for choice in choices)
                self.fail(path, f"must be one of {allowed}, got {raw!r}")
                return _NO_DEFAULT
            return raw
        return self._scalar(tp, raw, path, meta)

    def _list(self, item: Any, raw: Any, path: str, meta: typing.Mapping[str, Any]) -> Any:
        if not isinstance(raw, list):
            self.fail(path, f"expected a list, got {_type_name(raw)}")
            return _NO_DEFAULT
        min_items = meta.get("min_items")
        if min_items is not None and len(raw) < min_items:
            self.fail(path, f"must have at least {min_items} item{'s' if min_items > 1 else ''}")
        max_items = meta.get("max_items")
        if max_items is not None and len(raw) > max_items:
            self.fail(path, f"must have at most {max_items} items")
        items = [self.value(item, element, _index(path, i), {}) for i, element in enumerate(raw)]
        return tuple(items)

    def _dict(self, item: Any, raw: Any, path: str) -> Any:
        if not isinstance(raw, dict):
            self.fail(path, f"expected a mapping, got {_type_name(raw)}")
            return _NO_DEFAULT
        result = {}
        for key, element in raw.items():
            if not isinstance(key, str):
                self.fail(path, f"keys must be strings, got {key!r}")
                continue
            result[key] = self.value(item, element, f"{path}[{key!r}]", {})
        return types.MappingProxyType(result)

    def _scalar(self, tp: Any, raw: Any, path: str, meta: typing.Mapping[str, Any]) -> Any:
        value: Any
        if tp is Duration:
            try:
                value = parse_duration(raw)
            except ValueError as exc:
                self.fail(path, str(exc))
                return _NO_DEFAULT
        elif tp is ByteSize:
            try:
                value = parse_size(raw)
            except ValueError as exc:
                self.fail(path, str(exc))
                return _NO_DEFAULT
        elif tp is bool:
            if not isinstance(raw, bool):
                self.fail(path, f"expected true or false, got {_type_name(raw)}")
                return _NO_DEFAULT
            value = raw
        elif tp is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                self.fail(path, f"expected an integer, got {_type_name(raw)}")
                return _NO_DEFAULT
            value = raw
        elif tp is float:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                self.fail(path, f"expected a number, got {_type_name(raw)}")
                return _NO_DEFAULT
            value = float(raw)
        elif tp is str:
            if not isinstance(raw, str):
                self.fail(path, f"expected a string, got {_type_name(raw)}")
                return _NO_DEFAULT
            value = raw
            pattern = meta.get("pattern")
            if pattern is not None and not _matches(pattern, raw):
                self.fail(path, f"{raw!r} does not match {pattern}")
                return _NO_DEFAULT
            max_length = meta.get("max_length")
            if max_length is not None and len(raw) > max_length:
                self.fail(path, f"must be at most {max_length} characters")
                return _NO_DEFAULT
        else:  # pragma: no cover - a programming error in a section declaration
            raise TypeError(f"unsupported spec field type {tp!r}")
        minimum, maximum = meta.get("minimum"), meta.get("maximum")
        if minimum is not None and value < minimum:
            self.fail(path, f"must be at least {minimum:g}, got {raw}")
        if maximum is not None and value > maximum:
            self.fail(path, f"must be at most {maximum:g}, got {raw}")
        return value

    def section(self, cls: type[T], raw: Any, path: str) -> T:
        if not isinstance(raw, dict):
            self.fail(path, f"expected a mapping, got {_type_name(raw)}")
            return typing.cast(T, _NO_DEFAULT)
        hints = _hints(cls)
        fields = dataclasses.fields(typing.cast(Any, cls))
        known = {yaml_key(field) for field in fields}
        for key in raw:
            if key not in known:
                hint = ", ".join(sorted(known))
                self.fail(_key(path, str(key)), f"unknown field (known fields: {hint})")
        values: dict[str, Any] = {}
        for field in fields:
            key = yaml_key(field)
            fpath = _key(path, key)
            if key in raw:
                values[field.name] = self.value(hints[field.name], raw[key], fpath, field.metadata)
            elif field.metadata["default"] is not _NO_DEFAULT:
                default = field.metadata["default"]
                values[field.name] = (
                    None
                    if default is None
                    else self.value(hints[field.name], default, fpath, field.metadata)
                )
            else:
                self.fail(fpath, "required field is missing")
                values[field.name] = _NO_DEFAULT
        if any(value is _NO_DEFAULT for value in values.values()):
            return typing.cast(T, _NO_DEFAULT)
        return cls(**values)


def _matches(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


def parse_section(cls: type[T], raw: Any, path: str) -> tuple[T | None, list[SpecError]]:
    """Parse ``raw`` into ``cls``; on any problem return None and every error found."""
    parser = _Parser()
    result = parser.section(cls, raw, path)
    if parser.errors or result is _NO_DEFAULT:
        return None, parser.errors
    return result, []


# --- OpenAPI v3 (structural, as the CRD publishes it) ----------------------------


def openapi_schema(cls: type) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a spec section, defaults included."""
    hints = _hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in dataclasses.fields(cls):
        key = yaml_key(field)
        meta = field.metadata
        schema = _type_schema(hints[field.name], meta)
        schema["description"] = meta["doc"]
        default = meta["default"]
        if default is _NO_DEFAULT:
            required.append(key)
        elif default is not None:
            schema["default"] = default
        properties[key] = schema
    result: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    return result


def _type_schema(tp: Any, meta: typing.Mapping[str, Any]) -> dict[str, Any]:
    optional, tp = _is_optional(tp)
    origin = get_origin(tp)
    schema: dict[str, Any]
    if dataclasses.is_dataclass(tp):
        schema = openapi_schema(typing.cast(type, tp))
    elif origin in (list, tuple):
        schema = {"type": "array", "items": _type_schema(get_args(tp)[0], {})}
        if meta.get("min_items") is not None:
            schema["minItems"] = meta["min_items"]
        if meta.get("max_items") is not None:
            schema["maxItems"] = meta["max_items"]
    elif origin in (dict, Mapping):
        schema = {"type": "object", "additionalProperties": _type_schema(get_args(tp)[1], {})}
    elif origin is Literal:
        choices = list(get_args(tp))
        numeric = [int(choice) for choice in choices if choice.isdigit()]
        if numeric:  # written unquoted, YAML makes these numbers: accept both spellings
            schema = {"x-kubernetes-int-or-string": True, "enum": choices + numeric}
        else:
            schema = {"type": "string", "enum": choices}
    elif tp is Duration:
        schema = {"type": "string", "pattern": DURATION_PATTERN}
    elif tp is ByteSize:
        schema = {"x-kubernetes-int-or-string": True, "pattern": SIZE_PATTERN}
    elif tp is bool:
        schema = {"type": "boolean"}
    elif tp is int:
        schema = {"type": "integer"}
    elif tp is float:
        schema = {"type": "number"}
    elif tp is str:
        schema = {"type": "string"}
        if meta.get("pattern") is not None:
            schema["pattern"] = meta["pattern"]
        if meta.get("max_length") is not None:
            schema["maxLength"] = meta["max_length"]
    else:  # pragma: no cover - a programming error in a section declaration
        raise TypeError(f"unsupported spec field type {tp!r}")
    if meta.get("minimum") is not None:
        schema["minimum"] = meta["minimum"]
    if meta.get("maximum") is not None:
        schema["maximum"] = meta["maximum"]
    if optional:
        schema["nullable"] = True
    return schema

"""``ceal.yaml`` read strictly: what YAML and pydantic would quietly reinterpret is refused.

PyYAML keeps the last of two equal keys, recurses once per nesting level and
reads any bytes it can; pydantic's lax mode turns ``true`` into ``1`` for an
integer field and accepts ``.inf`` for a float. A configuration decides what
a nightly round buys, so each of these is an error naming the file, the key and
the fix:

- the file: UTF-8 text without NUL bytes, at most :data:`MAX_CONFIG_BYTES`;
- YAML: no key twice in a mapping, at most :data:`MAX_DEPTH` levels;
- values (:func:`check_values`): a boolean only where the schema has a
  boolean, numbers finite, whole numbers within ``[-2**31, 2**31)``, strings
  (paths, names) without NUL bytes.
"""

from __future__ import annotations

import math
import typing
from pathlib import Path

import yaml

MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 16
MAX_INT = 2**31


class StrictYamlError(ValueError):
    """A configuration file that is ambiguous, malformed or out of bounds (the message says where)."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses repeated keys and nesting deeper than :data:`MAX_DEPTH`."""

    def __init__(self, stream, where: str):
        super().__init__(stream)
        self.where, self.depth = where, 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise StrictYamlError(f"{self.where}: nested more than {MAX_DEPTH} levels deep (line {mark.line + 1}); "
                                      "ceal.yaml has sections of plain keys")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise StrictYamlError(f"{self.where}: line {key_node.start_mark.line + 1}: a mapping key must be a "
                                      "plain name") from None
            if key in seen:
                raise StrictYamlError(
                    f"{self.where}: the key {key!r} is given twice (lines {seen[key] + 1} and "
                    f"{key_node.start_mark.line + 1}); YAML would keep only the last: give it once")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_yaml_file(path: Path) -> object:
    """The YAML document in ``path``, read strictly (see the module docstring)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise StrictYamlError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise StrictYamlError(f"{path}: {len(data)} bytes; a configuration file is at most {MAX_CONFIG_BYTES}")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise StrictYamlError(f"{path}: holds a NUL byte (offset {nul}); save it as plain UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise StrictYamlError(f"{path}: line {line} is not UTF-8 (byte {data[exc.start]:#04x}); save the file as "
                              "UTF-8") from None
    loader = _StrictLoader(text, str(path))
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise StrictYamlError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _field_annotation(model, section: str, key: str):
    section_field = model.model_fields.get(section)
    if section_field is None or not hasattr(section_field.annotation, "model_fields"):
        return None
    field = section_field.annotation.model_fields.get(key)
    return None if field is None else field.annotation


def _allows_bool(annotation) -> bool:
    if annotation is bool:
        return True
    return any(_allows_bool(arg) for arg in typing.get_args(annotation) if arg is not type(None))


def value_problem(value: object, annotation) -> str | None:
    """Why ``value`` is refused for a field of type ``annotation`` (None: fine as far as bounds go)."""
    if isinstance(value, bool):
        if annotation is not None and not _allows_bool(annotation):
            return f"{value!r} is a boolean, not a number or name; write the value itself"
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if isinstance(value, int) and not -MAX_INT <= value < MAX_INT:
        return f"{value} is out of range (at most {MAX_INT - 1})"
    if isinstance(value, str) and "\x00" in value:
        return f"{value!r} holds a NUL byte, which no path or name may hold"
    if isinstance(value, (list, tuple)):
        for item in value:
            problem = value_problem(item, None)
            if problem:
                return problem
    return None


def check_values(sections: dict, where: str, model) -> None:
    """Refuse booleans where ``model`` (the project configuration's pydantic model) has no
    boolean, non-finite numbers, out-of-range whole numbers and NUL bytes, every problem at once."""
    problems = []
    for section, values in sections.items():
        if section == "preset" or not isinstance(values, dict):
            continue
        for key, value in values.items():
            problem = value_problem(value, _field_annotation(model, str(section), str(key)))
            if problem:
                problems.append(f"  {section}.{key}: {problem} (in {where})")
    if problems:
        raise StrictYamlError(f"the project configuration is not valid ({where}):\n" + "\n".join(problems))

"""Dagster config fields made from the ``ceal.yaml`` schema, so a field is described once.

:mod:`ceal_pipeline.configuration.schema` is the one definition of every
configurable value (name, type, bounds, description). The Launchpad's run
config classes and the resources' fields are built from it here: a field added
to ``RoundSection`` appears in the Launchpad with no second edit.

Dagster's config types are narrower than pydantic's: a union of a ``Literal``
and a number (``round.prior``) becomes a string there, which the schema parses
when the values are resolved (:func:`ceal_pipeline.defs.acquisition.config.round_parameters`),
and an optional ``Literal`` an optional ``Enum`` of the same values.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any, Literal, Optional, Union

import annotated_types
import dagster as dg
import pydantic
from pydantic import BaseModel, Field
from pydantic.fields import FieldInfo

_BOUNDS = {annotated_types.Ge: "ge", annotated_types.Gt: "gt", annotated_types.Le: "le", annotated_types.Lt: "lt"}


def bounds(info: FieldInfo) -> dict[str, Any]:
    """The numeric bounds of a schema field as ``Field`` keywords (``{"ge": 1}``)."""
    found = {}
    for item in info.metadata:
        for kind, keyword in _BOUNDS.items():
            if isinstance(item, kind):
                found[keyword] = getattr(item, keyword)
    return found


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def dagster_type(annotation: Any, name: str) -> Any:
    """The Dagster-expressible type of a schema annotation (``name`` names the class of a nested section)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return config_class(annotation, name, optional=False)
    if _is_union(annotation):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = dagster_type(members[0], name) if len(members) == 1 else str  # e.g. Literal[...] | float
        return Optional[inner] if len(members) < len(typing.get_args(annotation)) else inner
    if typing.get_origin(annotation) in (Literal, list) or annotation in (int, float, bool, str):
        return annotation
    raise TypeError(
        f"{name}: the schema type {annotation!r} has no Dagster config type; map it in "
        "ceal_pipeline/defs/config_fields.py:dagster_type"
    )


def schema_field(section: type[BaseModel], name: str, *, default: Any = ..., note: str = "") -> tuple[Any, FieldInfo]:
    """``(type, Field)`` of ``section``'s field ``name`` for a Dagster class: the schema's type,
    bounds and description (plus ``note``); ``default`` (``...``: required)."""
    info = section.model_fields[name]
    description = info.description or name
    return dagster_type(info.annotation, f"{section.__name__}_{name}"), Field(
        default=default, description=f"{description}{note}", **bounds(info)
    )


def _choices(kind: Any, name: str) -> Any:
    """``kind``, a ``Literal`` as a string ``Enum`` of its values (Dagster has no optional ``Literal``)."""
    if typing.get_origin(kind) is Literal:
        return enum.Enum(name, {str(v): str(v) for v in typing.get_args(kind)}, type=str, module=__name__)
    return kind


def override_field(section: type[BaseModel], name: str, where: str) -> tuple[Any, FieldInfo]:
    """An optional field overriding the deployment's ``where`` (e.g. ``ceal.yaml round.k``):
    None (the default) keeps the deployment's value, so "Materialize" works as is."""
    kind, info = schema_field(section, name, default=None, note=f" (unset: {where})")
    members = [a for a in typing.get_args(kind) if a is not type(None)] if _is_union(kind) else [kind]
    enum_name = "".join(part.title() for part in f"{section.__name__}_{name}".split("_"))
    return Optional[_choices(members[0], enum_name)], info


def plain(values: dict[str, Any]) -> dict[str, Any]:
    """A Dagster config's ``model_dump()`` with its enum members as their values."""
    return {k: v.value if isinstance(v, enum.Enum) else v for k, v in values.items()}


def _schema_default(info: FieldInfo) -> Any:
    return ... if info.is_required() or info.default_factory is not None else info.default


def config_fields(
    section: type[BaseModel], fields: dict[str, str] | None = None, *, optional: bool, where: str = ""
) -> dict[str, tuple[Any, FieldInfo]]:
    """Field definitions of ``section`` for :func:`dagster_class`. ``fields`` maps the class's
    field names to the section's (default: every field, same name). ``optional``: every
    field defaults to None, the deployment's value (``where`` + the section's field name,
    for the descriptions); otherwise every field is required, as in the schema."""
    fields = fields if fields is not None else {f: f for f in section.model_fields}
    return {
        own: override_field(section, theirs, f"{where}{theirs}") if optional
        else schema_field(section, theirs, default=_schema_default(section.model_fields[theirs]))
        for own, theirs in fields.items()
    }


def dagster_class(name: str, definitions: dict, *, doc: str, base: type = dg.Config, module: str = __name__) -> type:
    """A Dagster class (``base``: ``dg.Config`` or ``dg.ConfigurableResource``) with these fields."""
    model = pydantic.create_model(name, __base__=base, __module__=module, **definitions)
    model.__doc__ = doc
    return model


def config_class(section: type[BaseModel], name: str, *, optional: bool) -> type:
    """A nested section as a ``dg.Config`` class of its own (every field as in the schema)."""
    return dagster_class(name, config_fields(section, optional=optional), doc=section.__doc__ or name)

"""NGSI-LD entities: parsed from what a caller sends, kept by IRI, rendered in its terms.

An :class:`Entity` holds expanded IRIs only (its types, its attributes' names, their
sub-attributes' names); a :class:`~smartpole.ngsild.context.Context` turns the caller's terms into
them (:func:`parse_entity`) and back (:func:`render`). Both the normalized representation and the
concise one (a bare value is a Property, ``{"object": …}`` a Relationship, …) are read; the
normalized one, ``keyValues`` (simplified) and ``concise`` are written.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from smartpole.ngsild.context import Context
from smartpole.ngsild.errors import NgsiLdError
from smartpole.ngsild.geo import geometry_of

__all__ = [
    "KINDS",
    "NULL",
    "Attribute",
    "Entity",
    "Representation",
    "iso",
    "parse_attribute",
    "parse_attributes",
    "parse_entity",
    "parse_lang",
    "parse_scopes",
    "parse_time",
    "pick_language",
    "render",
    "render_attribute",
    "require_any",
]

# Each attribute type and the member its value is kept in.
NULL = "urn:ngsi-ld:null"  # NGSI-LD Null: a merge's value that deletes, a deletion's value
KINDS: dict[str, str] = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "JsonProperty": "json",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
    "VocabProperty": "vocab",
}
_VALUE_MEMBERS = {member: kind for kind, member in KINDS.items() if kind != "GeoProperty"}
# Members of an attribute that are not sub-attributes.
_META = frozenset(
    {"type", "datasetId", "observedAt", "unitCode", "createdAt", "modifiedAt", "lang", "@context"}
    | set(KINDS.values())
)
_ENTITY_MEMBERS = frozenset({"id", "type", "scope", "createdAt", "modifiedAt", "@context"})
# Attribute names the standard reserves for geometry, validated as GeoJSON.
GEO_NAMES = frozenset({"location", "observationSpace", "operationSpace"})
_FORBIDDEN_NAME = re.compile(r"[<>\"'=;()\s]")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
MAX_ID = 256


@functools.lru_cache(maxsize=4096)
def iso(ms: int) -> str:
    """Milliseconds since the epoch as the standard's DateTime (UTC, ``Z``), milliseconds
    only when there are some (``…T12:03:00Z`` as most callers send it); cached, as a batch
    stamps every instance with the same few times."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")[:-6] + "Z"


def parse_time(text: Any, what: str) -> int:
    """A DateTime as milliseconds since the epoch (BadRequestData when it is none)."""
    if not isinstance(text, str):
        raise NgsiLdError.bad_data(f"{what} must be a DateTime string")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as err:
        raise NgsiLdError.bad_data(f"{what} is not an ISO 8601 DateTime: {text!r}") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass(slots=True)
class Attribute:
    """One instance of an attribute (or a sub-attribute), names expanded."""

    kind: str
    value: Any
    dataset_id: str | None = None
    observed_at: int | None = None
    unit_code: str | None = None
    sub: dict[str, Attribute] = field(default_factory=dict)
    created_at: int = 0
    modified_at: int = 0

    def to_json(self) -> dict[str, Any]:
        """The stored form (short member names)."""
        out: dict[str, Any] = {"k": self.kind, "v": self.value, "c": self.created_at}
        if self.modified_at != self.created_at:
            out["m"] = self.modified_at
        if self.dataset_id is not None:
            out["d"] = self.dataset_id
        if self.observed_at is not None:
            out["o"] = self.observed_at
        if self.unit_code is not None:
            out["u"] = self.unit_code
        if self.sub:
            out["s"] = {name: sub.to_json() for name, sub in self.sub.items()}
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Attribute:
        """Back from :meth:`to_json`."""
        created = raw.get("c", 0)
        return cls(
            raw["k"],
            raw["v"],
            raw.get("d"),
            raw.get("o"),
            raw.get("u"),
            {name: cls.from_json(sub) for name, sub in raw.get("s", {}).items()},
            created,
            raw.get("m", created),
        )

    def stamped(self, now: int, created: int | None = None) -> Attribute:
        """This instance with its system times set (``created``: kept from an older one)."""
        self.created_at = now if created is None else created
        self.modified_at = now
        for sub in self.sub.values():
            sub.stamped(now)
        return self


@dataclass(slots=True)
class Entity:
    """An entity: its id, types, scopes and attributes (each a list of instances, one per
    ``datasetId``; the default instance has none)."""

    id: str
    types: list[str]
    attrs: dict[str, list[Attribute]] = field(default_factory=dict)
    scopes: list[str] | None = None
    created_at: int = 0
    modified_at: int = 0

    def instance(self, name: str, dataset_id: str | None) -> Attribute | None:
        """The attribute's instance with that dataset id (None: the default one)."""
        for item in self.attrs.get(name, ()):
            if item.dataset_id == dataset_id:
                return item
        return None

    def put(self, name: str, attribute: Attribute) -> None:
        """Add or replace the instance of ``name`` with the same dataset id."""
        instances = self.attrs.setdefault(name, [])
        for i, item in enumerate(instances):
            if item.dataset_id == attribute.dataset_id:
                instances[i] = attribute
                return
        instances.append(attribute)

    def write(self, name: str, attribute: Attribute, now: int) -> None:
        """Put ``attribute`` stamped ``now``, keeping the creation time of the instance (same
        dataset id) it replaces."""
        old = self.instance(name, attribute.dataset_id)
        self.put(name, attribute.stamped(now, None if old is None else old.created_at))

    def lacking(
        self, attrs: dict[str, list[Attribute]]
    ) -> tuple[dict[str, list[Attribute]], list[str]]:
        """Of ``attrs``, the instances this entity lacks (by name and dataset id), and the
        names of those it has: what ``noOverwrite`` writes and what it keeps."""
        new: dict[str, list[Attribute]] = {}
        kept: list[str] = []
        for name, instances in attrs.items():
            for attribute in instances:
                if self.instance(name, attribute.dataset_id) is None:
                    new.setdefault(name, []).append(attribute)
                elif name not in kept:
                    kept.append(name)
        return new, kept

    def next_stamp(self, now: int) -> int:
        """The time to stamp a change to this entity with: ``now``, or just after its last
        change if that is not earlier (two writers in one millisecond), so that every change
        is later than the one before it and its attributes are told from those of the last."""
        return max(now, self.modified_at + 1)

    def write_all(self, attrs: dict[str, list[Attribute]], now: int) -> None:
        """:meth:`write` each instance of ``attrs``."""
        for name, instances in attrs.items():
            for attribute in instances:
                self.write(name, attribute, now)

    def attrs_json(self) -> dict[str, Any]:
        """The stored form of the attributes."""
        return {name: [a.to_json() for a in items] for name, items in self.attrs.items()}


class Representation:
    """How an answer shows entities (``options`` and ``format``)."""

    NORMALIZED = "normalized"
    KEY_VALUES = "keyValues"
    CONCISE = "concise"


def _check_name(name: str) -> None:
    # "@…" is JSON-LD's: a keyword, or reserved for one
    if not name or name.startswith("@") or _FORBIDDEN_NAME.search(name):
        raise NgsiLdError.bad_data(f"{name!r} is not a valid attribute name")


def check_id(value: Any, what: str = "id") -> str:
    """An entity id (or a relationship's object): an absolute URI."""
    if not isinstance(value, str) or not _URI.match(value) or len(value) > MAX_ID:
        raise NgsiLdError.bad_data(f"{what} must be a URI (urn:ngsi-ld:…) of at most {MAX_ID}")
    return value


def parse_attribute(name: str, raw: Any, ctx: Context, *, top: bool = True) -> Attribute:
    """One attribute instance as a caller sent it, normalized or concise."""
    _check_name(name)
    if not isinstance(raw, dict):
        if raw is None:
            raise NgsiLdError.bad_data(f"attribute {name!r} has a null value")
        return Attribute("Property", raw)
    kind = raw.get("type")
    if kind is None:
        kind = next((k for member, k in _VALUE_MEMBERS.items() if member in raw), None)
        if kind is None:
            if top and name in GEO_NAMES and "coordinates" in raw:
                return Attribute("GeoProperty", geometry_of(raw, name))
            raise NgsiLdError.bad_data(f"attribute {name!r} has no type and no value")
        if kind == "Property" and name in GEO_NAMES and isinstance(raw.get("value"), dict):
            kind = "GeoProperty"
    if not isinstance(kind, str) or kind not in KINDS:
        raise NgsiLdError.bad_data(f"attribute {name!r} has an unknown type {kind!r}")
    member = KINDS[kind]
    if member not in raw or raw[member] is None:
        raise NgsiLdError.bad_data(f"attribute {name!r} ({kind}) has no {member!r}")
    value = raw[member]
    if kind == "GeoProperty":
        value = geometry_of(value, name)
    elif kind == "Relationship":
        if isinstance(value, list):
            value = [check_id(v, f"{name}.object") for v in value]
        else:
            value = check_id(value, f"{name}.object")
    elif kind == "LanguageProperty" and not isinstance(value, dict):
        raise NgsiLdError.bad_data(f"attribute {name!r}: languageMap must be an object")
    elif kind in ("ListProperty", "ListRelationship") and not isinstance(value, list):
        raise NgsiLdError.bad_data(f"attribute {name!r}: {member} must be an array")
    dataset = raw.get("datasetId")
    if dataset is not None:
        dataset = check_id(dataset, f"{name}.datasetId")
    observed = raw.get("observedAt")
    unit = raw.get("unitCode")
    if unit is not None and not isinstance(unit, str):
        raise NgsiLdError.bad_data(f"attribute {name!r}: unitCode must be a string")
    attribute = Attribute(
        kind,
        value,
        dataset,
        None if observed is None else parse_time(observed, f"{name}.observedAt"),
        unit,
    )
    for sub_name, sub_raw in raw.items():
        if sub_name in _META:
            continue
        attribute.sub[ctx.expand(sub_name)] = parse_attribute(sub_name, sub_raw, ctx, top=False)
    return attribute


def parse_attributes(
    body: dict[str, Any], ctx: Context, *, over_time: bool = False
) -> dict[str, list[Attribute]]:
    """The attributes of a body (entity members skipped), each as a list of instances: one
    per datasetId, or (``over_time``, the temporal API) any number, one per moment."""
    attrs: dict[str, list[Attribute]] = {}
    for name, raw in body.items():
        if name in _ENTITY_MEMBERS:
            continue
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise NgsiLdError.bad_data(f"attribute {name!r} is an empty array")
        parsed = [parse_attribute(name, item, ctx) for item in items]
        if not over_time and len({a.dataset_id for a in parsed}) != len(parsed):
            raise NgsiLdError.bad_data(f"attribute {name!r} repeats a datasetId")
        attrs[ctx.expand(name)] = parsed
    return attrs


def parse_types(raw: Any, ctx: Context) -> list[str]:
    """An entity's ``type`` member: one name or a list, expanded."""
    names = raw if isinstance(raw, list) else [raw]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise NgsiLdError.bad_data("type must be a name or a list of names")
    for name in names:
        _check_name(name)
    expanded: dict[str, None] = {}
    for name in names:
        iri = ctx.expand(name)
        if iri.startswith("@"):  # "type", "id": the core context's aliases of keywords
            raise NgsiLdError.bad_data(f"{name!r} names a JSON-LD keyword ({iri}), not a type")
        expanded[iri] = None
    return list(expanded)


def parse_entity(body: Any, ctx: Context, *, id_required: bool = True) -> Entity:
    """A whole entity as a caller sent it (create, replace, upsert)."""
    if not isinstance(body, dict):
        raise NgsiLdError.bad_data("an entity must be a JSON object")
    entity_id = "" if body.get("id") is None and not id_required else check_id(body.get("id"))
    if "type" not in body:
        raise NgsiLdError.bad_data("an entity needs a type")
    scopes = parse_scopes(body["scope"]) if body.get("scope") is not None else None
    return Entity(entity_id, parse_types(body["type"], ctx), parse_attributes(body, ctx), scopes)


def parse_scopes(raw: Any) -> list[str]:
    """An entity's ``scope`` member: one path or a list of them."""
    scopes = raw if isinstance(raw, list) else [raw]
    if not scopes or not all(isinstance(s, str) and s.startswith("/") for s in scopes):
        raise NgsiLdError.bad_data("scope must be one or more paths like /Madrid/Gardens")
    return list(dict.fromkeys(scopes))


def parse_lang(text: str) -> tuple[str, ...]:
    """A ``lang`` parameter (``zh``, ``zh-CN,en;q=0.8``, ``*``): the language tags, most
    wanted first (clause 4.15; weights as in Accept-Language)."""
    weighted: list[tuple[float, int, str]] = []
    for i, part in enumerate(text.split(",")):
        tag, _, weight = part.strip().partition(";q=")
        if not tag or _FORBIDDEN_NAME.search(tag):
            raise NgsiLdError.bad_data(f"lang: {part.strip()!r} is not a language tag")
        try:
            q = float(weight) if weight else 1.0
        except ValueError:
            raise NgsiLdError.bad_data(f"lang: bad weight in {part.strip()!r}") from None
        if not 0 <= q <= 1:
            raise NgsiLdError.bad_data(f"lang: a weight is between 0 and 1, not {q}")
        weighted.append((-q, i, tag.strip()))
    return tuple(tag for _, _, tag in sorted(weighted))


def pick_language(language_map: dict[str, Any], wanted: tuple[str, ...]) -> tuple[str, Any]:
    """The (tag, text) of a LanguageProperty a caller asks for: the first wanted tag the map
    has (``zh`` also takes ``zh-CN``), ``*`` any; else the map's ``@none``, else its first."""
    for tag in wanted:
        if tag == "*" and language_map:
            first = next(iter(language_map))
            return first, language_map[first]
        if tag in language_map:
            return tag, language_map[tag]
        primary = tag.split("-")[0].lower()
        for have, text in language_map.items():
            if have.split("-")[0].lower() == primary:
                return have, text
    if "@none" in language_map:
        return "@none", language_map["@none"]
    first = next(iter(language_map), "@none")
    return first, language_map.get(first)


def render_attribute(
    attribute: Attribute,
    ctx: Context,
    representation: str,
    sys_attrs: bool,
    lang: tuple[str, ...] | None = None,
) -> Any:
    if (
        lang is not None
        and attribute.kind == "LanguageProperty"
        and isinstance(attribute.value, dict)
    ):
        tag, text = pick_language(attribute.value, lang)
        if representation == Representation.KEY_VALUES:
            return text
        shown = render_attribute(
            replace(attribute, kind="Property", value=text), ctx, representation, sys_attrs
        )
        return {**shown, "lang": tag} if isinstance(shown, dict) else {"value": text, "lang": tag}
    if representation == Representation.KEY_VALUES:
        return attribute.value
    out: dict[str, Any] = {}
    if representation == Representation.NORMALIZED or attribute.kind not in (
        "Property",
        "Relationship",
        "GeoProperty",
        "LanguageProperty",
    ):
        out["type"] = attribute.kind
    out[KINDS[attribute.kind]] = attribute.value
    if attribute.observed_at is not None:
        out["observedAt"] = iso(attribute.observed_at)
    if attribute.unit_code is not None:
        out["unitCode"] = attribute.unit_code
    if attribute.dataset_id is not None:
        out["datasetId"] = attribute.dataset_id
    if sys_attrs:
        out["createdAt"] = iso(attribute.created_at)
        out["modifiedAt"] = iso(attribute.modified_at)
    for name, sub in attribute.sub.items():
        out[ctx.compact(name)] = render_attribute(sub, ctx, representation, sys_attrs)
    if representation == Representation.CONCISE and list(out) == ["value"]:
        return out["value"]
    return out


def render(
    entity: Entity,
    ctx: Context,
    *,
    representation: str = Representation.NORMALIZED,
    sys_attrs: bool = False,
    attrs: frozenset[str] | None = None,
    datasets: frozenset[str | None] | None = None,
    lang: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """An entity in the caller's terms (``attrs``: only these expanded names; ``datasets``:
    only the instances of these dataset ids, None the default one; ``lang``: each
    LanguageProperty as a Property in the language most wanted)."""
    types = [ctx.compact(t) for t in entity.types]
    out: dict[str, Any] = {"id": entity.id, "type": types[0] if len(types) == 1 else types}
    if entity.scopes:
        out["scope"] = entity.scopes[0] if len(entity.scopes) == 1 else entity.scopes
    if sys_attrs and representation != Representation.KEY_VALUES:
        out["createdAt"] = iso(entity.created_at)
        out["modifiedAt"] = iso(entity.modified_at)
    for name, instances in entity.attrs.items():
        if attrs is not None and name not in attrs:
            continue
        if datasets is not None:
            instances = [a for a in instances if a.dataset_id in datasets]
            if not instances:
                continue
        shown = [render_attribute(a, ctx, representation, sys_attrs, lang) for a in instances]
        if representation == Representation.KEY_VALUES and len(instances) > 1:
            default = next((a for a in instances if a.dataset_id is None), instances[0])
            out[ctx.compact(name)] = default.value
        else:
            out[ctx.compact(name)] = shown[0] if len(shown) == 1 else shown
    return out


def require_any(entity: Entity, attrs: Collection[str] | None) -> None:
    """ResourceNotFound when an entity asked for with ``attrs`` (IRIs) has none of them."""
    if attrs is not None and not any(a in entity.attrs for a in attrs):
        raise NgsiLdError.not_found(f"entity {entity.id} has none of the attributes asked for")

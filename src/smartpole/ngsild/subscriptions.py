"""NGSI-LD subscriptions (ETSI GS CIM 009, clause 5.2.12): what a subscriber asks to hear of,
checked on the way in, kept per tenant (``ngsi_subscriptions``), matched against changes.

A subscription names entities (``entities``: types, ids, id patterns) and/or
``watchedAttributes``, narrowed by ``q`` and ``geoQ``; it is told through
``notification.endpoint.uri`` (http or https) with the ``attributes`` and ``format`` it asked for,
at most once per ``throttling`` seconds, or every ``timeInterval`` seconds with the current state.
Names are expanded with the @context it was made with, which is kept to show it back and to
compact what it is sent.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from smartpole.ngsild.context import Context
from smartpole.ngsild.endpoints import check_endpoint
from smartpole.ngsild.entities import Entity, check_id, iso, parse_time
from smartpole.ngsild.errors import NgsiLdError
from smartpole.ngsild.geo import GeoQuery, parse_geo_query
from smartpole.ngsild.patterns import caller_pattern
from smartpole.ngsild.query import Predicate, parse_q, parse_scope_q
from smartpole.ngsild.tables import ngsi_subscriptions as t

__all__ = [
    "FORMATS",
    "Selector",
    "Status",
    "Subscription",
    "SubscriptionStore",
    "Watching",
    "parse_subscription",
    "render_subscription",
]

FORMATS = ("normalized", "keyValues", "concise")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
ACCEPTS = ("application/json", "application/ld+json")
# What a subscription may be told of (clause 5.2.12); attributeDeleted is not supported yet.
TRIGGERS = frozenset(
    {"entityCreated", "entityUpdated", "entityDeleted", "attributeCreated", "attributeUpdated"}
)
DEFAULT_TRIGGERS = frozenset(
    {"entityCreated", "entityUpdated", "attributeCreated", "attributeUpdated"}
)
_MEMBERS = frozenset(
    {
        "id",
        "type",
        "subscriptionName",
        "description",
        "entities",
        "watchedAttributes",
        "q",
        "geoQ",
        "notification",
        "throttling",
        "timeInterval",
        "isActive",
        "expiresAt",
        "notificationTrigger",
        "scopeQ",
        "lang",
        "csf",
        "@context",
    }
)


@dataclass(frozen=True, slots=True)
class Selector:
    """One ``entities`` item: a type (IRI) and optionally an id or an id pattern."""

    type: str
    id: str | None = None
    id_pattern: str | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription as kept (names expanded)."""

    id: str
    entities: tuple[Selector, ...]
    watched: tuple[str, ...] | None
    q: str | None
    geo_q: dict[str, Any] | None
    attributes: tuple[str, ...] | None
    format: str
    uri: str
    accept: str
    receiver_info: tuple[tuple[str, str], ...]
    throttling: int | None  # seconds
    time_interval: int | None  # seconds
    active: bool
    expires_at: int | None  # ms
    name: str | None
    description: str | None
    scope_q: str | None = None
    triggers: frozenset[str] = DEFAULT_TRIGGERS

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "entities": [[s.type, s.id, s.id_pattern] for s in self.entities],
            "watched": list(self.watched) if self.watched is not None else None,
            "q": self.q,
            "geoQ": self.geo_q,
            "attributes": list(self.attributes) if self.attributes is not None else None,
            "format": self.format,
            "uri": self.uri,
            "accept": self.accept,
            "receiverInfo": [list(p) for p in self.receiver_info],
            "throttling": self.throttling,
            "timeInterval": self.time_interval,
            "isActive": self.active,
            "expiresAt": self.expires_at,
            "name": self.name,
            "description": self.description,
            "scopeQ": self.scope_q,
            "notificationTrigger": sorted(self.triggers),
        }

    @classmethod
    def from_json(cls, sub_id: str, raw: dict[str, Any]) -> Subscription:
        """Back from :meth:`to_json`."""
        return cls(
            sub_id,
            tuple(Selector(*s) for s in raw["entities"]),
            tuple(raw["watched"]) if raw["watched"] is not None else None,
            raw["q"],
            raw["geoQ"],
            tuple(raw["attributes"]) if raw["attributes"] is not None else None,
            raw["format"],
            raw["uri"],
            raw["accept"],
            tuple((str(k), str(v)) for k, v in raw["receiverInfo"]),
            raw["throttling"],
            raw["timeInterval"],
            raw["isActive"],
            raw["expiresAt"],
            raw["name"],
            raw["description"],
            raw.get("scopeQ"),
            frozenset(raw.get("notificationTrigger", DEFAULT_TRIGGERS)),
        )


@dataclass(frozen=True, slots=True)
class Status:
    """The truth about a subscription's notifications."""

    times_sent: int = 0
    times_failed: int = 0
    last_notification: int | None = None
    last_success: int | None = None
    last_failure: int | None = None
    created: int = 0
    modified: int = 0


class Watching:
    """A subscription ready to be matched: its ``q`` and ``geoQ`` parsed in its context."""

    def __init__(self, tenant_id: int, sub: Subscription, ctx: Context) -> None:
        self.tenant_id = tenant_id
        self.sub = sub
        self.ctx = ctx
        self.q: Predicate | None = parse_q(sub.q, ctx) if sub.q else None
        self.scope_q: Predicate | None = parse_scope_q(sub.scope_q) if sub.scope_q else None
        self.geo: GeoQuery | None = _geo(sub.geo_q)
        self._patterns = [
            caller_pattern(s.id_pattern, "idPattern") if s.id_pattern else None
            for s in sub.entities
        ]

    def selects(self, entity: Entity) -> bool:
        """Whether the entity is one the subscription names (by type, id, id pattern)."""
        if not self.sub.entities:
            return True
        for selector, pattern in zip(self.sub.entities, self._patterns, strict=True):
            if selector.type not in entity.types:
                continue
            if selector.id is not None and selector.id != entity.id:
                continue
            if pattern is not None and not pattern.fullmatch(entity.id):
                continue
            return True
        return False

    def _live(self, now: int) -> bool:
        sub = self.sub
        if not sub.active or sub.time_interval is not None:
            return False
        return sub.expires_at is None or sub.expires_at > now

    def matches(self, entity: Entity, changed: set[str], now: int) -> bool:
        """Whether a change of ``changed`` attributes of ``entity`` is to be notified."""
        sub = self.sub
        if not self._live(now):
            return False
        if sub.watched is not None and not changed.intersection(sub.watched):
            return False
        if not self.selects(entity) or not self._triggered(entity, changed):
            return False
        if self.q is not None and not self.q(entity):
            return False
        if self.scope_q is not None and not self.scope_q(entity):
            return False
        return self.geo is None or self.geo.locates(entity.attrs)

    def matches_deletion(self, entity: Entity, now: int) -> bool:
        """Whether the deletion of ``entity`` (as it was) is to be notified."""
        if not self._live(now) or "entityDeleted" not in self.sub.triggers:
            return False
        if self.scope_q is not None and not self.scope_q(entity):
            return False
        return self.selects(entity)

    def _triggered(self, entity: Entity, changed: set[str]) -> bool:
        """Whether the kind of change is one of the subscription's ``notificationTrigger``."""
        triggers = self.sub.triggers
        if DEFAULT_TRIGGERS <= triggers:
            return True
        created = entity.created_at == entity.modified_at
        if ("entityCreated" if created else "entityUpdated") in triggers:
            return True
        watched = changed if self.sub.watched is None else changed.intersection(self.sub.watched)
        for name in watched:
            for a in entity.attrs.get(name, ()):
                if a.modified_at != entity.modified_at:
                    continue
                kind = "attributeCreated" if a.created_at == a.modified_at else "attributeUpdated"
                if kind in triggers:
                    return True
        return False


def _geo(raw: dict[str, Any] | None) -> GeoQuery | None:
    if raw is None:
        return None
    return parse_geo_query(
        raw.get("georel"), raw.get("geometry"), raw.get("coordinates"), raw["geoproperty"]
    )


def _seconds(raw: Any, what: str) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
        raise NgsiLdError.bad_data(f"{what} must be a positive number of seconds")
    return raw


def parse_subscription(
    body: Any, ctx: Context, *, allow_private: bool, now: int, sub_id: str | None = None
) -> Subscription:
    """A subscription as a caller sent it (create), checked; BadRequestData otherwise."""
    if not isinstance(body, dict):
        raise NgsiLdError.bad_data("a subscription must be a JSON object")
    if body.get("type", "Subscription") != "Subscription":
        raise NgsiLdError.bad_data('a subscription\'s type is "Subscription"')
    unknown = set(body) - _MEMBERS
    if unknown:
        raise NgsiLdError.bad_data(f"unknown subscription members {sorted(unknown)}")
    raw_id = body.get("id", sub_id)
    the_id = check_id(raw_id) if raw_id is not None else f"urn:ngsi-ld:Subscription:{uuid.uuid4()}"
    entities = []
    for item in body.get("entities") or []:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise NgsiLdError.bad_data("each of entities needs a type")
        pattern = item.get("idPattern")
        if pattern is not None:
            if not isinstance(pattern, str):
                raise NgsiLdError.bad_data("entities idPattern must be a string")
            caller_pattern(pattern, "entities idPattern")
        entity_id = check_id(item["id"]) if item.get("id") is not None else None
        entities.append(Selector(ctx.expand(item["type"]), entity_id, pattern))
    watched_raw = body.get("watchedAttributes")
    watched = None
    if watched_raw is not None:
        if not isinstance(watched_raw, list) or not watched_raw:
            raise NgsiLdError.bad_data("watchedAttributes must be a non-empty array of names")
        watched = tuple(ctx.expand(str(n)) for n in watched_raw)
    if not entities and watched is None:
        raise NgsiLdError.bad_data("a subscription needs entities or watchedAttributes")
    q = body.get("q")
    if q is not None:
        parse_q(str(q), ctx)  # checked now: a bad q is the creator's error, not a silent miss
    scope_q = body.get("scopeQ")
    if scope_q is not None:
        if not isinstance(scope_q, str):
            raise NgsiLdError.bad_data("scopeQ must be a string")
        parse_scope_q(scope_q)
    triggers = _triggers(body.get("notificationTrigger"))
    geo_q = body.get("geoQ")
    if geo_q is not None:
        if not isinstance(geo_q, dict):
            raise NgsiLdError.bad_data("geoQ must be an object")
        geo_q = {
            "georel": geo_q.get("georel"),
            "geometry": geo_q.get("geometry"),
            "coordinates": geo_q.get("coordinates"),
            "geoproperty": ctx.expand(str(geo_q.get("geoproperty") or "location")),
        }
        _geo(geo_q)
    notification = body.get("notification")
    if not isinstance(notification, dict) or not isinstance(notification.get("endpoint"), dict):
        raise NgsiLdError.bad_data("a subscription needs notification.endpoint")
    endpoint = notification["endpoint"]
    uri = check_endpoint(endpoint.get("uri"), allow_private=allow_private)
    accept = endpoint.get("accept", "application/json")
    if accept not in ACCEPTS:
        raise NgsiLdError.bad_data(f"notification.endpoint.accept must be one of {ACCEPTS}")
    info = endpoint.get("receiverInfo") or []
    if not isinstance(info, list) or not all(
        isinstance(i, dict)
        and isinstance(i.get("key"), str)
        and _HEADER_NAME.match(i["key"])
        and isinstance(i.get("value", ""), str)
        and str(i.get("value", "")).isascii()
        and "\n" not in str(i.get("value", ""))
        and "\r" not in str(i.get("value", ""))
        for i in info
    ):
        raise NgsiLdError.bad_data(
            "receiverInfo must be an array of {key, value}: header names and ASCII values"
        )
    fmt = notification.get("format", "normalized")
    if fmt not in FORMATS:
        raise NgsiLdError.bad_data(f"notification.format must be one of {FORMATS}")
    attributes = notification.get("attributes")
    if attributes is not None and not isinstance(attributes, list):
        raise NgsiLdError.bad_data("notification.attributes must be an array of names")
    throttling = _seconds(body.get("throttling"), "throttling")
    interval = _seconds(body.get("timeInterval"), "timeInterval")
    if interval is not None and (watched is not None or throttling is not None):
        raise NgsiLdError.bad_data(
            "timeInterval goes with neither watchedAttributes nor throttling"
        )
    expires = body.get("expiresAt")
    expires_ms = parse_time(expires, "expiresAt") if expires is not None else None
    if expires_ms is not None and expires_ms <= now:
        raise NgsiLdError.bad_data("expiresAt is in the past")
    active = body.get("isActive", True)
    if not isinstance(active, bool):
        raise NgsiLdError.bad_data("isActive must be true or false")
    return Subscription(
        the_id,
        tuple(entities),
        watched,
        str(q) if q is not None else None,
        geo_q,
        tuple(ctx.expand(str(a)) for a in attributes) if attributes is not None else None,
        fmt,
        uri,
        accept,
        tuple((str(i["key"]), str(i.get("value", ""))) for i in info),
        throttling,
        interval,
        active,
        expires_ms,
        body.get("subscriptionName"),
        body.get("description"),
        scope_q,
        triggers,
    )


def _triggers(raw: Any) -> frozenset[str]:
    if raw is None:
        return DEFAULT_TRIGGERS
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) for t in raw):
        raise NgsiLdError.bad_data("notificationTrigger must be a non-empty array of strings")
    unknown = set(raw) - TRIGGERS
    if unknown:
        raise NgsiLdError.bad_data(
            f"notificationTrigger {sorted(unknown)} not supported (supported: {sorted(TRIGGERS)})"
        )
    return frozenset(raw)


def render_subscription(
    sub: Subscription, status: Status, ctx: Context, *, sys_attrs: bool, now: int
) -> dict[str, Any]:
    """A subscription as the API shows it, with the truth about its notifications."""
    failing = status.last_failure is not None and (
        status.last_success is None or status.last_failure > status.last_success
    )
    endpoint: dict[str, Any] = {"uri": sub.uri, "accept": sub.accept}
    if sub.receiver_info:
        endpoint["receiverInfo"] = [{"key": k, "value": v} for k, v in sub.receiver_info]
    notification: dict[str, Any] = {
        "format": sub.format,
        "endpoint": endpoint,
        "status": "failed" if failing else "ok",
        "timesSent": status.times_sent,
        "timesFailed": status.times_failed,
    }
    if sub.attributes is not None:
        notification["attributes"] = [ctx.compact(a) for a in sub.attributes]
    for member, value in (
        ("lastNotification", status.last_notification),
        ("lastSuccess", status.last_success),
        ("lastFailure", status.last_failure),
    ):
        if value is not None:
            notification[member] = iso(value)
    expired = sub.expires_at is not None and sub.expires_at <= now
    out: dict[str, Any] = {"id": sub.id, "type": "Subscription"}
    if sub.name is not None:
        out["subscriptionName"] = sub.name
    if sub.description is not None:
        out["description"] = sub.description
    if sub.entities:
        out["entities"] = [_selector(s, ctx) for s in sub.entities]
    if sub.watched is not None:
        out["watchedAttributes"] = [ctx.compact(a) for a in sub.watched]
    if sub.q is not None:
        out["q"] = sub.q
    if sub.scope_q is not None:
        out["scopeQ"] = sub.scope_q
    if sub.triggers != DEFAULT_TRIGGERS:
        out["notificationTrigger"] = sorted(sub.triggers)
    if sub.geo_q is not None:
        out["geoQ"] = {**sub.geo_q, "geoproperty": ctx.compact(sub.geo_q["geoproperty"])}
    out["notification"] = notification
    if sub.throttling is not None:
        out["throttling"] = sub.throttling
    if sub.time_interval is not None:
        out["timeInterval"] = sub.time_interval
    if sub.expires_at is not None:
        out["expiresAt"] = iso(sub.expires_at)
    out["isActive"] = sub.active
    out["status"] = "expired" if expired else ("active" if sub.active else "paused")
    if sys_attrs:
        out["createdAt"] = iso(status.created)
        out["modifiedAt"] = iso(status.modified)
    return out


def _selector(selector: Selector, ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"type": ctx.compact(selector.type)}
    if selector.id is not None:
        out["id"] = selector.id
    if selector.id_pattern is not None:
        out["idPattern"] = selector.id_pattern
    return out


def _status(row: Any) -> Status:
    return Status(
        row.times_sent,
        row.times_failed,
        row.last_notification,
        row.last_success,
        row.last_failure,
        row.created,
        row.modified,
    )


class SubscriptionStore:
    """A tenant's subscriptions and their notification status."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, tenant_id: int, sub: Subscription, context: Any, now: int) -> None:
        """Keep a new subscription (AlreadyExists when its id is taken)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t).values(
                        tenant_id=tenant_id,
                        id=sub.id,
                        body=orjson.dumps(sub.to_json()).decode(),
                        context=orjson.dumps(context).decode() if context is not None else None,
                        created=now,
                        modified=now,
                    )
                )
        except IntegrityError:
            raise NgsiLdError.exists(f"subscription {sub.id} exists already") from None

    def get(self, tenant_id: int, sub_id: str) -> tuple[Subscription, Any, Status]:
        """A subscription, its context and status (ResourceNotFound)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t).where(t.c.tenant_id == tenant_id, t.c.id == sub_id)
            ).first()
        if row is None:
            raise NgsiLdError.not_found(f"subscription {sub_id} not found")
        return _row(row)

    def page(
        self, tenant_id: int, limit: int, offset: int
    ) -> tuple[list[tuple[Subscription, Any, Status]], int]:
        """A page of the tenant's subscriptions (id order) and how many there are."""
        where = t.c.tenant_id == tenant_id
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(t).where(where)).scalar_one()
            rows = conn.execute(select(t).where(where).order_by(t.c.id).limit(limit).offset(offset))
            return [_row(r) for r in rows], int(total)

    def version(self) -> tuple[int, int, int]:
        """(count, newest created, sum of modification times): changes when any subscription
        is created, changed or deleted, on any node (the sum also when two nodes' clocks
        disagree)."""
        q = select(func.count(), func.max(t.c.created), func.sum(t.c.modified))
        with self.engine.connect() as conn:
            n, created, modified = conn.execute(q).one()
        return int(n), int(created or 0), int(modified or 0)

    def existing(self, conn: Connection, keys: Collection[tuple[int, str]]) -> set[tuple[int, str]]:
        """Of these (tenant id, subscription id), those still kept (read in ``conn``)."""
        found: set[tuple[int, str]] = set()
        for tenant_id in {k[0] for k in keys}:
            ids = [k[1] for k in keys if k[0] == tenant_id]
            q = select(t.c.id).where(t.c.tenant_id == tenant_id, t.c.id.in_(ids))
            found |= {(tenant_id, r[0]) for r in conn.execute(q)}
        return found

    def every(self) -> list[tuple[int, Subscription, Any]]:
        """Every subscription of every tenant, with its context (to match changes)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t)).all()
        return [(r.tenant_id, *_row(r)[:2]) for r in rows]

    def replace(self, tenant_id: int, sub: Subscription, context: Any, now: int) -> None:
        """Store a changed subscription (its status kept)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.tenant_id == tenant_id, t.c.id == sub.id)
                .values(
                    body=orjson.dumps(sub.to_json()).decode(),
                    context=orjson.dumps(context).decode() if context is not None else None,
                    modified=now,
                )
            )

    def delete(self, tenant_id: int, sub_id: str) -> None:
        """Delete a subscription and its waiting notifications (ResourceNotFound)."""
        with self.engine.begin() as conn:
            gone = conn.execute(
                delete(t).where(t.c.tenant_id == tenant_id, t.c.id == sub_id)
            ).rowcount
        if not gone:
            raise NgsiLdError.not_found(f"subscription {sub_id} not found")

    def record(self, tenant_id: int, sub_id: str, *, ok: bool, now: int) -> None:
        """Count a notification sent (``ok``: answered 2xx) or failed."""
        values: dict[str, Any] = {"last_notification": now}
        if ok:
            values.update(times_sent=t.c.times_sent + 1, last_success=now)
        else:
            values.update(times_failed=t.c.times_failed + 1, last_failure=now)
        with self.engine.begin() as conn:
            conn.execute(
                update(t).where(t.c.tenant_id == tenant_id, t.c.id == sub_id).values(**values)
            )


def _row(row: Any) -> tuple[Subscription, Any, Status]:
    context = orjson.loads(row.context) if row.context is not None else None
    return Subscription.from_json(row.id, orjson.loads(row.body)), context, _status(row)

"""NGSI-LD notifications: changes matched against subscriptions, kept in an outbox
(``ngsi_notifications``), delivered over HTTP until the receiver takes them.

A change of an entity other systems created is matched in the transaction that writes it (the
outbox row commits with the change, or neither does); a reading of one of smartpole's own
devices when the pipeline has committed it. Each match is a
row holding the entity as the subscription shows it. Delivery sends a subscription's rows in
order, up to :data:`PER_NOTIFICATION` entities in one notification (``data``); a receiver that
fails (an error, a timeout, a non-2xx answer) is tried again after a back-off that doubles up to
:data:`MAX_BACKOFF_S`, its rows kept and their order too, so that a receiver down for a while
loses nothing; a row is deleted only once a 2xx answer took it, so none is sent twice after a
success. Rows older than ``ttl`` (the receiver gone for good) are dropped, counted and logged.
The status a subscription shows (``timesSent``, ``timesFailed``, ``lastSuccess``,
``lastFailure``) is written after each attempt.

Each node delivers what it matched (rows carry its ``node_id``): in broker mode a reading is
consumed, matched and notified by one node; a node that stops leaves its rows for when it is
back. A subscription created, changed or deleted through one node reaches the others within
:data:`RELOAD_CHECK_S` (each checks the subscriptions' version that often).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from sqlalchemy import Connection, Engine, delete, insert, select, update

from smartpole.loops import WorkLoop
from smartpole.model.alarms import AlarmChange
from smartpole.model.clock import now_ms
from smartpole.model.writes import WriteBatch
from smartpole.ngsild.broker import ContextBroker
from smartpole.ngsild.context import LINK_REL, ContextLoader
from smartpole.ngsild.endpoints import check_endpoint
from smartpole.ngsild.entities import Entity, iso, render
from smartpole.ngsild.entity_query import EntityQuery
from smartpole.ngsild.own import STATUS, OwnEntities
from smartpole.ngsild.subscriptions import SubscriptionStore, Watching
from smartpole.ngsild.tables import ngsi_notifications as n
from smartpole.outbound import http_client
from smartpole.registry.access import Principal

__all__ = ["Notifier"]

log = logging.getLogger(__name__)
# the alarm changes that may change whether an alarm is active (a latched one: acknowledged)
STATUS_CHANGES = frozenset({"raised", "cleared", "acknowledged"})
PER_NOTIFICATION = 500
RELOAD_CHECK_S = 2.0
MAX_BACKOFF_S = 5.0
_CLAIM = 5_000
Key = tuple[int, str]  # (tenant id, subscription id)


@dataclass(slots=True)
class _Row:
    id: int
    body: bytes
    created: int
    attempts: int


def changed_attributes(entity: Entity) -> set[str]:
    """The attributes an entity's last change wrote (stamped with its modification time)."""
    return {
        name
        for name, instances in entity.attrs.items()
        if any(a.modified_at == entity.modified_at for a in instances)
    }


class Notifier:
    """Matches changes against the subscriptions, and delivers what matched."""

    def __init__(
        self,
        engine: Engine,
        subscriptions: SubscriptionStore,
        loader: ContextLoader,
        broker: ContextBroker,
        own: OwnEntities,
        principal_of: Callable[[int], Principal],
        *,
        node: str = "",
        allow_private: bool = True,
        ttl_ms: int = 86_400_000,
        timeout_s: float = 5.0,
    ) -> None:
        self.engine = engine
        self.subscriptions = subscriptions
        self.loader = loader
        self.broker = broker
        self.own = own
        self.principal_of = principal_of
        self.node = node
        self.allow_private = allow_private
        self.ttl_ms = ttl_ms
        self.timeout_s = timeout_s
        self.watching: dict[Key, Watching] = {}
        self.delivered = 0  # entities delivered since start (the bench reads it)
        self._blocked: dict[Key, tuple[int, float]] = {}  # key -> (until ms, back-off s)
        self._last_sent: dict[Key, int] = {}
        self._next_interval: dict[Key, int] = {}
        self._rounds = WorkLoop("ngsi-ld notifications", self._round)
        self._client: httpx.AsyncClient | None = None
        self._version: tuple[int, int, int] | None = None
        self._reloading = asyncio.Lock()
        self._checked_at = 0.0  # time.monotonic() of the last version check

    # -- subscriptions ------------------------------------------------------------------------

    async def reload(self) -> None:
        """Read every subscription again (after one was created, changed or deleted)."""
        async with self._reloading:  # one at a time: an older read never replaces a newer
            await self._reload()

    async def _reload(self) -> None:
        fresh: dict[Key, Watching] = {}
        self._version = await asyncio.to_thread(self.subscriptions.version)
        self._checked_at = time.monotonic()
        for tenant_id, sub, context in await asyncio.to_thread(self.subscriptions.every):
            try:
                ctx = await self.loader.active(context)
                fresh[(tenant_id, sub.id)] = Watching(tenant_id, sub, ctx)
            except Exception as err:  # one bad subscription must not stop the others
                log.warning("NGSI-LD subscription %s is not matched: %s", sub.id, err)
        self.watching = fresh
        self._wake_soon()

    # -- matching -------------------------------------------------------------------------------

    def journal(
        self, conn: Connection, tenant_id: int, entities: Sequence[Entity], deleted: bool
    ) -> None:
        """Entities other systems wrote (or deleted): the matches go into the outbox in the
        transaction that wrote the entities (the store calls this before it commits), so a
        change that committed is notified, also after a crash, and in the order of the
        commits. A deletion is notified as the entity's id and type with ``deletedAt``."""
        now = now_ms()
        rows = []
        for key, watching in list(self.watching.items()):
            if key[0] != tenant_id:
                continue
            try:
                rows += self._matched(watching, entities, deleted, now)
            except Exception:  # one subscription that cannot be matched fails no write
                log.exception("NGSI-LD subscription %s: a change could not be matched", key[1])
        if rows:
            # a subscription deleted through another node, not reloaded here yet, is skipped
            kept = self.subscriptions.existing(
                conn, {(r["tenant_id"], r["subscription_id"]) for r in rows}
            )
            rows = [r for r in rows if (r["tenant_id"], r["subscription_id"]) in kept]
        if rows:
            conn.execute(insert(n), rows)

    def _matched(
        self, watching: Watching, entities: Sequence[Entity], deleted: bool, now: int
    ) -> list[dict[str, Any]]:
        if deleted:
            return [
                self._row(watching, e, now, deleted=True)
                for e in entities
                if watching.matches_deletion(e, now)
            ]
        return [
            self._row(watching, e, now)
            for e in entities
            if watching.matches(e, changed_attributes(e), now)
        ]

    def on_change(self, tenant_id: int, entities: Sequence[Entity]) -> None:
        """Entities were written and committed: deliver what they added to the outbox."""
        self._wake_soon()

    async def on_batch(self, batch: WriteBatch) -> None:
        """Readings committed: notify subscriptions that watch smartpole's own devices."""
        if not self.watching or not batch.readings:
            return
        keys: dict[int, set[str]] = {}
        for reading in batch.readings:
            keys.setdefault(reading.device_id, set()).add(reading.key)
        await asyncio.to_thread(self._own_changes, keys)

    async def on_alarm(self, change: AlarmChange) -> None:
        """An alarm listener: a lamp or column alarm raised or gone sets the ``status`` of
        the Streetlights it is on, which subscriptions are told like any other change."""
        if not self.watching or change.change not in STATUS_CHANGES:
            return
        await asyncio.to_thread(self._status_changes, change)

    def _status_changes(self, change: AlarmChange) -> None:
        lamps = self.own.lamps_for(change.alarm)
        if lamps:
            self._own_changes({lamp: set() for lamp in lamps}, also=STATUS)

    def _own_changes(self, keys: dict[int, set[str]], also: frozenset[str] = frozenset()) -> None:
        now = now_ms()
        by_tenant: dict[int, list[Watching]] = {}
        for (tenant_id, _), watching in list(self.watching.items()):
            by_tenant.setdefault(tenant_id, []).append(watching)
        rows = []
        for tenant_id, watchings in by_tenant.items():
            who = self.principal_of(tenant_id)
            # only the devices of the types some subscription names (any: one names none)
            named = [s.type for w in watchings for s in w.sub.entities]
            anything = any(not w.sub.entities for w in watchings)
            types = None if anything else set(named)
            for entity, changed in self.own.changed(who, keys, types, also=also):
                for watching in watchings:
                    if watching.matches(entity, changed, now):
                        rows.append(self._row(watching, entity, now))
        self._enqueue(rows)

    def _row(
        self, watching: Watching, entity: Entity, now: int, *, deleted: bool = False
    ) -> dict[str, Any]:
        sub = watching.sub
        attrs = frozenset(sub.attributes) if sub.attributes is not None else None
        if deleted:
            shown = render(Entity(entity.id, entity.types), watching.ctx)
            shown["deletedAt"] = iso(now)
        else:
            shown = render(entity, watching.ctx, representation=sub.format, attrs=attrs)
        return {
            "tenant_id": watching.tenant_id,
            "subscription_id": sub.id,
            "node": self.node,
            "body": orjson.dumps(shown).decode(),
            "created": now,
        }

    def _enqueue(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(insert(n), rows)
        self._wake_soon()

    def _wake_soon(self) -> None:
        self._rounds.wake(threadsafe=True)

    # -- delivery -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the subscriptions and start delivering."""
        self._client = http_client(self.timeout_s)
        self._rounds.start()
        await self.reload()

    async def stop(self) -> None:
        """Stop delivering (what is in flight finishes; the outbox keeps the rest)."""
        await self._rounds.stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _round(self) -> float:
        if time.monotonic() - self._checked_at >= RELOAD_CHECK_S:
            self._checked_at = time.monotonic()
            if await asyncio.to_thread(self.subscriptions.version) != self._version:
                await self.reload()  # changed through another node
        wait_s = await self._deliver_due()
        return min(wait_s, await self._time_intervals())

    async def _deliver_due(self) -> float:
        now = now_ms()
        wait_s = 1.0
        due: list[tuple[Key, Watching]] = []
        for key, watching in list(self.watching.items()):
            until = self._blocked.get(key, (0, 0.0))[0]
            throttle = watching.sub.throttling
            if throttle is not None and key in self._last_sent:
                until = max(until, self._last_sent[key] + throttle * 1000)
            if until > now:
                wait_s = min(wait_s, (until - now) / 1000)
            else:
                due.append((key, watching))
        # each subscription's own oldest rows: one that waits for its receiver holds up no other
        pending = await asyncio.to_thread(self._pending, [key for key, _ in due])
        sends = [self._send_in_order(k, w, pending[k]) for k, w in due if pending.get(k)]
        if sends:
            await asyncio.gather(*sends, return_exceptions=True)
            return 0.0
        return wait_s

    def _pending(self, keys: list[Key]) -> dict[Key, list[_Row]]:
        out: dict[Key, list[_Row]] = {}
        with self.engine.connect() as conn:
            for tenant_id, sub_id in keys:
                query = (
                    select(n)
                    .where(
                        n.c.node == self.node,
                        n.c.tenant_id == tenant_id,
                        n.c.subscription_id == sub_id,
                    )
                    .order_by(n.c.id)
                    .limit(_CLAIM)
                )
                rows = [
                    _Row(r.id, r.body.encode(), r.created, r.attempts) for r in conn.execute(query)
                ]
                if rows:
                    out[(tenant_id, sub_id)] = rows
        return out

    async def _send_in_order(self, key: Key, watching: Watching, rows: list[_Row]) -> None:
        """A subscription's waiting rows, a notification of :data:`PER_NOTIFICATION` at a time
        (one only when it is throttled), until one fails."""
        for start in range(0, len(rows), PER_NOTIFICATION):
            ok = await self._send(key, watching, rows[start : start + PER_NOTIFICATION])
            if not ok or watching.sub.throttling is not None:
                return

    async def _send(self, key: Key, watching: Watching, rows: list[_Row]) -> bool:
        assert self._client is not None
        sub = watching.sub
        now = now_ms()
        body = (
            b'{"id":"urn:ngsi-ld:Notification:'
            + str(uuid.uuid4()).encode()
            + b'","type":"Notification","subscriptionId":'
            + orjson.dumps(sub.id)
            + b',"notifiedAt":"'
            + iso(now).encode()
            + b'","data":['
            + b",".join(r.body for r in rows)
            + b"]"
        )
        headers = {"Content-Type": sub.accept, **dict(sub.receiver_info)}
        if sub.accept == "application/ld+json":
            body += b',"@context":' + orjson.dumps(watching.ctx.body_context())
        else:
            headers["Link"] = f'<{watching.ctx.link}>; rel="{LINK_REL}"; type="application/ld+json"'
        body += b"}"
        ok = False
        try:
            if not self.allow_private:  # a host name may resolve elsewhere since: again
                await asyncio.to_thread(check_endpoint, sub.uri, allow_private=False)
            answer = await self._client.post(sub.uri, content=body, headers=headers)
            ok = 200 <= answer.status_code < 300
            if not ok:
                log.info("NGSI-LD notification to %s: HTTP %d", sub.uri, answer.status_code)
        except Exception as err:  # any failure to send is the receiver's: try again later
            log.info("NGSI-LD notification to %s failed: %s", sub.uri, err)
        if ok:
            self.delivered += len(rows)
            self._blocked.pop(key, None)
            self._last_sent[key] = now
        else:
            backoff = min(MAX_BACKOFF_S, max(0.25, self._blocked.get(key, (0, 0.125))[1] * 2))
            self._blocked[key] = (now + int(backoff * 1000), backoff)
        await asyncio.to_thread(self._settle, key, rows, ok, now)
        return ok

    def _settle(self, key: Key, rows: list[_Row], ok: bool, now: int) -> None:
        ids = [r.id for r in rows]
        with self.engine.begin() as conn:
            if ok:
                conn.execute(delete(n).where(n.c.id.in_(ids)))
            else:
                conn.execute(update(n).where(n.c.id.in_(ids)).values(attempts=n.c.attempts + 1))
                stale = [r.id for r in rows if now - r.created > self.ttl_ms]
                if stale:
                    conn.execute(delete(n).where(n.c.id.in_(stale)))
                    log.warning(
                        "NGSI-LD subscription %s: %d notifications older than %d s dropped "
                        "(the receiver never took them)",
                        key[1],
                        len(stale),
                        self.ttl_ms // 1000,
                    )
        self.subscriptions.record(key[0], key[1], ok=ok, now=now)

    async def _time_intervals(self) -> float:
        """Subscriptions with ``timeInterval``: the current state of what they name, when due."""
        now = now_ms()
        wait_s = 1.0
        for key, watching in list(self.watching.items()):
            sub = watching.sub
            if sub.time_interval is None or not sub.active:
                continue
            if sub.expires_at is not None and sub.expires_at <= now:
                continue
            due = self._next_interval.get(key, now)
            if due > now:
                wait_s = min(wait_s, (due - now) / 1000)
                continue
            self._next_interval[key] = now + sub.time_interval * 1000
            await asyncio.to_thread(self._snapshot, watching, now)
        return wait_s

    def _snapshot(self, watching: Watching, now: int) -> None:
        who = self.principal_of(watching.tenant_id)
        found: dict[str, Entity] = {}
        for selector in watching.sub.entities:
            query = EntityQuery(
                types=[selector.type],
                ids=[selector.id] if selector.id else None,
                limit=1000,
            )
            page, _ = self.broker.query(who, query)
            for entity in page:
                if watching.selects(entity) and (watching.q is None or watching.q(entity)):
                    found[entity.id] = entity
        self._enqueue([self._row(watching, e, now) for e in found.values()])

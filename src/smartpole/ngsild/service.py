"""The NGSI-LD open-data service: its parts, built together for the API and the platform."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from smartpole.ngsild.batch import BatchOperations
from smartpole.ngsild.broker import ContextBroker
from smartpole.ngsild.context import ContextLoader
from smartpole.ngsild.history import TemporalBroker
from smartpole.ngsild.notifier import Notifier
from smartpole.ngsild.own import ActiveAlarms, OwnEntities
from smartpole.ngsild.store import EntityStore
from smartpole.ngsild.subscriptions import SubscriptionStore
from smartpole.ngsild.temporal import MAX_INSTANCES
from smartpole.registry.access import Principal
from smartpole.registry.assets import Assets
from smartpole.store.protocol import TimeSeries

__all__ = ["OpenData"]


@dataclass(frozen=True, slots=True)
class OpenData:
    """Entities (smartpole's own and other systems'), their history, batches, subscriptions
    and their notifications, and the JSON-LD contexts they are read with."""

    broker: ContextBroker
    temporal: TemporalBroker
    batch: BatchOperations
    subscriptions: SubscriptionStore
    notifier: Notifier
    contexts: ContextLoader
    allow_private: bool

    @classmethod
    def build(
        cls,
        engine: Engine,
        assets: Assets,
        readings: TimeSeries,
        alarms: ActiveAlarms,
        principal_of: Callable[[int], Principal],
        contexts: ContextLoader,
        *,
        node: str,
        allow_private: bool,
        ttl_ms: int,
        instance_limit: int = MAX_INSTANCES,
    ) -> OpenData:
        """Wire the parts on one database."""
        own = OwnEntities(assets, readings, alarms)
        store = EntityStore(engine)
        broker = ContextBroker(store, own)
        subscriptions = SubscriptionStore(engine)
        notifier = Notifier(
            engine,
            subscriptions,
            contexts,
            broker,
            own,
            principal_of,
            node=node,
            allow_private=allow_private,
            ttl_ms=ttl_ms,
        )
        store.journals.append(notifier.journal)
        broker.listeners.append(notifier.on_change)
        return cls(
            broker,
            TemporalBroker(broker, instance_limit),
            BatchOperations(broker),
            subscriptions,
            notifier,
            contexts,
            allow_private,
        )

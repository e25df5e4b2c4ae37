"""Tables of the analytics: the models' learned state.

Declared on the store's one ``metadata`` so both engines and migration 0007 see it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, LargeBinary, String, Table

from smartpole.store.schema import metadata

__all__ = ["hub_snapshots"]

# Learned model state (the anomaly detector's baselines), saved so a restart does not relearn
# from zero; one row per model and node.
hub_snapshots = Table(
    "hub_snapshots",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("updated", BigInteger, nullable=False),
)

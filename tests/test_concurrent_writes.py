"""Rows that several writers put at the same moment: two messages of one device consumed at once,
two nodes behind a broker, a device and an operator. Every write succeeds, on both engines, and
what is stored is one of the values written."""

from __future__ import annotations

import threading
from collections.abc import Callable

from helpers import add_device
from smartpole.model.types import DeviceKind, DeviceRef, Scope
from smartpole.registry.assets import Assets
from smartpole.registry.claims import Claims, device_claims
from smartpole.store import Database

WRITERS = 6
ROUNDS = 40


def at_once(write: Callable[[int, int], None]) -> list[Exception]:
    """Run ``write(writer, round)`` ROUNDS times in each of WRITERS threads started together."""
    start = threading.Barrier(WRITERS)
    failures: list[Exception] = []

    def run(writer: int) -> None:
        start.wait()
        for i in range(ROUNDS):
            try:
                write(writer, i)
            except Exception as exc:
                failures.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def test_attributes_of_one_device_keep_the_last_write_of_each_key(database: Database) -> None:
    device = add_device(database)
    assets = Assets(database.engine)

    failures = at_once(
        lambda w, i: assets.set_attributes(device, Scope.CLIENT, {"firmware": f"{w}.{i}", "n": i})
    )

    assert failures == []
    stored = assets.get_attributes(device, [Scope.CLIENT])["client"]
    assert set(stored) == {"firmware", "n"}
    assert stored["n"]["value"] == ROUNDS - 1
    assert stored["firmware"]["value"] in {f"{w}.{ROUNDS - 1}" for w in range(WRITERS)}


def test_a_device_repeating_its_claim_keeps_one_window(database: Database) -> None:
    device = add_device(database)
    assets = Assets(database.engine)
    claims = Claims(database.engine, assets)
    ref = DeviceRef(device, "lamp", DeviceKind.LAMP, 1)

    failures = at_once(
        lambda w, i: claims.register(ref, {"secretKey": f"s{w}", "durationMs": 60_000 + i})
    )

    assert failures == []
    with database.engine.connect() as conn:
        rows = conn.execute(device_claims.select()).all()
    assert [r.device_id for r in rows] == [device]
    assert rows[0].expires - rows[0].created == 60_000 + ROUNDS - 1

"""The alarm store: lifecycle, one active alarm per (originator, type), visibility."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from smartpole.errors import NotFound
from smartpole.hub.alarms.store import AlarmFilter, Alarms
from smartpole.model.alarms import AlarmChange
from smartpole.model.lifecycle import AlarmStatus, Severity
from smartpole.model.types import Role
from smartpole.registry.access import Principal, Tenants
from smartpole.store import Database


@pytest.fixture
def tenants(database: Database) -> dict[str, int]:
    """The city operator and two ordinary tenants."""
    t = Tenants(database.engine)
    return {
        name: t.create(name, name, is_operator=(name == "city"))["id"]
        for name in ("city", "lighting", "police")
    }


def who(tenants: dict[str, int], name: str) -> Principal:
    """A principal of ``name`` with the admin role."""
    return Principal(tenants[name], name, Role.ADMIN, name == "city")


async def test_repeat_raise_bumps_count_of_the_one_active_alarm(
    database: Database, tenants: dict[str, int]
) -> None:
    changes: list[AlarmChange] = []
    alarms = Alarms(database.engine, listeners=[changes.append])
    kw = {"tenant_id": tenants["lighting"], "originator_type": "device", "originator_id": 7}
    first = await alarms.raise_alarm(**kw, type="tilt", severity=Severity.MINOR, ts=1_000)
    again = await alarms.raise_alarm(
        **kw, type="tilt", severity=Severity.MAJOR, details={"deg": 9}, ts=2_000
    )
    assert again.id == first.id
    assert (again.count, again.first_ts, again.last_ts) == (2, 1_000, 2_000)
    assert (again.severity, again.details) == (Severity.MAJOR, {"deg": 9})
    assert [c.change for c in changes] == ["raised", "updated"]
    assert changes[0].tenants == (tenants["lighting"],)


async def test_lifecycle_ack_then_clear_and_a_new_alarm_after_clear(
    database: Database, tenants: dict[str, int]
) -> None:
    alarms = Alarms(database.engine)
    me = who(tenants, "lighting")
    kw = {"originator_type": "device", "originator_id": 3, "type": "flood"}
    a = await alarms.raise_alarm(tenant_id=tenants["lighting"], severity=Severity.CRITICAL, **kw)
    assert a.status is AlarmStatus.ACTIVE_UNACK
    acked = await alarms.acknowledge(me, a.id)
    assert acked.status is AlarmStatus.ACTIVE_ACK
    assert acked.acked_ts is not None
    cleared = await alarms.clear(**kw)
    assert cleared is not None
    assert cleared.status is AlarmStatus.CLEARED_ACK
    assert await alarms.clear(**kw) is None
    b = await alarms.raise_alarm(tenant_id=tenants["lighting"], severity=Severity.CRITICAL, **kw)
    assert b.id != a.id
    assert b.count == 1
    cleared_b = await alarms.clear(**kw)
    assert cleared_b is not None
    assert cleared_b.status is AlarmStatus.CLEARED_UNACK
    assert (await alarms.acknowledge(me, b.id)).status is AlarmStatus.CLEARED_ACK


async def test_assign_comment_and_filters(database: Database, tenants: dict[str, int]) -> None:
    alarms = Alarms(database.engine)
    me = who(tenants, "lighting")
    a = await alarms.raise_alarm(
        tenant_id=tenants["lighting"],
        originator_type="device",
        originator_id=1,
        type="lamp_failure",
        severity=Severity.MAJOR,
        pole_id=42,
    )
    await alarms.assign(me, a.id, "crew-7")
    await alarms.comment(me, a.id, "lamp head replaced tomorrow")
    assert [c.text for c in alarms.comments(me, a.id)] == ["lamp head replaced tomorrow"]
    assert [x.id for x in alarms.find(me, AlarmFilter(assignee="crew-7"))] == [a.id]
    assert [x.id for x in alarms.find(me, AlarmFilter(pole_id=42))] == [a.id]
    assert alarms.find(me, AlarmFilter(severity=[Severity.CRITICAL])) == []


async def test_a_tenant_sees_its_own_and_propagated_alarms_only(
    database: Database, tenants: dict[str, int]
) -> None:
    alarms = Alarms(database.engine)
    sos = await alarms.raise_alarm(
        tenant_id=tenants["lighting"],
        originator_type="device",
        originator_id=5,
        type="sos",
        severity=Severity.CRITICAL,
        propagate=[tenants["police"]],
    )
    private = await alarms.raise_alarm(
        tenant_id=tenants["lighting"],
        originator_type="device",
        originator_id=5,
        type="lamp_failure",
        severity=Severity.MAJOR,
    )
    police = who(tenants, "police")
    assert [a.id for a in alarms.find(police)] == [sos.id]
    with pytest.raises(NotFound):
        alarms.get_visible(police, private.id)
    with pytest.raises(NotFound):
        await alarms.acknowledge(police, private.id)
    assert {a.id for a in alarms.find(who(tenants, "city"))} == {sos.id, private.id}


def test_concurrent_raises_from_threads_make_one_active_alarm(
    database: Database, tenants: dict[str, int]
) -> None:
    alarms = Alarms(database.engine)
    threads, per_thread = 8, 25
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        for _ in range(per_thread):
            alarms.raise_sync(
                tenant_id=tenants["lighting"],
                originator_type="device",
                originator_id=11,
                type="day_burner",
                severity=Severity.WARNING,
            )

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    found = alarms.find(who(tenants, "city"), AlarmFilter(type="day_burner"))
    assert len(found) == 1
    assert found[0].count == threads * per_thread


RAISER = """
import sys
from smartpole.hub.alarms.store import Alarms
from smartpole.model.lifecycle import Severity
from smartpole.store import Database
db = Database(sys.argv[1])
alarms = Alarms(db.engine)
for _ in range(int(sys.argv[3])):
    alarms.raise_sync(tenant_id=int(sys.argv[2]), originator_type="pole", originator_id=9,
                      type="tilt", severity=Severity.MAJOR)
db.dispose()
"""


@pytest.mark.postgres
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_concurrent_raises_from_processes_make_one_active_alarm(
    database: Database, tenants: dict[str, int], tmp_path: Path
) -> None:
    script = tmp_path / "raiser.py"
    script.write_text(RAISER)
    n, each = 3, 40
    args = [sys.executable, str(script), database.url, str(tenants["lighting"]), str(each)]
    procs = [subprocess.Popen(args) for _ in range(n)]
    assert [p.wait(timeout=120) for p in procs] == [0] * n
    found = Alarms(database.engine).find(who(tenants, "city"), AlarmFilter(type="tilt"))
    assert [(a.status, a.count) for a in found] == [(AlarmStatus.ACTIVE_UNACK, n * each)]

"""Commands to devices: the lifecycle in ``Control`` and the REST API over it (both engines).

The transport is a small in-test ``CommandChannel``: devices "connect" by joining a set, sends
are recorded, and the test plays the device by calling ``on_delivered``/``on_reply``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from fixtures_api import City, make_device
from smartpole.api import control as control_api
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.control import CommandChannel, Control
from smartpole.model.clock import now_ms
from smartpole.model.types import Role


@dataclass(frozen=True)
class Sent:
    """One command as it went on the wire."""

    device_id: int
    request_id: int
    method: str
    params: Any


class Sessions:
    """A channel whose devices are connected while in ``online``."""

    def __init__(self) -> None:
        self.online: set[int] = set()
        self.sent: list[Sent] = []
        self._new: asyncio.Queue[Sent] = asyncio.Queue()

    async def send(self, device_id: int, request_id: int, method: str, params: Any) -> bool:
        if device_id not in self.online:
            return False
        sent = Sent(device_id, request_id, method, params)
        self.sent.append(sent)
        self._new.put_nowait(sent)
        return True

    def is_connected(self, device_id: int) -> bool:
        return device_id in self.online

    async def next(self) -> Sent:
        """The next command sent (waits for it)."""
        return await asyncio.wait_for(self._new.get(), 5)


@pytest.fixture
def sessions() -> Sessions:
    return Sessions()


@pytest.fixture
def control(platform: Platform, sessions: Sessions) -> Control:
    """The platform's command control, on the in-test channel."""
    channel: CommandChannel = sessions
    platform.control = Control(platform.db.engine, channel)
    return platform.control


@pytest.fixture
async def client(platform: Platform, control: Control) -> AsyncIterator[httpx.AsyncClient]:
    """The in-process client, with the control router (until ``create_app`` includes it)."""
    app = create_app(platform.api_services())
    rpc = "/api/devices/{device_id}/rpc"
    if not any(getattr(r, "path", None) == rpc for r in app.routes):
        app.include_router(control_api.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://smartpole.test") as c:
        yield c


@pytest.fixture
async def lamp(client: httpx.AsyncClient, city: City) -> int:
    """A lamp of the lighting department."""
    return int((await make_device(client, city, "lighting", "lamp"))["id"])


def rpc(device_id: int) -> str:
    return f"/api/devices/{device_id}/rpc"


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    """The response is a problem+json document of ``status``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    return dict(r.json())


OPERATOR = ("lighting", Role.OPERATOR)


# -- two-way --------------------------------------------------------------------------------
async def test_two_way_command_answers_with_the_reply(
    client: httpx.AsyncClient, city: City, control: Control, sessions: Sessions, lamp: int
) -> None:
    sessions.online.add(lamp)
    body = {"method": "setDim", "params": {"level": 60}}
    call = asyncio.create_task(client.post(rpc(lamp), json=body, headers=city.auth(*OPERATOR)))
    sent = await sessions.next()
    assert (sent.device_id, sent.request_id, sent.method, sent.params) == (
        lamp,
        1,
        "setDim",
        {"level": 60},
    )
    await control.on_delivered(lamp, sent.request_id)
    assert control.of_device(lamp)[0].status == "delivered"
    await control.on_reply(lamp, sent.request_id, {"level": 60})
    r = await call
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "succeeded"
    assert out["response"] == {"level": 60}
    assert out["created"] <= out["sent"] <= out["delivered"] <= out["completed"]
    got = await client.get(f"/api/commands/{out['id']}", headers=city.auth("lighting", Role.VIEWER))
    assert got.json() == out


async def test_reply_with_error_fails_the_command(
    client: httpx.AsyncClient, city: City, control: Control, sessions: Sessions, lamp: int
) -> None:
    sessions.online.add(lamp)
    body = {"method": "reboot"}
    call = asyncio.create_task(client.post(rpc(lamp), json=body, headers=city.auth(*OPERATOR)))
    sent = await sessions.next()
    await control.on_reply(lamp, sent.request_id, {"error": "busy"})
    out = (await call).json()
    assert (out["status"], out["error"], out["response"]) == ("failed", "busy", {"error": "busy"})


async def test_no_reply_within_the_timeout_is_504_and_expires_the_command(
    client: httpx.AsyncClient, city: City, control: Control, sessions: Sessions, lamp: int
) -> None:
    sessions.online.add(lamp)
    body = {"method": "getState", "timeout": 100}
    problem = assert_problem(
        await client.post(rpc(lamp), json=body, headers=city.auth(*OPERATOR)), 504
    )
    command = control.get(problem["command_id"])
    assert command.status == "expired"
    assert command.error == "no reply within the timeout"
    await control.on_reply(lamp, command.request_id, {"late": True})
    assert control.get(command.id).status == "expired"


@pytest.mark.parametrize(
    "request_id",
    # ids beyond the column's 32-bit integer failed in the database (and beyond 64 bits in the
    # SQLite driver) instead of being ignored: a device may put any number in a reply topic
    [999, -1, 2**31, 2**63, 10**30],
)
async def test_reply_to_an_unknown_request_id_is_ignored(
    control: Control, sessions: Sessions, lamp: int, request_id: int
) -> None:
    await control.on_reply(lamp, request_id, {"ok": True})
    await control.on_delivered(lamp, request_id)
    assert control.of_device(lamp) == []


async def test_request_ids_count_per_device(
    client: httpx.AsyncClient, city: City, control: Control, lamp: int
) -> None:
    other = int((await make_device(client, city, "lighting", "lamp"))["id"])
    for device_id in (lamp, lamp, other):
        await control.call(device_id, "ping", None, persistent=True)
    assert [c.request_id for c in control.of_device(lamp)] == [2, 1]
    assert [c.request_id for c in control.of_device(other)] == [1]


async def test_concurrent_calls_get_distinct_request_ids(control: Control, lamp: int) -> None:
    calls = [control.call(lamp, "ping", {"n": n}, persistent=True) for n in range(8)]
    rows = await asyncio.gather(*calls)
    assert sorted(r.request_id for r in rows) == list(range(1, 9))


# -- one-way ----------------------------------------------------------------------------------
async def test_one_way_command_is_accepted_and_succeeds_once_delivered(
    client: httpx.AsyncClient, city: City, control: Control, sessions: Sessions, lamp: int
) -> None:
    sessions.online.add(lamp)
    body = {"method": "blink", "params": {"times": 3}, "oneway": True}
    r = await client.post(rpc(lamp), json=body, headers=city.auth(*OPERATOR))
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "sent"
    await control.on_delivered(lamp, r.json()["request_id"])
    done = control.get(r.json()["id"])
    assert done.status == "succeeded"
    assert done.delivered == done.completed


async def test_one_way_command_never_delivered_expires(
    control: Control, sessions: Sessions, lamp: int
) -> None:
    sessions.online.add(lamp)
    row = await control.call(lamp, "blink", {}, oneway=True, timeout_ms=1000)
    assert await control.expire(row.sent + 999) == 0
    assert await control.expire(row.sent + 1000) == 1
    gone = control.get(row.id)
    assert (gone.status, gone.error) == ("expired", "not delivered within the timeout")


# -- offline and persistent -----------------------------------------------------------------
async def test_command_to_an_offline_device_is_409_and_recorded_failed(
    client: httpx.AsyncClient, city: City, control: Control, lamp: int
) -> None:
    r = await client.post(rpc(lamp), json={"method": "setDim"}, headers=city.auth(*OPERATOR))
    problem = assert_problem(r, 409)
    assert problem["device_id"] == lamp
    failed = control.get(problem["command_id"])
    assert (failed.status, failed.error) == ("failed", "device offline")


async def test_persistent_commands_wait_for_the_device_and_go_in_order(
    client: httpx.AsyncClient, city: City, control: Control, sessions: Sessions, lamp: int
) -> None:
    ids = []
    for level in (10, 20, 30):
        body = {"method": "setDim", "params": {"level": level}, "persistent": True}
        r = await client.post(rpc(lamp), json=body, headers=city.auth(*OPERATOR))
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "queued"
        ids.append(r.json()["id"])
    assert sessions.sent == []
    sessions.online.add(lamp)
    assert await control.on_connect(lamp) == 3
    assert [s.params["level"] for s in sessions.sent] == [10, 20, 30]
    assert [control.get(i).status for i in ids] == ["sent"] * 3


async def test_expired_persistent_command_is_not_sent(
    control: Control, sessions: Sessions, lamp: int
) -> None:
    stale = await control.call(lamp, "setDim", {"level": 1}, persistent=True, expiration_ms=1)
    fresh = await control.call(lamp, "setDim", {"level": 2}, persistent=True)
    await asyncio.sleep(0.01)
    sessions.online.add(lamp)
    assert await control.on_connect(lamp) == 1
    assert [s.request_id for s in sessions.sent] == [fresh.request_id]
    assert await control.expire() == 1
    gone = control.get(stale.id)
    assert (gone.status, gone.error) == ("expired", "not sent before it expired")


async def test_persistent_command_to_a_connected_device_goes_at_once(
    client: httpx.AsyncClient, city: City, control: Control, sessions: Sessions, lamp: int
) -> None:
    sessions.online.add(lamp)
    body = {"method": "setDim", "persistent": True, "timeout": 5000}
    r = await client.post(rpc(lamp), json=body, headers=city.auth(*OPERATOR))
    assert r.status_code == 202, r.text
    out = r.json()
    assert out["status"] == "sent"
    assert out["expires"] == out["sent"] + 5000
    await control.on_reply(lamp, out["request_id"], {"ok": True})
    assert control.get(out["id"]).status == "succeeded"


async def test_persistent_command_sent_but_undelivered_is_sent_again_on_reconnect(
    control: Control, sessions: Sessions, lamp: int
) -> None:
    sessions.online.add(lamp)
    row = await control.call(lamp, "setDim", {"level": 5}, persistent=True)
    sessions.online.discard(lamp)
    await asyncio.sleep(0.002)  # the next session starts after the first send
    sessions.online.add(lamp)
    assert await control.on_connect(lamp) == 1
    assert [s.request_id for s in sessions.sent] == [row.request_id] * 2
    assert control.get(row.id).retries == 1


async def test_a_command_queued_after_the_waiting_list_was_read_still_goes_on_connect(
    control: Control, sessions: Sessions, lamp: int
) -> None:
    await control.expire()  # reads which devices have commands waiting: none
    row = await control.call(lamp, "setDim", {"level": 7}, persistent=True)
    sessions.online.add(lamp)
    assert await control.on_connect(lamp) == 1
    assert [s.request_id for s in sessions.sent] == [row.request_id]


async def test_a_command_queued_by_another_node_reaches_a_device_connected_here(
    platform: Platform, control: Control, sessions: Sessions, lamp: int
) -> None:
    sessions.online.add(lamp)
    await control.expire()
    other_node = Control(platform.db.engine)  # no session of the lamp there: it queues
    row = await other_node.call(lamp, "setDim", {"level": 9}, persistent=True)
    assert row.status == "queued"
    assert await control.on_connect(lamp) == 0  # this node has not read the table since
    await control.expire()  # the periodic sweep
    assert [s.request_id for s in sessions.sent] == [row.request_id]
    assert control.get(row.id).status == "sent"


async def test_only_a_new_session_resends_what_was_sent_but_not_delivered(
    control: Control, sessions: Sessions, lamp: int
) -> None:
    row = await control.call(lamp, "reboot", {}, persistent=True, oneway=True)
    assert row.status == "queued"
    sessions.online.add(lamp)
    assert await control.on_connect(lamp) == 1  # its session began: sent, not delivered yet
    await asyncio.sleep(0.002)
    # what the periodic sweep does for a device connected here (it may have read the command
    # as queued just before the connect sent it): queued ones only, nothing sent twice
    assert await control.on_connect(lamp, resend=False) == 0
    assert [s.request_id for s in sessions.sent] == [row.request_id]
    assert await control.on_connect(lamp) == 1  # a new session: sent again
    assert control.get(row.id).retries == 1


async def test_expire_leaves_finished_and_unexpired_commands_alone(
    control: Control, sessions: Sessions, lamp: int
) -> None:
    queued = await control.call(lamp, "a", {}, persistent=True, expiration_ms=60_000)
    sessions.online.add(lamp)
    done = await control.call(lamp, "b", {}, oneway=True)
    await control.on_delivered(lamp, done.request_id)
    assert await control.expire(now_ms() + 1000) == 0
    assert await control.expire(queued.created + 60_000) == 1
    assert control.get(done.id).status == "succeeded"


# -- reading commands -------------------------------------------------------------------------
async def test_list_is_newest_first_and_filters_by_status(
    client: httpx.AsyncClient, city: City, control: Control, sessions: Sessions, lamp: int
) -> None:
    await control.call(lamp, "queued", {}, persistent=True)
    with pytest.raises(Exception, match="offline"):
        await control.call(lamp, "offline", {})
    sessions.online.add(lamp)
    sent = await control.call(lamp, "sent", {}, oneway=True)
    base = f"/api/devices/{lamp}/commands"
    viewer = city.auth("lighting", Role.VIEWER)
    everything = (await client.get(base, headers=viewer)).json()
    assert [c["method"] for c in everything] == ["sent", "offline", "queued"]
    failed = (await client.get(base, params={"status": "failed"}, headers=viewer)).json()
    assert [c["method"] for c in failed] == ["offline"]
    one = (await client.get(base, params={"limit": 1}, headers=viewer)).json()
    assert [c["id"] for c in one] == [sent.id]
    assert_problem(await client.get(base, params={"status": "lost"}, headers=viewer), 422)


async def test_unknown_command_is_404(
    client: httpx.AsyncClient, city: City, control: Control
) -> None:
    assert_problem(await client.get("/api/commands/9999", headers=city.auth("city")), 404)


# -- who may ----------------------------------------------------------------------------------
async def test_other_tenants_see_no_device_and_no_command(
    client: httpx.AsyncClient, city: City, control: Control, lamp: int
) -> None:
    row = await control.call(lamp, "setDim", {}, persistent=True)
    telecom = city.auth("telecom")
    r = await client.post(rpc(lamp), json={"method": "setDim"}, headers=telecom)
    assert_problem(r, 404)
    assert_problem(await client.get(f"/api/devices/{lamp}/commands", headers=telecom), 404)
    assert_problem(await client.get(f"/api/commands/{row.id}", headers=telecom), 404)
    city_sees = await client.get(f"/api/commands/{row.id}", headers=city.auth("city"))
    assert city_sees.status_code == 200
    assert len(control.of_device(lamp)) == 1


async def test_a_viewer_may_not_send_commands(
    client: httpx.AsyncClient, city: City, control: Control, lamp: int
) -> None:
    viewer = city.auth("lighting", Role.VIEWER)
    assert_problem(await client.post(rpc(lamp), json={"method": "setDim"}, headers=viewer), 403)
    assert control.of_device(lamp) == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"method": ""}, id="empty-method"),
        pytest.param({"method": "m" * 129}, id="long-method"),
        pytest.param({"method": "m", "timeout": 99}, id="short-timeout"),
        pytest.param({"method": "m", "timeout": 600_001}, id="long-timeout"),
        pytest.param({"method": "m", "expiration": 1000}, id="expiration-not-persistent"),
        pytest.param({"method": "m", "retry": 1}, id="unknown-field"),
    ],
)
async def test_invalid_commands_are_422(
    client: httpx.AsyncClient, city: City, control: Control, lamp: int, body: dict[str, Any]
) -> None:
    assert_problem(await client.post(rpc(lamp), json=body, headers=city.auth(*OPERATOR)), 422)
    assert control.of_device(lamp) == []


async def test_commands_go_with_their_device(
    client: httpx.AsyncClient, city: City, control: Control, lamp: int
) -> None:
    row = await control.call(lamp, "setDim", {}, persistent=True)
    r = await client.delete(f"/api/devices/{lamp}", headers=city.auth("lighting"))
    assert r.status_code == 204
    assert_problem(await client.get(f"/api/commands/{row.id}", headers=city.auth("city")), 404)

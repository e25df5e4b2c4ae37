"""People who log in: the session cookie, CSRF, slowed password guessing, session ends, and who
may manage which users, all through real HTTP on both engines where the store matters."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
import websockets
from fastapi import FastAPI
from sqlalchemy import update

from fixtures_api import City
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.model.types import Role
from smartpole.store.schema import user_sessions

PASSWORD = "correct horse battery"  # every test user's, unless a test says otherwise
CITY_ADMIN, LIGHT_ADMIN, LIGHT_OPS, TELECOM_OPS = "ops-chen", "light-li", "light-wu", "tel-zhao"


@dataclass
class People:
    """Users of the city's tenants and a way to open a browser-like client at an address."""

    ids: dict[str, int]
    at: Callable[..., httpx.AsyncClient]


@pytest.fixture
def app(platform: Platform) -> FastAPI:
    """The API of the test's platform."""
    return create_app(platform.api_services())


@pytest.fixture
async def people(platform: Platform, city: City, app: FastAPI) -> AsyncIterator[People]:
    """A city admin, a lighting admin and operator, a telecom operator."""
    ids = {}
    for name, tenant, role in (
        (CITY_ADMIN, "city", Role.ADMIN),
        (LIGHT_ADMIN, "lighting", Role.ADMIN),
        (LIGHT_OPS, "lighting", Role.OPERATOR),
        (TELECOM_OPS, "telecom", Role.OPERATOR),
    ):
        ids[name] = platform.users.create(city.ids[tenant], name, role, PASSWORD).id
    opened: list[httpx.AsyncClient] = []

    def at(address: str = "10.0.0.1", scheme: str = "http") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 50_000))
        c = httpx.AsyncClient(transport=transport, base_url=f"{scheme}://smartpole.test")
        opened.append(c)
        return c

    yield People(ids, at)
    for c in opened:
        await c.aclose()


async def login(c: httpx.AsyncClient, name: str, password: str = PASSWORD) -> dict[str, str]:
    """Log in; returns the header a write sends with the session."""
    r = await c.post("/api/session", json={"user": name, "password": password})
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf"]}


async def test_login_opens_a_strict_httponly_session_that_logout_ends(
    people: People, city: City
) -> None:
    browser = people.at()
    r = await browser.post("/api/session", json={"user": LIGHT_OPS, "password": PASSWORD})
    assert r.status_code == 200, r.text
    me = {"id": people.ids[LIGHT_OPS], "name": LIGHT_OPS, "tenant": "lighting", "role": "operator"}
    assert r.json()["user"] == me
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("smartpole_session=")
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "secure" not in flags  # plain http: a Secure cookie would never come back
    assert (await browser.get("/api/session")).json() == r.json()
    assert (await browser.get("/api/poles")).status_code == 200  # the session is a caller
    assert (await browser.delete("/api/session")).status_code == 403  # a write: CSRF token
    gone = await browser.delete("/api/session", headers={"X-CSRF-Token": r.json()["csrf"]})
    assert gone.status_code == 204
    assert 'smartpole_session=""' in gone.headers["set-cookie"]
    assert (await browser.get("/api/session")).status_code == 401
    assert (await browser.get("/api/poles")).status_code == 401
    https = people.at(scheme="https")
    await login(https, LIGHT_OPS)
    secure = await https.post("/api/session", json={"user": LIGHT_OPS, "password": PASSWORD})
    assert "secure" in secure.headers["set-cookie"].lower()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_wrong_password_unknown_user_and_disabled_user_get_one_answer(
    platform: Platform, people: People
) -> None:
    platform.users.update(people.ids[TELECOM_OPS], disabled=True)
    answers = []
    for name, password in (
        (LIGHT_OPS, "not the password"),
        ("nobody-here", PASSWORD),
        (TELECOM_OPS, PASSWORD),
    ):
        r = await people.at().post("/api/session", json={"user": name, "password": password})
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert "set-cookie" not in r.headers
        answers.append(r.json())
    assert answers[0] == answers[1] == answers[2]
    assert answers[0]["detail"] == "wrong user name or password"


async def test_a_session_write_needs_the_csrf_token_and_an_api_key_does_not(
    people: People, city: City
) -> None:
    browser = people.at()
    csrf = await login(browser, CITY_ADMIN)
    pole = {"code": "CSRF-1", "lat": 22.5, "lon": 114.0}
    r = await browser.post("/api/poles", json=pole)
    assert r.status_code == 403
    assert "X-CSRF-Token" in r.json()["detail"]
    r = await browser.post("/api/poles", json=pole, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    assert (await browser.post("/api/poles", json=pole, headers=csrf)).status_code == 201
    # an API key needs no token, even from a client that also holds a session cookie
    other = {**pole, "code": "CSRF-2"}
    r = await browser.post("/api/poles", json=other, headers=city.auth("city", Role.OPERATOR))
    assert r.status_code == 201


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_five_failures_for_a_name_slow_that_name_from_every_address(
    people: People,
) -> None:
    for i in range(5):
        r = await people.at(f"10.1.0.{i}").post(
            "/api/session", json={"user": LIGHT_OPS, "password": f"guess number {i}"}
        )
        assert r.status_code == 401
    r = await people.at("10.9.9.9").post(
        "/api/session", json={"user": LIGHT_OPS, "password": PASSWORD}
    )
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    # another name from that address is not slowed
    await login(people.at("10.9.9.9"), LIGHT_ADMIN)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_five_failures_from_an_address_slow_that_address_only(people: People) -> None:
    attacker, user = people.at("203.0.113.7"), people.at("10.2.0.1")
    for i in range(5):
        r = await attacker.post("/api/session", json={"user": f"guess-{i}", "password": PASSWORD})
        assert r.status_code == 401
    r = await attacker.post("/api/session", json={"user": LIGHT_OPS, "password": PASSWORD})
    assert r.status_code == 429
    await login(user, LIGHT_OPS)  # the real user, elsewhere
    r = await attacker.post("/api/session", json={"user": LIGHT_OPS, "password": PASSWORD})
    assert r.status_code == 429, "a success elsewhere must not reset the attacker's count"


async def test_a_session_ends_when_idle_past_its_lifetime_or_its_user_disabled(
    platform: Platform, people: People, city: City
) -> None:
    browser = people.at()
    ended = {"idle": {"last_seen": 0}, "lifetime": {"expires": 0}}
    for why, values in ended.items():
        await login(browser, LIGHT_OPS)
        assert (await browser.get("/api/session")).status_code == 200
        with platform.db.engine.begin() as conn:  # as if that much time had passed
            conn.execute(update(user_sessions).values(**values))
        assert (await browser.get("/api/session")).status_code == 401, why
    await login(browser, LIGHT_OPS)
    r = await people.at().patch(
        f"/api/users/{people.ids[LIGHT_OPS]}", json={"disabled": True}, headers=city.auth("city")
    )
    assert r.status_code == 200
    assert r.json()["disabled"] is True
    assert (await browser.get("/api/alarms")).status_code == 401
    r = await browser.post("/api/session", json={"user": LIGHT_OPS, "password": PASSWORD})
    assert r.status_code == 401


async def test_a_tenant_admin_manages_only_its_own_tenants_users(
    people: People, city: City
) -> None:
    admin = people.at()
    csrf = await login(admin, LIGHT_ADMIN)
    listed = (await admin.get("/api/users")).json()
    assert {u["name"] for u in listed} == {LIGHT_ADMIN, LIGHT_OPS}
    assert (await admin.get(f"/api/users/{people.ids[TELECOM_OPS]}")).status_code == 404
    r = await admin.patch(
        f"/api/users/{people.ids[CITY_ADMIN]}", json={"disabled": True}, headers=csrf
    )
    assert r.status_code == 404
    body = {"name": "sneaky", "role": "admin", "password": PASSWORD, "tenant": "city"}
    r = await admin.post("/api/users", json=body, headers=csrf)
    assert r.status_code == 403
    r = await admin.post("/api/users", json={**body, "tenant": None}, headers=csrf)
    assert (r.status_code, r.json()["tenant"], r.json()["role"]) == (201, "lighting", "admin")
    assert "password" not in r.text
    # an operator manages nobody; the city operator's admin manages everyone
    ops = people.at()
    await login(ops, LIGHT_OPS)
    assert (await ops.get("/api/users")).status_code == 403
    r = await people.at().get("/api/users", headers=city.auth("city"))
    assert len(r.json()) == 5
    r = await people.at().get("/api/users?tenant=telecom", headers=city.auth("city"))
    assert [u["name"] for u in r.json()] == [TELECOM_OPS]
    r = await people.at().post(
        "/api/users",
        json={"name": "tel-admin", "role": "admin", "password": PASSWORD, "tenant": "telecom"},
        headers=city.auth("city"),
    )
    assert r.json()["tenant"] == "telecom"
    r = await people.at().post(
        "/api/users", json={**body, "name": "x"}, headers=city.auth("city", Role.OPERATOR)
    )
    assert r.status_code == 403
    taken = await admin.post(
        "/api/users", json={"name": LIGHT_OPS, "role": "viewer", "password": PASSWORD}, headers=csrf
    )
    assert taken.status_code == 409


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_passwords_are_long_enough_and_changed_only_with_the_current_one(
    people: People, city: City
) -> None:
    admin = people.at()
    csrf = await login(admin, LIGHT_ADMIN)
    r = await admin.post(
        "/api/users", json={"name": "short", "role": "viewer", "password": "abc"}, headers=csrf
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "password"]
    assert "at least 10 characters" in r.json()["detail"]
    me = people.at()
    mine = await login(me, LIGHT_OPS)
    url = f"/api/users/{people.ids[LIGHT_OPS]}/password"
    new = "a brand new passphrase"
    r = await me.post(url, json={"password": new, "current": "wrong password"}, headers=mine)
    assert r.status_code == 403
    r = await me.post(url, json={"password": new, "current": PASSWORD}, headers=mine)
    assert r.status_code == 204
    assert (await me.get("/api/session")).status_code == 200  # its own session goes on
    r = await people.at().post("/api/session", json={"user": LIGHT_OPS, "password": PASSWORD})
    assert r.status_code == 401
    await login(people.at(), LIGHT_OPS, new)
    # an admin's reset ends every session of the user
    r = await admin.post(url, json={"password": PASSWORD}, headers=csrf)
    assert r.status_code == 204
    assert (await me.get("/api/session")).status_code == 401
    # a user may not reset another's
    r = await me.post(f"/api/users/{people.ids[LIGHT_ADMIN]}/password", json={"password": new})
    assert r.status_code == 401  # (its session ended just now)
    ops = people.at()
    ops_csrf = await login(ops, LIGHT_OPS)
    r = await ops.post(
        f"/api/users/{people.ids[LIGHT_ADMIN]}/password", json={"password": new}, headers=ops_csrf
    )
    assert r.status_code == 403


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_password_is_never_logged_nor_answered(
    platform: Platform, people: People, city: City, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Zebra-Quartz-7781-never-shown"
    caplog.set_level(logging.DEBUG)
    answers = []
    c = people.at()
    answers.append(
        await c.post(
            "/api/users",
            json={"name": "new-one", "role": "viewer", "password": secret},
            headers=city.auth("lighting"),
        )
    )
    answers.append(await c.post("/api/session", json={"user": "new-one", "password": secret}))
    answers.append(await c.post("/api/session", json={"user": "new-one", "password": secret[:-1]}))
    uid = answers[0].json()["id"]
    answers.append(
        await c.post(
            f"/api/users/{uid}/password", json={"password": secret + "!"}, headers=city.auth("city")
        )
    )
    answers.append(await c.get("/api/audit?limit=100", headers=city.auth("city")))
    answers.append(await c.get("/api/audit?format=csv", headers=city.auth("city")))
    assert [a.status_code for a in answers] == [201, 200, 401, 204, 200, 200]
    for a in answers:
        assert secret[:-1] not in a.text
    assert secret[:-1] not in caplog.text
    assert {"user.create", "session.login", "session.login_failed", "user.password"} <= {
        e["action"] for e in answers[4].json()["entries"]
    }


async def test_the_alarm_stream_takes_a_session_cookie_from_its_own_site_only(
    platform: Platform, people: People, server_port: int
) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server_port}") as browser:
        await login(browser, LIGHT_OPS)
        cookie = f"smartpole_session={browser.cookies['smartpole_session']}"
    url = f"ws://127.0.0.1:{server_port}/api/alarms/stream"
    own = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{server_port}"}
    async with websockets.connect(url, additional_headers=own) as ws:
        await ws.ping()
    for headers in (
        {"Cookie": cookie, "Origin": "http://evil.example"},
        {"Cookie": cookie},  # no Origin: not a page of this site
        {"Origin": f"http://127.0.0.1:{server_port}"},  # no session
    ):
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with websockets.connect(url, additional_headers=headers):
                pass

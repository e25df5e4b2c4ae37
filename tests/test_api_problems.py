"""Errors of the REST API: every one is problem+json with a declared status, never a plain-text
500; an unexpected failure carries a request id that the log names too."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends
from fastapi.responses import StreamingResponse

from fixtures_api import City
from smartpole.api import create_app
from smartpole.app import Platform

PROBLEM = "application/problem+json"


def _is_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert (body["status"], type(body["type"]), type(body["title"])) == (status, str, str)
    return body


@pytest.mark.parametrize(
    ("method", "url"),
    [
        pytest.param(
            "GET",
            "/api/devices?limit=139&pole_id=1&offset=46612856447130574013612309386100736",
            id="offset",
        ),
        pytest.param("GET", "/api/teams/34959214440064886077820764160", id="team-id"),
        pytest.param("GET", "/api/devices/99999999999999999999999", id="device-id"),
        pytest.param("POST", "/api/tenants/11330660899873206829056/apikeys", id="tenant-id"),
        pytest.param("GET", "/api/devices/2147483648", id="id-past-int4"),
        pytest.param("GET", "/api/alarms?pole_id=9223372036854775808", id="query-id"),
        pytest.param("GET", "/api/devices/0", id="id-zero"),
    ],
)
async def test_ids_beyond_the_columns_are_invalid_input(
    client: httpx.AsyncClient, city: City, method: str, url: str
) -> None:
    r = await client.request(method, url, json={"role": "viewer"}, headers=city.auth("city"))
    body = _is_problem(r, 422)
    assert body["errors"][0]["loc"][0] in ("path", "query")


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("start=-99999999999999999999999&end=5", id="start"),
        pytest.param("agg=avg&start=0&end=99999999999999999999999", id="end"),
        pytest.param("agg=avg&interval=99999999999999999999999", id="interval"),
    ],
)
async def test_times_beyond_the_columns_are_invalid_input(
    client: httpx.AsyncClient, city: City, query: str
) -> None:
    r = await client.post("/api/devices", json={"kind": "lamp"}, headers=city.auth("city"))
    url = f"/api/devices/{r.json()['id']}/timeseries?keys=power&{query}"
    _is_problem(await client.get(url, headers=city.auth("city")), 422)
    since = "/api/alarms?since=99999999999999999999999"
    _is_problem(await client.get(since, headers=city.auth("city")), 422)


async def test_a_retention_past_a_century_is_invalid_input(
    client: httpx.AsyncClient, city: City
) -> None:
    body = {"days": 2**64}
    r = await client.put("/api/telemetry/retention/power", json=body, headers=city.auth("city"))
    _is_problem(r, 422)


async def test_an_id_beyond_the_column_in_a_body_is_invalid_input(
    client: httpx.AsyncClient, city: City
) -> None:
    body = {"kind": "lamp", "pole_id": 2**63}
    r = await client.post("/api/devices", json=body, headers=city.auth("city"))
    assert _is_problem(r, 422)["errors"][0]["loc"] == ["body", "pole_id"]


async def test_null_for_a_profile_flag_is_invalid_input_and_changes_nothing(
    client: httpx.AsyncClient, city: City
) -> None:
    new = {"name": "lamps", "kind": "lamp"}
    r = await client.post("/api/provision-profiles", json=new, headers=city.auth("city"))
    assert r.status_code == 201, r.text
    url = f"/api/provision-profiles/{r.json()['id']}"
    change = {"create_new": None, "pre_registered": None, "name": "renamed"}
    body = _is_problem(await client.patch(url, json=change, headers=city.auth("city")), 422)
    assert {tuple(e["loc"]) for e in body["errors"]} == {("create_new",), ("pre_registered",)}
    after = (await client.get(url, headers=city.auth("city"))).json()
    assert (after["name"], after["create_new"]) == ("lamps", True)


async def test_a_conflict_naming_a_title_keeps_the_problem_members(
    client: httpx.AsyncClient, city: City
) -> None:
    url = f"/api/tenants/{city.ids['telecom']}"
    change = {"name": "lighting", "title": "Telecom renamed"}
    body = _is_problem(await client.patch(url, json=change, headers=city.auth("city")), 409)
    assert body["title"] == "Conflict"


async def test_an_error_field_named_type_does_not_hide_the_problem_type(
    client: httpx.AsyncClient, city: City
) -> None:
    r = await client.post("/api/poles/within", json={}, headers=city.auth("city"))
    assert _is_problem(r, 422)["type"].startswith("https://")


async def test_a_nul_character_postgresql_cannot_store_is_invalid_input(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    body = {"name": "nul-title", "title": "a\u0000b"}
    r = await client.post("/api/tenants", json=body, headers=city.auth("city"))
    if platform.db.dialect == "sqlite":
        assert r.status_code == 201, r.text  # SQLite text holds any character
    else:
        assert "NUL" in _is_problem(r, 422)["detail"]
    assert (await client.get("/api/me", headers=city.auth("city"))).status_code == 200


async def test_a_firmware_title_in_any_script_downloads(
    client: httpx.AsyncClient, city: City
) -> None:
    query = {"title": "路灯固件\U0001adce", "version": "2.0", "kind": "lamp"}
    headers = {**city.auth("lighting"), "content-type": "application/octet-stream"}
    r = await client.post("/api/firmware", params=query, content=b"\x00fw", headers=headers)
    assert r.status_code == 201, r.text
    got = await client.get(f"/api/firmware/{r.json()['id']}/data", headers=city.auth("lighting"))
    assert (got.status_code, got.content) == (200, b"\x00fw")
    disposition = got.headers["content-disposition"]
    assert "filename*=UTF-8''%E8%B7%AF%E7%81%AF" in disposition
    assert 'filename="_____-2.0.bin"' in disposition


# -- unexpected failures ------------------------------------------------------------------
class Broken(RuntimeError):
    """What a defect raises: no handler knows it."""


def _broken_dependency() -> None:
    raise Broken("a dependency failed")


@pytest.fixture
async def broken_client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """The app with three routes that fail as a defect would: in the route, in a dependency,
    and in a streamed answer after it started."""
    app = create_app(platform.api_services())

    def in_route() -> None:
        raise Broken("the route failed")

    def in_dependency(_: Annotated[None, Depends(_broken_dependency)]) -> None:
        """Never reached."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"items": ['
        raise Broken("the stream failed")

    def streamed() -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="application/json")

    app.add_api_route("/test/route", in_route)
    app.add_api_route("/test/dependency", in_dependency)
    app.add_api_route("/test/stream", streamed)
    # raise_app_exceptions=False: what a real server does with an exception that gets out
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://smartpole.test") as c:
        yield c


@pytest.mark.parametrize("where", [pytest.param("route"), pytest.param("dependency")])
async def test_an_unexpected_error_answers_a_problem_whose_request_id_is_logged(
    broken_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    with caplog.at_level(logging.ERROR):
        r = await broken_client.get(f"/test/{where}")
    body = _is_problem(r, 500)
    request_id = r.headers["x-request-id"]
    assert body["request_id"] == request_id
    assert f"the {where} failed" not in r.text  # the internals stay in the log
    logged = [rec for rec in caplog.records if request_id in rec.getMessage()]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], Broken)


async def test_a_stream_that_fails_after_it_started_is_cut_and_logged(
    broken_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        r = await broken_client.get("/test/stream")
    request_id = r.headers["x-request-id"]
    assert r.status_code == 200  # already sent: the client sees a cut body, not a false end
    assert any(
        request_id in rec.getMessage() and rec.exc_info is not None for rec in caplog.records
    )


async def test_every_answer_has_a_request_id_and_keeps_a_sane_one_given(
    client: httpx.AsyncClient, city: City
) -> None:
    mine = await client.get("/api/me", headers={"X-Request-Id": "trace-42", **city.auth("city")})
    assert mine.headers["x-request-id"] == "trace-42"
    forged = await client.get("/api/me", headers={"X-Request-Id": "a\tb" + "x" * 80})
    assert forged.status_code == 401
    assert forged.headers["x-request-id"] != "a\tb" + "x" * 80
    assert len(forged.headers["x-request-id"]) == 32


# -- the document ---------------------------------------------------------------------------
async def test_every_error_the_document_declares_is_a_problem(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    declared = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert {"500", "503"} <= set(answers), (method, path)
            if operation.get("security") or "{" in path:
                assert {"401", "404"} & set(answers), (method, path)
            for code, answer in answers.items():
                if int(code) >= 400 and (path, code) != ("/healthz", "503"):
                    # NGSI-LD's problem types are application/json, as its standard says
                    ngsi_ld = ["application/json"] if path.startswith("/ngsi-ld/") else []
                    assert list(answer["content"]) == [PROBLEM, *ngsi_ld], (method, path, code)
                    declared += 1
    assert declared > 500
    # /healthz answers 503 with its usual body (and the reason), as it declares
    health = document["paths"]["/healthz"]["get"]["responses"]["503"]
    assert list(health["content"]) == ["application/json"]

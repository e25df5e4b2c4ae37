"""Rules written as YAML: each problem is reported at its line, and a rule reads back as YAML
(what the console's rule editor shows)."""

from __future__ import annotations

import httpx
import pytest

from fixtures_api import City
from helpers import BAD_RULE

YAML = {"Content-Type": "application/yaml"}


@pytest.mark.parametrize("path", ["/api/rules", "/api/rules/check"])
async def test_a_yaml_rule_s_problems_carry_their_lines(
    client: httpx.AsyncClient, city: City, path: str
) -> None:
    r = await client.post(path, content=BAD_RULE, headers={**city.auth("city"), **YAML})
    assert r.status_code == 422, r.text
    lines = {tuple(e["loc"]): e["line"] for e in r.json()["errors"]}
    assert lines[("condition", "op")] == 6
    assert any(loc[0] == "actions" and line == 9 for loc, line in lines.items())


async def test_a_yaml_syntax_error_carries_its_line(client: httpx.AsyncClient, city: City) -> None:
    text = "name: x\ncondition:\n  key: [pm25\n  op: '>'\n"
    r = await client.post("/api/rules/check", content=text, headers={**city.auth("city"), **YAML})
    assert r.status_code == 422
    (error,) = r.json()["errors"]
    assert error["line"] in (3, 4, 5)


async def test_import_locates_each_rule_s_problem(client: httpx.AsyncClient, city: City) -> None:
    text = "rules:\n  - name: ok\n    condition: {key: pm25, op: '>', value: 1}\n" + (
        "    actions: [{alarm: {type: a}}]\n  - name: bad\n    condition: {key: pm25, op: '?'}\n"
    )
    r = await client.post("/api/rules/import", content=text, headers={**city.auth("city"), **YAML})
    assert r.status_code == 422, r.text
    lines = {tuple(e["loc"]): e["line"] for e in r.json()["errors"]}
    assert lines[(1, "condition", "op")] == 6
    assert set(lines.values()) <= {5, 6}  # all in the second rule (a missing key: at its start)


async def test_a_rule_reads_back_as_yaml(client: httpx.AsyncClient, city: City) -> None:
    good = BAD_RULE.replace('"~"', '">"').replace("terrible", "minor")
    r = await client.post("/api/rules", content=good, headers={**city.auth("city"), **YAML})
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    back = await client.get(
        f"/api/rules/{rule_id}", headers={**city.auth("city"), "Accept": "application/yaml"}
    )
    assert back.headers["content-type"].startswith("application/yaml")
    assert back.text.startswith("name: pm25-high\nscope:\n")
    again = await client.post(
        "/api/rules", content=back.text, headers={**city.auth("city"), **YAML}
    )
    assert again.status_code == 200  # the same rule, replaced

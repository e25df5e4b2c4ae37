"""The naive baseline of ``bench/mqtt.py`` (``bench/naive.py``) stores every reading it is sent.

Its numbers are a comparison only if it stores what it is given: a private Mosquitto, the
subscriber as its own process and the benchmark's raw-socket load generator, for a handful of
messages of both shapes (single readings on device topics, gateway reports of 200 readings).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from bench.mqtt_load import Scenario, find_mosquitto, gateway_body
from bench.naive import NaivePipeline


def test_the_naive_pipeline_stores_one_row_per_reading_sent(tmp_path: Path) -> None:
    mosquitto = find_mosquitto()
    assert mosquitto, "mosquitto not found; `make system-deps` installs it"
    singles = Scenario(
        "single readings",
        connections=3,
        per_connection=4,
        qos=0,
        readings_per_message=1,
        body_of=lambda i, conn: b'{"ts": %d, "values": {"power": %d}}' % (1000 + i, 10 * conn + i),
    )
    reports = Scenario(
        "gateway reports",
        connections=2,
        per_connection=3,
        qos=1,
        readings_per_message=200,
        body_of=gateway_body(2),
        gateway=True,
    )
    naive = NaivePipeline(tmp_path, mosquitto)
    try:
        runs = [naive.drive(singles), naive.drive(reports)]
    finally:
        naive.close()

    assert [(run.stored, run.stored_messages, run.lost) for run in runs] == [
        (12, 12, 0),
        (1200, 6, 0),
    ]
    assert naive.rows_in_file() == 12 + 1200
    with closing(sqlite3.connect(naive.db)) as db:
        lamps = db.execute(
            "SELECT device, key, ts, value FROM readings WHERE device LIKE 'lamp-%'"
        ).fetchall()
        gateway_rows = db.execute(
            "SELECT key, count(*), count(DISTINCT device), count(DISTINCT ts) FROM readings "
            "WHERE device LIKE 'sub-%' GROUP BY key ORDER BY key"
        ).fetchall()
    assert sorted(lamps) == sorted(
        (f"lamp-{conn}", "power", 1000 + i, 10 * conn + i) for conn in range(3) for i in range(4)
    )
    # 2 gateways x 100 sub-devices, 3 instants each, power and voltage
    assert gateway_rows == [("power", 600, 200, 3), ("voltage", 600, 200, 3)]

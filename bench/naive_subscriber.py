"""The naive pipeline's subscriber, as a Python team writes it first (``bench/naive.py`` runs it).

One paho-mqtt client subscribed at QoS 0 to the telemetry topics, ``json.loads``, and SQLite
``executemany`` into a ``(device, key, ts)`` ``WITHOUT ROWID`` table, a commit every 1,000
messages (and when no message came for a moment, so that the last ones are stored too). No
checks: a device is whatever its topic or its gateway's report names.

    python -m bench.naive_subscriber PORT DB
"""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import time
from typing import Any

from paho.mqtt import client as mqtt

GATEWAY_TOPIC = "v1/gateway/telemetry"
COMMIT_EVERY = 1000  # messages
IDLE_S = 0.01  # the rows of fewer than COMMIT_EVERY messages are committed after this quiet


def subscribe(port: int, db_path: str) -> None:
    """Store what arrives on the telemetry topics until SIGTERM. Prints ``ready`` once
    subscribed, then after every commit ``stored <rows> <messages> <perf_counter>``: the rows
    committed so far, their messages and the moment of the commit."""
    db = sqlite3.connect(db_path)
    db.execute(
        "CREATE TABLE IF NOT EXISTS readings (device TEXT, key TEXT, ts INTEGER, value, "
        "PRIMARY KEY (device, key, ts)) WITHOUT ROWID"
    )
    db.commit()
    rows: list[tuple[str, str, int, Any]] = []
    messages = 0
    last = time.monotonic()
    stopping = False

    def commit() -> None:
        db.executemany("INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?)", rows)
        db.commit()
        rows.clear()
        # total_changes: the rows inserted, not those ignored as a repeated (device, key, ts)
        print(f"stored {db.total_changes} {messages} {time.perf_counter()!r}", flush=True)

    def on_message(_client: Any, _userdata: Any, msg: Any) -> None:
        nonlocal messages, last
        data = json.loads(msg.payload)
        if msg.topic == GATEWAY_TOPIC:
            for device, reports in data.items():
                for report in reports:
                    ts = report["ts"]
                    for key, value in report["values"].items():
                        rows.append((device, key, ts, value))
        else:
            device = msg.topic.split("/")[2]
            ts = data["ts"]
            for key, value in data["values"].items():
                rows.append((device, key, ts, value))
        messages += 1
        last = time.monotonic()
        if messages % COMMIT_EVERY == 0:
            commit()

    def on_connect(client: Any, *_: Any) -> None:
        client.subscribe([("v1/devices/+/telemetry", 0), (GATEWAY_TOPIC, 0)])

    def on_term(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="naive-subscriber")
    client.on_connect = on_connect
    client.on_subscribe = lambda *_: print("ready", flush=True)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    while True:
        client.loop(timeout=IDLE_S)
        if time.monotonic() - last >= IDLE_S:
            if rows:
                commit()
            if stopping:
                break
    client.disconnect()
    db.close()


if __name__ == "__main__":
    subscribe(int(sys.argv[1]), sys.argv[2])

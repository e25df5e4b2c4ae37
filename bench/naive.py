"""The naive pipeline a Python team writes first, as a baseline for ``bench/mqtt.py``.

Mosquitto (a private instance) → one paho-mqtt subscriber at QoS 0 → ``json.loads`` → SQLite
``executemany`` into a ``(device, key, ts)`` ``WITHOUT ROWID`` table, a commit every 1,000
messages; no authentication, no checks, acknowledged by the broker before anything is stored.
The subscriber, the whole of that team's program, is ``bench/naive_subscriber.py``. A device is
known by its topic (``v1/devices/<name>/telemetry``: Mosquitto does not tell a subscriber who
published), a gateway's sub-devices by the names in its report.

It takes the loads of ``bench/mqtt.py`` (:func:`bench.mqtt_load.scenarios`: the same
raw-socket load generator and payloads) and counts the rows it has committed; a load is
measured from its start until every reading sent is stored, or until nothing more is stored
for a while (what is missing then is reported as lost).

    python -m bench.naive            # the naive pipeline alone, full loads
    python -m bench.naive --short    # CI sizes
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from bench.mqtt_load import (
    GATEWAY_TOPIC,
    Mosquitto,
    Scenario,
    find_mosquitto,
    load,
    raise_fd_limit,
    rss_mib,
    scenarios,
)
from bench.naive_subscriber import COMMIT_EVERY

STALL_S = 10.0  # a load is over when nothing more was stored for this long (the rest: lost)


@dataclass(frozen=True)
class NaiveRun:
    """What the naive pipeline stored of one load."""

    messages: int
    readings: int
    stored_messages: int
    stored: int
    seconds: float  # from the start of the load until the last commit of it

    @property
    def lost(self) -> int:
        """Readings sent and not stored."""
        return self.readings - self.stored

    @property
    def readings_per_s(self) -> float:
        """Readings stored per second."""
        return self.stored / self.seconds

    @property
    def messages_per_s(self) -> float:
        """Messages stored per second."""
        return self.stored_messages / self.seconds


def device_topic(conn: int) -> str:
    """The topic device number ``conn`` publishes its telemetry on."""
    return f"v1/devices/lamp-{conn}/telemetry"


class NaivePipeline:
    """A private Mosquitto and the subscriber process storing into ``<root>/naive.db``."""

    def __init__(self, root: Path, mosquitto: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.db = root / "naive.db"
        self.broker = Mosquitto(root, mosquitto)
        self._progress = (0, 0, 0.0)  # rows, messages, when
        self._ready = threading.Event()
        # a process of its own, started afresh (not forked or spawned from the benchmark,
        # whose imports would weigh on its memory)
        self.subscriber = subprocess.Popen(
            [sys.executable, "-m", "bench.naive_subscriber", str(self.broker.port), str(self.db)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        self._follower = threading.Thread(target=self._follow, daemon=True)
        self._follower.start()
        if not self._ready.wait(30):
            self.close()
            raise RuntimeError("the naive subscriber did not subscribe within 30 s")

    def _follow(self) -> None:
        assert self.subscriber.stdout is not None
        for line in self.subscriber.stdout:
            word, *values = line.split()
            if word == "ready":
                self._ready.set()
            elif word == "stored":
                self._progress = (int(values[0]), int(values[1]), float(values[2]))

    def stored(self) -> tuple[int, int, float]:
        """Rows committed so far, the messages they came in, and when (``perf_counter``)."""
        return self._progress

    def drive(self, scenario: Scenario) -> NaiveRun:
        """Send ``scenario`` through the pipeline and wait until it is stored (or stalls)."""
        rows0, messages0, _ = self.stored()
        tokens = ["naive"] * scenario.connections  # anonymous broker: the name is not used
        sent = load(
            self.broker.port,
            tokens,
            scenario.per_connection,
            scenario.qos,
            scenario.body_of,
            topic=GATEWAY_TOPIC if scenario.gateway else device_topic,
            procs=min(2, scenario.connections),
        )
        progress = self.stored()
        seen = time.perf_counter()
        while progress[0] - rows0 < scenario.readings and time.perf_counter() - seen < STALL_S:
            time.sleep(0.01)
            if self.stored() != progress:
                progress, seen = self.stored(), time.perf_counter()
        rows, messages, when = progress
        return NaiveRun(
            scenario.messages,
            scenario.readings,
            messages - messages0,
            rows - rows0,
            max(when - sent.started, sent.wall),
        )

    def peak_rss_mib(self) -> float:
        """The peak resident memory of the subscriber plus that of its broker (which holds
        what the subscriber has not read yet)."""
        return rss_mib(self.subscriber.pid, "VmHWM") + rss_mib(self.broker.proc.pid, "VmHWM")

    def rows_in_file(self) -> int:
        """The rows in the database file, counted by SQLite."""
        with closing(sqlite3.connect(self.db)) as db:
            return int(db.execute("SELECT count(*) FROM readings").fetchone()[0])

    def close(self) -> None:
        """Stop the subscriber (after its last commit) and the broker."""
        self.subscriber.terminate()
        try:
            self.subscriber.wait(10)
        except subprocess.TimeoutExpired:
            self.subscriber.kill()
            self.subscriber.wait(10)
        self._follower.join(10)
        assert self.subscriber.stdout is not None
        self.subscriber.stdout.close()
        self.broker.stop()


def main() -> None:
    """Run the loads of ``bench/mqtt.py`` through the naive pipeline alone and print them."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--short", action="store_true")
    args = ap.parse_args()
    raise_fd_limit()
    mosquitto = find_mosquitto()
    if mosquitto is None:
        raise SystemExit("mosquitto not found; `make system-deps` installs it")
    print(
        f"naive pipeline ({'short' if args.short else 'full'}): Mosquitto -> paho (QoS 0) -> "
        f"json.loads -> SQLite executemany, a commit every {COMMIT_EVERY:,} messages"
    )
    print(f"{'load':52} {'msg/s':>9} {'readings/s':>11} {'lost':>6} {'peak RSS':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        naive = NaivePipeline(Path(tmp), mosquitto)
        try:
            for scenario in scenarios(args.short):
                run = naive.drive(scenario)
                print(
                    f"{scenario.label:52} {run.messages_per_s:9,.0f} {run.readings_per_s:11,.0f} "
                    f"{run.lost:6,} {naive.peak_rss_mib():6.0f} MiB"
                )
        finally:
            naive.close()
        print(f"rows in the file: {naive.rows_in_file():,}")


if __name__ == "__main__":
    main()

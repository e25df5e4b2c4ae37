"""How long the command line takes to answer: ``smartpole --help``, a group's help, a simple
command, beside a bare interpreter and ``import typer`` timed in the same sitting.

Each command runs N times as a fresh process (what a user waits for); the table gives the
median and the fastest run. Then the heaviest imports of ``import smartpole.cli`` (from
``python -X importtime``), which is what ``--help`` pays for before it prints anything.

    python -m bench.cli            # 15 runs of each
    python -m bench.cli --short    # CI: 3 runs of each
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = str(Path(sys.executable).parent / "smartpole")
TOP_IMPORTS = 12


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTPOLE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure what users run: compiled bytecode
    return env


def timed(argv: list[str], runs: int, cwd: Path) -> list[float]:
    """Wall seconds of ``runs`` fresh processes of ``argv`` (after one warm-up run)."""
    env = _env()
    subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)
        out.append(time.perf_counter() - t)
    return out


def top_imports(n: int) -> list[tuple[float, str]]:
    """The ``n`` top-level imports of ``import smartpole.cli`` that cost the most (cumulative
    ms), from ``python -X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import smartpole.cli"],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if not cumulative.strip().isdigit():
            continue  # the header
        depth = (len(name) - len(name.lstrip())) // 2
        if depth <= 1:  # what smartpole.cli (or the interpreter) imports itself
            found[name.strip()] = int(cumulative) / 1000
    return sorted(((ms, name) for name, ms in found.items()), reverse=True)[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true", help="the quick CI run")
    args = ap.parse_args()
    runs = 3 if args.short else 15
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        data = ("--data-dir", str(cwd / "data"))
        subprocess.run(
            [SCRIPT, "db", "upgrade", *data], env=_env(), capture_output=True, check=True
        )
        cases = [
            ("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
            ('python -c "import typer" (baseline)', [sys.executable, "-c", "import typer"]),
            ("smartpole --help", [SCRIPT, "--help"]),
            ("smartpole device --help", [SCRIPT, "device", "--help"]),
            ("smartpole tenant list (temp data dir)", [SCRIPT, "tenant", "list", *data]),
        ]
        print(f"cli: {runs} runs of each, fresh processes, seconds")
        print(f"  {'command':<40} {'median':>8} {'fastest':>8}")
        for label, argv in cases:
            times = timed(argv, runs, cwd)
            print(f"  {label:<40} {statistics.median(times):>8.3f} {min(times):>8.3f}")
    print(f"\nheaviest imports of `import smartpole.cli` (cumulative ms, top {TOP_IMPORTS}):")
    for ms, name in top_imports(TOP_IMPORTS):
        print(f"  {ms:>8.1f}  {name}")


if __name__ == "__main__":
    main()

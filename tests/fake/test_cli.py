"""`kallos fake-api serve` starts a real server process that answers /ping, and stops on SIGTERM."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx


def test_serve_answers_ping_and_terminates() -> None:
    cmd = [
        sys.executable,
        "-m",
        "kallos.cli.main",
        "fake-api",
        "serve",
        "--port",
        "0",
        "--plan",
        "demo",
        "--n-coins",
        "12",
        "--start",
        "2023-01-01",
        "--end",
        "2024-06-30",
        "--rate-limit",
        "100",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line and proc.poll() is not None:
                break
            if line.startswith("KALLOS_COINGECKO_BASE_URL="):
                url = line.strip().split("=", 1)[1]
        assert url, f"server did not start: {proc.stderr.read() if proc.stderr else ''}"
        resp = httpx.get(f"{url}/ping", headers={"x-cg-demo-api-key": "k"}, timeout=10)
        assert resp.status_code == 200
        assert resp.json()["gecko_says"] == "(V3) To the Moon!"
        assert resp.headers["x-fake-now"] == "2024-06-30T15:00:00Z" == resp.json()["fake_now"]
        assert httpx.get(f"{url}/ping", timeout=10).status_code == 401  # demo wants its key
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_serve_rejects_a_bad_plan() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kallos.cli.main", "fake-api", "serve", "--plan", "gold"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 78 and "--plan" in proc.stderr

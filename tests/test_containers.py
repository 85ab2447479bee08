"""The container files (no Docker daemon here): every `kallos` command they run exists with those options, the
image is multi-stage, non-root and has TA-Lib, compose has what docs/operations.md says (D97)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from kallos.cli.main import app

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
_KALLOS_IN_SCRIPT = re.compile(r"(?:^|[\s;&|(])kallos\s+([^\n;&|)]+)")


def check_kallos_args(args: list[str]) -> None:
    """`kallos <args>` parses: each (sub)command exists, each option is one of its options, values where needed.

    Typer builds on its own copy of click, so the command tree is walked by its attributes."""
    command: Any = typer.main.get_command(app)
    rest = list(args)
    while hasattr(command, "commands"):  # a group
        assert rest, "a command group without a command"
        name = rest.pop(0)
        assert name in command.commands, f"`kallos {' '.join(args)}`: no command {name!r}"
        command = command.commands[name]
    params = command.params
    options = {o: p for p in params if p.param_type_name == "option" for o in (*p.opts, *p.secondary_opts)}
    arguments = [p for p in params if p.param_type_name == "argument"]
    positional = 0
    i = 0
    while i < len(rest):
        token = rest[i]
        if token.startswith("-"):
            name, _, inline = token.partition("=")
            assert name in options, f"`kallos {' '.join(args)}`: {command.name} has no option {name}"
            if not options[name].is_flag and not inline:
                i += 1
                assert i < len(rest), f"`kallos {' '.join(args)}`: {name} needs a value"
        else:
            positional += 1
        i += 1
    assert positional <= len(arguments), f"`kallos {' '.join(args)}`: unexpected arguments"


def kallos_invocations(argv: list[str]) -> list[list[str]]:
    """The `kallos` command lines a container runs: its argv, or the `kallos ...` lines of a shell script."""
    if not argv:
        return []
    if Path(argv[0]).name == "kallos":
        return [argv[1:]]
    if Path(argv[0]).name in ("sh", "bash") and "-c" in argv:
        script = " ".join(argv[argv.index("-c") + 1 :])
        return [shlex.split(m.group(1).replace("$$", "$")) for m in _KALLOS_IN_SCRIPT.finditer(script)]
    return []


def _dockerfile_json(text: str, instruction: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.startswith(instruction + " ")]
    import json

    return json.loads(lines[-1][len(instruction) + 1 :]) if lines else []


def test_dockerfile_is_multi_stage_non_root_with_talib_and_runs_a_real_command():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, flags=re.M)
    assert stages == ["build", "runtime"]
    assert "ta-lib" in text and "TA_LIBRARY_PATH" in text and "COPY --from=build /opt/ta-lib/lib/" in text
    user = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert user and not user[-1].startswith(("root", "0:", "0")), user
    entry, cmd = _dockerfile_json(text, "ENTRYPOINT"), _dockerfile_json(text, "CMD")
    assert entry == ["kallos"]
    for args in kallos_invocations(entry + cmd):
        check_kallos_args(args)


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_has_postgres_with_a_volume_the_daily_job_the_dashboard_and_optional_dask():
    services = _compose()["services"]
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "pgdata" in _compose()["volumes"]
    assert services["dask-scheduler"]["profiles"] == ["dask"] and services["dask-worker"]["profiles"] == ["dask"]
    seen = {}
    for name, svc in services.items():
        argv = list(svc.get("entrypoint") or (["kallos"] if svc.get("image", "").startswith("kallos") else []))
        argv += list(svc.get("command") or [])
        for args in kallos_invocations(argv):
            check_kallos_args(args)
            seen[name] = args
    assert seen["daily"][:1] == ["run"] and "--metrics-file" in seen["daily"]
    assert seen["dashboard"][:1] == ["serve"] and seen["migrate"] == ["db", "init"]
    # Beyond loopback the dashboard requires the token: compose must supply it.
    assert "KALLOS_DASHBOARD_TOKEN" in services["dashboard"]["environment"]
    assert services["dashboard"]["ports"] == ["127.0.0.1:8050:8050"]


def _k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod = spec.get("template", {}).get("spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def test_kubernetes_manifests_run_real_commands_as_non_root():
    docs = _k8s_docs()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("CronJob", "kallos-daily"), ("Deployment", "kallos-dashboard"), ("Deployment", "kallos-dask-worker"),
            ("Deployment", "kallos-dask-scheduler")} <= kinds  # fmt: skip
    commands = []
    for doc in docs:
        if doc["kind"] not in ("CronJob", "Deployment"):
            continue
        spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
        assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        for c in _containers(doc):
            argv = list(c.get("command") or ["kallos"]) + list(c.get("args") or [])
            for args in kallos_invocations(argv):
                check_kallos_args(args)
                commands.append(args)
    assert ["run", "--metrics-file", "/metrics/kallos.prom"] in commands
    assert ["serve", "--host", "0.0.0.0", "--port", "8050"] in commands
    cron = next(d for d in docs if d["kind"] == "CronJob")
    assert cron["spec"]["schedule"] == "40 0 * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    dashboard = next(d for d in docs if d["metadata"]["name"] == "kallos-dashboard" and d["kind"] == "Deployment")
    env = {e["name"] for c in _containers(dashboard) for e in c.get("env", [])}
    assert "KALLOS_DASHBOARD_TOKEN" in env


@pytest.mark.parametrize(
    "args",
    [["serve", "--hots", "0.0.0.0"], ["run", "--metrics"], ["no-such-command"], ["db", "upgrade-everything"]],
)
def test_the_checker_rejects_what_the_cli_does_not_have(args):
    with pytest.raises(AssertionError):
        check_kallos_args(args)


def test_shell_scripts_are_searched_for_kallos_lines():
    script = 'set -u\nwhile :; do sleep 1; kallos run --metrics-file /m/k.prom || echo "exit $$?"; done'
    assert kallos_invocations(["/bin/sh", "-c", script]) == [["run", "--metrics-file", "/m/k.prom"]]

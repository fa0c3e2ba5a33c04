"""-e values are checked and typed by the roles' argument specs before anything runs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

from pflow_ops import catalogue, validate
from pflow_ops.errors import UsageError
from pflow_ops.request import RunRequest

ROOT = Path(__file__).resolve().parents[2]


def _typed(command: str, target: str, **extra: str) -> dict[str, Any]:
    cat = catalogue.load()
    rb = cat.maintenance_for(target) if command == "maintain" else cat.get(target)
    return validate.extra_vars(RunRequest(command, target, extra_vars=extra), rb)  # type: ignore[arg-type]


def test_an_unknown_key_names_the_closest_one() -> None:
    with pytest.raises(UsageError, match="did you mean backend_health_gate_timeout\\?"):
        _typed("recover", "rb-01", backend_health_gate_timout="40")
    # A key of another runbook's role is unknown here, with the right one suggested.
    wanted = r"unknown -e backend_health_url for RB-03 .*cache_backend_health_url\?"
    with pytest.raises(UsageError, match=wanted):
        _typed("recover", "rb-03", backend_health_url="http://x")
    with pytest.raises(UsageError, match=r"see the roles' meta/argument_specs\.yml"):
        _typed("recover", "rb-01", zzz="1")


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("backend_data_paths", "[/etc]", ["/etc"]),
        ("backend_data_paths", "/a, /b", ["/a", "/b"]),
        ("backend_health_gate_timeout", "40", 40.0),
        ("backend_log_lines", "10", 10),
        ("backend_check_dependencies", "no", False),
        ("backend_postgres_password", "0123", "0123"),  # a str stays the text typed
        ("backend_postgres_password", "true", "true"),
        ("backend_probe_url", "", ""),
        (
            "backend_supervisor_server_url",
            "unix:///run/supervisor.sock",
            "unix:///run/supervisor.sock",
        ),
        ("pflow_serial", "1,10%", "1,10%"),
        ("pflow_max_fail_percentage", "20", 20),
        ("pflow_confirm_env", "local", "local"),
        ("alert_loop_matchers", "{service: api}", {"service": "api"}),
        ("service_manager_stop_timeout", "2", 2),
        ("ansible_python_interpreter", "/usr/bin/python3", "/usr/bin/python3"),
    ],
)
def test_values_are_typed_by_the_spec(key: str, text: str, value: object) -> None:
    typed = _typed("recover", "rb-01", **{key: text})
    assert typed == {key: value} and type(typed[key]) is type(value)


@pytest.mark.parametrize(
    ("key", "text", "needle"),
    [
        ("backend_data_paths", "{a: 1}", "expects a list"),
        ("backend_data_paths", "[[/etc]]", "expects a list of str"),
        ("backend_health_gate_timeout", "soon", "expects a number"),
        ("backend_health_gate_timeout", "nan", "expects a number"),
        ("backend_log_lines", "1.5", "expects an integer"),
        ("backend_check_dependencies", "maybe", "expects true or false"),
        ("backend_service_manager", "systemd", "choose one of supervisord, compose"),
        ("alert_loop_matchers", "[a]", "expects a mapping"),
        ("backend_health_url", "file:///etc/passwd", "expects an http or https URL"),
        ("backend_probe_url", "gopher://x/", "expects an http or https URL"),
        ("backend_health_url", "http://", "expects an http or https URL"),
        ("alert_loop_prometheus_url", "file:///etc/passwd", "http or https"),
        ("backend_supervisor_server_url", "file:///tmp/s", "http or https or unix URL"),
        ("backend_error_rate_max", "5", "out of range \\(at least 0 and at most 1\\)"),
        ("backend_latency_p95_max_ms", "0", "out of range \\(above 0"),
        ("backend_soak_seconds", "-1", "out of range"),
    ],
)
def test_wrong_values_are_usage_errors(key: str, text: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle) as exc:
        _typed("recover", "rb-01", **{key: text})
    assert exc.value.exit_code == 2 and key in str(exc.value)


@pytest.mark.parametrize(
    "key",
    ["pflow_run_id", "pflow_mode", "backend_mode", "pflow_alert_name", "alert_loop_alertname"],
)
def test_what_pflow_ops_sets_from_the_command_cannot_come_from_e(key: str) -> None:
    with pytest.raises(UsageError, match=f"-e {key} is set by pflow-ops"):
        _typed("recover", "rb-01", **{key: "x"})


@pytest.mark.parametrize("key", ["pflow_env", "backend_env", "database_env", "cache_env"])
def test_the_environment_cannot_come_from_e(key: str) -> None:
    """It keys the restart budget and the run lock: another value would count restarts and
    lock for another environment."""
    with pytest.raises(UsageError, match=f"-e {key} cannot be set per run"):
        _typed("recover", "rb-01", **{key: "elsewhere"})


def test_every_pflow_variable_the_playbooks_read_is_accepted_or_set_by_pflow_ops() -> None:
    texts = [p.read_text() for p in (ROOT / "collection" / "playbooks").glob("*.yml")]
    texts += [p.read_text() for p in (ROOT / "collection" / "roles").glob("*/defaults/main.yml")]
    read = {m for t in texts for m in re.findall(r"\b(pflow_[a-z_]+) *\| *default", t)}
    assert {"pflow_serial", "pflow_max_fail_percentage", "pflow_confirm_env"} <= read
    assert read - validate.LAUNCHER_SET <= set(validate.pflow_vars())
    assert _typed("recover", "rb-01", pflow_prometheus_url="https://prom") == {
        "pflow_prometheus_url": "https://prom"
    }
    with pytest.raises(UsageError, match="http or https"):  # typed as the option it feeds
        _typed("recover", "rb-01", pflow_prometheus_url="file:///etc/passwd")


def test_maintenance_and_other_runbooks_use_their_own_roles() -> None:
    assert _typed("maintain", "database", database_top_n="5") == {"database_top_n": 5}
    assert _typed("recover", "rb-03", cache_restart_budget_max="1") == {
        "cache_restart_budget_max": 1
    }
    with pytest.raises(UsageError, match="out of range"):
        _typed("recover", "rb-02", database_cache_hit_min="1.5")


def test_the_ranges_are_the_roles_preflight_asserts() -> None:
    """RANGES is the launcher's copy of each role's preflight assert: kept equal here."""
    found: dict[str, tuple[float, float, bool]] = {}
    pattern = re.compile(r"- (-?[\d.]+) (<=|<) (\w+) \| (?:float|int) <= ([\d.]+)")
    for preflight in (ROOT / "collection" / "roles").glob("*/tasks/preflight.yml"):
        for low, op, key, high in pattern.findall(preflight.read_text()):
            found[key] = (float(low), float(high), op == "<=")
    # RB-01's preflight decides in Python (module_utils/backend_preflight.py): its table.
    path = ROOT / "collection" / "plugins" / "module_utils" / "backend_preflight.py"
    spec = importlib.util.spec_from_file_location("backend_preflight", path)
    assert spec and spec.loader
    backend = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(backend)
    for key, low, high, low_ok in backend.RANGES:
        found[key] = (float(low), float(high), low_ok)
    assert "backend_soak_seconds" in found
    budget = {k for k in found if "restart_budget" in k}  # the budget plugin's to refuse
    assert {k: found[k] for k in found.keys() - budget} == validate.RANGES


def test_the_limit_check_ignores_the_input_guard_play() -> None:
    """The guard play runs on all:localhost; counting it would let any --limit pass."""
    from pflow_ops.paths import project_root

    for book, group in [
        ("playbooks/rb-01-backend-down.yml", "pivotal_backend"),
        ("playbooks/maintenance-database.yml", "pivotal_database"),
    ]:
        assert validate.groups_of(project_root() / book) == (group,)

"""Alert routing: one function for `pflow-ops alert`, the receiver and the EDA rulebooks.

One test per branch of ``routing.route`` and ``routing.table``, plus the CLI's use of it with a
real inventory directory (group_vars aliases read the way Ansible reads them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pflow_ops import catalogue, environments, routing, run
from pflow_ops.errors import UsageError
from pflow_ops.request import RunRequest

CAT = catalogue.load()


@pytest.fixture(scope="module")
def tbl() -> routing.Table:
    return routing.table(CAT, {"NodeExporterBackendDown": "BackendServiceDown", "PgBad": "rb-02"})


def test_a_catalogue_alert_routes_to_its_runbook(tbl: routing.Table) -> None:
    routed = routing.route(tbl, "HighErrorRate", {"severity": "critical"})
    assert (routed.ok, routed.runbook, routed.via) == (True, "RB-01", routing.VIA_CATALOGUE)


def test_a_catalogue_alias_routes_like_the_alert_it_names(tbl: routing.Table) -> None:
    routed = routing.route(tbl, "PostgresqlDown", {})
    assert (routed.ok, routed.runbook, routed.via) == (True, "RB-02", routing.VIA_ALIAS)
    assert routed.detail == "alias of DatabaseConnectionFailure"


def test_an_environment_alias_may_name_a_runbook_id_in_any_case(tbl: routing.Table) -> None:
    assert routing.route(tbl, "PgBad", {}).runbook == "RB-02"
    assert routing.route(tbl, "NodeExporterBackendDown", {}).runbook == "RB-01"


def test_a_runbook_label_wins_over_the_name(tbl: routing.Table) -> None:
    routed = routing.route(tbl, "HighErrorRate", {"runbook": "rb-03"})
    assert (routed.runbook, routed.via) == ("RB-03", routing.VIA_LABEL)


@pytest.mark.parametrize("label", ["RB-9", "rb-04", "https://wiki/rb-01", "{{ 7*7 }}", ""])
def test_a_runbook_label_that_is_not_a_catalogue_id_routes_nowhere(
    tbl: routing.Table, label: str
) -> None:
    """Never guessed, never falls back to the name: a typo in a rule is visible, not rerouted."""
    routed = routing.route(tbl, "HighErrorRate", {"runbook": label})
    assert (routed.ok, routed.target, routed.reason) == (False, None, routing.UNKNOWN_RUNBOOK)


def test_an_unknown_alert_routes_nowhere(tbl: routing.Table) -> None:
    routed = routing.route(tbl, "KubePodCrashLooping", {})
    assert (routed.ok, routed.reason) == (False, routing.UNKNOWN_ALERT)


@pytest.mark.parametrize(
    "name",
    [
        "{{ lookup('pipe','id') }}",
        "$(touch /tmp/x)",
        "../../etc/passwd",
        "--yes",
        "A" * 129,
        "",
        None,
        42,
        "High ErrorRate",
    ],
)
def test_a_name_that_is_not_an_identifier_routes_nowhere(tbl: routing.Table, name: object) -> None:
    routed = routing.route(tbl, name, {"runbook": "RB-01"})
    assert (routed.ok, routed.reason) == (False, routing.BAD_ALERTNAME)
    assert len(routed.alertname) <= 128


def test_a_runbook_not_automated_is_said_so() -> None:
    tbl = routing.table(CAT, implemented={"RB-02": False})
    routed = routing.route(tbl, "DatabaseSlowQueries", {})
    assert (routed.ok, routed.runbook, routed.reason) == (False, "RB-02", routing.NOT_AUTOMATED)


@pytest.mark.parametrize(
    ("aliases", "message"),
    [
        ({"Foo": "NoSuchAlert"}, "names neither"),
        ({"Foo": "RB-99"}, "names neither"),
        ({"bad name": "RB-01"}, "not an alert name"),
        ({"HighErrorRate": "RB-02"}, "already a catalogue alert"),
    ],
)
def test_an_alias_that_points_nowhere_is_a_configuration_error(
    aliases: dict[str, str], message: str
) -> None:
    with pytest.raises(routing.AliasError, match=message):
        routing.table(CAT, aliases)


def test_environment_aliases_override_the_catalogue_ones() -> None:
    tbl = routing.table(CAT, {"PostgresqlDown": "RB-01"})
    assert routing.route(tbl, "PostgresqlDown", {}).runbook == "RB-01"


def test_alerts_for_lists_catalogue_names_first_then_aliases(tbl: routing.Table) -> None:
    names = tbl.alerts_for("RB-02")
    assert names[:3] == CAT.get("RB-02").alerts
    assert {"PostgresqlDown", "PgBad"} <= set(names[3:])


# -- the CLI's `alert` uses the same function, with the environment's aliases -----------------
def _env(tmp_path: Path, aliases: str) -> environments.Environment:
    inv = tmp_path / "inv"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts.yml").write_text("all:\n  hosts:\n    h1:\n      ansible_connection: local\n")
    (inv / "group_vars" / "all" / "vars.yml").write_text(aliases)
    return environments.Environment("t", inv / "hosts.yml", protected=False)


def _alert(name: str, runbook: str | None = None) -> RunRequest:
    return RunRequest(command="alert", target=name, env="t", runbook=runbook)


def test_cli_alert_routes_by_the_inventory_group_vars_aliases(tmp_path: Path) -> None:
    env = _env(tmp_path, "pflow_alert_aliases:\n  ApiDown: BackendServiceDown\n")
    assert run._alert_target(CAT, _alert("ApiDown"), env).id == "RB-01"
    assert run._alert_target(CAT, _alert("Whatever", runbook="rb-03"), env).id == "RB-03"


def test_cli_alert_refuses_an_unknown_alert_with_the_way_to_map_it(tmp_path: Path) -> None:
    env = _env(tmp_path, "pflow_other: 1\n")
    with pytest.raises(UsageError, match=r"unknown_alert.*pflow_alert_aliases, or --runbook ID"):
        run._alert_target(CAT, _alert("ApiDown"), env)


def test_cli_alert_refuses_a_broken_alias_configuration(tmp_path: Path) -> None:
    env = _env(tmp_path, "pflow_alert_aliases:\n  ApiDown: NoSuchThing\n")
    with pytest.raises(UsageError, match=r"alert routing for env 't'.*names neither"):
        run._alert_target(CAT, _alert("ApiDown"), env)

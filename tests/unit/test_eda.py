"""The EDA rulebooks: generated from the catalogue and the routing table, committed, and kept
equal to the generator (a drift check, like ``terraform-docs --check``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pflow_ops import catalogue, cli, eda, inventory, routing

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = [eda.Options(), eda.Options(controller=True)]


@pytest.fixture(scope="module")
def cat() -> catalogue.Catalogue:
    return catalogue.load()


def _ruleset(cat: catalogue.Catalogue, opts: eda.Options) -> dict[str, Any]:
    rulesets = yaml.safe_load(eda.render(cat, routing.table(cat, {}), opts))
    assert isinstance(rulesets, list) and len(rulesets) == 1
    return dict(rulesets[0])


@pytest.mark.parametrize("opts", VARIANTS, ids=["cli", "controller"])
def test_the_committed_rulebooks_are_what_the_catalogue_generates(
    cat: catalogue.Catalogue, opts: eda.Options
) -> None:
    committed = (ROOT / eda.path_for(opts)).read_text(encoding="utf-8")
    assert committed == eda.render(cat, routing.table(cat, {}), opts), (
        f"regenerate: pflow-ops eda rulebook{' --controller' if opts.controller else ''} "
        f"--output {eda.path_for(opts)}"
    )


@pytest.mark.parametrize("opts", VARIANTS, ids=["cli", "controller"])
def test_the_generated_rulebooks_are_valid_for_ansible_rulebook(
    cat: catalogue.Catalogue, opts: eda.Options
) -> None:
    import ansible_rulebook

    schema_path = Path(ansible_rulebook.__file__).parent / "schema" / "ruleset_schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    jsonschema.validate([_ruleset(cat, opts)], schema)


def test_the_check_passes_on_the_committed_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["eda", "rulebook", "--check"]) == 0
    assert cli.main(["eda", "rulebook", "--check", "--controller"]) == 0
    assert "is up to date" in capsys.readouterr().out


def test_the_check_fails_on_drift_and_output_regenerates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rulebook.yml"
    assert cli.main(["eda", "rulebook", "--check", "--output", str(path)]) == 1  # missing
    assert cli.main(["eda", "rulebook", "--output", str(path)]) == 0
    assert cli.main(["eda", "rulebook", "--check", "--output", str(path)]) == 0
    path.write_text(path.read_text(encoding="utf-8").replace("10 minutes", "1 minute"))
    capsys.readouterr()
    assert cli.main(["eda", "rulebook", "--check", "--output", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"pflow-ops: drift: {path} is not what the catalogue generates: "
        f"regenerate with `pflow-ops eda rulebook --output {path}`"
    )


def test_without_output_the_rulebook_goes_to_stdout(
    cat: catalogue.Catalogue, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["eda", "rulebook"]) == 0
    assert capsys.readouterr().out == eda.render(cat, routing.table(cat, {}), eda.Options())


def test_check_with_an_env_needs_an_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["eda", "rulebook", "--check", "--env", "prod"]) == 2
    assert "--check with --env needs --output PATH" in capsys.readouterr().err


def test_every_automated_runbook_has_a_rule_routed_like_the_receiver(
    cat: catalogue.Catalogue,
) -> None:
    tbl = routing.table(cat, {})
    rules = _ruleset(cat, eda.Options())["rules"]
    by_id = {r["name"].split(" ", 1)[0]: r for r in rules[:-2]}
    assert list(by_id) == [rb.id for rb in cat.runbooks if rb.implemented]
    for rb in cat.runbooks:
        rule = by_id[rb.id]
        cond = rule["condition"]
        assert cond == eda.condition(rb.id, tbl.alerts_for(rb.id))
        names = cond.split("alertname in [", 1)[1].split("]", 1)[0]
        assert [n.strip().strip('"') for n in names.split(",")] == list(tbl.alerts_for(rb.id))
        assert set(rb.alerts) <= set(tbl.alerts_for(rb.id))
        assert f'event.alert.labels.runbook == "{rb.id}"' in cond
        assert f'is match("{routing.ALERTNAME.pattern}")' in cond
        assert f'event.alert.fingerprint is match("{routing.FINGERPRINT.pattern}")' in cond
        assert 'event.alert.status == "firing"' in cond
        assert rule["throttle"] == {
            "once_within": "10 minutes",
            "group_by_attributes": ["event.alert.status"],
        }
        run = rule["action"]["run_playbook"]
        assert run["extra_vars"] == {
            "pflow_mode": "recover",
            "pflow_alert_name": "{{ event.alert.labels.alertname | tojson }}",
            "pflow_alert_fingerprint": "{{ event.alert.fingerprint | tojson }}",
            "pflow_alert_group_key": "{{ event.alert.group_key | tojson }}",
            "pflow_alert_incident": "{{ event.alert.incident | tojson }}",
        }
        entry = yaml.safe_load((ROOT / rb.playbook).read_text(encoding="utf-8"))
        assert run["name"] == entry[0]["ansible.builtin.import_playbook"]


def test_aliases_route_by_name_to_their_runbook(cat: catalogue.Catalogue) -> None:
    rules = _ruleset(cat, eda.Options())["rules"]
    rb02 = next(r for r in rules if r["name"].startswith("RB-02"))
    assert '"PostgresqlDown"' in rb02["condition"]  # catalogue alert_aliases


def test_refused_and_unrouted_alerts_are_visible_last(cat: catalogue.Catalogue) -> None:
    refused, unrouted = _ruleset(cat, eda.Options())["rules"][-2:]
    assert refused["condition"] == "event.pflow_refused is defined"
    assert "{{ event.pflow_refused }}" in refused["action"]["debug"]["msg"]
    assert unrouted["condition"] == 'event.alert.status == "firing"'


def test_the_source_needs_a_token_and_listens_on_loopback(cat: catalogue.Catalogue) -> None:
    source = _ruleset(cat, eda.Options())["sources"][0]
    assert source["eda.builtin.webhook"] == {
        "host": "127.0.0.1",
        "port": 5050,
        "token": "{{ PFLOW_EDA_TOKEN }}",
    }
    assert source["filters"] == [{"pivotal.flow_ops.alert_guard": None}]
    guard = ROOT / "collection" / "extensions" / "eda" / "plugins" / "event_filter"
    assert (guard / "alert_guard.py").is_file()


def test_the_controller_variant_launches_the_awx_job_templates(cat: catalogue.Catalogue) -> None:
    awx = yaml.safe_load((ROOT / "awx" / "vars" / "main.yml").read_text(encoding="utf-8"))
    assert awx["pflow_awx_organization"] == eda.AWX_ORGANIZATION
    rules = _ruleset(cat, eda.Options(controller=True))["rules"]
    for rb, rule in zip(cat.runbooks, rules, strict=False):
        launch = rule["action"]["run_job_template"]
        # awx/tasks/runbook_templates.yml names the recover template "<id> <title>".
        assert launch["name"] == f"{rb.id} {rb.title}"
        assert launch["organization"] == "Pivotal Flow"
        assert launch["include_events"] is False
        assert launch["job_args"]["extra_vars"]["pflow_mode"] == "recover"
    text = eda.render(cat, routing.table(cat, {}), eda.Options(controller=True))
    assert "run_playbook" not in text.split("\n- name:", 1)[1]


def test_the_header_documents_an_inventory_directory_and_the_token(
    cat: catalogue.Catalogue,
) -> None:
    text = eda.render(cat, routing.table(cat, {}), eda.Options())
    head = text.split("\n- name:", 1)[0]
    assert "-i inventories/prod/ " in head and "never inventories/prod/hosts.yml" in head
    assert "group_vars" in head and "Bearer" in head and "--env-vars PFLOW_EDA_TOKEN" in head
    assert all(line.startswith("#") or line == "---" for line in head.splitlines())


def test_an_env_adds_its_aliases_and_pins_the_environment(
    cat: catalogue.Catalogue, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(inventory, "alert_aliases", lambda source: {"TeamBackendDown": "RB-01"})
    assert cli.main(["eda", "rulebook", "--env", "staging"]) == 0
    rulesets = yaml.safe_load(capsys.readouterr().out)
    rb01 = rulesets[0]["rules"][0]
    assert '"TeamBackendDown"' in rb01["condition"]
    assert rb01["action"]["run_playbook"]["extra_vars"]["pflow_confirm_env"] == "staging"


def test_an_env_alias_that_points_nowhere_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(inventory, "alert_aliases", lambda source: {"X": "Nowhere"})
    assert cli.main(["eda", "rulebook", "--env", "staging"]) == 2
    assert "alert routing for env 'staging'" in capsys.readouterr().err


def test_an_env_whose_hosts_disagree_on_aliases_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def disagree(source: Path) -> dict[str, str]:
        raise ValueError("hosts disagree on X")

    monkeypatch.setattr(inventory, "alert_aliases", disagree)
    assert cli.main(["eda", "rulebook", "--env", "staging"]) == 2
    assert "pflow_alert_aliases of env 'staging': hosts disagree" in capsys.readouterr().err


def test_a_runbook_not_automated_gets_no_rule(cat: catalogue.Catalogue) -> None:
    first = dataclasses.replace(cat.runbooks[0], implemented=False)
    partial = dataclasses.replace(cat, runbooks=(first, *cat.runbooks[1:]))
    rules = yaml.safe_load(eda.render(partial, routing.table(partial, {}), eda.Options()))
    names = [r["name"] for r in rules[0]["rules"]]
    assert not any(n.startswith(first.id) for n in names)


@pytest.mark.parametrize(
    "value", ["1234567890123456", "4e12345678901234", "0123456789abcdef", "True", "HighErrorRate"]
)
def test_the_run_gets_the_alert_values_as_strings_unchanged(value: str) -> None:
    """ansible-rulebook's native rendering would make numbers of some fingerprints."""
    from ansible_rulebook.util import render_string

    extra = eda._extra_vars(eda.Options())
    event = {"event": {"alert": {"fingerprint": value, "labels": {"alertname": value}}}}
    assert render_string(extra["pflow_alert_fingerprint"], event) == value
    assert render_string(extra["pflow_alert_name"], event) == value
    assert type(render_string(extra["pflow_alert_fingerprint"], event)) is str


@pytest.mark.parametrize(
    "group_key",
    ['{}/{severity="critical"}:{alertname="BackendServiceDown"}', "{}:{}", "", "1e5", "'q' & <x>"],
)
def test_the_run_gets_the_group_key_and_the_incident_annotation_unchanged(group_key: str) -> None:
    """The group key holds braces, quotes, = and : (and ansible-rulebook's literal_eval would
    turn "1e5" into a float): tojson carries it as the same string; the annotation likewise."""
    from ansible_rulebook.util import render_string

    extra = eda._extra_vars(eda.Options())
    event = {"event": {"alert": {"group_key": group_key, "incident": "INC-42"}}}
    rendered = render_string(extra["pflow_alert_group_key"], event)
    assert rendered == group_key and type(rendered) is str
    assert render_string(extra["pflow_alert_incident"], event) == "INC-42"

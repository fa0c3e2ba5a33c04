"""The catalogue is the single source of truth: it must agree with the repository."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pflow_ops import catalogue

ROOT = Path(__file__).resolve().parents[2]
SEED_ALERTS = {
    "RB-01": {
        "BackendServiceDown",
        "HighErrorRate",
        "SlowRequests",
        "BackendEventLoopBlocked",
        "BackendEventLoopLag",
        "BackendHeapNearLimit",
    },
    "RB-02": {"DatabaseSlowQueries", "DatabaseHighConnections", "DatabaseConnectionFailure"},
    "RB-03": {
        "RedisHighEvictions",
        "RedisConnectionFailure",
        "CacheLowHitRate",
        "RedisHighMemoryUsage",
    },
}


@pytest.fixture(scope="module")
def cat() -> catalogue.Catalogue:
    return catalogue.load()


def test_seed_alerts_map_to_their_runbooks(cat: catalogue.Catalogue) -> None:
    assert {rb.id: set(rb.alerts) for rb in cat.runbooks} == SEED_ALERTS
    assert cat.for_alert("HighErrorRate").id == "RB-01"
    assert cat.for_alert("CacheLowHitRate").id == "RB-03"


def test_every_alert_belongs_to_exactly_one_runbook(cat: catalogue.Catalogue) -> None:
    alerts = [a for rb in cat.runbooks for a in rb.alerts]
    assert len(alerts) == len(set(alerts)) == 13


def test_lookup_is_case_insensitive_and_unknown_names_list_choices(
    cat: catalogue.Catalogue,
) -> None:
    assert cat.get("rb-01") is cat.get("RB-01")
    with pytest.raises(catalogue.UnknownRunbook, match="rb-01, rb-02, rb-03"):
        cat.get("rb-99")
    with pytest.raises(catalogue.UnknownRunbook, match="BackendServiceDown"):
        cat.for_alert("NoSuchAlert")


def test_implemented_runbooks_have_their_playbook_and_role(cat: catalogue.Catalogue) -> None:
    for rb in cat.runbooks:
        if not rb.implemented:
            continue
        playbook = ROOT / rb.playbook
        assert playbook.is_file(), rb.playbook
        plays = yaml.safe_load(playbook.read_text())
        # playbooks/ holds entry points that import the collection's playbook by FQCN.
        imported = plays[0]["ansible.builtin.import_playbook"]
        assert imported.startswith("pivotal.flow_ops."), rb.playbook
        real = ROOT / "collection" / "playbooks" / f"{imported.rsplit('.', 1)[1]}.yml"
        plays = yaml.safe_load(real.read_text())
        roles = [r["role"] for play in plays for r in play.get("roles", [])]
        assert rb.role in roles, f"{rb.playbook} does not call {rb.role} by FQCN"
        role_dir = ROOT / "collection" / "roles" / rb.role.rsplit(".", 1)[1]
        assert (role_dir / "tasks" / "main.yml").is_file()


def test_every_step_points_at_the_file_that_implements_it(cat: catalogue.Catalogue) -> None:
    for rb in cat.runbooks:
        if not rb.implemented:
            continue
        assert rb.steps, f"{rb.id} lists no steps"
        phases = {s.phase for s in rb.steps}
        assert phases == {"preflight", "investigate", "recover", "verify", "report"}
        role_dir = ROOT / "collection" / "roles" / rb.role.rsplit(".", 1)[1] / "tasks"
        for step in rb.steps:
            assert (ROOT / step.file).is_file(), step.file
            # The runbook's own files are named after their phase; a shared role's file (the
            # service manager) serves whichever phase calls it.
            if (ROOT / step.file).parent == role_dir:
                assert Path(step.file).stem == step.phase, step.file
        phase_files = {p.stem for p in role_dir.glob("*.yml")} - {"main"}
        assert phase_files <= phases, "a phase file is missing from the catalogue steps"


def test_escalation_path_is_written_down(cat: catalogue.Catalogue) -> None:
    for rb in cat.runbooks:
        assert [e.level for e in rb.escalation] == ["L1", "L2", "L3"]
        # The re-notification schedule (`pflow-ops incident renotify`): machine-readable, and
        # the minutes the prose names.
        assert [e.after_minutes for e in rb.escalation] == [0, 15, 30]
        for e in rb.escalation[1:]:
            assert f"{e.after_minutes} minutes" in e.when, (rb.id, e.level)


def _escalation_catalogue(tmp_path: Path, levels: object) -> Path:
    raw = yaml.safe_load(catalogue.catalogue_path().read_text())
    raw["runbooks"][0]["escalation"] = levels
    path = tmp_path / "catalogue.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "levels",
    [
        [{"level": "L1", "who": "x", "when": "now"}],  # no after_minutes
        [{"level": "L1", "who": "x", "when": "now", "after_minutes": "15"}],
        [{"level": "L1", "who": "x", "when": "now", "after_minutes": True}],
        [{"level": "L1", "who": "x", "when": "now", "after_minutes": -1}],
        [{"level": "L1", "who": "x", "when": "now", "after_minutes": 1441}],
        [
            {"level": "L1", "who": "x", "when": "now", "after_minutes": 30},
            {"level": "L2", "who": "y", "when": "later", "after_minutes": 15},
        ],
        [{"level": "L1", "who": "x", "when": "now", "after_minutes": 0, "extra": 1}],
        ["L1"],
        {"level": "L1"},
    ],
)
def test_a_malformed_escalation_timing_is_refused(tmp_path: Path, levels: object) -> None:
    with pytest.raises(catalogue.CatalogueError, match="RB-01"):
        catalogue.load(_escalation_catalogue(tmp_path, levels))


def test_an_escalation_path_may_wait_at_the_same_minute(tmp_path: Path) -> None:
    levels = [
        {"level": "L1", "who": "x", "when": "now", "after_minutes": 0},
        {"level": "L2", "who": "y", "when": "now too", "after_minutes": 0},
    ]
    rb = catalogue.load(_escalation_catalogue(tmp_path, levels)).get("RB-01")
    assert [e.after_minutes for e in rb.escalation] == [0, 0]


def test_maintenance_jobs_are_scheduled_and_point_at_their_code(cat: catalogue.Catalogue) -> None:
    services = {rb.service for rb in cat.runbooks}
    for job in cat.maintenance:
        assert job.service in services, job.id
        assert len(job.schedule.split()) == 5, f"{job.id}: schedule is not a cron expression"
        if not (ROOT / job.playbook).is_file():
            continue  # catalogued before it is automated: `maintain` refuses it with exit 2
        assert job.steps, f"{job.id} lists no steps"
        for step in job.steps:
            assert (ROOT / step.file).is_file(), step.file

"""``pflow-ops docs build``: the runbook pages come from the automation (catalogue, role defaults
and specs, decision tables, alert rules), deterministically, and ``--check`` names a stale page
(a drift check, like ``terraform-docs --check``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pflow_ops import catalogue, cli, docs, docs_reference
from pflow_ops.paths import project_root

ROOT = project_root()
# The defaults' Context section: the run's own context, not a check or a threshold.
CONTEXT = ("_env", "_run_id", "_mode", "_confirm_env", "_fail_on_escalate", "_secure_logging")


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    built = docs.build(catalogue.load())
    return {p.path.name: p.text for p in built if p.path.parent == docs.OUT_DIR}


def test_the_check_passes_on_the_committed_pages(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["docs", "build", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_the_pages_are_the_index_and_one_per_runbook(pages: dict[str, str]) -> None:
    assert sorted(pages) == [
        "README.md",
        "rb-01-backend-down.md",
        "rb-02-db-issues.md",
        "rb-03-cache-issues.md",
    ]


def test_the_output_is_deterministic(pages: dict[str, str]) -> None:
    first = docs.build(catalogue.load())
    assert docs.build(catalogue.load()) == first
    assert [p.text for p in first if p.path.parent == docs.OUT_DIR] == list(pages.values())


def test_each_page_has_the_runbook_structure_and_names_its_alerts(pages: dict[str, str]) -> None:
    headings = [
        "## Overview",
        "## Prerequisites",
        "## Initial Response",
        "## Investigation Steps",
        "## Common Issues",
        "## Recovery Procedures",
        "## Escalation",
        "## Post-Incident",
    ]
    for rb in catalogue.load().runbooks:
        text = pages[docs.page_name(rb)]
        assert text.startswith(f"# {rb.id} {rb.title}\n")
        positions = [text.index(h) for h in headings]
        assert positions == sorted(positions)
        for alert in rb.alerts:
            assert f"`{alert}`" in text
            assert f"| [{rb.id}]({docs.page_name(rb)}) |" in pages["README.md"]
        for step in rb.steps:
            assert step.name in text and step.file in text
        for level in rb.escalation:
            assert f"| {level.level} | {level.who} | {level.when} |" in text
        assert rb.runbook_url in text


def test_every_threshold_variable_is_listed_with_its_default(pages: dict[str, str]) -> None:
    for rb in catalogue.load().runbooks:
        role = rb.role.rsplit(".", 1)[-1]
        defaults = yaml.safe_load(
            (ROOT / "collection" / "roles" / role / "defaults" / "main.yml").read_text()
        )
        text = pages[docs.page_name(rb)]
        for name, value in defaults.items():
            if name.endswith(CONTEXT):
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert f"| `{name}` | `{value}` |" in text, name
            else:
                assert f"| `{name}` |" in text, name


def test_common_issues_are_the_decision_table(pages: dict[str, str]) -> None:
    for rb in catalogue.load().runbooks:
        text = pages[docs.page_name(rb)]
        rows = docs.decision_table(rb.id)
        assert rows
        for row in rows:
            assert row["action"].replace("|", "\\|") in text


def test_manual_commands(pages: dict[str, str]) -> None:
    for name in ("rb-01-backend-down.md", "rb-02-db-issues.md", "rb-03-cache-issues.md"):
        assert "docker compose ps" in pages[name]
        assert "curl -f http://localhost:3000/health" in pages[name]
    assert "psql -h 127.0.0.1 -p 5432 -U pflow_monitor" in pages["rb-02-db-issues.md"]
    assert "FROM pg_stat_activity" in pages["rb-02-db-issues.md"]
    assert "%(" not in pages["rb-02-db-issues.md"]  # driver parameters became psql variables
    assert "redis-cli -h 127.0.0.1 -p 6379 ping" in pages["rb-03-cache-issues.md"]


def test_the_check_names_a_stale_page_and_build_rewrites_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for part in ("catalogue.yml", "monitoring", "collection", "collections"):
        src = ROOT / part
        if src.is_dir():
            (tmp_path / part).symlink_to(src)
        else:
            shutil.copy(src, tmp_path / part)
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    monkeypatch.setattr(docs, "project_root", lambda: tmp_path)
    monkeypatch.setattr("pflow_ops.paths.project_root", lambda: tmp_path)
    assert cli.main(["docs", "build", "--check"]) == 0
    page = tmp_path / "docs" / "runbooks" / "rb-03-cache-issues.md"
    page.write_text(page.read_text().replace("Cache Issues", "Cache Trouble", 1))
    (tmp_path / "docs" / "runbooks" / "README.md").unlink()
    capsys.readouterr()
    assert cli.main(["docs", "build", "--check"]) == 1
    err = capsys.readouterr().err
    assert "docs/runbooks/README.md, docs/runbooks/rb-03-cache-issues.md" in err
    assert "pflow-ops docs build" in err
    assert cli.main(["docs", "build"]) == 0
    assert "wrote docs/runbooks/rb-03-cache-issues.md" in capsys.readouterr().out
    assert cli.main(["docs", "build", "--check"]) == 0


def test_reports_link_the_published_runbook_pages_only() -> None:
    from pflow_ops import report

    cat = catalogue.load()
    for rb in cat.runbooks:
        assert report.published_url(rb) == rb.runbook_url
        assert rb.runbook_url.endswith(f"/{rb.slug}")
    for job in cat.maintenance:  # no page of its own (yet): the report links none
        assert report.published_url(job) == ""


def test_reference_pages_for_every_module_and_role() -> None:
    paths = {p.path.as_posix(): p.text for p in docs.build(catalogue.load())}
    for module in (ROOT / "collection/plugins/modules").glob("*.py"):
        text = paths[f"docs/reference/modules/{module.stem}.md"]
        assert text.startswith(f"# pivotal.flow_ops.{module.stem}\n")
        assert f"(modules/{module.stem}.md)" in paths["docs/reference/README.md"]
    for spec in (ROOT / "collection/roles").glob("*/meta/argument_specs.yml"):
        role = spec.parents[1].name
        text = paths[f"docs/reference/roles/{role}.md"]
        for point, entry in yaml.safe_load(spec.read_text())["argument_specs"].items():
            assert f"## Entry point `{point}`" in text
            for name in entry.get("options") or {}:
                assert f"| `{name}` |" in text
    http = paths["docs/reference/modules/http_health.md"]
    assert "| `url` | str | yes |  |" in http  # required, no default
    assert "| `expect_status` | list | no | `[200]` |" in http


def test_module_pages_list_the_options_of_their_doc_fragments() -> None:
    """ansible-doc merges extends_documentation_fragment; the reference pages did not, so the
    PostgreSQL modules' login_* options and supervisor_program's server_url were missing."""
    paths = {p.path.as_posix(): p.text for p in docs.build(catalogue.load())}
    pg = paths["docs/reference/modules/pg_diagnose.md"]
    assert "| `login_host` | str | no | `127.0.0.1` |" in pg and "| `ssl_mode` |" in pg
    supervisor = paths["docs/reference/modules/supervisor_program.md"]
    assert "| `server_url` | str | yes |  |" in supervisor
    deps = paths["docs/reference/modules/dependency_check.md"]
    assert "| `postgres.login_host` |" in deps and "| `redis.ca_certs` |" in deps
    # Another collection's fragment is not ours to read; a missing variable of ours is an error.
    assert docs_reference.fragment_doc("ansible.builtin.action_common_attributes") == {}
    with pytest.raises(ValueError, match="NO_SUCH_GROUP"):
        docs_reference.fragment_doc("pivotal.flow_ops.action_groups.no_such_group")

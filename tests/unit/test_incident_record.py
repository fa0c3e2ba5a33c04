"""The incident record on disk (action plugin incident_record, module_utils/incident_store.py):
the key read raw and checked, one record per key under a lock, atomic 0600 writes, a corrupt
record kept aside and a fresh one started, no secret stored, and `pflow-ops incident`."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from pflow_ops.cli import main
from tests.plugins import load_plugin

action = load_plugin("incident_record", kind="action")
store = action.incident_store
model = action.incident


def _args(**kw: Any) -> dict[str, Any]:
    base = {
        "state": "get",
        "key": "",
        "runbook": "RB-03",
        "run_id": "",
        "event": "",
        "outcome": "",
        "sinks": [],
        "by": "",
    }
    return {**base, **kw}


def _update(home: str, key: str, run_id: str, sinks: list[Any] | None = None) -> dict[str, Any]:
    args = _args(
        state="update",
        key=key,
        run_id=run_id,
        event="documented",
        outcome="escalate",
        sinks=sinks or [],
    )
    got: dict[str, Any] = action.get_or_update(home, args)
    return got


def test_the_key_comes_raw_from_the_play_and_is_checked() -> None:
    assert action.choose_key(_args(), {"pflow_incident_key": "INC-7"})["key"] == "INC-7"
    assert action.choose_key(_args(), {"pflow_alert_fingerprint": "ab12"}) == {
        "key": "ab12",
        "source": "fingerprint",
    }
    chosen = action.choose_key(_args(), {"pflow_env": "prod", "pflow_run_id": "r1"})
    assert chosen == {"key": "prod/RB-03/r1", "source": "run"}
    assert (
        action.choose_key(_args(key="given-1"), {"pflow_incident_key": "other"})["key"] == "given-1"
    )
    with pytest.raises(model.IncidentError):
        action.choose_key(_args(), {"pflow_incident_key": "{{ lookup('pipe', 'id') }}"})


def test_a_non_string_variable_is_ignored_not_templated() -> None:
    chosen = action.choose_key(
        _args(),
        {
            "pflow_incident_key": ["x"],
            "pflow_alert_fingerprint": 5,
            "pflow_env": "e",
            "pflow_run_id": "r",
        },
    )
    assert chosen == {"key": "e/RB-03/r", "source": "run"}


def test_get_then_update_then_get(tmp_path: Path) -> None:
    home = str(tmp_path)
    first = action.get_or_update(home, _args(key="k1"))
    assert first["exists"] is False and first["record"]["handles"] == {}
    assert not Path(first["path"]).exists(), "a get writes nothing"
    _update(
        home,
        "k1",
        "r1",
        [
            {
                "sink": "ticket",
                "kind": "ticket",
                "status": "ok",
                "handle": {"id": "T-1", "token": "tok-secret"},
            }
        ],
    )
    again = action.get_or_update(home, _args(key="k1"))
    assert again["exists"] is True
    assert again["record"]["handles"] == {"ticket": {"id": "T-1"}}
    path = Path(again["path"])
    assert path.name == model.key_sha("k1") + ".json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "tok-secret" not in path.read_text()


def test_a_corrupt_record_is_kept_aside_and_a_fresh_one_started(tmp_path: Path) -> None:
    home = str(tmp_path)
    _update(home, "k2", "r1")
    path = Path(store.record_path(home, model.key_sha("k2")))
    path.write_text('{"key": "k2", "handles": ')
    got = _update(home, "k2", "r2")
    assert got["warnings"] and "could not be read" in got["warnings"][0]
    assert got["record"]["runs"] == ["r2"]
    kept = [p for p in path.parent.iterdir() if ".corrupt-" in p.name]
    assert len(kept) == 1 and kept[0].read_text() == '{"key": "k2", "handles": '


@pytest.mark.parametrize("content", ['["a list"]', '{"key": "k3"}', "x" * (store.MAX_BYTES + 10)])
def test_anything_but_a_record_is_corrupt(tmp_path: Path, content: str) -> None:
    home = str(tmp_path)
    path = Path(store.record_path(home, model.key_sha("k3")))
    path.parent.mkdir(parents=True)
    path.write_text(content)
    got = action.get_or_update(home, _args(key="k3"))
    assert got["warnings"] and got["exists"] is False


def test_a_record_of_another_key_with_the_same_name_is_not_used(tmp_path: Path) -> None:
    home = str(tmp_path)
    path = Path(store.record_path(home, model.key_sha("k4")))
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**model.new_record("other", "t"), "handles": {"t": {"id": "X"}}}))
    assert action.get_or_update(home, _args(key="k4"))["record"]["handles"] == {}


def test_the_record_file_name_must_be_a_sha(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        store.record_path(str(tmp_path), "../../etc/passwd")


def _writer(home: str, n: int) -> None:
    for i in range(10):
        _update(home, "shared", f"w{n}-{i}")


def test_concurrent_runs_lose_no_update(tmp_path: Path) -> None:
    procs = [
        multiprocessing.get_context("fork").Process(target=_writer, args=(str(tmp_path), n))
        for n in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    record = action.get_or_update(str(tmp_path), _args(key="shared"))["record"]
    assert sorted(record["runs"]) == sorted(f"w{n}-{i}" for n in range(4) for i in range(10))
    leftovers = [
        p.name for p in (tmp_path / "incidents").iterdir() if p.name.startswith(".incident-")
    ]
    assert leftovers == []


def test_an_unwritable_state_directory_is_a_clear_failure(tmp_path: Path) -> None:
    folder = tmp_path / "incidents"
    folder.mkdir()
    os.chmod(folder, 0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(OSError):
            _update(str(tmp_path), "k5", "r1")
    finally:
        os.chmod(folder, 0o700)


# --- pflow-ops incident -------------------------------------------------------------------------


def test_incident_show_list_ack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path))
    _update(
        str(tmp_path.resolve()),
        "INC-1",
        "r1",
        [{"sink": "ticket", "kind": "ticket", "status": "ok", "handle": {"id": "T-1"}}],
    )
    assert main(["incident", "list"]) == 0
    assert "INC-1  open  last escalate  runs 1" in capsys.readouterr().out
    assert main(["incident", "ack", "INC-1", "--by", "ana"]) == 0
    assert "acked by ana" in capsys.readouterr().out
    assert main(["incident", "show", "INC-1", "--output", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ack"]["by"] == "ana" and shown["handles"] == {"ticket": {"id": "T-1"}}
    assert main(["incident", "show", "INC-2"]) == 1
    assert main(["incident", "show", "bad key"]) == 2
    assert main(["incident", "ack", "INC-2"]) == 1


# --- --incident on the run commands ------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["recover", "rb-01", "--incident", "{{ x }}"], "bad --incident"),
        (["alert", "HighErrorRate", "--incident", "a b"], "bad --incident"),
        (["maintain", "cache", "--incident", "x" * 129], "bad --incident"),
        (["diagnose", "rb-01", "--incident", "INC-1"], "unrecognized arguments"),
        (["recover", "rb-01", "-e", "pflow_incident_key=INC-1"], "set by pflow-ops"),
    ],
)
def test_a_bad_incident_key_is_a_usage_error(
    argv: list[str],
    needle: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path))
    assert main([*argv, "--env", "local"]) == 2
    assert needle in capsys.readouterr().err


def test_the_incident_key_reaches_the_playbook_as_pflow_incident_key() -> None:
    from pflow_ops.cli import build_parser, run_request
    from pflow_ops.run import _run_vars

    args = build_parser().parse_args(["recover", "rb-01", "--incident", "JIRA-12"])
    request = run_request(args)
    assert request.incident == "JIRA-12"
    assert _run_vars(request, "r1")["pflow_incident_key"] == "JIRA-12"
    plain = run_request(build_parser().parse_args(["recover", "rb-01"]))
    assert "pflow_incident_key" not in _run_vars(plain, "r1")


# --- the report --------------------------------------------------------------------------------


def test_the_report_shows_each_sink_and_a_failed_one_is_a_warning() -> None:
    from pflow_ops.report_model import IncidentStatus

    published = {
        "key": "INC-1",
        "events": {
            "documented": [
                {"sink": "mail", "kind": "email", "status": "ok", "detail": "create"},
                {"sink": "ticket", "kind": "ticket", "status": "failed", "detail": "HTTP 500"},
            ],
            "resolved": [{"sink": "ticket", "kind": "ticket", "status": "ok", "detail": "resolve"}],
        },
    }
    status = IncidentStatus.from_published(published)
    assert status is not None
    assert [(s["event"], s["sink"], s["status"]) for s in status.sinks] == [
        ("documented", "mail", "ok"),
        ("documented", "ticket", "failed"),
        ("resolved", "ticket", "ok"),
    ]
    assert status.warnings == ("incident INC-1: sink ticket (documented) failed: HTTP 500",)
    assert status.to_dict()["key"] == "INC-1"
    broken = IncidentStatus.from_published({"key": "INC-2", "error": "documented: disk full"})
    assert broken is not None and broken.warnings == (
        "incident INC-2: not documented: documented: disk full",
    )
    assert IncidentStatus.from_published(None) is None
    assert IncidentStatus.from_published({"events": {}}) is None

"""The collection's EDA rulebook, run for real: ansible-rulebook (its Drools engine), the rulebook's
own webhook source with its token, the collection's alert_guard filter and the playbooks' first
play, attacked through the HTTP port Alertmanager posts to.

One ansible-rulebook process takes every case (CI time): the hostile alerts first, so that a
hostile alert that got through would start the first run of its runbook and the positive
controls after it would be throttled (the test would see it). Only the playbook is swapped:
a recorder that marks every start, then runs the collection playbooks' first play (loaded from
rb_01_backend_down.yml), then records what the run received. A last alert that starts nothing
but prints a line tells the test that every event before it was handled (actions run in order).

The direct test runs the real collection playbooks with hostile extra vars (``-e``), the way AWX
or a hand-typed command would pass them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pflow_ops import eda
from pflow_ops.sandbox.net import free_ports

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOKEN = "eda-test-token-7f3c"
RULEBOOK = ROOT / eda.path_for(eda.Options())
GUARD_PLAY = yaml.safe_load(
    (ROOT / "collection" / "playbooks" / "rb_01_backend_down.yml").read_text(encoding="utf-8")
)[0]
BIG = "A" * 100_000
DEADLINE = 300.0  # generous: a slow machine is not a failure


def _recorder() -> list[dict[str, Any]]:
    record = (
        "{{ {'alertname': pflow_alert_name, 'fingerprint': pflow_alert_fingerprint,"
        " 'group_key': pflow_alert_group_key, 'incident': pflow_alert_incident,"
        " 'mode': pflow_mode, 'playbook': recorded_playbook, 'event': ansible_eda.event,"
        " 'group_var': recorded_group_var} | to_json }}"
    )
    return [
        {
            "name": "Mark that a run started",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Touch the start marker",
                    "ansible.builtin.file": {
                        "path": "{{ out_dir }}/started-{{ 999999999 | random }}",
                        "state": "touch",
                        "mode": "0600",
                    },
                }
            ],
        },
        GUARD_PLAY,
        {
            "name": "Record the run the rulebook started",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Write what the playbook received",
                    "ansible.builtin.copy": {
                        "content": record,
                        "dest": "{{ out_dir }}/run-{{ 999999999 | random }}.json",
                        "mode": "0600",
                    },
                }
            ],
        },
    ]


def _alert(name: str = "BackendServiceDown", fingerprint: str = "1a2b3c4d5e6f7081") -> dict:
    return {
        "status": "firing",
        "labels": {"alertname": name, "instance": "web1:8000", "severity": "critical"},
        "annotations": {"summary": "Backend down", "description": "no answer on /health"},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def _set(alert: dict, field: str, value: str) -> dict:
    """``alert`` with ``value`` put in one field (a label key for "label key")."""
    if field == "label key":
        alert["labels"][value] = "x"
    elif field.startswith("labels.") or field.startswith("annotations."):
        group, key = field.split(".", 1)
        alert[group][key] = value
    else:
        alert[field] = value
    return alert


def hostile_alerts(pwned: Path) -> dict[str, dict]:
    """Every attack, by case id: each one would create pwned/<case> if it were ever evaluated
    (or, for path traversal, written to as a path)."""
    cases: dict[str, dict] = {}
    fields = [
        "labels.alertname",
        "fingerprint",
        "labels.runbook",
        "labels.instance",
        "label key",
        "annotations.summary",
        "generatorURL",
        "status",
    ]
    for field in fields:
        slug = field.replace(" ", "_").replace(".", "_")
        target = pwned / f"{slug}"
        cases[f"lookup-{slug}"] = _set(
            _alert(), field, f"{{{{ lookup('pipe', 'touch {target}-lookup') }}}}"
        )
        cases[f"statement-{slug}"] = _set(
            _alert(), field, f"{{% set x = lookup('pipe', 'touch {target}-statement') %}}x"
        )
        cases[f"oversized-{slug}"] = _set(_alert(), field, BIG)
    # Shell syntax and path traversal are text: they are refused where they cannot be
    # (alertname, fingerprint, runbook label) and carried as data elsewhere (see the control).
    for field in ("labels.alertname", "fingerprint", "labels.runbook"):
        slug = field.replace(".", "_")
        cases[f"subshell-{slug}"] = _set(_alert(), field, f"$(touch {pwned}/{slug}-subshell)")
        cases[f"semicolon-{slug}"] = _set(_alert(), field, f"x;touch {pwned}/{slug}-semicolon")
        cases[f"traversal-{slug}"] = _set(_alert(), field, "../" * 12 + f"{pwned}/{slug}-dots")
    # The incident annotation names the incident: an incident key or the alert is refused.
    for kind, value in (
        ("lookup", f"{{{{ lookup('pipe', 'touch {pwned}/incident-lookup') }}}}"),
        ("subshell", f"$(touch {pwned}/incident-subshell)"),
    ):
        cases[f"{kind}-annotations_incident"] = _set(_alert(), "annotations.incident", value)
    # Every field at once.
    for kind, value in (
        ("lookup", f"{{{{ lookup('pipe', 'touch {pwned}/all-lookup') }}}}"),
        ("subshell", f"$(touch {pwned}/all-subshell)"),
        ("oversized", BIG),
    ):
        alert = _alert()
        for field in fields[:-1]:
            _set(alert, field, value)
        cases[f"{kind}-everywhere"] = alert
    return cases


GROUP_KEY = '{}/{severity="critical"}:{alertname="BackendServiceDown", instance="1e5"}'


def _notification(*alerts: dict, group_key: str = GROUP_KEY) -> dict:
    return {
        "version": "4",
        "groupKey": group_key,
        "status": "firing",
        "receiver": "pflow-ops-eda",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def _post(port: int, body: dict, token: str | None = TOKEN) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/alerts",
        data=json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@dataclass
class Rulebook:
    port: int
    out: Path
    pwned: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, needle: str, runs: int) -> None:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if needle in self.output() and len(list(self.out.glob("run-*.json"))) >= runs:
                return
            assert self.proc.poll() is None, self.output()[-3000:]
            time.sleep(0.5)
        pytest.fail(f"ansible-rulebook did not get to {needle!r}:\n{self.output()[-3000:]}")


def _rulebook_for_test(tmp: Path, port: int, out: Path) -> Path:
    """The committed rulebook with its port moved and the recorder in place of each playbook."""
    rulesets = yaml.safe_load(RULEBOOK.read_text(encoding="utf-8"))
    rulesets[0]["sources"][0]["eda.builtin.webhook"]["port"] = port
    (tmp / "record.yml").write_text(yaml.safe_dump(_recorder()), encoding="utf-8")
    for rule in rulesets[0]["rules"]:
        run = rule["action"].get("run_playbook")
        if run:
            run["extra_vars"].update(out_dir=str(out), recorded_playbook=run["name"])
            run["name"] = str(tmp / "record.yml")
    path = tmp / "rulebook.yml"
    path.write_text(yaml.safe_dump(rulesets, sort_keys=False), encoding="utf-8")
    return path


def _inventory_dir(tmp: Path) -> Path:
    """An inventory DIRECTORY, as the rulebook's header says: its group_vars reach the run."""
    inv = tmp / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": host}}}))
    (inv / "group_vars" / "all.yml").write_text("recorded_group_var: from-group-vars\n")
    return inv


@pytest.fixture(scope="module")
def rulebook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rulebook]:
    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        pytest.fail("ansible-rulebook needs a Java runtime: run scripts/setup.sh")
    tmp = tmp_path_factory.mktemp("eda")
    out, pwned = tmp / "runs", tmp / "pwned"
    out.mkdir()
    pwned.mkdir()
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        eda.TOKEN_VAR: TOKEN,
    }
    log = tmp / "ansible-rulebook.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                str(BIN / "ansible-rulebook"),
                "--rulebook",
                str(_rulebook_for_test(tmp, port, out)),
                "-i",
                f"{_inventory_dir(tmp)}/",
                "--env-vars",
                eda.TOKEN_VAR,
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=tmp,
        )
    book = Rulebook(port, out, pwned, log, proc)
    try:
        deadline = time.monotonic() + DEADLINE
        while True:  # up when an unauthenticated request is refused
            try:
                if _post(port, _notification(), token=None) == 401:
                    break
            except OSError:
                pass
            assert proc.poll() is None, book.output()[-3000:]
            assert time.monotonic() < deadline, "ansible-rulebook did not start listening"
            time.sleep(0.5)
        yield book
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _runs(out: Path) -> list[dict[str, Any]]:
    runs = [json.loads(p.read_text()) for p in out.glob("run-*.json")]
    return sorted(runs, key=lambda r: str(r["playbook"]))


def test_hostile_alerts_run_nothing_and_real_alerts_route_like_the_receiver(
    rulebook: Rulebook,
) -> None:
    hostile = hostile_alerts(rulebook.pwned)
    for alert in hostile.values():
        assert _post(rulebook.port, _notification(alert)) == 200
    # Without the token, or with another one, nothing is even accepted.
    assert _post(rulebook.port, _notification(_alert()), token=None) == 401
    assert _post(rulebook.port, _notification(_alert()), token="not-the-token") == 401
    assert _post(rulebook.port, {"no": "alerts"}) == 200  # a refusal line, nothing else
    # A hostile group key refuses the notification's alerts (one line each).
    hostile_key = '{}:{a="' + f"{{{{ lookup('pipe', 'touch {rulebook.pwned}/group-key') }}}}" + '"}'
    assert _post(rulebook.port, _notification(_alert(), group_key=hostile_key)) == 200

    # Positive controls. RB-01: shell syntax and traversal in every free-text field are data,
    # dropped before the rules. A storm of re-sends and another alert of RB-01: throttled.
    text = f"$(touch {rulebook.pwned}/text) ;touch {rulebook.pwned}/text ../../etc/passwd"
    control = _alert()
    control["labels"]["instance"] = text
    control["annotations"] = {"summary": text, "description": text}
    control["generatorURL"] = text
    _post(rulebook.port, _notification(control, *[_alert()] * 50))
    _post(rulebook.port, _notification(_alert("HighErrorRate", "aaaabbbbccccdddd")))
    # RB-02 by a catalogue alias; RB-03 by a runbook label (any case, spaces) on an unknown name.
    # Their fingerprints read as numbers (a float, an int) to a careless renderer: they must
    # reach the run as the same strings.
    _post(rulebook.port, _notification(_alert("PostgresqlDown", "4e12345678901234")))
    labelled = _alert("TeamCacheSaturated", "1234567890123456")
    labelled["labels"]["runbook"] = " rb-03 "
    labelled["annotations"]["incident"] = "OPS-42"
    _post(rulebook.port, _notification(labelled))
    # Nothing: a resolved alert, a runbook label that is no catalogue id, then the last one.
    resolved = _alert("DatabaseSlowQueries", "fedcba9876543210")
    resolved["status"] = "resolved"
    not_a_runbook = _alert("RedisHighEvictions", "abcdef0123456789")
    not_a_runbook["labels"]["runbook"] = "RB-99"
    _post(rulebook.port, _notification(resolved, not_a_runbook))
    _post(rulebook.port, _notification(_alert("DiskFull", "0000000000000001")))
    rulebook.wait_for("no runbook for firing alert DiskFull", runs=3)

    output = rulebook.output()
    assert sorted(p.name for p in rulebook.pwned.iterdir()) == []
    assert len(list(rulebook.out.glob("started-*"))) == 3, output[-3000:]
    runs = _runs(rulebook.out)
    assert [(r["playbook"], r["alertname"], r["fingerprint"]) for r in runs] == [
        ("pivotal.flow_ops.rb_01_backend_down", "BackendServiceDown", "1a2b3c4d5e6f7081"),
        ("pivotal.flow_ops.rb_02_database_issues", "PostgresqlDown", "4e12345678901234"),
        ("pivotal.flow_ops.rb_03_cache_issues", "TeamCacheSaturated", "1234567890123456"),
    ]
    for run in runs:
        assert run["mode"] == "recover"
        assert run["group_var"] == "from-group-vars"  # -i DIR keeps group_vars
        # The run gets the screened alert only: no annotation, label or URL text.
        assert set(run["event"]) <= {"alert", "meta"}
        assert set(run["event"]["alert"]) == {
            "status",
            "fingerprint",
            "labels",
            "group_key",
            "incident",
        }
        assert set(run["event"]["alert"]["labels"]) <= {"alertname", "runbook"}
        assert run["group_key"] == GROUP_KEY  # unchanged: quotes, braces, "1e5" not a float
    assert runs[2]["event"]["alert"]["labels"]["runbook"] == "RB-03"
    assert [r["incident"] for r in runs] == ["", "", "OPS-42"]
    assert "touch" not in json.dumps(runs) and "passwd" not in json.dumps(runs)

    refusals = [line for line in output.splitlines() if "pflow-ops refused an alert:" in line]
    assert len(refusals) == len(hostile) + 2, "\n".join(refusals)
    assert all("{" not in line.split("refused an alert:", 1)[1] for line in refusals)
    assert any("not an Alertmanager notification" in line for line in refusals)
    assert "no runbook for firing alert RedisHighEvictions" in output  # label RB-99
    assert "no runbook for firing alert DatabaseSlowQueries" not in output  # resolved


def _hostile_playbook_run(
    tmp: Path, playbook: str, *extra: str, limit: str | None = None
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook of a real collection playbook on an inventory without localhost."""
    inv = tmp / "inventory"
    inv.mkdir(exist_ok=True)
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    groups = ("pivotal_backend", "pivotal_database", "pivotal_cache")
    hosts = {"all": {"children": {g: {"hosts": {f"{g}-1": host}} for g in groups}}}
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    argv = [str(BIN / "ansible-playbook"), "-i", f"{inv}/", f"pivotal.flow_ops.{playbook}"]
    argv += [*extra, *(["--limit", limit] if limit else [])]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=False
    )


@pytest.mark.parametrize(
    "playbook",
    [
        "rb_01_backend_down",
        "rb_02_database_issues",
        "rb_03_cache_issues",
        "maintenance_cache",
        "maintenance_database",
    ],
)
def test_a_playbook_refuses_hostile_extra_vars_before_anything_runs(
    tmp_path: Path, playbook: str
) -> None:
    pwned = tmp_path / "pwned"
    lookup = f"{{{{ lookup('pipe', 'touch {pwned}') }}}}"
    eda_vars = {"ansible_eda": {"rule": "x", "event": {"alert": {"annotations": {"s": lookup}}}}}
    # The alert name is read by the last play's `hosts:` expression: without the first play,
    # that alone creates the file, whatever the --limit.
    proc = _hostile_playbook_run(
        tmp_path,
        playbook,
        "-e",
        f"pflow_alert_name={lookup}",
        "-e",
        json.dumps(eda_vars),
        limit="pivotal_database-1",
    )
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "refused alert input: pflow_alert_name: not a Prometheus alert name" in proc.stdout
    assert not pwned.exists()
    assert "TASK [Refuse alert input that is not plain data]" in proc.stdout
    assert proc.stdout.count("TASK [") == 1, proc.stdout  # nothing after the guard


def test_a_playbook_refuses_a_hostile_fingerprint_and_eda_event(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    lookup = f"{{{{ lookup('pipe', 'touch {pwned}') }}}}"
    proc = _hostile_playbook_run(
        tmp_path, "rb_01_backend_down", "-e", f"pflow_alert_fingerprint={lookup}"
    )
    assert proc.returncode == 2 and not pwned.exists()
    assert (
        "refused alert input: pflow_alert_fingerprint: not an Alertmanager fingerprint "
        "(1 to 32 lowercase hex digits): \"\\x7b\\x7b lookup('pipe', 'touch " in proc.stdout
    )
    event = {"ansible_eda": {"event": {"alert": {"labels": {"alertname": "X", "k": "v" * 5000}}}}}
    proc = _hostile_playbook_run(
        tmp_path,
        "rb_01_backend_down",
        "-e",
        "pflow_alert_name=BackendServiceDown",
        "-e",
        "pflow_alert_fingerprint=1a2b3c4d5e6f7081",
        "-e",
        json.dumps(event),
    )
    assert proc.returncode == 2
    assert (
        "refused alert input: ansible_eda.event.alert.labels.k: oversized (5000 characters, "
        "at most 4096)" in proc.stdout
    )


def _guard_only(
    tmp: Path, args: dict[str, Any] | None, *extra: str
) -> subprocess.CompletedProcess[str]:
    """The guard task alone, in a playbook of its own, on the implicit localhost."""
    play = {
        "name": "Guard",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"name": "Check", "pivotal.flow_ops.alert_input": args}],
    }
    (tmp / "guard.yml").write_text(yaml.safe_dump([play]), encoding="utf-8")
    argv = [str(BIN / "ansible-playbook"), "-i", "localhost,", str(tmp / "guard.yml"), *extra]
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=False
    )


def test_the_guard_passes_a_real_alert_run_and_takes_no_options(tmp_path: Path) -> None:
    eda_vars = {"ansible_eda": {"rule": "RB-01 Backend Service Down", "event": {"alert": _alert()}}}
    proc = _guard_only(
        tmp_path,
        None,
        "-e",
        "pflow_alert_name=BackendServiceDown pflow_alert_fingerprint=1a2b3c4d5e6f7081",
        "-e",
        "pflow_mode=recover",
        "-e",
        json.dumps(eda_vars),
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "ok: [localhost]" in proc.stdout
    proc = _guard_only(tmp_path, {"fingerprint": "abc"})
    assert proc.returncode == 2 and "alert_input takes no options" in proc.stdout

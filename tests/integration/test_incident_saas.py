"""The incident role's Slack, PagerDuty, Jira, Mattermost, Matrix and Teams sinks, run by real
ansible-playbook against a local endpoint that records every request and answers as the SaaS
APIs do: the exact request sequence over the documents of one incident (an escalation, a rerun,
the alert resolved; chat messages edited in place and replied to in their thread), and every
sink failure (5xx, timeout, refused, rejected) left as a warning, never as the outcome.

The sink task files are driven by a small playbook that feeds them the sink contract's inputs
(collection/roles/incident/README.md) the way document.yml does, so the sinks are tested on
their own; the record is carried between documents as incident_record would carry it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pflow_ops.sandbox.net import free_ports
from tests.integration.recording_chat import MATTERMOST_CHANNEL_ID
from tests.integration.recording_endpoint import SLACK_CHANNEL_ID, RecordingEndpoint

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "incident_saas_sinks.yml"
SLACK_TOKEN = "xoxb-test-0000-SLACKSECRET"
JIRA_TOKEN = "jira-pat-JIRASECRET"
ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"
MM_TOKEN = "mmbot-MATTERMOSTSECRET00000"
MX_TOKEN = "syt_cGZsb3c_MATRIXSECRET_0000"
TEAMS_SIG = "sig=TEAMSWORKFLOWSECRET0000"
SECRETS = (SLACK_TOKEN, JIRA_TOKEN, ROUTING_KEY, MM_TOKEN, MX_TOKEN, TEAMS_SIG)
MATRIX_ROOM = "!pflowops:matrix.test"
GROUP_KEY = '{}/{severity="critical"}:{alertname="BackendServiceDown"}'
K = hashlib.sha256(GROUP_KEY.encode()).hexdigest()
INCIDENT_KEY = "3f2a9c0d1e4b5a6f"
HOSTILE = (
    "summary from the alert: <!channel> <https://evil.example|click> {{ lookup('pipe', 'id') }}"
    " @here [docs](https://evil.example) {code}x{code} [pwn|https://evil.example]"
)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[RecordingEndpoint]:
    server = RecordingEndpoint()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def saas(endpoint: RecordingEndpoint) -> RecordingEndpoint:
    endpoint.reset()
    return endpoint


def _sinks(url: str, **over: Any) -> list[dict[str, Any]]:
    common = {"retries": 2, "delay": 0, "timeout": 5}
    sinks = [
        {
            "kind": "slack",
            "api_url": f"{url}/slack/api",
            "token": SLACK_TOKEN,
            "channel": "#incidents",
        },
        {
            "kind": "pagerduty",
            "api_url": f"{url}/pagerduty",
            "routing_key": ROUTING_KEY,
            "environment": "local",
        },
        {
            "kind": "jira",
            "uri": f"{url}/jira",
            "token": JIRA_TOKEN,
            "project": "OPS",
            "issuetype": "Incident",
        },
    ]
    return [{**common, **s, **over.get(s["kind"], {})} for s in sinks]


def _chat_sinks(url: str) -> list[dict[str, Any]]:
    common = {"retries": 2, "delay": 0, "timeout": 5}
    sinks = [
        {
            "kind": "mattermost",
            "url": f"{url}/mattermost/",
            "token": MM_TOKEN,
            "channel_id": MATTERMOST_CHANNEL_ID,
        },
        {"kind": "matrix", "url": f"{url}/matrix", "token": MX_TOKEN, "room_id": MATRIX_ROOM},
        {"kind": "teams", "url": f"{url}/teams/workflows/run?{TEAMS_SIG}"},
    ]
    return [{**common, **s} for s in sinks]


class _Unsafe(str):
    """Alert-derived text: written with Ansible's !unsafe tag, so it is never templated."""


class _UnsafeDumper(yaml.SafeDumper):
    pass


_UnsafeDumper.add_representer(
    _Unsafe, lambda d, v: d.represent_scalar("!unsafe", str(v), style='"')
)


def _messages(run: str, outcome: str, changes: list[str]) -> dict[str, Any]:
    return {
        "subject": f"[pflow-ops] local rb-01 {outcome}: backend ({INCIDENT_KEY})",
        "chat": _Unsafe(f"*RB-01 {outcome}* run {run}\n{HOSTILE}"),
        "ticket": _Unsafe(f"RB-01 {outcome} (run {run})\n{HOSTILE}"),
        "ticket_title": f"[pflow-ops] local rb-01: backend ({INCIDENT_KEY})",
        "pager": f"RB-01 {outcome}: backend down on local (run {run})",
        "severity": "error",
        "changes": changes,
    }


def document(
    tmp: Path,
    sinks: list[dict[str, Any]],
    actions: dict[str, str],
    record: dict[str, Any],
    *,
    event: str,
    outcome: str,
    run: str,
    changes: list[str] | None = None,
    check: bool = False,
) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, Any]]]:
    """One document through the sinks; the sinks' results by name, and the record updated with
    their handles as incident_record stores them."""
    results = tmp / f"results-{run}.json"
    extra = {
        "test_incident_sinks": sinks,
        "test_incident_actions": actions,
        "incident_event": event,
        "incident_outcome": outcome,
        "incident_messages": _messages(run, outcome, changes or []),
        "incident_record": record,
        "incident_key": INCIDENT_KEY,
        "incident_run_id": run,
        "incident_group_key": GROUP_KEY,
        "incident_severity": "critical",
        "incident_results_path": str(results),
    }
    # The messages carry alert text: marked !unsafe as the renderer's filter output is in the role
    # (ansible-playbook templates plain extra vars, as it would a pflow_alert_* -e value).
    (tmp / "extra.yml").write_text(yaml.dump(extra, Dumper=_UnsafeDumper))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        str(PLAYBOOK),
        "-e",
        f"@{tmp / 'extra.yml'}",
    ]
    proc = subprocess.run(
        [*argv, *(["--check"] if check else [])],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    by_name = {r["sink"]: r for r in json.loads(results.read_text())}
    for name, result in by_name.items():
        if result["handle"]:
            record["handles"][name] = result["handle"]
    record["runs"].append(run)
    return proc, by_name


def _record() -> dict[str, Any]:
    return {"key": INCIDENT_KEY, "runs": [], "handles": {}, "ack": None, "resolved": False}


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_three_documents_of_one_incident_make_the_exact_request_sequence(
    saas: RecordingEndpoint, tmp_path: Path
) -> None:
    sinks, record = _sinks(saas.url), _record()
    docs = [
        (
            {"slack": "create", "pagerduty": "trigger", "jira": "create"},
            "documented",
            "escalate",
            "run-1",
            [
                "restart backend on web1: before=stopped after=running",
                "clear /tmp on web1: before=97% after=41%",
            ],
        ),
        (
            {"slack": "update", "pagerduty": "change", "jira": "update"},
            "documented",
            "recovered",
            "run-2",
            ["restart backend on web1: before=stopped after=running"],
        ),
        (
            {"slack": "resolve", "pagerduty": "resolve", "jira": "resolve"},
            "resolved",
            "recovered",
            "run-3",
            [],
        ),
    ]
    outputs = []
    for actions, event, outcome, run, changes in docs:
        proc, results = document(
            tmp_path, sinks, actions, record, event=event, outcome=outcome, run=run, changes=changes
        )
        assert {r["status"] for r in results.values()} == {"ok"}, results
        outputs.append(proc.stdout + proc.stderr + json.dumps(results))

    # Slack: one message, edited in place (same ts) and a thread reply per later run.
    slack = saas.under("/slack/")
    assert [r.call for r in slack] == [
        "POST /slack/api/chat.postMessage",
        "POST /slack/api/chat.update",
        "POST /slack/api/chat.postMessage",
        "POST /slack/api/chat.update",
        "POST /slack/api/chat.postMessage",
    ]
    ts = record["handles"]["slack"]["ts"]
    assert record["handles"]["slack"] == {"channel": SLACK_CHANNEL_ID, "ts": ts}
    assert "thread_ts" not in slack[0].body and "ts" not in slack[0].body
    for update, reply in ((slack[1], slack[2]), (slack[3], slack[4])):
        assert (update.body["ts"], update.body["channel"]) == (ts, SLACK_CHANNEL_ID)
        assert (reply.body["thread_ts"], reply.body["channel"]) == (ts, SLACK_CHANNEL_ID)
    assert "run-3" in slack[3].body["text"] and "run-3" in slack[4].body["text"]
    for r in slack:
        assert r.headers["Authorization"] == f"Bearer {SLACK_TOKEN}"
        # Alert data cannot mention @channel nor hide a link; it is never templated either.
        assert "<!channel>" not in r.body["text"] and "&lt;!channel&gt;" in r.body["text"]
        assert "{{ lookup('pipe', 'id') }}" in r.body["text"]
        assert (r.body["parse"], r.body["link_names"]) == ("none", False)

    # PagerDuty: trigger with Alertmanager's dedup_key, change events, resolve (same K).
    pd = saas.under("/pagerduty/")
    assert [(r.path, r.body.get("event_action")) for r in pd] == [
        ("/pagerduty/v2/enqueue", "trigger"),
        ("/pagerduty/v2/change/enqueue", None),
        ("/pagerduty/v2/change/enqueue", None),
        ("/pagerduty/v2/change/enqueue", None),
        ("/pagerduty/v2/enqueue", "resolve"),
    ]
    assert pd[0].body["dedup_key"] == K == pd[4].body["dedup_key"]
    assert pd[0].body["payload"]["severity"] == "critical"
    assert pd[0].body["payload"]["custom_details"]["incident_key"] == INCIDENT_KEY
    assert [r.body["payload"]["summary"] for r in pd[1:4]] == [*docs[0][4], *docs[1][4]]
    assert [r.body["payload"]["custom_details"]["revision"] for r in pd[1:4]] == [
        "run-1",
        "run-1",
        "run-2",
    ]
    assert all(r.body["routing_key"] == ROUTING_KEY for r in pd)
    assert not any(r.body.get("event_action") == "acknowledge" for r in pd)
    assert record["handles"]["pagerduty"] == {"dedup_key": K, "triggered": False}

    # Jira: one issue, a comment per later run, the transition only once the alert resolved.
    jira = saas.under("/jira/")
    assert [r.call for r in jira] == [
        "POST /jira/rest/api/2/issue/",
        "POST /jira/rest/api/2/issue/OPS-1/comment",
        "POST /jira/rest/api/2/issue/OPS-1/comment",
        "GET /jira/rest/api/2/issue/OPS-1/transitions",
        "POST /jira/rest/api/2/issue/OPS-1/transitions",
    ]
    assert jira[0].body["fields"]["project"] == {"key": "OPS"}
    assert "run-1" in jira[0].body["fields"]["description"]
    assert "run-2" in jira[1].body["body"] and "run-3" in jira[2].body["body"]
    # Alert text is Jira text, never wiki markup: no {code} block, no link, no templating.
    for text in (jira[0].body["fields"]["description"], jira[1].body["body"]):
        assert "\\{code\\}x\\{code\\}" in text and "\\[pwn\\|https://evil.example\\]" in text
        assert "{code}" not in text.replace("\\{code\\}", "")
        assert "\\{\\{ lookup('pipe', 'id') \\}\\}" in text
    assert jira[4].body["transition"] == {"id": "31"}
    assert saas.issue_status("OPS-1") == "Done"
    assert all(r.headers["Authorization"] == f"Bearer {JIRA_TOKEN}" for r in jira)
    assert record["handles"]["jira"] == {"issue": "OPS-1"}

    # Secrets: never in the run's output nor in the results the report and record keep.
    _assert_no_secret(*outputs, json.dumps(record))


def test_two_documents_post_then_edit_the_chat_message_in_place_and_reply_in_its_thread(
    saas: RecordingEndpoint, tmp_path: Path
) -> None:
    """Mattermost and Matrix: one message per incident, edited in place by the second run, with
    a thread reply; Teams, which cannot edit, one card per run. The Matrix homeserver holds the
    first send past the client's timeout: the retry carries the same transaction id, so the
    room gets one message, not two."""
    sinks, record = _chat_sinks(saas.url), _record()
    sinks[1]["timeout"] = 1
    saas.hang("/matrix/", 3, count=1)
    outputs = []
    for run, action, outcome in (("run-1", "create", "escalate"), ("run-2", "update", "recovered")):
        proc, results = document(
            tmp_path,
            sinks,
            dict.fromkeys(("mattermost", "matrix", "teams"), action),
            record,
            event="documented",
            outcome=outcome,
            run=run,
        )
        assert {r["status"] for r in results.values()} == {"ok"}, results
        outputs.append(proc.stdout + proc.stderr + json.dumps(results))

    # Mattermost: create -> patch in place -> reply under the post (root_id).
    mm = saas.under("/mattermost/")
    post_id = record["handles"]["mattermost"]["post_id"]
    assert record["handles"]["mattermost"] == {
        "post_id": post_id,
        "channel_id": MATTERMOST_CHANNEL_ID,
    }
    assert [r.call for r in mm] == [
        "POST /mattermost/api/v4/posts",
        f"PUT /mattermost/api/v4/posts/{post_id}/patch",
        "POST /mattermost/api/v4/posts",
    ]
    assert "root_id" not in mm[0].body and mm[0].body["channel_id"] == MATTERMOST_CHANNEL_ID
    assert mm[2].body == {
        "channel_id": MATTERMOST_CHANNEL_ID,
        "root_id": post_id,
        "message": mm[1].body["message"],
    }
    assert "run-1" in mm[0].body["message"] and "run-2" in mm[1].body["message"]
    assert saas.chat.posts[post_id]["message"] == mm[1].body["message"]  # edited, not re-posted
    assert len(saas.chat.posts) == 2  # the message and one thread reply

    # Matrix: send (held, retried with the same txn id) -> m.replace edit -> m.thread reply.
    mx = saas.under("/matrix/")
    event_id = record["handles"]["matrix"]["event_id"]
    assert record["handles"]["matrix"] == {"event_id": event_id, "room_id": MATRIX_ROOM}
    prefix = "PUT /matrix/_matrix/client/v3/rooms/!pflowops:matrix.test/send/m.room.message/"
    assert all(r.call.startswith(prefix) for r in mx) and len(mx) == 4
    txns = [r.path.rsplit("/", 1)[1] for r in mx]
    assert txns[0] == txns[1] and len(set(txns)) == 3
    assert len(saas.chat.events) == 3  # the retried send made no second message
    assert all("%21pflowops%3Amatrix.test" in p for p in saas.chat.raw_paths if "/matrix/" in p)
    assert "m.relates_to" not in mx[1].body
    assert mx[2].body["m.relates_to"] == {"rel_type": "m.replace", "event_id": event_id}
    assert "run-2" in mx[2].body["m.new_content"]["body"]
    assert mx[3].body["m.relates_to"]["rel_type"] == "m.thread"
    assert mx[3].body["m.relates_to"]["event_id"] == event_id
    for r in mx:
        assert r.body["m.mentions"] == {} and "formatted_body" not in r.body

    # Teams: no id to edit by, one Adaptive Card per run.
    teams = saas.under("/teams/")
    assert [r.call for r in teams] == ["POST /teams/workflows/run"] * 2
    cards = [r.body["attachments"][0]["content"]["body"] for r in teams]
    assert ["run-1" in c[1]["text"] for c in cards] == [True, False]
    assert record["handles"]["teams"] == {"posts": 2}

    # Alert text: no link hidden behind a label, no @here, never templated.
    texts = [mm[0].body["message"], mx[1].body["body"], cards[0][1]["text"]]
    for text in texts:
        assert "[docs](https" not in text and "[docs]\u200b(https" in text
        assert "@here" not in text and "{{ lookup('pipe', 'id') }}" in text
    for r in (*mm, *mx):
        assert r.headers["Authorization"] in (f"Bearer {MM_TOKEN}", f"Bearer {MX_TOKEN}")
    _assert_no_secret(*outputs, json.dumps(record))


def test_an_escalation_rerun_never_resolves_transitions_nor_acknowledges(
    saas: RecordingEndpoint, tmp_path: Path
) -> None:
    sinks, record = _sinks(saas.url), _record()
    for run in ("run-1", "run-2"):
        action = "create" if run == "run-1" else "update"
        document(
            tmp_path,
            sinks,
            {"slack": action, "pagerduty": "trigger", "jira": action},
            record,
            event="documented",
            outcome="escalate",
            run=run,
            changes=[],
        )
    pd = saas.under("/pagerduty/")
    assert [r.body["event_action"] for r in pd] == ["trigger", "trigger"]
    assert {r.body["dedup_key"] for r in pd} == {K}  # the second escalation joins the same incident
    assert not any("transitions" in c for c in saas.calls("/jira/"))
    assert record["handles"]["jira"] == {"issue": "OPS-1"}
    assert saas.calls("/jira/")[1:] == ["POST /jira/rest/api/2/issue/OPS-1/comment"]
    assert saas.issue_status("OPS-1") == "To Do"


def test_a_resolution_resolves_only_a_page_this_sink_sent(
    saas: RecordingEndpoint, tmp_path: Path
) -> None:
    """A recovered incident nobody was paged for: the resolution touches chat and ticket only."""
    sinks, record = _sinks(saas.url), _record()
    document(
        tmp_path,
        sinks,
        {"slack": "create", "pagerduty": "change", "jira": "create"},
        record,
        event="documented",
        outcome="recovered",
        run="run-1",
        changes=["restart backend on web1"],
    )
    _, results = document(
        tmp_path,
        sinks,
        {"slack": "resolve", "pagerduty": "resolve", "jira": "resolve"},
        record,
        event="resolved",
        outcome="recovered",
        run="run-2",
    )
    assert [r.path for r in saas.under("/pagerduty/")] == ["/pagerduty/v2/change/enqueue"]
    assert results["pagerduty"]["status"] == "skipped"


def test_check_mode_sends_nothing(saas: RecordingEndpoint, tmp_path: Path) -> None:
    _, results = document(
        tmp_path,
        _sinks(saas.url),
        {"slack": "create", "pagerduty": "trigger", "jira": "create"},
        _record(),
        event="documented",
        outcome="escalate",
        run="run-1",
        changes=["x"],
        check=True,
    )
    assert saas.requests == []
    assert {r["status"] for r in results.values()} == {"skipped"}


def test_a_failing_sink_is_a_warning_with_one_line_never_the_outcome(
    saas: RecordingEndpoint, tmp_path: Path
) -> None:
    """Slack answers 503, PagerDuty holds the connection past the timeout, Jira refuses it: the
    playbook still succeeds, each sink is `failed` with one line and no secret, retries bounded."""
    (closed,) = free_ports(1)
    saas.fail("/slack/", 503)
    saas.hang("/pagerduty/", 20)
    teams = {
        "kind": "teams",
        "url": f"http://127.0.0.1:{closed}/teams/workflows/run?{TEAMS_SIG}",
        "retries": 1,
        "delay": 0,
    }
    sinks = [
        *_sinks(
            saas.url,
            pagerduty={"timeout": 2, "retries": 1},
            jira={"uri": f"http://127.0.0.1:{closed}/jira", "retries": 1},
        ),
        teams,
    ]
    record = _record()
    proc, results = document(
        tmp_path,
        sinks,
        {"slack": "create", "pagerduty": "trigger", "jira": "create", "teams": "create"},
        record,
        event="documented",
        outcome="escalate",
        run="run-1",
        changes=["restart backend"],
    )
    assert {name: r["status"] for name, r in results.items()} == {
        "slack": "failed",
        "pagerduty": "failed",
        "jira": "failed",
        "teams": "failed",
    }
    for r in results.values():
        assert "\n" not in r["detail"] and 0 < len(r["detail"]) <= 300
    assert "refused" in results["teams"]["detail"].lower()
    assert "HTTP 503" in results["slack"]["detail"]
    assert "timed out" in results["pagerduty"]["detail"].lower()
    assert "refused" in results["jira"]["detail"].lower()
    # Bounded: the first try and `retries` more, then give up. No handle from a failed create.
    assert len(saas.under("/slack/")) == 3  # retries: 2
    assert len(saas.under("/pagerduty/")) == 2  # retries: 1
    assert record["handles"] == {}
    _assert_no_secret(proc.stdout, proc.stderr, json.dumps(results))


def test_a_rejected_request_is_not_retried(saas: RecordingEndpoint, tmp_path: Path) -> None:
    """400 and Slack's channel_not_found cannot get better by retrying: one request each."""
    saas.fail("/pagerduty/", 400)
    chat = _chat_sinks(saas.url)
    chat[1]["room_id"] = "#incidents:matrix.test"  # an alias: refused before any request
    sinks = [*_sinks(saas.url, slack={"channel": "#nope"}), *chat[:2]]
    record = _record()
    record["handles"]["slack"] = {"channel": "C-GONE", "ts": "1.000001"}  # a message since deleted
    gone = {"post_id": "gonepost000000000000000000", "channel_id": MATTERMOST_CHANNEL_ID}
    record["handles"]["mattermost"] = gone
    _, results = document(
        tmp_path,
        sinks,
        {
            "slack": "update",
            "pagerduty": "trigger",
            "jira": "create",
            "mattermost": "update",
            "matrix": "create",
        },
        record,
        event="documented",
        outcome="escalate",
        run="run-1",
    )
    assert results["slack"]["status"] == results["pagerduty"]["status"] == "failed"
    assert "message_not_found" in results["slack"]["detail"]
    assert saas.calls("/slack/") == ["POST /slack/api/chat.update"]
    assert saas.calls("/pagerduty/") == ["POST /pagerduty/v2/enqueue"]
    assert results["jira"]["status"] == "ok"
    # Mattermost: the post is gone (404), one patch only; Matrix: an alias is no room id.
    assert saas.calls("/mattermost/") == [f"PUT /mattermost/api/v4/posts/{gone['post_id']}/patch"]
    assert "HTTP 404" in results["mattermost"]["detail"]
    assert results["matrix"]["status"] == "failed" and "room id" in results["matrix"]["detail"]
    assert saas.calls("/matrix/") == []


ROLE_DOCUMENT = ROOT / "collection" / "roles" / "incident" / "tasks" / "document.yml"


@pytest.mark.skipif(
    not ROLE_DOCUMENT.exists(), reason="the incident role's document.yml is not merged yet"
)
def test_three_runs_through_the_roles_document_entry_point(
    saas: RecordingEndpoint, tmp_path: Path
) -> None:
    """The same sequence through tasks_from: document, the record kept by incident_record under
    PFLOW_OPS_HOME: what the runbook roles and alert_loop run. The chat sinks ride along (their
    sequence asserted on its own) to show the role accepts their kinds and keeps their handles."""
    sinks = _sinks(saas.url) + _chat_sinks(saas.url)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "PFLOW_OPS_HOME": str(tmp_path / "home"),
    }
    restart = {"action": "restart", "target": "backend", "before": "stopped"}
    runs = [
        ("run-1", "escalate", "documented", [{**restart, "result": "failed", "after": "stopped"}]),
        ("run-2", "recovered", "documented", [{**restart, "result": "ok", "after": "running"}]),
        ("run-3", "recovered", "resolved", []),
    ]
    for run, outcome, event, actions in runs:
        result = {"runbook": "RB-01", "host": "web1", "service": "backend", "outcome": outcome}
        extra = {
            "pflow_incident_sinks": sinks,
            "pflow_run_id": run,
            "pflow_env": "local",
            "pflow_incident_key": "INC-42",
            "incident_event": event,
            "incident_loop": {"state": "resolved", "detail": "cleared"}
            if event == "resolved"
            else {},
            "test_run_result": {**result, "reason": "backend down", "actions": actions},
        }
        (tmp_path / "extra.json").write_text(json.dumps(extra))
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                str(PLAYBOOK.parent / "incident_document.yml"),
                "-e",
                f"@{tmp_path / 'extra.json'}",
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        _assert_no_secret(proc.stdout, proc.stderr)

    def shown(r: Any) -> str:
        body = r.body if isinstance(r.body, dict) else {}
        return " ".join(
            [r.call, *(f"{k}={body[k]}" for k in ("event_action", "dedup_key") if k in body)]
        )

    chat = [r for r in saas.requests if r.path.startswith(("/mattermost/", "/matrix/", "/teams/"))]
    assert [shown(r) for r in saas.requests if r not in chat] == [
        "POST /slack/api/chat.postMessage",
        "POST /pagerduty/v2/enqueue event_action=trigger dedup_key=INC-42",
        "POST /pagerduty/v2/change/enqueue",
        "POST /jira/rest/api/2/issue/",
        "POST /slack/api/chat.update",
        "POST /slack/api/chat.postMessage",
        "POST /pagerduty/v2/change/enqueue",
        "POST /jira/rest/api/2/issue/OPS-1/comment",
        "POST /slack/api/chat.update",
        "POST /slack/api/chat.postMessage",
        "POST /pagerduty/v2/enqueue event_action=resolve dedup_key=INC-42",
        "POST /jira/rest/api/2/issue/OPS-1/comment",
        "GET /jira/rest/api/2/issue/OPS-1/transitions",
        "POST /jira/rest/api/2/issue/OPS-1/transitions",
    ]
    records = list((tmp_path / "home" / "incidents").glob("*.json"))
    assert len(records) == 1
    text = records[0].read_text()
    _assert_no_secret(text)
    handles = json.loads(text)["handles"]
    assert handles["jira"] == {"issue": "OPS-1"}
    assert handles["pagerduty"] == {"dedup_key": "INC-42", "triggered": False}
    assert handles["slack"]["channel"] == SLACK_CHANNEL_ID
    # Chat: posted by the first run, then edited in place and replied to by each later one.
    post_id, event_id = handles["mattermost"]["post_id"], handles["matrix"]["event_id"]
    mx_send = "PUT /matrix/_matrix/client/v3/rooms/!pflowops:matrix.test"
    later = [
        f"PUT /mattermost/api/v4/posts/{post_id}/patch",
        "POST /mattermost/api/v4/posts",
        mx_send,
        mx_send,
        "POST /teams/workflows/run",
    ]
    assert [r.call.split("/send/")[0] for r in chat] == [
        "POST /mattermost/api/v4/posts",
        mx_send,
        "POST /teams/workflows/run",
        *later,
        *later,
    ]
    assert [
        (r.body.get("m.relates_to") or {}).get("rel_type") for r in chat if "/matrix/" in r.path
    ] == [None, "m.replace", "m.thread", "m.replace", "m.thread"]
    assert handles["matrix"] == {"event_id": event_id, "room_id": MATRIX_ROOM}
    assert handles["teams"] == {"posts": 3}

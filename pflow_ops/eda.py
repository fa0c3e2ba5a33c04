"""The Event-Driven Ansible rulebooks, generated from the catalogue and the routing table.

Pure: catalogue + routing table -> rulebook (a list of rulesets, as ansible-rulebook reads it)
-> YAML text. ``pflow-ops eda rulebook`` writes or checks the two committed files; a unit test
keeps them equal to what this module generates, so a rulebook never drifts from the catalogue.

EDA routes as the receiver does (pflow_ops.routing): a ``runbook`` label wins (it must be a
catalogue runbook id, else the alert routes nowhere), then the alert's name among the
catalogue's alerts and aliases (and an environment's ``pflow_alert_aliases`` with ``--env``).
The alertname and fingerprint are checked against the routing regexes in the conditions too,
behind the ``pivotal.flow_ops.alert_guard`` filter that already refused anything else.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import yaml

from pflow_ops import routing
from pflow_ops.catalogue import Catalogue, Runbook

RULEBOOK_DIR = PurePosixPath("collection/extensions/eda/rulebooks")
CLI_RULEBOOK = "pivotal_flow_alerts.yml"
CONTROLLER_RULEBOOK = "pivotal_flow_alerts_controller.yml"

SOURCE_HOST = "127.0.0.1"
SOURCE_PORT = 5050
# ansible-rulebook renders source arguments with StrictUndefined: without the token the rulebook
# does not start, so the source is never open without authentication.
TOKEN_VAR = "PFLOW_EDA_TOKEN"
FILTER = "pivotal.flow_ops.alert_guard"
# The receiver's default --throttle-window (600 s): one run start per runbook per window.
THROTTLE = "10 minutes"
# awx/vars/main.yml pflow_awx_organization (a unit test keeps them equal).
AWX_ORGANIZATION = "Pivotal Flow"
# The alert_guard filter's refusal event, {"pflow_refused": "<one line>"} (event_input.py).
REFUSED = "pflow_refused"


@dataclass(frozen=True)
class Options:
    """What varies between the generated rulebooks."""

    controller: bool = False  # EDA controller: run_job_template instead of run_playbook
    env: str = ""  # routes the env's pflow_alert_aliases too, and pins pflow_confirm_env


def collection_playbook(rb: Runbook) -> str:
    """The collection playbook a catalogue entry point imports: playbooks/rb-01-backend-down.yml
    -> pivotal.flow_ops.rb_01_backend_down."""
    return "pivotal.flow_ops." + PurePosixPath(rb.playbook).stem.replace("-", "_")


def job_template(rb: Runbook) -> str:
    """The recover job template awx/configure.yml creates for a runbook."""
    return f"{rb.id} {rb.title}"


def _quoted(names: tuple[str, ...]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def condition(runbook: str, names: tuple[str, ...]) -> str:
    """The condition of one runbook's rule: a firing, well-formed alert routed to it by its
    ``runbook`` label, or (without that label) by its name."""
    return (
        'event.alert.status == "firing"'
        f' and event.alert.labels.alertname is match("{routing.ALERTNAME.pattern}")'
        f' and event.alert.fingerprint is match("{routing.FINGERPRINT.pattern}")'
        f" and ((event.alert.labels.{routing.RUNBOOK_LABEL} is defined"
        f' and event.alert.labels.{routing.RUNBOOK_LABEL} == "{runbook}")'
        f" or (event.alert.labels.{routing.RUNBOOK_LABEL} is not defined"
        f" and event.alert.labels.alertname in [{_quoted(names)}]))"
    )


def _extra_vars(opts: Options) -> dict[str, str]:
    """The run's variables. ansible-rulebook renders them natively (the result goes through
    ast.literal_eval), so a plain ``{{ event.alert.fingerprint }}`` turns the fingerprint
    1234567890123456 into an int and 4e12345678901234 into a float; ``tojson`` renders a quoted
    string literal, which literal_eval turns back into the very same string."""
    extra = {
        "pflow_mode": "recover",
        "pflow_alert_name": "{{ event.alert.labels.alertname | tojson }}",
        "pflow_alert_fingerprint": "{{ event.alert.fingerprint | tojson }}",
        # Checked by the filter (event_input), "" when absent; the incident role hashes the
        # group key into Alertmanager's own PagerDuty dedup_key.
        "pflow_alert_group_key": "{{ event.alert.group_key | tojson }}",
        "pflow_alert_incident": "{{ event.alert.incident | tojson }}",
    }
    if opts.env:
        # The playbook refuses to run on an inventory of another environment.
        extra["pflow_confirm_env"] = opts.env
    return extra


def _action(rb: Runbook, opts: Options) -> dict[str, Any]:
    if opts.controller:
        return {
            "run_job_template": {
                "name": job_template(rb),
                "organization": AWX_ORGANIZATION,
                # The job template's survey takes the alert's name, fingerprint, group key and
                # incident annotation; the event itself stays out of AWX (its templates refuse
                # undeclared variables).
                "include_events": False,
                "job_args": {"extra_vars": _extra_vars(opts)},
            }
        }
    return {"run_playbook": {"name": collection_playbook(rb), "extra_vars": _extra_vars(opts)}}


def runbook_rule(rb: Runbook, tbl: routing.Table, opts: Options) -> dict[str, Any]:
    return {
        "name": f"{rb.id} {rb.title}",
        "condition": condition(rb.id, tbl.alerts_for(rb.id)),
        "throttle": {
            "once_within": THROTTLE,
            # The rule is the runbook and its status is always firing: one group per runbook.
            "group_by_attributes": ["event.alert.status"],
        },
        "action": _action(rb, opts),
    }


def _visibility_rules() -> list[dict[str, Any]]:
    """Alerts that start nothing still leave a line in ansible-rulebook's output."""
    return [
        {
            "name": "Refused alert",
            "condition": f"event.{REFUSED} is defined",
            "action": {"debug": {"msg": f"pflow-ops refused an alert: {{{{ event.{REFUSED} }}}}"}},
        },
        {
            "name": "Firing alert without a runbook",
            "condition": 'event.alert.status == "firing"',
            "action": {
                "debug": {
                    "msg": "pflow-ops: no runbook for firing alert"
                    " {{ event.alert.labels.alertname }}"
                    " (fingerprint {{ event.alert.fingerprint }}): see catalogue.yml alerts and"
                    " alert_aliases, the inventory's"
                    " pflow_alert_aliases, or a runbook label"
                }
            },
        },
    ]


def rulebook(cat: Catalogue, tbl: routing.Table, opts: Options) -> list[dict[str, Any]]:
    """The rulebook: one ruleset, one rule per automated runbook (first match wins), then the
    rules that make a refused or unrouted alert visible."""
    source = {
        "name": "Alertmanager webhook",
        "eda.builtin.webhook": {
            "host": SOURCE_HOST,
            "port": SOURCE_PORT,
            "token": f"{{{{ {TOKEN_VAR} }}}}",
        },
        "filters": [{FILTER: None}],
    }
    rules = [runbook_rule(rb, tbl, opts) for rb in cat.runbooks if tbl.targets[rb.id].implemented]
    return [
        {
            "name": "Pivotal Flow alerts to runbooks",
            "hosts": "all",
            "sources": [source],
            "rules": [*rules, *_visibility_rules()],
        }
    ]


_ROUTING = (
    "Event-Driven Ansible: Alertmanager alerts -> the runbooks, for teams that run EDA instead"
    " of `pflow-ops serve`. Routing is the receiver's: a `runbook` label wins (a catalogue id,"
    " else the alert routes nowhere), then the alert's name among the catalogue's alerts and"
    " alert_aliases (with --env, also that inventory's pflow_alert_aliases: generate one"
    " rulebook per environment for those)."
)
_CONTROLLER = (
    "EDA controller (it has no run_playbook): each rule launches the runbook's recover job"
    f" template of organization '{AWX_ORGANIZATION}' (awx/configure.yml), on that template's"
    " inventory; its survey must accept pflow_alert_name, pflow_alert_fingerprint,"
    " pflow_alert_group_key and pflow_alert_incident (awx/configure.yml's surveys do). The"
    " decision environment needs ansible-rulebook >= 1.1 (eda.builtin.webhook) and this"
    f" collection ({FILTER}); a credential injects {TOKEN_VAR} as an extra var."
)
_INVENTORY = (
    "-i takes the inventory DIRECTORY (inventories/prod/), never inventories/prod/hosts.yml:"
    " ansible-rulebook copies a single file alone, without group_vars/, and RB-01 then probed"
    " default ports and escalated falsely. ANSIBLE_CONFIG: each run happens in a private"
    " directory, where the checkout's ansible.cfg (its collections path) is not found."
)
_AUTH = (
    f"Authentication: the source ({SOURCE_HOST}:{SOURCE_PORT}) is eda.builtin.webhook, which"
    f" requires `Authorization: Bearer <{TOKEN_VAR}>` (ansible.eda.alertmanager has no"
    " authentication at all) and does not start without the token. It listens on loopback: to"
    " take alerts from another host put a TLS proxy in front, or give the source"
    " certfile/keyfile; never expose it without TLS (the token is a secret). Alertmanager:"
)
_DATA = (
    f"Alert data is data: the {FILTER} filter splits each notification into one event per"
    " alert holding only its status, fingerprint, alertname and runbook label, the"
    " notification's groupKey and the alert's incident annotation, and refuses (a debug line,"
    " no run) an alert with a template marker or an oversized value anywhere, or a malformed"
    " alertname, fingerprint, runbook label, groupKey or incident annotation. Every playbook's"
    " first play checks the same again (pivotal.flow_ops.alert_input). The incident the run"
    " documents is the annotation's, else the groupKey's (its sha256: the dedup_key"
    " Alertmanager's own PagerDuty integration uses), else the fingerprint's."
)
_THROTTLE = (
    f"Throttle: one run start per runbook per {THROTTLE}, the receiver's throttle window: the"
    " playbook works on the whole service group, so a second alert of the same outage (another"
    " instance, a symptom alert of the same runbook) must not start a second run racing the"
    " first. Actions run one at a time (ansible-rulebook's sequential strategy). What EDA does"
    " not give you, and `pflow-ops serve` does: a dry run, dedupe and queueing across restarts,"
    " attaching alerts to the run in progress, cancelling on resolve."
)


def _comment(text: str) -> list[str]:
    return [*textwrap.wrap(text, width=96, initial_indent="# ", subsequent_indent="# "), "#"]


def header(opts: Options) -> str:
    """The comment that opens the file: how to run it, and what it does and does not do."""
    name = CONTROLLER_RULEBOOK if opts.controller else CLI_RULEBOOK
    flags = " --controller" if opts.controller else ""
    flags += f" --env {opts.env}" if opts.env else ""
    lines = [
        "---",
        f"# GENERATED by `pflow-ops eda rulebook{flags}` from catalogue.yml and",
        "# pflow_ops/routing.py: do not edit. Regenerate with --output; --check fails on drift.",
        "#",
        *_comment(_ROUTING),
    ]
    if opts.controller:
        lines += _comment(_CONTROLLER)
    else:
        lines += [
            f"#   {TOKEN_VAR}=$(cat /etc/pflow-ops/eda.token) ANSIBLE_CONFIG=$PWD/ansible.cfg \\",
            f"#     ansible-rulebook --rulebook pivotal.flow_ops.{name.removesuffix('.yml')} \\",
            f"#       -i inventories/prod/ --env-vars {TOKEN_VAR}",
            "#",
            *_comment(_INVENTORY),
        ]
    lines += [
        *_comment(_AUTH)[:-1],
        f"#   webhook_configs: [{{url: http://{SOURCE_HOST}:{SOURCE_PORT}/alerts,",
        "#     http_config: {authorization: {credentials_file: /etc/alertmanager/eda.token}}}]",
        "#",
        *_comment(_DATA),
        *_comment(_THROTTLE)[:-1],
    ]
    return "\n".join(lines) + "\n"


class _Dumper(yaml.SafeDumper):
    """Block style with indented sequences (ansible-lint's yamllint); long strings (conditions,
    messages) folded at spaces."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = ">" if len(value) > 80 and "\n" not in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(cat: Catalogue, tbl: routing.Table, opts: Options) -> str:
    """The rulebook file's text."""
    body = yaml.dump(
        rulebook(cat, tbl, opts), Dumper=_Dumper, sort_keys=False, width=96, allow_unicode=True
    )
    return header(opts) + body


def path_for(opts: Options) -> PurePosixPath:
    """Where the committed rulebook of these options lives (relative to the project root)."""
    return RULEBOOK_DIR / (CONTROLLER_RULEBOOK if opts.controller else CLI_RULEBOOK)

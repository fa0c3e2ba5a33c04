"""What awx/configure.yml would send to AWX, rendered without a controller and checked here.

AWX validates surveys only on its server; `awx_survey_errors` is its JobTemplateSurveySpec
validation (awx/api/views) plus the answer rules it applies to defaults at launch. The
workflow nodes are checked against the awx.awx module's documented suboptions, because the
module takes them as a free-form list and would not catch a misspelt key before connecting.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pflow_ops import eda

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
AWX_MODULES = next(
    Path(p) / "ansible_collections" / "awx" / "awx" / "plugins" / "modules"
    for p in sys.path
    if (Path(p) / "ansible_collections" / "awx" / "awx").is_dir()
)
SETTINGS: dict[str, Any] = yaml.safe_load((ROOT / "awx" / "vars" / "main.yml").read_text())
EE_IMAGE = "registry.example.com/sre/pflow-ops-ee:0.5.0"
ALLOWED_TYPES: dict[str, type | tuple[type, ...]] = {
    "text": str,
    "textarea": str,
    "password": str,
    "multiplechoice": str,
    "multiselect": str,
    "integer": int,
    "float": float,
}


def _question_errors(idx: int, item: Any) -> list[str]:
    if not isinstance(item, dict):
        return [f"question {idx} is not an object"]
    errors: list[str] = []
    for field, kind in (
        ("type", str),
        ("question_name", str),
        ("variable", str),
        ("required", bool),
    ):
        if not isinstance(item.get(field), kind):
            errors.append(f"'{field}' missing from survey question {idx} or not {kind.__name__}")
    qtype = item.get("type")
    if qtype not in ALLOWED_TYPES:
        return [*errors, f"question {idx}: type {qtype!r} not allowed"]
    default = item.get("default", "")
    # A multiselect default may be a list of choices (checked with the choices below).
    if default != "" and qtype != "multiselect" and not isinstance(default, ALLOWED_TYPES[qtype]):
        errors.append(f"question {idx}: default {default!r} is not {qtype}")
    for key in ("min", "max"):
        if item.get(key) is not None and not isinstance(item[key], int):
            errors.append(f"question {idx}: {key} limit must be an integer")
    return errors + _choice_errors(idx, item) + _range_errors(idx, item)


def _choice_errors(idx: int, item: dict[str, Any]) -> list[str]:
    if item["type"] not in ("multiplechoice", "multiselect"):
        return []
    choices = item.get("choices")
    if isinstance(choices, str):
        choices = [c for c in choices.splitlines() if c.strip()]
    if not isinstance(choices, list) or not choices:
        return [f"question {idx} of type {item['type']} must specify choices"]
    default = item.get("default", "")
    defaults = (
        [d for d in default.splitlines() if d.strip()] if isinstance(default, str) else default
    )
    if item["type"] == "multiplechoice" and len(defaults) > 1:
        return [f"question {idx}: multiple choice can only have one default"]
    if any(d not in choices for d in defaults):
        return [f"question {idx}: default choice must be answered from the choices listed"]
    return []


def _range_errors(idx: int, item: dict[str, Any]) -> list[str]:
    default, low, high = item.get("default", ""), item.get("min"), item.get("max")
    if item["type"] in ("integer", "float") and default != "":
        value = default
    elif item["type"] in ("text", "textarea", "password") and default != "":
        value = len(default)
    else:
        return []
    if (low is not None and value < low) or (high is not None and value > high):
        return [f"question {idx}: default {default!r} outside [{low}, {high}]"]
    return []


def awx_survey_errors(survey: Any) -> list[str]:
    """Every reason AWX would refuse this survey spec (POST .../survey_spec/) or its defaults."""
    if not isinstance(survey, dict):
        return ["survey spec is not an object"]
    errors = [
        f"field '{field}' missing or not {kind.__name__}"
        for field, kind in (("name", str), ("description", str), ("spec", list))
        if not isinstance(survey.get(field), kind)
    ]
    if errors:
        return errors
    if not survey["spec"]:
        return ["'spec' doesn't contain any items"]
    seen: set[str] = set()
    for idx, item in enumerate(survey["spec"]):
        errors += _question_errors(idx, item)
        variable = item.get("variable") if isinstance(item, dict) else None
        if variable in seen:
            errors.append(f"'variable' '{variable}' duplicated in survey question {idx}")
        seen.add(str(variable))
    return errors


def make_project(tmp: Path, stores: bool = True) -> Path:
    """A project root like the repository's whose inventories name a shared etcd store (the
    shipped examples do not: configure.yml refuses to import them into AWX as they are)."""
    project = tmp / "project"
    project.mkdir()
    for name in ("catalogue.yml", "collection", "playbooks", "awx"):
        (project / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "inventories", project / "inventories")
    for hosts in (project / "inventories").glob("*/hosts.yml"):
        data = yaml.safe_load(hosts.read_text())
        if stores:
            url = f"etcds://etcd.{hosts.parent.name}.pivotal.internal:2379"
            data["all"].setdefault("vars", {})["pflow_coordination_url"] = url
        hosts.write_text(yaml.safe_dump(data))
    return project


def render(tmp: Path, *extra: str, project: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the render phase (--tags pflow_awx_render): no controller is contacted; the objects
    go to tmp/objects.json."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "awx/configure.yml",
            "--tags",
            "pflow_awx_render",
            "-e",
            f"pflow_awx_export={tmp / 'objects.json'}",
            "-e",
            f"pflow_awx_project_root={project or make_project(tmp)}",
            "-e",
            f"pflow_awx_ee_image={EE_IMAGE}",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _refusal(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, "configure.yml accepted it"
    return " ".join(proc.stdout.split())


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The objects the playbook renders (--tags pflow_awx_render): no controller is contacted."""
    tmp = tmp_path_factory.mktemp("awx")
    proc = render(tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    data: dict[str, Any] = json.loads((tmp / "objects.json").read_text())
    return data


def _catalogue() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "catalogue.yml").read_text())
    return data


def _runbooks() -> list[dict[str, Any]]:
    return [rb for rb in _catalogue()["runbooks"] if rb.get("implemented", True)]


def _options(role: str) -> dict[str, Any]:
    path = ROOT / "collection" / "roles" / role.split(".")[-1] / "meta" / "argument_specs.yml"
    options: dict[str, Any] = yaml.safe_load(path.read_text())["argument_specs"]["main"]["options"]
    return options


def _templates(objects: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {jt["name"]: jt for jt in objects["job_templates"]}


def test_every_survey_passes_awx_validation(objects: dict[str, Any]) -> None:
    surveyed = [jt for jt in objects["job_templates"] if jt["survey_spec"]]
    assert len(surveyed) == 2 * len(_runbooks()) + len(SETTINGS["pflow_awx_diagnose_slices"])
    for jt in surveyed:
        assert awx_survey_errors(jt["survey_spec"]) == [], jt["name"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda s: s.pop("description"), "field 'description'"),
        (lambda s: s["spec"].clear(), "doesn't contain any items"),
        (lambda s: s["spec"][0].pop("required"), "'required' missing"),
        (lambda s: s["spec"].append(dict(s["spec"][0])), "duplicated"),
        (lambda s: s["spec"][0].update(type="boolean"), "not allowed"),
        (lambda s: s["spec"][0].update(default="nowhere"), "answered from the choices"),
        (lambda s: s["spec"][0].update(choices="prod\nstaging", default="staging"), None),
        (lambda s: s["spec"][0].pop("choices"), "must specify choices"),
        (lambda s: s["spec"][1].update(type="float", default=1, min=0, max=5), "is not float"),
        (lambda s: s["spec"][1].update(type="float", default=7.5, min=0, max=5), "outside"),
        (lambda s: s["spec"][1].update(type="integer", default=2, min=0.5), "must be an integer"),
        (lambda s: s["spec"][1].update(type="text", default="abcdef", min=0, max=3), "outside"),
    ],
)
def test_the_validator_rejects_what_awx_rejects(change: Any, error: str | None) -> None:
    survey = {
        "name": "s",
        "description": "d",
        "spec": [
            {
                "question_name": "Env",
                "variable": "env",
                "type": "multiplechoice",
                "required": True,
                "choices": ["prod", "staging"],
                "default": "prod",
            },
            {
                "question_name": "N",
                "variable": "n",
                "type": "integer",
                "required": True,
                "default": 3,
                "min": 0,
                "max": 5,
            },
        ],
    }
    assert awx_survey_errors(survey) == []
    change(survey)
    errors = awx_survey_errors(survey)
    if error is None:
        assert errors == []
    else:
        assert any(error in e for e in errors), errors


@pytest.mark.parametrize("rb", _runbooks(), ids=lambda rb: rb["id"])
def test_threshold_questions_follow_the_role_argument_spec(
    objects: dict[str, Any], rb: dict[str, Any]
) -> None:
    options = _options(rb["role"])
    prefix = rb["role"].split(".")[-1] + "_"
    names = [f"{rb['id']} {rb['title']}{kind}" for kind in ("", " (diagnose)", " (fleet diagnose)")]
    for name in [n for n in names if n in _templates(objects)]:
        spec = _templates(objects)[name]["survey_spec"]["spec"]
        thresholds = [q for q in spec if q["variable"].startswith(prefix)]
        assert len(thresholds) >= 3, f"{name}: the runbook's key thresholds are in its survey"
        for q in thresholds:
            option = options[q["variable"]]
            assert q["type"] == {"int": "integer", "float": "float"}[option["type"]]
            assert q["default"] == option["default"]
            assert q["min"] <= option["default"] <= q["max"]


@pytest.mark.parametrize("rb", _runbooks(), ids=lambda rb: rb["id"])
def test_each_runbook_has_a_recover_and_a_diagnose_template(
    objects: dict[str, Any], rb: dict[str, Any]
) -> None:
    templates = _templates(objects)
    recover = templates[f"{rb['id']} {rb['title']}"]
    diagnose = templates[f"{rb['id']} {rb['title']} (diagnose)"]
    assert (ROOT / rb["playbook"]).is_file()
    assert recover["playbook"] == diagnose["playbook"] == rb["playbook"]
    assert (recover["job_type"], recover["extra_vars"]) == ("run", {"pflow_mode": "recover"})
    assert (diagnose["job_type"], diagnose["extra_vars"]) == ("check", {"pflow_mode": "diagnose"})
    # A full dry run of recovery is the "check" job type, offered at launch.
    assert recover["ask_job_type_on_launch"] and not diagnose["ask_job_type_on_launch"]
    variables = [q["variable"] for q in recover["survey_spec"]["spec"]]
    assert variables[:2] == ["pflow_confirm_env", "pflow_mode"]


def test_templates_never_overlap_and_take_inventory_and_limit_at_launch(
    objects: dict[str, Any],
) -> None:
    names = [
        SETTINGS["pflow_awx_machine_credential"],
        SETTINGS["pflow_awx_vault_credential"],
        SETTINGS["pflow_awx_coordination_credential"],
    ]
    gate = SETTINGS["pflow_awx_gate_template"]
    for jt in objects["job_templates"]:
        assert jt["allow_simultaneous"] is False
        assert jt["ask_inventory_on_launch"] is True
        assert jt["ask_variables_on_launch"] is False
        assert (ROOT / jt["playbook"]).is_file(), jt["playbook"]
        # Credentials are referenced by name; the gate runs on the EE and needs none, nor a
        # limit (one that left out localhost would skip it into a success).
        assert jt["credentials"] == ([] if jt["name"] == gate else names)
        assert jt["ask_limit_on_launch"] is (jt["name"] != gate)


def test_maintenance_jobs_have_templates_and_schedules(objects: dict[str, Any]) -> None:
    templates = _templates(objects)
    jobs = _catalogue()["maintenance"]
    assert len(objects["schedules"]) == len(jobs)
    for job, schedule in zip(jobs, objects["schedules"], strict=True):
        jt = templates[schedule["unified_job_template"]]
        assert jt["playbook"] == job["playbook"]
        assert jt["extra_vars"] == {"pflow_mode": "maintain"}
        assert job["schedule"] in schedule["description"]
        assert schedule["inventory"] in {inv["name"] for inv in objects["inventories"]}


def test_one_inventory_per_environment_synced_from_the_project(objects: dict[str, Any]) -> None:
    environments = sorted(p.parent.name for p in (ROOT / "inventories").glob("*/hosts.yml"))
    # The loopback sandbox stays out unless asked for (test_local_is_imported_only_on_request).
    assert [inv["environment"] for inv in objects["inventories"]] == [
        env for env in environments if env != "local"
    ]
    for inv in objects["inventories"]:
        assert (ROOT / inv["source_path"]).is_file()
        assert inv["protected"] is (inv["environment"] == "prod")
        assert inv["coordination"] == f"etcd at etcd.{inv['environment']}.pivotal.internal:2379"


def test_every_job_runs_in_the_pflow_ops_execution_environment(objects: dict[str, Any]) -> None:
    ee = objects["execution_environment"]
    assert ee == {"name": SETTINGS["pflow_awx_execution_environment"], "image": EE_IMAGE}
    assert objects["project"]["default_environment"] == ee["name"]
    assert {jt["execution_environment"] for jt in objects["job_templates"]} == {ee["name"]}


def test_project_syncs_download_nothing_from_galaxy(objects: dict[str, Any]) -> None:
    """AWX installs collections/requirements.yml on a project sync only for an organization
    with Galaxy credentials: none, so nothing newer than the tested bundle appears (which copy a
    job loads: tests/integration/test_execution_environment_introspect.py)."""
    assert objects["organization_galaxy_credentials"] == []


def test_jobs_get_the_store_credentials_where_the_collection_reads_them(
    objects: dict[str, Any],
) -> None:
    """The password reaches the job in its environment, never as an extra var (those show in
    the job's details) nor on a command line; AWX renders the injector, Ansible must not."""
    kind = objects["coordination_credential_type"]
    assert kind["name"] == SETTINGS["pflow_awx_coordination_credential_type"]
    assert kind["injectors"] == {
        "env": {
            "PFLOW_COORDINATION_USER": "{{ username }}",
            "PFLOW_COORDINATION_PASSWORD": "{{ password }}",
        }
    }
    fields = {field["id"]: field for field in kind["inputs"]["fields"]}
    assert fields["password"].get("secret") is True
    assert set(kind["inputs"]["required"]) == set(fields) == {"username", "password"}
    coordination = ROOT / "collection" / "plugins" / "module_utils" / "coordination.py"
    text = coordination.read_text()
    for name in kind["injectors"]["env"]:
        assert f'"{name}"' in text, f"{name}: not what module_utils/coordination.py reads"


def test_the_store_credential_is_created_once_and_never_overwritten() -> None:
    """A second run changes nothing, and a password rotated in AWX is never put back."""
    play = yaml.safe_load((ROOT / "awx" / "configure.yml").read_text())[0]
    [task] = [t for t in play["tasks"] if "awx.awx.credential" in t]
    args = task["awx.awx.credential"]
    assert args["update_secrets"] is False
    assert args["inputs"] == {
        "username": "{{ pflow_awx_coordination_user }}",
        "password": "{{ pflow_awx_coordination_password }}",
    }
    # The same variables as the CLI's, from the environment of the run.
    assert "PFLOW_COORDINATION_PASSWORD" in SETTINGS["pflow_awx_coordination_password"]


@pytest.mark.parametrize(
    ("image", "error"),
    [
        ("", "pflow_awx_ee_image must name the image"),
        ("registry.example.com/sre/pflow-ops-ee", "with a tag"),
        ("registry.example.com/sre/pflow-ops-ee:latest", "(not latest)"),
        ("registry.example.com/sre/pflow-ops-ee@sha256:1234", "or a digest"),
    ],
)
def test_the_execution_environment_image_is_required_and_pinned(
    tmp_path: Path, image: str, error: str
) -> None:
    assert error in _refusal(render(tmp_path, "-e", f"pflow_awx_ee_image={image}"))


def test_a_digest_pinned_image_on_a_registry_port_is_accepted(tmp_path: Path) -> None:
    image = "registry.example.com:5000/sre/pflow-ops-ee@sha256:" + "ab" * 32
    proc = render(tmp_path, "-e", f"pflow_awx_ee_image={image}")
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_local_is_imported_only_on_request(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    refused = render(
        tmp_path, "-e", '{"pflow_awx_environments": ["local", "prod"]}', project=project
    )
    assert "set pflow_awx_include_local: true" in _refusal(refused)
    proc = render(tmp_path, "-e", "pflow_awx_include_local=true", project=project)
    assert proc.returncode == 0, proc.stdout[-2000:]
    rendered = json.loads((tmp_path / "objects.json").read_text())
    assert "local" in [inv["environment"] for inv in rendered["inventories"]]


def test_an_environment_without_a_shared_store_is_refused(tmp_path: Path) -> None:
    """AWX runs each job in a fresh container: with the file store its budget starts empty and
    its lock is seen by nobody. The shipped example inventories name no store."""
    project = make_project(tmp_path, stores=False)
    message = _refusal(render(tmp_path, project=project))
    assert "prod: pflow_coordination_url is not set on" in message
    assert "the restart budget and the run lock hold for one job only" in message
    proc = render(tmp_path, "-e", "pflow_awx_require_shared_coordination=false", project=project)
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_only_fleet_diagnosis_is_sliced_and_no_workflow_runs_it(objects: dict[str, Any]) -> None:
    """Slices run in parallel (AWX lets them, whatever allow_simultaneous says) and their
    artifacts are merged key by key: slicing anything that may restart would pass the serial
    rollout and the run lock, and a sliced diagnosis would hide hosts from the gate."""
    templates = _templates(objects)
    sliced = {name: jt for name, jt in templates.items() if jt["job_slice_count"] != 1}
    expected = {
        f"{rb['id']} {rb['title']} (fleet diagnose)": count
        for rb in _runbooks()
        for rid, count in SETTINGS["pflow_awx_diagnose_slices"].items()
        if rb["id"] == rid
    }
    assert expected and {n: jt["job_slice_count"] for n, jt in sliced.items()} == expected
    for jt in sliced.values():
        assert (jt["job_type"], jt["extra_vars"]) == ("check", {"pflow_mode": "diagnose"})
    used = {
        node["unified_job_template"]["name"]
        for wf in objects["workflows"]
        for node in wf["workflow_nodes"]
    }
    assert used.isdisjoint(sliced)


@pytest.mark.parametrize("slices", ['{"RB-01": 1}', '{"RB-99": 4}'])
def test_slices_must_be_real_and_name_a_runbook(tmp_path: Path, slices: str) -> None:
    message = _refusal(render(tmp_path, "-e", f'{{"pflow_awx_diagnose_slices": {slices}}}'))
    assert "pflow_awx_diagnose_slices maps catalogue runbook ids to 2 or more" in message


def _suboptions(module: str, option: str) -> dict[str, Any]:
    text = (AWX_MODULES / f"{module}.py").read_text()
    doc = text.split("DOCUMENTATION = '''", 1)[1].split("'''", 1)[0]
    sub: dict[str, Any] = yaml.safe_load(doc)["options"][option]["suboptions"]
    return sub


def _undocumented(value: Any, spec: dict[str, Any], where: str) -> list[str]:
    if not isinstance(value, dict):
        return []
    problems = []
    for key, item in value.items():
        if key not in spec:
            problems.append(f"{where}.{key}")
        elif "suboptions" in spec[key]:
            items = item if isinstance(item, list) else [item]
            for sub in items:
                problems += _undocumented(sub, spec[key]["suboptions"], f"{where}.{key}")
    return problems


def test_workflow_nodes_use_only_documented_options(objects: dict[str, Any]) -> None:
    spec = _suboptions("workflow_job_template", "workflow_nodes")
    assert objects["workflows"]
    for wf in objects["workflows"]:
        for node in wf["workflow_nodes"]:
            assert _undocumented(node, spec, node["identifier"]) == []
    assert _undocumented({"identifer": "x"}, spec, "n") == ["n.identifer"]


def test_names_the_modules_look_up_are_unique(objects: dict[str, Any]) -> None:
    # awx.awx finds templates, and approval templates across the whole controller, by name.
    approvals = [
        node["unified_job_template"]["name"]
        for wf in objects["workflows"]
        for node in wf["workflow_nodes"]
        if node["unified_job_template"]["type"] == "workflow_approval"
    ]
    templates = [jt["name"] for jt in objects["job_templates"]]
    workflows = [wf["name"] for wf in objects["workflows"]]
    for names in (approvals, templates, workflows, templates + workflows + approvals):
        assert len(names) == len(set(names)), names


@pytest.mark.parametrize("rb", _runbooks(), ids=lambda rb: rb["id"])
def test_production_workflow_diagnoses_then_waits_for_approval(
    objects: dict[str, Any], rb: dict[str, Any]
) -> None:
    templates = _templates(objects)
    [wf] = [w for w in objects["workflows"] if w["name"].startswith(f"{rb['id']} ")]
    assert wf["inventory"] == "pflow-ops prod"
    assert wf["extra_vars"] == {"pflow_confirm_env": "prod"}
    nodes = {n["identifier"]: n for n in wf["workflow_nodes"]}
    edges = {
        (ident, kind, target["identifier"])
        for ident, node in nodes.items()
        for kind, targets in node.get("related", {}).items()
        for target in targets
    }
    # Healthy: the gate succeeds and has no success path, so the workflow stops there.
    assert edges == {
        ("diagnose", "success_nodes", "healthy_gate"),
        ("healthy_gate", "failure_nodes", "approve"),
        ("approve", "success_nodes", "recover"),
    }
    approval = nodes["approve"]["unified_job_template"]
    assert approval["type"] == "workflow_approval"
    assert 0 < approval["timeout"] <= 86400
    diagnose = templates[nodes["diagnose"]["unified_job_template"]["name"]]
    recover = templates[nodes["recover"]["unified_job_template"]["name"]]
    assert diagnose["job_type"] == "check" and diagnose["extra_vars"]["pflow_mode"] == "diagnose"
    assert recover["extra_vars"]["pflow_mode"] == "recover"
    assert nodes["recover"]["job_type"] == "run"
    gate = templates[nodes["healthy_gate"]["unified_job_template"]["name"]]
    assert gate["playbook"] == "awx/recovery_gate.yml"


@pytest.mark.parametrize("rb", _runbooks(), ids=lambda rb: rb["id"])
def test_surveys_never_widen_the_restart_budget_and_ask_a_reason_to_override(
    objects: dict[str, Any], rb: dict[str, Any]
) -> None:
    """Survey answers are extra vars: a budget question would be refused by the restart_budget
    action on every job, and an override flag without a reason is no override at all."""
    templates = _templates(objects)
    recover = templates[f"{rb['id']} {rb['title']}"]["survey_spec"]["spec"]
    diagnose = templates[f"{rb['id']} {rb['title']} (diagnose)"]["survey_spec"]["spec"]
    for question in recover + diagnose:
        assert "restart_budget_max" not in question["variable"]
        assert "restart_budget_window" not in question["variable"]
        assert question["variable"] != "pflow_restart_budget_override"
    [override] = [q for q in recover if "override" in q["variable"]]
    assert override["variable"] == "pflow_restart_budget_override_reason"
    assert (override["type"], override["required"], override["default"]) == ("text", False, "")
    assert not [q for q in diagnose if "override" in q["variable"]]


@pytest.mark.parametrize("rb", _runbooks(), ids=lambda rb: rb["id"])
def test_recover_templates_take_the_alert_the_eda_controller_rulebook_passes(
    objects: dict[str, Any], rb: dict[str, Any]
) -> None:
    """The controller rulebook launches the recover template with pflow_alert_name and
    pflow_alert_fingerprint; AWX drops (or refuses) extra vars no survey question declares, so
    both are questions, bounded like the playbook's alert_input guard bounds them."""
    recover = _templates(objects)[f"{rb['id']} {rb['title']}"]["survey_spec"]["spec"]
    questions = {q["variable"]: q for q in recover}
    assert (questions["pflow_alert_name"]["max"], questions["pflow_alert_fingerprint"]["max"]) == (
        128,
        32,
    )
    for var in ("pflow_alert_name", "pflow_alert_fingerprint"):
        assert (questions[var]["required"], questions[var]["default"]) == (False, "")
    # Issue 16: the group key and incident annotation the rulebook passes, and the operator's
    # incident key, bounded as alert_input bounds them (event_input.py).
    bounds = {"pflow_alert_group_key": 2048, "pflow_alert_incident": 128, "pflow_incident_key": 128}
    for var, most in bounds.items():
        assert (questions[var]["type"], questions[var]["max"]) == ("text", most)
        assert (questions[var]["required"], questions[var]["default"]) == (False, "")
    extra = eda._extra_vars(eda.Options(controller=True))
    assert set(extra) - {"pflow_mode"} <= set(questions)

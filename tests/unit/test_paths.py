"""Where the launcher finds its project, its files and the collection: a checkout, or an
installed wheel plus the installed collection (``--project`` / ``$PFLOW_OPS_PROJECT``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pflow_ops import launch, paths


def _checkout(root: Path) -> Path:
    (root / "collection").mkdir(parents=True)
    (root / "collection" / "galaxy.yml").write_text("namespace: pivotal\n")
    (root / "catalogue.yml").write_text("runbooks: []\n")
    (root / "pflow_ops").mkdir()
    return root


def _installed(root: Path) -> Path:
    coll = root / "ansible_collections" / "pivotal" / "flow_ops"
    (coll / "plugins").mkdir(parents=True)
    return coll


def test_the_project_is_the_override_first(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path / "checkout")
    found = paths.find_project("~/elsewhere", checkout / "pflow_ops", tmp_path)
    assert found == Path("~/elsewhere").expanduser().resolve()


def test_without_override_the_project_is_the_checkout_holding_the_package(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path / "checkout")
    assert paths.find_project(None, checkout / "pflow_ops", tmp_path / "cwd") == checkout


def test_an_installed_package_without_override_uses_the_current_directory(tmp_path: Path) -> None:
    site = tmp_path / "venv" / "site-packages"
    (site / "pflow_ops").mkdir(parents=True)
    assert paths.find_project(None, site / "pflow_ops", tmp_path / "cwd") == tmp_path / "cwd"


def test_a_project_file_is_the_project_s_own_when_it_has_one(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "catalogue.yml").write_text("own")
    picked = paths.pick_file(tmp_path / "project", tmp_path / "packaged", "catalogue.yml")
    assert picked == tmp_path / "project" / "catalogue.yml"


def test_a_project_file_it_lacks_is_the_wheel_s_copy(tmp_path: Path) -> None:
    picked = paths.pick_file(tmp_path / "project", tmp_path / "packaged", "ansible.cfg")
    assert picked == tmp_path / "packaged" / "ansible.cfg"


def test_the_wheel_carries_the_catalogue_and_ansible_cfg_of_the_checkout() -> None:
    for name in ("catalogue.yml", "ansible.cfg"):
        packaged = paths.PACKAGED / name
        assert packaged.read_bytes() == (paths.PACKAGE_DIR.parent / name).read_bytes()


def test_collection_roots_follow_ansible_collections_path_then_sys_path(tmp_path: Path) -> None:
    env = {"ANSIBLE_COLLECTIONS_PATH": "/a:~/b:"}
    roots = paths.collection_roots(tmp_path, env, ["/site"])
    assert roots == [Path("/a"), Path("~/b").expanduser(), Path("/site")]


def test_collection_roots_read_the_old_variable_name_too(tmp_path: Path) -> None:
    roots = paths.collection_roots(tmp_path, {"ANSIBLE_COLLECTIONS_PATHS": "/old"}, [])
    assert roots == [Path("/old")]


def test_collection_roots_default_to_the_project_s_then_ansible_s(tmp_path: Path) -> None:
    roots = paths.collection_roots(tmp_path, {}, ["", "/site"])
    assert roots == [
        tmp_path / "collections",
        Path("~/.ansible/collections").expanduser(),
        Path("/usr/share/ansible/collections"),
        Path("/site"),
    ]


def test_a_checkout_s_collection_source_wins_over_an_installed_copy(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path / "checkout")
    _installed(tmp_path / "installed")
    found = paths.find_collection(checkout, [tmp_path / "installed"])
    assert found == checkout / "collection"


def test_without_a_checkout_the_first_installed_collection_is_used(tmp_path: Path) -> None:
    first = _installed(tmp_path / "first")
    _installed(tmp_path / "second")
    roots = [tmp_path / "empty", tmp_path / "first", tmp_path / "second"]
    assert paths.find_collection(tmp_path / "project", roots) == first


def test_no_collection_anywhere_is_none(tmp_path: Path) -> None:
    assert paths.find_collection(tmp_path / "project", [tmp_path / "nothing"]) is None


def test_no_collection_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.PROJECT_ENV, str(tmp_path))
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(tmp_path / "none"))
    monkeypatch.setattr(paths.sys, "path", [])
    with pytest.raises(paths.CollectionNotFound, match="ansible-galaxy collection install"):
        paths.collection_root()


def test_a_playbook_the_project_has_runs_from_its_file(tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "rb-01-backend-down.yml").write_text("[]")
    ref = paths.playbook_ref(tmp_path, "playbooks/rb-01-backend-down.yml")
    assert ref == str(tmp_path / "playbooks" / "rb-01-backend-down.yml")


def test_a_playbook_the_project_lacks_runs_by_fqcn(tmp_path: Path) -> None:
    ref = paths.playbook_ref(tmp_path, "playbooks/rb-01-backend-down.yml")
    assert ref == "pivotal.flow_ops.rb_01_backend_down"


def test_every_catalogue_playbook_has_its_collection_playbook() -> None:
    from pflow_ops import catalogue

    cat = catalogue.load()
    for book in [rb.playbook for rb in cat.runbooks] + [j.playbook for j in cat.maintenance]:
        name = paths.playbook_name(book)
        assert (paths.collection_root() / "playbooks" / f"{name}.yml").is_file(), book
        entry = (paths.project_root() / book).read_text(encoding="utf-8")
        assert f"import_playbook: pivotal.flow_ops.{name}" in entry


def test_a_playbook_s_plays_come_from_the_collection_without_the_project_s_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection = paths.collection_root()
    monkeypatch.setenv(paths.PROJECT_ENV, str(tmp_path))
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(tmp_path / "collections"))
    (tmp_path / "collections" / "ansible_collections" / "pivotal").mkdir(parents=True)
    (tmp_path / "collections" / "ansible_collections" / "pivotal" / "flow_ops").symlink_to(
        collection
    )
    found = paths.playbook_file("playbooks/rb-01-backend-down.yml")
    assert found.resolve() == (collection / "playbooks" / "rb_01_backend_down.yml").resolve()
    assert paths.playbook("playbooks/rb-01-backend-down.yml") == (
        "pivotal.flow_ops.rb_01_backend_down"
    )


@pytest.mark.parametrize(
    ("argv", "project"),
    [
        (["list"], None),
        (["--project", "/p", "list"], "/p"),
        (["recover", "rb-01", "--project=/q"], "/q"),
        (["--project", "/p", "list", "--project", "/r"], "/r"),
        (["list", "--", "--project", "/p"], None),
        (["list", "--project"], None),
    ],
)
def test_the_console_script_reads_project_before_the_cli_loads(
    argv: list[str], project: str | None
) -> None:
    assert launch.project_from_argv(argv) == project

"""Where an incident record lives and how an update races, branch by branch: the backend
choice, the etcd key names, the record check shared by files and etcd values, the
compare-and-swap decision, and the etcd update loop over an in-memory KV (a conflict retried,
contention bounded, a corrupt value kept aside in the write that starts afresh). The real
etcd runs in tests/integration/test_incident_store.py; the file store in
tests/unit/test_incident_record.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ansible_collections.pivotal.flow_ops.plugins.module_utils import coordination as co
from ansible_collections.pivotal.flow_ops.plugins.module_utils import incident_store as st

SHA = "a" * 64


def test_the_file_store_is_the_default_and_etcd_only_when_named() -> None:
    assert st.backend(None) == st.FILE
    assert st.backend(co.parse({}, environ={})) == st.FILE
    assert st.backend(co.parse({co.URL_VAR: "file"}, environ={})) == st.FILE
    assert st.backend(co.parse({co.URL_VAR: "etcd://127.0.0.1:2379"}, environ={})) == st.ETCD


def test_the_prefix_is_the_coordination_stores() -> None:
    assert st.PREFIX == co.PREFIX


def test_record_keys_are_per_environment_and_checked() -> None:
    assert st.record_key("prod", SHA) == "/pflow-ops/incidents/prod/" + SHA
    assert st.corrupt_key("prod", SHA, 1234.9) == f"/pflow-ops/incidents-corrupt/prod/{SHA}-1234"
    for env in ("", "../x", "a/b", "x" * 129, None):
        with pytest.raises(st.StoreError):
            st.record_key(env, SHA)
    with pytest.raises(ValueError):
        st.record_key("prod", "../../budget")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"key": "k", "handles": {}}', ""),
        (b'{"key": "k", "handles": {}}', ""),
        ('{"key": "k", "handles": ', "Expecting value"),
        ('["a list"]', "not an incident record"),
        ('{"key": "k"}', "not an incident record"),
        ('{"key": "k", "handles": []}', "not an incident record"),
        (b"\xff\xfe", "codec"),
        ("x" * (st.MAX_BYTES + 1), "larger than"),
    ],
)
def test_a_stored_value_is_a_record_or_a_problem(raw: Any, problem: str) -> None:
    record, why = st.parse_record(raw)
    if problem:
        assert record is None and problem in why
    else:
        assert record == {"key": "k", "handles": {}} and why == ""


def test_the_compare_and_swap_decision() -> None:
    assert st.after_write(True, 1) == st.WRITTEN
    assert st.after_write(True, st.TXN_ATTEMPTS) == st.WRITTEN
    assert st.after_write(False, 1) == st.RETRY
    assert st.after_write(False, st.TXN_ATTEMPTS - 1) == st.RETRY
    assert st.after_write(False, st.TXN_ATTEMPTS) == st.CONTENDED
    assert st.after_write(False, 3, attempts=3) == st.CONTENDED


class FakeKV:
    """The EtcdStore calls incident_store uses, over a dict with etcd's revisions; ``rivals``
    writes by another controller land between a read and the next write."""

    def __init__(self, rivals: int = 0) -> None:
        self.data: dict[str, tuple[str, int]] = {}
        self.revision = 0
        self.rivals = rivals
        self.writes = 0

    def name(self) -> str:
        return "etcd://kv:2379"

    def put(self, key: str, value: str) -> None:
        self.revision += 1
        self.data[key] = (value, self.revision)

    def kv_get(self, key: str) -> tuple[str | None, int]:
        value, rev = self.data.get(key, (None, 0))
        return value, rev

    def kv_put_if(self, key: str, value: str, revision: int, also: Any = ()) -> bool:
        if self.rivals:
            self.rivals -= 1
            self.put(key, json.dumps({"key": "k", "handles": {}, "runs": ["rival"]}))
        if self.data.get(key, (None, 0))[1] != revision:
            return False
        for name, text in ((key, value), *also):
            self.put(name, text)
        self.writes += 1
        return True

    def kv_list(self, prefix: str) -> list[tuple[str, str]]:
        return sorted((k, v) for k, (v, _r) in self.data.items() if k.startswith(prefix))


def _add_run(run: str) -> Any:
    def change(record: dict[str, Any] | None) -> dict[str, Any]:
        record = record or {"key": "k", "handles": {}, "runs": []}
        return dict(record, runs=[*record.get("runs", []), run])

    return change


def test_an_update_that_lost_the_race_reads_again_and_keeps_the_rivals_write() -> None:
    kv = FakeKV(rivals=2)
    records = st.EtcdRecords(kv, "prod")
    got = records.update(SHA, _add_run("r1"))
    assert got["record"]["runs"] == ["rival", "r1"] and got["exists"] is True
    assert json.loads(kv.data[st.record_key("prod", SHA)][0])["runs"] == ["rival", "r1"]
    assert got["path"] == "etcd://kv:2379/pflow-ops/incidents/prod/" + SHA


def test_an_update_still_contended_after_the_bound_fails_with_one_line(monkeypatch: Any) -> None:
    monkeypatch.setattr(st.time, "sleep", lambda _s: None)
    kv = FakeKV(rivals=st.TXN_ATTEMPTS)
    with pytest.raises(st.StoreError, match="still contended after 50 attempts: not updated"):
        st.EtcdRecords(kv, "prod").update(SHA, _add_run("r1"))
    assert kv.writes == 0


def test_a_get_writes_nothing() -> None:
    kv = FakeKV()
    got = st.EtcdRecords(kv, "prod").update(SHA, lambda record: None)
    assert got["record"] is None and got["exists"] is False and kv.data == {}


def test_a_corrupt_value_is_kept_aside_in_the_write_that_starts_afresh() -> None:
    kv = FakeKV()
    key = st.record_key("prod", SHA)
    kv.put(key, '{"key": "k", "handles": ')
    records = st.EtcdRecords(kv, "prod")
    shown, problem = records.show(SHA)
    assert shown is None and "Expecting value" in problem
    got = records.update(SHA, _add_run("r2"))
    assert got["exists"] is False and got["record"]["runs"] == ["r2"]
    assert (
        "could not be read" in got["warnings"][0]
        and "/pflow-ops/incidents-corrupt/prod/" in got["warnings"][0]
    )
    kept = [
        v for k, (v, _r) in kv.data.items() if k.startswith("/pflow-ops/incidents-corrupt/prod/")
    ]
    assert kept == ['{"key": "k", "handles": ']
    assert [r["runs"] for r in records.list()] == [["r2"]]


def test_the_list_skips_what_is_not_a_record_newest_first() -> None:
    kv = FakeKV()
    kv.put(
        st.record_key("prod", "b" * 64),
        json.dumps({"key": "b", "handles": {}, "updated": "2026-01-02"}),
    )
    kv.put(
        st.record_key("prod", "c" * 64),
        json.dumps({"key": "c", "handles": {}, "updated": "2026-01-03"}),
    )
    kv.put(st.record_key("prod", SHA), "not json")
    kv.put(st.record_key("staging", "d" * 64), json.dumps({"key": "d", "handles": {}}))
    assert [r["key"] for r in st.EtcdRecords(kv, "prod").list()] == ["c", "b"]


def test_open_records_never_falls_back(tmp_path: Any) -> None:
    opened: list[Any] = []

    def open_store(settings: Any, home: str) -> FakeKV:
        opened.append((settings.name(), home))
        return FakeKV()

    file_records = st.open_records(co.parse({}, environ={}), str(tmp_path), "prod", open_store)
    assert isinstance(file_records, st.FileRecords) and opened == []
    etcd_records = st.open_records(
        co.parse({co.URL_VAR: "etcd://h:1"}, environ={}), str(tmp_path), "prod", open_store
    )
    assert isinstance(etcd_records, st.EtcdRecords) and opened == [("etcd://h:1", str(tmp_path))]

    def unreachable(settings: Any, home: str) -> Any:
        raise co.Unavailable(co.unavailable_line(settings, "[Errno 111] Connection refused"))

    with pytest.raises(co.Unavailable, match=r"^coordination store etcd://h:1 unreachable"):
        st.open_records(
            co.parse({co.URL_VAR: "etcd://h:1"}, environ={}), str(tmp_path), "prod", unreachable
        )
    assert not (tmp_path / "incidents").exists()


def test_the_action_plugin_reads_the_store_from_the_inventory_raw(tmp_path: Any) -> None:
    from ansible_collections.pivotal.flow_ops.plugins.action import incident_record

    home = str(tmp_path)
    assert isinstance(incident_record.records_for(home, {}), st.FileRecords)
    named = {co.URL_VAR: "etcd://127.0.0.1:1", "pflow_env": "prod"}
    records = incident_record.records_for(home, named)  # no request until the first update
    assert isinstance(records, st.EtcdRecords) and records.env == "prod"
    assert incident_record.records_for(home, {co.URL_VAR: "etcd://h:1"}).env == "default"
    with pytest.raises(co.CoordinationError, match="is a template"):
        incident_record.records_for(home, {co.URL_VAR: "{{ lookup('env', 'X') }}"})
    with pytest.raises(st.StoreError, match="environment"):
        incident_record.records_for(home, {co.URL_VAR: "etcd://h:1", "pflow_env": "{{ x }}"})

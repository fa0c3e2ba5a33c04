"""supervisor_program and supervisor_program_info against a real supervisord (the one the
project's venv ships)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.plugins import load_plugin

ROOT = Path(__file__).resolve().parents[2]
SUPERVISORD = Path(sys.executable).with_name("supervisord")


sp = load_plugin("supervisor_program")
spi = load_plugin("supervisor_program_info")
rpc = spi.read_program.__globals__  # module_utils/supervisor_rpc, as the modules import it


STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1000)"
CONF = """
[unix_http_server]
file={tmp}/supervisor.sock

[inet_http_server]
port=127.0.0.1:{port}
username=ops
password=s3cret

[supervisord]
logfile={tmp}/supervisord.log
pidfile={tmp}/supervisord.pid
childlogdir={tmp}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:sleeper]
command=sh -c 'echo line1; echo line2; exec sleep 1000'
autorestart=false
startsecs=1
stdout_logfile={tmp}/sleeper.log

[program:stubborn]
command={python} -c "{stubborn}"
autorestart=false
startsecs=0
stopwaitsecs=1

[program:broken]
command=/nonexistent/binary
autostart=false
autorestart=false
startretries=0

[program:web]
command={python} -u -m http.server --bind 127.0.0.1 {web_port}
autostart=false
autorestart=false
startsecs=0
redirect_stderr=true
stdout_logfile={tmp}/web.log

[program:flapper]
command=sh -c 'echo boom; exit 3'
autostart=false
autorestart=false
startsecs=1
startretries=0
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def supervisord(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("sv")
    port = free_port()
    conf = tmp / "supervisord.conf"
    web_port = free_port()
    conf.write_text(
        CONF.format(tmp=tmp, port=port, python=sys.executable, stubborn=STUBBORN, web_port=web_port)
    )
    proc = subprocess.Popen([str(SUPERVISORD), "-n", "-c", str(conf)], cwd=tmp)
    sock = tmp / "supervisor.sock"
    url = f"unix://{sock}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if sock.exists():
            res, _ = spi.read_program(params(url, "sleeper"))
            if res["reachable"] and res["program"]["state"] == "RUNNING":
                break
        time.sleep(0.1)
    else:
        proc.terminate()
        pytest.fail("supervisord did not come up")
    yield {"url": url, "http": f"http://127.0.0.1:{port}", "tmp": tmp, "web_port": web_port}
    proc.terminate()
    proc.wait(timeout=20)


def params(url: str, name: str, **kw: object) -> dict:
    base = {
        "server_url": url,
        "name": name,
        "username": None,
        "password": None,
        "log_lines": 50,
        "wait_timeout": 10.0,
        "gate_timeout": 10.0,
        "gate_interval": 0.1,
        "gate_probe_timeout": 1.0,
        "soak_seconds": 0.0,
        "soak_interval": 0.1,
    }
    base.update(kw)
    return base


def run(url: str, name: str, check_mode: bool = False, **kw: object) -> dict:
    """supervisor_program with a ``state``, supervisor_program_info without one."""
    if "state" in kw:
        result, warnings = sp.run_module(params(url, name, **kw), check_mode)
    else:
        result, warnings = spi.read_program(params(url, name, **kw))
    assert warnings == []
    return result


def test_info_reports_state_and_log_tail(supervisord: dict) -> None:
    res = run(supervisord["url"], "sleeper")
    prog = res["program"]
    assert res["changed"] is False and res["reachable"] is True
    assert prog["state"] == "RUNNING" and prog["name"] == "sleeper" and prog["group"] == "sleeper"
    assert isinstance(prog["pid"], int) and prog["uptime_s"] >= 0
    assert res["log_tail"][-2:] == ["line1", "line2"]
    assert run(supervisord["url"], "sleeper", log_lines=1)["log_tail"] == ["line2"]
    assert run(supervisord["url"], "sleeper", log_lines=0)["log_tail"] == []


def test_restarted_changes_pid_and_check_mode_does_nothing(supervisord: dict) -> None:
    url = supervisord["url"]
    pid = run(url, "sleeper")["program"]["pid"]
    check = run(url, "sleeper", check_mode=True, state="restarted")
    assert (
        check["changed"] is True
        and check["actions"] == ["stop", "start"]
        and check["program_after"] is None
    )
    assert run(url, "sleeper")["program"]["pid"] == pid
    res = run(url, "sleeper", state="restarted")
    assert res["changed"] is True and res["state_reached"] is True
    assert res["program"]["pid"] == pid
    assert res["program_after"]["state"] == "RUNNING" and res["program_after"]["pid"] != pid


def test_stopped_then_started_is_idempotent(supervisord: dict) -> None:
    url = supervisord["url"]
    check = run(url, "sleeper", check_mode=True, state="stopped")
    assert check["changed"] is True and run(url, "sleeper")["program"]["state"] == "RUNNING"
    res = run(url, "sleeper", state="stopped")
    assert res["changed"] is True and res["program_after"]["state"] == "STOPPED"
    assert res["program_after"]["pid"] is None and res["program_after"]["uptime_s"] is None
    assert run(url, "sleeper", state="stopped")["changed"] is False
    assert run(url, "sleeper", check_mode=True, state="started")["changed"] is True
    res = run(url, "sleeper", state="started")
    assert res["changed"] is True and res["program_after"]["state"] == "RUNNING"
    again = run(url, "sleeper", state="started")
    assert (
        again["changed"] is False
        and again["actions"] == []
        and again["program_after"] == again["program"]
    )


def test_restart_tolerates_a_program_that_ignores_sigterm(supervisord: dict) -> None:
    url = supervisord["url"]
    pid = run(url, "stubborn")["program"]["pid"]
    started = time.monotonic()
    res = run(url, "stubborn", state="restarted")
    assert res["state_reached"] is True and res["program_after"]["pid"] != pid
    assert time.monotonic() - started < 8  # stopwaitsecs=1, then SIGKILL


def test_restart_of_a_sigstopped_program_does_not_wait_for_sigkill(supervisord: dict) -> None:
    url = supervisord["url"]
    pid = run(url, "sleeper")["program"]["pid"]
    os.kill(pid, signal.SIGSTOP)  # how the sandbox simulates a hung backend; stopwaitsecs is 10 s
    started = time.monotonic()
    res = run(url, "sleeper", state="restarted")
    assert res["state_reached"] is True and res["program_after"]["pid"] != pid
    assert time.monotonic() - started < 5


def test_program_that_cannot_start_is_reported_not_failed(supervisord: dict) -> None:
    res = run(supervisord["url"], "broken", state="started", wait_timeout=5.0)
    assert res["changed"] is True and res["state_reached"] is False
    assert res["program_after"]["state"] == "STOPPED" and "NO_FILE" in res["msg"]
    res = run(supervisord["url"], "flapper", state="started", wait_timeout=5.0)
    assert res["state_reached"] is False and res["program_after"]["state"] == "FATAL"
    assert "did not reach RUNNING" in res["msg"] and "FATAL" in res["msg"]
    assert res["log_tail"] == []  # never ran before: no log yet is not an error


def test_unknown_program_lists_known_names(supervisord: dict) -> None:
    with pytest.raises(sp.ModuleFailure) as err:
        run(supervisord["url"], "nope")
    assert "'nope'" in err.value.msg and "sleeper" in err.value.msg and "stubborn" in err.value.msg


def test_http_with_credentials(supervisord: dict) -> None:
    res = run(supervisord["http"], "sleeper", username="ops", password="s3cret")
    assert res["program"]["state"] == "RUNNING"
    with pytest.raises(sp.ModuleFailure) as err:
        run(supervisord["http"], "sleeper", username="ops", password="wrong")
    assert "401" in err.value.msg


def test_unreachable_socket(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/missing.sock"
    res = run(url, "sleeper")
    assert res["reachable"] is False and res["program"] is None and "does not exist" in res["msg"]
    with pytest.raises(sp.ModuleFailure) as err:
        run(url, "sleeper", state="restarted")
    assert url in err.value.msg and err.value.result["reachable"] is False


def test_connection_refused(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a crashed supervisord leaves behind
    res = run(f"unix://{path}", "sleeper")
    assert res["reachable"] is False and "refused" in res["msg"]
    port = free_port()
    res = run(f"http://127.0.0.1:{port}", "sleeper")
    assert res["reachable"] is False and "refused" in res["msg"]


@pytest.mark.parametrize(
    ("state", "current", "actions"),
    [
        ("restarted", "RUNNING", ["stop", "start"]),
        ("restarted", "FATAL", ["start"]),
        ("restarted", "STOPPING", ["wait_stop", "start"]),
        ("started", "RUNNING", []),
        ("started", "STARTING", []),
        ("started", "BACKOFF", ["stop", "start"]),
        ("started", "EXITED", ["start"]),
        ("stopped", "RUNNING", ["stop"]),
        ("stopped", "BACKOFF", ["stop"]),
        ("stopped", "STOPPING", ["wait_stop"]),
        ("stopped", "FATAL", []),
    ],
)
def test_plan(state: str, current: str, actions: list[str]) -> None:
    assert sp.plan(state, current) == actions


def test_bad_parameters() -> None:
    for url in ("unix://relative.sock", "ftp://x", "localhost:9001"):
        with pytest.raises(sp.ModuleFailure):
            run(url, "sleeper")
    with pytest.raises(sp.ModuleFailure):
        run("unix:///tmp/x.sock", "sleeper", state="restarted", wait_timeout=0.0)
    for state in ({}, {"state": "restarted"}):
        with pytest.raises(sp.ModuleFailure, match="log_lines"):
            run("unix:///tmp/x.sock", "sleeper", log_lines=-1, **state)


def test_both_modules_raise_the_one_failure_type() -> None:
    """The info module and the action module share module_utils/supervisor_rpc: one failure type,
    one connection spec; the action module takes no ``info`` state any more."""
    assert spi.ModuleFailure is sp.ModuleFailure is rpc["ModuleFailure"]
    spec = rpc["connection_argument_spec"]()
    assert set(spec) == {"name", "server_url", "username", "password", "log_lines"}
    assert "state" not in spec


def test_restart_without_waiting_for_running_returns_once_spawned(supervisord: dict) -> None:
    """wait_running=false leaves the start check to the caller's health gate."""
    url = supervisord["url"]
    pid = run(url, "sleeper")["program"]["pid"]
    res = run(url, "sleeper", state="restarted", wait_running=False)
    after = res["program_after"]
    assert res["changed"] is True and res["state_reached"] is True
    assert after["state"] in ("STARTING", "RUNNING") and after["pid"] not in (None, pid)


def test_restart_gates_on_health_and_confirms_the_same_process(supervisord: dict) -> None:
    url = f"http://127.0.0.1:{supervisord['web_port']}/"
    res = run(supervisord["url"], "web", state="restarted", gate_url=url, soak_seconds=0.3)
    assert res["gate"]["passed"] is True and res["gate"]["gone"] is None
    assert res["soak"]["failures"] == 0 and res["soak"]["gone"] is None
    final = res["program_final"]
    assert final["state"] == "RUNNING" and final["pid"] == res["program_after"]["pid"]
    run(supervisord["url"], "web", state="stopped")


def test_gate_stops_at_once_on_a_process_that_dies(supervisord: dict) -> None:
    started = time.monotonic()
    res = run(
        supervisord["url"],
        "flapper",
        state="restarted",
        gate_url="http://127.0.0.1:9/",
        gate_timeout=30.0,
    )
    assert time.monotonic() - started < 10  # not the 30 s gate timeout
    assert res["gate"]["passed"] is False and "gone" in res["gate"]["gone"]
    assert res["program_final"]["state"] in ("BACKOFF", "FATAL", "EXITED")
    assert "exit status 3" in res["program_final"]["exit_reason"]
    assert res["log_since_start"][-1:] == ["boom"]


def test_a_start_without_an_http_gate_keeps_the_log_it_wrote(supervisord: dict) -> None:
    """RB-02 and RB-03 restart with no HTTP gate: a restart that does not hold is still
    explained by the lines the new process printed."""
    res = run(supervisord["url"], "flapper", state="restarted", wait_timeout=10.0)
    assert "gate" not in res
    assert "boom" in res["log_since_start"]


def test_exit_reason_names_the_signal(supervisord: dict) -> None:
    run(supervisord["url"], "sleeper", state="restarted")  # RUNNING after its startsecs
    pid = run(supervisord["url"], "sleeper")["program"]["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while run(supervisord["url"], "sleeper")["program"]["state"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    info = run(supervisord["url"], "sleeper")["program"]
    assert info["exitstatus"] == -1 and "terminated by SIGKILL" in info["exit_reason"]
    run(supervisord["url"], "sleeper", state="started")

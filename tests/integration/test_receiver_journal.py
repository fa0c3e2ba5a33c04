"""The run that did the work after a receiver crash is the one the journal records.

The receiver (a real ``pflow-ops serve`` process) is SIGKILLed while its run is in flight. The
run is a child in its own session, so it goes on, holding the run lock, and records its outcome
under the receipt the receiver gave it (``--receipt``). The restarted receiver requeues the
item, waits for the lock, finds that run by its receipt, and journals it as finished, with its
run id, instead of launching it again. The runs are a fake ``pflow-ops alert`` that behaves as
the real one does on disk (run record with the receipt, run lock, outcome before the lock is
released) and waits for the test's go, so nothing depends on timing.

Needs the core.py call site of ``worker.orphan_result`` (see the receiver's ``_work_one``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pflow_ops.receiver.worker import ORPHAN_DETAIL
from tests.integration.test_receiver import Receiver, firing

pytestmark = pytest.mark.integration

FAKE_ALERT_WITH_RECORD = """\
import json, os, sys, time
from pathlib import Path
from pflow_ops import runrecord
from pflow_ops.lock import RunLock
from pflow_ops.paths import runs_dir

args = sys.argv[1:]
receipt = args[args.index("--receipt") + 1]
run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-rb-01-" + os.urandom(2).hex()
run_dir = runs_dir() / run_id
runrecord.start(run_dir, {"run_id": run_id, "receipt": receipt, "env": "local"})
lock = RunLock("local", "backend", run_id)
lock.acquire()
with open(os.environ["FAKE_LOG"], "a") as fh:
    fh.write(json.dumps({"argv": args, "pid": os.getpid(), "run_id": run_id}) + "\\n")
go = Path(os.environ["FAKE_GO"])
while not go.exists():
    time.sleep(0.05)
runrecord.update(run_dir, outcome="recovered")
lock.release()
runrecord.update(run_dir, state="finished", exit_code=0)
try:
    print(json.dumps({"run_id": run_id, "outcome": "recovered", "changed": 1}), flush=True)
except BrokenPipeError:
    pass  # the receiver that launched it is gone
"""


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv("FAKE_GO", str(tmp_path / "go"))
    rec = Receiver(tmp_path)
    try:
        yield rec
    finally:
        if rec.proc is not None and rec.proc.poll() is None:
            rec.proc.kill()
            rec.proc.wait()
        for launch in rec.launches():  # fake runs orphaned by the SIGKILL'd receiver
            with contextlib.suppress(ProcessLookupError):
                os.kill(launch["pid"], signal.SIGKILL)


def _start(receiver: Receiver) -> None:
    fake = receiver.tmp / "fake_alert_with_record.py"
    fake.write_text(FAKE_ALERT_WITH_RECORD)
    # The last --launcher-cmd wins: this fake instead of the module's plain one.
    receiver.start("--launcher-cmd", f"{sys.executable} {fake}")


def _kill_mid_run(receiver: Receiver) -> tuple[str, dict[str, Any]]:
    """Queue one backend run, let it start, SIGKILL the receiver: (the rid, the launch)."""
    _start(receiver)
    assert receiver.post(firing("BackendServiceDown", "b0b0"))[0] == 200
    receiver.wait_for("the run to hold its lock", lambda: len(receiver.launches()) == 1)
    assert receiver.stop(signal.SIGKILL) == -signal.SIGKILL
    [rid] = [e["rid"] for e in receiver.journal() if e["event"] == "received"]
    [launch] = receiver.launches()
    assert launch["argv"][-4:-2] == ["--receipt", rid]
    return rid, launch


def test_the_orphaned_run_is_journaled_and_not_run_again(receiver: Receiver) -> None:
    rid, orphan = _kill_mid_run(receiver)
    _start(receiver)  # the orphan still runs and holds the lock
    receiver.wait_for(
        "the requeue", lambda: any(e["event"] == "requeued" for e in receiver.journal())
    )
    (receiver.tmp / "go").touch()
    receiver.wait_for("the orphan's finish", lambda: len(receiver.finished()) == 1)
    [done] = receiver.finished()
    assert done["rid"] == rid
    assert (done["run_id"], done["outcome"]) == (orphan["run_id"], "recovered")
    assert done["detail"] == ORPHAN_DETAIL
    assert receiver.launches() == [orphan]  # no second launch
    metrics = receiver.metrics()
    assert metrics['pflow_receiver_runs_total{outcome="recovered",runbook="RB-01"}'] == 1
    assert receiver.stop() == 0
    assert receiver.launches() == [orphan]


def test_an_orphan_that_died_too_is_run_again(receiver: Receiver) -> None:
    rid, orphan = _kill_mid_run(receiver)
    os.kill(orphan["pid"], signal.SIGKILL)  # the machine went down with both
    (receiver.tmp / "go").touch()
    _start(receiver)
    receiver.wait_for("the rerun", lambda: len(receiver.finished()) == 1)
    [done] = receiver.finished()
    [_, rerun] = receiver.launches()
    assert done["rid"] == rid and rerun["argv"][-4:-2] == ["--receipt", rid]
    assert (done["run_id"], done["outcome"]) == (rerun["run_id"], "recovered")
    assert done["detail"] != ORPHAN_DETAIL
    assert receiver.stop() == 0

"""Live progress on the terminal: one line per runbook step, from runner events."""

from __future__ import annotations

import sys
from typing import TextIO

from pflow_ops import console
from pflow_ops.catalogue import Runbook
from pflow_ops.report_model import Report
from pflow_ops.runner import Step

_MARK = {
    "ok": "ok",
    "changed": "CHANGED",
    "failed": "FAILED",
    "skipped": "skip",
    "unreachable": "UNREACHABLE",
    "ignored": "ignored",
}


class Progress:
    def __init__(self, runbook: Runbook, env: str, mode: str, check: bool, quiet: bool):
        self.runbook, self.env, self.mode, self.check = runbook, env, mode, check
        # With --output json stdout carries the JSON object only; progress then goes to a
        # terminal on stderr, or nowhere.
        self.stream: TextIO | None = (
            sys.stdout if not quiet else (sys.stderr if sys.stderr.isatty() else None)
        )

    def _print(self, text: str) -> None:
        if self.stream is None:
            return
        try:
            print(text, file=self.stream, flush=True)
        except BrokenPipeError:
            # The reader went away (`pflow-ops recover ... | head`): the run goes on to its
            # end and its report, without a live view.
            if self.stream is sys.stdout:
                console.silence_stdout()
            self.stream = None

    def start(self, run_id: str) -> None:
        how = f"{self.mode}{' --check' if self.check and self.mode != 'diagnose' else ''}"
        self._print(
            f"{self.runbook.id} {self.runbook.title} | env {self.env} | {how} | run {run_id}"
        )

    def step(self, step: Step) -> None:
        if step.status == "skipped":
            return
        detail = f"  ({step.message})" if step.message else ""
        self._print(
            f"  [{step.phase:<11}] {step.name} on {step.host}: "
            f"{_MARK.get(step.status, step.status)} {step.duration_s:.2f}s{detail}"
        )

    def summary(self, report: Report) -> None:
        self._print("")
        self._print(f"Outcome: {report.outcome.upper()}: {report.reason}")
        for f in report.findings:
            if f.bad:
                self._print(f"  finding  {f.status:<8} {f.check}: {f.detail}")
        for a in report.actions:
            self._print(f"  action   {a.action} {a.target}: {a.result}{a.change}")
        for v in report.verification:
            self._print(f"  verified {v.status:<8} {v.check}: {v.detail}")
        if report.escalation:
            for i, s in enumerate(report.escalation.next_steps, 1):
                self._print(f"  next {i}. {s}")
        self._print(f"Report: {report.md_path}  (pflow-ops report {report.run_id})")

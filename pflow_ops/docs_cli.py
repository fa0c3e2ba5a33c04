"""``pflow-ops docs build [--check]``: write or check the runbooks (:mod:`pflow_ops.docs`).

pflow-ops docs build            # write docs/runbooks/ from the automation
pflow-ops docs build --check    # write nothing; exit 1 naming each stale page (drift check)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pflow_ops import console
from pflow_ops.errors import OK, PflowError


class DocsDrift(PflowError):
    """A committed runbook page is not what the automation generates: exit 1."""

    label = "drift"


def add_docs_parser(p: argparse.ArgumentParser) -> None:
    """The ``docs`` command's actions (argparse only: cheap to import)."""
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = sub.add_parser(
        "build", help="generate docs/runbooks/ and docs/reference/ from the automation"
    )
    build.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a committed page differs from the generated one",
    )


def cmd_docs(args: argparse.Namespace) -> int:
    from pflow_ops import catalogue, docs
    from pflow_ops.paths import project_root

    root = project_root()
    pages = docs.build(catalogue.load())
    if args.check:
        stale = docs.stale(pages, root)
        if stale:
            raise DocsDrift(
                f"{', '.join(stale)} not what the automation generates: "
                "regenerate with `pflow-ops docs build`"
            )
        console.out(f"{len(pages)} generated pages are up to date")
        return OK
    for page in pages:
        path = root / page.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text(encoding="utf-8") != page.text:
            path.write_text(page.text, encoding="utf-8")
            console.out(f"wrote {page.path.as_posix()}")
    return OK


def add_review_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", default="30d", help="the period: 30d (default), 12h, 2w")
    p.add_argument(
        "--output",
        choices=["md", "json", "html"],
        default="md",
        help="md (default), json, or html (one self-contained page, the plot embedded)",
    )
    p.add_argument(
        "--save",
        metavar="DIR",
        help="also write DIR/review.json, review.md, review.html and review.png (embedded in both)",
    )


def cmd_review(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pflow_ops import catalogue, review, review_html, review_journal, review_md
    from pflow_ops.paths import runs_dir, state_home

    days = review.since_days(args.since)
    now = datetime.now(UTC)
    data = review.review(catalogue.load(), review.load_reports(runs_dir()), now, days)
    sources, records = review_journal.load(state_home() / "receiver")
    end = now.timestamp()
    data["receiver"] = review_journal.summarize(sources, records, end - days * 86400, end)
    png = b""
    if args.save or args.output == "html":
        from pflow_ops import review_plot

        png = review_plot.png_bytes(data)
    if args.save:
        out = Path(args.save)
        out.mkdir(parents=True, exist_ok=True)
        (out / "review.png").write_bytes(png)
        (out / "review.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        (out / "review.md").write_text(review_md.to_markdown(data, "review.png"), encoding="utf-8")
        (out / "review.html").write_text(review_html.to_html(data, png), encoding="utf-8")
    if args.output == "json":
        console.emit_json(data)
    elif args.output == "html":
        console.write(review_html.to_html(data, png))
    else:
        console.write(review_md.to_markdown(data))
    return OK

"""``pflow-ops eda rulebook``: print, write or check the EDA rulebooks (:mod:`pflow_ops.eda`).

pflow-ops eda rulebook                          # the ansible-rulebook CLI variant, on stdout
pflow-ops eda rulebook --controller --output collection/extensions/eda/rulebooks/...
pflow-ops eda rulebook --check                  # exit 1 when the committed file drifted
pflow-ops eda rulebook --env prod --output /etc/pflow-ops/eda/prod.yml
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pflow_ops import console
from pflow_ops.errors import OK, PflowError, UsageError

if TYPE_CHECKING:
    from pflow_ops.catalogue import Catalogue
    from pflow_ops.routing import Table


class RulebookDrift(PflowError):
    """The committed rulebook is not what the catalogue generates: exit 1."""

    label = "drift"


def add_eda_parser(p: argparse.ArgumentParser) -> None:
    """The ``eda`` command's actions (argparse only: cheap to import)."""
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    rb = sub.add_parser(
        "rulebook", help="the EDA rulebook generated from the catalogue and the routing table"
    )
    rb.add_argument(
        "--env",
        help="also route that environment's pflow_alert_aliases and pin pflow_confirm_env "
        "(default: the catalogue only, as the committed rulebooks)",
    )
    rb.add_argument(
        "--controller",
        action="store_true",
        help="the EDA controller variant: run_job_template (AWX job templates) "
        "instead of run_playbook",
    )
    rb.add_argument("--output", metavar="PATH", help="write the rulebook there (default: stdout)")
    rb.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when PATH (default: the committed rulebook) differs",
    )


def _table(env: str) -> tuple[Catalogue, Table]:
    """The catalogue and its routing table, with the environment's aliases when one is named."""
    from pflow_ops import catalogue, environments, inventory, routing

    cat = catalogue.load()
    aliases: dict[str, str] = {}
    if env:
        try:
            aliases = inventory.alert_aliases(environments.get(env).inventory)
        except ValueError as exc:
            raise UsageError(f"pflow_alert_aliases of env '{env}': {exc}") from None
    try:
        return cat, routing.table(cat, aliases)
    except routing.AliasError as exc:
        raise UsageError(f"alert routing for env '{env or '(catalogue)'}': {exc}") from None


def cmd_eda(args: argparse.Namespace) -> int:
    from pflow_ops import eda
    from pflow_ops.paths import project_root

    opts = eda.Options(controller=args.controller, env=args.env or "")
    if args.check and args.env and not args.output:
        raise UsageError(
            "--check with --env needs --output PATH: the committed rulebooks have no env"
        )
    cat, tbl = _table(opts.env)
    text = eda.render(cat, tbl, opts)
    if args.check:
        shown = args.output or str(eda.path_for(opts))
        path = Path(args.output) if args.output else project_root() / eda.path_for(opts)
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            flags = " --controller" if opts.controller else ""
            flags += f" --env {opts.env}" if opts.env else ""
            raise RulebookDrift(
                f"{shown} is not what the catalogue generates: "
                f"regenerate with `pflow-ops eda rulebook{flags} --output {shown}`"
            )
        console.out(f"{shown} is up to date")
        return OK
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        console.out(f"wrote {args.output}")
        return OK
    console.write(text)
    return OK

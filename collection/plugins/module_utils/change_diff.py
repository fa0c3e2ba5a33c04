# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pflow-ops team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible's ``--diff`` for a tuning module: the settings a run changed (or, in check mode, would
change), as ``name value`` lines the way a config file shows them, before and after."""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type  # pylint: disable=invalid-name


def settings_diff(actions, kind, results, where):
    """The diff of the ``kind`` actions whose result is one of ``results`` (made, or would be
    made); None when there is none, so that no empty diff is shown. ``where`` names the server
    in the diff's headers. Other actions (refused, failed, other kinds) are not settings changes."""
    changes = [a for a in actions if a.get("action") == kind and a.get("result") in results]
    if not changes:
        return None
    return {
        "before_header": "%s (before)" % where,
        "after_header": "%s (after)" % where,
        "before": "".join("%s %s\n" % (a["target"], a.get("before", "")) for a in changes),
        "after": "".join("%s %s\n" % (a["target"], a.get("after", "")) for a in changes),
    }

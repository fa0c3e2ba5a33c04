"""MkDocs hooks (mkdocs.yml ``hooks:``): the catalogue decides where the runbooks are published.

Each runbook page (``docs/runbooks/rb-01-backend-down.md``) is written at the path of its
``runbook_url`` (``<runbook_url_base>/rb-01`` -> ``runbooks/rb-01/index.html``), the URL every
alert's annotation links, and ``site_url`` is the catalogue's host: a change of
``runbook_url_base`` moves the pages with the alerts, with nothing to edit here or in mkdocs.yml.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pflow_ops import catalogue, docs


def runbook_paths(cat: catalogue.Catalogue) -> dict[str, str]:
    """Source page (under docs/) -> the directory its runbook_url names (under the site)."""
    out = {}
    for rb in cat.runbooks:
        if rb.runbook_url:
            out[f"runbooks/{docs.page_name(rb)}"] = urlsplit(rb.runbook_url).path.strip("/")
    return out


def site_url(cat: catalogue.Catalogue) -> str:
    urls = [urlsplit(rb.runbook_url) for rb in cat.runbooks if rb.runbook_url]
    return f"{urls[0].scheme}://{urls[0].netloc}/" if urls else ""


def on_config(config: Any) -> Any:
    url = site_url(catalogue.load())
    if url:
        config["site_url"] = url
    return config


def on_files(files: Any, config: Any) -> Any:
    paths = runbook_paths(catalogue.load())
    for file in files:
        if file.src_uri in paths:
            where = paths[file.src_uri]
            file.dest_uri = f"{where}/index.html"
            file.url = f"{where}/"
    return files

"""What `ansible-galaxy collection build` puts in the artifact Galaxy would receive: the licence
text (GPL-3.0-or-later, galaxy.yml's `license`), the changelog and the runtime metadata; and the
Galaxy metadata a search finds it by (one of Galaxy's category tags)."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "collection"
GALAXY = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())
# ansible-lint's galaxy[tags]: Galaxy files a collection under at least one of these.
GALAXY_CATEGORIES = {
    "application", "cloud", "database", "eda", "infrastructure", "linux", "monitoring",
    "networking", "security", "storage", "tools", "windows",
}  # fmt: skip


def test_the_built_artifact_carries_the_licence_changelog_and_runtime(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-galaxy")),
            "collection",
            "build",
            str(COLLECTION),
            "--output-path",
            str(tmp_path),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (artifact,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(artifact) as tar:
        names = set(tar.getnames())
        copying = tar.extractfile("COPYING")
        assert copying is not None
        text = copying.read().decode()
    assert {"COPYING", "changelogs/changelog.yaml", "meta/runtime.yml", "README.md"} <= names
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3, 29 June 2007" in text
    assert text == (COLLECTION / "COPYING").read_text()
    assert GALAXY["license"] == ["GPL-3.0-or-later"]


def test_galaxy_tags_name_a_galaxy_category_and_are_valid() -> None:
    tags = GALAXY["tags"]
    assert GALAXY_CATEGORIES & set(tags)
    assert len(tags) == len(set(tags)) <= 20  # Galaxy's limit
    assert all(t.isascii() and t.replace("_", "").isalnum() and t.islower() for t in tags)

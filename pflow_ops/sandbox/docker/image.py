"""The sandbox's base image: an almost empty root filesystem, imported locally (no registry).

Containers run the host's own Python, PostgreSQL and Redis binaries, bind-mounted read-only, so
the image only needs the directories those mounts land on and the usual symlinks of a merged /usr.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

IMAGE_REPOSITORY = "pflow-sandbox-base"
IMAGE_TAG = "1"
IMAGE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"

_DIRS = {
    "dev": 0o755,
    "etc": 0o755,
    "home": 0o755,
    "proc": 0o555,
    "root": 0o700,
    "run": 0o755,
    "sys": 0o555,
    "tmp": 0o1777,
    "usr": 0o755,
    "var": 0o755,
    "var/tmp": 0o1777,
    "work": 0o755,
}
_LINKS = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}
_FILES = {
    # Overridden by read-only bind mounts of the host's files, which know the service account.
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
}


def rootfs_tar() -> bytes:
    """A deterministic tar of the minimal root filesystem."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, mode in sorted(_DIRS.items()):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        for name, target in sorted(_LINKS.items()):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            tar.addfile(info)
        for name, text in sorted(_FILES.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ensure_image(client: Any) -> str:
    """Import the base image once per engine; returns its reference."""
    import docker.errors

    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        client.api.import_image_from_data(
            rootfs_tar(),
            repository=IMAGE_REPOSITORY,
            tag=IMAGE_TAG,
            changes=["WORKDIR /tmp", 'CMD ["/bin/sh"]'],
        )
    return IMAGE

"""Pipeline step "archive files": which .txt files an archive folder holds, as the build sees them.

An archive is a folder of .txt files, in subfolders or not:

    archive/2024/0301.txt   →  ArchiveFile(path, name="2024/0301.txt", size=18342,
                                           mtime_ns=1709251200000000000)

The listing is what a build chunks and reads (`retrieval.build`), what an index's fingerprint
and an update's comparison are made of (`retrieval.manifest`, `retrieval.segments`), and what
the bot's refresher watches. It is apart from the reading and cleaning (`retrieval.archive`) so
that opening an index to answer, which checks the fingerprint, does not load those.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One .txt file of an archive, listed once per build: for its chunks, size and fingerprint."""

    path: Path
    name: str  # relative to the archive folder, POSIX-style
    size: int  # 0 when the file cannot be looked at
    mtime_ns: int | None  # None when the file cannot be looked at


def list_archive(root: Path) -> list[ArchiveFile]:
    """Every .txt file under `root`, sorted by relative POSIX path."""
    files = []
    for path in root.rglob("*.txt"):
        name = path.relative_to(root).as_posix()
        try:
            stat = path.stat()
        except OSError:
            files.append(ArchiveFile(path, name, 0, None))
        else:
            files.append(ArchiveFile(path, name, stat.st_size, stat.st_mtime_ns))
    return sorted(files, key=lambda file: file.name)

"""On-disk cache of generated datasets: where it lives, when it is complete, how it is written.

A generated dataset is a folder ``root`` that is complete when its marker file (a JSON
object written last, e.g. ``.complete`` or ``manifest.json``) records the arguments it
was made with. `ensure` returns a complete ``root`` as it is; otherwise it runs the
caller's build function (which writes the files, the marker last) in a temporary sibling
folder and renames that into place (`build_atomically`):

* a killed or failed build never leaves anything under ``root``, only a hidden sibling
  ``.<root>.tmp-*`` that a later build deletes once it is an hour old;
* an outdated or half-written ``root`` is renamed aside (``.<root>.stale-*``) before it
  is deleted, so the name is never held by a half-deleted folder;
* concurrent builders (several training workers, say) all end with one complete copy:
  the first rename wins, and the others see its marker and drop their own copy.

No lock file is used: the rename is the only step that must be atomic.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

TMP_TAG = ".tmp-"
STALE_TAG = ".stale-"
# A temporary folder this old cannot belong to a live builder (a full build takes seconds
# to a minute or two), so it is the debris of a crashed one and may be deleted.
ABANDONED_AFTER_S = 3600.0
# Each failed rename means another builder touched ``root`` in between; a few retries
# are plenty, since every retry first checks whether that builder finished.
_RENAME_ATTEMPTS = 5


def default_cache_dir() -> Path:
    """Directory for generated data: ``$TFGAN_CACHE`` if set, else ``~/.cache/tfgan``."""
    env = os.environ.get("TFGAN_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "tfgan"


def read_marker(root: Path, marker: str) -> Optional[dict]:
    """The JSON object in ``root/marker``, or None if it is missing or unreadable."""
    try:
        return json.loads((Path(root) / marker).read_text())
    except (OSError, ValueError):
        return None


def is_complete(root: Path, marker: str, expected: dict) -> bool:
    """Whether ``root`` holds a finished build made with ``expected``.

    Args:
        root: The dataset folder.
        marker: File name of the marker inside ``root``.
        expected: What the build must have been made with, in JSON form (lists, not
            tuples). Every key must be in the marker with an equal value; the marker may
            hold more (a file list, say).

    Returns:
        True if the marker is readable and agrees with ``expected``.
    """
    found = read_marker(root, marker)
    return isinstance(found, dict) and all(
        k in found and found[k] == v for k, v in expected.items()
    )


def discard(root: Path) -> None:
    """Moves ``root`` out of the way, then deletes it (nothing if it is already gone).

    Renaming first makes the name free at once, even while the deletion is under way, and
    never leaves a half-deleted folder under the final name.
    """
    root = Path(root)
    aside = root.parent / f".{root.name}{STALE_TAG}{uuid.uuid4().hex}"
    try:
        os.replace(root, aside)
    except FileNotFoundError:
        return  # someone else already moved it
    shutil.rmtree(aside, ignore_errors=True)


def clean_abandoned(root: Path, older_than_s: float = ABANDONED_AFTER_S) -> None:
    """Deletes temporary and stale siblings of ``root`` older than ``older_than_s``."""
    root = Path(root)
    now = time.time()
    for tag in (TMP_TAG, STALE_TAG):
        for path in root.parent.glob(f".{root.name}{tag}*"):
            try:
                if now - path.stat().st_mtime > older_than_s:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


def ensure(
    root: Path,
    marker: str,
    expected: dict,
    build: Callable[[Path], None],
    *,
    guard: Optional[Callable[[Path], None]] = None,
) -> Path:
    """Returns ``root`` if it is complete for ``expected``; else builds it there first.

    Args:
        root: Final folder.
        marker: File name of the marker inside ``root``.
        expected: As for `is_complete`.
        build: As for `build_atomically`.
        guard: Called with ``root`` before a build, and before anything is written; it
            raises to stop the build (missing tools, a folder the caller did not write).

    Returns:
        ``root``.
    """
    root = Path(root)
    if is_complete(root, marker, expected):
        return root
    if guard is not None:
        guard(root)
    return build_atomically(root, marker, expected, build)


def build_atomically(
    root: Path, marker: str, expected: dict, build: Callable[[Path], None]
) -> Path:
    """Runs ``build`` in a temporary sibling of ``root`` and renames the result into place.

    Whatever is at ``root`` and is not a build matching ``expected`` (an outdated or
    half-written one) is replaced; callers refuse to replace folders they did not write
    before calling this.

    Args:
        root: Final folder.
        marker: File name of the marker inside ``root``.
        expected: As for `is_complete`; a builder that finds ``root`` complete after its
            own build drops its copy and returns ``root``.
        build: Called with the empty temporary folder; writes everything, the marker last.

    Returns:
        ``root``.

    Raises:
        RuntimeError: If ``root`` kept changing under every rename attempt.
        Any exception ``build`` raises, after its temporary folder is deleted.
    """
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    clean_abandoned(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}{TMP_TAG}", dir=root.parent))
    try:
        build(tmp)
        for _ in range(_RENAME_ATTEMPTS):
            if is_complete(root, marker, expected):
                return root  # another builder won the race; theirs is identical
            if root.exists():
                discard(root)  # incomplete leftover or other arguments
            try:
                os.rename(tmp, root)  # atomic; fails if root reappeared non-empty
                return root
            except OSError:
                continue
        raise RuntimeError(f"Could not move the generated dataset into place at {root}")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

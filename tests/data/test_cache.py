"""Tests for the on-disk dataset cache (tfgan.data.cache)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tfgan.data import cache, synthetic

MARKER = ".complete"
V1 = {"version": 1, "classes": ["a", "b"], "n": 2}
V2 = {**V1, "version": 2}
OLD = 1_000_000_000  # an mtime far beyond the abandonment age


class Builder:
    """A build function that writes one data file and then the marker, and counts calls."""

    def __init__(self, expected: dict, payload: str = "data"):
        self.expected, self.payload, self.calls = expected, payload, 0

    def __call__(self, tmp: Path) -> None:
        self.calls += 1
        (tmp / "a").mkdir()
        (tmp / "a" / "file.txt").write_text(self.payload)
        (tmp / MARKER).write_text(json.dumps(self.expected))


def _siblings(root: Path) -> list[str]:
    return sorted(p.name for p in root.parent.iterdir())


def test_finished_cache_is_reused_without_rebuilding(tmp_path):
    root = tmp_path / "ds"
    first = Builder(V1)
    assert cache.ensure(root, MARKER, V1, first) == root
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    again = Builder(V1)
    assert cache.ensure(root, MARKER, V1, again) == root
    assert (first.calls, again.calls) == (1, 0)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    assert _siblings(root) == ["ds"]


def test_other_version_in_marker_triggers_a_rebuild(tmp_path):
    root = tmp_path / "ds"
    cache.ensure(root, MARKER, V1, Builder(V1, payload="old"))
    (root / "a" / "leftover.txt").write_text("from v1")
    rebuild = Builder(V2, payload="new")
    assert cache.ensure(root, MARKER, V2, rebuild) == root
    assert rebuild.calls == 1
    assert json.loads((root / MARKER).read_text())["version"] == 2
    assert (root / "a" / "file.txt").read_text() == "new"
    assert not (root / "a" / "leftover.txt").exists(), "the old build must go as a whole"
    assert _siblings(root) == ["ds"], "the outdated copy must be deleted, not left aside"


@pytest.mark.parametrize("content", [None, "", "{not json", "[1, 2]", json.dumps({"n": 2})])
def test_missing_unreadable_or_partial_marker_is_incomplete(tmp_path, content):
    (tmp_path / "a").mkdir()
    if content is not None:
        (tmp_path / MARKER).write_text(content)
    assert not cache.is_complete(tmp_path, MARKER, V1)


def test_marker_may_hold_more_than_expected(tmp_path):
    # instruments' manifest.json adds the file list and package versions to the params.
    (tmp_path / MARKER).write_text(json.dumps({**V1, "files": [{"path": "a/x.wav"}]}))
    assert cache.is_complete(tmp_path, MARKER, V1)
    assert not cache.is_complete(tmp_path, MARKER, {**V1, "seed": 0})


def test_failed_build_leaves_nothing_and_keeps_the_old_build(tmp_path):
    root = tmp_path / "ds"
    cache.ensure(root, MARKER, V1, Builder(V1, payload="old"))

    def failing(tmp: Path) -> None:
        (tmp / "a").mkdir()
        (tmp / "a" / "file.txt").write_text("half")
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        cache.ensure(root, MARKER, V2, failing)
    # The previous build is replaced only once the new one is complete.
    assert cache.is_complete(root, MARKER, V1)
    assert (root / "a" / "file.txt").read_text() == "old"
    assert _siblings(root) == ["ds"]


def test_killed_build_leaves_no_folder_under_the_final_name(tmp_path):
    root = tmp_path / "ds"
    started = tmp_path / "started"
    child = textwrap.dedent(f"""
        import json, time
        from pathlib import Path
        from tfgan.data import cache

        def build(tmp):
            (tmp / "a").mkdir()
            (tmp / "a" / "file.txt").write_text("half")
            Path({str(started)!r}).touch()
            time.sleep(60)  # killed here, before the marker is written
            (tmp / {MARKER!r}).write_text(json.dumps({V1!r}))

        cache.ensure(Path({str(root)!r}), {MARKER!r}, {V1!r}, build)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert proc.poll() is None, "the child build exited early"
            assert time.monotonic() < deadline, "the child build never started"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    started.unlink()
    assert not root.exists()
    debris = [p for p in tmp_path.iterdir() if p.name.startswith(f".ds{cache.TMP_TAG}")]
    assert len(debris) == 1 and (debris[0] / "a" / "file.txt").exists()

    # The next build succeeds and, once the debris is an hour old, deletes it.
    os.utime(debris[0], (OLD, OLD))
    assert cache.ensure(root, MARKER, V1, Builder(V1)) == root
    assert cache.is_complete(root, MARKER, V1)
    assert _siblings(root) == ["ds"]


def test_clean_abandoned_spares_live_builders_and_other_names(tmp_path):
    root = tmp_path / "ds"
    old_tmp = tmp_path / f".ds{cache.TMP_TAG}crashed"
    old_stale = tmp_path / f".ds{cache.STALE_TAG}crashed"
    live_tmp = tmp_path / f".ds{cache.TMP_TAG}live"
    other = tmp_path / f".dsx{cache.TMP_TAG}crashed"  # another dataset's debris
    for path in (old_tmp, old_stale, live_tmp, other):
        path.mkdir()
    for path in (old_tmp, old_stale, other):
        os.utime(path, (OLD, OLD))
    cache.clean_abandoned(root)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live_tmp.name, other.name])


def test_losing_a_race_keeps_the_winners_build(tmp_path):
    root = tmp_path / "ds"

    def slow_loser(tmp: Path) -> None:
        # Another worker publishes a complete build while this one is still writing.
        (root.parent / "winner").mkdir()
        Builder(V1, payload="winner")(root.parent / "winner")
        os.rename(root.parent / "winner", root)
        Builder(V1, payload="loser")(tmp)

    assert cache.build_atomically(root, MARKER, V1, slow_loser) == root
    assert (root / "a" / "file.txt").read_text() == "winner"
    assert _siblings(root) == ["ds"], "the loser must drop its own copy"


def test_guard_runs_before_anything_is_written(tmp_path):
    root = tmp_path / "new" / "ds"
    built = Builder(V1)

    def refuse(path: Path) -> None:
        assert path == root
        raise FileExistsError("not ours")

    with pytest.raises(FileExistsError, match="not ours"):
        cache.ensure(root, MARKER, V1, built, guard=refuse)
    assert built.calls == 0 and not (tmp_path / "new").exists()
    # A complete folder is returned without asking the guard (no tools needed to reuse).
    cache.ensure(root, MARKER, V1, Builder(V1))
    assert cache.ensure(root, MARKER, V1, built, guard=refuse) == root


def test_default_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TFGAN_CACHE", str(tmp_path / "c"))
    assert cache.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TFGAN_CACHE")
    assert cache.default_cache_dir() == Path.home() / ".cache" / "tfgan"
    # Still importable where the classifier cache and training.quality import it.
    assert synthetic.default_cache_dir is cache.default_cache_dir

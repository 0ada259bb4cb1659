"""Atomic directory builds: all or nothing, manifest last, one build among concurrent processes."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from polydistill import atomic
from polydistill.atomic import (
    atomic_directory,
    directory_lock,
    read_manifest,
    write_manifest,
)


def _beside(destination: Path) -> list[str]:
    """Everything next to ``destination`` except the destination and its lock file."""
    return sorted(p.name for p in destination.parent.iterdir() if p != destination and not p.name.endswith(".lock"))


def test_a_build_appears_complete_with_its_manifest_written_last(tmp_path):
    destination = tmp_path / "model"
    with atomic_directory(destination, manifest={"format": 1}, manifest_name="done.json") as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".model.partial-")
        (staging / "weights.bin").write_bytes(b"\x01" * 10)
        assert not destination.exists()  # nothing is visible while the build runs
        assert not (staging / "done.json").exists()  # the manifest comes after the caller's files
    assert sorted(p.name for p in destination.iterdir()) == ["done.json", "weights.bin"]
    assert json.loads((destination / "done.json").read_text()) == {"format": 1}
    assert (destination / "done.json").stat().st_mtime_ns >= (destination / "weights.bin").stat().st_mtime_ns
    assert read_manifest(destination, "done.json") == {"format": 1}
    assert _beside(destination) == []


def test_an_exception_inside_the_build_leaves_the_destination_untouched(tmp_path):
    destination = tmp_path / "model"
    destination.mkdir()
    (destination / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_directory(destination, manifest={"format": 1}) as staging:
        (staging / "new.txt").write_text("new")
        raise KeyboardInterrupt
    assert sorted(p.name for p in destination.iterdir()) == ["old.txt"]
    assert (destination / "old.txt").read_text() == "old"
    assert _beside(destination) == []


def test_replacing_an_existing_directory_drops_its_old_files(tmp_path):
    destination = tmp_path / "model"
    destination.mkdir()
    (destination / "stale.txt").write_text("from the last build")
    (destination / "kept-name.txt").write_text("old")
    with atomic_directory(destination) as staging:
        (staging / "kept-name.txt").write_text("new")
    assert sorted(p.name for p in destination.iterdir()) == ["kept-name.txt"]
    assert (destination / "kept-name.txt").read_text() == "new"
    assert _beside(destination) == []  # the old directory was moved aside and deleted


def test_partial_directories_of_killed_builds_are_removed_and_others_are_not(tmp_path):
    destination = tmp_path / "model"
    killed = tmp_path / ".model.partial-0123"
    killed.mkdir()
    (killed / "half-written.bin").write_bytes(b"\x00" * 100)
    discarded = tmp_path / ".model.discarded-4567"
    discarded.mkdir()
    neighbour = tmp_path / ".model-v2.partial-89ab"  # another destination's build: not ours to remove
    neighbour.mkdir()
    with atomic_directory(destination) as staging:
        (staging / "a.txt").write_text("a")
    assert not killed.exists() and not discarded.exists()
    assert neighbour.is_dir()


def test_the_caller_may_write_a_manifest_describing_its_files_last(tmp_path):
    destination = tmp_path / "cache"
    with atomic_directory(destination, manifest_name="complete.json") as staging:
        (staging / "x.npy").write_bytes(b"123")
        write_manifest(staging, {"files": {"x.npy": 3}}, "complete.json")
    assert read_manifest(destination, "complete.json") == {"files": {"x.npy": 3}}
    (destination / "complete.json").write_text("{not json")
    assert read_manifest(destination, "complete.json") is None
    assert read_manifest(destination, "absent.json") is None


def _build_once(destination: str, log: str) -> None:
    """What each rank of a multi-process run does: check under the lock, else build."""
    target = Path(destination)
    with directory_lock(target):
        if read_manifest(target) is not None:
            return
        with atomic_directory(target, manifest={"built_by": multiprocessing.current_process().name}) as staging:
            with open(log, "a") as handle:
                handle.write("build\n")
            time.sleep(0.3)  # long enough for the other processes to be waiting on the lock
            (staging / "weights.bin").write_bytes(b"w")


def test_concurrent_processes_build_once_and_the_others_reuse_it(tmp_path):
    destination, log = tmp_path / "model", tmp_path / "builds.log"
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_build_once, args=(str(destination), str(log))) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    assert log.read_text() == "build\n"
    assert sorted(p.name for p in destination.iterdir()) == ["manifest.json", "weights.bin"]


def test_a_lock_held_elsewhere_times_out_with_a_clear_error(tmp_path):
    destination = tmp_path / "model"
    ready, release = multiprocessing.get_context("fork").Event(), multiprocessing.get_context("fork").Event()

    def hold() -> None:
        with directory_lock(destination):
            ready.set()
            release.wait(30)

    holder = multiprocessing.get_context("fork").Process(target=hold)
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(atomic.PolydistillError, match="waited 0 s"), atomic_directory(destination, lock_timeout=0.2):
            pass
        assert not destination.exists()
    finally:
        release.set()
        holder.join(30)

"""The working copy's clone: every way of copying gives the same bytes, and the first the
filesystem offers is used."""

from __future__ import annotations

import os

import pytest

from nrr_sync import clone
from nrr_sync.clone import clone_file


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "source.duckdb"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # not a multiple of any block
    return path


@pytest.mark.parametrize("copy", [clone._copy_file_range, clone._copy])
def test_each_fallback_copies_every_byte(tmp_path, source, copy):
    target = tmp_path / "target"
    with open(source, "rb") as src, open(target, "wb") as dst:
        copy(src.fileno(), dst.fileno())
    assert target.read_bytes() == source.read_bytes()


def test_clone_file_copies_the_content_and_says_how(tmp_path, source):
    target = tmp_path / "target"
    target.write_bytes(b"an older, longer working copy" * 200_000)
    method = clone_file(source, target)
    assert target.read_bytes() == source.read_bytes()
    assert method in ("clone", "copy_file_range", "copy")
    # Where the filesystem clones (btrfs, XFS), the clone is what was used.
    try:
        with open(source, "rb") as src, open(tmp_path / "probe", "wb") as dst:
            clone._clone(src.fileno(), dst.fileno())
        can_clone = True
    except OSError:
        can_clone = False
    assert (method == "clone") == can_clone


def test_a_filesystem_without_clones_falls_back_to_a_copy(tmp_path, source, monkeypatch):
    """Positive control for the fallback: the clone refused as on ext4 or tmpfs."""

    def refuse(src, dst):
        os.write(dst, b"half")  # a partial attempt must not survive
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(clone, "_clone", refuse)
    target = tmp_path / "target"
    assert clone_file(source, target) in ("copy_file_range", "copy")
    assert target.read_bytes() == source.read_bytes()


def test_a_real_error_is_not_hidden_by_the_fallbacks(tmp_path, source):
    with pytest.raises(IsADirectoryError):
        clone_file(source, tmp_path)


def test_an_empty_target_is_not_truncated(tmp_path, source, monkeypatch):
    """On ext4 a truncation to zero makes the close flush the whole copy; the new temporary
    file of a working copy is empty, so nothing truncates it. Positive control: a target
    with content is truncated, and holds the source's bytes only."""
    truncated = []
    real_ftruncate = os.ftruncate

    def spy(fd, length):
        truncated.append(length)
        return real_ftruncate(fd, length)

    monkeypatch.setattr(os, "ftruncate", spy)
    empty = tmp_path / "empty"
    empty.touch()
    clone_file(source, empty)
    assert truncated == []
    assert empty.read_bytes() == source.read_bytes()

    longer = tmp_path / "longer"
    longer.write_bytes(b"x" * (4 * 1024 * 1024))
    clone_file(source, longer)
    assert truncated == [0]
    assert longer.read_bytes() == source.read_bytes()

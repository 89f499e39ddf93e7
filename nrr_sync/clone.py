"""Copying the published file into the working copy as cheaply as the filesystem allows.

Every run starts from a copy of the published file; at a million invoices a plain copy
of its 2.4 GB takes seconds. A copy-on-write clone (``FICLONE``: btrfs, XFS with reflink,
bcachefs, ZFS 2.2+) shares the blocks and takes no time whatever the size
(benchmarks/working_copy.py: under a millisecond against 2.6 s for 1 GiB on XFS);
``copy_file_range`` copies inside the kernel, and server-side on NFS 4.2 and SMB; a
plain copy works everywhere else.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil

FICLONE = 0x40049409  # _IOW(0x94, 9, int) from <linux/fs.h>
# Errors that mean "this filesystem (pair) cannot do it this way", not "the copy failed".
_NOT_SUPPORTED = {
    errno.EBADF,
    errno.EINVAL,
    errno.ENOSYS,
    errno.ENOTTY,
    errno.EOPNOTSUPP,
    errno.EXDEV,
    errno.EPERM,
}
_CHUNK = 1 << 30  # bytes per copy_file_range call


def clone_file(source: str | os.PathLike, target: str | os.PathLike) -> str:
    """Make ``target`` a copy of ``source``'s content; returns how: "clone",
    "copy_file_range" or "copy". Like ``shutil.copyfile``, copies content only."""
    # not open(target, "wb"): that truncates even an empty file (see _empty)
    with (
        open(source, "rb") as src,
        open(os.open(target, os.O_WRONLY | os.O_CREAT, 0o666), "wb") as dst,
    ):
        _empty(dst.fileno())
        for method, copy in (
            ("clone", _clone),
            ("copy_file_range", _copy_file_range),
            ("copy", _copy),
        ):
            try:
                copy(src.fileno(), dst.fileno())
                return method
            except OSError as error:
                if error.errno not in _NOT_SUPPORTED or method == "copy":
                    raise
                _empty(dst.fileno())  # start over: a partial attempt may have written some
                src.seek(0)
    raise AssertionError("unreachable")


def _empty(fd: int) -> None:
    """Truncate ``fd`` to nothing, but only when it holds something: on ext4 a truncation
    to zero makes the close write the whole new content out before it returns
    (``auto_da_alloc``), 0.3 s for a working copy of 1.1 GB, where the publish's fsync
    writes it anyway. A new temporary file is empty already."""
    if os.fstat(fd).st_size:
        os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)


def _clone(src: int, dst: int) -> None:
    fcntl.ioctl(dst, FICLONE, src)


def _copy_file_range(src: int, dst: int) -> None:
    if not hasattr(os, "copy_file_range"):
        raise OSError(errno.ENOSYS, "copy_file_range is not available")
    size = os.fstat(src).st_size
    copied = 0
    while copied < size:
        n = os.copy_file_range(src, dst, min(_CHUNK, size - copied), copied, copied)
        if n == 0:  # the file shrank while copying; a reader lock prevents that
            break
        copied += n


def _copy(src: int, dst: int) -> None:
    with open(src, "rb", closefd=False) as reader, open(dst, "wb", closefd=False) as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)

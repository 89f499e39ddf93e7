"""The working copy: time to copy the published file with each method the filesystem offers.

Writes a file of ``--mib`` MiB in ``--dir`` (put it on the filesystem under test), then
times ``clone_file`` (a copy-on-write clone where the filesystem offers one, else
``shutil.copyfile``) and, side by side, ``shutil.copyfile`` and ``os.copy_file_range``,
the best of ``--repeat`` turns each, wall time including an fsync of the copy.

    python benchmarks/working_copy.py --dir /mnt/xfs --mib 1024
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    arguments = common.parser(__doc__.splitlines()[0])
    arguments.add_argument("--dir", type=Path, required=True)
    arguments.add_argument("--mib", type=int, default=1024)
    arguments.add_argument("--repeat", type=int, default=3)
    args = arguments.parse_args(argv)
    if args.quick:
        args.mib, args.repeat = min(args.mib, 8), 1

    from nrr_sync.clone import clone_file

    print(common.header("working copy"), flush=True)
    source = args.dir / "published.duckdb"
    block = os.urandom(1 << 20)
    with open(source, "wb") as stream:
        for _ in range(args.mib):
            stream.write(block)
        os.fsync(stream.fileno())
    results: dict = {"mib": args.mib, "filesystem": filesystem(args.dir)}
    try:
        method = clone_file(source, args.dir / "probe")
        results["clone_file_method"] = method
        # Taken in turns, so neither gets the other's leftover writeback.
        ways = {
            "clone_file_s": lambda t: clone_file(source, t),
            "shutil_copyfile_s": lambda t: shutil.copyfile(source, t),
            "copy_file_range_s": lambda t: copy_file_range(source, t),
        }
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.repeat):
            for name, copy in ways.items():
                times[name].append(timed(copy, args.dir))
        results.update({name: min(seconds) for name, seconds in times.items()})
    finally:
        for name in ("published.duckdb", "probe", "copy"):
            (args.dir / name).unlink(missing_ok=True)
    print(
        common.table(
            [
                "filesystem",
                "MiB",
                "clone_file method",
                "clone_file s",
                "shutil.copyfile s",
                "copy_file_range s",
            ],
            [
                [
                    results["filesystem"],
                    args.mib,
                    results["clone_file_method"],
                    results["clone_file_s"],
                    results["shutil_copyfile_s"],
                    results["copy_file_range_s"],
                ]
            ],
        )
    )
    params = {"dir": str(args.dir), "mib": args.mib, "repeat": args.repeat}
    path = common.record("working_copy", params, results, args.results)
    print(f"\nrecorded in {path}")
    return results


def timed(copy, directory: Path) -> float:
    """Seconds to copy into ``directory/copy`` and fsync it."""
    target = directory / "copy"
    target.unlink(missing_ok=True)
    os.sync()
    started = time.perf_counter()
    copy(target)
    with open(target, "rb+") as stream:
        os.fsync(stream.fileno())
    return round(time.perf_counter() - started, 4)


def copy_file_range(source: Path, target: Path) -> None:
    with open(source, "rb") as src, open(target, "wb") as dst:
        size, copied = os.fstat(src.fileno()).st_size, 0
        while copied < size:
            copied += os.copy_file_range(src.fileno(), dst.fileno(), size - copied)


def filesystem(directory: Path) -> str:
    """The type of the filesystem ``directory`` is on, from /proc/mounts."""
    best, kind = "", "unknown"
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _, mount_point, fs_type, *_ = line.split()
            path = str(directory.resolve())
            inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) > len(best):
                best, kind = mount_point, fs_type
    return kind


if __name__ == "__main__":
    main()

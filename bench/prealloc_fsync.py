#!/usr/bin/env python3
"""Which way of preallocating a log segment makes a group-commit fdatasync cheapest?

Writes 3000-byte batches (about 30 small log records) one after another into a
file and times the fdatasync after each, for four ways of making the file:
  grow       plain appends: every fdatasync also writes the inode (new size)
  setlen     ftruncate to 64 MiB first (a sparse file: blocks allocated on write)
  fallocate  posix_fallocate 64 MiB (unwritten extents, converted on write)
  zeros      64 MiB of zeros written and fsynced first (what Corral does)

Usage: bench/prealloc_fsync.py DIR [BATCHES]   (DIR on the disk to measure)
"""
import os
import sys
import time

SIZE = 64 << 20


def run(directory, mode, batches):
    batch = os.urandom(3000)
    path = os.path.join(directory, f"prealloc-bench-{mode}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        started = time.perf_counter()
        if mode == "setlen":
            os.ftruncate(fd, SIZE)
        elif mode == "fallocate":
            os.posix_fallocate(fd, 0, SIZE)
        elif mode == "zeros":
            zeros = b"\0" * (1 << 20)
            for i in range(SIZE >> 20):
                os.pwrite(fd, zeros, i << 20)
        if mode != "grow":
            os.fsync(fd)
        prepare = time.perf_counter() - started
        pos, lat = 16, []
        for _ in range(batches):
            os.pwrite(fd, batch, pos)
            pos += len(batch)
            t = time.perf_counter()
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.remove(path)
    lat.sort()
    n = len(lat)
    print(f"{mode:10s} prepare {prepare * 1e3:6.1f} ms   fdatasync mean {sum(lat) / n * 1e6:5.0f} µs"
          f"  p50 {lat[n // 2] * 1e6:5.0f}  p99 {lat[int(n * 0.99)] * 1e6:5.0f}", flush=True)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    for _ in range(2):
        for mode in ("grow", "setlen", "fallocate", "zeros"):
            run(sys.argv[1], mode, batches)


if __name__ == "__main__":
    main()

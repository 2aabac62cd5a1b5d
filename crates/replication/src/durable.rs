//! Small durability helpers shared by the log store and the snapshot store: replace a file
//! atomically (write tmp, fsync, rename, fsync the directory), fsync a directory, and write a
//! file out in chunks.

use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

/// The suffix of files being written; leftovers are removed on open.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// fsync a directory so that creations, renames and deletions in it survive a crash.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replace `dir/name` with `bytes` so that a crash leaves either the old or the new content.
///
/// Returns the path of the file that failed, with the error, so callers can name it.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), (PathBuf, io::Error)> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let dst = dir.join(name);
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| (tmp.clone(), e))?;
    std::fs::rename(&tmp, &dst).map_err(|e| (dst.clone(), e))?;
    fsync_dir(dir).map_err(|e| (dir.to_path_buf(), e))
}

/// Writes `len` bytes of `file` at `offset` out to the disk and waits until they are written
/// (`sync_file_range`), without flushing the device's cache or writing metadata: that is left
/// to a `sync_all` at the end.
///
/// For big background writes (a snapshot, a preallocated log segment) on the disk the log
/// commits to: the log's `fdatasync` ends in a cache flush that waits for every write queued
/// before it, so a file written out a chunk at a time delays it by one chunk at most, where
/// one `fsync` at the end queued the whole file ahead of it.
#[cfg(target_os = "linux")]
pub(crate) fn write_out(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return Ok(());
    };
    // SAFETY: `sync_file_range` reads only its integer arguments; the descriptor is `file`'s,
    // open for the whole call. No safe wrapper exists in std, and nix/rustix lack this call.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere, the final `sync_all` writes every chunk.
#[cfg(not(target_os = "linux"))]
pub(crate) fn write_out(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

/// Remove `*.tmp` leftovers of writes interrupted by a crash.
pub(crate) fn remove_tmp_files(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
            tracing::warn!(path = %entry.path().display(), "removing leftover of an interrupted write");
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

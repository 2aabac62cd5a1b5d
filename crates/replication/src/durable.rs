//! Small durability helpers shared by the log store and the snapshot store: replace a file
//! atomically (write tmp, fsync, rename, fsync the directory) and fsync a directory.

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

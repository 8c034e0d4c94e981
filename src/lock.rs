//! One writer per output folder: `train`, `collect` and `eval --out` hold `DIR/.amisim.lock`
//! (the writer's process id) while they write there. A second process is refused with the
//! first one's id; a lock left by a process that no longer runs (killed) is taken over.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock's file name inside the folder.
pub const LOCK_FILE: &str = ".amisim.lock";

/// Held while a process writes a folder; released when dropped.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
}

impl DirLock {
    /// Creates `dir` if needed and takes its lock; `what` names the command in the refusal.
    pub fn acquire(dir: &Path, what: &str) -> Result<DirLock> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        // Two tries: the second after removing a lock whose writer is gone.
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    write!(f, "{}", std::process::id()).with_context(|| format!("writing {}", path.display()))?;
                    return Ok(DirLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    match text.trim().parse::<i32>() {
                        Ok(pid) if alive(pid) => bail!(
                            "{} is being written by another amisim process (pid {pid}); wait for it to end, \
                             or give {what} another output folder",
                            dir.display()
                        ),
                        // A lock created this instant, its id not yet written.
                        Err(_) if text.is_empty() && fresh(&path) => bail!(
                            "{} is being written by another amisim process; wait for it to end, \
                             or give {what} another output folder",
                            dir.display()
                        ),
                        // The writer was killed: take over.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
        bail!("{}: could not take the lock {}", dir.display(), path.display())
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a file was modified in the last few seconds.
fn fresh(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|d| d.as_secs() < 5))
}

/// Whether a process with this id runs (signal 0 checks without sending anything).
fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

//! Small files of a data dir (node id, incarnation) written so that a crash leaves either
//! the old content or the new, never part of it: a temporary file, fsynced, renamed over
//! the name, then the directory fsynced.

use std::fs::{self, File};
use std::io;
use std::path::Path;

/// Writes `text` as `dir/name`, creating `dir` if needed.
pub fn write(dir: &Path, name: &str, text: &str) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    fs::create_dir_all(dir)?;
    fs::write(&tmp, text)?;
    File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_replace_whole_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("data");
        super::write(&sub, "node-id", "node-1\n").expect("first");
        super::write(&sub, "node-id", "node-2\n").expect("second");
        assert_eq!(
            std::fs::read_to_string(sub.join("node-id")).expect("read"),
            "node-2\n"
        );
        assert!(!sub.join("node-id.tmp").exists());
    }
}

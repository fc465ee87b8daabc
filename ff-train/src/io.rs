//! Atomic file writes: results and checkpoints are never left half-written.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory is written,
/// flushed to disk, then renamed over `path`. An interrupted run leaves either the old file
/// or the new one, never a truncated one.
///
/// # Errors
/// Any I/O error, with the path in the message.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        let mut f = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        f.sync_all().with_context(|| format!("cannot flush {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))?;
        // Make the rename itself durable (best effort: not every filesystem allows it).
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Files that `phyff train --out DIR` writes into `DIR`.
pub const RUN_FILES: [&str; 3] = ["checkpoint.json", "model.json", "result.json"];

/// Makes sure `dir` can receive a run's files before any training is spent: creates it (and its
/// parents) and writes and removes a probe file in it. Returns the run files ([`RUN_FILES`])
/// already in `dir`, which belong to an earlier run unless this one is resumed there.
///
/// # Errors
/// `dir` cannot be created or written (a file in the way, a read-only or full filesystem, no
/// permission), with the path, the reason and the fix.
pub fn check_out_dir(dir: &Path) -> anyhow::Result<Vec<String>> {
    let fix = "choose another --out directory (one you can write to)";
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!("cannot write the run's files to --out {}: it is a file, not a directory; {fix}", dir.display());
    }
    fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create the --out directory {}: {e}; {fix}", dir.display()))?;
    let probe = dir.join(format!(".phyff-write-probe.{}", std::process::id()));
    let written = File::create(&probe).and_then(|mut f| f.write_all(b"probe").and_then(|()| f.sync_all()));
    let _ = fs::remove_file(&probe);
    written.map_err(|e| anyhow::anyhow!("cannot write to the --out directory {}: {e}; {fix}", dir.display()))?;
    Ok(RUN_FILES.iter().filter(|f| dir.join(f).exists()).map(|f| f.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("phyff-io-{}", std::process::id()));
        let p = dir.join("sub").join("r.json");
        write_atomic(&p, b"first version, long").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}

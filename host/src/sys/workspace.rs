//! Per-call scratch directories, removed after use and swept at start.

use std::path::{Component, Path, PathBuf};

use anyhow::Context;

/// Name prefix of every workspace directory, so the sweep finds only ours.
const PREFIX: &str = "berth-ws-";

/// A temporary directory a process runs in; deleted on drop.
#[derive(Debug)]
pub struct Workspace {
    dir: tempfile::TempDir,
}

/// A relative path that cannot leave its workspace.
#[derive(Debug, thiserror::Error)]
#[error("path `{path}` is not allowed: {reason}")]
pub struct BadPath {
    /// The offending path.
    pub path: String,
    /// Why.
    pub reason: &'static str,
}

impl Workspace {
    /// Create a workspace under `root` (created if missing).
    pub fn create(root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating workspace root {}", root.display()))?;
        let dir = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir_in(root)
            .with_context(|| format!("creating a workspace in {}", root.display()))?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Resolve `relative` inside the workspace, refusing absolute paths and `..`.
    pub fn resolve(&self, relative: &str) -> Result<PathBuf, BadPath> {
        resolve_in(self.path(), relative)
    }

    /// Write a file at `relative`, creating parent directories.
    pub fn write(&self, relative: &str, contents: &[u8], executable: bool) -> anyhow::Result<()> {
        write_in(self.path(), relative, contents, executable)
    }
}

/// Resolve `relative` inside `root`, refusing absolute paths and `..`.
pub fn resolve_in(root: &Path, relative: &str) -> Result<PathBuf, BadPath> {
    let bad = |reason| BadPath {
        path: relative.to_string(),
        reason,
    };
    if relative.is_empty() {
        return Err(bad("it is empty"));
    }
    if relative.len() > 4096 || relative.contains('\0') {
        return Err(bad("it is too long or contains NUL"));
    }
    let path = Path::new(relative);
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(bad("`..` would leave the workspace")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad("it must be relative to the workspace"));
            }
        }
    }
    Ok(root.join(path))
}

/// Write a file at `relative` inside `root`, creating parent directories.
pub fn write_in(
    root: &Path,
    relative: &str,
    contents: &[u8],
    executable: bool,
) -> anyhow::Result<()> {
    let path = resolve_in(root, relative)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// Remove workspaces left under `root` by a berth that did not exit cleanly.
/// Returns how many were removed.
pub fn sweep(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
        .filter(|e| std::fs::remove_dir_all(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape() {
        let root = tempfile::tempdir().unwrap();
        let ws = Workspace::create(root.path()).unwrap();
        assert!(ws.resolve("a/b.txt").is_ok());
        assert!(ws.resolve("./a").is_ok());
        for bad in ["../x", "a/../../x", "/etc/passwd", ""] {
            let err = ws.resolve(bad).unwrap_err();
            assert_eq!(err.path, bad);
        }
    }

    #[test]
    fn workspace_is_removed_on_drop_and_leftovers_are_swept() {
        let root = tempfile::tempdir().unwrap();
        let ws = Workspace::create(root.path()).unwrap();
        ws.write("dir/f.txt", b"x", true).unwrap();
        let path = ws.path().to_path_buf();
        assert!(path.join("dir/f.txt").is_file());
        drop(ws);
        assert!(!path.exists());

        std::fs::create_dir(root.path().join("berth-ws-left")).unwrap();
        std::fs::create_dir(root.path().join("not-ours")).unwrap();
        assert_eq!(sweep(root.path()), 1);
        assert!(root.path().join("not-ours").exists());
    }
}

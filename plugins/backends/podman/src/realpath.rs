//! Mount paths as the host's file system sees them. The volume-root check
//! compares strings, so a symlink under an allowed root could point
//! anywhere (`/srv/data/escape -> /`); here every mount's host path and
//! every root is replaced by its real path (`realpath -m` on the host), the
//! check runs on those, and podman is handed the resolved path, so a link
//! swapped in afterwards changes nothing.

use berth_sdk::{Command, Error, Mount, process};

use crate::settings::{ROOTS_SETTING, Settings};

/// Resolve `mounts`' host paths and `settings`' allowed roots in place,
/// with one `realpath` run; nothing to do without mounts.
pub fn resolve(mounts: &mut [Mount], settings: &mut Settings) -> berth_sdk::Result<()> {
    if mounts.is_empty() {
        return Ok(());
    }
    // The lexical check first: its errors name the path as written.
    for mount in mounts.iter() {
        berth_sdk::checks::mount(mount, &settings.allowed_volume_roots, ROOTS_SETTING)?;
    }
    let written: Vec<String> = settings
        .allowed_volume_roots
        .iter()
        .chain(mounts.iter().map(|m| &m.host_path))
        .cloned()
        .collect();
    if let Some(bad) = written.iter().find(|p| p.contains('\n') || p.is_empty()) {
        return Err(Error::invalid_input(format!(
            "path {bad:?} cannot be resolved: empty or holding a line break"
        )));
    }
    let out = process::run(
        Command::new("realpath")
            .args(["-m", "--"])
            .args(written.iter().cloned()),
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let real: Vec<&str> = stdout.lines().collect();
    if out.exit_code != Some(0) || real.len() != written.len() {
        return Err(Error::failed(format!(
            "realpath could not resolve the mount paths (exit {:?}): {}",
            out.exit_code,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let (roots, hosts) = real.split_at(settings.allowed_volume_roots.len());
    settings.allowed_volume_roots = roots.iter().map(|r| r.to_string()).collect();
    for (mount, resolved) in mounts.iter_mut().zip(hosts) {
        let written = std::mem::replace(&mut mount.host_path, resolved.to_string());
        berth_sdk::checks::mount(mount, &settings.allowed_volume_roots, ROOTS_SETTING).map_err(
            |e| match e {
                Error::Denied(_) => Error::Denied(format!(
                    "mount host path `{written}` resolves to `{resolved}`, which is outside the allowed volume roots {:?} (symlinks are followed); add a root to {ROOTS_SETTING} in berth.toml",
                    settings.allowed_volume_roots
                )),
                other => other,
            },
        )?;
    }
    Ok(())
}

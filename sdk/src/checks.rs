//! Checks that backends run on what callers pass before anything is built
//! from it: image references, workload names, environment names and host
//! mounts. Each error names the input and what was expected.

use crate::{Error, Mount};

/// An image reference: registry/name:tag or @digest, nothing a shell or
/// podman's option parser could read differently.
pub fn image(image: &str) -> crate::Result<()> {
    let ok = !image.is_empty()
        && image.len() <= 255
        && image.starts_with(|c: char| c.is_ascii_alphanumeric())
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && !image.contains("..");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "image `{image}` is not an image reference (letters, digits and `._-/:@`, e.g. docker.io/library/nginx:1.27)"
        )))
    }
}

/// A workload name: a DNS label, so it is valid on every backend.
pub fn name(name: &str) -> crate::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "name `{name}` is not a DNS label (lowercase letters, digits and `-`, at most 63)"
        )))
    }
}

/// An environment variable name: letters, digits and `_`, not starting
/// with a digit.
pub fn env_name(name: &str) -> crate::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "environment variable name `{name}` must be letters, digits and `_`"
        )))
    }
}

/// Check a host mount: both paths absolute, without `..`, `,` or `:`, and
/// the host path under one of `roots`. `setting` names where the roots are
/// configured, for the error.
pub fn mount(mount: &Mount, roots: &[String], setting: &str) -> crate::Result<()> {
    let host = &mount.host_path;
    let inside = &mount.container_path;
    for (what, path) in [("host path", host), ("container path", inside)] {
        if !path.starts_with('/')
            || path.split('/').any(|p| p == "..")
            || path.contains([',', ':', '\0'])
        {
            return Err(Error::invalid_input(format!(
                "mount {what} `{path}` must be an absolute path without `..`, `,` or `:`"
            )));
        }
    }
    let allowed = roots.iter().any(|root| {
        let root = root.trim_end_matches('/');
        host == root || host.starts_with(&format!("{root}/")) || root.is_empty()
    });
    if !allowed {
        return Err(Error::Denied(format!(
            "mount host path `{host}` is outside the allowed volume roots {roots:?}; add a root to {setting} in berth.toml"
        )));
    }
    Ok(())
}

/// A fresh sandbox id: `prefix` and 12 random hex digits, short enough to
/// be a DNS label and a container name.
pub fn new_sandbox_id(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // RandomState draws on WASI random; the time alone could collide.
    let seed = std::collections::hash_map::RandomState::new();
    let mixed = std::hash::BuildHasher::hash_one(&seed, nanos);
    format!("{prefix}{:012x}", mixed & 0xffff_ffff_ffff)
}

/// Check that `id` is one [`new_sandbox_id`] made with `prefix`, so that a
/// caller cannot point a backend at something it did not create.
pub fn sandbox_id(id: &str, prefix: &str) -> crate::Result<()> {
    let ok = id.len() <= 63
        && id
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "sandbox id `{id}` is not one this backend created"
        )))
    }
}

/// The absolute path of `path`, a path relative to a sandbox workspace at
/// `root`: not empty, not absolute, no `..` and no NUL.
///
/// ```
/// assert_eq!(berth_sdk::checks::workspace_path("/work", "src/main.rs").unwrap(), "/work/src/main.rs");
/// assert!(berth_sdk::checks::workspace_path("/work", "../etc/passwd").is_err());
/// ```
pub fn workspace_path(root: &str, path: &str) -> crate::Result<String> {
    if path.is_empty()
        || path.starts_with('/')
        || path.split('/').any(|p| p == "..")
        || path.contains('\0')
    {
        return Err(Error::invalid_input(format!(
            "path `{path}` must be relative to the sandbox workspace, without `..`"
        )));
    }
    Ok(format!("{root}/{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_ids_are_recognised_only_with_their_prefix() {
        let id = new_sandbox_id("berth-sb-");
        assert_eq!(id.len(), "berth-sb-".len() + 12);
        assert!(sandbox_id(&id, "berth-sb-").is_ok());
        assert!(sandbox_id(&id, "other-").is_err());
        assert!(sandbox_id("berth-sb-", "berth-sb-").is_err());
        assert!(sandbox_id("berth-sb-12; rm", "berth-sb-").is_err());
        assert_ne!(id, new_sandbox_id("berth-sb-"));
    }
}

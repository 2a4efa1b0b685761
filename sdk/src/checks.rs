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

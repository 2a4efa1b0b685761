//! `plugin.toml`: a plugin's name, version, kind, API range, requested
//! capabilities, and a bundled plugin's default grants.

use serde::Deserialize;

use crate::capabilities::grants::Requested;
use crate::runtime::world::World;

/// A parsed and validated `plugin.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Unique plugin name: lower-case letters, digits and `-`.
    pub name: String,
    /// The plugin's own version.
    pub version: semver::Version,
    /// Which world the component implements.
    pub kind: World,
    /// The `berth:plugin` versions the plugin was built for, e.g. `^0.1`.
    pub api: semver::VersionReq,
    /// Optional description; the component's own is used when absent.
    #[serde(default)]
    pub description: Option<String>,
    /// Requested capabilities.
    #[serde(default)]
    pub capabilities: Requested,
    /// For a bundled plugin: what it is granted while berth.toml names no
    /// policy for it, when that should be less than it may request (the
    /// k8s backend asks for every namespace, and by default gets its own).
    /// Absent: everything it requests.
    #[serde(default)]
    pub defaults: Option<Requested>,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not valid TOML or not this schema (unknown keys and capabilities included).
    #[error("plugin.toml is invalid: {0}")]
    Parse(String),
    /// The name is not usable.
    #[error(
        "plugin name `{0}` is invalid: expected 1-64 characters of a-z, 0-9 and '-', starting with a letter or digit"
    )]
    Name(String),
}

impl Manifest {
    /// Parse and validate manifest text.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| ManifestError::Parse(e.message().to_string()))?;
        if !is_valid_name(&manifest.name) {
            return Err(ManifestError::Name(manifest.name));
        }
        Ok(manifest)
    }
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_manifest() {
        let m = Manifest::parse(
            "name = 'podman'\nversion = '0.1.0'\nkind = 'backend'\napi = '^0.1'\n[capabilities]\nprocess = ['podman']\nstate = true\n",
        )
        .unwrap();
        assert_eq!(m.kind, World::Backend);
        assert!(m.capabilities.process.contains("podman"));
        assert!(m.api.matches(&semver::Version::new(0, 1, 3)));
    }

    #[test]
    fn a_bundled_plugin_may_default_to_less_than_it_requests() {
        let m = Manifest::parse(
            "name = 'k8s'\nversion = '0.1.0'\nkind = 'backend'\napi = '^0.1'\n[capabilities.kube]\nnamespaces = ['*']\n[defaults.kube]\nnamespaces = ['berth']\n",
        )
        .unwrap();
        let defaults = m.defaults.expect("defaults").kube.expect("kube defaults");
        assert!(defaults.namespaces.contains("berth") && !defaults.namespaces.contains("*"));
        assert!(
            Manifest::parse("name='x'\nversion='0.1.0'\nkind='tools'\napi='^0.1'\n")
                .unwrap()
                .defaults
                .is_none()
        );
    }

    #[test]
    fn unknown_capability_is_named() {
        let err = Manifest::parse("name='x'\nversion='0.1.0'\nkind='tools'\napi='^0.1'\n[capabilities]\nfilesystem = true\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("filesystem"), "{err}");
    }

    #[test]
    fn bad_names_and_kinds_are_refused() {
        let err = Manifest::parse("name='Bad Name'\nversion='0.1.0'\nkind='tools'\napi='^0.1'\n")
            .unwrap_err();
        assert!(matches!(err, ManifestError::Name(_)));
        let err = Manifest::parse("name='x'\nversion='0.1.0'\nkind='gadget'\napi='^0.1'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("gadget"), "{err}");
    }
}

//! Which world a component implements and which contract version it was
//! built against, read from its export names before it is instantiated.

use serde::Deserialize;

/// The contract version this host implements.
pub const API_VERSION: semver::Version = semver::Version::new(0, 1, 0);

/// The contract versions this host can load: `^0.1`.
pub fn supported() -> semver::VersionReq {
    semver::VersionReq::parse("^0.1").expect("static version requirement")
}

/// A plugin world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    /// `tools-plugin`: only its own tools.
    Tools,
    /// `runner-plugin`: a language runner.
    Runner,
    /// `backend-plugin`: sandboxes and workloads.
    Backend,
    /// `template-plugin`: server templates.
    Template,
}

impl World {
    /// The kind name used in `plugin.toml`.
    pub fn kind(self) -> &'static str {
        match self {
            World::Tools => "tools",
            World::Runner => "runner",
            World::Backend => "backend",
            World::Template => "template",
        }
    }
}

/// A component's world and contract version.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    /// The world.
    pub world: World,
    /// The `berth:plugin` version of its exports.
    pub version: semver::Version,
}

/// Why a component's exports do not make a plugin this host can load.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WorldError {
    /// No `berth:plugin/plugin` export at all.
    #[error(
        "component does not export berth:plugin/plugin; it is not a berth plugin (exports: {0})"
    )]
    NotAPlugin(String),
    /// Exports of different contract versions.
    #[error("component exports several berth:plugin versions: {0}")]
    MixedVersions(String),
    /// A version outside the supported range.
    #[error(
        "plugin was built for berth:plugin@{found}, but this host supports berth:plugin {supported} (API {host})"
    )]
    Unsupported {
        /// The component's version.
        found: semver::Version,
        /// The host's range.
        supported: semver::VersionReq,
        /// The host's own version.
        host: semver::Version,
    },
    /// Exports that match no world.
    #[error(
        "component exports {0}, which matches no berth world (tools, runner, backend, template)"
    )]
    UnknownWorld(String),
}

/// Work out the world and version from export names such as
/// `berth:plugin/runner@0.1.0`.
pub fn detect<'a>(export_names: impl IntoIterator<Item = &'a str>) -> Result<Detected, WorldError> {
    let mut interfaces = Vec::new();
    let mut versions = Vec::new();
    let mut all = Vec::new();
    for name in export_names {
        all.push(name.to_string());
        let Some(rest) = name.strip_prefix("berth:plugin/") else {
            continue;
        };
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        interfaces.push(interface.to_string());
        if let Ok(version) = semver::Version::parse(version)
            && !versions.contains(&version)
        {
            versions.push(version);
        }
    }
    if !interfaces.iter().any(|i| i == "plugin") {
        return Err(WorldError::NotAPlugin(if all.is_empty() {
            "none".into()
        } else {
            all.join(", ")
        }));
    }
    let version = match versions.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(WorldError::NotAPlugin(
                "berth:plugin exports carry no version".into(),
            ));
        }
        many => {
            return Err(WorldError::MixedVersions(
                many.iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
    };
    if !supported().matches(&version) {
        return Err(WorldError::Unsupported {
            found: version,
            supported: supported(),
            host: API_VERSION,
        });
    }
    let has = |i: &str| interfaces.iter().any(|x| x == i);
    let world = match (
        has("runner"),
        has("sandbox") || has("workloads"),
        has("templates"),
    ) {
        (false, false, false) => World::Tools,
        (true, false, false) => World::Runner,
        (false, true, false) if has("sandbox") && has("workloads") => World::Backend,
        (false, false, true) => World::Template,
        _ => return Err(WorldError::UnknownWorld(interfaces.join(", "))),
    };
    Ok(Detected { world, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_world() {
        let d = detect(["berth:plugin/plugin@0.1.0"]).unwrap();
        assert_eq!(
            d,
            Detected {
                world: World::Tools,
                version: API_VERSION
            }
        );
        assert_eq!(
            detect(["berth:plugin/plugin@0.1.0", "berth:plugin/runner@0.1.0"])
                .unwrap()
                .world,
            World::Runner
        );
        let backend = [
            "berth:plugin/plugin@0.1.0",
            "berth:plugin/sandbox@0.1.0",
            "berth:plugin/workloads@0.1.0",
        ];
        assert_eq!(detect(backend).unwrap().world, World::Backend);
        assert_eq!(
            detect(["berth:plugin/plugin@0.1.2", "berth:plugin/templates@0.1.2"])
                .unwrap()
                .world,
            World::Template
        );
    }

    #[test]
    fn refuses_other_versions_naming_both() {
        let err = detect(["berth:plugin/plugin@9.0.0"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("9.0.0") && text.contains("^0.1"), "{text}");
        let err = detect(["berth:plugin/plugin@0.2.0"]).unwrap_err();
        assert!(matches!(err, WorldError::Unsupported { .. }));
    }

    #[test]
    fn refuses_non_plugins_and_odd_mixtures() {
        assert!(matches!(
            detect(["wasi:cli/run@0.2.0"]),
            Err(WorldError::NotAPlugin(_))
        ));
        assert!(matches!(
            detect(["berth:plugin/plugin@0.1.0", "berth:plugin/runner@0.1.1"]),
            Err(WorldError::MixedVersions(_))
        ));
        assert!(matches!(
            detect([
                "berth:plugin/plugin@0.1.0",
                "berth:plugin/runner@0.1.0",
                "berth:plugin/templates@0.1.0"
            ]),
            Err(WorldError::UnknownWorld(_))
        ));
    }
}

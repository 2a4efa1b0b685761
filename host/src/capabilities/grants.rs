//! What a plugin asks for, what the host allows, and what it gets: the
//! intersection of the two. Nothing is granted by default.
//!
//! The three records are generated from one table with a field per
//! capability unit; each unit's [`Capability`] impl says how its part is
//! requested, allowed, joined, intersected and reported. Adding a
//! capability adds one line to the table.

use serde::{Deserialize, Serialize};

use super::unit::Capability;

/// Generates [`Requested`], [`Policy`] and [`Grants`] with one field per
/// capability, and the walks over them.
macro_rules! capability_table {
    ($($(#[$doc:meta])* $field:ident: $module:ident::$unit:ident,)*) => {
        /// Capabilities a plugin's `plugin.toml` requests (`[capabilities]`).
        #[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
        #[serde(deny_unknown_fields, default)]
        pub struct Requested {
            $($(#[$doc])* pub $field: <super::$module::$unit as Capability>::Request,)*
        }

        /// What the host's policy allows one plugin (or every plugin, as
        /// `"*"`) in `berth.toml [policy.NAME]`.
        #[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
        #[serde(deny_unknown_fields, default)]
        pub struct Policy {
            $($(#[$doc])* pub $field: <super::$module::$unit as Capability>::Allow,)*
        }

        /// What a loaded plugin may actually do.
        #[derive(Debug, Clone, Default, PartialEq, Serialize)]
        pub struct Grants {
            $($(#[$doc])* pub $field: <super::$module::$unit as Capability>::Grant,)*
        }

        impl Policy {
            /// Everything either policy allows.
            pub fn union(&self, other: &Policy) -> Policy {
                Policy {
                    $($field: <super::$module::$unit as Capability>::union(&self.$field, &other.$field),)*
                }
            }
        }

        impl From<&Requested> for Policy {
            /// A policy that allows exactly what was requested (except what
            /// only the operator may choose, such as host directories).
            fn from(requested: &Requested) -> Policy {
                Policy {
                    $($field: <super::$module::$unit as Capability>::allow_requested(&requested.$field),)*
                }
            }
        }

        impl Grants {
            /// Requested ∩ allowed. A request the policy does not allow is
            /// dropped (and reported by [`Grants::refused`]), not an error:
            /// the plugin still loads and its call fails with `denied` when
            /// it tries.
            pub fn intersect(requested: &Requested, policy: &Policy) -> Grants {
                Grants {
                    $($field: <super::$module::$unit as Capability>::grant(&requested.$field, &policy.$field),)*
                }
            }

            /// Requests the policy did not grant, for the load report.
            pub fn refused(&self, requested: &Requested) -> Vec<String> {
                let mut refused = Vec::new();
                $(refused.extend(<super::$module::$unit as Capability>::refused(&requested.$field, &self.$field));)*
                refused
            }
        }
    };
}

capability_table! {
    /// Programs run through `process` (a name, an absolute path, or `"*"`
    /// in a policy for any).
    process: process::Process,
    /// Persistent per-plugin `state`.
    state: state::State,
    /// Hosts reached over `wasi:http` (`*.example.com` for subdomains).
    http: http::Http,
    /// Asking the user questions (`context.elicit`).
    elicit: context::Elicit,
    /// Running commands under `mirrord exec`.
    mirrord: mirrord::Mirrord,
    /// Directories read through read-only preopens: requested by the path
    /// the plugin opens, allowed with the host directory behind it.
    read_dirs: read_dirs::ReadDirs,
    /// Kubernetes actions (`[capabilities.kube]`, `[policy.NAME.kube]`).
    kube: kube::Kube,
}

impl Grants {
    /// Whether `program` (a name or absolute path) may be run.
    pub fn allows_program(&self, program: &str) -> bool {
        self.process.contains(program)
    }

    /// Whether an HTTP request to `host` may be sent.
    pub fn allows_http_host(&self, host: &str) -> bool {
        super::http::allows_host(&self.http, host)
    }
}

/// The message of a `denied` error for an ungranted capability.
pub fn denied(plugin: &str, what: &str) -> String {
    format!(
        "plugin `{plugin}` is not granted {what}; request it in plugin.toml [capabilities] and allow it in berth.toml [policy.{plugin}]"
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use super::*;
    use crate::capabilities::kube::KubeAccess;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn grants_are_the_intersection() {
        let requested = Requested {
            process: set(&["podman", "sh"]),
            state: true,
            http: set(&["a.com"]),
            elicit: true,
            mirrord: true,
            ..Default::default()
        };
        let policy = Policy {
            process: set(&["podman"]),
            state: false,
            http: set(&["a.com", "b.com"]),
            elicit: true,
            mirrord: false,
            ..Default::default()
        };
        let grants = Grants::intersect(&requested, &policy);
        assert_eq!(grants.process, set(&["podman"]));
        assert!(!grants.state);
        assert_eq!(grants.http, set(&["a.com"]));
        assert!(grants.elicit);
        assert!(!grants.mirrord);
        assert_eq!(
            grants.refused(&requested),
            vec![
                "process:sh".to_string(),
                "state".to_string(),
                "mirrord".to_string()
            ]
        );
    }

    #[test]
    fn kube_grants_intersect_per_field_and_refuse_what_is_missing() {
        let wanted = KubeAccess {
            contexts: set(&[]),
            namespaces: set(&["*"]),
            verbs: set(&["get", "apply", "exec"]),
            kinds: set(&["Pod", "Deployment"]),
            pod_privileges: set(&["hostPath"]),
        };
        let allowed = KubeAccess {
            contexts: set(&[]),
            namespaces: set(&["team-a"]),
            verbs: set(&["get", "apply"]),
            kinds: set(&["*"]),
            pod_privileges: set(&[]),
        };
        let requested = Requested {
            kube: Some(wanted.clone()),
            ..Default::default()
        };
        let policy = Policy {
            kube: Some(allowed),
            ..Default::default()
        };
        let grants = Grants::intersect(&requested, &policy);
        let kube = grants.kube.clone().expect("kube is granted");
        assert_eq!(kube.namespaces, set(&["team-a"]));
        assert_eq!(kube.kinds, set(&["Pod", "Deployment"]));
        assert_eq!(
            grants.refused(&requested),
            vec![
                "kube:namespace:*",
                "kube:verb:exec",
                "kube:pod_privilege:hostPath"
            ]
        );
        assert!(
            kube.pod_privilege_refusal("hostPath", "spec.volumes[0].hostPath")
                .is_some_and(|r| r.contains("spec.volumes[0].hostPath"))
        );
        assert_eq!(kube.refusal("get", None, "team-a", "Pod"), None);
        assert_eq!(
            kube.refusal("get", None, "default", "Pod").as_deref(),
            Some("the namespace `default`")
        );
        assert_eq!(
            kube.refusal("exec", None, "team-a", "Pod").as_deref(),
            Some("the kube verb `exec`")
        );
        assert_eq!(
            kube.refusal("get", None, "team-a", "Secret").as_deref(),
            Some("the kind `Secret`")
        );
        assert_eq!(
            kube.refusal("get", Some("prod"), "team-a", "Pod")
                .as_deref(),
            Some("the kube context `prod`")
        );
        assert_eq!(
            Grants::intersect(&requested, &Policy::default()).kube,
            None,
            "kube is not granted by default"
        );
    }

    #[test]
    fn nothing_is_granted_by_default() {
        let requested = Requested {
            process: set(&["sh"]),
            state: true,
            http: set(&["*"]),
            elicit: true,
            mirrord: true,
            read_dirs: set(&["/templates"]),
            ..Default::default()
        };
        assert_eq!(
            Grants::intersect(&requested, &Policy::default()),
            Grants::default()
        );
    }

    #[test]
    fn read_dirs_come_only_from_the_policy_and_only_when_requested() {
        let requested = Requested {
            read_dirs: set(&["/templates"]),
            ..Default::default()
        };
        let policy = Policy {
            read_dirs: [
                ("/templates".to_string(), PathBuf::from("/srv/templates")),
                ("/other".to_string(), PathBuf::from("/srv/other")),
            ]
            .into(),
            ..Default::default()
        };
        let grants = Grants::intersect(&requested, &policy);
        assert_eq!(
            grants.read_dirs,
            [("/templates".to_string(), PathBuf::from("/srv/templates"))].into()
        );
        let by_default = Grants::intersect(&requested, &Policy::from(&requested));
        assert!(by_default.read_dirs.is_empty());
        assert_eq!(by_default.refused(&requested), vec!["read_dirs:/templates"]);
    }

    #[test]
    fn wildcard_policy_allows_any_requested_item_but_not_unrequested_ones() {
        let requested = Requested {
            process: set(&["python3"]),
            ..Default::default()
        };
        let policy = Policy {
            process: set(&["*"]),
            ..Default::default()
        };
        let grants = Grants::intersect(&requested, &policy);
        assert!(grants.allows_program("python3"));
        assert!(!grants.allows_program("sh"));
    }

    #[test]
    fn http_patterns_match_subdomains_only_with_a_wildcard() {
        let grants = Grants {
            http: set(&["*.example.com", "api.test"]),
            ..Default::default()
        };
        assert!(grants.allows_http_host("x.example.com"));
        assert!(!grants.allows_http_host("example.com"));
        assert!(!grants.allows_http_host("evilexample.com"));
        assert!(grants.allows_http_host("API.test."));
        assert!(!grants.allows_http_host("api.test.evil"));
    }
}

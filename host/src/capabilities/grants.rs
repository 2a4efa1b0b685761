//! What a plugin asks for, what the host allows, and what it gets: the
//! intersection of the two. Nothing is granted by default.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Capabilities a plugin's `plugin.toml` requests (`[capabilities]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Requested {
    /// Programs the plugin wants to run through `process`.
    pub process: BTreeSet<String>,
    /// Whether it wants persistent `state`.
    pub state: bool,
    /// Hosts it wants to reach over `wasi:http` (`*.example.com` allowed).
    pub http: BTreeSet<String>,
    /// Whether it wants to ask the user questions (`context.elicit`).
    pub elicit: bool,
    /// Whether it wants to run commands under `mirrord exec`.
    pub mirrord: bool,
    /// The Kubernetes actions it wants (`[capabilities.kube]`).
    pub kube: Option<KubeAccess>,
    /// Directories it wants to read, by the absolute path it opens them at
    /// (e.g. `/templates`); the host's policy says which host directory
    /// each one is.
    pub read_dirs: BTreeSet<String>,
}

/// What the host's policy allows one plugin (or every plugin, as `"*"`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Programs it may run; `"*"` allows any program.
    pub process: BTreeSet<String>,
    /// Whether it may keep state.
    pub state: bool,
    /// Hosts it may reach; `"*"` allows any host.
    pub http: BTreeSet<String>,
    /// Whether it may ask the user questions.
    pub elicit: bool,
    /// Whether it may run commands under `mirrord exec`.
    pub mirrord: bool,
    /// The Kubernetes actions it may take (`[policy.NAME.kube]`).
    pub kube: Option<KubeAccess>,
    /// Host directories it may read, read-only, by the path the plugin
    /// opens them at.
    pub read_dirs: BTreeMap<String, PathBuf>,
}

impl Policy {
    /// Everything either policy allows.
    pub fn union(&self, other: &Policy) -> Policy {
        Policy {
            process: self.process.union(&other.process).cloned().collect(),
            state: self.state || other.state,
            http: self.http.union(&other.http).cloned().collect(),
            elicit: self.elicit || other.elicit,
            mirrord: self.mirrord || other.mirrord,
            kube: match (&self.kube, &other.kube) {
                (Some(a), Some(b)) => Some(a.union(b)),
                (a, b) => a.clone().or_else(|| b.clone()),
            },
            read_dirs: self
                .read_dirs
                .iter()
                .chain(&other.read_dirs)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

impl From<&Requested> for Policy {
    /// A policy that allows exactly what was requested.
    fn from(requested: &Requested) -> Policy {
        Policy {
            process: requested.process.clone(),
            state: requested.state,
            http: requested.http.clone(),
            elicit: requested.elicit,
            mirrord: requested.mirrord,
            kube: requested.kube.clone(),
            // Which host directory a plugin reads is the host's choice alone.
            read_dirs: BTreeMap::new(),
        }
    }
}

/// What a loaded plugin may actually do.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Grants {
    /// Programs it may run.
    pub process: BTreeSet<String>,
    /// Whether it may keep state.
    pub state: bool,
    /// Host patterns it may reach.
    pub http: BTreeSet<String>,
    /// Whether it may elicit.
    pub elicit: bool,
    /// Whether it may run commands under mirrord.
    pub mirrord: bool,
    /// The Kubernetes actions it may take; none when absent.
    pub kube: Option<KubeAccess>,
    /// Host directories it reads, read-only, by the path it opens them at.
    pub read_dirs: BTreeMap<String, PathBuf>,
}

impl Grants {
    /// Requested ∩ allowed. A request the policy does not allow is dropped
    /// (and reported by [`Grants::refused`]), not an error: the plugin still
    /// loads and its call fails with `denied` when it tries.
    pub fn intersect(requested: &Requested, policy: &Policy) -> Grants {
        let allowed =
            |set: &BTreeSet<String>, item: &String| set.contains("*") || set.contains(item);
        Grants {
            process: requested
                .process
                .iter()
                .filter(|p| allowed(&policy.process, p))
                .cloned()
                .collect(),
            state: requested.state && policy.state,
            http: requested
                .http
                .iter()
                .filter(|h| allowed(&policy.http, h))
                .cloned()
                .collect(),
            elicit: requested.elicit && policy.elicit,
            mirrord: requested.mirrord && policy.mirrord,
            kube: match (&requested.kube, &policy.kube) {
                (Some(wanted), Some(allowed)) => Some(wanted.intersect(allowed)),
                _ => None,
            },
            read_dirs: policy
                .read_dirs
                .iter()
                .filter(|(guest, _)| requested.read_dirs.contains(*guest))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Requests the policy did not grant, for the load report.
    pub fn refused(&self, requested: &Requested) -> Vec<String> {
        let mut refused = Vec::new();
        refused.extend(
            requested
                .process
                .difference(&self.process)
                .map(|p| format!("process:{p}")),
        );
        if requested.state && !self.state {
            refused.push("state".into());
        }
        refused.extend(
            requested
                .http
                .difference(&self.http)
                .map(|h| format!("http:{h}")),
        );
        if requested.elicit && !self.elicit {
            refused.push("elicit".into());
        }
        if requested.mirrord && !self.mirrord {
            refused.push("mirrord".into());
        }
        refused.extend(
            requested
                .read_dirs
                .iter()
                .filter(|guest| !self.read_dirs.contains_key(*guest))
                .map(|guest| format!("read_dirs:{guest}")),
        );
        if let Some(wanted) = &requested.kube {
            match &self.kube {
                None => refused.push("kube".into()),
                Some(granted) => refused.extend(granted.refused(wanted)),
            }
        }
        refused
    }

    /// Whether `program` (a name or absolute path) may be run.
    pub fn allows_program(&self, program: &str) -> bool {
        self.process.contains(program)
    }

    /// Whether an HTTP request to `host` may be sent. Patterns are exact
    /// host names or `*.suffix` for any subdomain.
    pub fn allows_http_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.http.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.strip_prefix("*.") {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => pattern == host,
            }
        })
    }
}

/// Kubernetes access: which contexts, namespaces, verbs and kinds. Each
/// set holds names or `"*"` for any. The context berth is configured with
/// needs no entry in `contexts`; other kubeconfig contexts do.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KubeAccess {
    /// Kubeconfig contexts besides the configured one.
    pub contexts: BTreeSet<String>,
    /// Namespaces.
    pub namespaces: BTreeSet<String>,
    /// Verbs: `apply`, `get`, `list`, `delete`, `scale`, `wait`, `logs`,
    /// `exec`, `port-forward`.
    pub verbs: BTreeSet<String>,
    /// Kinds, as in manifests: `Pod`, `Deployment`, `Service`, ...
    pub kinds: BTreeSet<String>,
}

/// The verbs a [`KubeAccess`] can name.
pub const KUBE_VERBS: [&str; 9] = [
    "apply",
    "get",
    "list",
    "delete",
    "scale",
    "wait",
    "logs",
    "exec",
    "port-forward",
];

/// Items of `wanted` that `allowed` allows, where `"*"` in either stands
/// for anything the other names.
fn intersect_sets(wanted: &BTreeSet<String>, allowed: &BTreeSet<String>) -> BTreeSet<String> {
    if allowed.contains("*") {
        wanted.clone()
    } else if wanted.contains("*") {
        allowed.clone()
    } else {
        wanted.intersection(allowed).cloned().collect()
    }
}

fn allows(set: &BTreeSet<String>, item: &str) -> bool {
    set.contains("*") || set.contains(item)
}

impl KubeAccess {
    /// Everything either allows.
    fn union(&self, other: &KubeAccess) -> KubeAccess {
        let both = |a: &BTreeSet<String>, b: &BTreeSet<String>| a.union(b).cloned().collect();
        KubeAccess {
            contexts: both(&self.contexts, &other.contexts),
            namespaces: both(&self.namespaces, &other.namespaces),
            verbs: both(&self.verbs, &other.verbs),
            kinds: both(&self.kinds, &other.kinds),
        }
    }

    /// What is both wanted and allowed.
    fn intersect(&self, allowed: &KubeAccess) -> KubeAccess {
        KubeAccess {
            contexts: intersect_sets(&self.contexts, &allowed.contexts),
            namespaces: intersect_sets(&self.namespaces, &allowed.namespaces),
            verbs: intersect_sets(&self.verbs, &allowed.verbs),
            kinds: intersect_sets(&self.kinds, &allowed.kinds),
        }
    }

    /// Wanted items this grant lacks, for the load report.
    fn refused(&self, wanted: &KubeAccess) -> Vec<String> {
        let mut refused = Vec::new();
        for (field, want, have) in [
            ("context", &wanted.contexts, &self.contexts),
            ("namespace", &wanted.namespaces, &self.namespaces),
            ("verb", &wanted.verbs, &self.verbs),
            ("kind", &wanted.kinds, &self.kinds),
        ] {
            refused.extend(
                want.iter()
                    .filter(|item| !allows(have, item))
                    .map(|item| format!("kube:{field}:{item}")),
            );
        }
        refused
    }

    /// Why `verb` through `context` (when not the configured one) is
    /// refused, or `None` when it is allowed; checked before anything else
    /// is known about the action.
    pub fn verb_refusal(&self, verb: &str, context: Option<&str>) -> Option<String> {
        if !allows(&self.verbs, verb) {
            return Some(format!("the kube verb `{verb}`"));
        }
        if let Some(context) = context
            && !allows(&self.contexts, context)
        {
            return Some(format!("the kube context `{context}`"));
        }
        None
    }

    /// Why `verb` on `kind` in `namespace` (through `context`, when not the
    /// configured one) is refused, or `None` when it is allowed.
    pub fn refusal(
        &self,
        verb: &str,
        context: Option<&str>,
        namespace: &str,
        kind: &str,
    ) -> Option<String> {
        if let Some(refused) = self.verb_refusal(verb, context) {
            return Some(refused);
        }
        if !allows(&self.namespaces, namespace) {
            return Some(format!("the namespace `{namespace}`"));
        }
        if !allows(&self.kinds, kind) {
            return Some(format!("the kind `{kind}`"));
        }
        None
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
    use super::*;

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
            kube: None,
            read_dirs: BTreeSet::new(),
        };
        let policy = Policy {
            process: set(&["podman"]),
            state: false,
            http: set(&["a.com", "b.com"]),
            elicit: true,
            mirrord: false,
            kube: None,
            read_dirs: BTreeMap::new(),
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
        };
        let allowed = KubeAccess {
            contexts: set(&[]),
            namespaces: set(&["team-a"]),
            verbs: set(&["get", "apply"]),
            kinds: set(&["*"]),
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
            vec!["kube:namespace:*", "kube:verb:exec"]
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
            kube: None,
            read_dirs: set(&["/templates"]),
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

//! What each capability unit says about its grant. A unit names what a
//! plugin may request under its key in `plugin.toml [capabilities]`, what
//! the operator may allow under the same key in `berth.toml [policy.NAME]`,
//! and what a plugin gets from the two. [`super::grants`] walks every unit
//! through this trait, so no function there knows a capability by name.

use std::collections::BTreeSet;
use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The grant rules of one capability.
pub trait Capability {
    /// What a manifest requests.
    type Request: Debug + Clone + Default + PartialEq + Serialize + DeserializeOwned;
    /// What a policy allows.
    type Allow: Debug + Clone + Default + PartialEq + Serialize + DeserializeOwned;
    /// What a loaded plugin may do; the default grants nothing.
    type Grant: Debug + Clone + Default + PartialEq + Serialize;

    /// The allowance that admits exactly `request` (the default policy of a
    /// bundled plugin berth.toml does not name).
    fn allow_requested(request: &Self::Request) -> Self::Allow;

    /// Everything either allowance admits (`[policy."*"]` joined with a
    /// plugin's own).
    fn union(a: &Self::Allow, b: &Self::Allow) -> Self::Allow;

    /// Requested ∩ allowed.
    fn grant(request: &Self::Request, allow: &Self::Allow) -> Self::Grant;

    /// What was requested and not granted, for the load report.
    fn refused(request: &Self::Request, grant: &Self::Grant) -> Vec<String>;
}

/// A capability that is on or off (`state = true`).
pub trait Switch {
    /// Its key, as the load report names a refusal.
    const KEY: &'static str;
}

impl<T: Switch> Capability for T {
    type Request = bool;
    type Allow = bool;
    type Grant = bool;

    fn allow_requested(request: &bool) -> bool {
        *request
    }

    fn union(a: &bool, b: &bool) -> bool {
        *a || *b
    }

    fn grant(request: &bool, allow: &bool) -> bool {
        *request && *allow
    }

    fn refused(request: &bool, grant: &bool) -> Vec<String> {
        if *request && !*grant {
            vec![T::KEY.to_string()]
        } else {
            Vec::new()
        }
    }
}

/// Implements [`Capability`] for `$unit`, a list of names under `$key`
/// (programs, hosts) where a policy's `"*"` admits any requested name.
macro_rules! name_list {
    ($unit:ty, $key:literal) => {
        impl $crate::capabilities::unit::Capability for $unit {
            type Request = std::collections::BTreeSet<String>;
            type Allow = std::collections::BTreeSet<String>;
            type Grant = std::collections::BTreeSet<String>;

            fn allow_requested(request: &Self::Request) -> Self::Allow {
                request.clone()
            }

            fn union(a: &Self::Allow, b: &Self::Allow) -> Self::Allow {
                $crate::capabilities::unit::both_names(a, b)
            }

            fn grant(request: &Self::Request, allow: &Self::Allow) -> Self::Grant {
                $crate::capabilities::unit::granted_names(request, allow)
            }

            fn refused(request: &Self::Request, grant: &Self::Grant) -> Vec<String> {
                $crate::capabilities::unit::refused_names($key, request, grant)
            }
        }
    };
}
pub(crate) use name_list;

/// Whether `set` names `item`, or holds `"*"` for anything.
pub fn names(set: &BTreeSet<String>, item: &str) -> bool {
    set.contains("*") || set.contains(item)
}

/// The requested names an allow list admits (`"*"` in it admits any).
pub fn granted_names(requested: &BTreeSet<String>, allowed: &BTreeSet<String>) -> BTreeSet<String> {
    requested
        .iter()
        .filter(|item| names(allowed, item))
        .cloned()
        .collect()
}

/// Requested names missing from `granted`, as `KEY:name`.
pub fn refused_names(
    key: &str,
    requested: &BTreeSet<String>,
    granted: &BTreeSet<String>,
) -> Vec<String> {
    requested
        .difference(granted)
        .map(|item| format!("{key}:{item}"))
        .collect()
}

/// The union of two name lists.
pub fn both_names(a: &BTreeSet<String>, b: &BTreeSet<String>) -> BTreeSet<String> {
    a.union(b).cloned().collect()
}

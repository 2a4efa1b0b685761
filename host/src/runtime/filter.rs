//! `[tools]`: which tools are served, by name patterns.

use serde::Deserialize;

/// Tool filter: a tool is served when it matches `allow` (or `allow` is
/// empty) and does not match `deny`. Patterns are names with `*` wildcards.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolFilter {
    /// Patterns of tools to serve.
    pub allow: Vec<String>,
    /// Patterns of tools to hide.
    pub deny: Vec<String>,
}

impl ToolFilter {
    /// Whether `tool` passes the filter.
    pub fn admits(&self, tool: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|p| glob_match(p, tool)))
            && !self.deny.iter().any(|p| glob_match(p, tool))
    }
}

/// Match `name` against `pattern`, where `*` matches any run of characters.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_prefix_suffix_and_middle() {
        assert!(glob_match("run_*", "run_python"));
        assert!(glob_match("*_status", "pod_status"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXcYYb"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("*", "anything"));
    }

    #[test]
    fn filter_applies_allow_then_deny() {
        let filter = ToolFilter {
            allow: vec!["run_*".into()],
            deny: vec!["run_rust".into()],
        };
        assert!(filter.admits("run_python"));
        assert!(!filter.admits("run_rust"));
        assert!(!filter.admits("deploy"));
    }
}

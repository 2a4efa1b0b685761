//! The names upstream tools are served under: `SERVER__tool`, shortened
//! deterministically when that would break berth's tool-name rule.

use sha2::{Digest, Sha256};

use crate::runtime::registry::is_valid_tool_name;

/// Between the server's name and its tool's.
pub const SEPARATOR: &str = "__";
/// Longest served tool name.
const MAX_LEN: usize = 64;
/// Hex digits of the digest that keeps a shortened name unique.
const DIGEST_LEN: usize = 8;

/// The name berth serves tool `tool` of server `server` under.
///
/// `server__tool` when that is a valid name of at most 64 characters.
/// Otherwise the tool's name with every character outside `[A-Za-z0-9_-]`
/// replaced by `_`, cut to fit, then `-` and the first 8 hex digits of the
/// SHA-256 of the original tool name: the same upstream tool always gets
/// the same name, and two tools whose cut names agree still differ.
pub fn served_name(server: &str, tool: &str) -> String {
    let plain = format!("{server}{SEPARATOR}{tool}");
    if is_valid_tool_name(&plain) {
        return plain;
    }
    let digest = hex::encode(Sha256::digest(tool.as_bytes()));
    let room = MAX_LEN - server.len() - SEPARATOR.len() - 1 - DIGEST_LEN;
    let cleaned: String = tool
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(room)
        .collect();
    format!("{server}{SEPARATOR}{cleaned}-{}", &digest[..DIGEST_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_valid_names_are_prefixed_only() {
        assert_eq!(served_name("everything", "echo"), "everything__echo");
    }

    #[test]
    fn long_or_dotted_names_are_shortened_deterministically_and_stay_distinct() {
        let long_a = format!("{}_a", "x".repeat(70));
        let long_b = format!("{}_b", "x".repeat(70));
        let a = served_name("everything", &long_a);
        let b = served_name("everything", &long_b);
        assert_eq!(a, served_name("everything", &long_a));
        assert_ne!(a, b);
        assert!(is_valid_tool_name(&a) && a.len() == 64, "{a}");
        assert!(a.starts_with("everything__xxx"), "{a}");
        let dotted = served_name("gh", "repos.list");
        assert!(is_valid_tool_name(&dotted), "{dotted}");
        assert!(dotted.starts_with("gh__repos_list-"), "{dotted}");
        assert_ne!(dotted, served_name("gh", "repos_list"));
    }
}

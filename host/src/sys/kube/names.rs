//! Kubernetes name rules, checked before anything is sent.

/// Whether `name` is a DNS-1123 subdomain, the rule for most object names.
pub fn is_object_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 253
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Whether `name` is a DNS-1123 label, the rule for namespaces, services
/// and the names of workloads berth creates.
pub fn is_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_object_name(name)
}

/// `Ok` when `name` is a DNS label, else an error naming `what`.
pub fn check_label(what: &str, name: &str) -> Result<(), String> {
    if is_label(name) {
        Ok(())
    } else {
        Err(format!(
            "{what} `{name}` is not a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63)"
        ))
    }
}

/// `Ok` when `name` is an object name, else an error naming `what`.
pub fn check_object_name(what: &str, name: &str) -> Result<(), String> {
    if is_object_name(name) {
        Ok(())
    } else {
        Err(format!(
            "{what} `{name}` is not a Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_object_names() {
        assert!(is_label("web-1"));
        assert!(!is_label("Web"));
        assert!(!is_label("-web"));
        assert!(!is_label("a.b"));
        assert!(!is_label(&"a".repeat(64)));
        assert!(is_object_name("a.b"));
        assert!(!is_object_name(""));
        assert!(!is_object_name("a;rm"));
        assert!(
            check_label("namespace", "Bad_Ns")
                .unwrap_err()
                .contains("`Bad_Ns`")
        );
    }
}

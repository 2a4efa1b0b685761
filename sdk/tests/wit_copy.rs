//! The SDK publishes its own copy of the contract (`sdk/macros/wit`), since
//! a published crate cannot read the repository's `wit/`. The copy must be
//! the newest released version, byte for byte.

use std::collections::BTreeMap;
use std::path::Path;

/// Every file under `dir`, by its path relative to `dir`.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap_or_else(|e| panic!("{}: {e}", next.display()))
        {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().display().to_string();
                found.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

#[test]
fn the_sdk_carries_the_newest_contract_unchanged() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let contract = files(&root.join("../wit/since_v0.1.0"));
    let copy = files(&root.join("macros/wit"));
    assert!(!contract.is_empty(), "wit/since_v0.1.0 is empty");
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&copy),
        names(&contract),
        "the SDK's WIT copy has other files"
    );
    for (name, bytes) in &contract {
        assert!(
            copy[name] == *bytes,
            "sdk/macros/wit/{name} differs from wit/since_v0.1.0/{name}; copy it again"
        );
    }
}

//! `berth:plugin/state`: per-plugin key-value state in the host database.

use wasmtime::component::{HasSelf, Linker};

use super::unit::Switch;
use super::{Caller, HostState};
use crate::contract::bindings::shared::berth::plugin::state as wit;
use crate::contract::bindings::types::Error as WitError;
use crate::state::{Database, MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// The `state` capability: a key-value store of the plugin's own.
pub struct State;

impl Switch for State {
    const KEY: &'static str = "state";
}

fn check(caller: &Caller, key: &str) -> Result<(), WitError> {
    if !caller.grants.state {
        return Err(caller.denied("state"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(WitError::InvalidInput(format!(
            "state key is {} bytes; at most {MAX_KEY_BYTES} allowed",
            key.len()
        )));
    }
    Ok(())
}

fn failed(err: anyhow::Error) -> WitError {
    WitError::Failed(format!("state database: {err:#}"))
}

/// The value under `key`.
pub fn get(caller: &Caller, db: &Database, key: &str) -> Result<Option<Vec<u8>>, WitError> {
    check(caller, key)?;
    db.get(&caller.plugin, key).map_err(failed)
}

/// Store `value` under `key`.
pub fn set(caller: &Caller, db: &Database, key: &str, value: &[u8]) -> Result<(), WitError> {
    check(caller, key)?;
    if key.is_empty() {
        return Err(WitError::InvalidInput("state key is empty".into()));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(WitError::InvalidInput(format!(
            "state value for `{key}` is {} bytes; at most {MAX_VALUE_BYTES} allowed",
            value.len()
        )));
    }
    db.set(&caller.plugin, key, value).map_err(failed)
}

/// Remove `key`.
pub fn delete(caller: &Caller, db: &Database, key: &str) -> Result<bool, WitError> {
    check(caller, key)?;
    db.delete(&caller.plugin, key).map_err(failed)
}

/// Keys with `prefix`.
pub fn keys(caller: &Caller, db: &Database, prefix: &str) -> Result<Vec<String>, WitError> {
    check(caller, prefix)?;
    db.keys(&caller.plugin, prefix).map_err(failed)
}

impl wit::Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, WitError>> {
        Ok(get(&self.caller, &self.services.db, &key))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), WitError>> {
        Ok(set(&self.caller, &self.services.db, &key, &value))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, WitError>> {
        Ok(delete(&self.caller, &self.services.db, &key))
    }

    async fn keys(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, WitError>> {
        Ok(keys(&self.caller, &self.services.db, &prefix))
    }
}

/// Add `berth:plugin/state` to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wit::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::capabilities::grants::Grants;

    fn caller(state: bool) -> Caller {
        Caller {
            plugin: "p".into(),
            config: "{}".into(),
            grants: Arc::new(Grants {
                state,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn ungranted_state_is_denied_and_untouched() {
        let db = Database::in_memory().unwrap();
        assert!(matches!(
            set(&caller(false), &db, "k", b"v"),
            Err(WitError::Denied(_))
        ));
        assert!(matches!(
            get(&caller(false), &db, "k"),
            Err(WitError::Denied(_))
        ));
        assert_eq!(db.keys("p", "").unwrap().len(), 0);
    }

    #[test]
    fn granted_state_round_trips() {
        let db = Database::in_memory().unwrap();
        set(&caller(true), &db, "k", b"v").unwrap();
        assert_eq!(
            get(&caller(true), &db, "k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(keys(&caller(true), &db, "").unwrap(), vec!["k"]);
        assert!(delete(&caller(true), &db, "k").unwrap());
    }

    #[test]
    fn oversized_keys_and_values_are_invalid_input() {
        let db = Database::in_memory().unwrap();
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(matches!(
            set(&caller(true), &db, &long_key, b"v"),
            Err(WitError::InvalidInput(_))
        ));
        let big = vec![0u8; MAX_VALUE_BYTES + 1];
        assert!(
            matches!(set(&caller(true), &db, "k", &big), Err(WitError::InvalidInput(m)) if m.contains("`k`"))
        );
    }
}

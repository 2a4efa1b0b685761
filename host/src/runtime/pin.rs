//! Pinned plugin files: the sha256 an operator wrote into `berth.toml` for a
//! plugin, so a changed `plugin.wasm` is refused rather than loaded.

use std::fmt;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The sha256 a plugin's component must have, written `sha256:HEX` (or
/// bare hex) in `[pins]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin([u8; 32]);

impl Pin {
    /// Parse `sha256:` plus 64 hex digits (the prefix may be left out).
    pub fn parse(text: &str) -> Result<Pin, String> {
        let hex_part = text.strip_prefix("sha256:").unwrap_or(text);
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut digest).map_err(|_| {
            format!("`{text}` is not a pin: expected `sha256:` followed by 64 hex digits (`sha256sum plugin.wasm`)")
        })?;
        Ok(Pin(digest))
    }

    /// The pin of `bytes`.
    pub fn of(bytes: &[u8]) -> Pin {
        Pin(Sha256::digest(bytes).into())
    }

    /// Refuse `wasm` of plugin `name` unless it has this digest, naming both.
    pub fn check(&self, name: &str, wasm: &[u8]) -> anyhow::Result<()> {
        let actual = Pin::of(wasm);
        if actual != *self {
            anyhow::bail!(
                "the component of plugin `{name}` is {actual}, but berth.toml pins {self} ([pins] {name}); refusing to load it"
            );
        }
        Ok(())
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Pin {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Pin::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_parses_with_or_without_its_prefix() {
        let hex = "ab".repeat(32);
        assert_eq!(Pin::parse(&hex), Pin::parse(&format!("sha256:{hex}")));
        assert_eq!(
            Pin::parse(&hex).unwrap().to_string(),
            format!("sha256:{hex}")
        );
    }

    #[test]
    fn a_malformed_pin_names_itself_and_the_form() {
        for bad in ["sha256:abc", "md5:00", &"zz".repeat(32)] {
            let err = Pin::parse(bad).unwrap_err();
            assert!(err.contains(bad) && err.contains("64 hex digits"), "{err}");
        }
    }

    #[test]
    fn a_mismatch_names_both_digests() {
        let pin = Pin::of(b"the reviewed bytes");
        assert!(pin.check("p", b"the reviewed bytes").is_ok());
        let err = pin.check("p", b"other bytes").unwrap_err().to_string();
        assert!(err.contains(&pin.to_string()), "{err}");
        assert!(err.contains(&Pin::of(b"other bytes").to_string()), "{err}");
    }
}

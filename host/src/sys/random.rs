//! Secret random bytes from the kernel, for tokens and keys.

use std::io::Read;

use anyhow::Context;

/// `N` bytes from `/dev/urandom`; `what` names their use in the error.
pub fn secret_bytes<const N: usize>(what: &str) -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .with_context(|| format!("reading /dev/urandom for {what}"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_draws_differ() {
        let a: [u8; 32] = secret_bytes("a test").unwrap();
        let b: [u8; 32] = secret_bytes("a test").unwrap();
        assert_ne!(a, b);
    }
}

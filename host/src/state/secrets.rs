//! The secrets store: named values an operator keeps for berth (API keys,
//! tokens, connection strings), looked up in the providers `[secrets]`
//! lists: a 0600 file under the data directory, and environment variables.
//! Values are resolved only where they are used (a process environment, an
//! upstream's header) and are redacted from what berth shows back.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Longest secret name.
pub const MAX_NAME_LEN: usize = 64;
/// Largest secret value, bytes.
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// Secret values shorter than this are not searched for when redacting:
/// a two-letter value would blank out ordinary words.
const MIN_REDACTED_LEN: usize = 4;

/// Where secrets are looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// `DATA_DIR/secrets.json`, readable by berth's user only; managed with
    /// `berth secrets set | list | rm`.
    File,
    /// Environment variables of the berth process: `NAME` is read from
    /// `PREFIX` + `NAME` upper-cased with `-` and `.` as `_`.
    Env,
}

impl Provider {
    /// The provider's name in config and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::File => "file",
            Provider::Env => "env",
        }
    }
}

/// `[secrets]` in berth.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Providers asked in order; the first that has the name answers.
    pub providers: Vec<Provider>,
    /// Prefix of the environment variables the `env` provider reads.
    pub env_prefix: String,
    /// Secrets that templates' `secrets` parameters may name: names, or
    /// prefixes ending in `*`.
    /// None by default: an agent deploying a package of its choice with a
    /// secret could send the secret anywhere, so the operator says which.
    pub templates: Vec<String>,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            providers: vec![Provider::File, Provider::Env],
            env_prefix: "BERTH_SECRET_".into(),
            templates: Vec::new(),
        }
    }
}

/// Why a secret could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The name breaks the naming rule.
    #[error(
        "secret name `{0}` is not valid: use 1-64 characters of A-Z, a-z, 0-9, '_', '-' and '.', not starting with '.' (no path characters)"
    )]
    InvalidName(String),
    /// No provider has it.
    #[error(
        "secret `{name}` is not set (looked in: {looked}); set it with `berth secrets set {name}`"
    )]
    Missing {
        /// The name asked for.
        name: String,
        /// The providers asked, in order.
        looked: String,
    },
    /// The value is empty, too large or has a NUL byte.
    #[error("the value of secret `{0}` is not valid: it must be 1 to 65536 bytes with no NUL byte")]
    InvalidValue(String),
    /// A template named a secret the operator keeps from templates.
    #[error(
        "secret `{0}` may not be given to a template; the operator allows it with [secrets] templates = [\"{0}\"] in berth.toml"
    )]
    NotForTemplates(String),
    /// A reference in a config value is malformed.
    #[error("`{0}` holds a malformed secret reference: write `${{secret:NAME}}`")]
    BadReference(String),
    /// The file provider could not be read or written.
    #[error("the secrets file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A resolved secret value. It prints as its name only, so it cannot reach
/// a log through `{:?}` by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    name: String,
    value: String,
}

impl Secret {
    /// A secret made up on the spot, for tests elsewhere in the crate.
    #[cfg(test)]
    pub(crate) fn for_test(name: &str, value: &str) -> Secret {
        Secret {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The secret's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value, for the one place it is used.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.name)
    }
}

/// Whether `name` may name a secret: it becomes part of a file's content
/// and an environment variable's name, never a path.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// [`is_valid_name`] as an error naming the input.
pub fn check_name(name: &str) -> Result<(), SecretError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(SecretError::InvalidName(name.chars().take(80).collect()))
    }
}

/// The secrets berth can see, through its configured providers.
#[derive(Debug, Clone)]
pub struct SecretStore {
    file: PathBuf,
    config: SecretsConfig,
}

/// A named secret as `berth secrets list` shows it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    /// The name.
    pub name: String,
    /// The provider that answers for it.
    pub provider: &'static str,
}

impl SecretStore {
    /// The store over `DATA_DIR/secrets.json` and `config`'s providers.
    pub fn new(data_dir: &Path, config: SecretsConfig) -> Self {
        Self {
            file: data_dir.join("secrets.json"),
            config,
        }
    }

    /// The file the `file` provider keeps.
    pub fn file_path(&self) -> &Path {
        &self.file
    }

    fn file_error(&self, message: impl fmt::Display) -> SecretError {
        SecretError::File {
            path: self.file.clone(),
            message: message.to_string(),
        }
    }

    fn read_file(&self) -> Result<BTreeMap<String, String>, SecretError> {
        match std::fs::read(&self.file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| self.file_error(format!("is not a JSON object of strings: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(self.file_error(e)),
        }
    }

    /// Replace the file with `secrets`, atomically and 0600 from the first
    /// byte, so a crash leaves either the old or the new set.
    fn write_file(&self, secrets: &BTreeMap<String, String>) -> Result<(), SecretError> {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.file_error(e))?;
        let mut temp = tempfile::Builder::new()
            .prefix(".secrets")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(|e| self.file_error(e))?;
        let body = serde_json::to_vec_pretty(secrets).map_err(|e| self.file_error(e))?;
        temp.write_all(&body)
            .and_then(|()| temp.as_file().sync_all())
            .map_err(|e| self.file_error(e))?;
        temp.persist(&self.file)
            .map_err(|e| self.file_error(e.error))?;
        Ok(())
    }

    /// Hold the store's lock while `change` edits the file's secrets, so
    /// two `berth secrets set` at once both land.
    fn edit<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> T,
    ) -> Result<T, SecretError> {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.file_error(e))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.file.with_extension("lock"))
            .map_err(|e| self.file_error(e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| self.file_error(e))?;
        let mut secrets = self.read_file()?;
        let out = change(&mut secrets);
        self.write_file(&secrets)?;
        Ok(out)
    }

    /// Keep `value` as secret `name` in the file provider.
    pub fn set(&self, name: &str, value: &str) -> Result<(), SecretError> {
        check_name(name)?;
        if value.is_empty() || value.len() > MAX_VALUE_BYTES || value.contains('\0') {
            return Err(SecretError::InvalidValue(name.to_string()));
        }
        self.edit(|secrets| {
            secrets.insert(name.to_string(), value.to_string());
        })
    }

    /// Remove secret `name` from the file provider; whether it was there.
    pub fn remove(&self, name: &str) -> Result<bool, SecretError> {
        check_name(name)?;
        self.edit(|secrets| secrets.remove(name).is_some())
    }

    /// Every secret the providers hold, by name, with the provider that
    /// answers for it (the first in order).
    pub fn list(&self) -> Result<Vec<Listed>, SecretError> {
        let mut found: BTreeMap<String, &'static str> = BTreeMap::new();
        for provider in &self.config.providers {
            let names: Vec<String> = match provider {
                Provider::File => self.read_file()?.into_keys().collect(),
                Provider::Env => std::env::vars_os()
                    .filter_map(|(k, _)| k.into_string().ok())
                    .filter_map(|k| k.strip_prefix(&self.config.env_prefix).map(str::to_string))
                    .filter(|n| is_valid_name(n))
                    .collect(),
            };
            for name in names {
                found.entry(name).or_insert(provider.as_str());
            }
        }
        Ok(found
            .into_iter()
            .map(|(name, provider)| Listed { name, provider })
            .collect())
    }

    /// The environment variable the `env` provider reads for `name`.
    pub fn env_var(&self, name: &str) -> String {
        let upper: String = name
            .chars()
            .map(|c| match c {
                '-' | '.' => '_',
                c => c.to_ascii_uppercase(),
            })
            .collect();
        format!("{}{upper}", self.config.env_prefix)
    }

    /// One reading of the store, for resolving several references: the
    /// file is read at most once.
    pub fn lookup(&self) -> Lookup<'_> {
        Lookup {
            store: self,
            file: None,
        }
    }

    /// The value of secret `name`, from the first provider that has it.
    pub fn get(&self, name: &str) -> Result<Secret, SecretError> {
        self.lookup().get(name)
    }

    /// `text` with every `${secret:NAME}` replaced by the secret's value,
    /// and the secrets it used.
    pub fn expand(&self, text: &str) -> Result<(String, Vec<Secret>), SecretError> {
        self.lookup().expand(text)
    }
}

/// One reading of a [`SecretStore`]: the file provider's contents are read
/// on first need and kept for the lookups that follow.
pub struct Lookup<'a> {
    store: &'a SecretStore,
    file: Option<BTreeMap<String, String>>,
}

impl Lookup<'_> {
    /// The value of secret `name`, from the first provider that has it.
    pub fn get(&mut self, name: &str) -> Result<Secret, SecretError> {
        check_name(name)?;
        let config = &self.store.config;
        for provider in &config.providers {
            let value = match provider {
                Provider::File => {
                    if self.file.is_none() {
                        self.file = Some(self.store.read_file()?);
                    }
                    self.file.as_ref().and_then(|f| f.get(name).cloned())
                }
                Provider::Env => std::env::var(self.store.env_var(name)).ok(),
            };
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                return Ok(Secret {
                    name: name.to_string(),
                    value,
                });
            }
        }
        Err(SecretError::Missing {
            name: name.to_string(),
            looked: config
                .providers
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// `text` with every `${secret:NAME}` replaced by the secret's value,
    /// and the secrets it used.
    pub fn expand(&mut self, text: &str) -> Result<(String, Vec<Secret>), SecretError> {
        let mut out = String::with_capacity(text.len());
        let mut used = Vec::new();
        for part in references(text)? {
            match part {
                Part::Literal(literal) => out.push_str(literal),
                Part::Secret(name) => {
                    let secret = self.get(name)?;
                    out.push_str(secret.expose());
                    used.push(secret);
                }
            }
        }
        Ok((out, used))
    }

    /// Like [`Lookup::expand`], for a value a template rendered: every
    /// secret it names must match `[secrets] templates`, checked before any
    /// is looked up.
    pub fn expand_for_template(
        &mut self,
        text: &str,
    ) -> Result<(String, Vec<Secret>), SecretError> {
        for part in references(text)? {
            if let Part::Secret(name) = part
                && !self
                    .store
                    .config
                    .templates
                    .iter()
                    .any(|rule| match rule.strip_suffix('*') {
                        Some(prefix) => name.starts_with(prefix),
                        None => rule == name,
                    })
            {
                return Err(SecretError::NotForTemplates(name.to_string()));
            }
        }
        self.expand(text)
    }
}

/// A piece of a config value: literal text or a secret reference.
#[derive(Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// Text kept as written.
    Literal(&'a str),
    /// `${secret:NAME}`.
    Secret(&'a str),
}

/// Split `text` into literals and `${secret:NAME}` references, checking
/// each name (without looking any up).
pub fn references(text: &str) -> Result<Vec<Part<'_>>, SecretError> {
    const OPEN: &str = "${secret:";
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        if at > 0 {
            parts.push(Part::Literal(&rest[..at]));
        }
        let after = &rest[at + OPEN.len()..];
        let end = after
            .find('}')
            .ok_or_else(|| SecretError::BadReference(text.chars().take(80).collect()))?;
        let name = &after[..end];
        check_name(name)?;
        parts.push(Part::Secret(name));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest));
    }
    Ok(parts)
}

/// Replaces the values of known secrets in text berth shows back (results,
/// logs) with `[secret NAME]`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<Secret>,
}

impl Redactor {
    /// A redactor for `secrets`; the longest values are replaced first, so
    /// a value inside another is not half-replaced.
    pub fn new(mut secrets: Vec<Secret>) -> Self {
        secrets.retain(|s| s.value.len() >= MIN_REDACTED_LEN);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.value.len()));
        secrets.dedup_by(|a, b| a.value == b.value);
        Self { secrets }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret value replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(&secret.value) {
                out = out.replace(&secret.value, &format!("[secret {}]", secret.name));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> SecretStore {
        SecretStore::new(
            dir,
            SecretsConfig {
                providers: vec![Provider::File, Provider::Env],
                env_prefix: "BERTH_TEST_SECRET_UNIT_".into(),
                templates: Vec::new(),
            },
        )
    }

    #[test]
    fn set_get_list_remove_round_trip_through_a_0600_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store.set("api-key", "s3cr3t-value").unwrap();
        store.set("other", "second").unwrap();
        assert_eq!(store.get("api-key").unwrap().expose(), "s3cr3t-value");
        let mode = std::fs::metadata(store.file_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<String> = store.list().unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["api-key", "other"]);
        assert!(store.remove("api-key").unwrap());
        assert!(!store.remove("api-key").unwrap());
        let err = store.get("api-key").unwrap_err().to_string();
        assert!(err.contains("`api-key` is not set"), "{err}");
        assert!(err.contains("file, env"), "{err}");
    }

    #[test]
    fn names_with_path_characters_are_refused_before_any_effect() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        for bad in [
            "../etc/passwd",
            "a/b",
            "",
            ".hidden",
            "x y",
            &"n".repeat(65),
        ] {
            let err = store.set(bad, "value").unwrap_err();
            assert!(matches!(err, SecretError::InvalidName(_)), "{bad}: {err}");
            assert!(matches!(
                store.get(bad).unwrap_err(),
                SecretError::InvalidName(_)
            ));
        }
        assert!(!store.file_path().exists());
    }

    #[test]
    fn bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        assert!(matches!(
            store.set("a", ""),
            Err(SecretError::InvalidValue(_))
        ));
        assert!(matches!(
            store.set("a", "x\0y"),
            Err(SecretError::InvalidValue(_))
        ));
    }

    #[test]
    fn env_names_are_upper_cased_with_underscores() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            store(dir.path()).env_var("github.token-2"),
            "BERTH_TEST_SECRET_UNIT_GITHUB_TOKEN_2"
        );
    }

    #[test]
    fn concurrent_sets_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        std::thread::scope(|s| {
            for i in 0..8 {
                let store = store.clone();
                s.spawn(move || store.set(&format!("k{i}"), "value").unwrap());
            }
        });
        assert_eq!(store.list().unwrap().len(), 8);
    }

    #[test]
    fn references_expand_and_malformed_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        store.set("tok", "abcd1234").unwrap();
        let (text, used) = store.expand("Bearer ${secret:tok}!").unwrap();
        assert_eq!(text, "Bearer abcd1234!");
        assert_eq!(used[0].name(), "tok");
        assert_eq!(store.expand("plain $HOME").unwrap().0, "plain $HOME");
        assert!(matches!(
            store.expand("x ${secret:tok"),
            Err(SecretError::BadReference(_))
        ));
        assert!(matches!(
            store.expand("${secret:../x}"),
            Err(SecretError::InvalidName(_))
        ));
        assert!(matches!(
            store.expand("${secret:nope}"),
            Err(SecretError::Missing { .. })
        ));
    }

    #[test]
    fn templates_get_only_the_secrets_the_operator_lists() {
        let dir = tempfile::tempdir().unwrap();
        let config = SecretsConfig {
            templates: vec!["github-*".into()],
            ..SecretsConfig::default()
        };
        let store = SecretStore::new(dir.path(), config);
        store.set("github-token", "ghp_value").unwrap();
        store.set("db-password", "hunter22").unwrap();
        let (value, used) = store
            .lookup()
            .expand_for_template("${secret:github-token}")
            .unwrap();
        assert_eq!((value.as_str(), used.len()), ("ghp_value", 1));
        let err = store
            .lookup()
            .expand_for_template("x ${secret:db-password}")
            .unwrap_err();
        assert!(matches!(err, SecretError::NotForTemplates(ref n) if n == "db-password"));
        assert!(err.to_string().contains("[secrets] templates"), "{err}");
    }

    #[test]
    fn redaction_replaces_values_longest_first_and_debug_hides_them() {
        let a = Secret {
            name: "short".into(),
            value: "abcd".into(),
        };
        let b = Secret {
            name: "long".into(),
            value: "abcdefgh".into(),
        };
        let tiny = Secret {
            name: "tiny".into(),
            value: "ab".into(),
        };
        let redactor = Redactor::new(vec![a.clone(), b, tiny]);
        assert_eq!(
            redactor.redact("x abcdefgh y abcd ab"),
            "x [secret long] y [secret short] ab"
        );
        assert_eq!(format!("{a:?}"), "Secret(short)");
    }
}

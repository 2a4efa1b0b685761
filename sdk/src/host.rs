//! What the host does for a plugin: talk to the caller, keep state, run
//! programs. Each function needs the matching grant in `plugin.toml` and the
//! host's policy, and returns [`Error::Denied`](crate::Error::Denied) without it.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::bindings::berth::plugin::context;
use crate::{ElicitAnswer, Error, LogLevel, Result};

/// Send a log message to the client of the current call.
///
/// ```no_run
/// berth_sdk::log(berth_sdk::LogLevel::Info, "cloning repository");
/// ```
pub fn log(level: LogLevel, message: impl AsRef<str>) {
    context::log(level, message.as_ref());
}

/// Report progress of the current call.
///
/// ```no_run
/// for step in 0..3 {
///     berth_sdk::progress(step as f64, Some(3.0), Some("working"));
/// }
/// ```
pub fn progress(done: f64, total: Option<f64>, message: Option<&str>) {
    context::progress(done, total, message);
}

/// Whether the client has cancelled the current call.
///
/// ```no_run
/// if berth_sdk::cancelled() {
///     return;
/// }
/// ```
pub fn cancelled() -> bool {
    context::cancelled()
}

/// The plugin's settings: the `[plugin_config.NAME]` table of the host's
/// berth.toml, as JSON (an empty object when there is none).
///
/// ```no_run
/// let roots = berth_sdk::config()["allowed_volume_roots"].clone();
/// ```
pub fn config() -> serde_json::Value {
    serde_json::from_str(&context::config()).unwrap_or_else(|_| serde_json::json!({}))
}

/// The plugin's settings parsed as `T` (missing keys take `T`'s defaults
/// when it derives them with `#[serde(default)]`), or an error naming the
/// `[plugin_config.PLUGIN]` section and the bad key.
///
/// ```no_run
/// #[derive(serde::Deserialize, Default)]
/// #[serde(default, deny_unknown_fields)]
/// struct Settings { pull: String }
/// let settings: Settings = berth_sdk::settings("podman")?;
/// # Ok::<(), berth_sdk::Error>(())
/// ```
pub fn settings<T: DeserializeOwned>(plugin: &str) -> Result<T> {
    serde_json::from_value(config())
        .map_err(|e| Error::invalid_input(format!("[plugin_config.{plugin}] in berth.toml: {e}")))
}

/// This berth deployment's id: stable across restarts, distinct per data
/// directory. Label what the plugin creates with it, so that only this
/// deployment lists and reaps it.
///
/// ```no_run
/// let label = format!("berth.owner={}", berth_sdk::instance());
/// ```
pub fn instance() -> String {
    context::instance()
}

/// Ask the user a question; `requested_schema` is a JSON Schema object with
/// flat primitive properties. Needs the `elicit` grant.
///
/// ```no_run
/// let answer = berth_sdk::elicit(
///     "Deploy to production?",
///     r#"{"type":"object","properties":{"confirm":{"type":"boolean"}},"required":["confirm"]}"#,
/// )?;
/// # Ok::<(), berth_sdk::Error>(())
/// ```
pub fn elicit(message: &str, requested_schema: &str) -> Result<ElicitAnswer> {
    context::elicit(message, requested_schema)
}

/// Ask the user for a value of type `T`, whose schema comes from `schemars`.
/// `Ok(None)` means the user declined or cancelled.
///
/// ```no_run
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Confirm { confirm: bool }
/// if let Some(answer) = berth_sdk::elicit_as::<Confirm>("Really delete?")? {
///     assert!(answer.confirm || !answer.confirm);
/// }
/// # Ok::<(), berth_sdk::Error>(())
/// ```
pub fn elicit_as<T: DeserializeOwned + JsonSchema>(message: &str) -> Result<Option<T>> {
    let schema = schemars::schema_for!(T).as_value().to_string();
    match elicit(message, &schema)? {
        ElicitAnswer::Accept(json) => serde_json::from_str(&json).map(Some).map_err(|err| {
            Error::failed(format!(
                "the client's answer does not match the requested schema: {err}"
            ))
        }),
        ElicitAnswer::Decline | ElicitAnswer::Cancel => Ok(None),
    }
}

/// Per-plugin key-value state that survives calls and host restarts. Needs
/// the `state` grant.
pub mod state {
    use crate::Result;
    use crate::bindings::berth::plugin::state as wit;

    /// The value under `key`, if any.
    ///
    /// ```no_run
    /// let visits = berth_sdk::state::get("visits")?;
    /// # Ok::<(), berth_sdk::Error>(())
    /// ```
    pub fn get(key: &str) -> Result<Option<Vec<u8>>> {
        wit::get(key)
    }

    /// Store `value` under `key`.
    ///
    /// ```no_run
    /// berth_sdk::state::set("visits", b"1")?;
    /// # Ok::<(), berth_sdk::Error>(())
    /// ```
    pub fn set(key: &str, value: &[u8]) -> Result<()> {
        wit::set(key, value)
    }

    /// Remove `key`; returns whether it existed.
    ///
    /// ```no_run
    /// let existed = berth_sdk::state::delete("visits")?;
    /// # Ok::<(), berth_sdk::Error>(())
    /// ```
    pub fn delete(key: &str) -> Result<bool> {
        wit::delete(key)
    }

    /// Keys starting with `prefix`, sorted.
    ///
    /// ```no_run
    /// for key in berth_sdk::state::keys("session/")? {
    ///     berth_sdk::state::delete(&key)?;
    /// }
    /// # Ok::<(), berth_sdk::Error>(())
    /// ```
    pub fn keys(prefix: &str) -> Result<Vec<String>> {
        wit::keys(prefix)
    }
}

/// Run granted programs on the host. Needs a `process` grant naming each
/// program.
pub mod process {
    use crate::bindings::berth::plugin::process as wit;
    use crate::{Command, File, ProcessOutput, Result};

    /// Run `command` in a fresh workspace with the host's default timeout.
    ///
    /// ```no_run
    /// let out = berth_sdk::process::run(berth_sdk::Command::new("podman").arg("version"))?;
    /// println!("{}", String::from_utf8_lossy(&out.stdout));
    /// # Ok::<(), berth_sdk::Error>(())
    /// ```
    pub fn run(command: Command) -> Result<ProcessOutput> {
        run_with(command, Vec::new(), None, None)
    }

    /// Run `command` after writing `files` into its workspace, feeding
    /// `stdin`, with a time limit in milliseconds.
    ///
    /// ```no_run
    /// use berth_sdk::{Command, File};
    /// let out = berth_sdk::process::run_with(
    ///     Command::new("python3").arg("main.py"),
    ///     vec![File::new("main.py", "print(input())")],
    ///     Some(b"hi\n".to_vec()),
    ///     Some(5_000),
    /// )?;
    /// # Ok::<(), berth_sdk::Error>(())
    /// ```
    pub fn run_with(
        command: Command,
        files: Vec<File>,
        stdin: Option<Vec<u8>>,
        timeout_ms: Option<u64>,
    ) -> Result<ProcessOutput> {
        wit::run(&wit::RunRequest {
            command,
            files,
            stdin,
            timeout_ms,
        })
    }
}

/// Run a command in the context of a live Kubernetes workload through
/// `mirrord exec`. Needs the `mirrord` grant, and a `process` grant for the
/// program.
pub mod mirrord {
    use crate::bindings::berth::plugin::mirrord as wit;
    use crate::{Command, File, ProcessOutput, Result};

    pub use wit::{Target, TargetKind};

    /// Run `command` attached to `target`, after writing `files` into its
    /// workspace.
    ///
    /// ```no_run
    /// use berth_sdk::mirrord::{Target, TargetKind};
    /// let target = Target {
    ///     kind: TargetKind::Deployment,
    ///     name: "user-service".into(),
    ///     namespace: Some("staging".into()),
    ///     config: None,
    /// };
    /// let out = berth_sdk::mirrord::exec(
    ///     target,
    ///     berth_sdk::Command::new("python3").arg("probe.py"),
    ///     vec![berth_sdk::File::new("probe.py", "import os; print(os.environ.get('DB_HOST'))")],
    ///     Some(30_000),
    /// )?;
    /// # Ok::<(), berth_sdk::Error>(())
    /// ```
    pub fn exec(
        target: Target,
        command: Command,
        files: Vec<File>,
        timeout_ms: Option<u64>,
    ) -> Result<ProcessOutput> {
        wit::exec(&wit::MirrordRequest {
            target,
            command,
            files,
            stdin: None,
            timeout_ms,
        })
    }
}

/// Kubernetes actions, done by the host with kube-rs. Needs a
/// `[capabilities.kube]` grant naming the verbs, namespaces and kinds the
/// plugin uses; anything else is refused before a request is sent.
pub mod kube {
    use crate::bindings::berth::plugin::kube as wit;
    use crate::{ProcessOutput, Result};

    pub use wit::{LogOptions, ObjectRef, Propagation, Scope, WaitUntil};

    /// The configured context, in `namespace` (the context's default when
    /// `None`).
    pub fn scope(namespace: Option<&str>) -> Scope {
        Scope {
            context: None,
            namespace: namespace.map(str::to_owned),
        }
    }

    /// A reference to object `name` of `kind` in `api_version`.
    pub fn object(api_version: &str, kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    /// Server-side apply YAML or JSON manifests; returns the applied objects.
    ///
    /// ```no_run
    /// let applied = berth_sdk::kube::apply(
    ///     &berth_sdk::kube::scope(Some("team-a")),
    ///     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast}\n",
    /// )?;
    /// # Ok::<(), berth_sdk::Error>(())
    /// ```
    pub fn apply(at: &Scope, manifests: &str) -> Result<Vec<serde_json::Value>> {
        wit::apply(at, manifests)?
            .iter()
            .map(|o| parse(o))
            .collect()
    }

    /// One object.
    pub fn get(at: &Scope, object: &ObjectRef) -> Result<serde_json::Value> {
        parse(&wit::get(at, object)?)
    }

    /// Objects of a kind, filtered by an optional label selector.
    pub fn list(
        at: &Scope,
        api_version: &str,
        kind: &str,
        label_selector: Option<&str>,
    ) -> Result<Vec<serde_json::Value>> {
        list_selected(at, api_version, kind, label_selector, None)
    }

    /// Objects of a kind, filtered by label and field selectors.
    pub fn list_selected(
        at: &Scope,
        api_version: &str,
        kind: &str,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Vec<serde_json::Value>> {
        wit::list(at, api_version, kind, label_selector, field_selector)?
            .iter()
            .map(|o| parse(o))
            .collect()
    }

    /// Delete an object and, in the background, its dependents; false when
    /// it did not exist.
    pub fn delete(at: &Scope, object: &ObjectRef) -> Result<bool> {
        wit::delete(at, object, Propagation::Background)
    }

    /// Set the replicas of a deployment or stateful set.
    pub fn scale(at: &Scope, object: &ObjectRef, replicas: u32) -> Result<()> {
        wit::scale(at, object, replicas)
    }

    /// Wait until `until` holds, at most `timeout_ms`.
    pub fn wait(
        at: &Scope,
        object: &ObjectRef,
        until: &WaitUntil,
        timeout_ms: u64,
    ) -> Result<serde_json::Value> {
        parse(&wit::wait(at, object, until, timeout_ms)?)
    }

    /// A pod's logs.
    pub fn logs(at: &Scope, pod: &str, options: &LogOptions) -> Result<String> {
        wit::logs(at, pod, options)
    }

    /// Run `command` in a pod (its only container when `container` is
    /// `None`).
    pub fn exec(
        at: &Scope,
        pod: &str,
        container: Option<&str>,
        command: &[String],
        stdin: Option<&[u8]>,
        timeout_ms: Option<u64>,
    ) -> Result<ProcessOutput> {
        wit::exec(at, pod, container, command, stdin, timeout_ms)
    }

    /// Forward a host loopback port to `port` of a pod; returns
    /// `127.0.0.1:N`.
    pub fn port_forward(at: &Scope, pod: &str, port: u16) -> Result<String> {
        wit::port_forward(at, pod, port)
    }

    /// Stop a forward this plugin opened.
    pub fn stop_forward(address: &str) -> Result<bool> {
        wit::stop_forward(address)
    }

    fn parse(text: &str) -> Result<serde_json::Value> {
        serde_json::from_str(text).map_err(|e| {
            crate::Error::failed(format!("the host returned an object that is not JSON: {e}"))
        })
    }
}

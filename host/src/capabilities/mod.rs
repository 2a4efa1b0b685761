//! Host functions offered to plugins, one module per WIT host interface.
//! Each module has its own linker hook and starts every host function with
//! its grant check; the logic behind each check is plain Rust, testable
//! without wasm.

pub mod context;
pub mod grants;
pub mod http;
pub mod kube;
pub mod limiter;
pub mod mirrord;
pub mod process;
pub mod read_dirs;
pub mod state;
pub mod unit;

use std::sync::Arc;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::contract::bindings::types::Error as WitError;
use crate::contract::sink::CallSink;
use crate::state::Database;
use crate::sys::process::ProcessConfig;
use grants::Grants;
use limiter::CallLimiter;

/// Host-wide services the capabilities use, shared by every store.
pub struct HostServices {
    /// Plugin state and audit log.
    pub db: Database,
    /// Process caps.
    pub process: ProcessConfig,
    /// Where process workspaces are created.
    pub workspace_root: std::path::PathBuf,
    /// Bounds processes running at once across all plugins.
    pub process_slots: tokio::sync::Semaphore,
    /// This deployment's id (see `context.instance`).
    pub instance: String,
    /// Kubernetes clusters and port-forwards.
    pub kube: crate::sys::kube::Clusters,
}

impl HostServices {
    /// Services over `db`, with workspaces under `workspace_root`.
    pub fn new(
        db: Database,
        process: ProcessConfig,
        workspace_root: std::path::PathBuf,
        kube: crate::sys::kube::config::KubeConfig,
    ) -> Self {
        let slots = process.max_concurrent.max(1);
        let instance = instance_id(&workspace_root);
        Self {
            db,
            process,
            workspace_root,
            process_slots: tokio::sync::Semaphore::new(slots),
            instance,
            kube: crate::sys::kube::Clusters::new(kube),
        }
    }
}

/// A short stable id of the deployment whose workspaces live at `root`.
fn instance_id(root: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
    hex::encode(&digest[..6])
}

/// Who is calling a host function: the plugin's name and grants.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Plugin name.
    pub plugin: Arc<str>,
    /// Its grants.
    pub grants: Arc<Grants>,
    /// Its `[plugin_config.NAME]` settings, as a JSON object string.
    pub config: Arc<str>,
}

impl Caller {
    /// A `denied` error for `what`.
    pub fn denied(&self, what: &str) -> WitError {
        WitError::Denied(grants::denied(&self.plugin, what))
    }
}

/// The data of one plugin store: WASI (with nothing ambient), wasi:http with
/// the grant filter, limits, and the capabilities' context.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: http::GrantedHttp,
    table: ResourceTable,
    /// Memory and instance limits, enforced by the store's limiter.
    pub limits: CallLimiter,
    /// Epoch ticks this call has spent executing wasm.
    pub cpu_ticks: u64,
    /// The last lines the plugin wrote to stderr (a panic message, say).
    pub stderr_tail: Arc<std::sync::Mutex<String>>,
    /// The plugin making calls.
    pub caller: Caller,
    /// Shared services.
    pub services: Arc<HostServices>,
    /// The MCP call being served (logs, progress, cancellation, elicitation).
    pub call: Arc<dyn CallSink>,
}

impl HostState {
    /// Fresh state for one call of `caller`, with `memory_bytes` of linear
    /// memory at most.
    pub fn new(
        caller: Caller,
        services: Arc<HostServices>,
        call: Arc<dyn CallSink>,
        memory_bytes: usize,
    ) -> Self {
        let stderr_tail = Arc::new(std::sync::Mutex::new(String::new()));
        let mut wasi = WasiCtx::builder();
        // Plugin stdout/stderr become host log lines, never the MCP stdout.
        wasi.stdout(context::GuestOutput::new(caller.plugin.clone(), "stdout"))
            .stderr(
                context::GuestOutput::new(caller.plugin.clone(), "stderr")
                    .keeping_tail(stderr_tail.clone()),
            )
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        read_dirs::preopen(&mut wasi, &caller.plugin, &caller.grants.read_dirs);
        Self {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            http_hooks: http::GrantedHttp::new(caller.clone()),
            table: ResourceTable::new(),
            limits: CallLimiter::new(memory_bytes),
            cpu_ticks: 0,
            stderr_tail,
            caller,
            services,
            call,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// Add WASI, wasi:http and every berth host interface to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    http::add_to_linker(linker)?;
    context::add_to_linker(linker)?;
    process::add_to_linker(linker)?;
    mirrord::add_to_linker(linker)?;
    kube::add_to_linker(linker)?;
    state::add_to_linker(linker)?;
    Ok(())
}

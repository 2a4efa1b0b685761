//! The floor of a tool call: a fresh store from the pre-linked component
//! and the guest's `call-tool`, with none of berth's limits, concurrency
//! cap, timeout, validation or audit. The store carries berth's per-call
//! data (its WASI context), which the component's imports need.

use std::path::Path;
use std::sync::Arc;

use berth::app::config::Config;
use berth::capabilities::grants::Grants;
use berth::capabilities::{Caller, HostServices, HostState};
use berth::contract::bindings::tools::ToolsPluginPre;
use berth::contract::sink::Unattended;
use berth::state::Database;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

/// The conformance fixture, pre-linked against berth's host functions.
pub struct Floor {
    engine: Engine,
    pre: ToolsPluginPre<HostState>,
    services: Arc<HostServices>,
    _work: tempfile::TempDir,
}

impl Floor {
    /// Compile and link `wasm` with berth's engine settings.
    pub fn new(wasm: &Path) -> Floor {
        let engine = berth::runtime::engine::build().unwrap();
        let mut linker = Linker::new(&engine);
        berth::capabilities::add_to_linker(&mut linker).unwrap();
        let component = Component::from_file(&engine, wasm).unwrap();
        let pre = ToolsPluginPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        let work = tempfile::tempdir().unwrap();
        let config = Config::default();
        let services = Arc::new(HostServices::new(
            Database::in_memory().unwrap(),
            config.process,
            work.path().to_path_buf(),
            config.kube,
        ));
        Floor {
            engine,
            pre,
            services,
            _work: work,
        }
    }

    /// One call of `tool` with `{}` on a fresh instance.
    pub async fn call(&self, tool: &str) {
        let caller = Caller {
            plugin: "conformance".into(),
            grants: Arc::new(Grants::default()),
            config: "{}".into(),
        };
        let state = HostState::new(
            caller,
            self.services.clone(),
            Arc::new(Unattended),
            64 << 20,
        );
        let mut store = Store::new(&self.engine, state);
        // The engine interrupts at epoch deadlines; the floor sets none.
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = self.pre.instantiate_async(&mut store).await.unwrap();
        instance
            .berth_plugin_plugin()
            .call_call_tool(&mut store, tool, "{}")
            .await
            .unwrap()
            .unwrap();
    }
}

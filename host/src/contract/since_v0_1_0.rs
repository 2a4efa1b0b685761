//! Host-side bindings of the frozen contract `berth:plugin@0.1.0`, generated
//! from `wit/since_v0.1.0/`.
//!
//! The interfaces every world shares are generated once in [`shared`]; each
//! plugin world reuses them through `with`, so one implementation of each
//! host interface serves every world.

/// Shared types and host interfaces: the `sdk` world, which imports every
/// host interface and every type interface a plugin world uses, so a new
/// host interface lands here without a list to keep.
// Generated items carry the WIT's own docs where the WIT has them.
#[allow(missing_docs)]
pub mod shared {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "berth:plugin/sdk",
        imports: { default: async | trappable },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi": wasmtime_wasi::p2::bindings,
        },
    });
}

/// Bindings of one plugin world that reuse [`shared`] for every host
/// interface, so one implementation of each serves all worlds. The
/// arguments name the world and the shared type interfaces its exports use
/// beyond the host ones.
macro_rules! plugin_world {
    ($world:literal $(, $types:literal => $module:ident)*) => {
        wasmtime::component::bindgen!({
            path: "../wit/since_v0.1.0",
            world: $world,
            imports: { default: async | trappable },
            exports: { default: async },
            with: {
                "berth:plugin/types": crate::contract::since_v0_1_0::shared::berth::plugin::types,
                "berth:plugin/context": crate::contract::since_v0_1_0::shared::berth::plugin::context,
                "berth:plugin/process": crate::contract::since_v0_1_0::shared::berth::plugin::process,
                "berth:plugin/state": crate::contract::since_v0_1_0::shared::berth::plugin::state,
                "berth:plugin/mirrord": crate::contract::since_v0_1_0::shared::berth::plugin::mirrord,
                "berth:plugin/kube": crate::contract::since_v0_1_0::shared::berth::plugin::kube,
                $($types: crate::contract::since_v0_1_0::shared::berth::plugin::$module,)*
                "wasi:http": wasmtime_wasi_http::p2::bindings::http,
                "wasi": wasmtime_wasi::p2::bindings,
            },
        });
    };
}

/// The `tools-plugin` world.
// Generated items carry the WIT's own docs where the WIT has them.
#[allow(missing_docs)]
pub mod tools {
    plugin_world!("berth:plugin/tools-plugin");
}

/// The `runner-plugin` world.
// Generated items carry the WIT's own docs where the WIT has them.
#[allow(missing_docs)]
pub mod runner {
    plugin_world!("berth:plugin/runner-plugin", "berth:plugin/runner-types" => runner_types);
}

/// The `backend-plugin` world.
// Generated items carry the WIT's own docs where the WIT has them.
#[allow(missing_docs)]
pub mod backend {
    plugin_world!("berth:plugin/backend-plugin", "berth:plugin/workload-types" => workload_types);
}

/// The `template-plugin` world.
// Generated items carry the WIT's own docs where the WIT has them.
#[allow(missing_docs)]
pub mod template {
    plugin_world!("berth:plugin/template-plugin", "berth:plugin/workload-types" => workload_types);
}

pub use shared::berth::plugin::types;

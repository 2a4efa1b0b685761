//! Host-side bindings of the plugin contract, generated from `wit/`.
//!
//! The interfaces every world shares are generated once in [`shared`]; each
//! plugin world reuses them through `with`, so one implementation of each
//! host interface serves every world.

/// Shared types and host interfaces.
pub mod shared {
    wasmtime::component::bindgen!({
        path: "../wit",
        interfaces: "
            import berth:plugin/types@0.1.0;
            import berth:plugin/context@0.1.0;
            import berth:plugin/process@0.1.0;
            import berth:plugin/state@0.1.0;
            import berth:plugin/mirrord@0.1.0;
            import berth:plugin/kube@0.1.0;
            import berth:plugin/runner-types@0.1.0;
            import berth:plugin/workload-types@0.1.0;
        ",
        imports: { default: async | trappable },
    });
}

/// The `tools-plugin` world.
pub mod tools {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "berth:plugin/tools-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "berth:plugin/types": crate::contract::bindings::shared::berth::plugin::types,
            "berth:plugin/context": crate::contract::bindings::shared::berth::plugin::context,
            "berth:plugin/process": crate::contract::bindings::shared::berth::plugin::process,
            "berth:plugin/state": crate::contract::bindings::shared::berth::plugin::state,
            "berth:plugin/mirrord": crate::contract::bindings::shared::berth::plugin::mirrord,
            "berth:plugin/kube": crate::contract::bindings::shared::berth::plugin::kube,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi": wasmtime_wasi::p2::bindings,
        },
    });
}

/// The `runner-plugin` world.
pub mod runner {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "berth:plugin/runner-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "berth:plugin/types": crate::contract::bindings::shared::berth::plugin::types,
            "berth:plugin/context": crate::contract::bindings::shared::berth::plugin::context,
            "berth:plugin/process": crate::contract::bindings::shared::berth::plugin::process,
            "berth:plugin/state": crate::contract::bindings::shared::berth::plugin::state,
            "berth:plugin/mirrord": crate::contract::bindings::shared::berth::plugin::mirrord,
            "berth:plugin/kube": crate::contract::bindings::shared::berth::plugin::kube,
            "berth:plugin/runner-types": crate::contract::bindings::shared::berth::plugin::runner_types,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi": wasmtime_wasi::p2::bindings,
        },
    });
}

/// The `backend-plugin` world.
pub mod backend {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "berth:plugin/backend-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "berth:plugin/types": crate::contract::bindings::shared::berth::plugin::types,
            "berth:plugin/context": crate::contract::bindings::shared::berth::plugin::context,
            "berth:plugin/process": crate::contract::bindings::shared::berth::plugin::process,
            "berth:plugin/state": crate::contract::bindings::shared::berth::plugin::state,
            "berth:plugin/mirrord": crate::contract::bindings::shared::berth::plugin::mirrord,
            "berth:plugin/kube": crate::contract::bindings::shared::berth::plugin::kube,
            "berth:plugin/workload-types": crate::contract::bindings::shared::berth::plugin::workload_types,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi": wasmtime_wasi::p2::bindings,
        },
    });
}

/// The `template-plugin` world.
pub mod template {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "berth:plugin/template-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "berth:plugin/types": crate::contract::bindings::shared::berth::plugin::types,
            "berth:plugin/context": crate::contract::bindings::shared::berth::plugin::context,
            "berth:plugin/process": crate::contract::bindings::shared::berth::plugin::process,
            "berth:plugin/state": crate::contract::bindings::shared::berth::plugin::state,
            "berth:plugin/mirrord": crate::contract::bindings::shared::berth::plugin::mirrord,
            "berth:plugin/kube": crate::contract::bindings::shared::berth::plugin::kube,
            "berth:plugin/workload-types": crate::contract::bindings::shared::berth::plugin::workload_types,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi": wasmtime_wasi::p2::bindings,
        },
    });
}

pub use shared::berth::plugin::types;

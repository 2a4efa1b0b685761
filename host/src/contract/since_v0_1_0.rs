//! Host-side bindings of the frozen contract `berth:plugin@0.1.0`, generated
//! from `wit/since_v0.1.0/`.
//!
//! The interfaces every world shares are generated once in [`shared`]; each
//! plugin world reuses them through `with`, so one implementation of each
//! host interface serves every world.

/// Shared types and host interfaces.
pub mod shared {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
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
        path: "../wit/since_v0.1.0",
        world: "berth:plugin/tools-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "berth:plugin/types": crate::contract::since_v0_1_0::shared::berth::plugin::types,
            "berth:plugin/context": crate::contract::since_v0_1_0::shared::berth::plugin::context,
            "berth:plugin/process": crate::contract::since_v0_1_0::shared::berth::plugin::process,
            "berth:plugin/state": crate::contract::since_v0_1_0::shared::berth::plugin::state,
            "berth:plugin/mirrord": crate::contract::since_v0_1_0::shared::berth::plugin::mirrord,
            "berth:plugin/kube": crate::contract::since_v0_1_0::shared::berth::plugin::kube,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi": wasmtime_wasi::p2::bindings,
        },
    });
}

/// The `runner-plugin` world.
pub mod runner {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "berth:plugin/runner-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "berth:plugin/types": crate::contract::since_v0_1_0::shared::berth::plugin::types,
            "berth:plugin/context": crate::contract::since_v0_1_0::shared::berth::plugin::context,
            "berth:plugin/process": crate::contract::since_v0_1_0::shared::berth::plugin::process,
            "berth:plugin/state": crate::contract::since_v0_1_0::shared::berth::plugin::state,
            "berth:plugin/mirrord": crate::contract::since_v0_1_0::shared::berth::plugin::mirrord,
            "berth:plugin/kube": crate::contract::since_v0_1_0::shared::berth::plugin::kube,
            "berth:plugin/runner-types": crate::contract::since_v0_1_0::shared::berth::plugin::runner_types,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi": wasmtime_wasi::p2::bindings,
        },
    });
}

/// The `backend-plugin` world.
pub mod backend {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "berth:plugin/backend-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "berth:plugin/types": crate::contract::since_v0_1_0::shared::berth::plugin::types,
            "berth:plugin/context": crate::contract::since_v0_1_0::shared::berth::plugin::context,
            "berth:plugin/process": crate::contract::since_v0_1_0::shared::berth::plugin::process,
            "berth:plugin/state": crate::contract::since_v0_1_0::shared::berth::plugin::state,
            "berth:plugin/mirrord": crate::contract::since_v0_1_0::shared::berth::plugin::mirrord,
            "berth:plugin/kube": crate::contract::since_v0_1_0::shared::berth::plugin::kube,
            "berth:plugin/workload-types": crate::contract::since_v0_1_0::shared::berth::plugin::workload_types,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi": wasmtime_wasi::p2::bindings,
        },
    });
}

/// The `template-plugin` world.
pub mod template {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "berth:plugin/template-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "berth:plugin/types": crate::contract::since_v0_1_0::shared::berth::plugin::types,
            "berth:plugin/context": crate::contract::since_v0_1_0::shared::berth::plugin::context,
            "berth:plugin/process": crate::contract::since_v0_1_0::shared::berth::plugin::process,
            "berth:plugin/state": crate::contract::since_v0_1_0::shared::berth::plugin::state,
            "berth:plugin/mirrord": crate::contract::since_v0_1_0::shared::berth::plugin::mirrord,
            "berth:plugin/kube": crate::contract::since_v0_1_0::shared::berth::plugin::kube,
            "berth:plugin/workload-types": crate::contract::since_v0_1_0::shared::berth::plugin::workload_types,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi": wasmtime_wasi::p2::bindings,
        },
    });
}

pub use shared::berth::plugin::types;

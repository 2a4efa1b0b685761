//! The code generator behind `berth_sdk::export_*!`. Plugin authors never
//! call this crate directly.
//!
//! A plugin component must carry the type information of exactly one world,
//! so the bindings for a world's exports are generated in the plugin's own
//! crate, while every imported interface and shared type is reused from
//! `berth-sdk` through wit-bindgen's `with` map. This macro exists because
//! only a proc-macro can name the WIT directory by an absolute path.

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::{LitStr, Token, Type};

/// Input: `"world-name", PluginType`.
struct ExportInput {
    world: LitStr,
    plugin: Type,
}

impl Parse for ExportInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let world = input.parse()?;
        input.parse::<Token![,]>()?;
        let plugin = input.parse()?;
        Ok(Self { world, plugin })
    }
}

/// Interfaces every world imports, mapped to the SDK's generated modules.
const SHARED: &[(&str, &str)] = &[
    ("berth:plugin/types@0.1.0", "berth::plugin::types"),
    ("berth:plugin/context@0.1.0", "berth::plugin::context"),
    ("berth:plugin/process@0.1.0", "berth::plugin::process"),
    ("berth:plugin/state@0.1.0", "berth::plugin::state"),
    ("wasi:http/types@0.2.12", "wasi::http::types"),
    (
        "wasi:http/outgoing-handler@0.2.12",
        "wasi::http::outgoing_handler",
    ),
    ("wasi:io/poll@0.2.12", "wasi::io::poll"),
    ("wasi:io/error@0.2.12", "wasi::io::error"),
    ("wasi:io/streams@0.2.12", "wasi::io::streams"),
    (
        "wasi:clocks/monotonic-clock@0.2.12",
        "wasi::clocks::monotonic_clock",
    ),
];

/// `(WIT interface, SDK module)` pairs reused through `with`.
type Mappings = &'static [(&'static str, &'static str)];

/// Per world: extra shared interfaces, and the SDK adapter per export.
fn world_parts(world: &str) -> Option<(Mappings, &'static [&'static str])> {
    const RUNNER_TYPES: &[(&str, &str)] = &[(
        "berth:plugin/runner-types@0.1.0",
        "berth::plugin::runner_types",
    )];
    const WORKLOAD_TYPES: &[(&str, &str)] = &[(
        "berth:plugin/workload-types@0.1.0",
        "berth::plugin::workload_types",
    )];
    Some(match world {
        "tools-plugin" => (&[], &["plugin"]),
        "runner-plugin" => (RUNNER_TYPES, &["plugin", "runner"]),
        "backend-plugin" => (WORKLOAD_TYPES, &["plugin", "sandbox", "workloads"]),
        "template-plugin" => (WORKLOAD_TYPES, &["plugin", "templates"]),
        _ => return None,
    })
}

/// Generate the export bindings of one world and wire them to the SDK
/// trait implementations of the given type.
#[proc_macro]
pub fn export_world(input: TokenStream) -> TokenStream {
    let ExportInput { world, plugin } = syn::parse_macro_input!(input as ExportInput);
    let world_name = world.value();
    let Some((extra, exports)) = world_parts(&world_name) else {
        return syn::Error::new(
            world.span(),
            format!(
                "unknown berth world `{world_name}`: expected tools-plugin, runner-plugin, backend-plugin or template-plugin"
            ),
        )
        .to_compile_error()
        .into();
    };
    let wit_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let wit_dir = wit_dir.canonicalize().unwrap_or(wit_dir);
    let wit_path = wit_dir.to_string_lossy().into_owned();

    let with_entries = SHARED.iter().chain(extra.iter()).map(|(key, module)| {
        let path: syn::Path =
            syn::parse_str(&format!("::berth_sdk::__private::bindings::{module}"))
                .expect("SHARED holds valid Rust paths");
        quote! { #key: #path, }
    });
    // Each export interface has a generated `Guest` trait; the SDK provides a
    // blanket adapter for it, implemented here on a local type so that the
    // orphan rule allows it.
    let impls = exports.iter().map(|export| {
        let module = format_ident!("{}", export);
        let adapter = format_ident!("{}", format!("{export}_adapter"));
        quote! {
            ::berth_sdk::__private::#adapter!(
                __berth_bindings::exports::berth::plugin::#module::Guest, __BerthExport, #plugin
            );
        }
    });

    quote! {
        #[doc(hidden)]
        mod __berth_bindings {
            ::berth_sdk::__private::wit_bindgen::generate!({
                path: #wit_path,
                world: #world_name,
                runtime_path: "::berth_sdk::__private::wit_bindgen::rt",
                with: { #(#with_entries)* },
            });
        }
        #[doc(hidden)]
        struct __BerthExport;
        #(#impls)*
        __berth_bindings::export!(__BerthExport with_types_in __berth_bindings);
    }
    .into()
}

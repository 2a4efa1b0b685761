//! The code generator behind `berth_sdk::export_*!`. Plugin authors never
//! call this crate directly.
//!
//! A plugin component must carry the type information of exactly one world,
//! so the bindings for a world's exports are generated in the plugin's own
//! crate, while every imported interface and shared type is reused from
//! `berth-sdk` through wit-bindgen's `with` map, derived from the world as
//! the crate's copy of the contract (`wit/`) declares it. This crate exists
//! because only a proc-macro can name that directory by an absolute path.

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::{LitStr, Token, Type};
use wit_parser::{Resolve, WorldItem, WorldKey};

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

/// The SDK's copy of the contract: `wit/since_v0.1.0` of the repository,
/// kept identical by a test, inside this crate so that it is published
/// with it.
fn wit_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("wit")
}

/// What a plugin world needs from the SDK: every interface it imports
/// (`(WIT id, SDK module path)`, reused from the SDK's bindings through
/// `with`), and the berth interfaces it exports (each with an SDK adapter).
struct WorldShape {
    imports: Vec<(String, String)>,
    exports: Vec<String>,
}

/// Read `world` from the contract and list what it imports and exports.
fn world_shape(world: &str) -> Result<WorldShape, String> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(wit_dir())
        .map_err(|e| format!("the SDK's WIT does not parse: {e:#}"))?;
    let plugin_worlds: Vec<&str> = resolve.packages[package]
        .worlds
        .keys()
        .map(String::as_str)
        .filter(|name| name.ends_with("-plugin"))
        .collect();
    if !plugin_worlds.contains(&world) {
        return Err(format!(
            "unknown berth world `{world}`: expected one of {}",
            plugin_worlds.join(", ")
        ));
    }
    let id = resolve
        .select_world(&[package], Some(world))
        .map_err(|e| format!("{e:#}"))?;
    let interface_ids = |items: &wit_parser::IndexMap<WorldKey, WorldItem>| -> Vec<_> {
        items
            .values()
            .filter_map(|item| match item {
                WorldItem::Interface { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    };
    let imports = interface_ids(&resolve.worlds[id].imports)
        .into_iter()
        .filter_map(|iface| {
            let key = resolve.id_of(iface)?;
            let package = resolve.interfaces[iface].package?;
            let name = &resolve.packages[package].name;
            let module = format!(
                "{}::{}::{}",
                snake(&name.namespace),
                snake(&name.name),
                snake(resolve.interfaces[iface].name.as_deref()?)
            );
            Some((key, module))
        })
        .collect();
    let exports = interface_ids(&resolve.worlds[id].exports)
        .into_iter()
        .filter_map(|iface| resolve.interfaces[iface].name.clone())
        .map(|name| snake(&name))
        .collect();
    Ok(WorldShape { imports, exports })
}

/// A WIT name as the Rust identifier wit-bindgen makes of it.
fn snake(name: &str) -> String {
    name.replace('-', "_")
}

/// Generate the export bindings of one world and wire them to the SDK
/// trait implementations of the given type.
#[proc_macro]
pub fn export_world(input: TokenStream) -> TokenStream {
    let ExportInput { world, plugin } = syn::parse_macro_input!(input as ExportInput);
    let world_name = world.value();
    let shape = match world_shape(&world_name) {
        Ok(shape) => shape,
        Err(message) => {
            return syn::Error::new(world.span(), message)
                .to_compile_error()
                .into();
        }
    };
    let wit_path = wit_dir().to_string_lossy().into_owned();

    let with_entries = shape.imports.iter().map(|(key, module)| {
        let path: syn::Path =
            syn::parse_str(&format!("::berth_sdk::__private::bindings::{module}"))
                .expect("WIT names make valid Rust paths");
        quote! { #key: #path, }
    });
    // Each export interface has a generated `Guest` trait; the SDK provides a
    // blanket adapter for it, implemented here on a local type so that the
    // orphan rule allows it.
    let impls = shape.exports.iter().map(|export| {
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

/// The SDK's own bindings: every shape a plugin world uses, generated once
/// from the `sdk` world of the SDK's copy of the contract.
#[proc_macro]
pub fn sdk_bindings(_input: TokenStream) -> TokenStream {
    let wit_path = wit_dir().to_string_lossy().into_owned();
    quote! {
        ::wit_bindgen::generate!({
            path: #wit_path,
            world: "sdk",
            generate_all,
        });
    }
    .into()
}

//! Registration macros, and the adapters that connect the generated export
//! traits to the SDK's traits.

/// Register a tools plugin.
///
/// ```no_run
/// struct Empty;
/// impl berth_sdk::Plugin for Empty {}
/// berth_sdk::export_tools!(Empty);
/// ```
#[macro_export]
macro_rules! export_tools {
    ($plugin:ty) => {
        $crate::__private::export_world!("tools-plugin", $plugin);
    };
}

/// Register a language runner (see [`Runner`](crate::Runner)).
#[macro_export]
macro_rules! export_runner {
    ($plugin:ty) => {
        $crate::__private::export_world!("runner-plugin", $plugin);
    };
}

/// Register a sandbox backend (see [`Backend`](crate::Backend)).
#[macro_export]
macro_rules! export_backend {
    ($plugin:ty) => {
        $crate::__private::export_world!("backend-plugin", $plugin);
    };
}

/// Register a template plugin (see [`Template`](crate::Template)).
#[macro_export]
macro_rules! export_template {
    ($plugin:ty) => {
        $crate::__private::export_world!("template-plugin", $plugin);
    };
}

/// `plugin` export: description and toolbox.
#[doc(hidden)]
#[macro_export]
macro_rules! plugin_adapter {
    ($guest:path, $export:ident, $plugin:ty) => {
        impl $guest for $export {
            fn describe() -> $crate::PluginInfo {
                $crate::PluginInfo {
                    description: <$plugin as $crate::Plugin>::description(),
                }
            }
            fn tools() -> ::std::vec::Vec<$crate::Tool> {
                <$plugin as $crate::Plugin>::toolbox().list()
            }
            fn call_tool(
                name: ::std::string::String,
                arguments: ::std::string::String,
            ) -> ::std::result::Result<$crate::ToolOutput, $crate::Error> {
                <$plugin as $crate::Plugin>::toolbox().call(&name, &arguments)
            }
        }
    };
}

/// `runner` export.
#[doc(hidden)]
#[macro_export]
macro_rules! runner_adapter {
    ($guest:path, $export:ident, $plugin:ty) => {
        impl $guest for $export {
            fn info() -> $crate::RunnerInfo {
                <$plugin as $crate::Runner>::info()
            }
            fn plan(
                snippet: $crate::Snippet,
            ) -> ::std::result::Result<$crate::RunPlan, $crate::Error> {
                <$plugin as $crate::Runner>::plan(snippet)
            }
        }
    };
}

/// `sandbox` export.
#[doc(hidden)]
#[macro_export]
macro_rules! sandbox_adapter {
    ($guest:path, $export:ident, $plugin:ty) => {
        impl $guest for $export {
            fn create(
                spec: $crate::SandboxSpec,
            ) -> ::std::result::Result<::std::string::String, $crate::Error> {
                <$plugin as $crate::Backend>::create_sandbox(spec)
            }
            fn exec(
                id: ::std::string::String,
                request: $crate::ExecRequest,
            ) -> ::std::result::Result<$crate::ProcessOutput, $crate::Error> {
                <$plugin as $crate::Backend>::exec(id, request)
            }
            fn destroy(id: ::std::string::String) -> ::std::result::Result<(), $crate::Error> {
                <$plugin as $crate::Backend>::destroy_sandbox(id)
            }
            fn reap(all_sandboxes: bool) -> ::std::result::Result<u32, $crate::Error> {
                <$plugin as $crate::Backend>::reap(all_sandboxes)
            }
        }
    };
}

/// `workloads` export.
#[doc(hidden)]
#[macro_export]
macro_rules! workloads_adapter {
    ($guest:path, $export:ident, $plugin:ty) => {
        impl $guest for $export {
            fn deploy(
                workload: $crate::Workload,
            ) -> ::std::result::Result<$crate::WorkloadStatus, $crate::Error> {
                <$plugin as $crate::Backend>::deploy(workload)
            }
            fn status(
                name: ::std::string::String,
            ) -> ::std::result::Result<$crate::WorkloadStatus, $crate::Error> {
                <$plugin as $crate::Backend>::status(name)
            }
            fn logs(
                name: ::std::string::String,
                tail: ::std::option::Option<u32>,
            ) -> ::std::result::Result<::std::string::String, $crate::Error> {
                <$plugin as $crate::Backend>::logs(name, tail)
            }
            fn stop(name: ::std::string::String) -> ::std::result::Result<(), $crate::Error> {
                <$plugin as $crate::Backend>::stop(name)
            }
            fn list_workloads()
            -> ::std::result::Result<::std::vec::Vec<$crate::WorkloadStatus>, $crate::Error> {
                <$plugin as $crate::Backend>::list()
            }
            fn attach(
                name: ::std::string::String,
            ) -> ::std::result::Result<$crate::StdioLink, $crate::Error> {
                <$plugin as $crate::Backend>::attach(name)
            }
        }
    };
}

/// `templates` export.
#[doc(hidden)]
#[macro_export]
macro_rules! templates_adapter {
    ($guest:path, $export:ident, $plugin:ty) => {
        impl $guest for $export {
            fn list_templates() -> ::std::vec::Vec<$crate::TemplateInfo> {
                <$plugin as $crate::Template>::templates()
            }
            fn render(
                name: ::std::string::String,
                params: ::std::string::String,
            ) -> ::std::result::Result<$crate::Workload, $crate::Error> {
                let params = $crate::__private::parse_params(&name, &params)?;
                <$plugin as $crate::Template>::render(name, params)
            }
        }
    };
}

pub use crate::{
    plugin_adapter, runner_adapter, sandbox_adapter, templates_adapter, workloads_adapter,
};

/// Parse template parameters, naming the template on failure.
pub fn parse_params(template: &str, params: &str) -> crate::Result<serde_json::Value> {
    serde_json::from_str(params).map_err(|err| {
        crate::Error::invalid_input(format!(
            "parameters of template `{template}` are not valid JSON: {err}"
        ))
    })
}

//! What a plugin's component exports, per world: the pre-linked component
//! with the typed bindings of its world, and what the host asked it once at
//! load time.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::guard::Guard;
use super::runner::Language;
use super::unattended;
use crate::capabilities::HostState;
use crate::contract::bindings::types::{Error as WitError, PluginInfo, Tool, ToolOutput};
use crate::contract::bindings::{backend, runner, template, tools};
use crate::runtime::world::World;

/// A component linked against the host, ready to instantiate, with the
/// bindings of the world it implements.
pub(super) enum Exports {
    Tools(tools::ToolsPluginPre<HostState>),
    Runner(runner::RunnerPluginPre<HostState>, Arc<Language>),
    Backend(backend::BackendPluginPre<HostState>),
    Template(template::TemplatePluginPre<HostState>),
}

/// Run `$body` with `$guest` bound to a fresh instance's `plugin` export,
/// whichever world the component implements: each world has its own
/// generated type for the same interface.
macro_rules! with_plugin_export {
    ($exports:expr, $store:expr, |$guest:ident| $body:expr) => {
        match $exports {
            Exports::Tools(pre) => {
                let instance = pre.instantiate_async(&mut *$store).await?;
                let $guest = instance.berth_plugin_plugin();
                $body
            }
            Exports::Runner(pre, _) => {
                let instance = pre.instantiate_async(&mut *$store).await?;
                let $guest = instance.berth_plugin_plugin();
                $body
            }
            Exports::Backend(pre) => {
                let instance = pre.instantiate_async(&mut *$store).await?;
                let $guest = instance.berth_plugin_plugin();
                $body
            }
            Exports::Template(pre) => {
                let instance = pre.instantiate_async(&mut *$store).await?;
                let $guest = instance.berth_plugin_plugin();
                $body
            }
        }
    };
}

impl Exports {
    /// Type the component as `world` and ask it who it is and which tools
    /// it offers (and a runner which language it runs).
    pub(super) async fn load(
        world: World,
        pre: InstancePre<HostState>,
        guard: &Guard,
    ) -> anyhow::Result<(Exports, PluginInfo, Vec<Tool>)> {
        let exports = match world {
            World::Tools => Exports::Tools(tools::ToolsPluginPre::new(pre)?),
            World::Backend => Exports::Backend(backend::BackendPluginPre::new(pre)?),
            World::Template => Exports::Template(template::TemplatePluginPre::new(pre)?),
            World::Runner => {
                let pre = runner::RunnerPluginPre::new(pre)?;
                let info = guard
                    .call(&pre, Duration::ZERO, unattended(), async |runner, store| {
                        runner.berth_plugin_runner().call_info(store).await.map(Ok)
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("describing its language failed: {e}"))?;
                Exports::Runner(pre, Arc::new(Language::checked(info)?))
            }
        };
        let (info, tools) = guard
            .run(Duration::ZERO, unattended(), async |store| {
                with_plugin_export!(&exports, store, |guest| {
                    let info = guest.call_describe(&mut *store).await?;
                    let tools = guest.call_tools(&mut *store).await?;
                    Ok((info, tools))
                })
            })
            .await
            .map_err(|e| anyhow::anyhow!("describing itself failed: {e}"))?;
        Ok((exports, info, tools))
    }

    /// Call one of the plugin's tools on a fresh instance in `store`.
    pub(super) async fn call_tool(
        &self,
        store: &mut Store<HostState>,
        tool: &str,
        arguments: &str,
    ) -> wasmtime::Result<Result<ToolOutput, WitError>> {
        with_plugin_export!(self, store, |guest| guest
            .call_call_tool(&mut *store, tool, arguments)
            .await)
    }
}

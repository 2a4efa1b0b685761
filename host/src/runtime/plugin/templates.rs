//! A template plugin's `templates` export.

use std::sync::Arc;
use std::time::Duration;

use super::exports::Exports;
use super::{Plugin, unattended};
use crate::capabilities::HostState;
use crate::contract::bindings::shared::berth::plugin::workload_types::{TemplateInfo, Workload};
use crate::contract::bindings::template::TemplatePluginPre;
use crate::contract::error::CallError;
use crate::contract::sink::CallSink;

/// A plugin that implements the template world: it renders server
/// templates into workloads. Only [`Plugin::templates`] makes one.
#[derive(Clone)]
pub struct Templates {
    plugin: Arc<Plugin>,
    pre: TemplatePluginPre<HostState>,
}

impl Templates {
    pub(super) fn of(plugin: &Arc<Plugin>) -> Option<Templates> {
        match &plugin.exports {
            Exports::Template(pre) => Some(Templates {
                plugin: plugin.clone(),
                pre: pre.clone(),
            }),
            _ => None,
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        self.plugin.name()
    }

    /// The templates it offers.
    pub async fn list(&self) -> Result<Vec<TemplateInfo>, CallError> {
        self.plugin
            .guard
            .call(&self.pre, Duration::ZERO, unattended(), async |t, store| {
                let listed = t.berth_plugin_templates().call_list_templates(store);
                listed.await.map(Ok)
            })
            .await
    }

    /// Render template `name` with `params` (a JSON object).
    pub async fn render(
        &self,
        name: &str,
        params: &str,
        sink: Arc<dyn CallSink>,
    ) -> Result<Workload, CallError> {
        self.plugin
            .guard
            .call(&self.pre, Duration::ZERO, sink, async |t, store| {
                let rendered = t.berth_plugin_templates().call_render(store, name, params);
                rendered.await
            })
            .await
    }
}

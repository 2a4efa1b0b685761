//! A runner plugin's `runner` export.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::Plugin;
use super::exports::Exports;
use crate::capabilities::HostState;
use crate::contract::bindings::runner::RunnerPluginPre;
use crate::contract::bindings::shared::berth::plugin::runner_types::{
    RunPlan, RunnerInfo, Snippet,
};
use crate::contract::error::CallError;
use crate::contract::sink::CallSink;

/// What a runner said about its language when it was loaded, checked.
pub(super) struct Language {
    info: RunnerInfo,
    dependency_schema: Option<Value>,
}

impl Language {
    /// `info`, with its dependency schema parsed and checked to be a JSON
    /// Schema, or an error saying what is wrong with it.
    pub(super) fn checked(info: RunnerInfo) -> anyhow::Result<Language> {
        let dependency_schema = match &info.dependency_schema {
            None => None,
            Some(text) => {
                let schema: Value = serde_json::from_str(text).map_err(|e| {
                    anyhow::anyhow!("its runner-info dependency-schema is not JSON: {e}")
                })?;
                jsonschema::validator_for(&schema).map_err(|e| {
                    anyhow::anyhow!("its runner-info dependency-schema is not a JSON Schema: {e}")
                })?;
                Some(schema)
            }
        };
        Ok(Language {
            info,
            dependency_schema,
        })
    }
}

/// A plugin that implements the runner world: it plans snippets of one
/// language. Only [`Plugin::runner`] makes one.
#[derive(Clone)]
pub struct Runner {
    plugin: Arc<Plugin>,
    pre: RunnerPluginPre<HostState>,
    language: Arc<Language>,
}

impl Runner {
    pub(super) fn of(plugin: &Arc<Plugin>) -> Option<Runner> {
        match &plugin.exports {
            Exports::Runner(pre, language) => Some(Runner {
                plugin: plugin.clone(),
                pre: pre.clone(),
                language: language.clone(),
            }),
            _ => None,
        }
    }

    /// The plugin behind the runner.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// What it runs, as it said at load time.
    pub fn info(&self) -> &RunnerInfo {
        &self.language.info
    }

    /// The JSON Schema of one dependency item, when the runner takes more
    /// than strings.
    pub fn dependency_schema(&self) -> Option<&Value> {
        self.language.dependency_schema.as_ref()
    }

    /// Ask the runner to plan `snippet`.
    pub async fn plan(
        &self,
        snippet: &Snippet,
        sink: Arc<dyn CallSink>,
    ) -> Result<RunPlan, CallError> {
        self.plugin
            .guard
            .call(&self.pre, Duration::ZERO, sink, async |runner, store| {
                runner.berth_plugin_runner().call_plan(store, snippet).await
            })
            .await
    }
}

//! The tools berth serves: every loaded plugin's tools, checked for valid
//! names and schemas, filtered by config, with collisions refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::contract::bindings::types::{Error as WitError, Tool};
use crate::runtime::filter::ToolFilter;
use crate::runtime::host_tool::HostToolSet;
use crate::runtime::plugin::{Backend, Plugin};
use crate::runtime::world::World;

/// A plugin, or a tool, that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoadFailure {
    /// Where it came from (a path, or `bundled:NAME`).
    pub origin: String,
    /// Why it was refused.
    pub reason: String,
}

/// Who serves a tool.
#[derive(Clone)]
pub enum Owner {
    /// A plugin, through its own `call-tool`.
    Plugin(Arc<Plugin>),
    /// A tool set of the host.
    Host(Arc<dyn HostToolSet>),
}

impl Owner {
    /// The plugin's name, or `host:SET`.
    pub fn name(&self) -> String {
        match self {
            Owner::Plugin(plugin) => plugin.name().to_string(),
            Owner::Host(set) => format!("host:{}", set.name()),
        }
    }
}

/// A tool ready to serve.
pub struct RegisteredTool {
    /// Who serves it.
    pub owner: Owner,
    /// The tool as its owner declared it.
    pub tool: Tool,
    /// Its parsed input schema.
    pub input_schema: Arc<serde_json::Map<String, Value>>,
    /// Its parsed output schema, if any.
    pub output_schema: Option<Arc<serde_json::Map<String, Value>>>,
    validator: jsonschema::Validator,
}

impl RegisteredTool {
    /// Check `arguments` against the input schema; the error lists every
    /// violation with its JSON path.
    pub fn validate(&self, arguments: &Value) -> Result<(), String> {
        violations(&self.validator, arguments)
    }
}

/// Every way `arguments` breaks the schema `validator` was built from (the
/// first ten), each with its JSON path.
fn violations(validator: &jsonschema::Validator, arguments: &Value) -> Result<(), String> {
    let problems: Vec<String> = validator
        .iter_errors(arguments)
        .take(10)
        .map(|e| {
            let at = e.instance_path.to_string();
            format!(
                "{}: {e}",
                if at.is_empty() {
                    "(root)".to_string()
                } else {
                    at
                }
            )
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Every loaded plugin and served tool.
#[derive(Default)]
pub struct Registry {
    plugins: BTreeMap<String, Arc<Plugin>>,
    tools: BTreeMap<String, Arc<RegisteredTool>>,
    failures: Vec<LoadFailure>,
    /// How many of `failures` are plugins' (the rest are host tools').
    plugin_failures: usize,
}

/// Whether `name` is a valid MCP tool name for berth.
pub fn is_valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn parse_schema(
    tool: &str,
    which: &str,
    text: &str,
) -> Result<serde_json::Map<String, Value>, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| format!("tool `{tool}` has an {which} schema that is not JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err(format!(
            "tool `{tool}` has an {which} schema that is not a JSON object"
        ));
    };
    if map.get("type").and_then(Value::as_str) != Some("object") {
        return Err(format!(
            "tool `{tool}` has an {which} schema whose \"type\" is not \"object\""
        ));
    }
    Ok(map)
}

/// A tool's input schema, parsed and compiled into its validator.
fn input_schema(
    tool: &str,
    text: &str,
) -> Result<(serde_json::Map<String, Value>, jsonschema::Validator), String> {
    let input = parse_schema(tool, "input", text)?;
    let validator = jsonschema::validator_for(&Value::Object(input.clone()))
        .map_err(|e| format!("tool `{tool}` has an invalid input schema: {e}"))?;
    Ok((input, validator))
}

impl Registry {
    /// Build from loaded plugins (in load order), earlier failures and the
    /// host's tool sets. A plugin whose name or any admitted tool name is
    /// already taken is refused whole, naming both owners; a host tool
    /// that collides is left out and reported under its set.
    pub fn build(
        plugins: Vec<Plugin>,
        failures: Vec<LoadFailure>,
        filter: &ToolFilter,
        host_sets: &[Arc<dyn HostToolSet>],
    ) -> Registry {
        Self::build_from(
            plugins.into_iter().map(Arc::new).collect(),
            failures,
            filter,
            host_sets,
        )
    }

    /// This registry's plugins with the host sets' tools asked for again
    /// (an upstream server came or went); no plugin is loaded again.
    pub fn rebuild(&self, filter: &ToolFilter, host_sets: &[Arc<dyn HostToolSet>]) -> Registry {
        Self::build_from(
            self.plugins.values().cloned().collect(),
            self.failures[..self.plugin_failures].to_vec(),
            filter,
            host_sets,
        )
    }

    fn build_from(
        plugins: Vec<Arc<Plugin>>,
        mut failures: Vec<LoadFailure>,
        filter: &ToolFilter,
        host_sets: &[Arc<dyn HostToolSet>],
    ) -> Registry {
        let mut registry = Registry::default();
        for plugin in plugins {
            let origin = plugin.origin.to_string();
            match registry.admit(plugin, filter) {
                Ok(()) => {}
                Err(reason) => failures.push(LoadFailure { origin, reason }),
            }
        }
        let plugin_failures = failures.len();
        let loaded: Vec<Arc<Plugin>> = registry.plugins.values().cloned().collect();
        for set in host_sets {
            let owner = Owner::Host(set.clone());
            for tool in set.tools(&loaded) {
                match registry.check(&owner, vec![tool], filter) {
                    Ok(admitted) => registry.insert(admitted),
                    Err(reason) => failures.push(LoadFailure {
                        origin: owner.name(),
                        reason,
                    }),
                }
            }
        }
        registry.failures = failures;
        registry.plugin_failures = plugin_failures;
        registry
    }

    fn insert(&mut self, admitted: Vec<RegisteredTool>) {
        for tool in admitted {
            self.tools.insert(tool.tool.name.clone(), Arc::new(tool));
        }
    }

    fn admit(&mut self, plugin: Arc<Plugin>, filter: &ToolFilter) -> Result<(), String> {
        let name = plugin.name().to_string();
        if let Some(existing) = self.plugins.get(&name) {
            return Err(format!(
                "plugin name `{name}` is already used by the plugin from {}",
                existing.origin
            ));
        }
        let owner = Owner::Plugin(plugin.clone());
        let admitted = self.check(&owner, plugin.tools.clone(), filter)?;
        self.insert(admitted);
        self.plugins.insert(name, plugin);
        Ok(())
    }

    /// Check `declared` tools of `owner`: valid names, no collisions,
    /// object schemas; filtered tools are left out.
    fn check(
        &self,
        owner: &Owner,
        declared: Vec<Tool>,
        filter: &ToolFilter,
    ) -> Result<Vec<RegisteredTool>, String> {
        let name = owner.name();
        let mut admitted = Vec::new();
        for tool in declared {
            if !is_valid_tool_name(&tool.name) {
                return Err(format!(
                    "plugin `{name}` declares tool `{}`: names must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'",
                    tool.name
                ));
            }
            if !filter.admits(&tool.name) {
                continue;
            }
            if let Some(existing) = self.tools.get(&tool.name) {
                return Err(format!(
                    "plugin `{name}` declares tool `{}`, which plugin `{}` already provides; rename one or hide one with [tools] deny in berth.toml",
                    tool.name,
                    existing.owner.name()
                ));
            }
            if admitted
                .iter()
                .any(|t: &RegisteredTool| t.tool.name == tool.name)
            {
                return Err(format!(
                    "plugin `{name}` declares tool `{}` twice",
                    tool.name
                ));
            }
            let (input, validator) = input_schema(&tool.name, &tool.input_schema)?;
            let output = tool
                .output_schema
                .as_deref()
                .map(|s| parse_schema(&tool.name, "output", s))
                .transpose()?;
            admitted.push(RegisteredTool {
                owner: owner.clone(),
                tool,
                input_schema: Arc::new(input),
                output_schema: output.map(Arc::new),
                validator,
            });
        }
        Ok(admitted)
    }

    /// Served tools, by name.
    pub fn tools(&self) -> impl Iterator<Item = &Arc<RegisteredTool>> {
        self.tools.values()
    }

    /// One served tool.
    pub fn tool(&self, name: &str) -> Option<&Arc<RegisteredTool>> {
        self.tools.get(name)
    }

    /// The loaded backend plugin `name`, or a not-found error listing the
    /// loaded backends.
    pub fn backend(&self, name: &str) -> Result<Backend, WitError> {
        self.plugins
            .get(name)
            .and_then(|p| p.backend())
            .ok_or_else(|| {
                let loaded: Vec<&str> = self
                    .plugins()
                    .filter(|p| p.world == World::Backend)
                    .map(|p| p.name())
                    .collect();
                WitError::NotFound(format!(
                    "backend `{name}`; loaded backends: {}",
                    if loaded.is_empty() {
                        "none".to_string()
                    } else {
                        loaded.join(", ")
                    }
                ))
            })
    }

    /// Loaded plugins, by name.
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.values()
    }

    /// What failed to load: plugins first, then host tools.
    pub fn failures(&self) -> &[LoadFailure] {
        &self.failures
    }

    /// How many of [`Registry::failures`] are plugins'.
    pub fn plugin_failures(&self) -> usize {
        self.plugin_failures
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn tool_names_follow_the_rule() {
        assert!(is_valid_tool_name("run_python"));
        assert!(is_valid_tool_name("a-B_9"));
        assert!(!is_valid_tool_name(""));
        assert!(!is_valid_tool_name("has space"));
        assert!(!is_valid_tool_name("dot.ted"));
        assert!(!is_valid_tool_name(&"x".repeat(65)));
        assert!(is_valid_tool_name(&"x".repeat(64)));
    }

    #[test]
    fn schemas_must_be_object_schemas() {
        assert!(parse_schema("t", "input", r#"{"type":"object"}"#).is_ok());
        let err = parse_schema("t", "input", r#"{"type":"string"}"#).unwrap_err();
        assert!(err.contains("`t`"), "{err}");
        assert!(parse_schema("t", "input", "[]").is_err());
        assert!(parse_schema("t", "input", "{").is_err());
    }

    /// A schema a plugin might declare: nested keywords, self-references,
    /// patterns (some invalid), formats, enums and bounds.
    fn schema() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(json!({})),
            Just(json!({"type": "string", "pattern": "^(a+)+$"})),
            Just(json!({"type": "string", "pattern": "(?<=x)y\\1["})),
            Just(json!({"type": "string", "format": "email", "minLength": 2, "maxLength": 5})),
            Just(
                json!({"type": "integer", "minimum": -1e300, "maximum": 1e300, "multipleOf": 1e-9})
            ),
            Just(json!({"type": "number", "multipleOf": 0})),
            Just(json!({"enum": [1, "a", null, [], {}]})),
            Just(json!({"$ref": "#"})),
            Just(json!({"$ref": "#/definitions/missing"})),
            Just(json!({"type": ["array", "null"], "items": {"$ref": "#"}, "uniqueItems": true})),
            Just(json!({"const": {"deep": [1, 2, {"x": true}]}})),
            Just(json!(false)),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::btree_map("[a-z]{1,3}", inner.clone(), 0..4).prop_map(|props| {
                    let required: Vec<&String> = props.keys().collect();
                    json!({"type": "object", "properties": props, "required": required})
                }),
                prop::collection::vec(inner.clone(), 1..4).prop_map(|s| json!({"anyOf": s})),
                prop::collection::vec(inner.clone(), 1..4).prop_map(|s| json!({"oneOf": s})),
                prop::collection::vec(inner.clone(), 1..4).prop_map(|s| json!({"allOf": s})),
                inner.clone().prop_map(|s| json!({"not": s})),
                inner
                    .clone()
                    .prop_map(|s| json!({"type": "object", "additionalProperties": s})),
                inner.prop_map(|s| json!({"type": "array", "items": s, "minItems": 1})),
            ]
        })
    }

    /// Arguments a client might send: any JSON, nested.
    fn arguments() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,12}".prop_map(Value::from),
            Just(Value::from("a".repeat(10_000))),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2_000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Whatever schema a plugin declares and whatever arguments a
        /// client sends, checking them returns an answer: no panic, and a
        /// refusal names where the arguments went wrong.
        #[test]
        fn argument_validation_never_panics(
            properties in prop::collection::btree_map("[a-z]{1,3}", schema(), 0..4),
            arguments in arguments(),
        ) {
            let declared = json!({"type": "object", "properties": properties}).to_string();
            if let Ok((_, validator)) = input_schema("fuzzed", &declared)
                && let Err(problems) = violations(&validator, &arguments)
            {
                prop_assert!(problems.starts_with("(root): ") || problems.starts_with('/'), "{}", problems);
            }
        }
    }
}

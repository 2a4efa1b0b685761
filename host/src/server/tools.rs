//! The tool list as clients see it, converted once per plugin set rather
//! than on every `tools/list` (and, over HTTP, on every request, whose
//! headers rmcp checks against the named tool's schema).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use rmcp::model::Tool;

use crate::runtime::registry::Registry;
use crate::server::convert;

/// How long a client may keep the tool list (the 2026-07-28 `ttlMs`
/// hint). A reload is announced with `tools/list_changed`, which clears a
/// listening client's copy at once; a client that does not listen sees new
/// plugins within this time.
pub const TOOLS_TTL_MS: u64 = 60_000;

/// The converted tools of one registry.
pub struct ToolList {
    tools: Vec<Tool>,
    by_name: HashMap<String, usize>,
}

impl ToolList {
    fn of(registry: &Registry) -> Self {
        let tools: Vec<Tool> = registry.tools().map(|t| convert::tool(t)).collect();
        let by_name = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.to_string(), i))
            .collect();
        Self { tools, by_name }
    }

    /// Every tool, in the registry's order.
    pub fn all(&self) -> &[Tool] {
        &self.tools
    }

    /// The tool named `name`.
    pub fn get(&self, name: &str) -> Option<&Tool> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }
}

/// The list of the registry seen last; rebuilt when the registry changes.
#[derive(Default)]
pub struct ToolCache {
    // The weak reference keeps the registry's allocation, so its address
    // cannot be reused by a newer registry while it is the key.
    last: Mutex<Option<(Weak<Registry>, Arc<ToolList>)>>,
}

impl ToolCache {
    /// The tool list of `registry`.
    pub fn list(&self, registry: &Arc<Registry>) -> Arc<ToolList> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((key, list)) = &*last
            && std::ptr::eq(key.as_ptr(), Arc::as_ptr(registry))
        {
            return list.clone();
        }
        let list = Arc::new(ToolList::of(registry));
        *last = Some((Arc::downgrade(registry), list.clone()));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_converted_once_per_registry() {
        let cache = ToolCache::default();
        let first = Arc::new(Registry::default());
        assert!(Arc::ptr_eq(&cache.list(&first), &cache.list(&first)));
        let reloaded = Arc::new(Registry::default());
        let list = cache.list(&reloaded);
        assert!(!Arc::ptr_eq(&list, &cache.list(&first)));
    }
}

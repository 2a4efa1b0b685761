//! Upstream MCP shapes into berth's: a tool into the contract's `tool`, a
//! result into a `tool-output`, an upstream error into a categorised one.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::contract::bindings::types::{
    Content, EmbeddedResource, Error as WitError, Media, ResourceBody, ResourceLink, Tool,
    ToolHints, ToolOutput,
};
use crate::state::secrets::Redactor;

/// Upstream tool `tool` as berth serves it, under `served`, with the
/// values of `redactor`'s secrets kept out of its texts.
pub fn tool(served: &str, tool: &rmcp::model::Tool, redactor: &Redactor) -> Tool {
    let annotations = tool.annotations.as_ref();
    // MCP's defaults when a hint is absent: not read-only, destructive,
    // not idempotent, open-world.
    let hint = |value: Option<bool>, default: bool| value.unwrap_or(default);
    let mut hints = ToolHints::empty();
    if hint(annotations.and_then(|a| a.read_only_hint), false) {
        hints |= ToolHints::READ_ONLY;
    }
    if hint(annotations.and_then(|a| a.destructive_hint), true) {
        hints |= ToolHints::DESTRUCTIVE;
    }
    if hint(annotations.and_then(|a| a.idempotent_hint), false) {
        hints |= ToolHints::IDEMPOTENT;
    }
    if hint(annotations.and_then(|a| a.open_world_hint), true) {
        hints |= ToolHints::OPEN_WORLD;
    }
    Tool {
        name: served.to_string(),
        title: tool
            .title
            .clone()
            .or_else(|| annotations.and_then(|a| a.title.clone()))
            .map(|t| redactor.redact(&t)),
        description: redactor.redact(tool.description.as_deref().unwrap_or_default()),
        input_schema: redact_value(&Value::Object((*tool.input_schema).clone()), redactor)
            .to_string(),
        output_schema: tool
            .output_schema
            .as_ref()
            .map(|s| redact_value(&Value::Object((**s).clone()), redactor).to_string()),
        hints,
    }
}

/// `value` with every string in it redacted (the strings, not the JSON
/// text: an escaped value would slip past a search of the text).
fn redact_value(value: &Value, redactor: &Redactor) -> Value {
    if redactor.is_empty() {
        return value.clone();
    }
    match value {
        Value::String(s) => Value::String(redactor.redact(s)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| redact_value(v, redactor)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (redactor.redact(k), redact_value(v, redactor)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn text_of(block: &Value, key: &str) -> Option<String> {
    block.get(key).and_then(Value::as_str).map(str::to_string)
}

fn bytes_of(block: &Value, key: &str) -> Option<Vec<u8>> {
    STANDARD.decode(block.get(key)?.as_str()?).ok()
}

/// One upstream content block as contract content; a block of a kind berth
/// does not know travels as its JSON text rather than being dropped.
fn content(block: &Value, redactor: &Redactor) -> Content {
    let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
    let media = |block: &Value| {
        Some(Media {
            data: bytes_of(block, "data")?,
            mime_type: text_of(block, "mimeType")?,
        })
    };
    let converted = match kind {
        "text" => text_of(block, "text").map(|t| Content::Text(redactor.redact(&t))),
        "image" => media(block).map(Content::Image),
        "audio" => media(block).map(Content::Audio),
        "resource_link" => Some(Content::ResourceLink(ResourceLink {
            uri: redactor.redact(&text_of(block, "uri").unwrap_or_default()),
            name: redactor.redact(&text_of(block, "name").unwrap_or_default()),
            description: text_of(block, "description").map(|d| redactor.redact(&d)),
            mime_type: text_of(block, "mimeType"),
        })),
        "resource" => block.get("resource").and_then(|r| {
            let body = match text_of(r, "text") {
                Some(text) => ResourceBody::Text(redactor.redact(&text)),
                None => ResourceBody::Blob(bytes_of(r, "blob")?),
            };
            Some(Content::Embedded(EmbeddedResource {
                uri: redactor.redact(&text_of(r, "uri")?),
                mime_type: text_of(r, "mimeType"),
                body,
            }))
        }),
        _ => None,
    };
    converted.unwrap_or_else(|| Content::Json(redact_value(block, redactor).to_string()))
}

/// An upstream `tools/call` result (as JSON) as a tool output, with the
/// values of `redactor`'s secrets replaced.
pub fn output(result: &Value, redactor: &Redactor) -> ToolOutput {
    let content = result
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| blocks.iter().map(|b| content(b, redactor)).collect())
        .unwrap_or_default();
    ToolOutput {
        content,
        structured: result
            .get("structuredContent")
            .filter(|v| !v.is_null())
            .map(|v| redact_value(v, redactor).to_string()),
        is_error: result
            .get("isError")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    }
}

/// An upstream's JSON-RPC error for a call as a categorised error that
/// keeps its code and message.
pub fn upstream_error(server: &str, code: i32, message: &str, redactor: &Redactor) -> WitError {
    let text = format!(
        "server `{server}` answered error {code}: {}",
        redactor.redact(message)
    );
    match code {
        // Invalid params: the upstream refused the arguments.
        -32602 => WitError::InvalidInput(text),
        // Method not found: the tool went away upstream.
        -32601 => WitError::NotFound(text),
        _ => WitError::Failed(text),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_content_kind_survives_and_unknown_kinds_become_json() {
        let result = json!({
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image", "data": "AQID", "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "r://x", "text": "body"}},
                {"type": "resource_link", "uri": "r://y", "name": "y"},
                {"type": "hologram", "depth": 3}
            ],
            "structuredContent": {"a": 1},
            "isError": true
        });
        let out = output(&result, &Redactor::default());
        assert!(out.is_error);
        assert_eq!(out.structured.as_deref(), Some(r#"{"a":1}"#));
        assert!(matches!(&out.content[0], Content::Text(t) if t == "hi"));
        assert!(matches!(&out.content[1], Content::Image(m) if m.data == [1, 2, 3]));
        assert!(matches!(&out.content[2], Content::Embedded(e) if e.uri == "r://x"));
        assert!(matches!(&out.content[3], Content::ResourceLink(l) if l.name == "y"));
        assert!(matches!(&out.content[4], Content::Json(j) if j.contains("hologram")));
    }

    #[test]
    fn secrets_are_redacted_in_structured_results_even_when_json_escapes_them() {
        let redactor = Redactor::new(vec![crate::state::secrets::Secret::for_test(
            "tok", "se\"cret",
        )]);
        let result = json!({
            "content": [{"type": "text", "text": "got se\"cret"}, {"type": "odd", "v": "se\"cret"}],
            "structuredContent": {"token": "se\"cret", "nested": ["se\"cret"]}
        });
        let out = output(&result, &redactor);
        let all = format!("{:?} {:?}", out.content, out.structured);
        assert!(
            !all.contains("se\"cret") && !all.contains("se\\\"cret"),
            "{all}"
        );
        assert!(out.structured.unwrap().contains("[secret tok]"));
    }

    #[test]
    fn absent_hints_take_the_mcp_defaults() {
        let bare = rmcp::model::Tool::new("t", "d", serde_json::Map::new());
        let hints = tool("s__t", &bare, &Redactor::default()).hints;
        assert!(hints.contains(ToolHints::DESTRUCTIVE | ToolHints::OPEN_WORLD));
        assert!(!hints.contains(ToolHints::READ_ONLY));
    }

    #[test]
    fn upstream_codes_keep_their_meaning() {
        let r = Redactor::default();
        assert!(
            matches!(upstream_error("s", -32602, "bad", &r), WitError::InvalidInput(m) if m.contains("-32602"))
        );
        assert!(matches!(
            upstream_error("s", -1, "boom", &r),
            WitError::Failed(_)
        ));
    }
}

//! Conversions between the plugin contract and MCP types.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rmcp::model::{
    CallToolResult, ContentBlock, MetaObject, Resource, ResourceContents, Tool, ToolAnnotations,
};
use serde_json::{Value, json};

use crate::app::host::ToolCallError;
use crate::contract::bindings::types::{Content, ResourceBody, ToolHints, ToolOutput};
use crate::runtime::registry::RegisteredTool;

/// The MCP description of a served tool.
pub fn tool(entry: &RegisteredTool) -> Tool {
    let hints = entry.tool.hints;
    let annotations = ToolAnnotations::new()
        .read_only(hints.contains(ToolHints::READ_ONLY))
        .destructive(hints.contains(ToolHints::DESTRUCTIVE))
        .idempotent(hints.contains(ToolHints::IDEMPOTENT))
        .open_world(hints.contains(ToolHints::OPEN_WORLD));
    let mut tool = Tool::new(
        entry.tool.name.clone(),
        entry.tool.description.clone(),
        entry.input_schema.clone(),
    )
    .with_annotations(annotations);
    if let Some(title) = &entry.tool.title {
        tool = tool.with_title(title.clone());
    }
    if let Some(schema) = &entry.output_schema {
        tool = tool.with_raw_output_schema(schema.clone());
    }
    tool
}

fn content(item: Content) -> ContentBlock {
    match item {
        Content::Text(text) | Content::Json(text) => ContentBlock::text(text),
        Content::Image(media) => ContentBlock::image(STANDARD.encode(&media.data), media.mime_type),
        Content::Audio(media) => ContentBlock::audio(STANDARD.encode(&media.data), media.mime_type),
        Content::ResourceLink(link) => {
            let mut resource = Resource::new(link.uri, link.name);
            if let Some(description) = link.description {
                resource = resource.with_description(description);
            }
            if let Some(mime) = link.mime_type {
                resource = resource.with_mime_type(mime);
            }
            ContentBlock::resource_link(resource)
        }
        Content::Embedded(embedded) => {
            let contents = match embedded.body {
                ResourceBody::Text(text) => ResourceContents::text(text, embedded.uri),
                ResourceBody::Blob(bytes) => {
                    ResourceContents::blob(STANDARD.encode(&bytes), embedded.uri)
                }
            };
            let contents = match embedded.mime_type {
                Some(mime) => contents.with_mime_type(mime),
                None => contents,
            };
            ContentBlock::resource(contents)
        }
    }
}

/// A plugin's successful output as an MCP result.
pub fn output(output: ToolOutput) -> CallToolResult {
    let blocks = output.content.into_iter().map(content).collect();
    let mut result = if output.is_error {
        CallToolResult::error(blocks)
    } else {
        CallToolResult::success(blocks)
    };
    if let Some(structured) = output.structured {
        // The plugin's own structured result; text that is not JSON is kept
        // as a string rather than dropped.
        result.structured_content =
            Some(serde_json::from_str(&structured).unwrap_or(Value::String(structured)));
    }
    result
}

/// A failed call as an `isError` result with its category and hint, both
/// in the text and in `_meta["berth/error"]`.
pub fn failure(category: &str, message: &str, hint: &str) -> CallToolResult {
    let text = format!("{category}: {message}\nhint: {hint}");
    let mut meta = serde_json::Map::new();
    meta.insert(
        "berth/error".into(),
        json!({ "category": category, "hint": hint }),
    );
    CallToolResult::error(vec![ContentBlock::text(text)]).with_meta(Some(MetaObject(meta)))
}

/// The result for a call error that is not a protocol error.
pub fn call_error(err: &ToolCallError) -> CallToolResult {
    match err {
        ToolCallError::UnknownTool(_) => {
            failure("not-found", &err.to_string(), "List the tools first.")
        }
        ToolCallError::InvalidArguments { .. } => failure(
            "invalid-arguments",
            &err.to_string(),
            "Fix the arguments to match the tool's inputSchema and call again.",
        ),
        ToolCallError::Call(call) => failure(call.category(), &call.message(), call.hint()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::bindings::types::{EmbeddedResource, Error as WitError, Media};
    use crate::contract::error::CallError;

    #[test]
    fn media_is_base64_encoded() {
        let out = output(ToolOutput {
            content: vec![Content::Image(Media {
                data: vec![1, 2, 3],
                mime_type: "image/png".into(),
            })],
            structured: None,
            is_error: false,
        });
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["content"][0]["type"], "image");
        assert_eq!(json["content"][0]["data"], "AQID");
        assert_eq!(json["isError"], false);
    }

    #[test]
    fn embedded_text_resource_keeps_uri_and_mime() {
        let out = output(ToolOutput {
            content: vec![Content::Embedded(EmbeddedResource {
                uri: "test://r".into(),
                mime_type: Some("text/plain".into()),
                body: ResourceBody::Text("hi".into()),
            })],
            structured: Some(r#"{"a":1}"#.into()),
            is_error: true,
        });
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["content"][0]["resource"]["uri"], "test://r");
        assert_eq!(json["content"][0]["resource"]["mimeType"], "text/plain");
        assert_eq!(json["structuredContent"]["a"], 1);
        assert_eq!(json["isError"], true);
    }

    #[test]
    fn failures_carry_category_and_hint() {
        let err = ToolCallError::Call(CallError::Plugin(WitError::Denied("no".into())));
        let json = serde_json::to_value(call_error(&err)).unwrap();
        assert_eq!(json["isError"], true);
        assert_eq!(json["_meta"]["berth/error"]["category"], "denied");
        assert!(
            json["content"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("denied: no\nhint: ")
        );
    }
}

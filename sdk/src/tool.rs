//! Declaring tools with typed arguments, and building their results.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Content, Error, Media, Result, Tool, ToolHints, ToolOutput};

/// Name, description and hints of a tool; its schemas come from the types
/// given to [`Toolbox::tool`].
///
/// ```
/// use berth_sdk::ToolSpec;
/// let spec = ToolSpec::new("delete_file", "Delete a file").title("Delete").destructive();
/// ```
#[derive(Debug, Clone)]
pub struct ToolSpec {
    name: String,
    title: Option<String>,
    description: String,
    hints: ToolHints,
}

impl ToolSpec {
    /// A tool called `name` (`[A-Za-z0-9_-]`, at most 64 characters).
    ///
    /// ```
    /// let spec = berth_sdk::ToolSpec::new("echo", "Repeat the input");
    /// ```
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            title: None,
            description: description.into(),
            hints: ToolHints::empty(),
        }
    }

    /// A short human-friendly title.
    ///
    /// ```
    /// let spec = berth_sdk::ToolSpec::new("echo", "Repeat the input").title("Echo");
    /// ```
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// The tool changes nothing.
    ///
    /// ```
    /// let spec = berth_sdk::ToolSpec::new("now", "Current time").read_only();
    /// ```
    pub fn read_only(mut self) -> Self {
        self.hints |= ToolHints::READ_ONLY;
        self
    }

    /// The tool may delete or overwrite things.
    ///
    /// ```
    /// let spec = berth_sdk::ToolSpec::new("wipe", "Wipe a cache").destructive();
    /// ```
    pub fn destructive(mut self) -> Self {
        self.hints |= ToolHints::DESTRUCTIVE;
        self
    }

    /// Repeating a call with the same arguments has no further effect.
    ///
    /// ```
    /// let spec = berth_sdk::ToolSpec::new("ensure_dir", "Create a directory").idempotent();
    /// ```
    pub fn idempotent(mut self) -> Self {
        self.hints |= ToolHints::IDEMPOTENT;
        self
    }

    /// The tool reaches systems outside the host.
    ///
    /// ```
    /// let spec = berth_sdk::ToolSpec::new("fetch", "Fetch a URL").open_world();
    /// ```
    pub fn open_world(mut self) -> Self {
        self.hints |= ToolHints::OPEN_WORLD;
        self
    }

    fn into_tool(self, input_schema: String, output_schema: Option<String>) -> Tool {
        Tool {
            name: self.name,
            title: self.title,
            description: self.description,
            input_schema,
            output_schema,
            hints: self.hints,
        }
    }
}

type Handler = Box<dyn Fn(&str) -> Result<ToolOutput>>;

/// A plugin's tools and the functions that serve them. Arguments are
/// deserialized into the handler's type, whose JSON Schema (from
/// `schemars`) is what the host validates calls against.
///
/// ```
/// use berth_sdk::{Toolbox, ToolSpec, ToolOutput};
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Add { a: i64, b: i64 }
/// let toolbox = Toolbox::new().tool(ToolSpec::new("add", "Add two numbers"), |args: Add| {
///     Ok(ToolOutput::text((args.a + args.b).to_string()))
/// });
/// let out = toolbox.call("add", r#"{"a": 2, "b": 3}"#).unwrap();
/// assert_eq!(out.content.len(), 1);
/// ```
#[derive(Default)]
pub struct Toolbox {
    tools: Vec<(Tool, Handler)>,
}

impl Toolbox {
    /// An empty toolbox.
    ///
    /// ```
    /// assert!(berth_sdk::Toolbox::new().list().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a tool whose arguments are `A`.
    ///
    /// ```
    /// # use berth_sdk::{Toolbox, ToolSpec, ToolOutput};
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct Echo { text: String }
    /// let toolbox = Toolbox::new().tool(ToolSpec::new("echo", "Echo"), |a: Echo| Ok(ToolOutput::text(a.text)));
    /// assert_eq!(toolbox.list()[0].name, "echo");
    /// ```
    pub fn tool<A, F>(mut self, spec: ToolSpec, handler: F) -> Self
    where
        A: DeserializeOwned + JsonSchema + 'static,
        F: Fn(A) -> Result<ToolOutput> + 'static,
    {
        let name = spec.name.clone();
        let tool = spec.into_tool(schema_of::<A>(), None);
        self.tools
            .push((tool, Box::new(move |raw| handler(parse_args(&name, raw)?))));
        self
    }

    /// Add a tool whose arguments are `A` and whose structured result is
    /// `O`; the result is sent both as JSON text and as structured content.
    ///
    /// ```
    /// # use berth_sdk::{Toolbox, ToolSpec};
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct Query { n: u32 }
    /// #[derive(serde::Serialize, schemars::JsonSchema)]
    /// struct Square { value: u64 }
    /// let toolbox = Toolbox::new().typed_tool(ToolSpec::new("square", "Square n"), |q: Query| {
    ///     Ok(Square { value: u64::from(q.n) * u64::from(q.n) })
    /// });
    /// let out = toolbox.call("square", r#"{"n": 4}"#).unwrap();
    /// assert_eq!(out.structured.as_deref(), Some(r#"{"value":16}"#));
    /// ```
    pub fn typed_tool<A, O, F>(mut self, spec: ToolSpec, handler: F) -> Self
    where
        A: DeserializeOwned + JsonSchema + 'static,
        O: Serialize + JsonSchema + 'static,
        F: Fn(A) -> Result<O> + 'static,
    {
        let name = spec.name.clone();
        let tool = spec.into_tool(schema_of::<A>(), Some(schema_of::<O>()));
        self.tools.push((
            tool,
            Box::new(move |raw| ToolOutput::json(&handler(parse_args(&name, raw)?)?)),
        ));
        self
    }

    /// The declared tools.
    ///
    /// ```
    /// assert_eq!(berth_sdk::Toolbox::new().list().len(), 0);
    /// ```
    pub fn list(&self) -> Vec<Tool> {
        self.tools.iter().map(|(tool, _)| tool.clone()).collect()
    }

    /// Call the tool `name` with JSON `arguments`.
    ///
    /// ```
    /// let err = berth_sdk::Toolbox::new().call("missing", "{}").unwrap_err();
    /// assert!(matches!(err, berth_sdk::Error::NotFound(_)));
    /// ```
    pub fn call(&self, name: &str, arguments: &str) -> Result<ToolOutput> {
        let (_, handler) = self
            .tools
            .iter()
            .find(|(tool, _)| tool.name == name)
            .ok_or_else(|| Error::not_found(format!("this plugin has no tool named `{name}`")))?;
        handler(arguments)
    }
}

fn schema_of<T: JsonSchema>() -> String {
    schemars::schema_for!(T).as_value().to_string()
}

fn parse_args<A: DeserializeOwned>(tool: &str, raw: &str) -> Result<A> {
    serde_json::from_str(raw).map_err(|err| {
        Error::invalid_input(format!(
            "arguments of `{tool}` do not match its schema: {err}"
        ))
    })
}

impl ToolOutput {
    /// A result with one text item.
    ///
    /// ```
    /// let out = berth_sdk::ToolOutput::text("done");
    /// assert!(!out.is_error);
    /// ```
    pub fn text(text: impl Into<String>) -> Self {
        Self::from_content(vec![Content::Text(text.into())])
    }

    /// A result made of several content items.
    ///
    /// ```
    /// use berth_sdk::{Content, ToolOutput};
    /// let out = ToolOutput::from_content(vec![Content::Text("a".into()), Content::Text("b".into())]);
    /// assert_eq!(out.content.len(), 2);
    /// ```
    pub fn from_content(content: Vec<Content>) -> Self {
        Self {
            content,
            structured: None,
            is_error: false,
        }
    }

    /// A structured result: `value` as JSON text plus structured content.
    ///
    /// ```
    /// let out = berth_sdk::ToolOutput::json(&serde_json::json!({"ok": true})).unwrap();
    /// assert_eq!(out.structured.as_deref(), Some(r#"{"ok":true}"#));
    /// ```
    pub fn json<T: Serialize>(value: &T) -> Result<Self> {
        let json = serde_json::to_string(value)
            .map_err(|err| Error::failed(format!("result is not serializable: {err}")))?;
        Ok(Self {
            content: vec![Content::Json(json.clone())],
            structured: Some(json),
            is_error: false,
        })
    }

    /// A tool-level failure the agent should see and may act on (MCP
    /// `isError`), for example a test that failed.
    ///
    /// ```
    /// let out = berth_sdk::ToolOutput::failure("3 tests failed");
    /// assert!(out.is_error);
    /// ```
    pub fn failure(text: impl Into<String>) -> Self {
        Self {
            content: vec![Content::Text(text.into())],
            structured: None,
            is_error: true,
        }
    }

    /// Append one more content item.
    ///
    /// ```
    /// use berth_sdk::{Content, ToolOutput};
    /// let out = ToolOutput::text("chart:").with(Content::image(vec![0x89, b'P'], "image/png"));
    /// assert_eq!(out.content.len(), 2);
    /// ```
    pub fn with(mut self, content: Content) -> Self {
        self.content.push(content);
        self
    }
}

impl Content {
    /// An image from raw bytes.
    ///
    /// ```
    /// let image = berth_sdk::Content::image(vec![1, 2, 3], "image/png");
    /// ```
    pub fn image(data: Vec<u8>, mime_type: impl Into<String>) -> Self {
        Content::Image(Media {
            data,
            mime_type: mime_type.into(),
        })
    }

    /// An audio clip from raw bytes.
    ///
    /// ```
    /// let clip = berth_sdk::Content::audio(vec![1, 2, 3], "audio/wav");
    /// ```
    pub fn audio(data: Vec<u8>, mime_type: impl Into<String>) -> Self {
        Content::Audio(Media {
            data,
            mime_type: mime_type.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Pair {
        left: i32,
        right: i32,
    }

    fn adder() -> Toolbox {
        Toolbox::new().tool(ToolSpec::new("add", "Add").read_only(), |p: Pair| {
            Ok(ToolOutput::text((p.left + p.right).to_string()))
        })
    }

    #[test]
    fn schema_comes_from_the_argument_type() {
        let tool = &adder().list()[0];
        let schema: serde_json::Value = serde_json::from_str(&tool.input_schema).unwrap();
        assert_eq!(schema["type"], "object");
        assert!(schema["properties"]["left"].is_object());
        assert_eq!(schema["required"], serde_json::json!(["left", "right"]));
        assert!(tool.hints.contains(ToolHints::READ_ONLY));
    }

    #[test]
    fn call_dispatches_and_parses_arguments() {
        let out = adder().call("add", r#"{"left": 40, "right": 2}"#).unwrap();
        assert!(matches!(&out.content[0], Content::Text(t) if t == "42"));
    }

    #[test]
    fn arguments_of_the_wrong_shape_name_the_tool() {
        let err = adder().call("add", r#"{"left": "x"}"#).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains("`add`")),
            "{err:?}"
        );
    }
}

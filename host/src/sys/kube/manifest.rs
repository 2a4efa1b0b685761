//! Manifests as `apply` receives them: YAML documents or JSON, split into
//! objects and checked for the fields every object needs, before anything
//! is sent.

use serde_json::Value;

use super::names;
use crate::contract::bindings::types::Error as WitError;

/// Largest manifest text accepted, bytes.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Most objects one `apply` may carry.
pub const MAX_OBJECTS: usize = 200;

/// One object of a manifest, with the fields berth needs pulled out.
#[derive(Debug, Clone)]
pub struct Object {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, when the manifest sets one.
    pub namespace: Option<String>,
    /// The whole object.
    pub body: Value,
}

impl Object {
    /// `kind/name`, for messages.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

/// Split `text` into objects: YAML documents separated by `---`, a JSON
/// object, a JSON array, or a `kind: List`. Empty documents are skipped.
pub fn parse(text: &str) -> Result<Vec<Object>, WitError> {
    let invalid = WitError::InvalidInput;
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(invalid(format!(
            "the manifests are {} bytes; at most {MAX_MANIFEST_BYTES} allowed",
            text.len()
        )));
    }
    let trimmed = text.trim_start();
    let documents: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(trimmed)
            .map_err(|e| invalid(format!("the manifests are not valid JSON: {e}")))?
        {
            Value::Array(items) => items,
            one => vec![one],
        }
    } else {
        // YAML 1.2 booleans only: a name such as `y` or `no` stays a string.
        let mut options = serde_saphyr::Options::default();
        options.strict_booleans = true;
        serde_saphyr::from_multiple_with_options::<Value>(text, options)
            .map_err(|e| invalid(format!("the manifests are not valid YAML: {e}")))?
    };
    let mut objects = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let position = index + 1;
        match document {
            Value::Null => continue,
            Value::Object(_) => {}
            other => {
                return Err(invalid(format!(
                    "document {position} is a {}, expected an object with apiVersion, kind and metadata.name",
                    json_type(&other)
                )));
            }
        }
        if document.get("kind").and_then(Value::as_str) == Some("List") {
            let items = document
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid(format!("document {position} is a List without items")))?;
            for item in items {
                objects.push(object(item.clone(), position)?);
            }
        } else {
            objects.push(object(document, position)?);
        }
    }
    if objects.is_empty() {
        return Err(invalid(
            "the manifests contain no object; expected at least one document with apiVersion, kind and metadata.name".into(),
        ));
    }
    if objects.len() > MAX_OBJECTS {
        return Err(invalid(format!(
            "the manifests contain {} objects; at most {MAX_OBJECTS} allowed",
            objects.len()
        )));
    }
    Ok(objects)
}

fn object(body: Value, position: usize) -> Result<Object, WitError> {
    let invalid = WitError::InvalidInput;
    let field = |path: &[&str]| -> Option<String> {
        let mut at = &body;
        for key in path {
            at = at.get(key)?;
        }
        at.as_str().map(str::to_owned)
    };
    let api_version = field(&["apiVersion"]).ok_or_else(|| {
        invalid(format!(
            "document {position} has no apiVersion (e.g. `v1` or `apps/v1`)"
        ))
    })?;
    let kind = field(&["kind"]).ok_or_else(|| {
        invalid(format!(
            "document {position} has no kind (e.g. `Deployment`)"
        ))
    })?;
    if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(invalid(format!(
            "document {position}: kind `{kind}` is not a Kubernetes kind name"
        )));
    }
    let name = field(&["metadata", "name"]).ok_or_else(|| {
        invalid(format!(
            "document {position} ({kind}) has no metadata.name; generateName is not supported by apply"
        ))
    })?;
    names::check_object_name(&format!("document {position}: {kind} name"), &name)
        .map_err(invalid)?;
    let namespace = field(&["metadata", "namespace"]);
    if let Some(ns) = &namespace {
        names::check_label(&format!("document {position}: namespace"), ns).map_err(invalid)?;
    }
    Ok(Object {
        api_version,
        kind,
        name,
        namespace,
        body,
    })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_message(text: &str) -> String {
        match parse(text) {
            Err(WitError::InvalidInput(message)) => message,
            other => panic!("expected invalid-input for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn yaml_documents_json_and_lists_all_split_into_objects() {
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: team}\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: b}\n";
        let objects = parse(yaml).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].describe(), "ConfigMap/a");
        assert_eq!(objects[0].namespace.as_deref(), Some("team"));
        assert_eq!(objects[1].api_version, "apps/v1");
        let json = r#"[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}]"#;
        assert_eq!(parse(json).unwrap()[0].describe(), "Pod/p");
        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: x\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: y\n";
        assert_eq!(parse(list).unwrap().len(), 2);
    }

    #[test]
    fn bad_manifests_name_the_document_and_what_was_expected() {
        assert!(invalid_message("kind: [unclosed").contains("not valid YAML"));
        assert!(invalid_message("{\"kind\":").contains("not valid JSON"));
        assert!(invalid_message("").contains("no object"));
        assert!(invalid_message("- 1\n").contains("document 1 is a list"));
        assert!(invalid_message("kind: Pod\nmetadata: {name: x}\n").contains("no apiVersion"));
        assert!(
            invalid_message("apiVersion: v1\nkind: Pod\nmetadata: {name: Not_A_Name}\n")
                .contains("`Not_A_Name`")
        );
        assert!(
            invalid_message("apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: 'a b'}\n")
                .contains("namespace `a b`")
        );
        assert!(
            invalid_message("apiVersion: v1\nkind: 'Pod;rm'\nmetadata: {name: x}\n")
                .contains("kind `Pod;rm`")
        );
    }
}

//! `berth call`: one tool call from the terminal, with live progress.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use futures::future::BoxFuture;
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::host::{PluginHost, ToolCallError};
use crate::contract::bindings::shared::berth::plugin::context::{ElicitAnswer, LogLevel};
use crate::contract::bindings::types::Error as WitError;
use crate::contract::sink::CallSink;
use crate::server::convert;

/// Logs and progress to the terminal; questions answered on stdin.
struct TerminalCall {
    bar: ProgressBar,
}

impl CallSink for TerminalCall {
    fn log(&self, level: LogLevel, message: String) -> BoxFuture<'_, ()> {
        let level = format!("{level:?}").to_lowercase();
        self.bar.println(format!("[{level}] {message}"));
        Box::pin(async {})
    }

    fn progress(
        &self,
        done: f64,
        total: Option<f64>,
        message: Option<String>,
    ) -> BoxFuture<'_, ()> {
        if let Some(total) = total.filter(|t| *t > 0.0) {
            self.bar.set_length(total as u64);
        }
        self.bar.set_position(done.max(0.0) as u64);
        if let Some(message) = message {
            self.bar.set_message(message);
        }
        Box::pin(async {})
    }

    fn cancelled(&self) -> bool {
        false
    }

    fn until_cancelled(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }

    fn elicit(
        &self,
        message: String,
        schema: serde_json::Value,
    ) -> BoxFuture<'_, Result<ElicitAnswer, WitError>> {
        Box::pin(async move {
            if !std::io::stdin().is_terminal() {
                return Err(WitError::Unavailable(
                    "berth call can only ask questions on an interactive terminal".into(),
                ));
            }
            let line = self.bar.suspend(|| {
                eprintln!("{message}\nAnswer with a JSON object matching: {schema}\n(empty line to decline)");
                let _ = std::io::stderr().flush();
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).map(|_| line)
            });
            let line =
                line.map_err(|e| WitError::Failed(format!("reading the answer failed: {e}")))?;
            if line.trim().is_empty() {
                return Ok(ElicitAnswer::Decline);
            }
            let value: serde_json::Value = serde_json::from_str(line.trim())
                .map_err(|e| WitError::InvalidInput(format!("the answer is not JSON: {e}")))?;
            Ok(ElicitAnswer::Accept(value.to_string()))
        })
    }
}

/// Call `tool` with `args` (a JSON object) and print the MCP result as JSON.
/// Exit code 1 when the call failed or the tool reported an error.
pub async fn call(host: &PluginHost, tool: &str, args: &str) -> anyhow::Result<ExitCode> {
    let arguments: serde_json::Value = serde_json::from_str(args).map_err(|e| {
        anyhow::anyhow!(
            "--args is not valid JSON ({e}); expected an object such as '{{\"name\": \"x\"}}'"
        )
    })?;
    if !arguments.is_object() {
        anyhow::bail!("--args must be a JSON object, got {arguments}");
    }
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| anyhow::anyhow!("progress style: {e}"))?
            .progress_chars("=> "),
    );
    let sink = Arc::new(TerminalCall { bar: bar.clone() });
    let result = host.call_tool(tool, arguments, sink).await;
    bar.finish_and_clear();
    let (json, failed) = match result {
        Ok(output) => {
            let failed = output.is_error;
            (serde_json::to_value(convert::output(output))?, failed)
        }
        Err(ToolCallError::UnknownTool(name)) => {
            let known: Vec<String> = host
                .registry()
                .tools()
                .map(|t| t.tool.name.clone())
                .collect();
            anyhow::bail!("unknown tool `{name}`; available: {}", known.join(", "));
        }
        Err(err) => (serde_json::to_value(convert::call_error(&err))?, true),
    };
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &json)?;
    writeln!(stdout)?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

//! A pod's logs, and commands run in its containers through the exec API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status as ExecStatus;
use kube::api::{Api, AttachParams, LogParams};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{OUTPUT_CAP, lock};
use crate::contract::bindings::types::{Error as WitError, ProcessOutput};
use crate::sys::kube::{Cluster, api_error};

/// Which log lines [`logs`] returns.
#[derive(Default)]
pub struct LogFilter {
    /// The container.
    pub container: Option<String>,
    /// Only the last lines.
    pub tail_lines: Option<u32>,
    /// Only recent lines.
    pub since_seconds: Option<u32>,
}

/// A pod's logs, at most [`OUTPUT_CAP`] bytes.
pub async fn logs(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    filter: &LogFilter,
) -> Result<String, WitError> {
    let params = LogParams {
        container: filter.container.clone(),
        tail_lines: filter.tail_lines.map(i64::from),
        since_seconds: filter.since_seconds.map(i64::from),
        limit_bytes: Some(OUTPUT_CAP as i64),
        ..LogParams::default()
    };
    Api::<Pod>::namespaced(cluster.client.clone(), namespace)
        .logs(pod, &params)
        .await
        .map_err(|e| api_error(&format!("reading the logs of pod/{pod}"), e))
}

/// Output collected from a stream, kept when the command times out.
#[derive(Default)]
struct Collected {
    bytes: Vec<u8>,
    truncated: bool,
}

async fn collect(mut stream: impl AsyncRead + Unpin, into: Arc<Mutex<Collected>>) {
    let mut buf = vec![0u8; 16 * 1024];
    // Keep reading past the cap, so a chatty command never blocks on a
    // full pipe.
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let mut collected = lock(&into);
        let room = OUTPUT_CAP.saturating_sub(collected.bytes.len());
        collected.bytes.extend_from_slice(&buf[..n.min(room)]);
        collected.truncated |= n > room;
    }
}

/// A command to run in a pod.
pub struct PodCommand<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod.
    pub pod: &'a str,
    /// The container; the only one when absent.
    pub container: Option<&'a str>,
    /// Program and arguments.
    pub command: &'a [String],
    /// Bytes for standard input.
    pub stdin: Option<&'a [u8]>,
    /// Time limit.
    pub timeout: Duration,
}

/// Run a command in a pod through the API server's exec subresource.
pub async fn exec(cluster: &Cluster, run: &PodCommand<'_>) -> Result<ProcessOutput, WitError> {
    if run.command.is_empty() {
        return Err(WitError::InvalidInput(
            "the command is empty; expected a program and its arguments".into(),
        ));
    }
    let mut params = AttachParams::default()
        .stdin(run.stdin.is_some())
        .stdout(true)
        .stderr(true);
    if let Some(container) = run.container {
        params = params.container(container);
    }
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), run.namespace);
    let mut attached = pods
        .exec(run.pod, run.command.to_vec(), &params)
        .await
        .map_err(|e| api_error(&format!("exec in pod/{}", run.pod), e))?;
    let stdout = Arc::new(Mutex::new(Collected::default()));
    let stderr = Arc::new(Mutex::new(Collected::default()));
    let mut readers = Vec::new();
    if let Some(stream) = attached.stdout() {
        readers.push(tokio::spawn(collect(stream, stdout.clone())));
    }
    if let Some(stream) = attached.stderr() {
        readers.push(tokio::spawn(collect(stream, stderr.clone())));
    }
    // Closing stdin closes the whole stream on API servers that speak only
    // the v4 exec protocol (before Kubernetes 1.30), losing the exit
    // status; so stdin stays open until the command is done.
    let (done, finished_rx) = tokio::sync::oneshot::channel::<()>();
    if let (Some(bytes), Some(mut writer)) = (run.stdin, attached.stdin()) {
        let bytes = bytes.to_vec();
        tokio::spawn(async move {
            let _ = writer.write_all(&bytes).await;
            let _ = writer.flush().await;
            let _ = finished_rx.await;
        });
    }
    let status = attached.take_status();
    let finished = tokio::time::timeout(run.timeout, async {
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        for reader in readers {
            let _ = reader.await;
        }
        status
    })
    .await;
    let _ = done.send(());
    let timed_out = finished.is_err();
    if timed_out {
        attached.abort();
    }
    let take = |c: &Arc<Mutex<Collected>>| {
        let mut c = lock(c);
        (std::mem::take(&mut c.bytes), c.truncated)
    };
    let (out, out_cut) = take(&stdout);
    let (err, err_cut) = take(&stderr);
    let exit_code =
        match finished {
            Ok(Some(status)) => Some(exit_code(&status).map_err(|message| {
                WitError::Failed(format!("exec in pod/{}: {message}", run.pod))
            })?),
            Ok(None) | Err(_) => None,
        };
    Ok(ProcessOutput {
        exit_code,
        stdout: out,
        stderr: err,
        truncated: out_cut || err_cut,
        timed_out,
    })
}

/// The exit code an exec's final status reports, or the failure that kept
/// the command from running.
pub fn exit_code(status: &ExecStatus) -> Result<i32, String> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|details| details.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_deref()?.parse::<i32>().ok())
        });
    match code {
        Some(code) => Ok(code),
        None => Err(status
            .message
            .clone()
            .unwrap_or_else(|| "the command failed without a message".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn exec_status_gives_the_exit_code_or_the_failure() {
        let status = |value: Value| serde_json::from_value::<ExecStatus>(value).unwrap();
        assert_eq!(exit_code(&status(json!({"status": "Success"}))), Ok(0));
        let failed = status(json!({
            "status": "Failure", "reason": "NonZeroExitCode",
            "message": "command terminated with non-zero exit code",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}
        }));
        assert_eq!(exit_code(&failed), Ok(3));
        let not_run = status(json!({"status": "Failure", "message": "executable file not found"}));
        assert_eq!(
            exit_code(&not_run),
            Err("executable file not found".to_string())
        );
    }
}

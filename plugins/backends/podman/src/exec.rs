//! Commands in sandboxes. A sandbox's main process is a small shell that
//! waits for one script on its standard input: the sandbox's last command
//! (`exec-request.last`) goes there through `podman attach`, which costs a
//! fraction of a `podman exec`, and ends the sandbox with it. Earlier
//! commands (environment setup, builds) go through `podman exec`.

use berth_sdk::{Command, Error, ExecRequest, File, ProcessOutput, process};

use crate::payload::{self, quote};

/// The sandbox's main process: wait for the last command's script and run
/// it; with a TTL, end the sandbox at its TTL whatever it is doing, so it
/// cannot outlive it even with no berth left to reap it.
pub fn main_process(ttl_seconds: Option<u64>) -> String {
    let wait_and_run = "script=$(cat) && eval \"$script\"";
    match ttl_seconds {
        Some(ttl) => format!("(sleep {ttl}; kill -9 $$) & {wait_and_run}"),
        None => wait_and_run.to_string(),
    }
}

/// Run `request` in sandbox `id`.
pub fn run(id: &str, request: ExecRequest) -> berth_sdk::Result<ProcessOutput> {
    let ExecRequest {
        files,
        command,
        stdin,
        timeout_ms,
        last,
    } = request;
    let workdir = match &command.cwd {
        Some(dir) => berth_sdk::checks::workspace_path("/work", dir)?,
        None => "/work".into(),
    };
    for (key, _) in &command.env {
        berth_sdk::checks::env_name(key)?;
    }
    let out = if last {
        hand_over(id, &files, &command, &workdir, stdin, timeout_ms)?
    } else {
        exec(id, files, command, &workdir, stdin, timeout_ms)?
    };
    let files_failed = out.exit_code == Some(payload::FAILED_EXIT)
        && String::from_utf8_lossy(&out.stderr).contains(payload::FAILED_LINE);
    if files_failed {
        return Err(Error::failed(format!(
            "writing the plan's files into sandbox {id} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

/// Run the command with `podman exec`, writing the files in the same exec
/// (or with `podman cp` first when they are too large for its command line).
fn exec(
    id: &str,
    files: Vec<File>,
    command: Command,
    workdir: &str,
    stdin: Option<Vec<u8>>,
    timeout_ms: Option<u64>,
) -> berth_sdk::Result<ProcessOutput> {
    let prologue = match payload::prologue(&files)? {
        Some(prologue) if !files.is_empty() => Some(prologue),
        Some(_) => None,
        None => {
            copy_files(id, files)?;
            None
        }
    };
    let mut args = vec!["exec".to_string()];
    if stdin.is_some() {
        args.push("--interactive".into());
    }
    args.push("--env=HOME=/work".into());
    for (key, value) in &command.env {
        args.push(format!("--env={key}={value}"));
    }
    match &prologue {
        // The files are written by the same exec, before the command
        // replaces the shell; the directory may be one of them.
        Some(prologue) => args.extend([
            "--workdir=/work".into(),
            id.to_string(),
            "sh".into(),
            "-c".into(),
            format!("{prologue}cd {} && exec \"$@\"", quote(workdir)),
            "sh".into(),
        ]),
        None => args.extend([format!("--workdir={workdir}"), id.to_string()]),
    }
    args.push(command.program);
    args.extend(command.args);
    // A non-zero exit is the command's own result, not an error.
    process::run_with(
        Command::new("podman").args(args),
        Vec::new(),
        stdin,
        timeout_ms,
    )
}

/// Hand the command to the sandbox's main process through `podman
/// attach`, as one script: write the files, run the command with its
/// stdin, then print its exit status after a line only this call knows
/// (attach does not report it), which is cut from the output again.
fn hand_over(
    id: &str,
    files: &[File],
    command: &Command,
    workdir: &str,
    stdin: Option<Vec<u8>>,
    timeout_ms: Option<u64>,
) -> berth_sdk::Result<ProcessOutput> {
    let token = berth_sdk::checks::new_sandbox_id("berth-exit-");
    let mut run = String::from("exec env HOME=/work");
    for (key, value) in &command.env {
        run.push(' ');
        run.push_str(&quote(&format!("{key}={value}")));
    }
    for word in std::iter::once(&command.program).chain(&command.args) {
        run.push(' ');
        run.push_str(&quote(word));
    }
    let input = match &stdin {
        Some(bytes) => format!("printf '%b' '{}' | ", payload::escape(bytes)),
        None => String::new(),
    };
    let redirect = if stdin.is_some() { "" } else { " < /dev/null" };
    let script = format!(
        "{input}( {}cd {} || exit 127; {run}{redirect} ); printf '\\n%s %d\\n' {token} \"$?\"\n",
        payload::writes(files)?,
        quote(workdir),
    );
    let mut out = process::run_with(
        Command::new("podman").args(["attach", id]),
        Vec::new(),
        Some(script.into_bytes()),
        timeout_ms,
    )?;
    let marker = format!("\n{token} ");
    let status = find_last(&out.stdout, marker.as_bytes());
    out.exit_code = status.and_then(|at| {
        let rest = &out.stdout[at + marker.len()..];
        let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).ok()?.trim().parse().ok()
    });
    if let Some(at) = status {
        out.stdout.truncate(at);
    }
    Ok(out)
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .rposition(|window| window == needle)
}

/// Copy `files` into sandbox `id`'s workspace with `podman cp`, for
/// payloads too large for an exec's command line.
fn copy_files(id: &str, files: Vec<File>) -> berth_sdk::Result<()> {
    let staged: Vec<File> = files
        .into_iter()
        .map(|f| File {
            path: format!("payload/{}", f.path),
            ..f
        })
        .collect();
    crate::cli::podman_with(
        vec!["cp".into(), "payload/.".into(), format!("{id}:/work/")],
        staged,
        None,
        None,
    )
    .map(|_| ())
}

//! Files written into a sandbox by the same podman call that runs the
//! command: a shell prologue that recreates each file with `printf`, so a
//! run costs one podman call instead of a `podman cp` and an exec.

use berth_sdk::File;

/// Longest prologue passed on the command line (Linux caps one argument at
/// 128 KiB); larger payloads are copied with `podman cp` instead.
pub const MAX_PROLOGUE: usize = 96 * 1024;

/// Exit code of a prologue that could not write its files, told apart
/// from the command's own exit by [`FAILED_LINE`] on stderr.
pub const FAILED_EXIT: i32 = 125;
/// What a prologue that could not write its files says on stderr.
pub const FAILED_LINE: &str = "berth: writing the sandbox files failed";

/// Shell commands, each ending in `&&`, that write `files` under `/work`
/// and exit with [`FAILED_EXIT`] when they cannot; `None` when they would
/// not fit in one command-line argument.
pub fn prologue(files: &[File]) -> berth_sdk::Result<Option<String>> {
    // Escaping only grows the contents: too large raw is too large written.
    if files.iter().map(|f| f.contents.len()).sum::<usize>() > MAX_PROLOGUE {
        return Ok(None);
    }
    let script = writes(files)?;
    Ok((script.len() <= MAX_PROLOGUE).then_some(script))
}

/// Like [`prologue`], however large: for a script that is not passed on a
/// command line.
pub fn writes(files: &[File]) -> berth_sdk::Result<String> {
    let mut script = String::from("{ ");
    for file in files {
        let path = berth_sdk::checks::workspace_path("/work", &file.path)?;
        if let Some((dir, _)) = path.rsplit_once('/') {
            script.push_str(&format!("mkdir -p {} && ", quote(dir)));
        }
        script.push_str(&format!(
            "printf '%b' '{}' > {} && ",
            escape(&file.contents),
            quote(&path)
        ));
        if file.executable {
            script.push_str(&format!("chmod 755 {} && ", quote(&path)));
        }
    }
    script.push_str(&format!(
        "true; }} || {{ echo '{FAILED_LINE}' >&2; exit {FAILED_EXIT}; }}; "
    ));
    Ok(script)
}

/// `bytes` for `printf %b` inside single quotes: printable ASCII as is,
/// everything else (quotes, backslashes, newlines, non-ASCII) as `\0NNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\0047"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\0{b:03o}")),
        }
    }
    out
}

/// `text` as one single-quoted shell word.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

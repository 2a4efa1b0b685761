//! `read_dirs`: host directories a plugin reads through read-only WASI
//! preopens. A plugin requests the path it opens (`/templates`); only the
//! operator's policy says which host directory is behind it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::unit::Capability;

/// The `read_dirs` capability.
pub struct ReadDirs;

impl Capability for ReadDirs {
    type Request = BTreeSet<String>;
    type Allow = BTreeMap<String, PathBuf>;
    type Grant = BTreeMap<String, PathBuf>;

    fn allow_requested(_: &BTreeSet<String>) -> BTreeMap<String, PathBuf> {
        // Which host directory a plugin reads is the host's choice alone.
        BTreeMap::new()
    }

    fn union(
        a: &BTreeMap<String, PathBuf>,
        b: &BTreeMap<String, PathBuf>,
    ) -> BTreeMap<String, PathBuf> {
        a.iter()
            .chain(b)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn grant(
        request: &BTreeSet<String>,
        allow: &BTreeMap<String, PathBuf>,
    ) -> BTreeMap<String, PathBuf> {
        allow
            .iter()
            .filter(|(guest, _)| request.contains(*guest))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn refused(request: &BTreeSet<String>, grant: &BTreeMap<String, PathBuf>) -> Vec<String> {
        request
            .iter()
            .filter(|guest| !grant.contains_key(*guest))
            .map(|guest| format!("read_dirs:{guest}"))
            .collect()
    }
}

/// Open every granted directory read-only in `wasi` for `plugin`.
pub fn preopen(wasi: &mut WasiCtxBuilder, plugin: &str, granted: &BTreeMap<String, PathBuf>) {
    for (guest, host) in granted {
        // A granted directory that is missing is the host's mistake, not
        // the plugin's: it is logged and the plugin sees no directory.
        if let Err(err) = wasi.preopened_dir(host, guest, FsPerms::ReadOnly) {
            tracing::warn!(plugin, dir = %host.display(), "cannot open a granted directory: {err:#}");
        }
    }
}

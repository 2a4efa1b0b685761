//! The `berth` command line.

mod call;
mod inspect;
mod scaffold;
mod secrets;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::config::Config;
use crate::app::host::PluginHost;
use crate::server::transport;

/// berth: an MCP server whose tools come from WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, long_about = None)]
pub struct Cli {
    /// Config file (default: ./berth.toml when present).
    #[arg(long, short = 'c', global = true, env = "BERTH_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (database, compile cache, workspaces).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Extra plugin directory; may be repeated.
    #[arg(long = "plugin-dir", global = true)]
    plugin_dirs: Vec<PathBuf>,
    /// Do not load the plugins bundled in the binary.
    #[arg(long, global = true)]
    no_bundled: bool,
    /// Log filter for stderr, e.g. `info` or `berth=debug`.
    #[arg(long, global = true, env = "BERTH_LOG", default_value = "info")]
    log: String,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve MCP: on stdio by default, or streamable HTTP with --http.
    Serve {
        /// Serve streamable HTTP at http://ADDR/mcp instead of stdio
        /// (`--http` alone: 127.0.0.1:8765).
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8765")]
        http: Option<SocketAddr>,
    },
    /// Inspect plugins.
    Plugins {
        /// Which inspection.
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// List the tools berth would serve.
    Tools {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Call one tool and print its result.
    Call {
        /// Tool name.
        tool: String,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
    },
    /// Manage the secrets store's file provider (values on stdin, never shown).
    Secrets {
        /// What to do.
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Create things.
    Plugin {
        /// What to create.
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// List loaded plugins and any that failed to load.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check one plugin file: world, API version, grants and tools.
    Check {
        /// The component.
        file: PathBuf,
        /// Its manifest (default: FILE with .toml, or plugin.toml beside it).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Set secret NAME to the value read from stdin (typed without echo on a terminal).
    Set {
        /// The secret's name (A-Z, a-z, 0-9, '_', '-', '.').
        name: String,
    },
    /// List the secrets' names and the provider of each; never values.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove secret NAME from the file provider.
    Rm {
        /// The secret's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Scaffold a plugin crate that builds and loads unchanged.
    New {
        /// tools, runner, backend or template.
        kind: String,
        /// Plugin name (lower-case letters, digits, '-').
        name: String,
        /// Parent directory of the new crate.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Path to berth-sdk (default: the SDK this berth was built from,
        /// else the crates.io release).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// `filter` with the MCP library held at warnings unless the filter names
/// it: at info it logs every client's whole capability struct and every
/// notification. berth logs each client in one line instead.
fn log_directives(filter: &str) -> String {
    if filter.contains("rmcp") {
        filter.to_string()
    } else {
        format!("{filter},rmcp=warn")
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(log_directives(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_directives("info")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

impl Cli {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        config.plugin_dirs.extend(self.plugin_dirs.iter().cloned());
        if self.no_bundled {
            config.bundled_plugins = false;
        }
        config.check_data_dir()?;
        Ok(config)
    }
}

/// Parse the command line and run it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config();
    match cli.command {
        Command::Plugin {
            command:
                PluginCommand::New {
                    kind,
                    name,
                    dir,
                    sdk,
                },
        } => {
            scaffold::create(&kind, &name, &dir, sdk.as_deref())?;
        }
        Command::Plugins {
            command:
                PluginsCommand::Check {
                    file,
                    manifest,
                    json,
                },
        } => {
            return inspect::check(config?, &file, manifest.as_deref(), json).await;
        }
        Command::Plugins {
            command: PluginsCommand::List { json },
        } => {
            inspect::list_plugins(&*PluginHost::start(config?).await?, json)?;
        }
        Command::Secrets { command } => {
            let config = config?;
            return match command {
                SecretsCommand::Set { name } => secrets::set(&config, &name),
                SecretsCommand::List { json } => secrets::list(&config, json),
                SecretsCommand::Rm { name } => secrets::remove(&config, &name),
            };
        }
        Command::Tools { json } => inspect::list_tools(&*PluginHost::start(config?).await?, json)?,
        Command::Call { tool, args } => {
            let host = PluginHost::start(config?).await?;
            let code = call::call(&host, &tool, &args).await;
            host.shutdown().await;
            return code;
        }
        Command::Serve { http } => {
            let host = PluginHost::start_serving(config?).await?;
            host.keep_warm()?;
            let served = match http {
                Some(addr) => crate::server::http::serve_http(host.clone(), addr).await,
                None => transport::serve_stdio(host.clone()).await,
            };
            host.shutdown().await;
            served?
        }
    }
    Ok(ExitCode::SUCCESS)
}

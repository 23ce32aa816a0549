//! The `mercato` command line.
mod keys;
mod serve;
mod show;

pub use serve::ServeArgs;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Mercato: a commerce backend whose bounded contexts are sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "mercato", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The log's format on stdout: `text`, or `json` (one object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "MERCATO_LOG_FORMAT",
        default_value_t
    )]
    log_format: crate::telemetry::LogFormat,
}

impl Cli {
    /// The log format asked for (`main` installs the log before running).
    pub fn log_format(&self) -> crate::telemetry::LogFormat {
        self.log_format
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the shop: load the plugins and serve HTTP.
    Serve(ServeArgs),
    /// Deploy a plugin component to a running host (hot swap).
    Deploy {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Plugin name; defaults to the file name without `.wasm`.
        #[arg(long)]
        name: Option<String>,
        /// Sign the upload with this hex ed25519 secret key file (see `mercato keygen`).
        #[arg(long)]
        key: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Return a plugin to its previous version on a running host.
    Rollback {
        /// Plugin name.
        plugin: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Take a plugin or rule out of service on a running host: its routes
    /// answer 404 and it is not loaded again until deployed; its data is kept.
    Remove {
        /// Plugin or rule name.
        plugin: String,
        /// Remove it although other plugins subscribe to its events (they
        /// receive nothing from it any more).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Rebuild a read model on a running host by replaying its sources into a
    /// fresh copy of its database, then switch to it (blue/green).
    Rebuild {
        /// The read model plugin (e.g. `search`).
        plugin: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the plugins of a running host (or one plugin's versions).
    Plugins {
        /// Show this plugin's versions.
        plugin: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// The shop's API keys: secret (merchant) and publishable (storefront).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Create an ed25519 key pair for signing plugins: the secret goes to FILE,
    /// the public key (for `trusted_keys`) is printed.
    Keygen {
        /// Where to write the secret key (hex; a new file, mode 0600).
        file: PathBuf,
    },
    /// Walk one order from product to refund against an in-process shop, printing each step.
    Demo {
        /// Keep the demo's databases here (default: a fresh temporary directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// Where the running host is.
#[derive(Debug, clap::Args)]
pub struct Remote {
    /// Base URL of the running host.
    #[arg(long, env = "MERCATO_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Admin token of the running host. Without one, a host on this machine
    /// is sent the token in its data directory (see --data-dir).
    #[arg(long, env = "MERCATO_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Data directory of a host on this machine, whose admin-token file is used
    /// when no token is given.
    #[arg(long, env = "MERCATO_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Print the admin API's JSON answer instead of a summary for people.
    #[arg(long)]
    json: bool,
}

impl Remote {
    /// Sends a request and prints the answer (`human` of it, or the JSON
    /// with `--json`); a refusal becomes the error.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        human: fn(&serde_json::Value) -> String,
    ) -> anyhow::Result<()> {
        let body = self.fetch(method, path, |request| request).await?;
        self.print(&body, human)
    }

    fn print(
        &self,
        body: &serde_json::Value,
        human: fn(&serde_json::Value) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(body)?);
        } else {
            println!("{}", human(body));
        }
        Ok(())
    }

    /// Sends a request and returns the JSON answer; a refusal becomes the error.
    async fn fetch(
        &self,
        method: reqwest::Method,
        path: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> anyhow::Result<serde_json::Value> {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url.trim_end_matches('/')));
        if let Some(token) = self.token()? {
            request = request.bearer_auth(token);
        }
        let response = build(request)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the host: {e}"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("no details");
            let code = body["error"]["code"].as_str().unwrap_or("error");
            let mut error = format!("{status} {code}: {message}");
            if status == reqwest::StatusCode::UNAUTHORIZED && code == "unauthorized" {
                error += &format!(
                    "\nhint: pass the host's admin token with --token or MERCATO_ADMIN_TOKEN; \
                     for a host on this machine without a configured token, point --data-dir \
                     (MERCATO_DATA_DIR) at its data directory to use {}",
                    crate::secrets::admin_token_path(&self.data_dir).display()
                );
            }
            anyhow::bail!(error);
        }
        Ok(body)
    }

    /// Starts a rebuild of read model `plugin` and follows it to its end.
    async fn rebuild(&self, plugin: &str) -> anyhow::Result<()> {
        let path = format!("/admin/plugins/{plugin}/rebuild");
        let mut status = self.fetch(reqwest::Method::POST, &path, |r| r).await?;
        while status["state"] == "running" {
            let sources: Vec<String> = status["sources"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    format!(
                        "{} {}/{}",
                        s["source"].as_str().unwrap_or("?"),
                        s["position"],
                        s["head"]
                    )
                })
                .collect();
            eprintln!(
                "rebuilding {plugin} (copy {}): {} eta {}s",
                status["generation"],
                sources.join(", "),
                status["eta_seconds"]
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            status = self.fetch(reqwest::Method::GET, &path, |r| r).await?;
        }
        self.print(&status, show::rebuilt)?;
        anyhow::ensure!(
            status["state"] == "switched",
            "the rebuild failed: {}",
            status["error"].as_str().unwrap_or("no details")
        );
        Ok(())
    }

    /// `--token`, else the token file when the host is on this machine (a
    /// missing file means none: the host's 401 then explains).
    fn token(&self) -> anyhow::Result<Option<String>> {
        if self.token.is_some() || !self.is_local()? {
            return Ok(self.token.clone());
        }
        match crate::secrets::read_admin_token(&self.data_dir) {
            Ok(token) => Ok(Some(token)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => anyhow::bail!(
                "reading {}: {e}",
                crate::secrets::admin_token_path(&self.data_dir).display()
            ),
        }
    }

    fn is_local(&self) -> anyhow::Result<bool> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| anyhow::anyhow!("--url {}: {e}", self.url))?;
        // IPv6 hosts come bracketed: `[::1]`.
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        Ok(host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()))
    }
}

/// Parses the command line and runs it.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Demo { data_dir } => crate::demo::run(data_dir).await,
        Command::Deploy {
            file,
            name,
            key,
            remote,
        } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            let name = match name {
                Some(n) => n,
                None => file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .map(|s| s.replace('_', "-"))
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "cannot derive a plugin name from {}; pass --name",
                            file.display()
                        )
                    })?,
            };
            let signature = match key {
                Some(key) => {
                    let secret = std::fs::read_to_string(&key)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", key.display()))?;
                    Some(
                        crate::deploy::signing::sign(&secret, &bytes)
                            .map_err(anyhow::Error::msg)?,
                    )
                }
                None => None,
            };
            let path = format!("/admin/plugins/{name}");
            let upload = remote.fetch(reqwest::Method::PUT, &path, |request| {
                let request = request.header("content-type", "application/wasm");
                match signature {
                    Some(signature) => request.header("x-mercato-signature", signature),
                    None => request,
                }
                .body(bytes)
            });
            let body = with_progress(&format!("deploying {name}"), upload).await?;
            remote.print(&body, |b| show::switched(b, "deployed"))
        }
        Command::Rollback { plugin, remote } => {
            remote
                .send(
                    reqwest::Method::POST,
                    &format!("/admin/plugins/{plugin}/rollback"),
                    |b| show::switched(b, "rolled back to"),
                )
                .await
        }
        Command::Remove {
            plugin,
            force,
            remote,
        } => {
            let query = if force { "?force=true" } else { "" };
            remote
                .send(
                    reqwest::Method::DELETE,
                    &format!("/admin/plugins/{plugin}{query}"),
                    show::removed,
                )
                .await
        }
        Command::Rebuild { plugin, remote } => remote.rebuild(&plugin).await,
        Command::Plugins { plugin, remote } => {
            let (path, human): (String, fn(&serde_json::Value) -> String) = match plugin {
                Some(p) => (format!("/admin/plugins/{p}/versions"), show::versions),
                None => ("/admin/plugins".into(), show::plugins),
            };
            remote.send(reqwest::Method::GET, &path, human).await
        }
        Command::Keys(command) => keys::run(command).await,
        Command::Keygen { file } => {
            let (secret, public) =
                crate::deploy::signing::generate().map_err(anyhow::Error::msg)?;
            crate::secrets::write_new(&file, &secret).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                    "{} already exists; refusing to overwrite a key (remove it or choose another file)",
                    file.display()
                ),
                _ => anyhow::anyhow!("writing {}: {e}", file.display()),
            })?;
            println!(
                "secret key written to {}\npublic key (add to trusted_keys): {public}",
                file.display()
            );
            Ok(())
        }
    }
}

/// Awaits `work`, telling on stderr every few seconds that it still runs (a
/// rule written in Python takes seconds to compile).
async fn with_progress<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {
                eprintln!(
                    "{what}: still working after {} s (the host compiles, checks and migrates it)",
                    started.elapsed().as_secs()
                );
            }
        }
    }
}

//! `mercato keys`: create, list and revoke the shop's API keys on a running
//! host (through `/admin/keys`, with the admin token).
use super::Remote;
use super::show;
use clap::Subcommand;

/// What `mercato keys` does.
#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// Create a key; it is printed this once (the host keeps only its hash).
    Create {
        /// `secret` (the merchant's back office) or `publishable` (a storefront).
        #[arg(long, value_parser = ["secret", "publishable"])]
        kind: String,
        /// What the key is for, to recognise it in `mercato keys list`.
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the keys (never the keys themselves).
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke a key: from now on it authenticates no one.
    Revoke {
        /// The key's id (`key_…`, from `mercato keys list`).
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

pub(super) async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { kind, name, remote } => {
            let body = serde_json::json!({ "kind": kind, "name": name });
            let created = remote
                .fetch(reqwest::Method::POST, "/admin/keys", |r| r.json(&body))
                .await?;
            remote.print(&created, show::key_created)
        }
        KeysCommand::List { remote } => {
            remote
                .send(reqwest::Method::GET, "/admin/keys", show::keys)
                .await
        }
        KeysCommand::Revoke { id, remote } => {
            remote
                .send(
                    reqwest::Method::DELETE,
                    &format!("/admin/keys/{id}"),
                    show::key_revoked,
                )
                .await
        }
    }
}

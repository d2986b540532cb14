//! `costtrace keys create | list | revoke`: API keys for `costtrace serve`.

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use costtrace_server::{generate_key, hash_key};
use costtrace_store::Store;

use crate::Outcome;
use crate::serve::StoreArgs;

/// `costtrace keys …`
#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; prints only the key on standard output (it is not
    /// stored, only its hash: keep it now).
    Create(CreateArgs),
    /// List keys (never the keys themselves).
    List(ListArgs),
    /// Revoke a key by id (see `keys list`).
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
#[group(id = "who", required = true, multiple = false, args = ["tenant", "admin"])]
struct CreateArgs {
    /// The tenant (entity id) the key reads and writes.
    #[arg(long)]
    tenant: Option<String>,
    /// A key that sees every tenant.
    #[arg(long)]
    admin: bool,
    /// A note for `keys list`.
    #[arg(long, default_value = "")]
    label: String,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
struct RevokeArgs {
    /// The key id.
    id: String,
    #[command(flatten)]
    store: StoreArgs,
}

pub(crate) fn run(args: &KeysArgs) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut out = std::io::stdout().lock();
        match &args.command {
            KeysCommand::Create(a) => {
                if let Some(t) = &a.tenant
                    && (t.trim().is_empty() || t.len() > costtrace_server::MAX_ID_LEN)
                {
                    bail!(
                        "--tenant must be 1 to {} bytes",
                        costtrace_server::MAX_ID_LEN
                    );
                }
                let store = a.store.open().await?;
                let key = generate_key().context("reading random bytes for the key")?;
                let tenant = if a.admin { None } else { a.tenant.as_deref() };
                let info = store
                    .create_api_key(&hash_key(&key), tenant, &a.label)
                    .await
                    .context("storing the key")?;
                writeln!(out, "{key}")?;
                eprintln!(
                    "costtrace: created key {} for {}",
                    info.id,
                    tenant.map_or("admin".to_owned(), |t| format!("tenant {t}"))
                );
            }
            KeysCommand::List(a) => {
                let store = a.store.open().await?;
                let keys = store.list_api_keys().await.context("listing keys")?;
                if a.json {
                    writeln!(out, "{}", serde_json::to_string_pretty(&keys)?)?;
                } else {
                    for k in keys {
                        writeln!(
                            out,
                            "{}\t{}\t{}\t{}\t{}",
                            k.id,
                            k.tenant
                                .as_deref()
                                .map_or("admin".to_owned(), |t| format!("tenant:{t}")),
                            k.created_at,
                            if k.revoked { "revoked" } else { "active" },
                            k.label
                        )?;
                    }
                }
            }
            KeysCommand::Revoke(a) => {
                let store = a.store.open().await?;
                if !store
                    .revoke_api_key(&a.id)
                    .await
                    .context("revoking the key")?
                {
                    bail!(
                        "no active key with id {:?} (see `costtrace keys list`)",
                        a.id
                    );
                }
                eprintln!("costtrace: revoked key {}", a.id);
            }
        }
        Ok(Outcome::Ok)
    })
}

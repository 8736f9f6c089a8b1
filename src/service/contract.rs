//! The contract in force: a validated contract with what is derived from it
//! once per version (rendered pages), the handle that swaps it atomically on
//! reload, and the reload use case.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use super::{Deadlines, Reads, ServiceError};
use crate::contract::Contract;
use crate::store;

/// A validated contract with what is derived from it once per version.
#[derive(Clone)]
pub struct LoadedContract {
    pub contract: Arc<Contract>,
    pub version: String,
    pub source: String,
    pub path: PathBuf,
    pub html: String,
    pub markdown: String,
}

/// Why a contract could not be loaded: every diagnostic, one per line, in the
/// `FILE:LINE:COL: error: …` form.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ContractErrors(pub Vec<String>);

impl LoadedContract {
    /// Reads and validates the contract file, resolving its targets.
    pub fn load(path: &Path) -> Result<LoadedContract, ContractErrors> {
        Self::from_source(read(path)?, path)
    }

    /// [`LoadedContract::load`] leaving `env:` and `file:` targets
    /// unresolved: to render, compare or ask the contract on a machine that
    /// does not hold the alert secrets. It delivers nothing to such targets.
    pub fn load_unresolved(path: &Path) -> Result<LoadedContract, ContractErrors> {
        let source = read(path)?;
        let contract = crate::contract::parse(&source, &path.display().to_string())
            .map_err(|diags| ContractErrors(diags.iter().map(|d| d.to_string()).collect()))?;
        Ok(Self::derive(contract, source, path))
    }

    /// Validates contract text; `path` names it in diagnostics. Targets
    /// written as `env:VAR` or `file:PATH` are resolved now, from this
    /// process's environment and files; the source, and so the stored
    /// version, keeps the reference.
    pub fn from_source(source: String, path: &Path) -> Result<LoadedContract, ContractErrors> {
        let contract =
            crate::contract::parse_with(&source, &path.display().to_string(), &ProcessSecrets)
                .map_err(|diags| ContractErrors(diags.iter().map(|d| d.to_string()).collect()))?;
        Ok(Self::derive(contract, source, path))
    }

    fn derive(contract: crate::contract::Contract, source: String, path: &Path) -> LoadedContract {
        LoadedContract {
            version: contract.version().to_string(),
            html: crate::contract::render_html(&contract),
            markdown: crate::contract::render_markdown(&contract),
            contract: Arc::new(contract),
            source,
            path: path.to_path_buf(),
        }
    }
}

fn read(path: &Path) -> Result<String, ContractErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ContractErrors(vec![format!(
            "{}: error: cannot read contract: {e}",
            path.display()
        )])
    })
}

impl LoadedContract {
    /// What is valid but unwise: a secret written into the contract, which
    /// clients read and the database keeps in every version.
    pub fn warnings(&self) -> Vec<String> {
        let file = self.path.display().to_string();
        self.contract
            .contacts()
            .iter()
            .flat_map(|c| {
                let file = file.clone();
                c.literal_secrets().into_iter().map(move |kind| {
                    format!(
                        "{file}: warning: contact \"{}\": {} is written into the contract, and it is a secret (the contract is shown to clients and kept in the database); write {} = \"env:VAR\" or \"file:PATH\" and keep the value there",
                        c.id,
                        kind.key(),
                        kind.key()
                    )
                })
            })
            .collect()
    }
}

/// Target references resolved from the process: `env:VAR` from its
/// environment, `file:PATH` from the file system (a relative path from the
/// working directory).
pub struct ProcessSecrets;

impl crate::contract::ResolveSecret for ProcessSecrets {
    fn resolve(&self, reference: &crate::contract::SecretRef) -> Result<String, String> {
        use crate::contract::SecretRef;
        match reference {
            SecretRef::Literal(v) => Ok(v.clone()),
            SecretRef::Env(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(v),
                Ok(_) => Err(format!("environment variable {var} is empty")),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("environment variable {var} is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("environment variable {var} is not valid UTF-8"))
                }
            },
            SecretRef::File(path) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(v.trim_end_matches(['\n', '\r']).to_string()),
                Ok(_) => Err(format!("file {path} is empty")),
                Err(e) => Err(format!("cannot read file {path}: {e}")),
            },
        }
    }
}

/// The contract in force. Reloads swap it atomically; a request holds the
/// `Arc` it started with, so it never sees half of two versions.
#[derive(Clone)]
pub struct ContractHandle(Arc<RwLock<Arc<LoadedContract>>>);

impl ContractHandle {
    pub fn new(c: LoadedContract) -> Self {
        ContractHandle(Arc::new(RwLock::new(Arc::new(c))))
    }
    pub fn current(&self) -> Arc<LoadedContract> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn replace(&self, c: LoadedContract) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(c);
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// A new version is in force.
    Replaced { version: String },
    /// The file holds the version already in force.
    Unchanged,
    /// Invalid, or not storable: the previous version stays in force.
    Rejected { reason: String },
}

/// Stores a contract version (its source kept, so every conversation's
/// version can be read back).
pub fn record_version(
    store: &store::Store,
    c: &LoadedContract,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    store.with(|conn| {
        store::record_contract_version(conn, &c.version, &c.contract.info().name, &c.source, now)
    })?;
    Ok(())
}

impl Deadlines {
    /// Re-reads the contract file. An invalid new contract is rejected,
    /// logged and counted; the previous version stays in force. Blocking.
    pub fn reload_contract(&self, path: &Path) -> Reload {
        let rejected = |reason: String| {
            self.metrics().contract_reload_failures.inc();
            tracing::error!(errors = %reason, "contract reload rejected; previous version stays in force");
            Reload::Rejected { reason }
        };
        let loaded = match LoadedContract::load(path) {
            Ok(l) => l,
            Err(errors) => return rejected(errors.to_string()),
        };
        if loaded.version == self.contract().current().version {
            // The same text may resolve to new secrets (a rotated key): the
            // reloaded targets take over; there is no new version to store.
            self.contract().replace(loaded);
            tracing::info!("contract reloaded: unchanged");
            return Reload::Unchanged;
        }
        if let Err(e) = record_version(self.store(), &loaded, self.now()) {
            return rejected(format!("cannot store the new contract version: {e}"));
        }
        let version = loaded.version.clone();
        tracing::info!(contract.version = %version, "contract reloaded");
        self.contract().replace(loaded);
        Reload::Replaced { version }
    }
}

/// One contract version as the public changes page lists it (README, "The contract").
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionChanges {
    pub version: String,
    /// The first 12 hex digits, for display.
    pub version_short: String,
    pub name: String,
    /// "1 November 2026".
    pub effective: String,
    pub effective_date: chrono::NaiveDate,
    pub decision: Option<String>,
    /// The differences to the version before it, in the client's words;
    /// empty for the first version.
    pub changes: Vec<String>,
    /// The oldest version kept: nothing to compare it with.
    pub first: bool,
    /// The version in force now.
    pub in_force: bool,
    /// Changes of clients' own agreements: not on the public page, each
    /// shown on its client's page only.
    #[serde(skip)]
    pub agreements: Vec<crate::contract::Change>,
}

impl Reads {
    /// Every stored contract version, newest first (by effective date, then
    /// by when it was first loaded), each with its decision and what changed
    /// from the one before it. Changes clients do not see (contacts,
    /// clients' addresses) are left out.
    pub fn contract_changes(&self) -> Result<Vec<VersionChanges>, ServiceError> {
        let mut out = Ok(Vec::new());
        self.store().with(|conn| {
            out = self.contract_changes_in(conn);
            Ok(())
        })?;
        out
    }

    fn contract_changes_in(
        &self,
        conn: &mut store::AnyConnection,
    ) -> Result<Vec<VersionChanges>, ServiceError> {
        let rows = store::contract_versions_list(conn)?;
        let mut versions = Vec::with_capacity(rows.len());
        for row in rows {
            match self.core.contract_version(conn, &row.version) {
                Ok(c) => versions.push((row.first_loaded_at, c)),
                // A version the validator no longer accepts cannot be
                // compared; the page lists the others rather than failing.
                Err(e) => {
                    tracing::warn!(contract.version = %row.version, error = %e, "contract version left off the changes page")
                }
            }
        }
        versions.sort_by_key(|(loaded, c)| (c.info().effective, *loaded));
        let in_force = self.contract().current().version.clone();
        let mut list = Vec::with_capacity(versions.len());
        for (i, (_, c)) in versions.iter().enumerate() {
            let all = match i.checked_sub(1).map(|p| &versions[p].1) {
                Some(previous) => crate::contract::diff(previous, c),
                None => Vec::new(),
            };
            let (public, agreements): (Vec<_>, Vec<_>) = all
                .into_iter()
                .partition(crate::contract::Change::is_public);
            let agreements = agreements
                .into_iter()
                .filter(|c| c.kind == crate::contract::ChangeKind::ClientOverride)
                .collect();
            let changes = public.into_iter().map(|change| change.text).collect();
            list.push(VersionChanges {
                version: c.version().to_string(),
                version_short: c.version_short().to_string(),
                name: c.info().name.clone(),
                effective: c.info().effective.format("%-d %B %Y").to_string(),
                effective_date: c.info().effective,
                decision: c.info().decision.clone(),
                changes,
                first: i == 0,
                in_force: c.version() == in_force,
                agreements,
            });
        }
        list.reverse();
        Ok(list)
    }
}

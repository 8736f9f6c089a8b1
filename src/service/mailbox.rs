//! The service's port for mailboxes: what a poller hands over (raw messages
//! of one folder) and what it needs back (the folder's checkpoint). The IMAP
//! adapter depends on this, so the service never depends on IMAP.

use crate::ingest::email::FolderKind;

/// One fetched message.
#[derive(Debug, Clone)]
pub struct FetchedMail {
    pub uid: u32,
    pub raw: Vec<u8>,
}

/// Progress of one folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderCheckpoint {
    pub uidvalidity: u32,
    pub last_uid: u32,
}

/// Where the poller hands mail. Blocking (called in `spawn_blocking`).
pub trait MailSink: Send + Sync + 'static {
    fn checkpoint(&self, mailbox: &str, folder: &str) -> Result<Option<FolderCheckpoint>, String>;
    /// Stores the batch and moves the folder's checkpoint to
    /// `(uidvalidity, highest uid of the batch)` in ONE transaction;
    /// de-duplicates by Message-ID, so a rescan after a UIDVALIDITY change
    /// stores nothing twice. A message that cannot be parsed is kept raw
    /// and never fails the batch.
    fn ingest(
        &self,
        mailbox: &str,
        folder: &str,
        kind: FolderKind,
        uidvalidity: u32,
        batch: Vec<FetchedMail>,
    ) -> Result<(), String>;
}

//! INTERFACE STUB — the IMAP helper replaces this file.

/// Which folder a message came from: the inbox gives inbound mail (unless
/// from a team address), the sent folder the team's replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderKind {
    Inbox,
    Sent,
}

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

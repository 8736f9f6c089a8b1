//! IMAP folder checkpoints: (UIDVALIDITY, last UID) per folder, written with
//! the messages they cover.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::*;
use super::{AnyConnection, StoreError, to_db};
use crate::on_backend;

type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub uidvalidity: i64,
    pub last_uid: i64,
}

pub fn checkpoint(
    conn: &mut AnyConnection,
    mailbox: &str,
    folder: &str,
) -> Result<Option<Checkpoint>> {
    Ok(mailbox_checkpoints::table
        .find((mailbox, folder))
        .select((
            mailbox_checkpoints::uidvalidity,
            mailbox_checkpoints::last_uid,
        ))
        .first::<(i64, i64)>(conn)
        .optional()?
        .map(|(uidvalidity, last_uid)| Checkpoint {
            uidvalidity,
            last_uid,
        }))
}

/// Written in the same transaction as the messages it covers.
pub fn save_checkpoint(
    conn: &mut AnyConnection,
    mailbox: &str,
    folder: &str,
    cp: Checkpoint,
    now: DateTime<Utc>,
) -> Result<()> {
    let values = (
        mailbox_checkpoints::mailbox.eq(mailbox),
        mailbox_checkpoints::folder.eq(folder),
        mailbox_checkpoints::uidvalidity.eq(cp.uidvalidity),
        mailbox_checkpoints::last_uid.eq(cp.last_uid),
        mailbox_checkpoints::updated_at.eq(to_db(now)),
    );
    on_backend!(conn, |c| diesel::insert_into(mailbox_checkpoints::table)
        .values(values)
        .on_conflict((mailbox_checkpoints::mailbox, mailbox_checkpoints::folder))
        .do_update()
        .set((
            mailbox_checkpoints::uidvalidity.eq(cp.uidvalidity),
            mailbox_checkpoints::last_uid.eq(cp.last_uid),
            mailbox_checkpoints::updated_at.eq(to_db(now)),
        ))
        .execute(c))?;
    Ok(())
}

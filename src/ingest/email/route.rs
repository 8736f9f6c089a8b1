//! The routing rule: who a parsed mail is from, who it concerns, and what the
//! classifier sees of it. One pure function, used by the service and by the
//! backtest, so `keepword backtest` promises exactly what the service does.

use crate::contract::{Contract, UNKNOWN_CLIENT};
use crate::sla::{ClassifyInput, Direction};

use super::{ParsedEmail, is_team_address};

/// The folder a message was read from. The sent folder holds the team's
/// replies whatever their `From:` says (aliases, shared mailboxes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderKind {
    Inbox,
    Sent,
}

/// Who counts as us, for one mailbox.
#[derive(Debug, Clone, Copy, Default)]
pub struct Team<'a> {
    /// Addresses or `@domain` entries whose mail is the team's.
    pub members: &'a [String],
    /// Our own addresses (the `From:` of acknowledgements, the channel
    /// address): never acknowledged, never a client.
    pub own: &'a [String],
}

impl Team<'_> {
    pub fn includes(&self, address: &str) -> bool {
        is_team_address(address, self.own) || is_team_address(address, self.members)
    }
}

/// What the routing rule decided about one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub direction: Direction,
    /// The sender's address, lower-case; empty when the mail has none.
    pub sender: String,
    /// `To:` and `Cc:` addresses, lower-case.
    pub recipients: Vec<String>,
    /// The client the mail concerns: the sender's for inbound mail, the
    /// first declared client among the recipients for the team's replies.
    /// `None` when the contract ignores unknown senders (inbound) or no
    /// declared client is addressed (outbound).
    pub client: Option<String>,
}

/// Routes one parsed mail: automatic mail is `auto`; the sent folder or a
/// team sender is `outbound`; everything else is `inbound`.
pub fn route(mail: &ParsedEmail, contract: &Contract, team: Team<'_>, folder: FolderKind) -> Route {
    let sender = mail
        .from
        .as_ref()
        .map(|a| a.address.clone())
        .unwrap_or_default();
    let direction = if mail.auto.is_some() {
        Direction::Auto
    } else if folder == FolderKind::Sent || team.includes(&sender) {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    let recipients: Vec<String> = mail
        .to
        .iter()
        .chain(&mail.cc)
        .map(|a| a.address.clone())
        .collect();
    let client = match direction {
        Direction::Outbound => recipients
            .iter()
            .find_map(|a| contract.client_for_email(a))
            .map(|c| c.id.clone()),
        _ => contract.client_id_for_email(&sender).map(str::to_string),
    };
    Route {
        direction,
        sender,
        recipients,
        client,
    }
}

impl Route {
    /// The classifier's view of a mail that opens a conversation.
    pub fn classify_input<'a>(
        &'a self,
        mail: &'a ParsedEmail,
        channel: &'a str,
    ) -> ClassifyInput<'a> {
        ClassifyInput {
            channel,
            subject: &mail.subject,
            body: &mail.text,
            priority: None,
            recipients: &self.recipients,
            client_id: self.client.as_deref(),
        }
    }

    /// A declared client (not [`UNKNOWN_CLIENT`]).
    pub fn known_client(&self) -> Option<&str> {
        self.client.as_deref().filter(|c| *c != UNKNOWN_CLIENT)
    }

    /// The client-side addresses of this mail: the sender of inbound mail,
    /// the recipients of the team's replies.
    pub fn client_addresses(&self) -> Vec<&str> {
        match self.direction {
            Direction::Outbound => self.recipients.iter().map(String::as_str).collect(),
            _ if self.sender.is_empty() => Vec::new(),
            _ => vec![self.sender.as_str()],
        }
    }
}

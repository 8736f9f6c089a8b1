//! SASL `XOAUTH2` and `OAUTHBEARER` (RFC 7628) for IMAP `AUTHENTICATE`.
//!
//! async-imap calls the authenticator once per server continuation and
//! has no SASL-IR, so the first (empty) challenge gets the initial
//! response. A second challenge is the server refusing the token: it
//! carries a JSON error and waits for the client to end the exchange, with
//! an empty response (XOAUTH2) or a single 0x01 (OAUTHBEARER). Sending the
//! token again would be a protocol error, and sending nothing hangs.

use std::sync::{Arc, Mutex};

use super::settings::Sasl;

pub struct OAuthAuthenticator {
    mechanism: Sasl,
    initial: Vec<u8>,
    sent_initial: bool,
    /// The server's error challenge, for the error message and `oauth check`.
    refusal: Arc<Mutex<Option<String>>>,
}

impl OAuthAuthenticator {
    /// `user` is the mailbox (shared mailboxes too); `host` and `port` go
    /// into OAUTHBEARER's initial response as the RFC asks.
    pub fn new(mechanism: Sasl, user: &str, token: &str, host: &str, port: u16) -> Self {
        OAuthAuthenticator {
            mechanism,
            initial: initial_response(mechanism, user, token, host, port),
            sent_initial: false,
            refusal: Arc::default(),
        }
    }

    /// Where the server's error challenge lands once the exchange is over.
    pub fn refusal(&self) -> Arc<Mutex<Option<String>>> {
        self.refusal.clone()
    }
}

impl async_imap::Authenticator for OAuthAuthenticator {
    type Response = Vec<u8>;

    fn process(&mut self, challenge: &[u8]) -> Vec<u8> {
        if !self.sent_initial {
            self.sent_initial = true;
            return self.initial.clone();
        }
        *self.refusal.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(String::from_utf8_lossy(challenge).into_owned());
        match self.mechanism {
            Sasl::Xoauth2 => Vec::new(),
            Sasl::Oauthbearer => vec![0x01],
        }
    }
}

/// The client's first message, before base64.
pub fn initial_response(
    mechanism: Sasl,
    user: &str,
    token: &str,
    host: &str,
    port: u16,
) -> Vec<u8> {
    match mechanism {
        Sasl::Xoauth2 => format!("user={user}\x01auth=Bearer {token}\x01\x01").into_bytes(),
        Sasl::Oauthbearer => {
            // The GS2 header's authzid escapes `,` and `=` (RFC 5801).
            let authzid = user.replace('=', "=3D").replace(',', "=2C");
            format!("n,a={authzid},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01")
                .into_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_imap::Authenticator;

    #[test]
    fn xoauth2_answers_a_refusal_with_an_empty_response() {
        let mut a = OAuthAuthenticator::new(Sasl::Xoauth2, "s@x.test", "tok", "imap.x.test", 993);
        assert_eq!(a.process(b""), b"user=s@x.test\x01auth=Bearer tok\x01\x01");
        assert_eq!(a.process(br#"{"status":"401"}"#), b"");
        assert_eq!(
            a.refusal().lock().unwrap().as_deref(),
            Some(r#"{"status":"401"}"#)
        );
    }

    #[test]
    fn oauthbearer_escapes_the_authzid_and_ends_a_refusal_with_0x01() {
        let mut a = OAuthAuthenticator::new(Sasl::Oauthbearer, "a,b=c@x", "tok", "h", 143);
        assert_eq!(
            a.process(b""),
            b"n,a=a=2Cb=3Dc@x,\x01host=h\x01port=143\x01auth=Bearer tok\x01\x01"
        );
        assert_eq!(a.process(b"{}"), vec![0x01]);
    }
}

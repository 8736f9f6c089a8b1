//! Settings that are addresses, parsed once when the settings load: the
//! base URL of every link keepword sends, and the `From:` of its mail. A
//! wrong one is a settings error naming the key, never a failure at the
//! first send.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `public_url`: an `http://` or `https://` URL with a host and without a
/// query or fragment, kept without a trailing `/` (links append to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Links go out over https: cookies can be `Secure`.
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

impl FromStr for PublicUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<PublicUrl, String> {
        let wrong = |why: &str| format!("must be an http:// or https:// URL{why} (got `{s}`)");
        let url = url::Url::parse(s.trim()).map_err(|e| wrong(&format!(": {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(wrong(""));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(wrong(" with a host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(wrong(" without a query or fragment"));
        }
        Ok(PublicUrl(url.as_str().trim_end_matches('/').to_string()))
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for PublicUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PublicUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PublicUrl, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `smtp.from`: a mailbox, `Name <address>` or a bare address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromAddress(lettre::message::Mailbox);

impl FromAddress {
    pub fn mailbox(&self) -> &lettre::message::Mailbox {
        &self.0
    }

    /// The bare address, lower-cased (how mail from keepword is recognised).
    pub fn address(&self) -> String {
        self.0.email.to_string().to_ascii_lowercase()
    }

    /// The domain of the address, lower-cased: keepword's Message-IDs are
    /// made in it.
    pub fn domain(&self) -> String {
        self.0.email.domain().to_ascii_lowercase()
    }
}

impl FromStr for FromAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<FromAddress, String> {
        s.parse::<lettre::message::Mailbox>()
            .map(FromAddress)
            .map_err(|e| {
                format!("must be a mailbox like `Support <support@example.com>` ({e}; got `{s}`)")
            })
    }
}

impl fmt::Display for FromAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for FromAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for FromAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FromAddress, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_url_is_parsed_once_and_kept_without_its_trailing_slash() {
        let u: PublicUrl = "https://support.example.com/".parse().unwrap();
        assert_eq!(u.as_str(), "https://support.example.com");
        assert!(u.is_https());
        let u: PublicUrl = "http://127.0.0.1:8080/keepword/".parse().unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:8080/keepword");
        for bad in [
            "ftp://x",
            "support.example.com",
            "https://support.example.com/?a=1",
            "https://x/#top",
            "",
        ] {
            let e = bad.parse::<PublicUrl>().unwrap_err();
            assert!(e.contains("http:// or https://"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_from_address_is_a_mailbox() {
        let f: FromAddress = "Northwind Support <Support@Example.com>".parse().unwrap();
        assert_eq!(f.address(), "support@example.com");
        assert_eq!(f.domain(), "example.com", "as Message-IDs carry it");
        assert_eq!(f.to_string(), "Northwind Support <Support@Example.com>");
        let e = "not an address".parse::<FromAddress>().unwrap_err();
        assert!(e.contains("must be a mailbox"), "{e}");
    }
}

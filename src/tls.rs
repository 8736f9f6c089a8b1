//! TLS as a client, shared by the IMAP poller and the SMTP sender: which CAs
//! are trusted (the public web roots plus an optional `ca_file` of PEM
//! certificates for a private server), and handshake failures in words.
//!
//! Certificates are always verified; there is deliberately no switch to turn
//! verification off. A private server is trusted by naming its CA instead.

use std::path::Path;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

/// The certificates of a `ca_file`: every `CERTIFICATE` block of a PEM file
/// (other blocks, such as a key pasted into the same file, are skipped). A
/// file that cannot be read, is not PEM, or holds no certificate is an error,
/// so a wrong path shows up at start rather than as an unexplained
/// `UnknownIssuer` at the first connection.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// The public web roots plus the certificates of `ca_file`.
pub fn root_store(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        for cert in read_ca_file(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
        }
    }
    Ok(roots)
}

/// Explains a failed handshake when `err` (or an error it wraps) is a rustls
/// error; `None` when no TLS error is in the chain. `host` is the name the
/// certificate was checked against, `ca_key` the config key that adds a CA.
///
/// rustls' own words (`invalid peer certificate: UnknownIssuer`) stay in the
/// message, so a search for them still finds this log line.
pub fn describe_error(
    err: &(dyn std::error::Error + 'static),
    host: &str,
    ca_key: &str,
) -> Option<String> {
    let tls = find_rustls_error(err)?;
    use rustls::CertificateError as C;
    Some(match tls {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => format!(
            "the server's certificate is not signed by a trusted CA ({tls}); \
             for a private CA set `{ca_key}` to its PEM certificate"
        ),
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            format!(
                "the server's certificate is not valid for the host name `{host}` \
                 (NotValidForName: {tls}); connect with a name the certificate lists"
            )
        }
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => format!("the server's certificate is outside its validity period ({tls})"),
        rustls::Error::InvalidCertificate(_) => {
            format!("the server's certificate was refused ({tls})")
        }
        other => format!("TLS handshake failed ({other})"),
    })
}

/// Walks the `source()` chain. An `io::Error` hides the error it wraps from
/// `source()` (it returns the wrapped error's source), which is how
/// tokio-rustls reports handshake failures, so it is unwrapped by hand.
fn find_rustls_error<'a>(
    mut err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    loop {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return Some(tls);
            }
            err = inner;
            continue;
        }
        err = err.source()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_wrapped_in_io_errors_are_explained() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let text = describe_error(&io, "mail.test", "smtp.ca_file").unwrap();
        assert!(text.contains("UnknownIssuer"), "{text}");
        assert!(text.contains("`smtp.ca_file`"), "{text}");
        let plain = std::io::Error::other("connection reset");
        assert_eq!(describe_error(&plain, "mail.test", "smtp.ca_file"), None);
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = read_ca_file(&path).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = read_ca_file(&dir.path().join("missing.pem")).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
    }
}

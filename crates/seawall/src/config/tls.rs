//! `server.tls` and `admin.tls`: a listener's certificate chain and private key as PEM files,
//! and reading them into what rustls serves. `seawall check` reads them once (an unreadable
//! file, a file without PEM, a key that does not belong to the certificate are refused with
//! the field that names the file); the listener reads them again on reload.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::InconsistentKeys;
use serde::Deserialize;

use super::duration;

/// Largest certificate or key file read: a chain of a few certificates is a few KiB, so a
/// larger file is a mistake (a device, a log) and is not read to its end.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// A listener's TLS settings (`server.tls`, `admin.tls`). Without them the listener speaks
/// plaintext HTTP/1.1 and h2c.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, the listener's own certificate first, then the
    /// intermediates. Required.
    pub cert_path: PathBuf,
    /// PEM file with the private key of the first certificate: PKCS#8 (`BEGIN PRIVATE KEY`),
    /// RSA (`BEGIN RSA PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`). Required.
    pub key_path: PathBuf,
    /// Longest time from accepting a connection to the end of its TLS handshake; a client
    /// that takes longer is dropped, so a stalled one cannot keep a connection slot.
    /// Default `10s`; > 0.
    #[serde(default = "default_handshake_timeout", with = "duration")]
    pub handshake_timeout: Duration,
}

fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Which of the two files an error is about: the key under `server.tls` (or `admin.tls`)
/// that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsField {
    /// `cert_path`.
    Cert,
    /// `key_path`.
    Key,
}

impl TlsField {
    /// The configuration key: `cert_path` or `key_path`.
    pub fn key(self) -> &'static str {
        match self {
            TlsField::Cert => "cert_path",
            TlsField::Key => "key_path",
        }
    }
}

/// Why a certificate and key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// `cert_path` or `key_path`.
        field: TlsField,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_PEM_BYTES`].
    #[error("{} is larger than {MAX_PEM_BYTES} bytes, too large for a PEM file", path.display())]
    TooLarge {
        /// `cert_path` or `key_path`.
        field: TlsField,
        /// The file.
        path: PathBuf,
    },
    /// A PEM section is malformed (bad base64, no end line).
    #[error("{} is not valid PEM: {source}", path.display())]
    Pem {
        /// `cert_path` or `key_path`.
        field: TlsField,
        /// The file.
        path: PathBuf,
        /// What the PEM reader found wrong.
        source: pem::Error,
    },
    /// The certificate file has no `BEGIN CERTIFICATE` section.
    #[error("{} holds no certificate (no `-----BEGIN CERTIFICATE-----` section)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The first certificate is not a well-formed X.509 certificate.
    #[error("{} does not start with a valid X.509 certificate: {source}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What rustls found wrong.
        source: rustls::Error,
    },
    /// The key file has no private key section.
    #[error(
        "{} holds no private key (expected a PKCS#8, RSA or SEC1 `-----BEGIN … PRIVATE KEY-----` section)",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key is of a kind rustls cannot sign with, or is malformed.
    #[error("{} holds an unusable private key: {source}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What rustls found wrong.
        source: rustls::Error,
    },
    /// The private key is not the key of the first certificate.
    #[error(
        "the private key in {} does not belong to the first certificate in {}",
        key.display(),
        cert.display()
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

impl TlsFileError {
    /// The file the error is about (the key's for a mismatch).
    pub fn field(&self) -> TlsField {
        match self {
            Self::Read { field, .. } | Self::TooLarge { field, .. } | Self::Pem { field, .. } => {
                *field
            }
            Self::NoCertificate { .. } | Self::BadCertificate { .. } => TlsField::Cert,
            Self::NoKey { .. } | Self::BadKey { .. } | Self::Mismatch { .. } => TlsField::Key,
        }
    }
}

impl TlsConfig {
    /// Reads the chain and the key and checks that they belong together. Blocking file I/O.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// let tls = seawall::config::TlsConfig {
    ///     cert_path: "/etc/seawall/cert.pem".into(),
    ///     key_path: "/etc/seawall/key.pem".into(),
    ///     handshake_timeout: Duration::from_secs(10),
    /// };
    /// let certified = tls.load()?;
    /// assert!(!certified.cert.is_empty());
    /// # Ok::<(), seawall::config::TlsFileError>(())
    /// ```
    pub fn load(&self) -> Result<CertifiedKey, TlsFileError> {
        let chain = read_chain(&self.cert_path)?;
        let key = read_key(&self.key_path)?;
        let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|source| {
            TlsFileError::BadKey {
                path: self.key_path.clone(),
                source,
            }
        })?;
        let certified = CertifiedKey::new(chain, signer);
        match certified.keys_match() {
            // A key that cannot tell its public half is checked by the first handshake.
            Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {
                Ok(certified)
            }
            Err(rustls::Error::InconsistentKeys(_)) => Err(TlsFileError::Mismatch {
                cert: self.cert_path.clone(),
                key: self.key_path.clone(),
            }),
            Err(source) => Err(TlsFileError::BadCertificate {
                path: self.cert_path.clone(),
                source,
            }),
        }
    }
}

/// Every `CERTIFICATE` section of the file at `path`, in order (other sections are skipped,
/// so one file may hold both the chain and the key).
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let text = read_pem(path, TlsField::Cert)?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsFileError::Pem {
            field: TlsField::Cert,
            path: path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsFileError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// The first private key section of the file at `path`.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let text = read_pem(path, TlsField::Key)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsFileError::NoKey {
            path: path.to_owned(),
        },
        source => TlsFileError::Pem {
            field: TlsField::Key,
            path: path.to_owned(),
            source,
        },
    })
}

/// The file's bytes, at most [`MAX_PEM_BYTES`] of them.
fn read_pem(path: &Path, field: TlsField) -> Result<Vec<u8>, TlsFileError> {
    let read_error = |source| TlsFileError::Read {
        field,
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut text = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsFileError::TooLarge {
            field,
            path: path.to_owned(),
        });
    }
    Ok(text)
}

/// Certificates and files for the unit tests of this module and of the listeners' TLS.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::TlsConfig;

    /// A self-signed certificate for `localhost` and `127.0.0.1` whose subject's common name
    /// is `name`, and its PKCS#8 key, both as PEM.
    pub(crate) fn self_signed(name: &str) -> (String, String) {
        self_signed_until(name, (4096, 1, 1))
    }

    /// [`self_signed`], valid until the start of `(year, month, day)` (UTC).
    pub(crate) fn self_signed_until(
        name: &str,
        (year, month, day): (i32, u8, u8),
    ) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A fresh empty directory under the system's temp directory.
    pub(crate) fn temp_dir() -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "seawall-tls-unit-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `cert` and `key` written to `cert.pem` and `key.pem` in a fresh directory, and the
    /// settings naming them.
    pub(crate) fn files(cert: &str, key: &str) -> TlsConfig {
        let dir = temp_dir();
        let settings = TlsConfig {
            cert_path: dir.join("cert.pem"),
            key_path: dir.join("key.pem"),
            handshake_timeout: Duration::from_secs(10),
        };
        std::fs::write(&settings.cert_path, cert).unwrap();
        std::fs::write(&settings.key_path, key).unwrap();
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{files, self_signed};
    use super::*;

    #[test]
    fn a_chain_and_its_pkcs8_key_load_and_the_chain_keeps_its_order() {
        let (leaf, key) = self_signed("leaf");
        let (other, _) = self_signed("other");
        // A key section in the certificate file is skipped; every certificate is kept.
        let settings = files(&format!("{leaf}{key}{other}"), &key);
        let certified = settings.load().unwrap();
        assert_eq!(certified.cert.len(), 2);
        let first = CertificateDer::from_pem_slice(leaf.as_bytes()).unwrap();
        assert_eq!(certified.cert[0], first);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_key_path() {
        let (cert, _) = self_signed("a");
        let (_, other_key) = self_signed("b");
        let error = files(&cert, &other_key).load().unwrap_err();
        assert!(matches!(error, TlsFileError::Mismatch { .. }), "{error}");
        assert_eq!(error.field(), TlsField::Key);
        assert!(error.to_string().contains("does not belong"), "{error}");
    }

    #[test]
    fn missing_files_are_refused_naming_the_file_and_its_field() {
        let (cert, key) = self_signed("a");
        let mut settings = files(&cert, &key);
        std::fs::remove_file(&settings.key_path).unwrap();
        let error = settings.load().unwrap_err();
        assert!(matches!(error, TlsFileError::Read { .. }), "{error}");
        assert_eq!(error.field(), TlsField::Key);
        assert!(error.to_string().contains("key.pem"), "{error}");
        settings.cert_path = settings.cert_path.with_file_name("nowhere.pem");
        let error = settings.load().unwrap_err();
        assert_eq!(error.field(), TlsField::Cert);
        assert!(error.to_string().contains("nowhere.pem"), "{error}");
    }

    #[test]
    fn files_without_the_right_pem_sections_are_refused() {
        let (cert, key) = self_signed("a");
        let error = files("not a certificate\n", &key).load().unwrap_err();
        assert!(
            matches!(error, TlsFileError::NoCertificate { .. }),
            "{error}"
        );
        // The certificate given twice: no key.
        let error = files(&cert, &cert).load().unwrap_err();
        assert!(matches!(error, TlsFileError::NoKey { .. }), "{error}");
        assert_eq!(error.field(), TlsField::Key);
        let broken = "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
        let error = files(broken, &key).load().unwrap_err();
        assert!(matches!(error, TlsFileError::Pem { .. }), "{error}");
        assert_eq!(error.field(), TlsField::Cert);
        let unterminated = "-----BEGIN PRIVATE KEY-----\nAAAA\n";
        let error = files(&cert, unterminated).load().unwrap_err();
        assert!(matches!(error, TlsFileError::Pem { .. }), "{error}");
        assert_eq!(error.field(), TlsField::Key);
    }

    #[test]
    fn a_certificate_section_that_is_not_x509_is_refused_naming_cert_path() {
        let (_, key) = self_signed("a");
        let junk = "-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
        let error = files(junk, &key).load().unwrap_err();
        assert!(
            matches!(error, TlsFileError::BadCertificate { .. }),
            "{error}"
        );
        assert_eq!(error.field(), TlsField::Cert);
    }

    #[test]
    fn a_key_rustls_cannot_use_is_refused() {
        let (cert, _) = self_signed("a");
        let junk = "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n";
        let error = files(&cert, junk).load().unwrap_err();
        assert!(matches!(error, TlsFileError::BadKey { .. }), "{error}");
        assert_eq!(error.field(), TlsField::Key);
    }

    #[test]
    fn a_file_larger_than_a_pem_file_can_be_is_not_read_to_its_end() {
        let (cert, key) = self_signed("a");
        let settings = files(&cert, &key);
        let mut huge = cert.into_bytes();
        huge.resize(MAX_PEM_BYTES as usize + 1, b'\n');
        std::fs::write(&settings.cert_path, huge).unwrap();
        let error = settings.load().unwrap_err();
        assert!(matches!(error, TlsFileError::TooLarge { .. }), "{error}");
        // At the limit it is still read.
        let mut exact = std::fs::read(&settings.cert_path).unwrap();
        exact.pop();
        std::fs::write(&settings.cert_path, exact).unwrap();
        settings.load().unwrap();
    }

    #[test]
    fn check_files_names_the_tls_field_and_its_position() {
        let (cert, key) = self_signed("a");
        let settings = files(&cert, &key);
        let yaml = format!(
            "server:\n  tls:\n    cert_path: '{}'\n    key_path: '{}'\n\
             admin:\n  tls: {{ cert_path: '{}', key_path: '{}' }}\n",
            settings.cert_path.display(),
            settings.key_path.display(),
            settings.cert_path.display(),
            settings.cert_path.display(),
        );
        let config = crate::config::parse(&yaml).unwrap();
        let error = config.check_files().unwrap_err();
        assert_eq!(error.path(), Some("admin.tls.key_path"), "{error}");
        std::fs::remove_file(&settings.key_path).unwrap();
        let error = config.check_files().unwrap_err();
        assert_eq!(error.path(), Some("server.tls.key_path"), "{error}");
        assert_eq!((error.line(), error.column()), (Some(4), Some(15)));
        assert!(error.message().starts_with("cannot read "), "{error}");
    }

    #[test]
    fn tls_settings_are_checked_with_field_and_position() {
        let parse = |tls: &str| crate::config::parse(&format!("admin:\n  tls: {tls}\n"));
        let config = parse("{ cert_path: c.pem, key_path: k.pem }").unwrap();
        let tls = config.admin.tls.unwrap();
        assert_eq!(tls.handshake_timeout, Duration::from_secs(10));
        assert_eq!(config.server.tls, None);
        let cases = [
            (
                "{ cert_path: c.pem }",
                "admin.tls.key_path",
                "missing field `key_path`",
            ),
            (
                "{ cert_path: c.pem, key_path: k.pem, handshake_timeout: 0s }",
                "admin.tls.handshake_timeout",
                "must be greater than zero",
            ),
            (
                "{ cert_path: c.pem, key_path: k.pem, handshake_timeout: 6m }",
                "admin.tls.handshake_timeout",
                "6m is too long: must be at most 5m",
            ),
            (
                "{ cert_path: '', key_path: k.pem }",
                "admin.tls.cert_path",
                "must name a PEM file",
            ),
            (
                "{ cert_path: c.pem, key_path: k.pem, ca: x }",
                "admin.tls.ca",
                "unknown field",
            ),
        ];
        for (tls, field, message) in cases {
            let error = parse(tls).unwrap_err();
            assert_eq!(error.path(), Some(field), "{tls}: {error}");
            assert_eq!(error.line(), Some(2), "{tls}: {error}");
            assert!(error.message().contains(message), "{tls}: {error}");
        }
    }
}

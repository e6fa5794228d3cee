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
use schemars::JsonSchema;
use serde::Deserialize;

use super::duration;
use super::schema::DurationText;

/// Largest certificate or key file read: a chain of a few certificates is a few KiB, so a
/// larger file is a mistake (a device, a log) and is not read to its end.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// A listener's TLS settings (`server.tls`, `admin.tls`). Without them the listener speaks
/// plaintext HTTP/1.1 and h2c.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
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
    #[schemars(with = "DurationText")]
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

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

//! Certificates (rcgen) and their PEM files, for the unit tests of this module and of the
//! listeners' TLS.

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
pub(crate) fn self_signed_until(name: &str, (year, month, day): (i32, u8, u8)) -> (String, String) {
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

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

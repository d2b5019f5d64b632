//! Key material for one control plane: a CA, the API server's serving
//! certificate, an admin client certificate in `system:masters`, and the
//! service-account signing key (ECDSA P-256, used for both
//! `--service-account-key-file` and `--service-account-signing-key-file`).
//!
//! All of it is generated fresh per control plane and never leaves its private
//! directory, except through the kubeconfig it writes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use sha2::{Digest, Sha256};

use super::token::base64url;

/// Errors generating or writing key material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused to build a key or certificate.
    #[error("generating {what}: {source}")]
    Generate {
        /// Which item.
        what: &'static str,
        /// The rcgen error.
        source: rcgen::Error,
    },
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Everything the API server and its clients need, PEM-encoded.
pub(crate) struct Pki {
    pub(crate) ca_cert_pem: String,
    pub(crate) serving_cert_pem: String,
    pub(crate) serving_key_pem: String,
    pub(crate) admin_cert_pem: String,
    pub(crate) admin_key_pem: String,
    pub(crate) sa_key_pem: String,
    pub(crate) sa_public_pem: String,
    /// PKCS#8 DER of the service-account key, for signing forged tokens.
    pub(crate) sa_key_pkcs8: Vec<u8>,
    /// The `kid` kube-apiserver puts in tokens it signs with this key.
    pub(crate) sa_key_id: String,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("sa_key_id", &self.sa_key_id)
            .finish_non_exhaustive()
    }
}

/// The admin user's name in its client certificate.
pub(crate) const ADMIN_USER: &str = "sworn-dev-admin";

impl Pki {
    /// Generates fresh material.
    pub(crate) fn generate() -> Result<Self, PkiError> {
        let g = |what| move |source| PkiError::Generate { what, source };

        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = dn("sworn-dev kubernetes CA", None);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().map_err(g("ca key"))?;
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(g("ca certificate"))?;

        let mut serving =
            CertificateParams::new(vec!["localhost".to_owned(), "kubernetes".to_owned()])
                .map_err(g("serving certificate"))?;
        serving
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        serving.distinguished_name = dn("kube-apiserver", None);
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_key = KeyPair::generate().map_err(g("serving key"))?;
        let serving_cert = serving
            .signed_by(&serving_key, &ca)
            .map_err(g("serving certificate"))?;

        let mut admin = CertificateParams::default();
        admin.distinguished_name = dn(ADMIN_USER, Some("system:masters"));
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_key = KeyPair::generate().map_err(g("admin key"))?;
        let admin_cert = admin
            .signed_by(&admin_key, &ca)
            .map_err(g("admin certificate"))?;

        let sa_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(g("service-account key"))?;
        // kube-apiserver's key ID: unpadded base64url of SHA-256 over the DER
        // SubjectPublicKeyInfo.
        let sa_key_id = base64url(&Sha256::digest(sa_key.subject_public_key_info()));

        Ok(Self {
            ca_cert_pem: ca.pem(),
            serving_cert_pem: serving_cert.pem(),
            serving_key_pem: serving_key.serialize_pem(),
            admin_cert_pem: admin_cert.pem(),
            admin_key_pem: admin_key.serialize_pem(),
            sa_key_pem: sa_key.serialize_pem(),
            sa_public_pem: sa_key.public_key_pem(),
            sa_key_pkcs8: sa_key.serialize_der(),
            sa_key_id,
        })
    }

    /// Writes the files the API server reads into `dir` (keys 0600).
    pub(crate) fn write_server_files(&self, dir: &Path) -> Result<(), PkiError> {
        write(&dir.join("ca.crt"), &self.ca_cert_pem, 0o644)?;
        write(&dir.join("apiserver.crt"), &self.serving_cert_pem, 0o644)?;
        write(&dir.join("apiserver.key"), &self.serving_key_pem, 0o600)?;
        write(&dir.join("sa.key"), &self.sa_key_pem, 0o600)?;
        write(&dir.join("sa.pub"), &self.sa_public_pem, 0o644)?;
        Ok(())
    }
}

fn dn(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Writes `contents` to `path` with `mode`, creating it.
pub(crate) fn write(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| PkiError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(contents.as_bytes()).map_err(err)
}

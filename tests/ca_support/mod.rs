//! Helpers shared by the `ca_*` integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sworn_identity::{SpiffeIdentity, TrustDomain, parse_trust_domain};
use sworn_server::ca::{CaConfig, CertificateAuthority, IssuedSvid, MintRequest, SvidKeyPair};
use sworn_server::clock::FakeClock;

pub const HOUR: Duration = Duration::from_secs(3600);

pub fn td() -> TrustDomain {
    parse_trust_domain("example.org").unwrap()
}

pub fn id(s: &str) -> SpiffeIdentity {
    SpiffeIdentity::parse(s).unwrap()
}

pub fn open(data_dir: &Path, clock: &FakeClock) -> CertificateAuthority {
    CertificateAuthority::load_or_init(
        data_dir,
        CaConfig::new(td()),
        Arc::new(clock.clone()),
        false,
    )
    .unwrap()
}

pub fn request(spiffe_id: &str, ttl: Duration) -> MintRequest {
    let key = SvidKeyPair::generate().unwrap();
    MintRequest {
        spiffe_id: id(spiffe_id),
        csr_der: key.csr_der().unwrap(),
        ttl,
        dns_names: vec![],
    }
}

pub fn mint(ca: &CertificateAuthority, spiffe_id: &str, ttl: Duration) -> IssuedSvid {
    ca.mint_x509_svid(request(spiffe_id, ttl)).unwrap()
}

pub fn cert_not_after(der: &[u8]) -> SystemTime {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_secs(cert.validity().not_after.timestamp() as u64)
}

/// Runs the system `openssl`, failing loudly when it is missing.
pub fn openssl(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `openssl` ({e}); install it (Debian: apt-get install openssl)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

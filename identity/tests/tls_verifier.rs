//! The SPIFFE rustls verifier: real rustls handshakes (in memory) and direct verifier calls,
//! with certificates generated here by rcgen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rcgen::{BasicConstraints, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection,
};
use support::{Ca, HOUR, at, ca_params, intermediate, now, root, svid_for};
use sworn_identity::tls::{
    PeerSide, Rejection, SvidVerifier, TrustRoots, TrustSource, Verdict, provider,
};
use sworn_identity::{CertRole, ProfileError, SpiffeIdentity, TrustDomain};

const CLIENT: &str = "spiffe://example.org/client";
const SERVER: &str = "spiffe://example.org/server";

/// Bundles per trust domain that a test can replace between handshakes.
#[derive(Debug, Default)]
struct Bundles(Mutex<HashMap<TrustDomain, TrustRoots>>);

impl Bundles {
    fn with(td: &str, roots: &[&Ca]) -> Arc<Self> {
        let b = Arc::new(Bundles::default());
        b.set(td, roots);
        b
    }

    fn set(&self, td: &str, roots: &[&Ca]) {
        let roots = TrustRoots::new(roots.iter().map(|ca| ca.der.clone())).unwrap();
        self.0
            .lock()
            .unwrap()
            .insert(TrustDomain::new(td).unwrap(), roots);
    }
}

impl TrustSource for Bundles {
    fn roots(&self, td: &TrustDomain) -> Option<TrustRoots> {
        self.0.lock().unwrap().get(td).cloned()
    }
}

/// Every verdict the verifier reported, as (side, peer, rejection).
type Seen = Arc<Mutex<Vec<(PeerSide, Option<String>, Option<Rejection>)>>>;

fn verifier(bundles: Arc<Bundles>, allow: &'static str, seen: &Seen) -> SvidVerifier {
    let seen = seen.clone();
    SvidVerifier::new(bundles, Arc::new(move |id| id.as_str() == allow)).observed_by(Arc::new(
        move |v: &Verdict<'_>| {
            let row = match *v {
                Verdict::Allowed { side, peer } => (side, Some(peer.to_string()), None),
                Verdict::Denied { side, peer, reason } => {
                    (side, peer.map(ToString::to_string), Some(reason.clone()))
                }
            };
            seen.lock().unwrap().push(row);
        },
    ))
}

fn identity(
    chain: &[&Vec<u8>],
    key: &KeyPair,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    (
        chain
            .iter()
            .map(|c| CertificateDer::from((*c).clone()))
            .collect(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// Runs one handshake in memory; returns what each side's connection reported.
fn handshake(
    server_verifier: SvidVerifier,
    server_identity: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    client_verifier: SvidVerifier,
    client_identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> (Result<(), rustls::Error>, Result<(), rustls::Error>) {
    let server_config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(Arc::new(server_verifier))
        .with_single_cert(server_identity.0, server_identity.1)
        .unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(client_verifier));
    let client_config = match client_identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    let mut client = Connection::Client(
        ClientConnection::new(
            Arc::new(client_config),
            ServerName::try_from("ignored.invalid").unwrap(),
        )
        .unwrap(),
    );
    let mut server = Connection::Server(ServerConnection::new(Arc::new(server_config)).unwrap());
    let (mut client_result, mut server_result) = (Ok(()), Ok(()));
    for _ in 0..20 {
        let to_server = pump(&mut client, &mut server, &mut server_result);
        let to_client = pump(&mut server, &mut client, &mut client_result);
        if !(to_server || to_client) {
            break;
        }
    }
    if server_result.is_ok() && client_result.is_ok() {
        assert!(
            !client.is_handshaking() && !server.is_handshaking(),
            "the handshake neither finished nor failed"
        );
    }
    (client_result, server_result)
}

/// Moves everything `from` has to send into `to`; records `to`'s error. Whether anything moved.
fn pump(
    from: &mut Connection,
    to: &mut Connection,
    to_result: &mut Result<(), rustls::Error>,
) -> bool {
    let mut moved = false;
    while from.wants_write() {
        let mut buf = Vec::new();
        from.write_tls(&mut buf).unwrap();
        to.read_tls(&mut buf.as_slice()).unwrap();
        if let Err(e) = to.process_new_packets() {
            *to_result = Err(e);
        }
        moved = true;
    }
    moved
}

fn alert(result: &Result<(), rustls::Error>) -> Option<AlertDescription> {
    match result {
        Err(rustls::Error::AlertReceived(a)) => Some(*a),
        _ => None,
    }
}

#[test]
fn clients_under_either_of_two_same_named_roots_connect_during_rotation() {
    let now = now();
    // A CA rotation that keeps the CA's name: both roots are in the bundle.
    let old = root("sworn ca", now - 2 * HOUR, now + 24 * HOUR);
    let new = root("sworn ca", now - HOUR, now + 48 * HOUR);
    let stranger = root("sworn ca", now - HOUR, now + 48 * HOUR);
    let bundles = Bundles::with("example.org", &[&old, &new]);
    let (server_leaf, server_key) = svid_for(&new, SERVER, now, |_| {});

    for (name, ca) in [("old root", &old), ("new root", &new)] {
        let seen = Seen::default();
        let (leaf, key) = svid_for(ca, CLIENT, now, |_| {});
        let (client, server) = handshake(
            verifier(bundles.clone(), CLIENT, &seen),
            identity(&[&server_leaf], &server_key),
            verifier(bundles.clone(), SERVER, &seen),
            Some(identity(&[&leaf], &key)),
        );
        assert!(
            client.is_ok() && server.is_ok(),
            "{name}: {client:?} {server:?}"
        );
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            vec![
                (PeerSide::Server, Some(SERVER.to_string()), None),
                (PeerSide::Client, Some(CLIENT.to_string()), None),
            ],
            "{name}"
        );
    }

    // A third root with the same name, not in the bundle: the name alone earns nothing.
    let seen = Seen::default();
    let (leaf, key) = svid_for(&stranger, CLIENT, now, |_| {});
    let (client, server) = handshake(
        verifier(bundles.clone(), CLIENT, &seen),
        identity(&[&server_leaf], &server_key),
        verifier(bundles.clone(), SERVER, &seen),
        Some(identity(&[&leaf], &key)),
    );
    assert!(server.is_err());
    assert_eq!(
        alert(&client),
        Some(AlertDescription::DecryptError),
        "{client:?}"
    );
    assert_eq!(
        seen.lock().unwrap().last().unwrap(),
        &(
            PeerSide::Client,
            Some(CLIENT.to_string()),
            Some(Rejection::Chain(ProfileError::BadSignature {
                role: CertRole::Leaf
            }))
        )
    );

    // Once the old root leaves the bundle, the next handshake refuses what it signed.
    bundles.set("example.org", &[&new]);
    let seen = Seen::default();
    let (leaf, key) = svid_for(&old, CLIENT, now, |_| {});
    let (client, _) = handshake(
        verifier(bundles.clone(), CLIENT, &seen),
        identity(&[&server_leaf], &server_key),
        verifier(bundles, SERVER, &seen),
        Some(identity(&[&leaf], &key)),
    );
    assert_eq!(
        alert(&client),
        Some(AlertDescription::DecryptError),
        "{client:?}"
    );
}

#[test]
fn a_client_without_a_certificate_is_refused_unless_client_auth_is_optional() {
    let now = now();
    let ca = root("sworn ca", now - HOUR, now + 24 * HOUR);
    let bundles = Bundles::with("example.org", &[&ca]);
    let (server_leaf, server_key) = svid_for(&ca, SERVER, now, |_| {});
    let seen = Seen::default();
    let (client, _) = handshake(
        verifier(bundles.clone(), CLIENT, &seen),
        identity(&[&server_leaf], &server_key),
        verifier(bundles.clone(), SERVER, &seen),
        None,
    );
    assert_eq!(
        alert(&client),
        Some(AlertDescription::CertificateRequired),
        "{client:?}"
    );
    let (client, server) = handshake(
        verifier(bundles.clone(), CLIENT, &seen).client_auth_optional(),
        identity(&[&server_leaf], &server_key),
        verifier(bundles, SERVER, &seen),
        None,
    );
    assert!(client.is_ok() && server.is_ok(), "{client:?} {server:?}");
}

#[test]
fn a_server_is_accepted_by_its_spiffe_id_only() {
    let now = now();
    let ca = root("sworn ca", now - HOUR, now + 24 * HOUR);
    let bundles = Bundles::with("example.org", &[&ca]);
    let (impostor, key) = svid_for(&ca, "spiffe://example.org/impostor", now, |_| {});
    let (client_leaf, client_key) = svid_for(&ca, CLIENT, now, |_| {});
    let seen = Seen::default();
    let (client, _) = handshake(
        verifier(bundles.clone(), CLIENT, &seen),
        identity(&[&impostor], &key),
        verifier(bundles, SERVER, &seen),
        Some(identity(&[&client_leaf], &client_key)),
    );
    assert_eq!(
        client,
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure
        ))
    );
    assert_eq!(
        seen.lock().unwrap().first().unwrap(),
        &(
            PeerSide::Server,
            Some("spiffe://example.org/impostor".to_string()),
            Some(Rejection::NotAuthorized)
        )
    );
}

struct Case {
    name: &'static str,
    side: PeerSide,
    chain: Vec<Vec<u8>>,
    want: Result<(), Rejection>,
    alert: Option<AlertDescription>,
}

#[test]
fn refusals_name_their_reason_and_their_alert() {
    let now = now();
    let ca = root("sworn ca", now - HOUR, now + 24 * HOUR);
    let other = root("other ca", now - HOUR, now + 24 * HOUR);
    let mut server_only = ca_params("server-only inter", now - HOUR, now + 12 * HOUR);
    server_only.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_only = intermediate(&ca, server_only);
    let bundles = Bundles::with("example.org", &[&ca]);
    let leaf = |ca: &Ca, id: &str, tweak: fn(&mut rcgen::CertificateParams)| {
        svid_for(ca, id, now, tweak).0
    };
    use ProfileError as E;
    use Rejection as R;
    let client = |name, chain, want, alert| Case {
        name,
        side: PeerSide::Client,
        chain,
        want,
        alert,
    };
    let cases = vec![
        client("good", vec![leaf(&ca, CLIENT, |_| {})], Ok(()), None),
        client(
            "another_id",
            vec![leaf(&ca, "spiffe://example.org/intruder", |_| {})],
            Err(R::NotAuthorized),
            Some(AlertDescription::AccessDenied),
        ),
        client(
            "unknown_trust_domain",
            vec![leaf(&other, "spiffe://other.org/client", |_| {})],
            Err(R::UnknownTrustDomain),
            Some(AlertDescription::UnknownCA),
        ),
        client(
            "no_uri_san",
            vec![leaf(&ca, CLIENT, |p| {
                p.subject_alt_names = vec![SanType::DnsName("c.example".try_into().unwrap())]
            })],
            Err(R::NoSpiffeId(E::NoUriSan)),
            Some(AlertDescription::BadCertificate),
        ),
        client(
            "signed_by_a_root_not_in_the_bundle",
            vec![leaf(&other, CLIENT, |_| {})],
            Err(R::Chain(E::NoTrustedRoot)),
            Some(AlertDescription::UnknownCA),
        ),
        client(
            // Untrusted first: the leaf's own defects are not even looked at.
            "untrusted_and_no_basic_constraints",
            vec![leaf(&other, CLIENT, |p| p.is_ca = IsCa::NoCa)],
            Err(R::Chain(E::NoTrustedRoot)),
            Some(AlertDescription::UnknownCA),
        ),
        client(
            "expired",
            vec![leaf(&ca, CLIENT, |p| {
                p.not_before = at(SystemTime::now() - 2 * HOUR);
                p.not_after = at(SystemTime::now() - HOUR);
            })],
            Err(R::Chain(E::Expired {
                role: CertRole::Leaf,
            })),
            Some(AlertDescription::CertificateExpired),
        ),
        client(
            "ca_leaf",
            vec![leaf(&ca, CLIENT, |p| {
                p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)
            })],
            Err(R::NotSvid(E::LeafIsCa)),
            Some(AlertDescription::BadCertificate),
        ),
        client(
            "trusted_but_no_digital_signature",
            vec![leaf(&ca, CLIENT, |p| {
                p.key_usages = vec![KeyUsagePurpose::KeyEncipherment]
            })],
            Err(R::NotSvid(E::NoDigitalSignature)),
            Some(AlertDescription::BadCertificate),
        ),
        client(
            "eku_server_auth_only",
            vec![leaf(&ca, CLIENT, |p| {
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]
            })],
            Err(R::NotSvid(E::EkuIncomplete {
                missing: "clientAuth",
            })),
            Some(AlertDescription::UnsupportedCertificate),
        ),
        Case {
            name: "intermediate_for_servers_only_as_a_server",
            side: PeerSide::Server,
            ..client(
                "",
                vec![leaf(&server_only, SERVER, |_| {}), server_only.der.clone()],
                Ok(()),
                None,
            )
        },
    ];
    let mut failures = Vec::new();
    for c in cases {
        let allow = if c.side == PeerSide::Client {
            CLIENT
        } else {
            SERVER
        };
        let v = verifier(bundles.clone(), allow, &Seen::default());
        let chain: Vec<CertificateDer<'_>> = c
            .chain
            .iter()
            .map(|d| CertificateDer::from(d.as_slice()))
            .collect();
        let got = v
            .verify_peer(c.side, &chain[0], &chain[1..], UnixTime::now())
            .map(|id: SpiffeIdentity| assert_eq!(id.as_str(), allow));
        let got_alert = got
            .as_ref()
            .err()
            .map(|r| AlertDescription::from(r.certificate_error()));
        if got != c.want || got_alert != c.alert {
            failures.push(format!(
                "{}: got {got:?} / {got_alert:?}, want {:?} / {:?}",
                c.name, c.want, c.alert
            ));
        }
    }
    // The same chain as a client: the intermediate's extended key usage excludes clientAuth.
    let v = verifier(bundles, CLIENT, &Seen::default());
    let chain = [
        CertificateDer::from(leaf(&server_only, CLIENT, |_| {})),
        CertificateDer::from(server_only.der.clone()),
    ];
    match v.verify_peer(PeerSide::Client, &chain[0], &chain[1..], UnixTime::now()) {
        Err(R::Chain(E::PathRefused { reason })) if reason.contains("RequiredEkuNotFound") => {}
        other => failures.push(format!(
            "intermediate_for_servers_only_as_a_client: {other:?}"
        )),
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

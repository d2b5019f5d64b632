//! The CA directory `<data_dir>/ca/`: keys at rest are 0600 files, written atomically
//! (docs/architecture.md, "The CA").
//!
//! Layout:
//! - `state.json`: which generations exist and their roles (see [`State`]);
//! - `ca-<n>.key`: PKCS#8 DER private key of generation `n` (0600), present while `n` is
//!   active or prepared;
//! - `ca-<n>.crt`: PEM chain of generation `n` (its CA certificate first, then any upstream
//!   certificates), present while `n` is active, prepared, or a retired root still in the
//!   bundle.
//!
//! Invariants: every file is written to a temporary file in the same directory (created 0600),
//! fsynced, renamed over the target, and the directory fsynced. A file is written before the
//! state refers to it and deleted only after the state no longer does, so a crash leaves at
//! worst an unreferenced file. The whole directory is first built under a temporary name and
//! renamed into place, so `ca/` existing means initialisation completed.

use std::fs::{self, DirBuilder, File};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::bundle::certs_from_pem;
use super::error::CaError;
use super::key::P256Key;

/// Name of the state file.
pub(crate) const STATE_FILE: &str = "state.json";
/// Current state format.
const STATE_VERSION: u32 = 1;

/// How the CA is rooted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Mode {
    /// Each generation is a self-signed root.
    SelfSigned,
    /// Each generation is an intermediate signed by the upstream CA.
    Upstream,
}

/// Contents of `state.json`. Public data only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct State {
    /// Format version, [`STATE_VERSION`].
    pub version: u32,
    /// Trust domain the CA was created for.
    pub trust_domain: String,
    /// Self-signed or upstream.
    pub mode: Mode,
    /// Generation number the next prepared CA gets.
    pub next_generation: u64,
    /// Sequence number of the current bundle.
    pub bundle_sequence: u64,
    /// The generation that signs.
    pub active: u64,
    /// The generation published in the bundle and waiting to sign.
    pub prepared: Option<u64>,
    /// Former active generations whose roots stay in the bundle (self-signed mode).
    pub retired: Vec<u64>,
}

impl State {
    pub(crate) fn new(trust_domain: String, mode: Mode) -> Self {
        State {
            version: STATE_VERSION,
            trust_domain,
            mode,
            next_generation: 2,
            bundle_sequence: 1,
            active: 1,
            prepared: None,
            retired: Vec::new(),
        }
    }
}

pub(crate) fn key_file(generation: u64) -> String {
    format!("ca-{generation}.key")
}

pub(crate) fn cert_file(generation: u64) -> String {
    format!("ca-{generation}.crt")
}

/// Reads and writes files of one CA directory.
#[derive(Debug, Clone)]
pub(crate) struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    pub(crate) fn new(dir: PathBuf) -> Self {
        KeyStore { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `data` to `name` atomically with mode 0600 (`sworn_identity::fs`).
    pub(crate) fn write_atomic(&self, name: &str, data: &[u8]) -> Result<(), CaError> {
        sworn_identity::fs::write_atomic(&self.path(name), data, 0o600).map_err(|e| CaError::Io {
            path: e.path,
            action: e.action,
            source: e.source,
        })
    }

    /// Reads `name`; a missing file is [`CaError::Missing`] with `why`.
    pub(crate) fn read(
        &self,
        name: &str,
        why: &'static str,
    ) -> Result<Zeroizing<Vec<u8>>, CaError> {
        let path = self.path(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Zeroizing::new(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(CaError::Missing { path, why }),
            Err(source) => Err(CaError::Io {
                path,
                action: "read",
                source,
            }),
        }
    }

    /// Removes `name` if present and syncs the directory.
    pub(crate) fn remove(&self, name: &str) -> Result<(), CaError> {
        let path = self.path(name);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CaError::Io {
                path,
                action: "remove",
                source,
            }),
        }
    }

    pub(crate) fn read_state(&self) -> Result<State, CaError> {
        let bytes = self.read(STATE_FILE, "it records which ca keys exist")?;
        let corrupt = |reason: String| CaError::CorruptState {
            path: self.path(STATE_FILE),
            reason,
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if state.version != STATE_VERSION {
            return Err(corrupt(format!("unknown format version {}", state.version)));
        }
        let mut generations = vec![state.active];
        generations.extend(state.prepared);
        generations.extend(&state.retired);
        if generations.iter().any(|g| *g >= state.next_generation) {
            return Err(corrupt("a generation is not below next_generation".into()));
        }
        let mut sorted = generations.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != generations.len() {
            return Err(corrupt("a generation appears twice".into()));
        }
        Ok(state)
    }

    pub(crate) fn write_state(&self, state: &State) -> Result<(), CaError> {
        let json = serde_json::to_vec_pretty(state).map_err(|e| CaError::CorruptState {
            path: self.path(STATE_FILE),
            reason: e.to_string(),
        })?;
        self.write_atomic(STATE_FILE, &json)
    }

    /// Reads generation `g`'s private key, refusing group/world-readable files.
    pub(crate) fn read_key(&self, g: u64) -> Result<P256Key, CaError> {
        let name = key_file(g);
        let path = self.path(&name);
        let bytes = self.read(&name, "the state names it as a current ca key")?;
        let mode = fs::metadata(&path)
            .map_err(|source| CaError::Io {
                path: path.clone(),
                action: "stat",
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CaError::InsecurePermissions {
                path,
                mode: mode & 0o7777,
            });
        }
        P256Key::from_pkcs8_der(&bytes).map_err(|e| CaError::CorruptKey {
            path,
            reason: if bytes.is_empty() {
                "the file is empty".to_string()
            } else {
                e.to_string()
            },
        })
    }

    pub(crate) fn write_key(&self, g: u64, key: &P256Key) -> Result<(), CaError> {
        self.write_atomic(&key_file(g), key.pkcs8_der())
    }

    /// Reads generation `g`'s certificate chain (CA certificate first).
    pub(crate) fn read_chain(&self, g: u64) -> Result<Vec<Vec<u8>>, CaError> {
        let name = cert_file(g);
        let bytes = self.read(&name, "the state names it as a ca or bundle certificate")?;
        certs_from_pem(&bytes).map_err(|e| CaError::CorruptCert {
            path: self.path(&name),
            reason: e.to_string(),
        })
    }

    pub(crate) fn write_chain(&self, g: u64, chain: &[Vec<u8>]) -> Result<(), CaError> {
        self.write_atomic(&cert_file(g), super::bundle::certs_to_pem(chain).as_bytes())
    }
}

/// Builds a new CA directory at `target` via a temporary sibling directory renamed into place,
/// so a crash during initialisation never leaves a half-made `target`.
pub(crate) fn create_dir_atomically(
    target: &Path,
    populate: impl FnOnce(&KeyStore) -> Result<(), CaError>,
) -> Result<(), CaError> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let io = |path: &Path, action| {
        let path = path.to_path_buf();
        move |source| CaError::Io {
            path,
            action,
            source,
        }
    };
    fs::create_dir_all(parent).map_err(io(parent, "create data directory"))?;
    let tmp = parent.join(format!(".ca.init-{}", random_suffix()?));
    DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(io(&tmp, "create directory"))?;
    let result = populate(&KeyStore::new(tmp.clone()))
        .and_then(|()| sync_dir(&tmp))
        .and_then(|()| fs::rename(&tmp, target).map_err(io(target, "rename into place")))
        .and_then(|()| sync_dir(parent));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> Result<(), CaError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| CaError::Io {
            path: dir.to_path_buf(),
            action: "sync directory",
            source,
        })
}

fn random_suffix() -> Result<String, CaError> {
    let mut bytes = [0u8; 8];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CaError::Generate {
            what: "file name",
            reason: "system rng failed".into(),
        })?;
    Ok(hex::encode(bytes))
}

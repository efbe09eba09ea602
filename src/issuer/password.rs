//! Passwords: argon2id PHC hashes, their parameters bounded both ways (below OWASP's m=19456
//! KiB, t=2, p=1: a warning; above a ceiling: refused, so a user file cannot make one login
//! allocate gigabytes), and a `Hasher` that runs at most `permits` hashes at once with a short
//! bounded queue: beyond it the login is refused with 503, so a flood costs at most
//! permits × m of memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};
use thiserror::Error;
use tokio::sync::Semaphore;

/// Shortest and longest password accepted, in bytes.
pub const MIN_PASSWORD: usize = 1;
pub const MAX_PASSWORD: usize = 1024;

/// The ceiling on stored parameters: memory (KiB), passes, lanes.
pub const MAX_M_KIB: u32 = 256 * 1024;
pub const MAX_T: u32 = 10;
pub const MAX_P: u32 = 4;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum HashError {
    #[error("not a PHC string: {0}")]
    Malformed(String),
    #[error("algorithm {0} (expected argon2id)")]
    Algorithm(String),
    #[error("parameters m={m} t={t} p={p} exceed the ceiling m={MAX_M_KIB} t={MAX_T} p={MAX_P}")]
    TooCostly { m: u32, t: u32, p: u32 },
    #[error("password must be {MIN_PASSWORD}–{MAX_PASSWORD} bytes")]
    Length,
}

/// A stored hash, checked when the user file is read.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash {
    phc: String,
    /// Below the OWASP minimum (a warning, not an error).
    pub weak: bool,
}

impl std::fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredHash(..)")
    }
}

impl StoredHash {
    /// Parses and bounds `phc` (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    pub fn parse(phc: &str) -> Result<StoredHash, HashError> {
        let parsed = PasswordHash::new(phc).map_err(|e| HashError::Malformed(e.to_string()))?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(HashError::Algorithm(parsed.algorithm.as_str().to_string()));
        }
        let params = Params::try_from(&parsed).map_err(|e| HashError::Malformed(e.to_string()))?;
        let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
        if m > MAX_M_KIB || t > MAX_T || p > MAX_P {
            return Err(HashError::TooCostly { m, t, p });
        }
        Ok(StoredHash {
            phc: phc.to_string(),
            weak: m < Params::DEFAULT_M_COST || t < Params::DEFAULT_T_COST,
        })
    }
}

fn argon2id() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

/// A new hash of `password` with the default (OWASP) parameters and a random salt.
pub fn hash(password: &[u8]) -> Result<String, HashError> {
    check_length(password)?;
    argon2id()
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Malformed(e.to_string()))
}

fn check_length(password: &[u8]) -> Result<(), HashError> {
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&password.len()) {
        Ok(())
    } else {
        Err(HashError::Length)
    }
}

/// Whether `password` matches `stored` (constant-time comparison inside argon2).
pub fn verify(password: &[u8], stored: &StoredHash) -> bool {
    check_length(password).is_ok()
        && PasswordHash::new(&stored.phc)
            .is_ok_and(|h| argon2id().verify_password(password, &h).is_ok())
}

/// Why a hash could not run now.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Busy {
    #[error("password hashing is at capacity")]
    Overloaded,
}

/// Runs password checks on the blocking pool, at most `permits` at once, with at most
/// `queue` more waiting; the rest are refused at once.
#[derive(Debug)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Checks running or waiting now.
    inside: Arc<AtomicUsize>,
    /// Most checks running or waiting: permits + queue.
    capacity: usize,
    /// Checked for unknown users, so their answer takes as long as a wrong password's.
    dummy: StoredHash,
}

/// Counts a check out of `Hasher::inside` however it ends.
struct Inside(Arc<AtomicUsize>);

impl Drop for Inside {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hasher {
    pub fn new(permits: usize, queue: usize) -> Result<Hasher, HashError> {
        let dummy = StoredHash::parse(&hash(b"portcullis dummy password")?)?;
        let permits = permits.max(1);
        Ok(Hasher {
            permits: Arc::new(Semaphore::new(permits)),
            inside: Arc::new(AtomicUsize::new(0)),
            capacity: permits + queue,
            dummy,
        })
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is none (the
    /// answer is then false, after the same work).
    pub async fn check(&self, password: Vec<u8>, stored: Option<StoredHash>) -> Result<bool, Busy> {
        if self.inside.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.inside.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy::Overloaded);
        }
        let inside = Inside(self.inside.clone());
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return Err(Busy::Overloaded);
        };
        let real = stored.is_some();
        let against = stored.unwrap_or_else(|| self.dummy.clone());
        let matched = tokio::task::spawn_blocking(move || {
            let _held = (permit, inside);
            verify(&password, &against)
        })
        .await
        .unwrap_or(false);
        Ok(real && matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hashes_are_bounded_both_ways() {
        let salt = "c2FsdHNhbHRzYWx0";
        let out = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let phc = |alg: &str, m: u32, t: u32, p: u32| {
            format!("${alg}$v=19$m={m},t={t},p={p}${salt}${out}")
        };
        let rows: Vec<(String, Result<bool, HashError>)> = vec![
            (phc("argon2id", 19456, 2, 1), Ok(false)),
            (phc("argon2id", 8192, 2, 1), Ok(true)),
            (phc("argon2id", 19456, 1, 1), Ok(true)),
            (phc("argon2id", MAX_M_KIB, MAX_T, MAX_P), Ok(false)),
            (
                phc("argon2id", MAX_M_KIB + 1, 2, 1),
                Err(HashError::TooCostly {
                    m: MAX_M_KIB + 1,
                    t: 2,
                    p: 1,
                }),
            ),
            (
                phc("argon2id", 19456, 11, 1),
                Err(HashError::TooCostly {
                    m: 19456,
                    t: 11,
                    p: 1,
                }),
            ),
            (
                phc("argon2id", 19456, 2, 5),
                Err(HashError::TooCostly {
                    m: 19456,
                    t: 2,
                    p: 5,
                }),
            ),
            (
                phc("argon2i", 19456, 2, 1),
                Err(HashError::Algorithm("argon2i".into())),
            ),
        ];
        for (phc, expected) in rows {
            assert_eq!(StoredHash::parse(&phc).map(|h| h.weak), expected, "{phc}");
        }
        assert!(matches!(
            StoredHash::parse("plain"),
            Err(HashError::Malformed(_))
        ));
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = StoredHash::parse(&hash(b"correct horse").unwrap()).unwrap();
        assert!(!stored.weak);
        assert!(verify(b"correct horse", &stored));
        assert!(!verify(b"correct horsf", &stored));
        assert!(!verify(b"", &stored));
        assert_eq!(hash(&[b'x'; MAX_PASSWORD + 1]), Err(HashError::Length));
        assert!(!verify(&[b'x'; MAX_PASSWORD + 1], &stored));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_beyond_permits_and_queue_is_refused() {
        let hasher = Arc::new(Hasher::new(1, 1).unwrap());
        let stored = StoredHash::parse(&hash(b"pw").unwrap()).unwrap();
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (hasher, stored) = (hasher.clone(), stored.clone());
            tasks.push(tokio::spawn(async move {
                hasher.check(b"pw".to_vec(), Some(stored)).await
            }));
        }
        let mut refused = 0;
        let mut matched = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(true) => matched += 1,
                Err(Busy::Overloaded) => refused += 1,
                Ok(false) => panic!("wrong answer"),
            }
        }
        assert!(
            matched >= 2 && refused >= 1,
            "{matched} matched, {refused} refused"
        );
        assert_eq!(hasher.check(b"pw".to_vec(), None).await, Ok(false));
    }
}

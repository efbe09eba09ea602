//! Passwords: argon2id PHC hashes, their parameters bounded both ways (below OWASP's m=19456
//! KiB, t=2, p=1: a warning; above a ceiling: refused, so a user file cannot make one login
//! allocate gigabytes), and a `Hasher`: a few dedicated threads, each reusing one working
//! buffer, behind a short bounded queue; beyond it the login is refused with 503, so a flood
//! costs at most threads × m of memory.

use std::sync::Arc;

use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use thiserror::Error;

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
    verify_with(password, stored, &mut Vec::new())
}

/// `verify`, computing in `memory` (grown to the hash's block count and kept for the next
/// call), so a hashing thread allocates its working memory once, not per login.
fn verify_with(password: &[u8], stored: &StoredHash, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(&stored.phc) else {
        return false;
    };
    let (Ok(params), Some(salt), Some(expected)) =
        (Params::try_from(&parsed), parsed.salt, parsed.hash)
    else {
        return false;
    };
    if check_length(password).is_err() {
        return false;
    }
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let Some(work) = memory.get_mut(..blocks) else {
        return false;
    };
    let mut out = vec![0u8; expected.as_bytes().len()];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(password, &salt, &mut out, work)
        .is_ok()
        && aws_lc_rs::constant_time::verify_slices_are_equal(&out, expected.as_bytes()).is_ok()
}

/// Why a hash could not run now.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Busy {
    #[error("password hashing is at capacity")]
    Overloaded,
}

/// One check for a hashing thread.
struct Job {
    password: Vec<u8>,
    against: StoredHash,
    reply: tokio::sync::oneshot::Sender<bool>,
}

/// Password checks on `threads` dedicated threads, each reusing one working buffer, fed by a
/// queue of `queue` jobs; a job that finds the queue full is refused at once. Memory is then
/// at most threads × m, however many logins arrive. The threads end when the hasher is dropped.
#[derive(Debug)]
pub struct Hasher {
    jobs: std::sync::mpsc::SyncSender<Job>,
    /// Checked for unknown users, so their answer takes as long as a wrong password's.
    dummy: StoredHash,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job(..)")
    }
}

/// A hash with the default parameters that no password matches (random salt and output):
/// checking against it costs what a real check costs.
fn dummy_hash() -> Result<StoredHash, HashError> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    use base64::Engine;
    let mut bytes = [0u8; 48];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| HashError::Malformed("no randomness".into()))?;
    // PHC strings use standard base64 without padding.
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let (salt, output) = (b64.encode(&bytes[..16]), b64.encode(&bytes[16..]));
    StoredHash::parse(&format!(
        "$argon2id$v=19$m={},t={},p={}${salt}${output}",
        Params::DEFAULT_M_COST,
        Params::DEFAULT_T_COST,
        Params::DEFAULT_P_COST
    ))
}

impl Hasher {
    pub fn new(threads: usize, queue: usize) -> Result<Hasher, HashError> {
        let (jobs, queued) = std::sync::mpsc::sync_channel::<Job>(queue);
        let queued = Arc::new(std::sync::Mutex::new(queued));
        for i in 0..threads.max(1) {
            let queued = queued.clone();
            std::thread::Builder::new()
                .name(format!("portcullis-hash-{i}"))
                .spawn(move || {
                    let mut memory = Vec::new();
                    loop {
                        let next = queued
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .recv();
                        let Ok(job) = next else { return };
                        let matched = verify_with(&job.password, &job.against, &mut memory);
                        let _ = job.reply.send(matched);
                    }
                })
                .map_err(|e| HashError::Malformed(format!("no hashing thread: {e}")))?;
        }
        Ok(Hasher {
            jobs,
            dummy: dummy_hash()?,
        })
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is none (the
    /// answer is then false, after the same work).
    pub async fn check(&self, password: Vec<u8>, stored: Option<StoredHash>) -> Result<bool, Busy> {
        let real = stored.is_some();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            password,
            against: stored.unwrap_or_else(|| self.dummy.clone()),
            reply,
        };
        self.jobs.try_send(job).map_err(|_| Busy::Overloaded)?;
        let matched = answer.await.map_err(|_| Busy::Overloaded)?;
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
        let hasher = Hasher::new(1, 1).unwrap();
        let stored = StoredHash::parse(&hash(b"pw").unwrap()).unwrap();
        // All six are offered within one poll, long before one hash (tens of ms) ends.
        let answers = futures_util::future::join_all(
            (0..6).map(|_| hasher.check(b"pw".to_vec(), Some(stored.clone()))),
        )
        .await;
        let matched = answers.iter().filter(|a| **a == Ok(true)).count();
        let refused = answers
            .iter()
            .filter(|a| **a == Err(Busy::Overloaded))
            .count();
        assert_eq!(matched + refused, 6, "{answers:?}");
        assert!(
            (1..=2).contains(&matched),
            "one hashing thread and a queue of one take at most two: {answers:?}"
        );
        assert_eq!(hasher.check(b"pw".to_vec(), None).await, Ok(false));
    }
}

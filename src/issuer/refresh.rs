//! Refresh tokens: `base64url(family ‖ generation ‖ tag)`, where the family id is 128 random
//! bits, the generation a big-endian u32, and the tag HMAC-SHA256 over both under the issuer's
//! refresh key. The store keeps family and generation only, never a token: a copy of the
//! database mints nothing, and the successor of a generation can be handed out again (the
//! grace window) without storing it.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const ID_BYTES: usize = 16;
const TAG_BYTES: usize = 32;
const TOKEN_BYTES: usize = ID_BYTES + 4 + TAG_BYTES;
/// Length of an encoded token; anything else is refused before decoding.
pub const TOKEN_CHARS: usize = (TOKEN_BYTES * 4).div_ceil(3);
const CONTEXT: &[u8] = b"portcullis refresh token v1";

/// The key refresh tokens are MAC'd with (at least 32 bytes).
pub struct RefreshKey(hmac::Key);

impl std::fmt::Debug for RefreshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshKey(..)")
    }
}

/// What a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The family id, lower-case hex.
    pub family: String,
    pub generation: i64,
}

impl RefreshKey {
    pub fn new(secret: &[u8]) -> RefreshKey {
        RefreshKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn tag(&self, id: &[u8], generation: u32) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(CONTEXT);
        context.update(id);
        context.update(&generation.to_be_bytes());
        context.sign()
    }

    /// The token of `generation` of family `family` (hex).
    pub fn token(&self, family: &str, generation: i64) -> Option<String> {
        let id = hex_decode(family)?;
        let generation = u32::try_from(generation).ok()?;
        let mut bytes = Vec::with_capacity(TOKEN_BYTES);
        bytes.extend_from_slice(&id);
        bytes.extend_from_slice(&generation.to_be_bytes());
        bytes.extend_from_slice(self.tag(&id, generation).as_ref());
        Some(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// What `token` names, if it is one of ours (tag checked in constant time).
    pub fn open(&self, token: &str) -> Option<Presented> {
        if token.len() != TOKEN_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let (id, rest) = bytes.split_at_checked(ID_BYTES)?;
        let (generation, tag) = rest.split_at_checked(4)?;
        let generation = u32::from_be_bytes(generation.try_into().ok()?);
        let mut message = Vec::with_capacity(CONTEXT.len() + ID_BYTES + 4);
        message.extend_from_slice(CONTEXT);
        message.extend_from_slice(id);
        message.extend_from_slice(&generation.to_be_bytes());
        hmac::verify(&self.0, &message, tag).ok()?;
        Some(Presented {
            family: hex(id),
            generation: i64::from(generation),
        })
    }
}

/// A new family id: 128 bits from the OS generator, as hex.
pub fn new_family_id() -> Option<String> {
    let mut id = [0u8; ID_BYTES];
    SystemRandom::new().fill(&mut id).ok()?;
    Some(hex(&id))
}

/// `n` random bytes from the OS generator, base64url (for `jti` and generated secrets).
pub fn random_text(n: usize) -> Option<String> {
    let mut bytes = vec![0u8; n];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() != ID_BYTES * 2 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_open_only_under_their_key_and_unchanged() {
        let key = RefreshKey::new(&[7u8; 32]);
        let family = new_family_id().unwrap();
        let token = key.token(&family, 3).unwrap();
        assert_eq!(token.len(), TOKEN_CHARS);
        assert_eq!(
            key.open(&token),
            Some(Presented {
                family: family.clone(),
                generation: 3
            })
        );
        // The same family and generation: the same token (the grace window relies on it).
        assert_eq!(key.token(&family, 3), Some(token.clone()));
        assert_ne!(key.token(&family, 4), Some(token.clone()));
        let other = RefreshKey::new(&[8u8; 32]);
        let mut flipped = token.clone().into_bytes();
        flipped[30] = if flipped[30] == b'A' { b'B' } else { b'A' };
        let rows: Vec<(&RefreshKey, String)> = vec![
            (&other, token.clone()),
            (&key, String::from_utf8(flipped).unwrap()),
            (&key, token[1..].to_string()),
            (&key, format!("{token}A")),
            (&key, "!".repeat(TOKEN_CHARS)),
            (&key, String::new()),
        ];
        for (i, (k, t)) in rows.iter().enumerate() {
            assert_eq!(k.open(t), None, "row {i}");
        }
        assert_eq!(key.token("xyz", 1), None);
        assert_eq!(key.token(&family, -1), None);
    }
}

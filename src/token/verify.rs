//! Step 7: the verified-token cache, else pick the provider by the token's `iss`, verify the
//! signature with one of its current keys (refetching once, single-flight, for an unknown
//! `kid`), then check the registered claims.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::Algorithm;
use serde_json::Value;

use super::Claims;
use super::cache::TokenCache;
use super::claims::Verified;
use super::screen::{UnverifiedToken, screen_header};
use crate::error::TokenError;
use crate::keys::store::ProviderKeys;
use crate::keys::{KeyMiss, KeySet};

/// One token issuer and what a token from it must satisfy. `K` is its keys: the live store
/// in a snapshot, their spec in the compiled config.
#[derive(Debug)]
pub struct Provider<K = Arc<ProviderKeys>> {
    pub name: Arc<str>,
    /// Exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values; the token must name at least one. `None` only when the config
    /// says `audiences: none` (access tokens without `aud`, such as Cognito's).
    pub audiences: Option<Vec<String>>,
    /// Allowed `alg` values.
    pub algorithms: Vec<Algorithm>,
    pub keys: K,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds (default 30).
    pub leeway: u64,
    /// Whether a token without `exp` is rejected (default yes).
    pub require_exp: bool,
    /// Accepted header `typ` values, lower-case without `application/` (`at+jwt`); `None`:
    /// any or none.
    pub types: Option<Vec<String>>,
    /// Accepted clients: the token's `azp`, else its `client_id`, must be one of them; `None`:
    /// not checked.
    pub clients: Option<Vec<String>>,
}

impl<K> Provider<K> {
    /// The same provider with what `f` makes of its keys (the live store of their spec).
    pub fn try_map_keys<L, E>(
        self,
        f: impl FnOnce(&str, K) -> Result<L, E>,
    ) -> Result<Provider<L>, E> {
        let keys = f(&self.name, self.keys)?;
        Ok(Provider {
            name: self.name,
            issuer: self.issuer,
            audiences: self.audiences,
            algorithms: self.algorithms,
            keys,
            leeway: self.leeway,
            require_exp: self.require_exp,
            types: self.types,
            clients: self.clients,
        })
    }
}

/// All providers of a config, found by issuer.
#[derive(Debug)]
pub struct Providers<K = Arc<ProviderKeys>> {
    list: Vec<Provider<K>>,
    by_issuer: HashMap<String, usize>,
}

impl<K> Default for Providers<K> {
    fn default() -> Self {
        Providers {
            list: Vec::new(),
            by_issuer: HashMap::new(),
        }
    }
}

impl<K> Providers<K> {
    /// Builds the set; issuers are unique (the config compiler checks it).
    pub fn new(list: Vec<Provider<K>>) -> Self {
        let by_issuer = list
            .iter()
            .enumerate()
            .map(|(i, p)| (p.issuer.clone(), i))
            .collect();
        Providers { list, by_issuer }
    }

    pub fn list(&self) -> &[Provider<K>] {
        &self.list
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|p| &*p.name == name)
    }

    /// The providers, in config order.
    pub fn into_list(self) -> Vec<Provider<K>> {
        self.list
    }
}

impl Providers {
    /// Whether no provider a route accepts (`allowed`; `None`: all) has a key named `kid`, while
    /// none of them may fetch its keys again now and all have keys: such a token cannot
    /// verify, whatever its payload says.
    fn nobody_knows(&self, kid: &str, allowed: Option<&[usize]>) -> bool {
        // A provider without keys (none loaded yet) answers "keys unavailable" on the full path.
        let knows = |p: &Provider| {
            let keys = p.keys.snapshot();
            keys.set.is_empty()
                || keys.set.knows_kid(kid)
                || p.keys.may_refetch_for_unknown_kid(kid)
        };
        match allowed {
            None => !self.list.iter().any(knows),
            Some(allowed) => !allowed.iter().any(|&i| knows(&self.list[i])),
        }
    }
}

/// A failed verification, and the provider whose keys to refresh when the `kid` was unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub error: TokenError,
    /// (provider index, key-set generation seen) when a key refresh may change the answer.
    pub refresh: Option<(usize, u64)>,
}

impl From<TokenError> for Failure {
    fn from(error: TokenError) -> Self {
        Failure {
            error,
            refresh: None,
        }
    }
}

/// Verifies `token` for a route that accepts `allowed` providers (`None`: all): from the cache
/// when it holds this token for a current key set, else in full, refetching keys once for an
/// unknown `kid`.
pub async fn verify(
    token: &str,
    providers: &Providers,
    cache: Option<&TokenCache>,
    allowed: Option<&[usize]>,
    max_bytes: usize,
) -> Result<Verified, TokenError> {
    let now = unix_now();
    let key = cache.map(|c| c.key(token));
    if let (Some(cache), Some(key)) = (cache, &key)
        && let Some(hit) = cache.get(key, now)
    {
        if allowed.is_some_and(|a| !a.contains(&hit.provider)) {
            return Err(TokenError::UnknownIssuer);
        }
        if providers.list[hit.provider].keys.generation() == hit.generation {
            return Ok(Verified {
                provider: hit.provider,
                claims: hit.claims.clone(),
                generation: hit.generation,
                refuse_from: hit.refuse_from,
            });
        }
    }
    let verified = match verify_once(token, providers, allowed, max_bytes, now) {
        Err(Failure {
            refresh: Some((index, seen)),
            error,
        }) => {
            // Boxed: a rare path whose future (a key fetch) would otherwise make every
            // request's future, which hyper keeps per open connection, kilobytes larger.
            let kid = screen_header(token, max_bytes)
                .ok()
                .and_then(|h| h.header.kid);
            let refresh = providers.list[index]
                .keys
                .refresh_for_unknown_kid(kid.as_deref(), seen);
            if Box::pin(refresh).await {
                verify_once(token, providers, allowed, max_bytes, unix_now())
                    .map_err(|f| f.error)?
            } else {
                return Err(error);
            }
        }
        other => other.map_err(|f| f.error)?,
    };
    if let (Some(cache), Some(key)) = (cache, key) {
        cache.insert(key, token.len(), &verified, now);
    }
    Ok(verified)
}

/// One full verification with the keys loaded now: screen, provider by `iss`, alg allow-list,
/// signature, registered claims. Pure apart from the signature check; the clock is passed in.
pub fn verify_once(
    token: &str,
    providers: &Providers,
    allowed: Option<&[usize]>,
    max_bytes: usize,
    now: f64,
) -> Result<Verified, Failure> {
    let screened = screen_header(token, max_bytes)?;
    // A made-up kid is refused before the payload is decoded and parsed (the costly half of
    // the screen): a flood of them costs little. Outside the cooldown it takes the full path,
    // which may fetch the keys again.
    if let Some(kid) = &screened.header.kid
        && providers.nobody_knows(kid, allowed)
    {
        return Err(TokenError::UnknownKey.into());
    }
    let unverified = screened.read_claims()?;
    let index = *providers
        .by_issuer
        .get(unverified.issuer_hint()?)
        .ok_or(TokenError::UnknownIssuer)?;
    if allowed.is_some_and(|a| !a.contains(&index)) {
        return Err(TokenError::UnknownIssuer.into());
    }
    let provider = &providers.list[index];
    let alg = unverified.header.alg;
    if !provider.algorithms.contains(&alg) {
        return Err(TokenError::AlgorithmNotAllowed.into());
    }
    if let Some(types) = &provider.types
        && !unverified
            .header
            .typ
            .as_ref()
            .and_then(|t| t.as_str())
            .is_some_and(|t| types.iter().any(|want| same_media_type(t, want)))
    {
        return Err(TokenError::TypeNotAllowed.into());
    }
    let keys = provider.keys.snapshot();
    match check_signature(&unverified, &keys.set) {
        Err(error @ (TokenError::UnknownKey | TokenError::KeysUnavailable)) => {
            let refresh = provider
                .keys
                .is_remote()
                .then_some((index, keys.generation));
            return Err(Failure { error, refresh });
        }
        other => other?,
    }
    let refuse_from = check_claims(unverified.claims_for_validation(), provider, now)?;
    Ok(Verified {
        provider: index,
        claims: Arc::new(unverified.into_claims_after_verification()),
        generation: keys.generation,
        refuse_from,
    })
}

/// Seconds since the Unix epoch, as the time claims count them.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn check_signature(token: &UnverifiedToken<'_>, keys: &KeySet) -> Result<(), TokenError> {
    if keys.is_empty() {
        return Err(TokenError::KeysUnavailable);
    }
    let alg = token.header.alg;
    let candidates =
        keys.candidates(token.header.kid.as_deref(), alg)
            .map_err(|miss| match miss {
                KeyMiss::Unknown => TokenError::UnknownKey,
                KeyMiss::Mismatch => TokenError::KeyAlgorithmMismatch,
            })?;
    let message = token.signing_input.as_bytes();
    // A key of the wrong kind was filtered out above; `verify` refusing it is still a no.
    if candidates
        .iter()
        .any(|key| key.verify(alg, message, token.signature))
    {
        return Ok(());
    }
    Err(TokenError::BadSignature)
}

/// Checks `exp`, `nbf`, `iat` (JSON numbers only), `iss` and `aud` against the provider;
/// returns the unix time from which the token is refused (`exp` + leeway, or infinity).
pub fn check_claims(claims: &Claims, provider: &Provider, now: f64) -> Result<f64, TokenError> {
    let leeway = provider.leeway as f64;
    let refuse_from = match numeric_date(claims, "exp")? {
        Some(exp) if now >= exp + leeway => return Err(TokenError::Expired),
        Some(exp) => exp + leeway,
        None if provider.require_exp => return Err(TokenError::MissingExpiry),
        None => f64::INFINITY,
    };
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && now + leeway < nbf
    {
        return Err(TokenError::NotYetValid);
    }
    if let Some(iat) = numeric_date(claims, "iat")?
        && now + leeway < iat
    {
        return Err(TokenError::IssuedInFuture);
    }
    match claims.get("iss") {
        Some(Value::String(iss)) if *iss == provider.issuer => {}
        Some(Value::String(_)) => return Err(TokenError::UnknownIssuer),
        Some(_) => return Err(TokenError::BadIssuer),
        None => return Err(TokenError::MissingIssuer),
    }
    if let Some(audiences) = &provider.audiences {
        let accepted = |aud: &Value| {
            aud.as_str()
                .is_some_and(|a| audiences.iter().any(|x| x == a))
        };
        match claims.get("aud") {
            None | Some(Value::Null) => return Err(TokenError::MissingAudience),
            Some(aud @ Value::String(_)) if accepted(aud) => {}
            Some(Value::Array(list)) if list.iter().any(accepted) => {}
            Some(_) => return Err(TokenError::AudienceMismatch),
        }
    }
    if let Some(clients) = &provider.clients {
        // `azp` (OpenID Connect) names the client the token was issued to; RFC 9068 and
        // Cognito access tokens say `client_id`.
        let client = match claims.get("azp").or_else(|| claims.get("client_id")) {
            Some(Value::String(c)) => c,
            _ => return Err(TokenError::ClientMismatch),
        };
        if !clients.iter().any(|c| c == client) {
            return Err(TokenError::ClientMismatch);
        }
    }
    Ok(refuse_from)
}

/// `typ` compared as RFC 7515 §4.1.9 says: case-insensitively, `application/` implied.
fn same_media_type(typ: &str, want: &str) -> bool {
    let short = |t: &str| {
        let t = t.trim();
        match t.get(..12) {
            Some(head) if head.eq_ignore_ascii_case("application/") => t[12..].to_string(),
            _ => t.to_string(),
        }
    };
    short(typ).eq_ignore_ascii_case(&short(want))
}

/// A NumericDate claim: absent is `None`, a JSON number is its value, anything else an error
/// (a string `"exp"` is a rejection, never a skip).
fn numeric_date(claims: &Claims, name: &str) -> Result<Option<f64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or(TokenError::BadTimeClaim),
        Some(_) => Err(TokenError::BadTimeClaim),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::VerifyKey;
    use serde_json::json;

    fn provider() -> Provider {
        Provider {
            name: "p".into(),
            issuer: "https://id.example".into(),
            audiences: Some(vec!["api".into(), "other".into()]),
            algorithms: vec![Algorithm::RS256],
            keys: Arc::new(ProviderKeys::local(Vec::new())),
            leeway: 30,
            require_exp: true,
            types: None,
            clients: None,
        }
    }

    use proptest::prelude::Strategy as _;

    proptest::proptest! {
        /// Time claims of any JSON number (integers of any size, floats, exponents) are judged
        /// without a panic: accepted, or one of the time-claim reasons.
        #[test]
        fn any_json_number_in_a_time_claim(
            text in proptest::prop_oneof![
                proptest::num::i64::ANY.prop_map(|v| v.to_string()),
                proptest::num::u64::ANY.prop_map(|v| v.to_string()),
                proptest::num::f64::NORMAL.prop_map(|v| format!("{v:e}")),
                "-?[0-9]{1,40}(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
            ],
            claim in proptest::sample::select(vec!["exp", "nbf", "iat"]),
        ) {
            let json = format!(
                r#"{{"iss": "https://id.example", "aud": "api", "exp": 2000000000, "{claim}": {text}}}"#
            );
            let Ok(claims) = serde_json::from_str::<Claims>(&json) else {
                return Ok(());
            };
            let result = check_claims(&claims, &provider(), 1.9e9);
            proptest::prop_assert!(
                matches!(
                    result,
                    Ok(_)
                        | Err(TokenError::Expired
                            | TokenError::NotYetValid
                            | TokenError::IssuedInFuture
                            | TokenError::BadTimeClaim)
                ),
                "{json}: {result:?}"
            );
        }
    }

    #[test]
    fn clients_and_types_table() {
        let mut p = provider();
        p.clients = Some(vec!["web".into()]);
        let base = json!({"iss": "https://id.example", "aud": "api", "exp": 2e9});
        let with = |patch: serde_json::Value| {
            let mut c = base.clone();
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            c.as_object().unwrap().clone()
        };
        let now = 1e9;
        let cases = [
            (json!({"azp": "web"}), Ok(())),
            (json!({"client_id": "web"}), Ok(())),
            (json!({"azp": "web", "client_id": "other"}), Ok(())),
            (
                json!({"azp": "other", "client_id": "web"}),
                Err(TokenError::ClientMismatch),
            ),
            (
                json!({"client_id": "mobile"}),
                Err(TokenError::ClientMismatch),
            ),
            (json!({"client_id": 7}), Err(TokenError::ClientMismatch)),
            (json!({}), Err(TokenError::ClientMismatch)),
        ];
        for (patch, want) in cases {
            let got = check_claims(&with(patch.clone()), &p, now).map(|_| ());
            assert_eq!(got, want, "{patch}");
        }
        for (typ, want, ok) in [
            ("at+jwt", "at+jwt", true),
            ("AT+JWT", "at+jwt", true),
            ("application/at+jwt", "at+jwt", true),
            ("JWT", "at+jwt", false),
            ("jwt", "JWT", true),
        ] {
            assert_eq!(same_media_type(typ, want), ok, "{typ} {want}");
        }
    }

    #[test]
    fn check_claims_table() {
        let now = 1_000_000u64;
        let base = json!({"iss": "https://id.example", "aud": "api", "exp": now + 300});
        let with = |patch: Value| {
            let mut c = base.as_object().unwrap().clone();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    c.remove(k);
                } else {
                    c.insert(k.clone(), v.clone());
                }
            }
            c
        };
        let cases: Vec<(Value, Result<(), TokenError>)> = vec![
            (json!({}), Ok(())),
            (json!({"exp": now - 10}), Ok(())),
            (json!({"exp": now - 30}), Err(TokenError::Expired)),
            (json!({"exp": now - 3600}), Err(TokenError::Expired)),
            (json!({"exp": (now + 300) as f64 + 0.5}), Ok(())),
            (json!({"exp": null}), Err(TokenError::MissingExpiry)),
            (json!({"exp": "9999999999"}), Err(TokenError::BadTimeClaim)),
            (json!({"exp": true}), Err(TokenError::BadTimeClaim)),
            (json!({"nbf": now + 10}), Ok(())),
            (json!({"nbf": now + 31}), Err(TokenError::NotYetValid)),
            (json!({"nbf": "0"}), Err(TokenError::BadTimeClaim)),
            (json!({"iat": now + 3600}), Err(TokenError::IssuedInFuture)),
            (json!({"iat": [1]}), Err(TokenError::BadTimeClaim)),
            (json!({"iss": null}), Err(TokenError::MissingIssuer)),
            (
                json!({"iss": "https://id.example/"}),
                Err(TokenError::UnknownIssuer),
            ),
            (json!({"iss": 7}), Err(TokenError::BadIssuer)),
            (json!({"aud": null}), Err(TokenError::MissingAudience)),
            (json!({"aud": "nope"}), Err(TokenError::AudienceMismatch)),
            (json!({"aud": ["nope", "other"]}), Ok(())),
            (json!({"aud": []}), Err(TokenError::AudienceMismatch)),
            (json!({"aud": 5}), Err(TokenError::AudienceMismatch)),
            (json!({"aud": [5]}), Err(TokenError::AudienceMismatch)),
        ];
        for (patch, want) in cases {
            let claims = with(patch.clone());
            let got = check_claims(&claims, &provider(), now as f64).map(|_| ());
            assert_eq!(got, want, "{patch}");
        }
        let mut lenient = provider();
        lenient.require_exp = false;
        let no_exp = with(json!({"exp": null}));
        assert_eq!(
            check_claims(&no_exp, &lenient, now as f64),
            Ok(f64::INFINITY)
        );
        let refuse_from = check_claims(&with(json!({})), &provider(), now as f64);
        assert_eq!(refuse_from, Ok((now + 330) as f64), "exp + leeway");
    }

    #[test]
    fn made_up_kids_are_refused_before_the_payload_is_read() {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let token = |header: &str, payload: &str| format!("{}.{}.c2ln", b64(header), b64(payload));
        let with_keys = |keys: Vec<VerifyKey>| {
            let mut p = provider();
            p.algorithms = vec![Algorithm::HS256];
            p.keys = Arc::new(ProviderKeys::local(keys));
            Providers::new(vec![p])
        };
        let known = with_keys(vec![VerifyKey::secret(
            b"0123456789abcdef0123456789abcdef",
            Some("k1".into()),
            None,
        )]);
        let empty = with_keys(Vec::new());
        let garbage = "not json";
        let claims = r#"{"iss":"https://id.example","aud":"api","exp":9999999999}"#;
        let cases: &[(&Providers, String, TokenError)] = &[
            // Unknown kid: refused whatever the payload holds.
            (
                &known,
                token(r#"{"alg":"HS256","kid":"made-up"}"#, garbage),
                TokenError::UnknownKey,
            ),
            (
                &known,
                token(r#"{"alg":"HS256","kid":"made-up"}"#, claims),
                TokenError::UnknownKey,
            ),
            // Known kid: the payload is read and judged.
            (
                &known,
                token(r#"{"alg":"HS256","kid":"k1"}"#, garbage),
                TokenError::BadPayload,
            ),
            (
                &known,
                token(r#"{"alg":"HS256","kid":"k1"}"#, claims),
                TokenError::BadSignature,
            ),
            // No kid: the full path.
            (
                &known,
                token(r#"{"alg":"HS256"}"#, garbage),
                TokenError::BadPayload,
            ),
            // No keys loaded: "unavailable", not "unknown".
            (
                &empty,
                token(r#"{"alg":"HS256","kid":"made-up"}"#, claims),
                TokenError::KeysUnavailable,
            ),
        ];
        for (providers, tok, want) in cases {
            let got = verify_once(tok, providers, None, 8192, 1_000_000.0).map(|_| ());
            assert_eq!(got.map_err(|f| f.error), Err(*want), "{tok}");
        }
        // A route that accepts no provider with that kid refuses it too.
        let tok = token(r#"{"alg":"HS256","kid":"k1"}"#, claims);
        let got = verify_once(&tok, &known, Some(&[]), 8192, 1_000_000.0).map(|_| ());
        assert_eq!(got.map_err(|f| f.error), Err(TokenError::UnknownKey));
    }
}

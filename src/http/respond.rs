//! Step 11: every error becomes a response here and nowhere else: one status and one stable
//! reason code per variant, an RFC 6750 challenge where it applies, an RFC 9457 problem body.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};

use super::ProxyBody;
use crate::error::{Denial, RequestError, TokenError, UpstreamError};

/// Every reason code the gateway answers with, in the problem body's `reason` and `type`
/// and in the access log. Stable: operators alert on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    NoRoute,
    MethodNotAllowed,
    BadMethod,
    TooManyHeaders,
    AmbiguousHeader,
    DeniedByRule,
    AmbiguousPath,
    BadHost,
    UriTooLong,
    BodyTooLarge,
    BadBody,
    BadFraming,
    MissingToken,
    InvalidRequest,
    TokenTooLarge,
    MalformedToken,
    MalformedHeader,
    MalformedPayload,
    AlgNone,
    UnsupportedAlgorithm,
    AlgorithmNotAllowed,
    UnsupportedCrit,
    EmbeddedKey,
    MissingIssuer,
    IssuerMismatch,
    KeysUnavailable,
    UnknownKey,
    KeyAlgorithmMismatch,
    BadSignature,
    TokenExpired,
    TokenNotYetValid,
    TokenIssuedInFuture,
    MissingExpiry,
    InvalidTimeClaim,
    MissingAudience,
    AudienceMismatch,
    UnsupportedScheme,
    TypeNotAllowed,
    ClientMismatch,
    TokenRevoked,
    RevocationUnavailable,
    MissingClaim,
    ClaimMismatch,
    MissingScope,
    UpstreamUnavailable,
    UpstreamError,
    UpstreamBadUpgrade,
    UpstreamOverloaded,
    UpstreamTimeout,
}

impl Reason {
    /// Every reason, for tables and docs.
    pub const ALL: [Reason; 49] = [
        Reason::NoRoute,
        Reason::MethodNotAllowed,
        Reason::BadMethod,
        Reason::TooManyHeaders,
        Reason::AmbiguousHeader,
        Reason::DeniedByRule,
        Reason::AmbiguousPath,
        Reason::BadHost,
        Reason::UriTooLong,
        Reason::BodyTooLarge,
        Reason::BadBody,
        Reason::BadFraming,
        Reason::MissingToken,
        Reason::InvalidRequest,
        Reason::TokenTooLarge,
        Reason::MalformedToken,
        Reason::MalformedHeader,
        Reason::MalformedPayload,
        Reason::AlgNone,
        Reason::UnsupportedAlgorithm,
        Reason::AlgorithmNotAllowed,
        Reason::UnsupportedCrit,
        Reason::EmbeddedKey,
        Reason::MissingIssuer,
        Reason::IssuerMismatch,
        Reason::KeysUnavailable,
        Reason::UnknownKey,
        Reason::KeyAlgorithmMismatch,
        Reason::BadSignature,
        Reason::TokenExpired,
        Reason::TokenNotYetValid,
        Reason::TokenIssuedInFuture,
        Reason::MissingExpiry,
        Reason::InvalidTimeClaim,
        Reason::MissingAudience,
        Reason::AudienceMismatch,
        Reason::UnsupportedScheme,
        Reason::TypeNotAllowed,
        Reason::ClientMismatch,
        Reason::TokenRevoked,
        Reason::RevocationUnavailable,
        Reason::MissingClaim,
        Reason::ClaimMismatch,
        Reason::MissingScope,
        Reason::UpstreamUnavailable,
        Reason::UpstreamError,
        Reason::UpstreamBadUpgrade,
        Reason::UpstreamOverloaded,
        Reason::UpstreamTimeout,
    ];

    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::NoRoute => "no_route",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::BadMethod => "bad_method",
            Reason::TooManyHeaders => "too_many_headers",
            Reason::AmbiguousHeader => "ambiguous_header",
            Reason::DeniedByRule => "denied_by_rule",
            Reason::AmbiguousPath => "ambiguous_path",
            Reason::BadHost => "bad_host",
            Reason::UriTooLong => "uri_too_long",
            Reason::BodyTooLarge => "body_too_large",
            Reason::BadBody => "bad_body",
            Reason::BadFraming => "bad_framing",
            Reason::MissingToken => "missing_token",
            Reason::InvalidRequest => "invalid_request",
            Reason::TokenTooLarge => "token_too_large",
            Reason::MalformedToken => "malformed_token",
            Reason::MalformedHeader => "malformed_header",
            Reason::MalformedPayload => "malformed_payload",
            Reason::AlgNone => "alg_none",
            Reason::UnsupportedAlgorithm => "unsupported_algorithm",
            Reason::AlgorithmNotAllowed => "algorithm_not_allowed",
            Reason::UnsupportedCrit => "unsupported_crit",
            Reason::EmbeddedKey => "embedded_key",
            Reason::MissingIssuer => "missing_issuer",
            Reason::IssuerMismatch => "issuer_mismatch",
            Reason::KeysUnavailable => "keys_unavailable",
            Reason::UnknownKey => "unknown_key",
            Reason::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            Reason::BadSignature => "bad_signature",
            Reason::TokenExpired => "token_expired",
            Reason::TokenNotYetValid => "token_not_yet_valid",
            Reason::TokenIssuedInFuture => "token_issued_in_future",
            Reason::MissingExpiry => "missing_expiry",
            Reason::InvalidTimeClaim => "invalid_time_claim",
            Reason::MissingAudience => "missing_audience",
            Reason::AudienceMismatch => "audience_mismatch",
            Reason::UnsupportedScheme => "unsupported_scheme",
            Reason::TypeNotAllowed => "type_not_allowed",
            Reason::ClientMismatch => "client_mismatch",
            Reason::TokenRevoked => "token_revoked",
            Reason::RevocationUnavailable => "revocation_unavailable",
            Reason::MissingClaim => "missing_claim",
            Reason::ClaimMismatch => "claim_mismatch",
            Reason::MissingScope => "missing_scope",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::UpstreamError => "upstream_error",
            Reason::UpstreamBadUpgrade => "upstream_bad_upgrade",
            Reason::UpstreamOverloaded => "upstream_overloaded",
            Reason::UpstreamTimeout => "upstream_timeout",
        }
    }
}

// Every reason and `allowed` are counted apart in the route metrics.
const _: () = assert!(Reason::ALL.len() < crate::metrics::DECISIONS);

impl Reason {
    /// The decision slot of the route metrics: `allowed`, then each reason in `ALL` order.
    pub const fn decision(self) -> usize {
        self as usize + 1
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which `WWW-Authenticate` challenge a rejection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    None,
    /// No credentials were sent: `Bearer realm="…"` only.
    Bearer,
    InvalidRequest,
    InvalidToken,
    InsufficientScope,
}

/// A synthetic response: status, reason code and challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub code: Reason,
    pub challenge: Challenge,
    /// Human-readable, fixed text (never request data).
    pub detail: &'static str,
    /// Close the connection after this response (the rest of the request cannot be trusted
    /// or was not read).
    pub close: bool,
}

impl Rejection {
    const fn new(
        status: StatusCode,
        code: Reason,
        challenge: Challenge,
        detail: &'static str,
    ) -> Self {
        Rejection {
            status,
            code,
            challenge,
            detail,
            close: false,
        }
    }

    const fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    const fn invalid_token(code: Reason, detail: &'static str) -> Self {
        Rejection::new(
            StatusCode::UNAUTHORIZED,
            code,
            Challenge::InvalidToken,
            detail,
        )
    }
}

/// Maps an error to its rejection. One arm per variant, no wildcard, so a new variant must be
/// decided here.
pub fn rejection(err: &RequestError) -> Rejection {
    use StatusCode as S;
    match err {
        RequestError::NoRoute => Rejection::new(
            S::NOT_FOUND,
            Reason::NoRoute,
            Challenge::None,
            "no route matches this request",
        ),
        RequestError::MethodNotAllowed => Rejection::new(
            S::METHOD_NOT_ALLOWED,
            Reason::MethodNotAllowed,
            Challenge::None,
            "the route does not allow this method",
        ),
        RequestError::BadMethod => Rejection::new(
            S::BAD_REQUEST,
            Reason::BadMethod,
            Challenge::None,
            "methods are case-sensitive upper-case tokens",
        ),
        RequestError::TooManyHeaders => Rejection::new(
            S::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reason::TooManyHeaders,
            Challenge::None,
            "the request has more header fields than allowed",
        ),
        RequestError::AmbiguousHeader(detail) => Rejection::new(
            S::BAD_REQUEST,
            Reason::AmbiguousHeader,
            Challenge::None,
            detail,
        ),
        RequestError::RuleDenied => Rejection::new(
            S::FORBIDDEN,
            Reason::DeniedByRule,
            Challenge::None,
            "a rule denies this request",
        ),
        RequestError::AmbiguousPath(detail) => Rejection::new(
            S::BAD_REQUEST,
            Reason::AmbiguousPath,
            Challenge::None,
            detail,
        ),
        RequestError::BadHost(detail) => {
            Rejection::new(S::BAD_REQUEST, Reason::BadHost, Challenge::None, detail)
        }
        RequestError::UriTooLong => Rejection::new(
            S::URI_TOO_LONG,
            Reason::UriTooLong,
            Challenge::None,
            "the request target is longer than allowed",
        ),
        RequestError::BodyTooLarge => Rejection::new(
            S::PAYLOAD_TOO_LARGE,
            Reason::BodyTooLarge,
            Challenge::None,
            "the request body is larger than this route allows",
        )
        .closing(),
        RequestError::BadBody => Rejection::new(
            S::BAD_REQUEST,
            Reason::BadBody,
            Challenge::None,
            "the request body is malformed or was cut off",
        )
        .closing(),
        RequestError::BadFraming(detail) => {
            Rejection::new(S::BAD_REQUEST, Reason::BadFraming, Challenge::None, detail).closing()
        }
        RequestError::MissingToken => Rejection::new(
            S::UNAUTHORIZED,
            Reason::MissingToken,
            Challenge::Bearer,
            "a bearer token is required",
        ),
        RequestError::InvalidRequest(e) => Rejection::new(
            S::BAD_REQUEST,
            Reason::InvalidRequest,
            Challenge::InvalidRequest,
            e.describe(),
        ),
        RequestError::Token(e) => token_rejection(*e),
        RequestError::Denied(denial) => Rejection::new(
            S::FORBIDDEN,
            denial_reason(*denial),
            Challenge::InsufficientScope,
            "the token does not grant access to this route",
        ),
        RequestError::Upstream(UpstreamError::Connect) => Rejection::new(
            S::BAD_GATEWAY,
            Reason::UpstreamUnavailable,
            Challenge::None,
            "could not connect to the upstream",
        ),
        RequestError::Upstream(UpstreamError::Protocol) => Rejection::new(
            S::BAD_GATEWAY,
            Reason::UpstreamError,
            Challenge::None,
            "the upstream connection failed",
        ),
        RequestError::Upstream(UpstreamError::BadUpgrade) => Rejection::new(
            S::BAD_GATEWAY,
            Reason::UpstreamBadUpgrade,
            Challenge::None,
            "the upstream switched to a protocol that was not asked for",
        ),
        RequestError::Upstream(UpstreamError::Overloaded) => Rejection::new(
            S::SERVICE_UNAVAILABLE,
            Reason::UpstreamOverloaded,
            Challenge::None,
            "the upstream is at its request limit; retry shortly",
        ),
        RequestError::Upstream(UpstreamError::Timeout) => Rejection::new(
            S::GATEWAY_TIMEOUT,
            Reason::UpstreamTimeout,
            Challenge::None,
            "the upstream did not answer in time",
        ),
    }
}

fn token_rejection(e: TokenError) -> Rejection {
    use TokenError as T;
    let code = match e {
        T::Oversize => Reason::TokenTooLarge,
        T::Malformed => Reason::MalformedToken,
        T::BadHeader => Reason::MalformedHeader,
        T::BadPayload => Reason::MalformedPayload,
        T::AlgNone => Reason::AlgNone,
        T::UnsupportedAlgorithm => Reason::UnsupportedAlgorithm,
        T::AlgorithmNotAllowed => Reason::AlgorithmNotAllowed,
        T::UnsupportedCrit => Reason::UnsupportedCrit,
        T::EmbeddedKey => Reason::EmbeddedKey,
        T::MissingIssuer => Reason::MissingIssuer,
        T::UnknownIssuer => Reason::IssuerMismatch,
        T::BadIssuer => Reason::IssuerMismatch,
        T::KeysUnavailable => Reason::KeysUnavailable,
        T::UnknownKey => Reason::UnknownKey,
        T::KeyAlgorithmMismatch => Reason::KeyAlgorithmMismatch,
        T::BadSignature => Reason::BadSignature,
        T::Expired => Reason::TokenExpired,
        T::NotYetValid => Reason::TokenNotYetValid,
        T::IssuedInFuture => Reason::TokenIssuedInFuture,
        T::MissingExpiry => Reason::MissingExpiry,
        T::BadTimeClaim => Reason::InvalidTimeClaim,
        T::MissingAudience => Reason::MissingAudience,
        T::AudienceMismatch => Reason::AudienceMismatch,
        T::UnsupportedScheme => Reason::UnsupportedScheme,
        T::TypeNotAllowed => Reason::TypeNotAllowed,
        T::ClientMismatch => Reason::ClientMismatch,
        T::Revoked => Reason::TokenRevoked,
        T::RevocationUnavailable => Reason::RevocationUnavailable,
    };
    Rejection::invalid_token(code, token_detail(e))
}

/// The reason code of a claim denial.
pub fn denial_reason(d: Denial) -> Reason {
    match d {
        Denial::MissingClaim => Reason::MissingClaim,
        Denial::ClaimMismatch => Reason::ClaimMismatch,
        Denial::MissingScope => Reason::MissingScope,
    }
}

fn token_detail(e: TokenError) -> &'static str {
    use TokenError as T;
    match e {
        T::Oversize => "the token is larger than allowed",
        T::Malformed => "the token is not a compact JWS",
        T::BadHeader => "the token header is malformed",
        T::BadPayload => "the token payload is malformed",
        T::AlgNone => "unsigned tokens are not accepted",
        T::UnsupportedAlgorithm => "the token algorithm is not supported",
        T::AlgorithmNotAllowed => "the token algorithm is not allowed",
        T::UnsupportedCrit => "the token has a critical header extension",
        T::EmbeddedKey => "keys embedded in or linked from the token are not accepted",
        T::MissingIssuer => "the token has no issuer",
        T::UnknownIssuer | T::BadIssuer => "the token issuer is not accepted",
        T::KeysUnavailable => "the issuer keys are not available yet",
        T::UnknownKey => "the token signing key is unknown",
        T::KeyAlgorithmMismatch => "the token algorithm does not fit its key",
        T::BadSignature => "the token signature is invalid",
        T::Expired => "the token has expired",
        T::NotYetValid => "the token is not valid yet",
        T::IssuedInFuture => "the token was issued in the future",
        T::MissingExpiry => "the token has no expiry",
        T::BadTimeClaim => "a token time claim is not a number",
        T::MissingAudience => "the token has no audience",
        T::AudienceMismatch => "the token audience is not accepted",
        T::UnsupportedScheme => "only Bearer tokens are accepted here",
        T::TypeNotAllowed => "the token type is not accepted",
        T::ClientMismatch => "the token was issued to another client",
        T::Revoked => "the token was revoked",
        T::RevocationUnavailable => "the revoked-token list is not available yet",
    }
}

/// Renders a rejection: the challenge header, `Cache-Control: no-store`, a problem+json body.
pub fn render(r: &Rejection, realm: &str) -> Response<ProxyBody> {
    // Codes and titles are fixed identifiers; the detail is fixed text, JSON-escaped anyway.
    let detail = serde_json::to_string(r.detail).unwrap_or_else(|_| "\"\"".to_string());
    let body = format!(
        r#"{{"type":"urn:portcullis:error:{code}","title":"{title}","status":{status},"detail":{detail},"reason":"{code}"}}"#,
        code = r.code,
        title = r.status.canonical_reason().unwrap_or(""),
        status = r.status.as_u16(),
    );
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = r.status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if r.close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if r.status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    let challenge = match r.challenge {
        Challenge::None => None,
        Challenge::Bearer => Some(format!("Bearer realm=\"{realm}\"")),
        Challenge::InvalidRequest => Some(format!(
            "Bearer realm=\"{realm}\", error=\"invalid_request\", error_description=\"{}\"",
            r.detail
        )),
        Challenge::InvalidToken => Some(format!(
            "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
            r.detail
        )),
        Challenge::InsufficientScope => Some(format!(
            "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{}\"",
            r.detail
        )),
    };
    if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ExtractError;

    /// The bytes of a `Full` body (it is ready at once).
    fn futures_body(body: Full<Bytes>) -> Bytes {
        use http_body_util::BodyExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(body.collect()).unwrap().to_bytes()
    }

    /// One example of every error the mapper can see, down to the nested enums.
    fn every_error() -> Vec<RequestError> {
        use TokenError as T;
        let mut all = vec![
            RequestError::NoRoute,
            RequestError::MethodNotAllowed,
            RequestError::BadMethod,
            RequestError::TooManyHeaders,
            RequestError::AmbiguousHeader("x"),
            RequestError::RuleDenied,
            RequestError::AmbiguousPath("x"),
            RequestError::BadHost("x"),
            RequestError::UriTooLong,
            RequestError::BodyTooLarge,
            RequestError::BadBody,
            RequestError::BadFraming("x"),
            RequestError::MissingToken,
        ];
        all.extend(
            [
                ExtractError::MultipleAuthorization,
                ExtractError::MultipleMethods,
                ExtractError::EmptyBearer,
                ExtractError::NotText,
                ExtractError::BearerSeparator,
                ExtractError::DuplicateQueryToken,
                ExtractError::DuplicateCookieToken,
                ExtractError::CookieNotText,
            ]
            .map(RequestError::from),
        );
        all.extend(
            [
                T::Oversize,
                T::Malformed,
                T::BadHeader,
                T::BadPayload,
                T::AlgNone,
                T::UnsupportedAlgorithm,
                T::AlgorithmNotAllowed,
                T::UnsupportedCrit,
                T::EmbeddedKey,
                T::MissingIssuer,
                T::UnknownIssuer,
                T::BadIssuer,
                T::KeysUnavailable,
                T::UnknownKey,
                T::KeyAlgorithmMismatch,
                T::BadSignature,
                T::Expired,
                T::NotYetValid,
                T::IssuedInFuture,
                T::MissingExpiry,
                T::BadTimeClaim,
                T::MissingAudience,
                T::AudienceMismatch,
                T::UnsupportedScheme,
                T::TypeNotAllowed,
                T::ClientMismatch,
                T::Revoked,
                T::RevocationUnavailable,
            ]
            .map(RequestError::from),
        );
        all.extend(
            [
                Denial::MissingClaim,
                Denial::ClaimMismatch,
                Denial::MissingScope,
            ]
            .map(RequestError::from),
        );
        all.extend(
            [
                UpstreamError::Connect,
                UpstreamError::Timeout,
                UpstreamError::Protocol,
                UpstreamError::BadUpgrade,
                UpstreamError::Overloaded,
            ]
            .map(RequestError::from),
        );
        all
    }

    /// The pinned answer to each variant: status, the reason code as operators see it, the
    /// challenge, and whether the connection closes. No wildcard anywhere, so a new variant
    /// does not compile until it is pinned here.
    fn pinned(err: &RequestError) -> (u16, &'static str, Challenge, bool) {
        use Challenge::{Bearer, InsufficientScope, InvalidRequest, InvalidToken, None as No};
        use TokenError as T;
        let token = |code| (401, code, InvalidToken, false);
        match err {
            RequestError::NoRoute => (404, "no_route", No, false),
            RequestError::MethodNotAllowed => (405, "method_not_allowed", No, false),
            RequestError::BadMethod => (400, "bad_method", No, false),
            RequestError::TooManyHeaders => (431, "too_many_headers", No, false),
            RequestError::AmbiguousHeader(_) => (400, "ambiguous_header", No, false),
            RequestError::RuleDenied => (403, "denied_by_rule", No, false),
            RequestError::AmbiguousPath(_) => (400, "ambiguous_path", No, false),
            RequestError::BadHost(_) => (400, "bad_host", No, false),
            RequestError::UriTooLong => (414, "uri_too_long", No, false),
            RequestError::BodyTooLarge => (413, "body_too_large", No, true),
            RequestError::BadBody => (400, "bad_body", No, true),
            RequestError::BadFraming(_) => (400, "bad_framing", No, true),
            RequestError::MissingToken => (401, "missing_token", Bearer, false),
            RequestError::InvalidRequest(
                ExtractError::MultipleAuthorization
                | ExtractError::MultipleMethods
                | ExtractError::EmptyBearer
                | ExtractError::NotText
                | ExtractError::BearerSeparator
                | ExtractError::DuplicateQueryToken
                | ExtractError::DuplicateCookieToken
                | ExtractError::CookieNotText,
            ) => (400, "invalid_request", InvalidRequest, false),
            RequestError::Token(t) => match t {
                T::Oversize => token("token_too_large"),
                T::Malformed => token("malformed_token"),
                T::BadHeader => token("malformed_header"),
                T::BadPayload => token("malformed_payload"),
                T::AlgNone => token("alg_none"),
                T::UnsupportedAlgorithm => token("unsupported_algorithm"),
                T::AlgorithmNotAllowed => token("algorithm_not_allowed"),
                T::UnsupportedCrit => token("unsupported_crit"),
                T::EmbeddedKey => token("embedded_key"),
                T::MissingIssuer => token("missing_issuer"),
                T::UnknownIssuer | T::BadIssuer => token("issuer_mismatch"),
                T::KeysUnavailable => token("keys_unavailable"),
                T::UnknownKey => token("unknown_key"),
                T::KeyAlgorithmMismatch => token("key_algorithm_mismatch"),
                T::BadSignature => token("bad_signature"),
                T::Expired => token("token_expired"),
                T::NotYetValid => token("token_not_yet_valid"),
                T::IssuedInFuture => token("token_issued_in_future"),
                T::MissingExpiry => token("missing_expiry"),
                T::BadTimeClaim => token("invalid_time_claim"),
                T::MissingAudience => token("missing_audience"),
                T::AudienceMismatch => token("audience_mismatch"),
                T::UnsupportedScheme => token("unsupported_scheme"),
                T::TypeNotAllowed => token("type_not_allowed"),
                T::ClientMismatch => token("client_mismatch"),
                T::Revoked => token("token_revoked"),
                T::RevocationUnavailable => token("revocation_unavailable"),
            },
            RequestError::Denied(d) => match d {
                Denial::MissingClaim => (403, "missing_claim", InsufficientScope, false),
                Denial::ClaimMismatch => (403, "claim_mismatch", InsufficientScope, false),
                Denial::MissingScope => (403, "missing_scope", InsufficientScope, false),
            },
            RequestError::Upstream(u) => match u {
                UpstreamError::Connect => (502, "upstream_unavailable", No, false),
                UpstreamError::Protocol => (502, "upstream_error", No, false),
                UpstreamError::BadUpgrade => (502, "upstream_bad_upgrade", No, false),
                UpstreamError::Overloaded => (503, "upstream_overloaded", No, false),
                UpstreamError::Timeout => (504, "upstream_timeout", No, false),
            },
        }
    }

    #[test]
    fn every_error_has_its_pinned_response() {
        let all = every_error();
        for err in &all {
            let r = rejection(err);
            assert_eq!(
                (r.status.as_u16(), r.code.as_str(), r.challenge, r.close),
                pinned(err),
                "{err:?}"
            );
        }
        // Every reason code is reached by some error, so `every_error` misses no variant
        // whose code is its own; and codes are distinct identifiers.
        let reached: std::collections::HashSet<Reason> =
            all.iter().map(|e| rejection(e).code).collect();
        for reason in Reason::ALL {
            assert!(reached.contains(&reason), "{reason} is reached by no error");
            assert!(
                reason
                    .as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{reason}"
            );
        }
        let distinct: std::collections::HashSet<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(distinct.len(), Reason::ALL.len());
    }

    #[test]
    fn every_rejection_renders_a_problem_body_and_its_challenge() {
        for err in every_error() {
            let r = rejection(&err);
            assert!(!r.detail.contains(['"', '\\']), "{err:?}");
            let response = render(&r, "portcullis");
            assert_eq!(
                response.headers().contains_key(WWW_AUTHENTICATE),
                r.challenge != Challenge::None,
                "{err:?}"
            );
            assert_eq!(
                response.headers().contains_key(RETRY_AFTER),
                r.status == StatusCode::SERVICE_UNAVAILABLE
            );
            let body = match response.into_body() {
                Either::Right(full) => full,
                Either::Left(_) => panic!("a rejection streams no upstream body"),
            };
            let json: serde_json::Value =
                serde_json::from_slice(&futures_body(body)).expect("valid JSON");
            assert_eq!(json["reason"], r.code.as_str());
            assert_eq!(json["status"], r.status.as_u16());
            assert_eq!(json["detail"], r.detail);
            assert_eq!(json["type"], format!("urn:portcullis:error:{}", r.code));
        }
    }
}

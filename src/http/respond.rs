//! Step 11: every error becomes a response here and nowhere else: one status and one stable
//! reason code per variant, an RFC 6750 challenge where it applies, an RFC 9457 problem body.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};

use super::ProxyBody;
use crate::error::{RequestError, TokenError, UpstreamError};

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
    pub code: &'static str,
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
        code: &'static str,
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

    const fn invalid_token(code: &'static str, detail: &'static str) -> Self {
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
            "no_route",
            Challenge::None,
            "no route matches this request",
        ),
        RequestError::MethodNotAllowed => Rejection::new(
            S::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            Challenge::None,
            "the route does not allow this method",
        ),
        RequestError::BadMethod => Rejection::new(
            S::BAD_REQUEST,
            "bad_method",
            Challenge::None,
            "methods are case-sensitive upper-case tokens",
        ),
        RequestError::TooManyHeaders => Rejection::new(
            S::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too_many_headers",
            Challenge::None,
            "the request has more header fields than allowed",
        ),
        RequestError::AmbiguousHeader(detail) => {
            Rejection::new(S::BAD_REQUEST, "ambiguous_header", Challenge::None, detail)
        }
        RequestError::RuleDenied => Rejection::new(
            S::FORBIDDEN,
            "denied_by_rule",
            Challenge::None,
            "a rule denies this request",
        ),
        RequestError::AmbiguousPath(detail) => {
            Rejection::new(S::BAD_REQUEST, "ambiguous_path", Challenge::None, detail)
        }
        RequestError::BadHost(detail) => {
            Rejection::new(S::BAD_REQUEST, "bad_host", Challenge::None, detail)
        }
        RequestError::UriTooLong => Rejection::new(
            S::URI_TOO_LONG,
            "uri_too_long",
            Challenge::None,
            "the request target is longer than allowed",
        ),
        RequestError::BodyTooLarge => Rejection::new(
            S::PAYLOAD_TOO_LARGE,
            "body_too_large",
            Challenge::None,
            "the request body is larger than this route allows",
        )
        .closing(),
        RequestError::BadBody => Rejection::new(
            S::BAD_REQUEST,
            "bad_body",
            Challenge::None,
            "the request body is malformed or was cut off",
        )
        .closing(),
        RequestError::MissingToken => Rejection::new(
            S::UNAUTHORIZED,
            "missing_token",
            Challenge::Bearer,
            "a bearer token is required",
        ),
        RequestError::InvalidRequest(detail) => Rejection::new(
            S::BAD_REQUEST,
            "invalid_request",
            Challenge::InvalidRequest,
            detail,
        ),
        RequestError::Token(e) => token_rejection(*e),
        RequestError::Denied(code) => Rejection::new(
            S::FORBIDDEN,
            code,
            Challenge::InsufficientScope,
            "the token does not grant access to this route",
        ),
        RequestError::Upstream(UpstreamError::Connect) => Rejection::new(
            S::BAD_GATEWAY,
            "upstream_unavailable",
            Challenge::None,
            "could not connect to the upstream",
        ),
        RequestError::Upstream(UpstreamError::Protocol) => Rejection::new(
            S::BAD_GATEWAY,
            "upstream_error",
            Challenge::None,
            "the upstream connection failed",
        ),
        RequestError::Upstream(UpstreamError::BadUpgrade) => Rejection::new(
            S::BAD_GATEWAY,
            "upstream_bad_upgrade",
            Challenge::None,
            "the upstream switched to a protocol that was not asked for",
        ),
        RequestError::Upstream(UpstreamError::Overloaded) => Rejection::new(
            S::SERVICE_UNAVAILABLE,
            "upstream_overloaded",
            Challenge::None,
            "the upstream is at its request limit; retry shortly",
        ),
        RequestError::Upstream(UpstreamError::Timeout) => Rejection::new(
            S::GATEWAY_TIMEOUT,
            "upstream_timeout",
            Challenge::None,
            "the upstream did not answer in time",
        ),
    }
}

fn token_rejection(e: TokenError) -> Rejection {
    use TokenError as T;
    let code = match e {
        T::Oversize => "token_too_large",
        T::Malformed => "malformed_token",
        T::BadHeader => "malformed_header",
        T::BadPayload => "malformed_payload",
        T::AlgNone => "alg_none",
        T::UnsupportedAlgorithm => "unsupported_algorithm",
        T::AlgorithmNotAllowed => "algorithm_not_allowed",
        T::UnsupportedCrit => "unsupported_crit",
        T::EmbeddedKey => "embedded_key",
        T::MissingIssuer => "missing_issuer",
        T::UnknownIssuer => "issuer_mismatch",
        T::BadIssuer => "issuer_mismatch",
        T::KeysUnavailable => "keys_unavailable",
        T::UnknownKey => "unknown_key",
        T::KeyAlgorithmMismatch => "key_algorithm_mismatch",
        T::BadSignature => "bad_signature",
        T::Expired => "token_expired",
        T::NotYetValid => "token_not_yet_valid",
        T::IssuedInFuture => "token_issued_in_future",
        T::MissingExpiry => "missing_expiry",
        T::BadTimeClaim => "invalid_time_claim",
        T::MissingAudience => "missing_audience",
        T::AudienceMismatch => "audience_mismatch",
        T::UnsupportedScheme => "unsupported_scheme",
        T::TypeNotAllowed => "type_not_allowed",
        T::ClientMismatch => "client_mismatch",
    };
    Rejection::invalid_token(code, token_detail(e))
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

    /// The bytes of a `Full` body (it is ready at once).
    fn futures_body(body: Full<Bytes>) -> Bytes {
        use http_body_util::BodyExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(body.collect()).unwrap().to_bytes()
    }

    #[test]
    fn rejection_table() {
        use StatusCode as S;
        let cases: Vec<(RequestError, S, &str, Challenge)> = vec![
            (
                RequestError::NoRoute,
                S::NOT_FOUND,
                "no_route",
                Challenge::None,
            ),
            (
                RequestError::MethodNotAllowed,
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                Challenge::None,
            ),
            (
                RequestError::AmbiguousPath("x"),
                S::BAD_REQUEST,
                "ambiguous_path",
                Challenge::None,
            ),
            (
                RequestError::BadHost("x"),
                S::BAD_REQUEST,
                "bad_host",
                Challenge::None,
            ),
            (
                RequestError::UriTooLong,
                S::URI_TOO_LONG,
                "uri_too_long",
                Challenge::None,
            ),
            (
                RequestError::BadBody,
                S::BAD_REQUEST,
                "bad_body",
                Challenge::None,
            ),
            (
                RequestError::BodyTooLarge,
                S::PAYLOAD_TOO_LARGE,
                "body_too_large",
                Challenge::None,
            ),
            (
                RequestError::MissingToken,
                S::UNAUTHORIZED,
                "missing_token",
                Challenge::Bearer,
            ),
            (
                RequestError::InvalidRequest("x"),
                S::BAD_REQUEST,
                "invalid_request",
                Challenge::InvalidRequest,
            ),
            (
                TokenError::Expired.into(),
                S::UNAUTHORIZED,
                "token_expired",
                Challenge::InvalidToken,
            ),
            (
                TokenError::BadSignature.into(),
                S::UNAUTHORIZED,
                "bad_signature",
                Challenge::InvalidToken,
            ),
            (
                TokenError::UnknownKey.into(),
                S::UNAUTHORIZED,
                "unknown_key",
                Challenge::InvalidToken,
            ),
            (
                TokenError::UnknownIssuer.into(),
                S::UNAUTHORIZED,
                "issuer_mismatch",
                Challenge::InvalidToken,
            ),
            (
                RequestError::Denied("missing_claim"),
                S::FORBIDDEN,
                "missing_claim",
                Challenge::InsufficientScope,
            ),
            (
                UpstreamError::Connect.into(),
                S::BAD_GATEWAY,
                "upstream_unavailable",
                Challenge::None,
            ),
            (
                UpstreamError::Timeout.into(),
                S::GATEWAY_TIMEOUT,
                "upstream_timeout",
                Challenge::None,
            ),
        ];
        for (err, status, code, challenge) in cases {
            let r = rejection(&err);
            assert_eq!(
                (r.status, r.code, r.challenge),
                (status, code, challenge),
                "{err:?}"
            );
        }
    }

    #[test]
    fn every_token_detail_is_a_valid_quoted_string() {
        use TokenError::*;
        for e in [
            Oversize,
            Malformed,
            BadHeader,
            BadPayload,
            AlgNone,
            UnsupportedAlgorithm,
            AlgorithmNotAllowed,
            UnsupportedCrit,
            EmbeddedKey,
            MissingIssuer,
            UnknownIssuer,
            KeysUnavailable,
            UnknownKey,
            KeyAlgorithmMismatch,
            BadSignature,
            Expired,
            NotYetValid,
            IssuedInFuture,
            MissingExpiry,
            BadTimeClaim,
            MissingAudience,
            AudienceMismatch,
            BadIssuer,
            UnsupportedScheme,
            TypeNotAllowed,
            ClientMismatch,
        ] {
            let r = token_rejection(e);
            assert!(!r.detail.contains(['"', '\\']), "{e:?}");
            let response = render(&r, "portcullis");
            assert!(response.headers().contains_key(WWW_AUTHENTICATE), "{e:?}");
            let body = match response.into_body() {
                Either::Right(full) => full,
                Either::Left(_) => panic!("a rejection streams no upstream body"),
            };
            let bytes = futures_body(body);
            let json: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
            assert_eq!(json["reason"], r.code);
            assert_eq!(json["status"], 401);
            assert_eq!(json["detail"], r.detail);
            assert_eq!(json["type"], format!("urn:portcullis:error:{}", r.code));
        }
    }
}

//! Error types, one enum per concern. `http/respond.rs` turns each request-side variant into
//! exactly one status and reason code.

use thiserror::Error;

/// Why a presented token was not accepted. Each variant maps to one stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("token is larger than the configured maximum")]
    Oversize,
    #[error("token is not three base64url segments separated by two dots")]
    Malformed,
    #[error("token header is not valid base64url JSON")]
    BadHeader,
    #[error("token payload is not a valid base64url JSON object")]
    BadPayload,
    #[error("token uses alg none")]
    AlgNone,
    #[error("token alg is unknown or not supported")]
    UnsupportedAlgorithm,
    #[error("token alg is not allowed for this issuer")]
    AlgorithmNotAllowed,
    #[error("token header carries a critical extension the gateway does not understand")]
    UnsupportedCrit,
    #[error("token header embeds or points to a key (jwk, jku, x5u, x5c)")]
    EmbeddedKey,
    #[error("token has no iss claim")]
    MissingIssuer,
    #[error("token issuer is not accepted on this route")]
    UnknownIssuer,
    #[error("the issuer's keys could not be loaded")]
    KeysUnavailable,
    #[error("no key of the issuer matches the token's kid and alg")]
    UnknownKey,
    #[error("the key named by kid does not fit the token's alg")]
    KeyAlgorithmMismatch,
    #[error("signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("token has no exp claim")]
    MissingExpiry,
    #[error("a time claim (exp, nbf, iat) is not a JSON number")]
    BadTimeClaim,
    #[error("token has no aud claim")]
    MissingAudience,
    #[error("token audience is not accepted")]
    AudienceMismatch,
    #[error("token iss is not a string")]
    BadIssuer,
    #[error("the Authorization scheme is neither Bearer nor Basic")]
    UnsupportedScheme,
    #[error("token typ is not accepted by the issuer")]
    TypeNotAllowed,
    #[error("token azp / client_id is not an accepted client")]
    ClientMismatch,
    #[error("token was revoked")]
    Revoked,
    #[error("the revoked-token list could not be read yet")]
    RevocationUnavailable,
}

/// Why the credentials could not be read (400 `invalid_request`, RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractError {
    MultipleAuthorization,
    MultipleMethods,
    EmptyBearer,
    NotText,
    /// `Bearer` in some case, followed by something other than one or more spaces.
    BearerSeparator,
    /// The token's query parameter appears more than once (after percent-decoding).
    DuplicateQueryToken,
    /// The token's cookie appears more than once (after trimming and percent-decoding).
    DuplicateCookieToken,
    /// A `Cookie` header that is not UTF-8, on a route that reads a cookie.
    CookieNotText,
}

impl ExtractError {
    /// Fixed text for the `error_description` of the 400.
    pub fn describe(self) -> &'static str {
        match self {
            ExtractError::MultipleAuthorization => "more than one Authorization header",
            ExtractError::MultipleMethods => "token sent by more than one method",
            ExtractError::EmptyBearer => "Bearer scheme without a token",
            ExtractError::NotText => "Authorization header is not visible ASCII",
            ExtractError::BearerSeparator => {
                "the Bearer scheme must be followed by a space and the token"
            }
            ExtractError::DuplicateQueryToken => "the token query parameter appears more than once",
            ExtractError::DuplicateCookieToken => "the token cookie appears more than once",
            ExtractError::CookieNotText => "a Cookie header is not UTF-8",
        }
    }
}

impl std::fmt::Display for ExtractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

impl std::error::Error for ExtractError {}

/// Why the claims did not satisfy a route's conditions (403 `insufficient_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Denial {
    /// A required claim is absent.
    #[error("a required claim is absent")]
    MissingClaim,
    /// A claim is present but its value does not satisfy the test.
    #[error("a claim does not have an accepted value")]
    ClaimMismatch,
    /// The token lacks a required OAuth scope.
    #[error("the token lacks a required scope")]
    MissingScope,
}

/// Why the request could not be authorized or forwarded; the single input of the response mapper.
#[derive(Debug, Error)]
pub enum RequestError {
    #[error("no route matches the request")]
    NoRoute,
    #[error("the route does not allow this method")]
    MethodNotAllowed,
    #[error("the method is not an upper-case token")]
    BadMethod,
    #[error("the request has more header fields than allowed")]
    TooManyHeaders,
    #[error("a header the rules read is ambiguous: {0}")]
    AmbiguousHeader(&'static str),
    #[error("the route denies the request")]
    RuleDenied,
    #[error("the request path is ambiguous: {0}")]
    AmbiguousPath(&'static str),
    #[error("the request host is invalid or ambiguous: {0}")]
    BadHost(&'static str),
    #[error("the request target is longer than allowed")]
    UriTooLong,
    #[error("the request body is larger than the route allows")]
    BodyTooLarge,
    #[error("the request body could not be read")]
    BadBody,
    #[error("the message framing is ambiguous: {0}")]
    BadFraming(&'static str),
    #[error("no bearer token was presented")]
    MissingToken,
    #[error("the credentials are malformed: {0}")]
    InvalidRequest(#[from] ExtractError),
    #[error("token rejected: {0}")]
    Token(#[from] TokenError),
    #[error("claims do not satisfy the route: {0}")]
    Denied(#[from] Denial),
    #[error("upstream: {0}")]
    Upstream(#[from] UpstreamError),
}

/// Failures talking to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum UpstreamError {
    #[error("could not connect to the upstream")]
    Connect,
    #[error("the upstream did not answer in time")]
    Timeout,
    #[error("the upstream connection failed")]
    Protocol,
    #[error(
        "the upstream answered an upgrade with a protocol or accept key that was not asked for"
    )]
    BadUpgrade,
    #[error("the upstream has as many requests or waiting connections as it may")]
    Overloaded,
}

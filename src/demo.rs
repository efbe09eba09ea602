//! The quick start: a built-in echo backend and a minter for dev-only demo tokens.
//! Nothing here is on the request path of a production gateway.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::PrivatePkcs1KeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::json;
use tokio::net::TcpListener;

/// Starts an HTTP/1.1 backend on `addr` that answers every request with a JSON description of
/// what it received (method, path, query, headers); returns the bound address.
pub async fn start_echo(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service =
                    service_fn(
                        |req: Request<Incoming>| async move { Ok::<_, Infallible>(echo(&req)) },
                    );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

fn echo(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let headers: BTreeMap<&str, String> = req
        .headers()
        .iter()
        .map(|(name, value)| {
            let shown = if name == header::AUTHORIZATION {
                "Bearer <redacted by the echo backend>".to_string()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str(), shown)
        })
        .collect();
    let body = json!({
        "backend": "portcullis demo echo",
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "headers": headers,
    });
    let mut response = Response::new(Full::new(Bytes::from(format!("{:#}\n", body))));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Mints RS256 demo tokens with a dev-only key.
pub struct Minter {
    key: EncodingKey,
    kid: String,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Minter {
    /// Loads a PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM file.
    pub fn from_pem_file(
        path: &Path,
        kid: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<Minter, String> {
        let der = PrivatePkcs1KeyDer::from_pem_file(path).map_err(|e| e.to_string())?;
        Ok(Minter {
            key: EncodingKey::from_rsa_der(der.secret_pkcs1_der()),
            kid: kid.to_string(),
            issuer: issuer.to_string(),
            audience: audience.to_string(),
        })
    }

    /// A token for `sub` with `roles` and `scope`, valid for `ttl_secs`.
    pub fn mint(
        &self,
        sub: &str,
        roles: &[&str],
        scope: &str,
        ttl_secs: u64,
    ) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        let claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "roles": roles,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_secs,
        });
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }
}

/// The text the demo prints: tokens and curl commands that show 200, 401 and 403.
pub fn instructions(
    minter: &Minter,
    http: SocketAddr,
    https: Option<SocketAddr>,
) -> Result<String, String> {
    let alice = minter.mint("alice", &["admin", "reader"], "reports:read", 3600)?;
    let bob = minter.mint("bob", &["reader"], "reports:read", 3600)?;
    let base = format!("http://{http}");
    let mut text = format!(
        "\nPortcullis demo is running (dev-only keys: never use certs/demo-* in production).\n\
         Tokens below are valid for one hour; restart the demo for fresh ones.\n\n\
         ALICE='{alice}'\n\
         BOB='{bob}'\n\n\
         # 200: public route, no token needed\n\
         curl -i {base}/public/hello\n\n\
         # 401: protected route without a token\n\
         curl -i {base}/api/profile\n\n\
         # 200: any valid token; the backend sees X-User-Id and X-User-Roles\n\
         curl -i -H \"Authorization: Bearer $ALICE\" {base}/api/profile\n\n\
         # 200: alice has role admin\n\
         curl -i -H \"Authorization: Bearer $ALICE\" {base}/api/admin/stats\n\n\
         # 403: bob lacks role admin\n\
         curl -i -H \"Authorization: Bearer $BOB\" {base}/api/admin/stats\n\n\
         # 401: a tampered token\n\
         curl -i -H \"Authorization: Bearer ${{ALICE}}x\" {base}/api/profile\n"
    );
    if let Some(https) = https {
        text.push_str(&format!(
            "\n# HTTPS (HTTP/2 or HTTP/1.1), trusting the dev-only demo CA\n\
             curl -i --cacert certs/demo-ca.pem -H \"Authorization: Bearer $ALICE\" https://localhost:{}/api/profile\n",
            https.port()
        ));
    }
    text.push_str("\nPress Ctrl-C to stop.\n");
    Ok(text)
}

/// The issuer's flow with curl over HTTPS: login → call → refresh → logout (the refresh
/// cookie is `Secure` and `__Host-`: curl keeps it in a cookie jar, over HTTPS only).
pub fn issuer_walkthrough(https: SocketAddr) -> String {
    let base = format!("https://localhost:{}", https.port());
    format!(
        "\n# The built-in issuer (demo users alice / alice-demo-password, bob / bob-demo-password)\n\
         JAR=$(mktemp)\n\
         # 200: an access token, and the refresh cookie into the jar\n\
         TOKEN=$(curl -s --cacert certs/demo-ca.pem -c $JAR -H 'X-Portcullis-CSRF: 1' \\\n  \
         -H 'Content-Type: application/json' -d '{{\"username\":\"alice\",\"password\":\"alice-demo-password\"}}' \\\n  \
         {base}/auth/login | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n\
         curl -i --cacert certs/demo-ca.pem -H \"Authorization: Bearer $TOKEN\" {base}/api/admin/stats\n\
         # 200: a new access token; the cookie rotates\n\
         curl -s --cacert certs/demo-ca.pem -b $JAR -c $JAR -H 'X-Portcullis-CSRF: 1' -X POST {base}/auth/refresh\n\
         # 200: the session ends; refreshing again is a 401\n\
         curl -s --cacert certs/demo-ca.pem -b $JAR -c $JAR -H 'X-Portcullis-CSRF: 1' -X POST {base}/auth/logout\n\
         # or sign in with a browser: {base}/auth/login\n"
    )
}

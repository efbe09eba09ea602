//! The optional sign-in page (`GET /auth/login`): one HTML form and a small inline script
//! (no framework) that posts it with the CSRF header, keeps the access token in memory only,
//! and offers refresh and logout (which shows the access token, so revocation can deny it).
//! The CSP allows that one script by its hash and nothing else.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::{IssuerSpec, Reply};

const SCRIPT: &str = r#"
const out = document.getElementById('status');
let accessToken = null;
async function call(path, body, withToken) {
  const headers = {'Content-Type': 'application/json', 'X-Portcullis-CSRF': '1'};
  if (withToken && accessToken) headers.Authorization = 'Bearer ' + accessToken;
  const sentAt = performance.timeOrigin + performance.now();
  const r = await fetch(path, {method: 'POST', credentials: 'same-origin', headers,
    body: JSON.stringify(body || {})});
  const data = await r.json().catch(() => ({}));
  return {status: r.status, data, sentAt};
}
function show(r) {
  accessToken = r.status === 200 ? (r.data.access_token || null) : null;
  out.textContent = r.status === 200 && accessToken ? 'signed in' : (r.data.logged_out ? 'signed out' : 'refused: ' + (r.data.error || r.status));
  out.dataset.status = String(r.status);
  document.body.dataset.signedIn = accessToken ? 'yes' : 'no';
  return r;
}
const refresh = async () => show(await call('/auth/refresh'));
const logout = async () => show(await call('/auth/logout', {}, true));
document.getElementById('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = e.target;
  show(await call('/auth/login', {username: f.username.value, password: f.password.value}));
  f.password.value = '';
});
document.getElementById('refresh').addEventListener('click', refresh);
document.getElementById('logout').addEventListener('click', logout);
window.portcullis = {token: () => accessToken, refresh, logout};
"#;

/// The page, with a CSP naming the script's hash.
pub fn sign_in(spec: &IssuerSpec) -> Reply {
    let _ = spec;
    let hash = STANDARD.encode(digest::digest(&digest::SHA256, SCRIPT.as_bytes()).as_ref());
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in</title>\
<meta name=\"viewport\" content=\"width=device-width\"></head><body data-signed-in=\"no\">\
<h1>Sign in</h1><form id=\"login\"><label>Username <input name=\"username\" autocomplete=\"username\" required></label>\
<label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
<button type=\"submit\">Sign in</button></form><p><button id=\"refresh\">Refresh</button> \
<button id=\"logout\">Sign out</button></p><p id=\"status\" role=\"status\"></p>\
<script>{SCRIPT}</script></body></html>\n"
    );
    let csp = format!(
        "default-src 'none'; script-src 'sha256-{hash}'; connect-src 'self'; form-action 'self'; \
frame-ancestors 'none'; base-uri 'none'"
    );
    let mut response = Response::new(Full::new(Bytes::from(html)));
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert("content-security-policy", v);
    }
    response
}

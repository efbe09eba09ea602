//! Tokens shaped like those of real identity providers — Auth0, Keycloak, Entra ID v2, Google,
//! Okta and AWS Cognito (whose access tokens carry `client_id` and no `aud`) — through the real
//! gateway, each provider with its own JWKS and a route with the rule its users would write.

mod common;

use common::*;
use serde_json::{Value, json};

struct Idp {
    name: &'static str,
    issuer: &'static str,
    /// The provider's config lines after `issuer` (audiences, clients, …).
    settings: &'static str,
    /// The route's `require` (YAML, indented for the route).
    require: &'static str,
    key: TestKey,
    header: Value,
    claims: Value,
}

fn idps() -> Vec<Idp> {
    let now = now();
    vec![
        Idp {
            name: "auth0",
            issuer: "https://tenant.eu.auth0.com/",
            settings: "audiences: [https://api.example.com]",
            require: "claim: scope\n      scope: read:orders",
            key: TestKey::rsa("auth0-1"),
            header: json!({"typ": "JWT"}),
            claims: json!({
                "iss": "https://tenant.eu.auth0.com/", "sub": "auth0|5f7c8ec7c33c6c004bbafe82",
                "aud": ["https://api.example.com", "https://tenant.eu.auth0.com/userinfo"],
                "iat": now, "exp": now + 600, "azp": "b3BlbmlkLWNsaWVudA",
                "scope": "openid profile read:orders", "gty": "client-credentials"
            }),
        },
        Idp {
            name: "keycloak",
            issuer: "https://sso.example.com/realms/main",
            settings: "audiences: [orders-api]\n    clients: [orders-web]",
            require: "claim: realm_access.roles\n      contains: clerk",
            key: TestKey::rsa("kc-rs256"),
            header: json!({"typ": "JWT"}),
            claims: json!({
                "iss": "https://sso.example.com/realms/main", "sub": "f:8a3c:alice",
                "aud": ["orders-api", "account"], "azp": "orders-web", "typ": "Bearer",
                "iat": now, "exp": now + 300, "auth_time": now - 10, "jti": "7c0e",
                "session_state": "b1c2", "acr": "1",
                "realm_access": {"roles": ["offline_access", "clerk"]},
                "resource_access": {"account": {"roles": ["view-profile"]}},
                "scope": "openid email", "preferred_username": "alice"
            }),
        },
        Idp {
            name: "entra",
            issuer: "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
            settings: "audiences: [6e74172b-be56-4843-9ff4-e66a39bb12e3]",
            require: "claim: scp\n      scope: Orders.Read",
            key: TestKey::rsa("nOo3ZDrODXEK1jKWhXslHR_KXEg"),
            header: json!({"typ": "JWT", "x5t": "nOo3ZDrODXEK1jKWhXslHR_KXEg"}),
            claims: json!({
                "iss": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
                "aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3", "ver": "2.0",
                "iat": now, "nbf": now, "exp": now + 3600, "azp": "a1b2c3d4-0000-4000-8000-000000000001",
                "oid": "00000000-0000-0000-66f3-3332eca7ea81", "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
                "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "scp": "Orders.Read User.Read",
                "roles": ["Orders.Admin"], "name": "Alice"
            }),
        },
        Idp {
            name: "google",
            issuer: "https://accounts.google.com",
            settings: "audiences: [1234567890-abc.apps.googleusercontent.com]",
            require: "all:\n        - claim: email_verified\n          equals: true\n        - claim: hd\n          equals: example.com",
            key: TestKey::rsa("f5f4bf46e52b31d9b6249f7309ad0338400680cd"),
            header: json!({"typ": "JWT"}),
            claims: json!({
                "iss": "https://accounts.google.com", "azp": "1234567890-abc.apps.googleusercontent.com",
                "aud": "1234567890-abc.apps.googleusercontent.com", "sub": "110169484474386276334",
                "hd": "example.com", "email": "alice@example.com", "email_verified": true,
                "iat": now, "exp": now + 3600
            }),
        },
        Idp {
            name: "okta",
            issuer: "https://example.okta.com/oauth2/default",
            settings: "audiences: [api://default]",
            require: "claim: scp\n      contains: orders.read",
            key: TestKey::rsa("okta-1"),
            header: json!({}),
            claims: json!({
                "ver": 1, "jti": "AT.0mP4JKAZX1iACIT4vbEDF7LpvDVjxypPMf0D7uX39RE",
                "iss": "https://example.okta.com/oauth2/default", "aud": "api://default",
                "iat": now, "exp": now + 3600, "cid": "0oa1b2c3d4", "uid": "00u1a2b3c4",
                "scp": ["openid", "orders.read"], "auth_time": now - 5, "sub": "alice@example.com"
            }),
        },
        Idp {
            name: "cognito",
            issuer: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEfGhI",
            settings: "audiences: none\n    clients: [3q7v1k9n5r2m8p4s6t0u]",
            require: "claim: token_use\n      equals: access",
            key: TestKey::rsa("cognito-1"),
            header: json!({}),
            claims: json!({
                "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "cognito:groups": ["clerks"],
                "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEfGhI",
                "version": 2, "client_id": "3q7v1k9n5r2m8p4s6t0u", "origin_jti": "1a2b",
                "token_use": "access", "scope": "aws.cognito.signin.user.admin orders/read",
                "auth_time": now - 5, "exp": now + 3600, "iat": now, "jti": "3c4d",
                "username": "alice"
            }),
        },
    ]
}

#[tokio::test]
async fn tokens_of_real_identity_providers() {
    let upstream = TestUpstream::start().await;
    let work = Workdir::new();
    let idps = idps();
    let mut providers = String::new();
    let mut routes = String::new();
    for idp in &idps {
        work.jwks(&format!("{}.json", idp.name), &[&idp.key]);
        providers.push_str(&format!(
            "  - name: {name}\n    issuer: {issuer}\n    algorithms: [RS256]\n    jwks_file: {name}.json\n    {settings}\n",
            name = idp.name,
            issuer = idp.issuer,
            settings = idp.settings
        ));
        routes.push_str(&format!(
            "  - name: {name}\n    prefix: /{name}\n    upstream: app\n    providers: [{name}]\n    require:\n      {require}\n",
            name = idp.name,
            require = idp.require
        ));
    }
    let gw = GatewayYaml::new()
        .upstream("app", &upstream.url())
        .top(&format!("providers:\n{providers}routes:\n{routes}"))
        .start_in(work)
        .await;
    let send = |path: String, token: String| {
        let url = gw.url(0, &path);
        async move { reason(client().get(url).bearer_auth(token).send().await.unwrap()).await }
    };
    for idp in &idps {
        let mut header = json!({"alg": "RS256", "kid": idp.key.kid});
        for (k, v) in idp.header.as_object().unwrap() {
            header[k] = v.clone();
        }
        let token = mint_header(&idp.key, "RS256", &header, &idp.claims);
        let (status, code, _) = send(format!("/{}/orders", idp.name), token).await;
        assert_eq!((status, code.as_str()), (200, ""), "{}", idp.name);
    }
    assert_eq!(upstream.count(), idps.len());

    // Cognito: another app client of the same user pool, and an ID token (aud, no client_id).
    let cognito = idps.iter().find(|i| i.name == "cognito").unwrap();
    let header = json!({"alg": "RS256", "kid": cognito.key.kid});
    let mut other_client = cognito.claims.clone();
    other_client["client_id"] = json!("another-app-client");
    let token = mint_header(&cognito.key, "RS256", &header, &other_client);
    let (status, code, _) = send("/cognito/orders".into(), token).await;
    assert_eq!((status, code.as_str()), (401, "client_mismatch"));
    let mut id_token = cognito.claims.clone();
    let map = id_token.as_object_mut().unwrap();
    map.remove("client_id");
    map.insert("aud".into(), json!("3q7v1k9n5r2m8p4s6t0u"));
    map.insert("token_use".into(), json!("id"));
    let token = mint_header(&cognito.key, "RS256", &header, &id_token);
    let (status, code, _) = send("/cognito/orders".into(), token).await;
    assert_eq!((status, code.as_str()), (401, "client_mismatch"));

    // Keycloak: a token the realm issued to another client.
    let keycloak = idps.iter().find(|i| i.name == "keycloak").unwrap();
    let mut other = keycloak.claims.clone();
    other["azp"] = json!("admin-cli");
    let header = json!({"alg": "RS256", "kid": keycloak.key.kid, "typ": "JWT"});
    let token = mint_header(&keycloak.key, "RS256", &header, &other);
    let (status, code, _) = send("/keycloak/orders".into(), token).await;
    assert_eq!((status, code.as_str()), (401, "client_mismatch"));
    assert_eq!(
        upstream.count(),
        idps.len(),
        "a refused token reached the upstream"
    );
}

/// `audiences: none` without a bound client is loaded, but `check` says why that is risky.
#[test]
fn audiences_none_without_a_client_is_linted() {
    let work = Workdir::new();
    let key = TestKey::rsa("k");
    work.jwks("k.json", &[&key]);
    let yaml = GatewayYaml::new()
        .upstream("app", "http://127.0.0.1:9")
        .providers(
            "
- name: pool
  issuer: https://cognito-idp.example/pool
  audiences: none
  algorithms: [RS256]
  jwks_file: k.json
",
        )
        .routes(
            "
- name: bound
  prefix: /bound
  upstream: app
  require:
    claim: client_id
    equals: app-1
- name: open
  prefix: /open
  upstream: app
",
        )
        .yaml();
    let path = work.write("gateway.yaml", &yaml);
    let config = portcullis::config::load(&path).unwrap();
    let found: Vec<&str> = config
        .warnings
        .iter()
        .map(|w| w.message.as_str())
        .filter(|m| m.contains("audiences: none"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("is bound on open;"), "{}", found[0]);
    // Not an accepted keyword: an error that names the key.
    let path = work.write(
        "bad.yaml",
        &yaml.replace("audiences: none", "audiences: any"),
    );
    let errors = portcullis::config::load(&path).unwrap_err().to_string();
    assert!(errors.contains("providers[0].audiences"), "{errors}");
}

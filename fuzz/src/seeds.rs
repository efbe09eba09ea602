//! The seed corpora, written from the repository's fixtures when a target starts: the shipped
//! configs and rule files, the test fixtures, the attack corpus's request targets, the demo
//! JWKS, and tokens signed with the demo key.

use std::fs;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// Writes `target`'s seeds into `fuzz/corpus/<target>/` (libFuzzer reads the directory after
/// this runs, from the target's `init`).
pub fn write(target: &str) {
    let corpus = crate::repo().join("fuzz/corpus");
    let seeds = all().unwrap_or_else(|e| panic!("cannot read the fixtures: {e}"));
    seeds
        .write(&corpus, target)
        .unwrap_or_else(|e| panic!("cannot write the seeds: {e}"));
}

fn all() -> std::io::Result<Seeds> {
    let repo = crate::repo();
    let mut seeds = Seeds::default();

    // authorization: valid, expired, wrong audience, alg none, swapped alg, other schemes.
    let claims = crate::allowed_claims();
    let valid = crate::sign(&claims);
    let mut expired = claims.clone();
    expired.insert("exp".into(), json!(1_000_000_000));
    let mut other_aud = claims.clone();
    other_aud.insert("aud".into(), json!(["reports-api"]));
    let (_, rest) = valid.split_once('.').unwrap_or_default();
    let none = format!("{}.{rest}", b64(br#"{"alg":"none","kid":"demo-rsa-1"}"#));
    let hs = format!("{}.{rest}", b64(br#"{"alg":"HS256","kid":"demo-rsa-1"}"#));
    for token in [
        valid.clone(),
        crate::sign(&expired),
        crate::sign(&other_aud),
        none,
        hs,
    ] {
        seeds.add("authorization", format!("Bearer {token}").into_bytes());
    }
    for other in [
        "Basic YWxpY2U6cHc=",
        "bearer a.b.c",
        "Bearer  a.b.c",
        "Bearer a..c",
    ] {
        seeds.add("authorization", other.as_bytes().to_vec());
    }

    // request_target: the attack corpus's targets and the example routes' paths.
    for file in read_dir(&repo.join("tests/attacks"))? {
        for line in fs::read_to_string(&file)?.lines() {
            let Some(request) = line.split('\t').nth(1) else {
                continue;
            };
            let Some(target) = request.split(' ').nth(1) else {
                continue;
            };
            let mut seed = vec![0u8];
            seed.extend_from_slice(b"api.example.com\n");
            seed.extend_from_slice(target.as_bytes());
            seeds.add("request_target", seed);
        }
    }
    for (host, target) in [
        ("api.example.com", "/users/alice/profile"),
        ("api.example.com", "/tenants/t1/orders"),
        ("api.example.com", "/invoices/2026/1?page=2"),
        ("ADMIN.example.com", "/Admin/users"),
        ("payroll.example.com", "/march"),
        ("api.example.com", "/legacy/v1/items/%7e1"),
        ("api.example.com", "/api/a/./b/../c"),
        ("api.example.com", "https://payroll.example.com:443/x"),
    ] {
        for method in [0u8, 2, 6] {
            let mut seed = vec![method];
            seed.extend_from_slice(format!("{host}\n{target}").as_bytes());
            seeds.add("request_target", seed);
        }
    }

    // config_yaml: every YAML file of the repository's configs and fixtures.
    for dir in ["config", "config/rules.d", "fuzz/config", "tests/fixtures"] {
        for file in walk(&repo.join(dir))? {
            if file.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                seeds.add("config_yaml", fs::read(&file)?);
            }
        }
    }

    // jwks_json: the demo set under a few allow-lists, and shapes of other key types.
    let jwks = fs::read(repo.join("certs/demo-jwks.json"))?;
    for choice in [0x08u8, 0xff, 0x81, 0x00] {
        let mut seed = vec![choice];
        seed.extend_from_slice(&jwks);
        seeds.add("jwks_json", seed);
    }
    for document in [
        json!({"keys": [{"kty": "oct", "k": b64(&[7; 32]), "alg": "HS256", "kid": "h"}]}),
        json!({"keys": [{"kty": "EC", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32])}]}),
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64(&[3; 32]), "use": "sig"}]}),
        json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "key_ops": ["verify"]}]}),
    ] {
        let mut seed = vec![0xffu8];
        seed.extend_from_slice(document.to_string().as_bytes());
        seeds.add("jwks_json", seed);
    }

    // claims_rules: the allowed claims and variations of their types.
    let base = Value::Object(claims.clone());
    seeds.add("claims_rules", base.to_string().into_bytes());
    for (key, value) in [
        ("loa", json!(1e308)),
        ("loa", json!(-0.0)),
        ("loa", json!(18446744073709551615u64)),
        ("roles", json!("admin")),
        ("roles", json!([["admin"]])),
        ("tenant", json!(["t1"])),
        ("suspended", json!("true")),
        ("sub", json!(7)),
        ("scope", json!(["invoices:read"])),
    ] {
        let mut variant = claims.clone();
        variant.insert(key.into(), value);
        seeds.add(
            "claims_rules",
            Value::Object(variant).to_string().into_bytes(),
        );
    }

    // header_rewrite: protected names in several spellings, a Connection list.
    seeds.add(
        "header_rewrite",
        b"\x00\x00a\xff\x01b\xff\x05c\xff\x10x-user-id, host\xff".to_vec(),
    );
    seeds.add("header_rewrite", b"\x01\x13t1\xff\x14t2\xff".to_vec());
    seeds.add(
        "header_rewrite",
        b"\x02\xe5x-aa-bvalue\xff\x09\xff".to_vec(),
    );

    // issuer_inputs: login bodies, cookies, CSRF headers.
    seeds.add(
        "issuer_inputs",
        b"\x08{\"username\":\"alice\",\"password\":\"pw\"}\xffa=1; __Host-portcullis-refresh=x\xffhttps://app.example.com\xffcross-site".to_vec(),
    );
    seeds.add(
        "issuer_inputs",
        b"\x09username=alice&password=p%40ss+word\xff__Host-portcullis-refresh=a\xfe__Host-portcullis-refresh=b\xff\xffsame-origin".to_vec(),
    );

    Ok(seeds)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Default)]
struct Seeds(Vec<(&'static str, Vec<u8>)>);

impl Seeds {
    fn add(&mut self, target: &'static str, seed: Vec<u8>) {
        self.0.push((target, seed));
    }

    fn write(&self, corpus: &Path, target: &str) -> std::io::Result<()> {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir)?;
        let mine = self.0.iter().filter(|(t, _)| *t == target);
        for (count, (_, seed)) in mine.enumerate() {
            fs::write(dir.join(format!("seed-{count:03}")), seed)?;
        }
        Ok(())
    }
}

fn read_dir(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn walk(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

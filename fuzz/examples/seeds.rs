//! Writes the seed corpora of every fuzz target under `corpus/<target>/` (relative to the fuzz
//! crate): real tokens signed by the fixture keys (including every platform claim set of
//! `../shared/platform-claims` when that folder exists beside the repository), token endpoint
//! bodies of both grants, JWKS and discovery documents, the repository's policy files and the
//! CEL expressions they hold. Usage: `cargo run --example seeds [-- fuzz-crate-dir]`.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use trustbridge_fuzz::{
    FIXTURE, ISSUER, NOW, POLICY, REQUESTS, Reached, SAMPLE_TOKEN, jws_reach, sign, sign_raw,
};

fn main() {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let repo = root.join("..");
    let mut total = 0;
    for (target, seeds) in [
        ("jws", jws_seeds(&repo)),
        ("form", form_seeds()),
        ("jwks", jwks_seeds(&repo)),
        ("discovery", discovery_seeds()),
        ("policy", policy_seeds(&repo)),
        ("cel", cel_seeds(&repo)),
        ("dpop", dpop_seeds()),
        ("forwarded", forwarded_seeds()),
    ] {
        let dir = root.join("corpus").join(target);
        fs::create_dir_all(&dir).expect("create corpus dir");
        for (i, seed) in seeds.iter().enumerate() {
            fs::write(dir.join(format!("seed-{i:03}")), seed).expect("write seed");
        }
        println!("{target}: {} seeds", seeds.len());
        if target == "jws" {
            let reached: Vec<Reached> = seeds.iter().map(|s| jws_reach(s)).collect();
            let count = |r| reached.iter().filter(|&&x| x == r).count();
            println!(
                "  refused {}, verified then denied {}, granted {}",
                count(Reached::Refused),
                count(Reached::Denied),
                count(Reached::Granted)
            );
            assert!(count(Reached::Granted) > 0, "no seed reaches a grant");
        }
        total += seeds.len();
    }
    println!("{total} seeds in {}", root.join("corpus").display());
}

/// Claim sets of ../shared/platform-claims (when present) with `iss` set to the fuzz issuer.
fn platform_claims(repo: &Path) -> Vec<Value> {
    let dir = repo.join("../shared/platform-claims");
    let Ok(entries) = fs::read_dir(&dir) else {
        eprintln!(
            "note: {} not found; platform claim seeds skipped",
            dir.display()
        );
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| serde_json::from_str::<Value>(&fs::read_to_string(p).ok()?).ok())
        .filter_map(|case| {
            let mut claims = case.get("claims")?.clone();
            claims["iss"] = json!(ISSUER);
            Some(claims)
        })
        .collect()
}

fn with_selector(selector: u8, token: &str) -> Vec<u8> {
    let mut seed = vec![selector];
    seed.extend_from_slice(token.as_bytes());
    seed
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn jws_seeds(repo: &Path) -> Vec<Vec<u8>> {
    let f = &*FIXTURE;
    let mut claims = platform_claims(repo);
    claims.push(
        json!({"iss": ISSUER, "sub": "repo:octo-org/octo-repo:ref:refs/heads/release/v1",
        "aud": "https://github.com/octo-org", "iat": NOW, "exp": NOW + 300,
        "repository_owner_id": "5122340"}),
    );
    claims.push(
        json!({"iss": ISSUER, "sub": "system:serviceaccount:team-a:builder",
        "aud": ["api://trustbridge"], "iat": NOW, "nbf": NOW, "exp": NOW + 3600,
        "kubernetes.io": {"namespace": "team-a", "serviceaccount": {"name": "builder"}}}),
    );
    let mut seeds = Vec::new();
    for (i, c) in claims.iter().enumerate() {
        let key = &f.signers[i % f.signers.len()];
        let token = sign(key, c);
        for selector in 0..3 {
            seeds.push(with_selector(selector, &token));
        }
    }
    let token = SAMPLE_TOKEN.as_str();
    seeds.push(with_selector(0, token));
    let (header_payload, _) = token.rsplit_once('.').expect("three parts");
    let payload = token.split('.').nth(1).expect("payload");
    let kid = f.signers[0].kid();
    for header in [
        json!({"alg": "none"}),
        json!({"alg": "HS256", "kid": kid}),
        json!({"alg": "RS256", "kid": kid, "jku": "https://evil.example/keys"}),
        json!({"alg": "RS256", "kid": "../../etc/passwd"}),
        json!({"alg": "RS256", "kid": kid, "crit": ["exp"]}),
        json!({"alg": "RS256", "kid": kid, "cty": "JWT"}),
    ] {
        seeds.push(with_selector(
            0,
            &format!("{}.{payload}.", b64(&header.to_string())),
        ));
    }
    seeds.push(with_selector(0, &format!("{header_payload}.AAAA")));
    seeds.push(with_selector(
        1,
        &sign_raw(
            &f.signers[1],
            &format!(r#"{{"alg":"ES256","kid":"{}"}}"#, f.signers[1].kid()),
            &format!(r#"{{"iss":"{ISSUER}","iss":"x","exp":{}}}"#, NOW + 60),
        ),
    ));
    seeds.push(with_selector(2, "a.b.c.d.e"));
    seeds
}

fn form_seeds() -> Vec<Vec<u8>> {
    let token = SAMPLE_TOKEN.as_str();
    let mut seeds: Vec<Vec<u8>> = REQUESTS
        .iter()
        .map(|r| r.replace("=x&", &format!("={token}&")).into_bytes())
        .collect();
    seeds.push(format!("{}&client_id=other", REQUESTS[0]).into_bytes());
    seeds.push(b"grant_type=password&username=u&password=p".to_vec());
    seeds.push(
        format!(
            "{}&audience=api%3A%2F%2Fpayments&resource=api%3A%2F%2Fother",
            REQUESTS[1]
        )
        .into_bytes(),
    );
    seeds.push(b"grant_type=%FF%FE&a=%&b==&&=".to_vec());
    seeds
}

fn jwks_seeds(repo: &Path) -> Vec<Vec<u8>> {
    let f = &*FIXTURE;
    let mut seeds = vec![f.jwks.to_string().into_bytes()];
    for key in f.signers.iter() {
        seeds.push(json!({"keys": [key.public_jwk()]}).to_string().into_bytes());
    }
    if let Ok(weak) = fs::read_to_string(repo.join("tests/fixtures/keys/rsa1024.jwk.json")) {
        seeds.push(format!(r#"{{"keys":[{weak}]}}"#).into_bytes());
    }
    seeds.push(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"EC","crv":"P-521","x":"AA","y":"AA"},{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}"#.to_vec());
    seeds.push(br#"{"keys":[]}"#.to_vec());
    seeds
}

fn discovery_seeds() -> Vec<Vec<u8>> {
    [
        json!({"issuer": ISSUER, "jwks_uri": format!("{ISSUER}/keys"),
            "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"]}),
        json!({"issuer": ISSUER, "jwks_uri": "http://issuer.fuzz.example/keys"}),
        json!({"issuer": "https://token.actions.githubusercontent.com",
            "jwks_uri": "https://token.actions.githubusercontent.com/.well-known/jwks",
            "claims_supported": ["sub", "aud", "repository_owner_id"]}),
        json!({"issuer": "http://127.0.0.1:8080", "jwks_uri": "http://127.0.0.1:8080/openid/v1/jwks"}),
        json!({"issuer": ISSUER}),
    ]
    .iter()
    .map(|d| d.to_string().into_bytes())
    .collect()
}

fn yaml_files(repo: &Path) -> Vec<String> {
    let mut dirs = vec![repo.join("policies")];
    if let Ok(scenarios) = fs::read_dir(repo.join("tests/fixtures/policies")) {
        dirs.extend(scenarios.filter_map(Result::ok).map(|e| e.path()));
    }
    let mut texts = vec![POLICY.to_string()];
    for dir in dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml")
                && let Ok(text) = fs::read_to_string(&path)
            {
                texts.push(text);
            }
        }
    }
    texts
}

fn policy_seeds(repo: &Path) -> Vec<Vec<u8>> {
    let files = yaml_files(repo);
    let mut seeds: Vec<Vec<u8>> = files.iter().map(|t| t.clone().into_bytes()).collect();
    // Several files at once, split at NUL as the target expects.
    seeds.push(files.join("\0").into_bytes());
    seeds
}

fn cel_seeds(repo: &Path) -> Vec<Vec<u8>> {
    let mut seeds: Vec<String> = Vec::new();
    for text in yaml_files(repo) {
        for line in text.lines() {
            let line = line.trim();
            for prefix in ["condition:", "nameFrom:", "repository:"] {
                if let Some(rest) = line.strip_prefix(prefix) {
                    let expr = rest.trim().trim_matches('\'').to_string();
                    if !expr.is_empty() && !seeds.contains(&expr) {
                        seeds.push(expr);
                    }
                }
            }
        }
    }
    seeds.extend(
        [
            r#"claims.sub.matches("^repo:[a-z]+/.*$") && size(claims.aud) > 1"#,
            r#"claims.n * 2 + int("3") > 10 ? "big" : "small""#,
            r#"has(claims.b) && claims.aud.exists(a, a == "a")"#,
            r#"{"k": [1, 2.5, b"x", null]}["k"][1]"#,
        ]
        .map(str::to_string),
    );
    seeds.into_iter().map(String::into_bytes).collect()
}

/// Valid proofs of each algorithm the endpoint accepts, and near misses.
fn dpop_seeds() -> Vec<Vec<u8>> {
    use trustbridge::jose::SigningAlgorithm;
    let mut seeds: Vec<Vec<u8>> = [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA]
        .into_iter()
        .map(|alg| trustbridge_fuzz::dpop_seed(alg, "seed-jti").into_bytes())
        .collect();
    for seed in &seeds {
        let expected = trustbridge::dpop::Expected {
            htm: "POST",
            htu: trustbridge_fuzz::DPOP_HTU,
            now: std::time::UNIX_EPOCH + std::time::Duration::from_secs(trustbridge_fuzz::NOW),
            window: std::time::Duration::from_secs(60),
        };
        let proof = std::str::from_utf8(seed).expect("ascii");
        assert!(
            trustbridge::dpop::verify(proof, &expected).is_ok(),
            "a dpop seed must reach a verified proof"
        );
    }
    seeds.push(b"eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6Im5vbmUifQ.e30.".to_vec());
    seeds.push(b"a.b.c".to_vec());
    seeds
}

/// Forwarding chains: RFC 7239 with quoting and ports, X-Forwarded-For lists, junk.
fn forwarded_seeds() -> Vec<Vec<u8>> {
    [
        "for=192.0.2.60;proto=https;by=203.0.113.43\n\n",
        "for=\"[2001:db8:cafe::17]:4711\", for=10.0.0.7\n\nhttps",
        "\n198.51.100.7, 10.2.3.4, 10.9.9.9\nhttp",
        "for=unknown\n203.0.113.9\n",
        "for=_hidden;proto=http, for=\"10.1.1.1\"\n, ,\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

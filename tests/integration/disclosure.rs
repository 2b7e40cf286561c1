//! Issue 12, flaws 6 and 7: what refusals disclose. Through the real gateway, over a policy
//! whose every configured value is distinctive (tests/fixtures/policies/disclosure), every
//! refusal kind of the token endpoint is produced under both grants, with and without
//! `client_id`; no response body may carry a configured value, credential or identity name,
//! CEL text, internal URL or file path the caller did not send itself. The audit trail (and,
//! for 503s, the log line beside the trace id) keeps the detail, and only the loopback-only
//! `verboseErrors` switch puts it back into responses.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};
use trustbridge::clock::ManualClock;

use crate::support::gateway::{JWT_BEARER, JWT_TYPE, TOKEN_EXCHANGE, fixture_root};
use crate::support::{TestGateway, TestIssuer, clock, logs};

/// Configured strings that never contain "secret" (the generic check covers those).
const CONFIGURED: [&str; 6] = [
    "4321",
    "3217",
    "api://zz-res-other-secret",
    "repo:zz-org/zz-pattern-secret-*:*",
    "claims.zz_cond_claim_secret ==",
    "zz-mi-prefix-secret/",
];

const MAIN_SUB: &str = "repo:zz-org/zz-exact-repo-secret:ref:refs/heads/main";
const MAIN_AUD: &str = "api://zz-aud-main-secret";
const MAIN_APP: &str = "zz-app-main-secret";

struct Env {
    issuer: TestIssuer,
    stranger: TestIssuer,
    gw: TestGateway,
    clock: Arc<ManualClock>,
    /// A 127.0.0.1 port nothing listens on (the closed issuer's jwksUri).
    closed_port: u16,
}

async fn setup(verbose: bool) -> Env {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let stranger = TestIssuer::start(clock.clone()).await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let port = closed_port.to_string();
    let root = fixture_root(
        "disclosure",
        &[("ISSUER", &issuer.url), ("CLOSED_PORT", &port)],
    );
    let hidden = root.path().join("zz-hidden-dir-secret");
    std::fs::create_dir_all(&hidden).expect("mkdir");
    // Larger than the key fetcher's cap, so reading it fails naming its path.
    let oversized = " ".repeat(1024 * 1024);
    std::fs::write(hidden.join("zz-keys-file-secret.json"), oversized).expect("write");
    let gw = TestGateway::start_in_with(root, clock.clone(), |layer| {
        layer.verbose_errors = Some(verbose);
    })
    .await;
    Env {
        issuer,
        stranger,
        gw,
        clock,
        closed_port,
    }
}

/// How a request names its identity.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Client credentials (always with `client_id`).
    ClientCredentials,
    /// Token exchange with `client_id`.
    ExchangeNamed,
    /// Token exchange without `client_id`: the identity is found from the token.
    ExchangeAnonymous,
}

const SHAPES: [Shape; 3] = [
    Shape::ClientCredentials,
    Shape::ExchangeNamed,
    Shape::ExchangeAnonymous,
];

/// One refusal scenario: a token and the rest of the request.
struct Case {
    label: &'static str,
    tenant: &'static str,
    client_id: &'static str,
    token: String,
    scope: &'static str,
}

impl Env {
    fn claims(&self, sub: &str, aud: &str) -> Value {
        self.issuer.claims(sub, aud)
    }

    /// A token of the issuer declared as `{ISSUER}{suffix}` (same keys, another `iss`).
    fn as_issuer(&self, suffix: &str, mut claims: Value) -> String {
        claims["iss"] = json!(format!("{}{suffix}", self.issuer.url));
        self.issuer.mint(&claims)
    }

    fn now(&self) -> u64 {
        use trustbridge::clock::Clock;
        self.clock.unix()
    }

    fn cases(&self) -> Vec<Case> {
        let case = |label, token: String| Case {
            label,
            tenant: "contoso",
            client_id: MAIN_APP,
            token,
            scope: "api://pay/.default",
        };
        let main = self.claims(MAIN_SUB, MAIN_AUD);
        let now = self.now();
        let mut cases = vec![
            Case {
                tenant: "nowhere",
                ..case("unknown tenant", self.issuer.mint(&main))
            },
            Case {
                scope: "api://unknown/.default",
                ..case("unknown resource", self.issuer.mint(&main))
            },
            Case {
                client_id: "ghost-client",
                ..case("unknown client", self.issuer.mint(&main))
            },
            Case {
                scope: "api://pay/Pay.Admin",
                ..case("roles not assigned", self.issuer.mint(&main))
            },
            case("claim mapping fails", self.issuer.mint(&main)),
            case(
                "issuer stage",
                self.as_issuer("/hygiene", self.claims(MAIN_SUB, MAIN_AUD)),
            ),
            case(
                "audience stage",
                self.issuer.mint(&self.claims(MAIN_SUB, "api://wrong")),
            ),
            case(
                "subject stage",
                self.issuer
                    .mint(&self.claims("repo:zz-org/other:ref:refs/heads/main", MAIN_AUD)),
            ),
            Case {
                client_id: "zz-app-disabled-secret",
                ..case(
                    "disabled",
                    self.issuer
                        .mint(&self.claims("disabled-subject", "api://disabled")),
                )
            },
            Case {
                client_id: "zz-app-unassigned-secret",
                ..case(
                    "not assigned",
                    self.issuer
                        .mint(&self.claims("unassigned-subject", "api://unassigned")),
                )
            },
            case(
                "ambiguous",
                self.issuer
                    .mint(&self.claims("ambiguous-subject", "api://ambiguous")),
            ),
            case(
                "name template fails",
                self.issuer
                    .mint(&self.claims("managed-subject", "api://managed")),
            ),
            case(
                "untrusted issuer",
                self.stranger
                    .mint(&self.stranger.claims(MAIN_SUB, MAIN_AUD)),
            ),
            case("malformed", "garbage".into()),
        ];
        // Condition false, and condition failing to evaluate (its claim missing).
        let mut cond = self.claims("repo:zz-org/zz-pattern-secret-x:ref", MAIN_AUD);
        cases.push(case("condition error", self.issuer.mint(&cond)));
        cond["zz_cond_claim_secret"] = json!("wrong");
        cases.push(case("condition false", self.issuer.mint(&cond)));
        // A bad signature.
        let good = self.issuer.mint(&main);
        let (rest, _) = good.rsplit_once('.').expect("jws");
        let forged = format!("{rest}.{}", "A".repeat(86));
        cases.push(case("bad signature", forged));
        // Time: expired; and, at the hygiene issuer, too long a lifetime and too old.
        let mut expired = main.clone();
        expired["iat"] = json!(now - 4000);
        expired["nbf"] = json!(now - 4000);
        expired["exp"] = json!(now - 3600);
        cases.push(case("expired", self.issuer.mint(&expired)));
        let mut long = main.clone();
        long["exp"] = json!(now + 5000);
        cases.push(case("lifetime", self.as_issuer("/hygiene", long)));
        let mut old = main.clone();
        old["iat"] = json!(now - 4000);
        old["nbf"] = json!(now - 4000);
        cases.push(case("too old", self.as_issuer("/hygiene", old)));
        cases.push(case(
            "wrong typ",
            self.as_issuer("/typed", self.claims(MAIN_SUB, MAIN_AUD)),
        ));
        // Key sources that fail: a closed port, an unreadable jwksFile (both 503).
        cases.push(case(
            "jwksUri unreachable",
            self.as_issuer("/closed", self.claims(MAIN_SUB, MAIN_AUD)),
        ));
        cases.push(case(
            "jwksFile unreadable",
            self.as_issuer("/file", self.claims(MAIN_SUB, MAIN_AUD)),
        ));
        cases
    }

    /// Sends `case` in `shape`; returns status, body, and everything the caller presented
    /// (form values and the token's decoded header and claims).
    async fn send(&self, case: &Case, shape: Shape) -> (u16, Value, String) {
        let mut form = match shape {
            Shape::ClientCredentials => vec![
                ("grant_type", "client_credentials"),
                ("client_id", case.client_id),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", case.token.as_str()),
            ],
            Shape::ExchangeNamed | Shape::ExchangeAnonymous => vec![
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", case.token.as_str()),
                ("subject_token_type", JWT_TYPE),
            ],
        };
        if matches!(shape, Shape::ExchangeNamed) {
            form.push(("client_id", case.client_id));
        }
        form.push(("scope", case.scope));
        let (status, body) = self.gw.post_token(case.tenant, &form).await;
        let mut sent: Vec<String> = form.iter().map(|(_, v)| v.to_string()).collect();
        sent.push(case.tenant.to_string());
        sent.extend(decoded(&case.token));
        (status, body, sent.join("\n"))
    }
}

/// The decoded parts of a compact JWS, as far as they decode.
fn decoded(token: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    token
        .split('.')
        .take(2)
        .filter_map(|part| b64.decode(part).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .collect()
}

/// Asserts that `body` carries nothing configured that `sent` does not: no word containing
/// "secret" (every distinctive policy value does), none of [`CONFIGURED`], no path or URL of
/// the key sources.
fn assert_discloses_nothing(env: &Env, label: &str, shape: Shape, body: &Value, sent: &str) {
    // The random trace and correlation ids are not policy: blank them, or a UUID that happens
    // to hold a configured number (4321) would read as a disclosure.
    let mut text = body.to_string();
    for id in ["trace_id", "correlation_id"] {
        if let Some(value) = body[id].as_str().filter(|v| !v.is_empty()) {
            text = text.replace(value, "<id>");
        }
    }
    let context = format!("{label} / {shape:?}: {text}");
    for word in text.split(|c: char| !(c.is_alphanumeric() || "_-.:/*+".contains(c))) {
        if word.to_ascii_lowercase().contains("secret") {
            assert!(sent.contains(word), "discloses {word:?}: {context}");
        }
    }
    for configured in CONFIGURED {
        if !sent.contains(configured) {
            assert!(
                !text.contains(configured),
                "discloses {configured:?}: {context}"
            );
        }
    }
    let root = env.gw.root.path().display().to_string();
    let closed = format!("127.0.0.1:{}", env.closed_port);
    for internal in [root.as_str(), closed.as_str(), "zz-hidden-dir", "jwks.json"] {
        assert!(
            !text.contains(internal),
            "discloses {internal:?}: {context}"
        );
    }
}

#[actix_web::test]
async fn refusals_never_disclose_the_policy_or_internal_locations() {
    let env = setup(false).await;
    let mut statuses = BTreeSet::new();
    for case in env.cases() {
        for shape in SHAPES {
            let (status, body, sent) = env.send(&case, shape).await;
            statuses.insert(status);
            if status == 200 {
                continue; // a grant (ambiguous named by client_id): not a refusal
            }
            assert!(
                status != 429 && status != 500,
                "{} {shape:?}: {body}",
                case.label
            );
            assert!(body["error_description"].is_string(), "{body}");
            assert_discloses_nothing(&env, case.label, shape, &body, &sent);
        }
    }
    // Request errors and the HTTP surface's refusals too.
    for form in [
        vec![("client_id", MAIN_APP)],
        vec![("grant_type", "password"), ("client_id", MAIN_APP)],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", MAIN_APP),
        ],
    ] {
        let (status, body) = env.gw.post_token("contoso", &form).await;
        assert_eq!(status, 400, "{body}");
        let sent = form.iter().map(|(_, v)| *v).collect::<Vec<_>>().join("\n");
        assert_discloses_nothing(
            &env,
            "request error",
            Shape::ClientCredentials,
            &body,
            &sent,
        );
    }
    assert!(
        statuses.contains(&503),
        "the key-source cases answer 503: {statuses:?}"
    );

    // Every refusal kind was produced (so the loop above covered it) ...
    let records = env.gw.audit_records();
    let reasons: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    for reason in [
        "unknown_tenant",
        "unknown_resource",
        "unknown_client",
        "issuer_mismatch",
        "audience_mismatch",
        "subject_mismatch",
        "condition_failed",
        "ambiguous_identity",
        "identity_disabled",
        "not_assigned",
        "roles_not_assigned",
        "name_template_failed",
        "claim_mapping_failed",
        "untrusted_issuer",
        "token_malformed",
        "bad_signature",
        "token_expired",
        "token_lifetime_too_long",
        "token_too_old",
        "token_wrong_type",
        "issuer_keys_unavailable",
        "invalid_request",
    ] {
        assert!(
            reasons.contains(reason),
            "{reason} not produced: {reasons:?}"
        );
    }
    // ... and the audit trail kept the detail the responses left out.
    let details: String = records
        .iter()
        .filter_map(|r| r["detail"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for detail in [
        "zz-cred-exact-secret",
        "api://zz-aud-main-secret",
        "credential 'zz-cred-cond-secret' is false",
        "could not be evaluated",
        "zz-app-disabled-secret",
        "zz-app-unassigned-secret",
        "zz_mapped_claim_secret",
        "managed identity name could not be computed:",
        "maximum of 4321s",
        "maximum age of 3217s",
        "zz-typ-secret",
        "zz-secret-internal-path",
        "zz-keys-file-secret.json",
    ] {
        assert!(
            details.contains(detail),
            "audit lacks {detail:?}:\n{details}"
        );
    }
}

#[actix_web::test]
async fn an_unreachable_key_source_answers_generically_and_logs_the_detail() {
    let env = setup(false).await;
    let token = env.as_issuer("/closed", env.claims(MAIN_SUB, MAIN_AUD));
    let (status, body) = env
        .gw
        .client_credentials(MAIN_APP, &token, "api://pay/.default")
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    let text = body["error_description"].as_str().unwrap_or_default();
    let trace_id = body["trace_id"].as_str().expect("trace id");
    assert!(
        text.contains("the issuer's signing keys cannot be obtained right now"),
        "{text}"
    );
    assert!(text.contains(&format!("Trace ID: {trace_id}")), "{text}");
    for internal in ["zz-secret-internal-path", "127.0.0.1:", "http"] {
        assert!(!text.contains(internal), "{internal}: {text}");
    }
    // The operator finds the why through the trace id.
    let logged = logs::text();
    let line = logged
        .lines()
        .find(|l| l.contains(trace_id) && l.contains("dependency is unavailable"))
        .unwrap_or_else(|| panic!("no log line for {trace_id}"));
    assert!(line.contains("zz-secret-internal-path"), "{line}");

    let token = env.as_issuer("/file", env.claims(MAIN_SUB, MAIN_AUD));
    let (status, body) = env
        .gw
        .client_credentials(MAIN_APP, &token, "api://pay/.default")
        .await;
    assert_eq!(status, 503, "{body}");
    let text = body["error_description"].as_str().unwrap_or_default();
    assert!(!text.contains("zz-keys-file-secret"), "{text}");
    let trace_id = body["trace_id"].as_str().expect("trace id");
    let logged = logs::text();
    assert!(
        logged
            .lines()
            .any(|l| l.contains(trace_id) && l.contains("zz-keys-file-secret.json")),
        "no log line with the jwksFile path for {trace_id}"
    );
}

#[actix_web::test]
async fn verbose_errors_put_the_detail_back_on_loopback() {
    let env = setup(true).await;
    let token = env.issuer.mint(&env.claims(MAIN_SUB, "api://wrong"));
    let (status, body) = env
        .gw
        .client_credentials(MAIN_APP, &token, "api://pay/.default")
        .await;
    assert_eq!(status, 401, "{body}");
    let text = body["error_description"].as_str().unwrap_or_default();
    assert!(text.contains("zz-cred-exact-secret"), "{text}");
    assert!(text.contains("api://zz-aud-main-secret"), "{text}");
    assert!(text.contains("Trace ID:"), "{text}");
}

#[test]
fn verbose_errors_refuse_to_start_on_a_non_loopback_listener() {
    let bin = env!("CARGO_BIN_EXE_trustbridge");
    let dir = tempfile::tempdir().expect("tempdir");
    let by_flag = Command::new(bin)
        .args(["serve", "--verbose-errors", "--listen", "0.0.0.0:0"])
        .env("TRUSTBRIDGE_DATA_DIR", dir.path())
        .env_remove("TRUSTBRIDGE_VERBOSE_ERRORS")
        .output()
        .expect("run");
    let by_env = Command::new(bin)
        .args(["serve", "--listen", "10.0.0.1:0"])
        .env("TRUSTBRIDGE_DATA_DIR", dir.path())
        .env("TRUSTBRIDGE_VERBOSE_ERRORS", "true")
        .output()
        .expect("run");
    for out in [by_flag, by_env] {
        assert_eq!(out.status.code(), Some(64), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("verbose-errors") && stderr.contains("loopback"),
            "{stderr}"
        );
    }
}

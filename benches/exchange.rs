//! Micro-benchmarks of the exchange core: `cargo bench --bench exchange`.
//!
//! Measured separately and together, all in one process:
//! - `validate`: a subject token (RS256, 2048-bit) checked by `IssuerRegistry::validate` with its
//!   `jwksFile` keys already cached, and by the pure `peek` + `verify`;
//! - `decide`: `exchange::decide` for the bundled-policy shape;
//! - `sign`: `SigningKeys::sign` of an access token (ES256, and RS256 / EdDSA for comparison),
//!   with the sampled self-check after signing (`--verify-issued sample`, the default);
//! - `pipeline`: form parse + validate + decide + claims + sign, as the token handler does;
//! - `reference`: the crypto-bound floor, bare aws-lc-rs RS256 verify + ES256 sign with keys
//!   parsed once, over a message the size of a real signing input;
//! - `scale`: `decide` with 10, 1,000 and 10,000 credentials (with and without `client_id`), the
//!   denial path at the same sizes (`decide` refusing a stranger's token of a trusted issuer plus
//!   the bounded audit explanation, as the token handler runs them; issue 12), and the load time
//!   of a generated 10,000-credential policy directory.
//!
//! The binary counts heap allocations (a counting global allocator around the system one), and
//! the summary prints allocations per call of each step and of the whole pipeline, with the
//! audit event the handler builds for a grant (issue 13).
//!
//! After criterion's report a summary table is printed from a separate timing loop (median of
//! batches), with the ratio reference / pipeline: the share of the crypto-bound rate the core
//! reaches. Set `BENCH_QUICK=1` to shorten every measurement (a smoke run).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};
use criterion::Criterion;
use serde_json::{Map, Value, json};
use trustbridge::clock::{Clock, ManualClock};
use trustbridge::exchange::{self, ExchangeRequest, Limits, Situation, explain};
use trustbridge::issuers::jwks::parse_jwks;
use trustbridge::issuers::{FetchSettings, IssuerRegistry, validate};
use trustbridge::jose::SigningAlgorithm;
use trustbridge::policy::PolicySet;
use trustbridge::tokens::keys::PrivateKey;
use trustbridge::tokens::{AccessTokenClaims, SigningKeys, StoredKey};

// === counting allocator ===

/// The system allocator, counting allocations (and reallocations) so the summary can report
/// allocations per exchange.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations per call of `f` (after one warm-up call), on this thread's work only when
/// nothing else runs (the summary runs alone).
fn allocations_per_call<R>(mut f: impl FnMut() -> R) -> f64 {
    black_box(f());
    const CALLS: u64 = 200;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..CALLS {
        black_box(f());
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / CALLS as f64
}

const NOW: u64 = 1_900_000_000;
const ISS: &str = "https://issuer.bench.invalid";
const SUBJECT: &str = "repo:contoso/infra:ref:refs/heads/main";

/// Everything one exchange needs, built once.
struct Fixture {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    clock: Arc<ManualClock>,
    policies: PolicySet,
    registry: IssuerRegistry,
    keyset: trustbridge::issuers::jwks::KeySet,
    issuer: Arc<trustbridge::policy::model::Issuer>,
    signing: SigningKeys,
    token: String,
    body: String,
    /// Whether the credential is bound to the request (see [`Fixture::with_controls`]).
    controls: bool,
}

fn subject_claims(sub: &str, issuer: &str) -> Map<String, Value> {
    let Value::Object(claims) = json!({
        "iss": issuer,
        "sub": sub,
        "aud": "api://trustbridge",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 600,
        "jti": "7c1d2d0e-5b8f-4b0e-9a53-3f1f6f1d2c11",
        "repository": "contoso/infra",
        "repository_owner": "contoso",
        "repository_owner_id": "1234567",
        "ref": "refs/heads/main",
        "workflow": "deploy",
        "run_id": "9876543210",
    }) else {
        unreachable!()
    };
    claims
}

impl Fixture {
    fn new(signing_alg: SigningAlgorithm) -> Self {
        Self::with_controls(signing_alg, false)
    }

    /// With `controls`, the credential is also bound to the request (issue 15): an
    /// `allowedNetworks` list and a CEL condition on `request.ip` and `request.time`, and every
    /// request carries a client address inside them.
    fn with_controls(signing_alg: SigningAlgorithm, controls: bool) -> Self {
        let controls_yaml = if controls {
            "    allowedNetworks: [10.0.0.0/8, 198.51.100.0/24, 2001:db8::/32]\n    \
             condition: >-\n      \
             cidr('198.51.100.0/24').containsIP(request.ip) &&\n      \
             request.time > timestamp('2020-01-01T00:00:00Z')\n"
        } else {
            ""
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let source = PrivateKey::generate(SigningAlgorithm::RS256).expect("issuer key");
        std::fs::write(
            dir.path().join("issuer.jwks.json"),
            json!({ "keys": [source.public_jwk()] }).to_string(),
        )
        .expect("jwks");
        std::fs::write(
            dir.path().join("policies.yaml"),
            format!(
                r#"kind: Issuer
name: bench
issuer: {ISS}
jwksFile: issuer.jwks.json
algorithms: [RS256]
---
kind: Tenant
name: contoso
---
kind: Application
name: payments-api
identifierUris: [api://payments]
appRoles:
  - value: Payments.Read
  - value: Payments.Write
---
kind: Application
name: deploy-bot
appId: 6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f
federatedCredentials:
  - name: infra-main
    issuer: bench
    audiences: [api://trustbridge]
{controls_yaml}    subject: {SUBJECT}
    claimMappings:
      repository: claims.repository
    maxTokenLifetime: 15m
---
kind: ServicePrincipal
application: deploy-bot
tenant: contoso
appRoleAssignments:
  - resource: api://payments
    roles: [Payments.Read, Payments.Write]
"#
            ),
        )
        .expect("policies");
        let policies = trustbridge::policy::load_dir(dir.path()).expect("policies load");
        let clock = Arc::new(ManualClock::at_unix(NOW));
        let registry = IssuerRegistry::new(
            &policies,
            FetchSettings::default(),
            clock.clone(),
            trustbridge::demo::jwks_path(dir.path()),
        );
        let token = source
            .sign_jwt("JWT", &subject_claims(SUBJECT, ISS))
            .expect("subject token");
        let keyset = parse_jwks(
            json!({ "keys": [source.public_jwk()] })
                .to_string()
                .as_bytes(),
        )
        .expect("jwks parses");
        let issuer = policies.issuer("bench").expect("issuer").clone();
        let signing = SigningKeys::from_keys(
            vec![StoredKey::in_memory(
                PrivateKey::generate(signing_alg).expect("signing key"),
                0,
                0,
            )],
            clock.clone(),
        )
        .expect("signing keys");
        let body = format!(
            "grant_type=client_credentials&client_id=deploy-bot\
             &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
             &client_assertion={token}&scope=api%3A%2F%2Fpayments%2F.default"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let fixture = Self {
            _dir: dir,
            rt,
            clock,
            policies,
            registry,
            keyset,
            issuer,
            signing,
            token,
            body,
            controls,
        };
        // Warm the key cache: every later validation finds the keys in memory.
        fixture.validate();
        fixture
    }

    fn validate(&self) -> trustbridge::issuers::ValidatedToken {
        self.rt
            .block_on(self.registry.validate(&self.token))
            .expect("token validates")
    }

    fn validate_pure(&self) -> trustbridge::issuers::ValidatedToken {
        let mut peeked = validate::peek(&self.token).expect("peek");
        validate::verify(&mut peeked, &self.issuer, &self.keyset, self.clock.now()).expect("verify")
    }

    fn request(&self) -> ExchangeRequest {
        let mut request =
            ExchangeRequest::parse("contoso", self.body.as_bytes()).expect("request parses");
        if self.controls {
            // What the handler fills in from the trusted proxy's X-Forwarded-For.
            request.context.client_ip = Some([198, 51, 100, 7].into());
        }
        request
    }

    fn claims<'g>(&self, grant: &'g exchange::Grant) -> AccessTokenClaims<'g> {
        AccessTokenClaims::for_grant(
            grant,
            format!("http://127.0.0.1:8080/{}/v2.0", grant.tenant),
            self.clock.now(),
            uuid::Uuid::new_v4().to_string(),
        )
    }

    /// What the token handler does between reading the body and writing the response.
    fn pipeline(&self) -> String {
        let request = self.request();
        let validated = self
            .rt
            .block_on(self.registry.validate(&request.subject_token))
            .expect("validates");
        let grant = exchange::decide(
            &validated,
            &request,
            &self.policies,
            &Limits::default(),
            self.clock.now(),
        )
        .expect("granted");
        let token = self.signing.sign(&self.claims(&grant)).expect("signed");
        json!({
            "token_type": "Bearer",
            "expires_in": grant.lifetime.as_secs(),
            "ext_expires_in": grant.lifetime.as_secs(),
            "access_token": token,
        })
        .to_string()
    }
}

/// Bare aws-lc-rs: one RS256 verify and one ES256 sign, keys parsed once.
struct Reference {
    rsa_public: ParsedPublicKey,
    ec: EcdsaKeyPair,
    message: Vec<u8>,
    rsa_signature: Vec<u8>,
    rng: SystemRandom,
}

impl Reference {
    fn new(message_len: usize) -> Self {
        let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa");
        let message = vec![b'a'; message_len];
        let rng = SystemRandom::new();
        let mut rsa_signature = vec![0; rsa.public_modulus_len()];
        rsa.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut rsa_signature)
            .expect("rsa sign");
        let components = RsaPublicKeyComponents::<Vec<u8>>::from(rsa.public_key());
        let rsa_public = RsaPublicKeyComponents {
            n: &components.n,
            e: &components.e,
        }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .expect("parsed rsa public key");
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec");
        Self {
            rsa_public,
            ec,
            message,
            rsa_signature,
            rng,
        }
    }

    fn verify_rs256(&self) {
        self.rsa_public
            .verify_sig(&self.message, &self.rsa_signature)
            .expect("verifies");
    }

    fn sign_es256(&self) -> aws_lc_rs::signature::Signature {
        self.ec.sign(&self.rng, &self.message).expect("signs")
    }
}

// === policy scale ===

/// Issuers the generated credentials are spread over.
const SCALE_ISSUERS: usize = 4;

/// Writes a policy directory with `n` applications, each with one federated credential and a
/// service principal in tenant `contoso`. Credential `i` trusts issuer `i % 4`; nine in ten
/// have an exact `subject` (`repo:org-i/app:ref:refs/heads/main`), every tenth a
/// `subjectPattern` (`repo:org-i/*:ref:refs/heads/main`) with a CEL condition on the owner id.
fn write_scale_dir(dir: &Path, n: usize) {
    let mut issuers = String::new();
    for k in 0..SCALE_ISSUERS {
        issuers.push_str(&format!(
            "kind: Issuer\nname: ci-{k}\nissuer: https://ci-{k}.bench.invalid\n\
             jwksFile: ci.jwks.json\nalgorithms: [RS256]\n---\n"
        ));
    }
    issuers.push_str(
        "kind: Tenant\nname: contoso\n---\nkind: Application\nname: payments-api\n\
         identifierUris: [api://payments]\nappRoles:\n  - value: Payments.Read\n",
    );
    std::fs::write(dir.join("00-base.yaml"), issuers).expect("write base");
    std::fs::write(dir.join("ci.jwks.json"), r#"{"keys":[]}"#).expect("write jwks");
    for (file, chunk) in (0..n).collect::<Vec<_>>().chunks(100).enumerate() {
        let mut text = String::new();
        for &i in chunk {
            let subject = if i % 10 == 9 {
                format!(
                    "    subjectPattern: \"repo:org-{i}/*:ref:refs/heads/main\"\n    \
                     condition: claims.repository_owner_id == \"{i}\"\n"
                )
            } else {
                format!("    subject: \"{}\"\n", scale_subject(i))
            };
            text.push_str(&format!(
                "kind: Application\nname: app-{i}\nfederatedCredentials:\n  - name: cred-{i}\n    \
                 issuer: ci-{}\n    audiences: [api://trustbridge]\n{subject}---\n\
                 kind: ServicePrincipal\napplication: app-{i}\ntenant: contoso\n\
                 appRoleAssignments:\n  - resource: api://payments\n    roles: [Payments.Read]\n---\n",
                i % SCALE_ISSUERS
            ));
        }
        std::fs::write(dir.join(format!("apps-{file:03}.yaml")), text).expect("write apps");
    }
}

fn scale_subject(i: usize) -> String {
    format!("repo:org-{i}/app:ref:refs/heads/main")
}

/// A validated token for credential `i` of a generated directory (no signature involved:
/// `decide` takes validated tokens).
fn scale_token(i: usize) -> trustbridge::issuers::ValidatedToken {
    let iss = format!("https://ci-{}.bench.invalid", i % SCALE_ISSUERS);
    let sub = scale_subject(i);
    let mut claims = subject_claims(&sub, &iss);
    claims.insert("repository_owner_id".into(), json!(i.to_string()));
    trustbridge::issuers::ValidatedToken {
        issuer_name: format!("ci-{}", i % SCALE_ISSUERS),
        iss,
        sub: Some(sub),
        aud: vec!["api://trustbridge".into()],
        exp: NOW + 600,
        iat: Some(NOW),
        nbf: Some(NOW),
        jti: None,
        alg: SigningAlgorithm::RS256,
        kid: None,
        claims,
    }
}

struct Scale {
    n: usize,
    policies: PolicySet,
    token: trustbridge::issuers::ValidatedToken,
    /// A token of the same issuer whose subject no credential names (anyone's token).
    stranger: trustbridge::issuers::ValidatedToken,
    with_client: ExchangeRequest,
    without_client: ExchangeRequest,
}

impl Scale {
    fn new(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        write_scale_dir(dir.path(), n);
        let policies = trustbridge::policy::load_dir(dir.path()).expect("generated policies load");
        // A credential in the middle of the set, with an exact subject.
        let i = (n / 2) / 10 * 10;
        let with_client = ExchangeRequest::parse(
            "contoso",
            format!(
                "grant_type=urn:ietf:params:oauth:grant-type:token-exchange\
                 &subject_token=x.y.z&subject_token_type=urn:ietf:params:oauth:token-type:jwt\
                 &client_id=app-{i}&resource=api%3A%2F%2Fpayments"
            )
            .as_bytes(),
        )
        .expect("request");
        let without_client = ExchangeRequest::parse(
            "contoso",
            b"grant_type=urn:ietf:params:oauth:grant-type:token-exchange\
              &subject_token=x.y.z&subject_token_type=urn:ietf:params:oauth:token-type:jwt\
              &resource=api%3A%2F%2Fpayments",
        )
        .expect("request");
        let mut stranger = scale_token(i);
        stranger.sub = Some("repo:stranger/x:ref:refs/heads/main".into());
        let scale = Self {
            n,
            policies,
            token: scale_token(i),
            stranger,
            with_client,
            without_client,
        };
        scale.decide(true);
        scale.decide(false);
        assert!(!scale.deny().is_empty());
        scale
    }

    /// The denial path of the token handler, without client_id: `decide` refuses, then the
    /// audit record's bounded explanation is built and shortened.
    fn deny(&self) -> Vec<String> {
        let denial = exchange::decide(
            &self.stranger,
            &self.without_client,
            &self.policies,
            &Limits::default(),
            UNIX_EPOCH + Duration::from_secs(NOW),
        )
        .expect_err("denied");
        black_box(denial);
        let query = explain::Query {
            tenant: "contoso",
            client_id: None,
            target: Some(&self.without_client.target),
            request: Situation::UNKNOWN,
        };
        explain::for_denial(&self.stranger, query, &self.policies).summary(3)
    }

    fn decide(&self, client_id: bool) -> exchange::Grant<'_> {
        let req = if client_id {
            &self.with_client
        } else {
            &self.without_client
        };
        exchange::decide(
            &self.token,
            req,
            &self.policies,
            &Limits::default(),
            UNIX_EPOCH + Duration::from_secs(NOW),
        )
        .expect("granted")
    }
}

fn load_generated(n: usize) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    write_scale_dir(dir.path(), n);
    let started = Instant::now();
    let set = trustbridge::policy::load_dir(dir.path()).expect("loads");
    let took = started.elapsed();
    black_box(set);
    took
}

// === criterion ===

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some()
}

fn benches(c: &mut Criterion, es256: &Fixture, reference: &Reference, scales: &[Scale]) {
    let mut group = c.benchmark_group("core");
    group.bench_function("validate/registry_warm_cache", |b| {
        b.iter(|| es256.validate())
    });
    group.bench_function("validate/pure_peek_verify", |b| {
        b.iter(|| es256.validate_pure())
    });
    let validated = es256.validate();
    let request = es256.request();
    group.bench_function("decide", |b| {
        b.iter(|| {
            exchange::decide(
                &validated,
                &request,
                &es256.policies,
                &Limits::default(),
                es256.clock.now(),
            )
            .expect("granted")
        })
    });
    let grant = exchange::decide(
        &validated,
        &request,
        &es256.policies,
        &Limits::default(),
        es256.clock.now(),
    )
    .expect("granted");
    let claims = es256.claims(&grant);
    group.bench_function("sign/ES256_with_self_check", |b| {
        b.iter(|| es256.signing.sign(&claims).expect("signs"))
    });
    group.bench_function("pipeline/ES256", |b| b.iter(|| es256.pipeline()));
    group.bench_function("reference/RS256_verify", |b| {
        b.iter(|| reference.verify_rs256())
    });
    group.bench_function("reference/ES256_sign", |b| {
        b.iter(|| reference.sign_es256())
    });
    group.bench_function("reference/RS256_verify+ES256_sign", |b| {
        b.iter(|| {
            reference.verify_rs256();
            reference.sign_es256()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("scale");
    for scale in scales {
        group.bench_function(format!("decide/client_id/{}", scale.n), |b| {
            b.iter(|| scale.decide(true))
        });
        group.bench_function(format!("decide/no_client_id/{}", scale.n), |b| {
            b.iter(|| scale.decide(false))
        });
        group.bench_function(format!("deny/no_client_id/{}", scale.n), |b| {
            b.iter(|| scale.deny())
        });
    }
    group.finish();
}

// === summary ===

/// Median time per call of `f`, over batches of about 20 ms each.
fn time_per_call<R>(mut f: impl FnMut() -> R) -> Duration {
    let batches = if quick() { 5 } else { 25 };
    let mut per_batch = 1u32;
    loop {
        let started = Instant::now();
        for _ in 0..per_batch {
            black_box(f());
        }
        if started.elapsed() >= Duration::from_millis(20) || per_batch >= 1 << 20 {
            break;
        }
        per_batch *= 2;
    }
    let mut samples: Vec<Duration> = (0..batches)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..per_batch {
                black_box(f());
            }
            started.elapsed() / per_batch
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn micros(d: Duration) -> String {
    format!("{:>9.2} µs", d.as_secs_f64() * 1e6)
}

fn summary(es256: &Fixture, reference: &Reference, scales: &[Scale]) {
    let validated = es256.validate();
    let request = es256.request();
    let decide = || {
        exchange::decide(
            &validated,
            &request,
            &es256.policies,
            &Limits::default(),
            es256.clock.now(),
        )
        .expect("granted")
    };
    let granted = decide();
    let claims = es256.claims(&granted);
    let rs256 = Fixture::new(SigningAlgorithm::RS256);
    let eddsa = Fixture::new(SigningAlgorithm::EdDSA);
    let controls = Fixture::with_controls(SigningAlgorithm::ES256, true);
    let controls_request = controls.request();
    let controls_validated = controls.validate();
    let decide_controls = || {
        exchange::decide(
            &controls_validated,
            &controls_request,
            &controls.policies,
            &Limits::default(),
            controls.clock.now(),
        )
        .expect("granted with request controls")
    };

    let granted = decide();
    let audit_event = || {
        let grant = &granted;
        let record = trustbridge::exchange::audit::AuditRecord {
            tenant: "contoso",
            grant: "client_credentials",
            ..Default::default()
        };
        serde_json::to_vec(&record.granted(grant, "jti")).expect("serialises")
    };
    let allocations = [
        (
            "validate (IssuerRegistry, warm cache)",
            allocations_per_call(|| es256.validate()),
        ),
        ("decide", allocations_per_call(decide)),
        (
            "decide with request controls",
            allocations_per_call(decide_controls),
        ),
        (
            "sign ES256 (SigningKeys::sign)",
            allocations_per_call(|| es256.signing.sign(&claims).expect("signs")),
        ),
        (
            "audit event of a grant (built + serialised)",
            allocations_per_call(audit_event),
        ),
        (
            "pipeline ES256 (parse+validate+decide+sign+JSON)",
            allocations_per_call(|| es256.pipeline()),
        ),
    ];
    let rows: Vec<(&str, Duration)> = vec![
        (
            "validate (IssuerRegistry, warm cache)",
            time_per_call(|| es256.validate()),
        ),
        (
            "validate (pure peek + verify)",
            time_per_call(|| es256.validate_pure()),
        ),
        ("decide", time_per_call(decide)),
        (
            "decide with request controls (networks + request CEL)",
            time_per_call(decide_controls),
        ),
        (
            "sign ES256 (SigningKeys::sign, sampled self-check)",
            time_per_call(|| es256.signing.sign(&claims).expect("signs")),
        ),
        (
            "  of which signing alone (PrivateKey::sign_jwt ES256)",
            time_per_call(|| {
                es256
                    .signing
                    .with_current_key(|key| {
                        key.sign_jwt(trustbridge::tokens::ACCESS_TOKEN_TYP, &claims)
                            .expect("signs")
                    })
                    .expect("an active key")
            }),
        ),
        (
            "sign EdDSA (SigningKeys::sign, sampled self-check)",
            time_per_call(|| eddsa.signing.sign(&claims).expect("signs")),
        ),
        (
            "sign RS256 (SigningKeys::sign, sampled self-check)",
            time_per_call(|| rs256.signing.sign(&claims).expect("signs")),
        ),
        (
            "pipeline ES256 (parse+validate+decide+sign)",
            time_per_call(|| es256.pipeline()),
        ),
        (
            "pipeline ES256 with request controls",
            time_per_call(|| controls.pipeline()),
        ),
        ("pipeline EdDSA", time_per_call(|| eddsa.pipeline())),
        ("pipeline RS256", time_per_call(|| rs256.pipeline())),
        (
            "reference: aws-lc RS256 verify",
            time_per_call(|| reference.verify_rs256()),
        ),
        (
            "reference: aws-lc ES256 sign",
            time_per_call(|| reference.sign_es256()),
        ),
    ];
    let reference_pair = time_per_call(|| {
        reference.verify_rs256();
        reference.sign_es256()
    });
    let pipeline = rows
        .iter()
        .find(|(name, _)| name.starts_with("pipeline ES256"))
        .map_or(Duration::MAX, |(_, took)| *took);

    println!();
    println!("== exchange core summary (median per call, one core) ==");
    for (name, took) in &rows {
        println!("{name:<55} {}", micros(*took));
    }
    println!(
        "{:<55} {}",
        "reference: RS256 verify + ES256 sign",
        micros(reference_pair)
    );
    let per_sec = |d: Duration| 1.0 / d.as_secs_f64();
    println!(
        "crypto-bound reference: {:.0} exchanges/s per core; pipeline ES256: {:.0}/s per core",
        per_sec(reference_pair),
        per_sec(pipeline)
    );
    println!(
        "ratio pipeline / reference (rate): {:.2}",
        reference_pair.as_secs_f64() / pipeline.as_secs_f64()
    );
    let with_controls = rows
        .iter()
        .find(|(name, _)| name.starts_with("pipeline ES256 with request controls"))
        .map_or(Duration::MAX, |(_, took)| *took);
    println!(
        "request controls (issue 15): the pipeline costs {:+.1}% with them",
        100.0 * (with_controls.as_secs_f64() / pipeline.as_secs_f64() - 1.0)
    );

    println!();
    println!("== heap allocations per call ==");
    for (name, n) in allocations {
        println!("{name:<55} {n:>9.1}");
    }

    println!();
    println!("== policy scale: exchange::decide per credential count ==");
    let mut base = None;
    for scale in scales {
        let with = time_per_call(|| scale.decide(true));
        let without = time_per_call(|| scale.decide(false));
        let (base_with, base_without) = *base.get_or_insert((with, without));
        println!(
            "{:>6} credentials: with client_id {} ({:.2}x of 10), without client_id {} ({:.2}x of 10)",
            scale.n,
            micros(with),
            with.as_secs_f64() / base_with.as_secs_f64(),
            micros(without),
            without.as_secs_f64() / base_without.as_secs_f64(),
        );
        // The whole exchange (the ES256 pipeline above) with this set instead of the 10-credential
        // one: only the decision's share changes.
        let exchange = |decision: Duration, base: Duration| {
            (pipeline.as_secs_f64() + decision.as_secs_f64() - base.as_secs_f64())
                / pipeline.as_secs_f64()
        };
        println!(
            "{:>6} credentials: exchange time {:.3}x of 10 with client_id, {:.3}x without",
            scale.n,
            exchange(with, base_with),
            exchange(without, base_without),
        );
        let deny = time_per_call(|| scale.deny());
        println!(
            "{:>6} credentials: denial (decide + audit explanation) {} = {:.2}x the grant without client_id",
            scale.n,
            micros(deny),
            deny.as_secs_f64() / without.as_secs_f64(),
        );
    }
    let loads: Vec<Duration> = (0..if quick() { 1 } else { 3 })
        .map(|_| load_generated(10_000))
        .collect();
    let best = loads.iter().min().copied().unwrap_or_default();
    println!(
        "load of a 10,000-credential policy directory (policy::load_dir, best of {}): {:.1} ms",
        loads.len(),
        best.as_secs_f64() * 1e3
    );
}

fn main() {
    let es256 = Fixture::new(SigningAlgorithm::ES256);
    let signing_input_len = es256
        .token
        .rsplit_once('.')
        .map_or(0, |(input, _)| input.len());
    let reference = Reference::new(signing_input_len);
    let scales: Vec<Scale> = [10, 1_000, 10_000].into_iter().map(Scale::new).collect();

    let mut criterion = Criterion::default().configure_from_args();
    if quick() {
        criterion = criterion
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(500))
            .sample_size(10);
    }
    benches(&mut criterion, &es256, &reference, &scales);
    criterion.final_summary();
    // `cargo test --benches` runs this binary with `--test` (criterion then runs each bench
    // once); the summary is for real runs only.
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        summary(&es256, &reference, &scales);
    }
}

//! OpenTelemetry traces over OTLP/HTTP (issue #16 item 10), end to end: the real binary
//! exports to a local OTLP/HTTP receiver (protobuf, decoded with `opentelemetry-proto`), and
//! the spans it sends are checked for names, parent/child links, the caller's `traceparent`
//! trace id (also the response's and the audit record's `trace_id`) and the absence of any
//! token. A collector that cannot be reached costs no exchange.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;
use trustbridge::clock::{Clock, ManualClock, SystemClock};

use crate::support::TestIssuer;
use crate::support::gateway::{JWT_BEARER, encode, fixture_root};

const BIN: &str = env!("CARGO_BIN_EXE_trustbridge");
const MAIN: &str = "repo:contoso/infra:ref:refs/heads/main";

/// What the receiver got: every request body as sent.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Vec<u8>>>>);

impl Received {
    fn bodies(&self) -> Vec<Vec<u8>> {
        self.0.lock().expect("received").clone()
    }

    fn spans(&self) -> Vec<(Vec<KeyValue>, Span)> {
        let mut out = Vec::new();
        for body in self.bodies() {
            let req = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
            for rs in req.resource_spans {
                let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        out.push((resource.clone(), span));
                    }
                }
            }
        }
        out
    }
}

/// A local OTLP/HTTP receiver: `POST /v1/traces` (protobuf) is kept and answered with an
/// empty `ExportTraceServiceResponse`; anything else is 404.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let data = web::Data::new(received.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .route(
                "/v1/traces",
                web::post().to(|got: web::Data<Received>, body: web::Bytes| async move {
                    got.0.lock().expect("received").push(body.to_vec());
                    HttpResponse::Ok()
                        .content_type("application/x-protobuf")
                        .body(Vec::<u8>::new())
                }),
            )
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    (url, received)
}

struct Gateway {
    child: Child,
    port: u16,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Starts the binary on `root`'s policies with `args` and `env`, stderr to `root/stderr`.
async fn start(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Gateway {
    let port = free_port();
    let stderr = std::fs::File::create(root.join("stderr")).expect("stderr file");
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--policies")
        .arg(root.join("policies"))
        .arg("--data-dir")
        .arg(root.join("data"))
        .arg("--audit-log")
        .arg(root.join("audit.log"))
        .args(["--workers", "1", "--admin-listen", "off"])
        .args(["--shutdown-delay", "0s", "--shutdown-grace", "10s"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(stderr);
    for var in [
        "TRUSTBRIDGE_REDIS_URL",
        "TRUSTBRIDGE_OTLP_ENDPOINT",
        "TRUSTBRIDGE_LOG",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_SAMPLER",
        "OTEL_SDK_DISABLED",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let child = cmd.spawn().expect("spawn trustbridge");
    let gw = Gateway { child, port };
    let client = crate::support::http();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            return gw;
        }
        assert!(Instant::now() < deadline, "gateway did not become ready");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM, then waits (generously) for exit 0: the trace pipeline flushes on the way out.
async fn stop(gw: &mut Gateway) {
    let status = Command::new("kill")
        .args(["-TERM", &gw.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = gw.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "gateway did not exit");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
}

/// A Grant A request; `(status, body)`.
async fn exchange(
    port: u16,
    tenant: &str,
    assertion: &str,
    traceparent: Option<&str>,
) -> (u16, Value) {
    let body = encode(&[
        ("grant_type", "client_credentials"),
        ("client_id", "deploy-bot"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
        ("scope", "api://payments/.default"),
    ]);
    let mut req = crate::support::http()
        .post(format!(
            "http://127.0.0.1:{port}/{tenant}/oauth2/v2.0/token"
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let resp = req.send().await.expect("token request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// Every string anywhere in an attribute value (arrays and maps included).
fn strings(value: &AnyValue, out: &mut Vec<String>) {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => out.push(s.clone()),
        Some(any_value::Value::ArrayValue(a)) => a.values.iter().for_each(|v| strings(v, out)),
        Some(any_value::Value::KvlistValue(kv)) => kv
            .values
            .iter()
            .filter_map(|kv| kv.value.as_ref())
            .for_each(|v| strings(v, out)),
        Some(any_value::Value::BytesValue(b)) => out.push(String::from_utf8_lossy(b).into()),
        _ => {}
    }
}

fn audit_records(root: &Path) -> Vec<Value> {
    std::fs::read_to_string(root.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[actix_web::test]
async fn exchanges_export_linked_spans_under_the_callers_trace_and_no_token() {
    // The binary reads the system clock: mint tokens for the real now.
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let issuer = TestIssuer::start(clock).await;
    let (otlp, received) = receiver().await;
    let root = fixture_root("scale", &[("ISSUER", &issuer.url)]);
    // A long batch delay: nothing is exported before shutdown, whose flush must send it all.
    let mut gw = start(
        root.path(),
        &["--otlp-endpoint", &otlp, "--rate-limit-identity", "600/m"],
        &[("OTEL_BSP_SCHEDULE_DELAY", "600000")],
    )
    .await;

    // Warm the key cache, then rotate the issuer's key: the traced exchange meets an unknown
    // `kid`, so its validation fetches the keys again (a `key_fetch` inside `validate`).
    let warm = issuer.mint(&issuer.claims(MAIN, "api://trustbridge"));
    let (status, body) = exchange(gw.port, "contoso", &warm, None).await;
    assert_eq!(status, 200, "{body}");
    issuer.rotate_keys();

    let granted_trace = "0af7651916cd43dd8448eb211c80319c";
    let granted_parent = "b7ad6b7169203331";
    let subject_token = issuer.mint(&issuer.claims(MAIN, "api://trustbridge"));
    let (status, granted) = exchange(
        gw.port,
        "contoso",
        &subject_token,
        Some(&format!("00-{granted_trace}-{granted_parent}-01")),
    )
    .await;
    assert_eq!(status, 200, "{granted}");
    let access_token = granted["access_token"].as_str().expect("token").to_string();

    let denied_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let denied_parent = "00f067aa0ba902b7";
    let stranger =
        issuer.mint(&issuer.claims("repo:evil/x:ref:refs/heads/main", "api://trustbridge"));
    let (status, denied) = exchange(
        gw.port,
        "contoso",
        &stranger,
        Some(&format!("00-{denied_trace}-{denied_parent}-01")),
    )
    .await;
    assert!(matches!(status, 400 | 401), "{status} {denied}");
    assert_eq!(
        denied["trace_id"], denied_trace,
        "the response names the caller's trace"
    );

    // A hostile tenant (a JWT in the path) with an invalid traceparent: a new trace, no error.
    let (status, unknown) = exchange(
        gw.port,
        &access_token,
        &subject_token,
        Some("00-ffffffffffffffffffffffffffffffff-0000000000000000-01"),
    )
    .await;
    assert!(matches!(status, 400 | 401), "{status} {unknown}");
    let unknown_trace = unknown["trace_id"].as_str().expect("trace id").to_string();
    assert_eq!(
        unknown_trace.len(),
        32,
        "the exchange span's own trace id: {unknown_trace}"
    );
    assert!(unknown_trace.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(
        unknown_trace,
        "f".repeat(32),
        "the invalid traceparent is ignored"
    );

    let audit = audit_records(root.path());
    let granted: Vec<_> = audit
        .iter()
        .filter(|r| r["decision.outcome"] == "granted")
        .collect();
    assert_eq!(granted.len(), 2, "{audit:?}");
    assert_eq!(granted[1]["trace_id"], granted_trace, "the caller's trace");
    let warm_trace = granted[0]["trace_id"].as_str().expect("trace id");
    assert_eq!(
        warm_trace.len(),
        32,
        "the exchange span's own trace: {warm_trace}"
    );
    assert!(
        audit
            .iter()
            .any(|r| r["decision.outcome"] == "denied" && r["trace_id"] == denied_trace),
        "{audit:?}"
    );

    assert!(
        received.bodies().is_empty(),
        "batched, not exported per request"
    );
    stop(&mut gw).await;
    let spans = received.spans();
    assert!(!spans.is_empty(), "shutdown flushed the queued spans");

    // --- the granted exchange: one trace under the caller's span ---
    let in_trace = |trace: &str| -> Vec<&Span> {
        spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| hex(&s.trace_id) == trace)
            .collect()
    };
    let named = |set: &[&Span], name: &str| -> Vec<Span> {
        set.iter()
            .filter(|s| s.name == name)
            .map(|s| (*s).clone())
            .collect()
    };
    let trace = in_trace(granted_trace);
    let exchange_spans = named(&trace, "exchange");
    assert_eq!(exchange_spans.len(), 1, "{trace:#?}");
    let root_span = &exchange_spans[0];
    assert_eq!(
        hex(&root_span.parent_span_id),
        granted_parent,
        "child of the caller's span"
    );
    assert_eq!(attr(&root_span.attributes, "outcome"), Some("granted"));
    assert_eq!(
        attr(&root_span.attributes, "grant_type"),
        Some("client_credentials")
    );
    assert_eq!(attr(&root_span.attributes, "tenant"), Some("contoso"));
    assert_eq!(attr(&root_span.attributes, "issuer"), Some("test"));
    assert_eq!(attr(&root_span.attributes, "client_id"), Some("deploy-bot"));
    for child in ["validate", "decide", "sign"] {
        let found = named(&trace, child);
        assert_eq!(found.len(), 1, "one {child} span: {trace:#?}");
        assert_eq!(
            found[0].parent_span_id, root_span.span_id,
            "{child} under exchange"
        );
    }
    let state = named(&trace, "state");
    assert!(!state.is_empty(), "the rate limit's state call: {trace:#?}");
    assert!(state.iter().all(|s| s.parent_span_id == root_span.span_id));
    assert!(
        state
            .iter()
            .any(|s| attr(&s.attributes, "op") == Some("rate_limit_identity"))
    );
    assert!(
        state
            .iter()
            .all(|s| attr(&s.attributes, "op") != Some("rate_limit_issuer")),
        "no span for the issuer limit, which is unset and calls no backend"
    );
    // The unknown `kid` made this exchange fetch the issuer's keys, inside its validation.
    let fetch = named(&trace, "key_fetch");
    assert!(!fetch.is_empty(), "a key fetch: {trace:#?}");
    let validate = &named(&trace, "validate")[0];
    assert!(fetch.iter().all(|s| s.parent_span_id == validate.span_id));
    assert_eq!(attr(&fetch[0].attributes, "issuer"), Some("test"));

    // --- the denied exchange ---
    let trace = in_trace(denied_trace);
    let exchange_spans = named(&trace, "exchange");
    assert_eq!(exchange_spans.len(), 1, "{trace:#?}");
    let denied_span = &exchange_spans[0];
    assert_eq!(hex(&denied_span.parent_span_id), denied_parent);
    assert_eq!(attr(&denied_span.attributes, "outcome"), Some("denied"));
    let reason = attr(&denied_span.attributes, "reason").expect("a refusal reason label");
    assert!(!reason.is_empty());
    assert_eq!(
        attr(&denied_span.attributes, "client_id"),
        None,
        "only granted ids"
    );
    assert!(
        named(&trace, "sign").is_empty(),
        "nothing signed on a denial"
    );
    assert_eq!(named(&trace, "decide").len(), 1);

    // --- the unknown tenant: its own trace, nothing from the path recorded ---
    let trace = in_trace(&unknown_trace);
    let exchange_spans = named(&trace, "exchange");
    assert_eq!(exchange_spans.len(), 1, "{trace:#?}");
    assert!(exchange_spans[0].parent_span_id.is_empty(), "a new root");
    assert_eq!(attr(&exchange_spans[0].attributes, "tenant"), None);

    // --- the resource names the service ---
    let resource = &spans[0].0;
    assert_eq!(attr(resource, "service.name"), Some("trustbridge"));

    // --- no token, and nothing JWT-shaped, anywhere in what was exported ---
    let jwt = regex::Regex::new(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
        .expect("regex");
    let mut values = Vec::new();
    for (resource, span) in &spans {
        let attrs = resource
            .iter()
            .chain(&span.attributes)
            .chain(span.events.iter().flat_map(|e| &e.attributes))
            .chain(span.links.iter().flat_map(|l| &l.attributes));
        for kv in attrs {
            values.push(kv.key.clone());
            if let Some(v) = &kv.value {
                strings(v, &mut values);
            }
        }
        values.push(span.name.clone());
        values.push(span.trace_state.clone());
        values.extend(span.events.iter().map(|e| e.name.clone()));
        values.extend(span.status.iter().map(|s| s.message.clone()));
    }
    for value in &values {
        for secret in [&warm, &subject_token, &stranger, &access_token] {
            assert!(!value.contains(secret.as_str()), "a token in {value}");
        }
        assert!(!jwt.is_match(value), "JWT-looking value exported: {value}");
    }
    // And the raw bytes, whatever field they would have hidden in.
    let raw_jwt =
        regex::bytes::Regex::new(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
            .expect("regex");
    for body in received.bodies() {
        assert!(!raw_jwt.is_match(&body), "JWT-looking bytes in an export");
    }
}

#[actix_web::test]
async fn an_unreachable_collector_fails_no_exchange_and_is_logged_once() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let issuer = TestIssuer::start(clock).await;
    let root = fixture_root("scale", &[("ISSUER", &issuer.url)]);
    // Nothing listens there; the standard variable turns traces on. Export every 50 ms.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut gw = start(
        root.path(),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", dead.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    )
    .await;
    for i in 0..6 {
        let token = issuer.mint(&issuer.claims(MAIN, "api://trustbridge"));
        let (status, body) = exchange(gw.port, "contoso", &token, None).await;
        assert_eq!(status, 200, "exchange {i}: {body}");
        // Spread over several export rounds, each of which fails.
        actix_web::rt::time::sleep(Duration::from_millis(150)).await;
    }
    let (status, denied) = exchange(gw.port, "contoso", "not-a-jwt", None).await;
    assert!(matches!(status, 400 | 401), "{status} {denied}");
    // Without a traceparent the trace id is the exchange span's: 32 hex digits.
    let trace_id = denied["trace_id"].as_str().expect("trace id");
    assert_eq!(trace_id.len(), 32, "{trace_id}");
    stop(&mut gw).await;
    let stderr = std::fs::read_to_string(root.path().join("stderr")).expect("stderr");
    let failures = stderr.matches("trace export failed").count();
    assert_eq!(failures, 1, "logged once a minute at most:\n{stderr}");
}

#[actix_web::test]
async fn without_traces_a_valid_traceparent_still_names_the_trace() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let issuer = TestIssuer::start(clock).await;
    let root = fixture_root("scale", &[("ISSUER", &issuer.url)]);
    let mut gw = start(root.path(), &[], &[]).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let (status, body) = exchange(
        gw.port,
        "contoso",
        "not-a-jwt",
        Some(&format!("00-{trace}-b7ad6b7169203331-01")),
    )
    .await;
    assert!(matches!(status, 400 | 401), "{status} {body}");
    assert_eq!(body["trace_id"], trace);
    let (_, body) = exchange(gw.port, "contoso", "not-a-jwt", Some("00-bogus")).await;
    let id = body["trace_id"].as_str().expect("trace id");
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "a random UUID as before: {id}"
    );
    stop(&mut gw).await;
}

#[test]
fn a_bad_otlp_endpoint_exits_64_naming_the_setting_without_echoing_it() {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--otlp-endpoint",
            "http://user:hunter2@collector:4318",
            "--admin-listen",
            "off",
        ])
        .env_remove("TRUSTBRIDGE_OTLP_ENDPOINT")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("otlp-endpoint"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

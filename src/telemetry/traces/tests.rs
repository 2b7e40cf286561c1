use std::collections::HashMap;
use std::time::{Duration, Instant};

use opentelemetry::trace::TraceContextExt;

use super::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

struct Case {
    name: &'static str,
    header: Option<String>,
    want: bool,
}

#[test]
fn trace_parent_accepts_only_valid_version_00_headers() {
    let case = |name, header: &str, want| Case {
        name,
        header: Some(header.to_string()),
        want,
    };
    let cases = [
        case("sampled", &format!("00-{TRACE}-{PARENT}-01"), true),
        case("not sampled", &format!("00-{TRACE}-{PARENT}-00"), true),
        case("other flags", &format!("00-{TRACE}-{PARENT}-ff"), true),
        Case {
            name: "absent",
            header: None,
            want: false,
        },
        case("empty", "", false),
        case("version 01", &format!("01-{TRACE}-{PARENT}-01"), false),
        case("version ff", &format!("ff-{TRACE}-{PARENT}-01"), false),
        case("short version", &format!("0-{TRACE}-{PARENT}-01"), false),
        case(
            "short trace id",
            &format!("00-{}-{PARENT}-01", &TRACE[1..]),
            false,
        ),
        case("long trace id", &format!("00-{TRACE}0-{PARENT}-01"), false),
        case(
            "short parent id",
            &format!("00-{TRACE}-{}-01", &PARENT[1..]),
            false,
        ),
        case(
            "zero trace id",
            &format!("00-{}-{PARENT}-01", "0".repeat(32)),
            false,
        ),
        case(
            "zero parent id",
            &format!("00-{TRACE}-{}-01", "0".repeat(16)),
            false,
        ),
        case(
            "uppercase",
            &format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
            false,
        ),
        case(
            "not hex",
            &format!("00-{}-{PARENT}-01", "g".repeat(32)),
            false,
        ),
        case("short flags", &format!("00-{TRACE}-{PARENT}-1"), false),
        case(
            "trailing part",
            &format!("00-{TRACE}-{PARENT}-01-xx"),
            false,
        ),
        case("trailing dash", &format!("00-{TRACE}-{PARENT}-01-"), false),
        case("spaces", &format!(" 00-{TRACE}-{PARENT}-01"), false),
        case("multibyte", &format!("00-{TRACE}-{PARENT}-é"), false),
        case("missing parts", &format!("00-{TRACE}"), false),
    ];
    for c in cases {
        let got = trace_parent(c.header.as_deref());
        assert_eq!(got.is_some(), c.want, "{}", c.name);
        if let Some(tp) = got {
            assert_eq!(tp.trace_id, TRACE, "{}", c.name);
            let span = tp.context.span();
            let sc = span.span_context();
            assert!(sc.is_remote(), "{}", c.name);
            assert_eq!(sc.trace_id().to_string(), TRACE, "{}", c.name);
            assert_eq!(sc.span_id().to_string(), PARENT, "{}", c.name);
        }
    }
}

#[test]
fn trace_parent_keeps_the_sampled_flag() {
    let sampled = trace_parent(Some(&format!("00-{TRACE}-{PARENT}-01"))).expect("valid");
    assert!(sampled.context.span().span_context().is_sampled());
    let unsampled = trace_parent(Some(&format!("00-{TRACE}-{PARENT}-00"))).expect("valid");
    assert!(!unsampled.context.span().span_context().is_sampled());
}

#[test]
fn endpoint_prefers_the_setting_then_the_standard_variables() {
    let env = |vars: &[(&str, &str)]| -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let read = |vars: HashMap<String, String>| move |name: &str| vars.get(name).cloned();

    let none = read(env(&[]));
    assert_eq!(endpoint(None, &none), None, "off by default");
    assert_eq!(
        endpoint(Some("http://127.0.0.1:4318"), &none),
        Some(Endpoint::Configured(
            "http://127.0.0.1:4318/v1/traces".into()
        ))
    );
    assert_eq!(
        endpoint(Some("http://collector:4318/otlp/"), &none),
        Some(Endpoint::Configured(
            "http://collector:4318/otlp/v1/traces".into()
        ))
    );
    let base = read(env(&[(ENV_ENDPOINT, "http://c:4318")]));
    assert_eq!(endpoint(None, &base), Some(Endpoint::Environment));
    let traces = read(env(&[(ENV_TRACES_ENDPOINT, "http://c:4318/v1/traces")]));
    assert_eq!(endpoint(None, &traces), Some(Endpoint::Environment));
    assert_eq!(
        endpoint(Some("http://flag:1"), &traces),
        Some(Endpoint::Configured("http://flag:1/v1/traces".into())),
        "the setting wins"
    );
    let blank = read(env(&[(ENV_ENDPOINT, " "), (ENV_TRACES_ENDPOINT, "")]));
    assert_eq!(endpoint(None, &blank), None, "empty variables are unset");
}

#[test]
fn check_endpoint_refuses_what_is_not_a_plain_http_url_without_echoing_it() {
    assert_eq!(
        check_endpoint("https://collector:4318/").as_deref(),
        Ok("https://collector:4318")
    );
    for bad in [
        "collector:4318",
        "ftp://collector",
        "http://user:hunter2@collector:4318",
        "http://collector:4318/?x=1",
        "http://collector:4318/#f",
        "",
    ] {
        let err = check_endpoint(bad).expect_err(bad);
        assert!(!err.contains("hunter2"), "{err}");
    }
}

#[test]
fn export_failures_are_logged_at_most_once_a_minute_with_a_count() {
    let logged = LoggedExporter::new(());
    let t0 = Instant::now();
    assert_eq!(
        logged.note_failure(t0),
        Some(1),
        "the first failure is logged"
    );
    assert_eq!(logged.note_failure(t0 + Duration::from_secs(1)), None);
    assert_eq!(logged.note_failure(t0 + Duration::from_secs(59)), None);
    assert_eq!(
        logged.note_failure(t0 + Duration::from_secs(60)),
        Some(3),
        "then a line per minute counting the quiet ones"
    );
    assert_eq!(logged.note_failure(t0 + Duration::from_secs(61)), None);
}

#[test]
fn without_an_opentelemetry_layer_spans_adopt_no_trace_id() {
    let span = tracing::info_span!(target: TARGET, "exchange");
    let parent = trace_parent(Some(&format!("00-{TRACE}-{PARENT}-01")));
    assert_eq!(adopt(&span, parent.as_ref()), None);
}

//! The metrics platform teams expect (issue #16): build info, the process metrics, the active
//! policy hash and when it was installed, and label values in one case style (snake_case).

use std::sync::Arc;
use std::time::Duration;

use trustbridge::clock::{Clock, ManualClock};
use trustbridge::policy::store::ReloadOutcome;

use crate::support::gateway::TestGateway;
use crate::support::issuer::TestIssuer;

/// The value of the sample line starting with `series` (name and labels, exactly).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[actix_web::test]
async fn build_process_and_policy_metrics() {
    let clock = Arc::new(ManualClock::at_unix(1_767_225_600));
    let issuer = TestIssuer::start(clock.clone()).await;
    let gw = TestGateway::start("basic", &[("ISSUER", &issuer.url)], clock.clone()).await;
    let (_, metrics) = gw.get_text("/metrics").await;

    let build = format!(
        r#"trustbridge_build_info{{commit="{}",version="{}"}}"#,
        env!("TRUSTBRIDGE_COMMIT"),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&metrics, &build), Some(1.0), "{metrics}");
    if cfg!(target_os = "linux") {
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(
                metrics.lines().any(|l| l.starts_with(name)),
                "{name} missing:\n{metrics}"
            );
        }
    }

    let first = gw.gateway.policies().content_hash().to_string();
    let info = |hash: &str| format!(r#"trustbridge_policy_info{{hash="{hash}"}}"#);
    assert_eq!(sample(&metrics, &info(&first)), Some(1.0), "{metrics}");
    let installed = "trustbridge_policy_last_reload_success_timestamp_seconds";
    assert_eq!(sample(&metrics, installed), Some(clock.unix() as f64));

    // snake_case label values, as the metric names.
    for kind in ["service_principal", "managed_identity", "issuer"] {
        let series = format!(r#"trustbridge_policy_objects{{kind="{kind}"}}"#);
        assert!(sample(&metrics, &series).is_some(), "{series}:\n{metrics}");
    }
    assert!(!metrics.contains("servicePrincipal") && !metrics.contains("managedIdentity"));

    // An applied reload moves both: one hash series, the new one, at the reload's time.
    clock.advance(Duration::from_secs(90));
    let store = trustbridge::app::policy_store(&gw.gateway);
    let file = gw.policies_dir().join("policies.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, format!("{text}\n---\nkind: Tenant\nname: added\n")).expect("write");
    assert_eq!(store.poll(), None);
    let Some(ReloadOutcome::Applied { hash }) = store.poll() else {
        panic!("edit not applied")
    };
    let (_, metrics) = gw.get_text("/metrics").await;
    assert_eq!(sample(&metrics, &info(&hash)), Some(1.0), "{metrics}");
    assert_eq!(
        sample(&metrics, &info(&first)),
        None,
        "old hash still exported"
    );
    assert_eq!(sample(&metrics, installed), Some(clock.unix() as f64));

    // A rejected reload changes neither.
    clock.advance(Duration::from_secs(90));
    std::fs::write(&file, format!("{text}\n---\nkind: Tenant\nnme: typo\n")).expect("write");
    let _ = store.poll();
    let _ = store.poll();
    let (_, after) = gw.get_text("/metrics").await;
    assert_eq!(sample(&after, &info(&hash)), Some(1.0));
    assert_eq!(sample(&after, installed), Some((clock.unix() - 90) as f64));
}

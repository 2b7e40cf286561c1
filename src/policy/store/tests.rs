use std::sync::Mutex;

use super::*;

const GOOD: &str = "kind: Tenant\nname: contoso\n";
const GOOD2: &str = "kind: Tenant\nname: contoso\n---\nkind: Tenant\nname: fabrikam\n";
const BROKEN: &str = "kind: Tenant\nnme: typo\n";

/// A sink that records what it was given.
#[derive(Default)]
struct Recorder {
    current: Mutex<Option<PolicySet>>,
    installs: Mutex<usize>,
    refuse: Mutex<bool>,
}

impl PolicySink for Recorder {
    fn current_hash(&self) -> String {
        self.current
            .lock()
            .unwrap()
            .as_ref()
            .map(|s| s.content_hash().to_string())
            .unwrap_or_default()
    }
    fn install(&self, set: PolicySet) -> Result<(), String> {
        if *self.refuse.lock().unwrap() {
            return Err("the sink refused it".into());
        }
        *self.current.lock().unwrap() = Some(set);
        *self.installs.lock().unwrap() += 1;
        Ok(())
    }
}

impl Recorder {
    fn tenants(&self) -> Vec<String> {
        self.current
            .lock()
            .unwrap()
            .as_ref()
            .map(|s| s.tenants().map(|t| t.name.clone()).collect())
            .unwrap_or_default()
    }
}

fn setup(text: &str) -> (tempfile::TempDir, Arc<Recorder>, PolicyStore, Registry) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.yaml"), text).unwrap();
    let sink = Arc::new(Recorder::default());
    let registry = Registry::new();
    let metrics = ReloadMetrics::register(&registry).unwrap();
    let store = PolicyStore::new(dir.path().to_path_buf(), sink.clone(), metrics);
    (dir, sink, store, registry)
}

fn count(registry: &Registry, outcome: &str) -> u64 {
    registry
        .gather()
        .iter()
        .find(|f| f.name() == names::POLICY_RELOADS_TOTAL)
        .and_then(|f| {
            f.get_metric().iter().find(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "outcome" && l.value() == outcome)
            })
        })
        .map(|m| m.get_counter().get_value() as u64)
        .unwrap_or(0)
}

#[test]
fn reload_applies_a_valid_edit_and_reports_unchanged_sets() {
    let (dir, sink, store, registry) = setup(GOOD);
    let first = store.reload(Trigger::Manual);
    assert!(matches!(first, ReloadOutcome::Applied { .. }), "{first:?}");
    assert_eq!(sink.tenants(), ["contoso"]);
    assert_eq!(store.reload(Trigger::Manual).label(), "unchanged");
    std::fs::write(dir.path().join("p.yaml"), GOOD2).unwrap();
    let ReloadOutcome::Applied { hash } = store.reload(Trigger::Manual) else {
        panic!("edit not applied")
    };
    assert_eq!(hash, sink.current_hash());
    assert_eq!(sink.tenants(), ["contoso", "fabrikam"]);
    assert_eq!(count(&registry, "applied"), 2);
    assert_eq!(count(&registry, "unchanged"), 1);
    assert_eq!(count(&registry, "rejected"), 0);
}

#[test]
fn a_broken_edit_is_refused_and_the_last_good_set_stays() {
    let (dir, sink, store, registry) = setup(GOOD);
    store.reload(Trigger::Manual);
    let good_hash = sink.current_hash();
    std::fs::write(dir.path().join("p.yaml"), BROKEN).unwrap();
    let ReloadOutcome::Rejected { problems } = store.reload(Trigger::Manual) else {
        panic!("broken set accepted")
    };
    assert!(
        problems.iter().any(|p| p.contains("p.yaml:2:1 nme: ")),
        "{problems:?}"
    );
    assert_eq!(sink.current_hash(), good_hash);
    assert_eq!(*sink.installs.lock().unwrap(), 1);
    assert_eq!(count(&registry, "rejected"), 1);

    // A sink that cannot serve a valid set refuses it the same way.
    std::fs::write(dir.path().join("p.yaml"), GOOD2).unwrap();
    *sink.refuse.lock().unwrap() = true;
    let outcome = store.reload(Trigger::Manual);
    assert_eq!(
        outcome,
        ReloadOutcome::Rejected {
            problems: vec!["the sink refused it".into()]
        }
    );
    assert_eq!(sink.current_hash(), good_hash);
}

#[test]
fn polling_debounces_and_reports_a_broken_edit_once() {
    let (dir, sink, store, registry) = setup(GOOD);
    // The first change (from nothing loaded) needs two equal polls.
    assert_eq!(store.poll(), None);
    assert!(matches!(store.poll(), Some(ReloadOutcome::Applied { .. })));
    assert_eq!(store.poll(), None, "nothing changed");

    std::fs::write(dir.path().join("p.yaml"), GOOD2).unwrap();
    assert_eq!(store.poll(), None, "changed: wait one poll");
    // Changed again before it settled: the wait starts over.
    std::fs::write(dir.path().join("q.yaml"), "kind: Tenant\nname: third\n").unwrap();
    assert_eq!(store.poll(), None);
    assert!(matches!(store.poll(), Some(ReloadOutcome::Applied { .. })));
    assert_eq!(sink.tenants(), ["contoso", "fabrikam", "third"]);

    std::fs::write(dir.path().join("q.yaml"), BROKEN).unwrap();
    assert_eq!(store.poll(), None);
    assert!(matches!(store.poll(), Some(ReloadOutcome::Rejected { .. })));
    for _ in 0..3 {
        assert_eq!(store.poll(), None, "a broken edit is reported once");
    }
    assert_eq!(count(&registry, "rejected"), 1);
    assert_eq!(sink.tenants(), ["contoso", "fabrikam", "third"]);

    // Test case files are not policies: editing one changes nothing.
    std::fs::write(dir.path().join("q.yaml"), "kind: Tenant\nname: third\n").unwrap();
    store.poll();
    store.poll();
    let applied = count(&registry, "applied");
    std::fs::write(dir.path().join("p.test.yaml"), "cases: []\n").unwrap();
    assert_eq!(store.poll(), None);
    assert_eq!(store.poll(), None);
    assert_eq!(count(&registry, "applied"), applied);
}

#[cfg(unix)]
#[test]
fn a_symlink_swap_like_a_configmap_update_is_seen() {
    use std::os::unix::fs::symlink;
    let root = tempfile::tempdir().unwrap();
    let v1 = root.path().join("v1");
    let v2 = root.path().join("v2");
    std::fs::create_dir(&v1).unwrap();
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(v1.join("p.yaml"), GOOD).unwrap();
    std::fs::write(v2.join("p.yaml"), GOOD2).unwrap();
    let dir = root.path().join("policies");
    std::fs::create_dir(&dir).unwrap();
    symlink(root.path().join("data").join("p.yaml"), dir.join("p.yaml")).unwrap();
    symlink(&v1, root.path().join("data")).unwrap();

    let sink = Arc::new(Recorder::default());
    let metrics = ReloadMetrics::register(&Registry::new()).unwrap();
    let store = PolicyStore::new(dir.clone(), sink.clone(), metrics);
    store.poll();
    store.poll();
    assert_eq!(sink.tenants(), ["contoso"]);
    // Re-point `data` atomically, as the kubelet does with `..data`.
    symlink(&v2, root.path().join("data.new")).unwrap();
    std::fs::rename(root.path().join("data.new"), root.path().join("data")).unwrap();
    store.poll();
    assert!(matches!(store.poll(), Some(ReloadOutcome::Applied { .. })));
    assert_eq!(sink.tenants(), ["contoso", "fabrikam"]);
}

#[tokio::test(start_paused = true)]
async fn the_watch_loop_polls_on_its_interval() {
    let (dir, sink, store, _registry) = setup(GOOD);
    let store = Arc::new(store);
    let task = tokio::spawn(store.clone().watch(Duration::from_secs(1), None));
    // Paused time advances only when every task is idle; the blocking poll is real work, so
    // let the loop reach each tick before advancing.
    for _ in 0..100 {
        if !sink.tenants().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(sink.tenants(), ["contoso"]);
    std::fs::write(dir.path().join("p.yaml"), GOOD2).unwrap();
    for _ in 0..100 {
        if sink.tenants().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(sink.tenants(), ["contoso", "fabrikam"]);
    task.abort();
}

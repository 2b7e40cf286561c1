use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;
use crate::jose::SigningAlgorithm;
use crate::tokens::SigningKeys;
use std::path::PathBuf;

const T0: u64 = 1_767_225_600;

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn run_keys(cmd: KeysCommand, clock: &ManualClock) -> Run {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(&cmd, clock, &mut out, &mut err);
    Run {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

fn common(dir: &Path) -> KeysArgs {
    KeysArgs {
        settings: ServeArgs {
            keys: Some(dir.to_path_buf()),
            data_dir: Some(PathBuf::from("unused")),
            max_token_lifetime: Some("1h".into()),
            ..ServeArgs::default()
        },
    }
}

fn rotate_cmd(dir: &Path, lead: &str) -> KeysCommand {
    KeysCommand::Rotate(RotateArgs {
        common: common(dir),
        publication_lead: lead.into(),
        algorithm: Some("ES256".into()),
    })
}

fn prune_cmd(dir: &Path, dry_run: bool) -> KeysCommand {
    KeysCommand::Prune(PruneArgs {
        common: common(dir),
        dry_run,
    })
}

/// The state column of each row, in print order.
fn states(table: &str) -> Vec<String> {
    table
        .lines()
        .skip_while(|l| !l.starts_with("STATE"))
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

#[test]
fn rotate_list_prune_walk_a_key_through_its_life() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let clock = ManualClock::at_unix(T0);

    // On an empty directory, rotate first makes the key that signs now.
    let r = run_keys(rotate_cmd(&keys, "1h"), &clock);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.contains("signs from 2026-01-01T01:00:00Z"),
        "{}",
        r.out
    );
    assert_eq!(states(&r.out), ["current", "next"]);

    // What `keys list` shows is what `serve` publishes.
    let serving = SigningKeys::load_or_create(
        &keys,
        SigningAlgorithm::ES256,
        Arc::new(ManualClock::at_unix(T0)),
    )
    .unwrap();
    let listed = run_keys(KeysCommand::List(common(&keys)), &clock);
    assert_eq!(listed.code, 0);
    for kid in serving.kids() {
        assert!(listed.out.contains(&kid), "{}", listed.out);
    }
    assert!(listed.out.contains("ES256"));
    assert!(
        listed.out.contains("2026-01-01T01:00:00Z"),
        "retire time of the first key"
    );
    assert!(
        listed.out.contains("2026-01-01T02:00:00Z"),
        "its end of life"
    );

    clock.advance(Duration::from_secs(3600));
    let listed = run_keys(KeysCommand::List(common(&keys)), &clock);
    assert_eq!(states(&listed.out), ["current", "retiring"]);

    let r = run_keys(prune_cmd(&keys, false), &clock);
    assert_eq!(
        (r.code, r.out.trim()),
        (
            0,
            format!("nothing to prune in {}", keys.display()).as_str()
        )
    );

    clock.advance(Duration::from_secs(3601));
    let dry = run_keys(prune_cmd(&keys, true), &clock);
    assert!(dry.out.starts_with("would remove"), "{}", dry.out);
    assert_eq!(
        std::fs::read_dir(&keys).unwrap().count(),
        4,
        "dry run deletes nothing"
    );
    let r = run_keys(prune_cmd(&keys, false), &clock);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.starts_with("removed"), "{}", r.out);
    assert_eq!(
        std::fs::read_dir(&keys).unwrap().count(),
        2,
        "pem and sidecar gone"
    );
    let listed = run_keys(KeysCommand::List(common(&keys)), &clock);
    assert_eq!(states(&listed.out), ["current"]);
}

#[test]
fn a_second_rotation_queues_behind_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_unix(T0);
    assert_eq!(run_keys(rotate_cmd(dir.path(), "1h"), &clock).code, 0);
    let r = run_keys(rotate_cmd(dir.path(), "0s"), &clock);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.contains("signs from 2026-01-01T01:00:00Z"),
        "{}",
        r.out
    );
}

#[test]
fn bad_flags_and_unusable_directories_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_unix(T0);
    let r = run_keys(rotate_cmd(dir.path(), "soon"), &clock);
    assert_eq!(r.code, 64);
    assert!(r.err.contains("--publication-lead"), "{}", r.err);

    let mut bad_alg = RotateArgs {
        common: common(dir.path()),
        publication_lead: "1h".into(),
        algorithm: Some("HS256".into()),
    };
    let r = run_keys(KeysCommand::Rotate(bad_alg), &clock);
    assert_eq!(r.code, 64);
    assert!(r.err.contains("HS256"), "{}", r.err);

    bad_alg = RotateArgs {
        common: KeysArgs {
            settings: ServeArgs {
                max_token_lifetime: Some("3d".into()),
                ..common(dir.path()).settings
            },
        },
        publication_lead: "1h".into(),
        algorithm: None,
    };
    assert_eq!(run_keys(KeysCommand::Rotate(bad_alg), &clock).code, 64);

    let missing = dir.path().join("missing");
    let r = run_keys(KeysCommand::List(common(&missing)), &clock);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("missing"), "{}", r.err);

    std::fs::write(dir.path().join("broken.pem"), "not a key").unwrap();
    let r = run_keys(prune_cmd(dir.path(), false), &clock);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("broken.pem"), "{}", r.err);
    assert!(!r.err.contains("not a key"), "file contents never printed");
}

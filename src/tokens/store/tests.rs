use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use super::*;
use crate::clock::{Clock, ManualClock};

const T0: u64 = 1_700_000_000;
const RSA3072: &str = include_str!("../../../tests/fixtures/keys/pem/rsa3072.pem");
const P256: &str = include_str!("../../../tests/fixtures/keys/pem/p256.pem");

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn bad_key(err: KeyStoreError) -> (String, String) {
    match err {
        KeyStoreError::BadKey { path, reason } => (path, reason),
        other => panic!("expected BadKey, got {other}"),
    }
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn creates_a_private_dir_and_key_then_reuses_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("state/keys");
    let keys = load_or_create(&dir, SigningAlgorithm::ES256, at(T0)).unwrap();
    assert_eq!(keys.len(), 1);
    let kid = keys[0].key.kid().to_owned();
    assert_eq!(mode(&dir), 0o700);
    let pem = dir.join(format!("{kid}.pem"));
    assert_eq!(keys[0].file.as_deref(), Some(pem.as_path()));
    assert_eq!(mode(&pem), 0o600);
    assert_eq!(
        file_names(&dir),
        [format!("{kid}.json"), format!("{kid}.pem")],
        "no temporary files left behind"
    );
    let sidecar: Value =
        serde_json::from_slice(&fs::read(dir.join(format!("{kid}.json"))).unwrap()).unwrap();
    assert_eq!(
        sidecar,
        json!({"alg": "ES256", "createdAt": T0, "activatesAt": T0})
    );

    let again = load_or_create(&dir, SigningAlgorithm::RS256, at(T0 + 10)).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].key.kid(), kid);
    assert_eq!(again[0].key.alg(), SigningAlgorithm::ES256);
    assert_eq!((again[0].created_at, again[0].activates_at), (T0, T0));
}

#[test]
fn a_directory_without_pem_files_gets_a_key() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("README"), "keys go here").unwrap();
    fs::write(dir.path().join(".hidden.pem"), "ignored").unwrap();
    let keys = load_or_create(dir.path(), SigningAlgorithm::EdDSA, at(T0)).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key.alg(), SigningAlgorithm::EdDSA);
}

#[test]
fn operator_keys_without_sidecar_are_active_since_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    write_private(dir.path().join("signing.pem"), RSA3072);
    let keys = load_or_create(dir.path(), SigningAlgorithm::ES256, at(T0)).unwrap();
    assert_eq!(keys.len(), 1, "no key generated beside the operator's");
    assert_eq!(keys[0].key.alg(), SigningAlgorithm::RS256);
    assert_eq!((keys[0].created_at, keys[0].activates_at), (0, 0));
}

#[test]
fn kubernetes_secret_mounts_load_through_symlinks() {
    // A Secret volume: `..data -> ..2024_01_01`, `tls.pem -> ..data/tls.pem`.
    let dir = tempfile::tempdir().unwrap();
    let versioned = dir.path().join("..2024_01_01");
    fs::create_dir(&versioned).unwrap();
    write_private(versioned.join("tls.pem"), P256);
    std::os::unix::fs::symlink("..2024_01_01", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/tls.pem", dir.path().join("tls.pem")).unwrap();
    let keys = load_or_create(dir.path(), SigningAlgorithm::EdDSA, at(T0)).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key.alg(), SigningAlgorithm::ES256);
}

#[test]
fn unusable_key_files_are_refused_naming_the_file_only() {
    let body = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "corrupt.pem",
            format!(
                "{}\n{body}\n{}\n",
                crate::tokens::keys::PKCS8_PEM_BEGIN,
                crate::tokens::keys::PKCS8_PEM_END
            )
            .into_bytes(),
            "not an RSA",
        ),
        (
            "text.pem",
            b"hello".to_vec(),
            "no PKCS#8 \"PRIVATE KEY\" PEM block",
        ),
        ("binary.pem", vec![0xff, 0xfe, 0x00], "not a PEM text file"),
        ("huge.pem", vec![b'A'; 70 * 1024], "larger than"),
    ];
    for (name, contents, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(name), &contents).unwrap();
        fs::set_permissions(dir.path().join(name), fs::Permissions::from_mode(0o600)).unwrap();
        let err = load_or_create(dir.path(), SigningAlgorithm::ES256, at(T0)).unwrap_err();
        let message = err.to_string();
        let (path, reason) = bad_key(err);
        assert!(path.ends_with(name), "{name}: {path}");
        assert!(reason.contains(want), "{name}: {reason}");
        assert!(!message.contains(body), "{name}: key material in {message}");
        assert!(message.len() < 300, "{name}: {message}");
    }
}

#[test]
fn bad_sidecars_are_refused() {
    let cases = [
        ("not json", "{", "key.json", "not a key sidecar"),
        (
            "missing field",
            r#"{"alg":"ES256","createdAt":1}"#,
            "key.json",
            "activatesAt",
        ),
        (
            "unsupported alg",
            r#"{"alg":"HS256","createdAt":1,"activatesAt":1}"#,
            "key.json",
            "unsupported algorithm \"HS256\"",
        ),
        (
            "alg does not suit the key",
            r#"{"alg":"ES384","createdAt":1,"activatesAt":1}"#,
            "key.pem",
            "a P-256 key cannot sign ES384",
        ),
    ];
    for (name, sidecar, file, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        write_private(dir.path().join("key.pem"), P256);
        write_private(dir.path().join("key.json"), sidecar);
        let (path, reason) =
            bad_key(load_or_create(dir.path(), SigningAlgorithm::ES256, at(T0)).unwrap_err());
        assert!(path.ends_with(file), "{name}: {path}");
        assert!(reason.contains(want), "{name}: {reason}");
    }
}

#[test]
fn the_same_key_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_private(dir.path().join("a.pem"), P256);
    write_private(dir.path().join("b.pem"), P256);
    let (path, reason) =
        bad_key(load_or_create(dir.path(), SigningAlgorithm::ES256, at(T0)).unwrap_err());
    assert!(path.ends_with("b.pem"), "{path}");
    assert!(
        reason.contains("same key as") && reason.contains("a.pem"),
        "{reason}"
    );
}

#[test]
fn a_directory_of_future_keys_has_no_active_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(SigningAlgorithm::EdDSA).unwrap();
    write_key(dir.path(), &key, T0, T0 + 60).unwrap();
    let err = load_or_create(dir.path(), SigningAlgorithm::EdDSA, at(T0)).unwrap_err();
    assert!(matches!(err, KeyStoreError::NoActiveKey(_)), "{err}");
    assert!(load_or_create(dir.path(), SigningAlgorithm::EdDSA, at(T0 + 60)).is_ok());
}

#[test]
fn an_unwritable_location_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    let err = load_or_create(&file.join("keys"), SigningAlgorithm::EdDSA, at(T0)).unwrap_err();
    assert!(matches!(err, KeyStoreError::Io { .. }), "{err}");
}

/// Collects formatted tracing output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes a key file the way operators must: readable by its owner only.
fn write_private(path: impl AsRef<std::path::Path>, contents: &str) {
    fs::write(path.as_ref(), contents).unwrap();
    fs::set_permissions(path.as_ref(), fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn key_files_others_can_access_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("key.pem");
    write_private(&pem, P256);
    fs::set_permissions(&pem, fs::Permissions::from_mode(0o600)).unwrap();
    load_or_create(dir.path(), SigningAlgorithm::ES256, at(T0)).expect("0600 loads");
    fs::set_permissions(&pem, fs::Permissions::from_mode(0o400)).unwrap();
    load_or_create(dir.path(), SigningAlgorithm::ES256, at(T0)).expect("0400 loads");
    for mode in [0o640, 0o660, 0o604, 0o644, 0o666, 0o620] {
        fs::set_permissions(&pem, fs::Permissions::from_mode(mode)).unwrap();
        let err = load_or_create(dir.path(), SigningAlgorithm::ES256, at(T0)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("key.pem") && text.contains("chmod 600"),
            "{mode:o}: {text}"
        );
        assert!(!text.contains("MIG"), "no key material in errors: {text}");
    }
}

#[test]
fn group_read_is_accepted_only_in_a_kubernetes_secret_volume_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("..2024_01_01");
    fs::create_dir(&data).unwrap();
    write_private(data.join("key.pem"), P256);
    fs::set_permissions(data.join("key.pem"), fs::Permissions::from_mode(0o440)).unwrap();
    std::os::unix::fs::symlink("..2024_01_01", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/key.pem", dir.path().join("key.pem")).unwrap();
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let c = captured.clone();
            move || c.clone()
        })
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        load_or_create(dir.path(), SigningAlgorithm::ES256, at(T0)).expect("fsGroup mount loads");
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("WARN") && log.contains("440"), "{log}");
    assert!(!log.contains("MIG"), "no key material in logs: {log}");
    // World access is refused even there.
    fs::set_permissions(data.join("key.pem"), fs::Permissions::from_mode(0o444)).unwrap();
    assert!(load_or_create(dir.path(), SigningAlgorithm::ES256, at(T0)).is_err());
}

#[test]
fn write_atomically_replaces_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_atomically(dir.path(), "x.json", b"one", 0o644).unwrap();
    write_atomically(dir.path(), "x.json", b"two", 0o600).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"two");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(file_names(dir.path()), ["x.json"]);
}

// === KeySet ===

fn ed_key(created_at: u64, activates_at: u64) -> StoredKey {
    StoredKey::in_memory(
        PrivateKey::generate(SigningAlgorithm::EdDSA).unwrap(),
        created_at,
        activates_at,
    )
}

fn kids<'a>(keys: impl IntoIterator<Item = &'a StoredKey>) -> Vec<&'a str> {
    keys.into_iter().map(|k| k.key.kid()).collect()
}

#[test]
fn key_states_follow_the_clock() {
    let keys = vec![ed_key(0, 100), ed_key(0, 300), ed_key(50, 200)];
    let (a, c, b) = (keys[0].key.kid(), keys[1].key.kid(), keys[2].key.kid());
    let clock = ManualClock::at_unix(50);
    assert!(
        KeySet::select(&keys, clock.now()).is_none(),
        "nothing active yet"
    );
    assert!(current_key(&keys, clock.now()).is_none());

    struct Case {
        at: u64,
        current: &'static str,
        next: Vec<&'static str>,
        retiring: Vec<&'static str>,
    }
    let name = |n: &str| match n {
        "a" => a,
        "b" => b,
        _ => c,
    };
    let cases = [
        Case {
            at: 100,
            current: "a",
            next: vec!["b", "c"],
            retiring: vec![],
        },
        Case {
            at: 199,
            current: "a",
            next: vec!["b", "c"],
            retiring: vec![],
        },
        Case {
            at: 200,
            current: "b",
            next: vec!["c"],
            retiring: vec!["a"],
        },
        Case {
            at: 300,
            current: "c",
            next: vec![],
            retiring: vec!["b", "a"],
        },
        Case {
            at: 9_999,
            current: "c",
            next: vec![],
            retiring: vec!["b", "a"],
        },
    ];
    for case in cases {
        clock.set(at(case.at));
        let set = KeySet::select(&keys, clock.now()).expect("a current key");
        assert_eq!(set.current.key.kid(), name(case.current), "at {}", case.at);
        assert_eq!(
            kids(set.next.iter().copied()),
            case.next.iter().map(|n| name(n)).collect::<Vec<_>>(),
            "next at {}",
            case.at
        );
        assert_eq!(
            kids(set.retiring.iter().copied()),
            case.retiring.iter().map(|n| name(n)).collect::<Vec<_>>(),
            "retiring at {}",
            case.at
        );
        assert_eq!(
            current_key(&keys, clock.now()).map(|k| k.key.kid()),
            Some(set.current.key.kid())
        );
        assert_eq!(set.published().count(), 3, "every key stays published");
    }
}

#[test]
fn ties_break_on_creation_then_kid_the_same_way_everywhere() {
    let mut keys = vec![ed_key(10, 100), ed_key(20, 100)];
    let newer = keys[1].key.kid().to_owned();
    assert_eq!(
        KeySet::select(&keys, at(100)).unwrap().current.key.kid(),
        newer
    );
    keys.reverse();
    assert_eq!(
        KeySet::select(&keys, at(100)).unwrap().current.key.kid(),
        newer
    );

    let same = vec![ed_key(10, 100), ed_key(10, 100)];
    let max = kids(&same).into_iter().max().unwrap().to_owned();
    assert_eq!(
        KeySet::select(&same, at(100)).unwrap().current.key.kid(),
        max
    );
}

#[test]
fn at_most_100_keys_are_published_oldest_dropped_first() {
    let keys: Vec<StoredKey> = (0..105).map(|i| ed_key(i, i)).collect();
    let set = KeySet::select(&keys, at(1_000)).unwrap();
    let published: Vec<&str> = kids(set.published());
    assert_eq!(published.len(), MAX_PUBLISHED_KEYS);
    assert_eq!(published[0], keys[104].key.kid());
    assert!(published.contains(&keys[5].key.kid()));
    assert!(!published.contains(&keys[4].key.kid()));
}

#[test]
fn key_directories_others_can_write_to_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("keys");
    load_or_create(&dir, SigningAlgorithm::ES256, at(T0)).expect("0700 loads");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
    load(&dir, at(T0)).expect("group read and search are fine");
    for mode in [0o770, 0o730, 0o777, 0o703, 0o1777] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
        for err in [
            load(&dir, at(T0)).unwrap_err(),
            load_or_create(&dir, SigningAlgorithm::ES256, at(T0)).unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(
                matches!(err, KeyStoreError::UnsafeDirectory { .. }),
                "{mode:o}: {text}"
            );
            assert!(
                text.contains("add a signing key; chmod 700"),
                "{mode:o}: {text}"
            );
        }
    }
}

#[test]
fn sidecars_others_can_access_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let kid = load_or_create(dir.path(), SigningAlgorithm::ES256, at(T0)).unwrap()[0]
        .key
        .kid()
        .to_owned();
    let sidecar = dir.path().join(format!("{kid}.json"));
    for mode in [0o644, 0o664, 0o606, 0o620, 0o640] {
        fs::set_permissions(&sidecar, fs::Permissions::from_mode(mode)).unwrap();
        let (path, reason) = bad_key(load(dir.path(), at(T0)).unwrap_err());
        assert!(path.ends_with(".json"), "{mode:o}: {path}");
        assert!(reason.contains("chmod 600"), "{mode:o}: {reason}");
    }
    fs::set_permissions(&sidecar, fs::Permissions::from_mode(0o600)).unwrap();
    load(dir.path(), at(T0)).expect("0600 sidecar loads");
}

#[test]
fn files_and_directories_of_another_user_are_refused() {
    // The pure rule: this process's user or root, nobody else.
    assert!(check_owner(1000, Some(1000)).is_ok());
    assert!(check_owner(0, Some(1000)).is_ok(), "root-owned is fine");
    let reason = check_owner(1001, Some(1000)).unwrap_err();
    assert!(
        reason.contains("uid 1001") && reason.contains("chown"),
        "{reason}"
    );
    assert!(
        check_owner(1001, None).is_ok(),
        "no uid known: mode checks only"
    );

    // For real, when this test may chown (it runs as root in CI containers).
    let dir = tempfile::tempdir().unwrap();
    let kid = load_or_create(dir.path(), SigningAlgorithm::ES256, at(T0)).unwrap()[0]
        .key
        .kid()
        .to_owned();
    let stranger = Some(54_321);
    let pem = dir.path().join(format!("{kid}.pem"));
    let sidecar = dir.path().join(format!("{kid}.json"));
    if std::os::unix::fs::chown(&pem, stranger, None).is_err() {
        return; // Not root: the pure rule above is what can be tested.
    }
    let (path, reason) = bad_key(load(dir.path(), at(T0)).unwrap_err());
    assert!(
        path.ends_with(".pem") && reason.contains("uid 54321"),
        "{path}: {reason}"
    );
    std::os::unix::fs::chown(&pem, Some(rustix::process::geteuid().as_raw()), None).unwrap();
    std::os::unix::fs::chown(&sidecar, stranger, None).unwrap();
    let (path, reason) = bad_key(load(dir.path(), at(T0)).unwrap_err());
    assert!(
        path.ends_with(".json") && reason.contains("uid 54321"),
        "{path}: {reason}"
    );
    std::os::unix::fs::chown(&sidecar, Some(rustix::process::geteuid().as_raw()), None).unwrap();
    load(dir.path(), at(T0)).expect("owned again");
    std::os::unix::fs::chown(dir.path(), stranger, None).unwrap();
    let err = load(dir.path(), at(T0)).unwrap_err();
    assert!(
        matches!(err, KeyStoreError::UnsafeDirectory { .. })
            && err.to_string().contains("uid 54321"),
        "{err}"
    );
}

#[test]
fn a_planted_key_in_a_sticky_secret_volume_is_refused() {
    // A Kubernetes Secret volume root is root-owned, sticky and world-writable: tolerated,
    // because every file in it must still be ours or root's.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("..2024_01_01");
    fs::create_dir(&data).unwrap();
    write_private(data.join("key.pem"), P256);
    std::os::unix::fs::symlink("..2024_01_01", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/key.pem", dir.path().join("key.pem")).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    if rustix::process::geteuid().as_raw() != 0 {
        // Only root owns a root-owned directory: without it, the volume root is refused.
        assert!(load(dir.path(), at(T0)).is_err());
        return;
    }
    load(dir.path(), at(T0)).expect("sticky root-owned secret volume loads");
    let planted = dir.path().join("planted.pem");
    fs::write(&planted, RSA3072).unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&planted, Some(54_321), None).unwrap();
    let (path, reason) = bad_key(load(dir.path(), at(T0)).unwrap_err());
    assert!(
        path.ends_with("planted.pem") && reason.contains("uid 54321"),
        "{path}: {reason}"
    );
    // Without the sticky bit the same directory is refused outright.
    fs::remove_file(&planted).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    assert!(matches!(
        load(dir.path(), at(T0)).unwrap_err(),
        KeyStoreError::UnsafeDirectory { .. }
    ));
}

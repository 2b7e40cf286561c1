//! Validation of the Redis connection settings (`--redis-url`, `--redis-ca-file`,
//! `--redis-cert`, `--redis-key`, `--redis-password-file`). Pure: files are read when the
//! client is built ([`crate::state::redis::connect::client`]), and no message ever repeats
//! the URL, which may carry a password.

use crate::config::Layer;
use crate::state::redis::RedisOptions;

/// The Redis options of `layer`, or `None` without a `redis-url`; problems are appended, each
/// naming its setting.
pub(super) fn options(layer: &Layer, problems: &mut Vec<String>) -> Option<RedisOptions> {
    let url = layer.redis_url.clone().filter(|u| !u.is_empty());
    let companions = [
        ("redis-ca-file", layer.redis_ca_file.is_some()),
        ("redis-cert", layer.redis_cert.is_some()),
        ("redis-key", layer.redis_key.is_some()),
        ("redis-password-file", layer.redis_password_file.is_some()),
    ];
    let Some(url) = url else {
        for (name, _) in companions.iter().filter(|(_, set)| *set) {
            problems.push(format!("{name}: needs a redis-url"));
        }
        return None;
    };
    let mut tls = false;
    let mut has_password = false;
    match url::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "redis" | "rediss") && parsed.host().is_some() => {
            tls = parsed.scheme() == "rediss";
            has_password = parsed.password().is_some();
        }
        _ => problems.push(
            "redis-url: must look like redis://[user:password@]host:port[/db] or \
             rediss://[user:password@]host:port[/db] (TLS)"
                .into(),
        ),
    }
    if !tls {
        for (name, set) in &companions[..3] {
            if *set {
                problems.push(format!(
                    "{name}: only applies to a rediss:// (TLS) redis-url"
                ));
            }
        }
    }
    if layer.redis_cert.is_some() != layer.redis_key.is_some() {
        problems.push("redis-cert and redis-key must be given together".into());
    }
    if has_password && layer.redis_password_file.is_some() {
        problems.push(
            "redis-password-file: the redis-url already holds a password; give one or the other"
                .into(),
        );
    }
    Some(RedisOptions {
        url,
        ca_file: layer.redis_ca_file.clone(),
        client_cert: layer.redis_cert.clone(),
        client_key: layer.redis_key.clone(),
        password_file: layer.redis_password_file.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn check(layer: Layer) -> (Option<RedisOptions>, Vec<String>) {
        let mut problems = Vec::new();
        (options(&layer, &mut problems), problems)
    }

    #[test]
    fn tls_urls_and_their_files_are_accepted() {
        let (opts, problems) = check(Layer {
            redis_url: Some("rediss://app:s3cret-Pa55word@redis.example:6380/2".into()),
            redis_ca_file: Some("ca.pem".into()),
            redis_cert: Some("client.crt".into()),
            redis_key: Some("client.key".into()),
            ..Layer::default()
        });
        assert!(problems.is_empty(), "{problems:?}");
        let opts = opts.expect("options");
        assert!(opts.is_tls());
        assert_eq!(opts.ca_file, Some(PathBuf::from("ca.pem")));
        assert!(!format!("{opts:?}").contains("s3cret"), "{opts:?}");

        let (opts, problems) = check(Layer {
            redis_url: Some("redis://app@127.0.0.1:6379".into()),
            redis_password_file: Some("/run/secrets/redis".into()),
            ..Layer::default()
        });
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!opts.expect("options").is_tls());
    }

    #[test]
    fn misplaced_companions_are_named_and_the_url_never_echoed() {
        let (_, problems) = check(Layer {
            redis_url: Some("redis://:hunter2-hunter2@127.0.0.1".into()),
            redis_ca_file: Some("ca.pem".into()),
            redis_cert: Some("client.crt".into()),
            redis_password_file: Some("pw".into()),
            ..Layer::default()
        });
        assert_eq!(
            problems,
            vec![
                "redis-ca-file: only applies to a rediss:// (TLS) redis-url",
                "redis-cert: only applies to a rediss:// (TLS) redis-url",
                "redis-cert and redis-key must be given together",
                "redis-password-file: the redis-url already holds a password; give one or the other",
            ]
        );
        let (_, problems) = check(Layer {
            redis_key: Some("client.key".into()),
            ..Layer::default()
        });
        assert_eq!(problems, vec!["redis-key: needs a redis-url"]);
        let (_, problems) = check(Layer {
            redis_url: Some("https://user:hunter2-hunter2@host".into()),
            ..Layer::default()
        });
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("redis-url: "));
        assert!(!problems[0].contains("hunter2"));
    }
}

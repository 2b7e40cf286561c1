//! Fresh random identifiers: trace ids and the `jti` of every issued token.
//!
//! A version 4 UUID from the thread's cryptographically secure generator (`rand`'s
//! `ThreadRng`: ChaCha, seeded and periodically reseeded from the operating system) rather than
//! `uuid::Uuid::new_v4`, which asks the kernel (`getrandom`) on every call: two system calls
//! per exchange on the hot path for the same unpredictability.

/// A fresh random (version 4) UUID.
pub fn uuid_v4() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_4_and_do_not_repeat() {
        let ids: std::collections::HashSet<uuid::Uuid> = (0..10_000).map(|_| uuid_v4()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            assert_eq!(id.get_version(), Some(uuid::Version::Random));
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        }
    }
}

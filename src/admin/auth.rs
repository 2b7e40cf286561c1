//! Authentication of the admin API: a bearer token read once from `--admin-token-file`,
//! compared in constant time.
//!
//! Pure apart from [`AdminToken::load`]: the admin routes hand [`AdminToken::admits`] the
//! request's `Authorization` header value. The token is never logged, echoed or compared with
//! a short-circuiting `==`.

use std::path::Path;

use zeroize::Zeroizing;

/// Fewest characters an admin token may have: shorter ones can be guessed.
pub const MIN_TOKEN_CHARS: usize = 32;

/// Why the admin token file cannot be used (startup refuses, exit 64).
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// The file could not be read.
    #[error("admin-token-file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The token is too short or holds whitespace inside.
    #[error(
        "admin-token-file {path}: the token must be one line of at least {MIN_TOKEN_CHARS} characters without spaces"
    )]
    Weak {
        /// The file.
        path: String,
    },
}

/// The bearer token the admin API requires.
pub struct AdminToken(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// Reads the token from `path`: its content without the surrounding whitespace (a
    /// Kubernetes Secret file often ends with a newline).
    ///
    /// # Errors
    /// When the file cannot be read, or the token is shorter than [`MIN_TOKEN_CHARS`] or
    /// holds whitespace.
    pub fn load(path: &Path) -> Result<Self, AdminTokenError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            AdminTokenError::Read {
                path: path.display().to_string(),
                source,
            }
        })?);
        Self::new(text.trim()).map_err(|()| AdminTokenError::Weak {
            path: path.display().to_string(),
        })
    }

    /// The token `value`, if it is strong enough to use.
    #[allow(clippy::result_unit_err)]
    pub fn new(value: &str) -> Result<Self, ()> {
        if value.chars().count() < MIN_TOKEN_CHARS || value.chars().any(char::is_whitespace) {
            return Err(());
        }
        Ok(Self(Zeroizing::new(value.as_bytes().to_vec())))
    }

    /// Whether `authorization` (the header value) is `Bearer <this token>`; the comparison
    /// takes the same time wherever the first difference is.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(header) = authorization else {
            return false;
        };
        let Some(presented) = header
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .and_then(|_| header.get(7..))
        else {
            return false;
        };
        aws_lc_rs::constant_time::verify_slices_are_equal(presented, &self.0).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn admits_only_the_exact_bearer_token() {
        let token = AdminToken::new(TOKEN).expect("strong");
        assert!(token.admits(Some(format!("Bearer {TOKEN}").as_bytes())));
        assert!(token.admits(Some(format!("bearer {TOKEN}").as_bytes())));
        for wrong in [
            String::new(),
            "Bearer".to_string(),
            format!("Basic {TOKEN}"),
            format!("Bearer {TOKEN}x"),
            format!("Bearer {}", &TOKEN[1..]),
            format!("Bearer  {TOKEN}"),
        ] {
            assert!(!token.admits(Some(wrong.as_bytes())), "{wrong}");
        }
        assert!(!token.admits(None));
    }

    #[test]
    fn weak_tokens_are_refused_and_files_are_trimmed() {
        assert!(AdminToken::new("short").is_err());
        assert!(AdminToken::new(&format!("{TOKEN} {TOKEN}")).is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{TOKEN}\n")).expect("write");
        let token = AdminToken::load(&path).expect("loads");
        assert!(token.admits(Some(format!("Bearer {TOKEN}").as_bytes())));
        std::fs::write(&path, "short\n").expect("write");
        let err = AdminToken::load(&path).unwrap_err().to_string();
        assert!(err.contains("at least 32"), "{err}");
        assert!(!err.contains("short\n"), "{err}");
        assert!(AdminToken::load(&dir.path().join("missing")).is_err());
    }
}

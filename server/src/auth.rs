//! Bearer-token authentication of gRPC calls and HTTP requests.
//!
//! Tokens live in a file (`--auth-token-file`, one per line) so they stay
//! out of `ps` and shell history, and several may be valid at once so a
//! token can be rotated without downtime: add the new line, restart, move
//! the clients, remove the old line, restart.
//!
//! Only SHA-256 digests of the tokens are kept, and a presented token is
//! hashed and compared with every digest in constant time: neither the
//! comparison's duration nor an early exit tells an attacker how much of a
//! guess was right, or how long the real token is.

use std::{fs, path::Path, sync::Arc};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::{Request, Status, service::Interceptor};

use crate::{error::ServerError, metrics};

/// Tokens shorter than this are refused at start-up: they can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

type TokenDigest = [u8; 32];

/// The interceptor in front of every protected service. Without tokens it
/// lets every call through, so the service stack has one type either way.
#[derive(Clone, Default)]
pub struct BearerAuth {
    digests: Option<Arc<[TokenDigest]>>,
}

impl BearerAuth {
    /// Lets every call through.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Accepts any of the non-empty lines of `path` as a token.
    pub fn from_file(path: &Path) -> Result<Self, ServerError> {
        let invalid = |reason: String| ServerError::AuthTokenFile { path: path.to_path_buf(), reason };
        let text = fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        warn_if_readable_by_others(path);
        Self::from_tokens(text.lines().map(str::trim).filter(|line| !line.is_empty())).map_err(invalid)
    }

    /// Accepts any of `tokens`.
    pub fn from_tokens<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut digests = Vec::new();
        for (line, token) in tokens.into_iter().enumerate() {
            if token.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "token {} is {} characters long; use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)",
                    line + 1,
                    token.len()
                ));
            }
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "token {} has characters that cannot travel in a gRPC header (printable ASCII only)",
                    line + 1
                ));
            }
            digests.push(digest(token.as_bytes()));
        }
        if digests.is_empty() {
            return Err("no token in the file (one token per line)".to_string());
        }
        Ok(Self { digests: Some(digests.into()) })
    }

    /// Whether calls must carry a token.
    pub fn is_enabled(&self) -> bool {
        self.digests.is_some()
    }

    /// Checks the `authorization: Bearer <token>` header.
    /// Checks the `authorization` header (gRPC metadata or HTTP header) of a
    /// call, counting refusals in the metrics.
    pub fn authorize(&self, authorization: Option<&[u8]>) -> Result<(), ServerError> {
        self.check(authorization).inspect_err(|_| metrics::unauthenticated())
    }

    fn check(&self, authorization: Option<&[u8]>) -> Result<(), ServerError> {
        let Some(digests) = &self.digests else { return Ok(()) };
        let header = authorization.ok_or(ServerError::Unauthenticated(
            "missing `authorization` metadata: send `authorization: Bearer <token>`",
        ))?;
        let token = strip_bearer(header)
            .ok_or(ServerError::Unauthenticated("malformed `authorization` metadata: expected `Bearer <token>`"))?;
        let presented = digest(token);
        // Fold over every digest (no early exit), so the time taken does not
        // depend on which token matched.
        let matched = digests.iter().fold(subtle::Choice::from(0), |any, known| any | known.ct_eq(&presented));
        if bool::from(matched) { Ok(()) } else { Err(ServerError::Unauthenticated("invalid bearer token")) }
    }
}

/// Shows how many tokens are accepted, never their digests.
impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth").field("tokens", &self.digests.as_ref().map_or(0, |d| d.len())).finish()
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let authorization = request.metadata().get("authorization").map(|value| value.as_bytes());
        self.authorize(authorization)?;
        Ok(request)
    }
}

fn digest(token: &[u8]) -> TokenDigest {
    Sha256::digest(token).into()
}

/// The token after a case-insensitive `Bearer ` scheme (RFC 6750).
fn strip_bearer(header: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    if header.len() <= SCHEME.len() || !header[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let token = header[SCHEME.len()..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "the token file is readable by other users; `chmod 600` it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn code(auth: &BearerAuth, header: Option<&str>) -> Option<tonic::Code> {
        auth.check(header.map(str::as_bytes)).err().map(|e| e.code())
    }

    #[test]
    fn accepts_the_token_and_refuses_everything_else() {
        let auth = BearerAuth::from_tokens([TOKEN]).unwrap();
        assert_eq!(code(&auth, Some(&format!("Bearer {TOKEN}"))), None);
        assert_eq!(code(&auth, Some(&format!("bearer {TOKEN}"))), None, "the scheme is case-insensitive");
        let unauthenticated = Some(tonic::Code::Unauthenticated);
        assert_eq!(code(&auth, None), unauthenticated);
        assert_eq!(code(&auth, Some(TOKEN)), unauthenticated, "no scheme");
        assert_eq!(code(&auth, Some("Bearer ")), unauthenticated);
        assert_eq!(code(&auth, Some(&format!("Basic {TOKEN}"))), unauthenticated);
        assert_eq!(code(&auth, Some(&format!("Bearer {TOKEN}x"))), unauthenticated, "a longer token");
        assert_eq!(code(&auth, Some(&format!("Bearer {}", &TOKEN[1..]))), unauthenticated, "a prefix");
    }

    #[test]
    fn any_listed_token_is_accepted_for_rotation() {
        let other = "fedcba9876543210fedcba9876543210";
        let auth = BearerAuth::from_tokens([TOKEN, other]).unwrap();
        assert_eq!(code(&auth, Some(&format!("Bearer {other}"))), None);
        assert_eq!(code(&auth, Some(&format!("Bearer {TOKEN}"))), None);
    }

    #[test]
    fn disabled_lets_everything_through() {
        assert_eq!(code(&BearerAuth::disabled(), None), None);
    }

    #[test]
    fn weak_or_unusable_tokens_are_refused_at_start_up() {
        assert!(BearerAuth::from_tokens(["short"]).unwrap_err().contains("at least 16"));
        assert!(BearerAuth::from_tokens(["0123456789abcdef 0123"]).unwrap_err().contains("printable ASCII"));
        assert!(BearerAuth::from_tokens([]).unwrap_err().contains("no token"));
    }

    #[test]
    fn reads_one_token_per_line_ignoring_blank_lines() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), format!("\n  {TOKEN}  \n\n")).unwrap();
        let auth = BearerAuth::from_file(file.path()).unwrap();
        assert_eq!(code(&auth, Some(&format!("Bearer {TOKEN}"))), None);
        let missing = BearerAuth::from_file(Path::new("/nonexistent/token")).err().unwrap();
        assert!(missing.to_string().contains("/nonexistent/token"), "{missing}");
    }
}

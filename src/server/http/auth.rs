//! Who is calling: the API key of a request (header `X-API-Key`, else query `api_key`, as
//! ms-enclave reads it), compared in constant time with every configured key, becomes a
//! `Caller`. With no key configured every caller is the `default` tenant, an admin.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::input::Query;
use super::AppState;
use crate::server::service::Caller;

/// The tenant of a single `--api-key`, and of every caller when there is no key.
pub(crate) const DEFAULT_TENANT: &str = "default";

/// One accepted key and who presents it.
pub(crate) struct ApiKey {
    pub(crate) key: String,
    pub(crate) caller: Arc<Caller>,
}

/// The keys a server accepts; none means an open server.
pub(crate) struct Keys {
    keys: Vec<ApiKey>,
    open: Arc<Caller>,
}

impl Keys {
    pub(crate) fn new(keys: Vec<ApiKey>) -> Self {
        Keys {
            keys,
            open: Arc::new(Caller {
                tenant: DEFAULT_TENANT.into(),
                admin: true,
            }),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The caller a presented key belongs to. Every key is compared, whichever matches, so the
    /// time taken says nothing about which one did or how much of it.
    pub(crate) fn caller(&self, presented: Option<&[u8]>) -> Option<Arc<Caller>> {
        if self.is_open() {
            return Some(self.open.clone());
        }
        let presented = presented?;
        let mut found = None;
        for k in &self.keys {
            if bool::from(k.key.as_bytes().ct_eq(presented)) {
                found = Some(k.caller.clone());
            }
        }
        found
    }
}

/// Parses `--api-keys-file`: one `name:key` or `name:key:admin` a line; blank lines and lines
/// starting with `#` are skipped.
pub(crate) fn parse_keys_file(text: &str) -> Result<Vec<ApiKey>, String> {
    let mut keys: Vec<ApiKey> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |why: &str| format!("line {}: {why}", n + 1);
        let mut parts = line.splitn(3, ':');
        let (name, key, flag) = (parts.next().unwrap_or_default(), parts.next(), parts.next());
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Err(at("expected `name:key` or `name:key:admin`"));
        };
        check_tenant_name(name).map_err(|e| at(&e))?;
        let admin = match flag {
            None => false,
            Some("admin") => true,
            Some(other) => {
                return Err(at(&format!(
                    "unknown flag `{other}` after the key (only `admin` is known)"
                )))
            }
        };
        if keys.iter().any(|k| k.key == key) {
            return Err(at("this key is already given to another name"));
        }
        keys.push(ApiKey {
            key: key.to_string(),
            caller: Arc::new(Caller {
                tenant: name.to_string(),
                admin,
            }),
        });
    }
    if keys.is_empty() {
        return Err("no keys in it (lines are `name:key` or `name:key:admin`)".into());
    }
    Ok(keys)
}

/// A tenant name ends up in a container label and in log lines: keep it plain.
fn check_tenant_name(name: &str) -> Result<(), String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || !name.chars().all(plain) {
        return Err(format!(
            "`{name}` is not a usable name: use 1 to 64 letters, digits, `-`, `_` or `.`"
        ));
    }
    Ok(())
}

/// The key a request presents: the `X-API-Key` header when there is one (even a wrong one:
/// the header wins, as in ms-enclave), else the `api_key` query parameter.
fn presented_key(parts: &Parts) -> Option<Vec<u8>> {
    if let Some(value) = parts.headers.get("x-api-key") {
        return Some(value.as_bytes().to_vec());
    }
    let query = Query::of(&parts.uri).ok()?;
    query.get("api_key").map(|k| k.as_bytes().to_vec())
}

/// Middleware: 401 `{"detail":"Unauthorized"}` without a valid key; else the `Caller` goes
/// into the request's extensions for the handlers.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let caller = if state.settings.keys.is_open() {
        state.settings.keys.caller(None)
    } else {
        state.settings.keys.caller(presented_key(&parts).as_deref())
    };
    let Some(caller) = caller else {
        return ApiError::unauthorized().into_response();
    };
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_files_name_tenants_and_admins() {
        let keys = parse_keys_file("# team keys\nalice:k1\n\n bob:k2:admin \n").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].caller.tenant, "alice");
        assert!(!keys[0].caller.admin);
        assert_eq!(keys[1].key, "k2");
        assert!(keys[1].caller.admin);

        for (text, says) in [
            ("alice", "line 1: expected"),
            ("alice:", "line 1: expected"),
            (":k", "not a usable name"),
            ("a b:k", "not a usable name"),
            ("a:k:root", "unknown flag `root`"),
            ("a:k\nb:k", "line 2: this key is already given"),
            ("# nothing\n", "no keys"),
        ] {
            let err = parse_keys_file(text).err().unwrap();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_key_finds_its_caller_and_nothing_else_does() {
        let keys = Keys::new(parse_keys_file("alice:k1\nbob:k2:admin").unwrap());
        assert_eq!(keys.caller(Some(b"k1")).unwrap().tenant, "alice");
        assert!(keys.caller(Some(b"k2")).unwrap().admin);
        assert!(keys.caller(Some(b"k")).is_none());
        assert!(keys.caller(Some(b"")).is_none());
        assert!(keys.caller(None).is_none());

        let open = Keys::new(Vec::new());
        let anyone = open.caller(Some(b"whatever")).unwrap();
        assert_eq!(anyone.tenant, DEFAULT_TENANT);
        assert!(anyone.admin);
    }
}

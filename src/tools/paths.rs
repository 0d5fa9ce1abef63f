//! Paths inside a sandbox: making them absolute, normalising them, and the
//! `allowed_paths` / `blocked_paths` policy of `file_operation`.

/// `path` made absolute against the sandbox's working directory, then normalised.
pub(super) fn absolute(working_dir: &str, path: &str) -> String {
    if path.starts_with('/') {
        normalize(path)
    } else {
        normalize(&format!("{working_dir}/{path}"))
    }
}

/// Lexical normalisation: no `.`, no `..`, no doubled or trailing slashes. `..` at the root
/// stays at the root, as the kernel resolves it.
pub(super) fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `(directory, file name)` of a normalised absolute path; `None` for `/`.
pub(super) fn split(path: &str) -> Option<(&str, &str)> {
    let (dir, name) = path.rsplit_once('/')?;
    if name.is_empty() {
        return None;
    }
    Some((if dir.is_empty() { "/" } else { dir }, name))
}

/// `path` is `root` or inside it (on component boundaries: `/sandbox` does not hold
/// `/sandboxes`).
pub(super) fn is_within(path: &str, root: &str) -> bool {
    root == "/"
        || path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Where `file_operation` may go.
#[derive(Debug, Clone, Default)]
pub(super) struct Policy {
    pub allowed: Option<Vec<String>>,
    pub blocked: Vec<String>,
}

impl Policy {
    pub(super) fn is_open(&self) -> bool {
        self.allowed.is_none() && self.blocked.is_empty()
    }

    /// `Err` is the reason, naming `shown` (the path as the caller gave it).
    pub(super) fn check(&self, path: &str, shown: &str) -> Result<(), String> {
        if let Some(allowed) = &self.allowed {
            if !allowed.iter().any(|root| is_within(path, root)) {
                return Err(format!(
                    "Access denied: {shown} is outside the allowed paths ({})",
                    allowed.join(", ")
                ));
            }
        }
        if let Some(root) = self.blocked.iter().find(|root| is_within(path, root)) {
            return Err(format!(
                "Access denied: {shown} is inside the blocked path {root}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising() {
        assert_eq!(normalize("/a/./b//c/"), "/a/b/c");
        assert_eq!(normalize("/a/b/../../../etc"), "/etc");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize(""), "/");
        assert_eq!(absolute("/sandbox", "x/../y.txt"), "/sandbox/y.txt");
        assert_eq!(absolute("/sandbox", "/tmp/z"), "/tmp/z");
        assert_eq!(
            absolute("/sandbox", "a \"$(id)\".txt"),
            "/sandbox/a \"$(id)\".txt"
        );
    }

    #[test]
    fn splitting() {
        assert_eq!(split("/sandbox/a.txt"), Some(("/sandbox", "a.txt")));
        assert_eq!(split("/a.txt"), Some(("/", "a.txt")));
        assert_eq!(split("/"), None);
    }

    #[test]
    fn containment_is_by_component() {
        assert!(is_within("/sandbox", "/sandbox"));
        assert!(is_within("/sandbox/a", "/sandbox"));
        assert!(!is_within("/sandboxes", "/sandbox"));
        assert!(is_within("/etc", "/"));
    }

    #[test]
    fn policy() {
        let open = Policy::default();
        assert!(open.is_open());
        open.check("/etc/passwd", "/etc/passwd").unwrap();

        let p = Policy {
            allowed: Some(vec!["/sandbox".into(), "/tmp".into()]),
            blocked: vec!["/sandbox/secret".into()],
        };
        p.check("/sandbox/a", "a").unwrap();
        p.check("/tmp", "/tmp").unwrap();
        let e = p.check("/etc/passwd", "/etc/passwd").unwrap_err();
        assert_eq!(
            e,
            "Access denied: /etc/passwd is outside the allowed paths (/sandbox, /tmp)"
        );
        let e = p.check("/sandbox/secret/k", "secret/k").unwrap_err();
        assert_eq!(
            e,
            "Access denied: secret/k is inside the blocked path /sandbox/secret"
        );
    }
}

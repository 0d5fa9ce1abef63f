//! Image references (`[registry[:port]/]path[:tag][@digest]`), checked by the grammar registries
//! and engines use, so a typo is refused with a reason before any engine sees it.

const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// `Ok` for a reference an engine would accept; `Err` says what is wrong with it.
pub(crate) fn check(reference: &str) -> Result<(), String> {
    if reference.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(c) = reference
        .chars()
        .find(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!("it contains {}", describe_char(c)));
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    let (name, tag) = split_tag(rest);
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    check_name(name)
}

/// A colon after the last slash starts the tag; one before it belongs to a registry port.
fn split_tag(reference: &str) -> (&str, Option<&str>) {
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (reference, None),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the repository name is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the repository name is longer than {MAX_NAME_LEN} characters"
        ));
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 && is_registry(parts[0]) {
        check_registry(parts.remove(0))?;
    }
    for part in parts {
        check_path_component(part)?;
    }
    Ok(())
}

/// The first component names a registry when it looks like a host: a dot, a port or `localhost`.
fn is_registry(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn check_registry(registry: &str) -> Result<(), String> {
    let bad = || format!("`{registry}` is not a valid registry host");
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(bad)?;
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        (None, after.strip_prefix(':'))
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    if let Some(host) = host {
        let ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !ok {
            return Err(bad());
        }
    }
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
    }
    Ok(())
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn check_path_component(part: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err("it has an empty path component (`//` or a trailing `/`)".into());
    }
    if part.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("repository names must be lower-case, got `{part}`"));
    }
    let bytes = part.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(format!(
            "`{part}` must start and end with a letter or digit"
        ));
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &part[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return Err(format!(
                "`{part}` may only hold lower-case letters, digits and single `.`, `_`, `__` or `-` separators"
            ));
        }
    }
    Ok(())
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let ok = tag.len() <= MAX_TAG_LEN
        && tag.chars().next().is_some_and(word)
        && tag.chars().all(|c| word(c) || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the tag `{tag}` is not valid (letters, digits, `_`, `.` and `-`, at most {MAX_TAG_LEN}, not starting with `.` or `-`)"
        ))
    }
}

/// `algorithm:hex`, hex at least 32 digits.
fn check_digest(digest: &str) -> Result<(), String> {
    let bad =
        || format!("the digest `{digest}` is not valid (expected e.g. sha256:<64 hex digits>)");
    let (algorithm, hex) = digest.split_once(':').ok_or_else(bad)?;
    let algorithm_ok = !algorithm.is_empty()
        && algorithm
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && algorithm
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+.-_".contains(c));
    if algorithm_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(bad())
    }
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\n' => "a newline".into(),
        '\t' => "a tab".into(),
        c => format!("the character {}", c.escape_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn references_engines_accept() {
        for ok in [
            "python",
            "python:3.11-slim",
            "library/python:3.11",
            "ghcr.io/owner/app:v1.2",
            "localhost:5000/app",
            "reg.example.com:5000/team/app_x__y:latest",
            "my-org/my--app",
            "[::1]:5000/app:1",
            "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "enclave-test-python:bookworm",
            "35f6702aff0e",
            "python:_tag",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn references_engines_refuse_say_why() {
        for (bad, why) in [
            ("", "empty"),
            ("Python:3", "lower-case"),
            ("python:3.11 slim", "a space"),
            ("python\n", "a newline"),
            ("python:", "tag"),
            ("python:-x", "tag"),
            ("a//b", "empty path component"),
            ("a/", "empty path component"),
            ("-a", "start and end"),
            ("a.-b", "separators"),
            ("app@sha256:xyz", "digest"),
            ("bad_host!:5000/app", "registry host"),
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}

//! Text the user hands us by name: inline, from a file, or from stdin.

use std::io::Read;

/// The text of `source`: `-` reads stdin, `@PATH` (when `at_file`) or a plain path (when not)
/// reads a file, and anything else is the text itself (when `at_file`). Also returns how to name
/// the source in messages.
pub(super) fn read_source(
    source: &str,
    at_file: bool,
    what: &str,
) -> Result<(String, String), String> {
    if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("reading {what} from stdin: {e}"))?;
        return Ok((text, "stdin".into()));
    }
    let path = match source.strip_prefix('@') {
        Some(path) if at_file => path,
        _ if at_file => return Ok((source.to_string(), what.to_string())),
        _ => source,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading the {what} file `{path}`: {e}"))?;
    Ok((text, format!("`{path}`")))
}

#[cfg(test)]
mod tests {
    use super::read_source;

    #[test]
    fn inline_file_and_at_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        std::fs::write(&file, "{}").unwrap();
        let path = file.to_str().unwrap();
        assert_eq!(
            read_source(path, false, "config").unwrap(),
            ("{}".into(), format!("`{path}`"))
        );
        assert_eq!(
            read_source(&format!("@{path}"), true, "--args").unwrap(),
            ("{}".into(), format!("`{path}`"))
        );
        assert_eq!(
            read_source("{\"a\":1}", true, "--args").unwrap(),
            ("{\"a\":1}".into(), "--args".into())
        );
        let e = read_source("/nonexistent/x.json", false, "config").unwrap_err();
        assert!(
            e.contains("reading the config file `/nonexistent/x.json`"),
            "{e}"
        );
    }
}

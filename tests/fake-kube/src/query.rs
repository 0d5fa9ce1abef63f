//! Query parameters: each endpoint names those it models, and any other one is refused.

use crate::status::{ApiError, ApiResult};

/// A request's query parameters in order (some, like exec's `command`, repeat).
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `raw` and refuses any parameter not in `allowed`.
    pub(crate) fn parse(raw: Option<&str>, allowed: &[&str]) -> ApiResult<Self> {
        let pairs = parse_pairs(raw.unwrap_or_default());
        // `timeout` (kubectl's `--request-timeout`) is the server's request timeout on every
        // endpoint; the fake answers at once, so it has no effect.
        let known = |k: &str| k == "timeout" || allowed.contains(&k);
        if let Some((name, _)) = pairs.iter().find(|(k, _)| !known(k)) {
            return Err(ApiError::not_modelled(format!(
                "the query parameter `{name}` on this endpoint"
            )));
        }
        Ok(Self(pairs))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean as the API server reads it: `true` or `1` (kube-rs sends `1` for some).
    pub(crate) fn flag(&self, name: &str) -> ApiResult<bool> {
        match self.get(name) {
            None | Some("") | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value {other:?} for the boolean parameter `{name}`"
            ))),
        }
    }

    pub(crate) fn number(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value {v:?} for the parameter `{name}`"))
            }),
        }
    }

    /// Refuses `dryRun`, which the fake would otherwise silently act on.
    pub(crate) fn refuse_dry_run(&self) -> ApiResult<()> {
        match self.get("dryRun") {
            Some(_) => Err(ApiError::not_modelled("`dryRun`")),
            None => Ok(()),
        }
    }
}

fn parse_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding with `+` as a space, as in `application/x-www-form-urlencoded`.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_repeated_and_escaped_parameters() {
        let p = Params::parse(
            Some("command=sh&command=-c&command=echo+a%26b&tty=1"),
            &["command", "tty"],
        )
        .unwrap();
        assert_eq!(p.all("command"), ["sh", "-c", "echo a&b"]);
        assert!(p.flag("tty").unwrap());
    }

    #[test]
    fn refuses_an_unknown_parameter() {
        let e = Params::parse(Some("limit=5&bogus=1"), &["limit"]).unwrap_err();
        assert!(e.to_status()["message"].as_str().unwrap().contains("bogus"));
    }
}

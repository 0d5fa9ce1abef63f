//! `labelSelector` and `fieldSelector` as the API server parses and applies them.

use serde_json::Value;

use crate::status::{ApiError, ApiResult};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default)]
pub(crate) struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    pub(crate) fn parse(raw: Option<&str>) -> ApiResult<Self> {
        let raw = raw.unwrap_or_default();
        let mut requirements = Vec::new();
        for term in split_top_level(raw) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(term).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unable to parse requirement: found '{term}', expected a label requirement"
                ))
            })?);
        }
        Ok(Self(requirements))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => label(k) == Some(v),
            Requirement::NotEquals(k, v) => label(k) != Some(v),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
        })
    }
}

/// Splits on commas outside parentheses (`a in (x,y),b` is two terms).
fn split_top_level(raw: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in raw.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&raw[start..]);
    terms
}

fn parse_requirement(term: &str) -> Option<Requirement> {
    if let Some(key) = term.strip_prefix('!') {
        return valid_key(key.trim()).map(Requirement::NotExists);
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Some(Requirement::NotEquals(
            valid_key(k.trim())?,
            v.trim().into(),
        ));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Some(Requirement::Equals(valid_key(k.trim())?, v.trim().into()));
    }
    if let Some((k, set)) = split_set(term, " notin ") {
        return Some(Requirement::NotIn(valid_key(&k)?, set));
    }
    if let Some((k, set)) = split_set(term, " in ") {
        return Some(Requirement::In(valid_key(&k)?, set));
    }
    valid_key(term).map(Requirement::Exists)
}

fn split_set(term: &str, op: &str) -> Option<(String, Vec<String>)> {
    let (key, rest) = term.split_once(op)?;
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    let values = inner.split(',').map(|v| v.trim().to_string()).collect();
    Some((key.trim().to_string(), values))
}

fn valid_key(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    ok.then(|| key.to_string())
}

/// A field selector over the fields the fake supports for pods: `metadata.name`,
/// `metadata.namespace` and `status.phase`, with `=`, `==` and `!=`.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub(crate) fn parse(raw: Option<&str>, supported: &[&str]) -> ApiResult<Self> {
        let mut terms = Vec::new();
        for term in raw.unwrap_or_default().split(',').filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: invalid selector: '{term}'; can't understand '{term}'"
                )));
            };
            if !supported.contains(&f_trim(field)) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    f_trim(field)
                )));
            }
            terms.push((f_trim(field).to_string(), equal, value.to_string()));
        }
        Ok(Self(terms))
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = field
                .split('.')
                .fold(object, |v, part| &v[part])
                .as_str()
                .unwrap_or_default();
            (actual == value) == *equal
        })
    }
}

fn f_trim(s: &str) -> &str {
    s.trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "labels": labels}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_selector_forms() {
        let p = pod(json!({"app": "web", "tier": "front"}));
        let m = |s: &str| LabelSelector::parse(Some(s)).unwrap().matches(&p);
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(!m("app!=web"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("app in (db, web)"));
        assert!(!m("app in (db)"));
        assert!(m("app notin (db),tier in (front)"));
        assert!(m(""));
    }

    #[test]
    fn field_selector_forms() {
        let p = pod(json!({}));
        let m = |s: &str| {
            FieldSelector::parse(Some(s), &["metadata.name", "status.phase"])
                .unwrap()
                .matches(&p)
        };
        assert!(m("metadata.name=p"));
        assert!(m("status.phase!=Pending"));
        assert!(!m("metadata.name=q"));
        assert!(FieldSelector::parse(Some("spec.nodeName=x"), &["metadata.name"]).is_err());
    }
}

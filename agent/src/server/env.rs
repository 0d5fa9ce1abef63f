//! The environments the agent gives what it starts.

/// Our own variables (the secret among them) reach nothing we start.
const AGENT_PREFIX: &str = "ENCLAVE_AGENT_";
/// Names (comma-separated) the host wants left out of calls: Docker gives the TTY-attached
/// init `TERM=xterm`, which a plain `docker exec` does not have.
pub(crate) const DROP_ENV: &str = "ENCLAVE_AGENT_DROP";
/// What `docker exec` (runc) uses when the image sets no `PATH`.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub(crate) type Env = Vec<(String, String)>;

/// The agent's environment without its own variables: the image's command gets this.
pub(crate) fn for_command(agent_env: &[(String, String)]) -> Env {
    agent_env
        .iter()
        .filter(|(name, _)| !name.starts_with(AGENT_PREFIX))
        .cloned()
        .collect()
}

/// The base of every call's environment: as for the command, minus the names in
/// [`DROP_ENV`].
pub(crate) fn for_calls(agent_env: &[(String, String)]) -> Env {
    let dropped: Vec<&str> = agent_env
        .iter()
        .find(|(name, _)| name == DROP_ENV)
        .map(|(_, list)| list.split(',').map(str::trim).collect())
        .unwrap_or_default();
    for_command(agent_env)
        .into_iter()
        .filter(|(name, _)| !dropped.contains(&name.as_str()))
        .collect()
}

/// `base` with the request's variables applied on top, replacing those of the same name.
pub(crate) fn with_request(base: &[(String, String)], request: &[(String, String)]) -> Env {
    let mut env: Env = base
        .iter()
        .filter(|(name, _)| !request.iter().any(|(n, _)| n == name))
        .cloned()
        .collect();
    for (name, value) in request {
        // The last of repeated names wins, as with `docker exec -e`.
        env.retain(|(n, _)| n != name);
        env.push((name.clone(), value.clone()));
    }
    env
}

/// The `PATH` programs are looked up on.
pub(crate) fn path_of(env: &[(String, String)]) -> &str {
    env.iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.as_str())
        .unwrap_or(DEFAULT_PATH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn agent_variables_never_reach_children() {
        let agent = env(&[
            ("PATH", "/bin"),
            ("ENCLAVE_AGENT_SECRET", "ab"),
            ("ENCLAVE_AGENT_DROP", "TERM"),
            ("TERM", "xterm"),
        ]);
        assert_eq!(
            for_command(&agent),
            env(&[("PATH", "/bin"), ("TERM", "xterm")])
        );
        assert_eq!(for_calls(&agent), env(&[("PATH", "/bin")]));
    }

    #[test]
    fn drop_list_takes_several_names() {
        let agent = env(&[
            ("A", "1"),
            ("B", "2"),
            ("C", "3"),
            ("ENCLAVE_AGENT_DROP", "A, C"),
        ]);
        assert_eq!(for_calls(&agent), env(&[("B", "2")]));
    }

    #[test]
    fn request_overrides_and_adds() {
        let base = env(&[("PATH", "/bin"), ("HOME", "/root")]);
        let request = env(&[("HOME", "/tmp"), ("X", "1"), ("X", "2")]);
        assert_eq!(
            with_request(&base, &request),
            env(&[("PATH", "/bin"), ("HOME", "/tmp"), ("X", "2")])
        );
    }

    #[test]
    fn path_defaults_like_runc() {
        assert_eq!(path_of(&env(&[("PATH", "/x")])), "/x");
        assert_eq!(path_of(&[]), DEFAULT_PATH);
    }
}

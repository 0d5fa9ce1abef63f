//! The service behind `enclave server`, through plain HTTP against the real binary and a real
//! engine: the pool (fair, bounded, self-healing), TTL reaping, re-adoption after a restart,
//! tenant isolation and the policy.

use std::time::{Duration, Instant};

use reqwest::blocking::RequestBuilder;
use serde_json::{json, Value};

use super::{call, config, Server};
use crate::common::{docker, poll_until, TestEnv};

/// Calls to one server as one API key (or none).
struct Api<'a> {
    server: &'a Server,
    key: Option<&'a str>,
}

fn api(server: &Server) -> Api<'_> {
    Api { server, key: None }
}

fn as_key<'a>(server: &'a Server, key: &'a str) -> Api<'a> {
    Api {
        server,
        key: Some(key),
    }
}

impl Api<'_> {
    fn send(&self, rb: RequestBuilder) -> (u16, Value) {
        call(match self.key {
            Some(key) => rb.header("X-API-Key", key),
            None => rb,
        })
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.server.get(path))
    }

    fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.server.delete(path))
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.server.post(path).json(body))
    }

    /// `POST /sandbox/create?sandbox_type=docker`: the new id.
    fn create(&self, config: &Value) -> String {
        let (status, body) = self.post("/sandbox/create?sandbox_type=docker", config);
        assert_eq!(status, 200, "create: {body}");
        body["sandbox_id"].as_str().expect("sandbox_id").to_string()
    }

    fn execute(&self, id: &str, tool: &str, parameters: Value) -> (u16, Value) {
        self.post(
            "/sandbox/tool/execute",
            &json!({"sandbox_id": id, "tool_name": tool, "parameters": parameters}),
        )
    }

    fn pool_init(&self, size: usize, config: &Value) -> Vec<String> {
        let (status, body) = self.post(
            &format!("/pool/initialize?pool_size={size}&sandbox_type=docker"),
            config,
        );
        assert_eq!(status, 200, "pool/initialize: {body}");
        let ids: Vec<String> = body["sandbox_ids"]
            .as_array()
            .expect("sandbox_ids")
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), size, "{body}");
        ids
    }

    fn pool_shell(&self, command: &str, wait: Option<f64>) -> (u16, Value) {
        let wait = wait.map(|w| format!("&timeout={w}")).unwrap_or_default();
        self.post(
            &format!("/pool/execute?tool_name=shell_executor{wait}"),
            &json!({ "command": command }),
        )
    }

    fn ids(&self) -> Vec<String> {
        let (status, body) = self.get("/sandboxes");
        assert_eq!(status, 200, "{body}");
        body.as_array()
            .expect("an array")
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn stats(&self) -> Value {
        let (status, body) = self.get("/stats");
        assert_eq!(status, 200, "{body}");
        body
    }
}

fn container_exists(id: &str) -> bool {
    let out = docker(&["ps", "-aq", "--filter", &format!("label=enclave.id={id}")]);
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

fn assert_ok_output(body: &Value, want: &str) {
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body["output"].as_str().map(str::trim), Some(want), "{body}");
}

#[test]
fn the_pool_serves_concurrent_callers_in_turn_and_times_out_a_waiter() {
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    let api = api(&server);
    api.pool_init(2, &config(&env, &["shell_executor"]));
    assert_eq!(api.stats()["pool_size"], 2);

    // Five callers, two sandboxes: all served, three rounds of 0.3 s at least.
    let started = Instant::now();
    let results: Vec<(u16, Value)> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..5)
            .map(|_| s.spawn(|| api.pool_shell("sleep 0.3; echo ok", None)))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert_ok_output(body, "ok");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "5 calls of 0.3 s on 2 sandboxes took only {:?}",
        started.elapsed()
    );
    assert_eq!(api.stats()["pool_size"], 2, "every member came back");

    // Both busy for 3 s: a caller willing to wait 0.5 s gets 408, promptly.
    std::thread::scope(|s| {
        let busy: Vec<_> = (0..2)
            .map(|_| s.spawn(|| api.pool_shell("sleep 3; echo done", None)))
            .collect();
        poll_until("both members lent", 10, || api.stats()["pool_size"] == 0);
        let asked = Instant::now();
        let (status, body) = api.pool_shell("echo late", Some(0.5));
        assert_eq!(status, 408, "{body}");
        assert_eq!(
            body["detail"],
            "Timeout waiting for available sandbox from pool after 0.5s"
        );
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{:?}",
            asked.elapsed()
        );
        for call in busy {
            let (status, body) = call.join().unwrap();
            assert_eq!(status, 200, "{body}");
            assert_ok_output(&body, "done");
        }
    });
    // The timed-out waiter took nothing with it.
    poll_until("both members free again", 10, || {
        api.stats()["pool_size"] == 2
    });
    let (status, body) = api.pool_shell("echo again", None);
    assert_eq!(
        (status, body["output"].as_str().map(str::trim)),
        (200, Some("again"))
    );
}

#[test]
fn an_empty_pool_answers_400_at_once() {
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    let api = api(&server);
    let expect_empty = |what: &str| {
        let asked = Instant::now();
        let (status, body) = api.pool_shell("echo hi", Some(30.0));
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(
            body["detail"], "Sandbox pool is empty, call initialize_pool first",
            "{what}"
        );
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{what}: waited {:?}",
            asked.elapsed()
        );
    };
    expect_empty("never initialised");

    let ids = api.pool_init(1, &config(&env, &["shell_executor"]));
    let (status, body) = api.delete(&format!("/sandbox/{}", ids[0]));
    assert_eq!(status, 200, "{body}");
    expect_empty("its only member deleted");
    assert!(!container_exists(&ids[0]));
}

#[test]
fn a_dead_pool_member_is_replaced() {
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    let api = api(&server);
    let ids = api.pool_init(2, &config(&env, &["shell_executor"]));

    // The least recently used member is removed behind the server's back: the next calls still
    // succeed, and the pool is back to two, the dead one replaced rather than marked idle.
    let out = docker(&["rm", "-f", &container_of(&ids[0])]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for n in 0..3 {
        let (status, body) = api.pool_shell(&format!("echo call{n}"), Some(60.0));
        assert_eq!(status, 200, "call {n}: {body}");
        assert_ok_output(&body, &format!("call{n}"));
    }
    poll_until("the pool is back to two members", 60, || {
        let stats = api.stats();
        stats["pool_size"] == 2 && stats["pool_members"] == 2
    });
    let listed = api.ids();
    assert!(
        !listed.contains(&ids[0]),
        "the dead member is still listed: {listed:?}"
    );
    assert!(listed.contains(&ids[1]), "{listed:?}");
    assert_eq!(listed.len(), 2, "{listed:?}");
}

/// The container id of a sandbox, from its SandboxInfo.
fn container_of(id: &str) -> String {
    let out = docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=enclave.id={id}"),
    ]);
    let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!found.is_empty(), "no container for `{id}`");
    found
}

#[test]
fn sandboxes_past_their_ttl_are_reaped() {
    let env = TestEnv::new();
    let server = Server::start(&env, &["--ttl", "2", "--cleanup-interval", "1"]);
    let api = api(&server);
    let id = api.create(&config(&env, &["shell_executor"]));
    let (status, body) = api.get(&format!("/sandbox/{id}"));
    assert_eq!(status, 200, "{body}");
    assert!(container_exists(&id));
    poll_until("the sandbox is reaped", 15, || {
        api.get(&format!("/sandbox/{id}")).0 == 404
    });
    poll_until("its container is removed", 10, || !container_exists(&id));
}

#[test]
fn an_idle_sandbox_is_reaped_but_never_one_in_use() {
    let env = TestEnv::new();
    let server = Server::start(&env, &["--idle-timeout", "2", "--cleanup-interval", "1"]);
    let api = api(&server);
    let id = api.create(&config(&env, &["shell_executor"]));
    // A call longer than the idle timeout: the reaper leaves it alone while it runs...
    let (status, body) = api.execute(
        &id,
        "shell_executor",
        json!({"command": "sleep 4; echo survived"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_ok_output(&body, "survived");
    // ...and the idle clock starts again when it ends.
    let (status, body) = api.get(&format!("/sandbox/{id}"));
    assert_eq!(status, 200, "reaped right after its call: {body}");
    poll_until("the idle sandbox is reaped", 15, || {
        api.get(&format!("/sandbox/{id}")).0 == 404
    });
    poll_until("its container is removed", 10, || !container_exists(&id));
}

#[test]
fn a_restarted_server_adopts_what_it_made() {
    let env = TestEnv::new();
    let cfg = config(&env, &["shell_executor"]);
    let mut first = Server::start(&env, &[]);
    let id = api(&first).create(&cfg);
    let pooled = api(&first).pool_init(1, &cfg);
    let exit = first.terminate(30);
    assert!(exit.success(), "{exit}\n{}", first.log());
    assert!(
        container_exists(&id),
        "SIGTERM must leave sandboxes for the next run"
    );

    let second = Server::start(&env, &[]);
    let api = api(&second);
    let listed = api.ids();
    assert!(listed.contains(&id), "{listed:?}");
    assert!(listed.contains(&pooled[0]), "{listed:?}");
    let (status, body) = api.get(&format!("/sandbox/{id}"));
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("running")),
        "{body}"
    );
    let (status, body) = api.execute(&id, "shell_executor", json!({"command": "echo back"}));
    assert_eq!(status, 200, "{body}");
    assert_ok_output(&body, "back");
    // The pooled one is back in its pool, usable without initialising again.
    let (status, body) = api.pool_shell("echo pooled", Some(10.0));
    assert_eq!(status, 200, "{body}");
    assert_ok_output(&body, "pooled");
}

#[test]
fn cleanup_on_exit_removes_every_sandbox() {
    let env = TestEnv::new();
    let mut server = Server::start(&env, &["--cleanup-on-exit"]);
    let cfg = config(&env, &["shell_executor"]);
    let id = api(&server).create(&cfg);
    let pooled = api(&server).pool_init(1, &cfg);
    let exit = server.terminate(60);
    assert!(exit.success(), "{exit}\n{}", server.log());
    assert!(!container_exists(&id), "`{id}` outlived the server");
    assert!(
        !container_exists(&pooled[0]),
        "pool member outlived the server"
    );
    // Nothing left to adopt either.
    let again = Server::start(&env, &[]);
    assert_eq!(api(&again).ids(), Vec::<String>::new());
}

#[test]
fn tenants_see_and_touch_only_their_own_sandboxes() {
    let env = TestEnv::new();
    let keys = env.state_dir.path().join("keys");
    std::fs::write(
        &keys,
        "# tenants\nalice:key-a\nbob:key-b\nroot:key-r:admin\n",
    )
    .unwrap();
    let server = Server::start(&env, &["--api-keys-file", keys.to_str().unwrap()]);
    let (alice, bob, root) = (
        as_key(&server, "key-a"),
        as_key(&server, "key-b"),
        as_key(&server, "key-r"),
    );
    let cfg = config(&env, &["shell_executor"]);
    let a = alice.create(&cfg);
    let b = bob.create(&cfg);

    assert_eq!(alice.ids(), std::slice::from_ref(&a));
    assert_eq!(bob.ids(), std::slice::from_ref(&b));
    let mut all = root.ids();
    all.sort();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(all, both, "an admin sees every tenant's");

    // Alice's sandbox does not exist for Bob, whatever he tries.
    let not_found = |(status, body): (u16, Value), what: &str| {
        assert_eq!(status, 404, "{what}: {body}");
    };
    not_found(bob.get(&format!("/sandbox/{a}")), "get");
    not_found(bob.get(&format!("/sandbox/{a}/tools")), "tools");
    not_found(
        bob.execute(&a, "shell_executor", json!({"command": "echo pwned"})),
        "execute",
    );
    not_found(bob.post(&format!("/sandbox/{a}/stop"), &json!({})), "stop");
    not_found(bob.delete(&format!("/sandbox/{a}")), "delete");
    not_found(bob.get(&format!("/v1/sandboxes/{a}")), "v1 get");
    not_found(bob.get(&format!("/v1/sandboxes/{}", &a[..4])), "v1 prefix");
    assert!(container_exists(&a));

    // Alice's sandbox still works for her; the admin may use and remove it.
    let (status, body) = alice.execute(&a, "shell_executor", json!({"command": "echo mine"}));
    assert_eq!(status, 200, "{body}");
    assert_ok_output(&body, "mine");
    assert_eq!(bob.stats()["total_sandboxes"], 1);
    let (status, body) = root.delete(&format!("/sandbox/{a}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(alice.ids(), Vec::<String>::new());
    let (status, body) = bob.delete(&format!("/sandbox/{b}"));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn the_policy_refuses_each_risky_field_by_name() {
    let env = TestEnv::new();
    let server = Server::start(&env, &["--max-sandboxes", "1"]);
    let api = api(&server);
    let base = config(&env, &["shell_executor"]);
    let with = |extra: Value| {
        let mut config = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        config
    };
    let cases = [
        (json!({"privileged": true}), "privileged"),
        (
            json!({"volumes": {"/": {"bind": "/host", "mode": "rw"}}}),
            "volumes",
        ),
        (json!({"network": "host"}), "network"),
        (json!({"ports": {"80/tcp": ["0.0.0.0", 8080]}}), "ports"),
        (json!({"memory_limit": "512g"}), "memory_limit"),
        // 0 is no limit at all to the engine: under a cap it is refused, not unlimited.
        (json!({"memory_limit": "0"}), "memory_limit"),
        (json!({"cpu_limit": 64}), "cpu_limit"),
        (json!({"pids_limit": 0}), "pids_limit"),
    ];
    for (extra, field) in cases {
        let (status, body) = api.post("/v1/sandboxes", &json!({"config": with(extra.clone())}));
        assert_eq!(status, 400, "{extra}: {body}");
        assert_eq!(body["error"]["kind"], "policy", "{extra}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.starts_with(&format!("{field}: ")),
            "{extra}: {detail}"
        );
        // ms-enclave's route says the same, in its words.
        let (status, body) = api.post("/sandbox/create?sandbox_type=docker", &with(extra.clone()));
        assert_eq!(status, 400, "{extra}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(&format!("{field}: ")), "{extra}: {detail}");
    }
    assert!(
        env.containers().is_empty(),
        "a refused config made a container"
    );

    // One sandbox per caller on this server: the second is refused, naming the cap.
    api.create(&base);
    let (status, body) = api.post("/v1/sandboxes", &json!({"config": base}));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("max_sandboxes: "),
        "{body}"
    );
    assert_eq!(env.containers().len(), 1);
}

#[test]
fn a_pool_waiter_whose_client_leaves_leaves_the_queue_at_once() {
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    let api = api(&server);
    api.pool_init(1, &config(&env, &["shell_executor"]));
    std::thread::scope(|s| {
        let busy = s.spawn(|| api.pool_shell("sleep 6; echo done", None));
        poll_until("the member is lent", 10, || api.stats()["pool_size"] == 0);
        // A caller queues, then gives up after a second while the member is still lent.
        let gave_up = server
            .post("/pool/execute?tool_name=shell_executor&timeout=60")
            .timeout(Duration::from_secs(1))
            .json(&json!({"command": "echo never"}))
            .send();
        assert!(gave_up.is_err(), "the waiter should still be queued");
        // It is out of the queue well before the member comes back, so it cannot be handed
        // the member ahead of the next caller.
        poll_until("the departed waiter leaves the queue", 3, || {
            api.stats()["pool_waiters"] == 0
        });
        assert!(
            !busy.is_finished(),
            "the lent member came back too soon to tell"
        );
        let next = s.spawn(|| api.pool_shell("echo next", Some(30.0)));
        let (status, body) = busy.join().unwrap();
        assert_eq!(status, 200, "{body}");
        let (status, body) = next.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert_ok_output(&body, "next");
    });
    assert_eq!(api.stats()["pool_size"], 1, "the member came back");
}

#[test]
fn a_free_pool_member_found_dead_by_a_direct_call_is_replaced_at_once() {
    let env = TestEnv::new();
    // The reaper will not come round during the test: the call itself must take it out.
    let server = Server::start(&env, &["--cleanup-interval", "3600"]);
    let api = api(&server);
    let ids = api.pool_init(1, &config(&env, &["shell_executor"]));
    let out = docker(&["rm", "-f", &container_of(&ids[0])]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = api.execute(&ids[0], "shell_executor", json!({"command": "echo hi"}));
    assert!(
        status != 200 || body["status"] != "success",
        "a removed container answered: {status} {body}"
    );
    // Out of the free list at once (never lent dead), and replaced.
    poll_until("the dead member is replaced", 60, || {
        let listed = api.ids();
        let stats = api.stats();
        !listed.contains(&ids[0]) && listed.len() == 1 && stats["pool_size"] == 1
    });
    let (status, body) = api.pool_shell("echo fresh", Some(30.0));
    assert_eq!(status, 200, "{body}");
    assert_ok_output(&body, "fresh");
}

#[test]
fn a_pool_member_stopped_while_no_server_ran_is_replaced_on_adoption() {
    let env = TestEnv::new();
    let cfg = config(&env, &["shell_executor"]);
    let mut first = Server::start(&env, &[]);
    let pooled = api(&first).pool_init(1, &cfg);
    let exit = first.terminate(30);
    assert!(exit.success(), "{exit}\n{}", first.log());
    let out = docker(&["kill", &container_of(&pooled[0])]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let second = Server::start(&env, &["--cleanup-interval", "3600"]);
    let api = api(&second);
    poll_until("the stopped member is removed and replaced", 60, || {
        let listed = api.ids();
        !listed.contains(&pooled[0]) && listed.len() == 1 && api.stats()["pool_size"] == 1
    });
    assert!(
        !container_exists(&pooled[0]),
        "the stopped member's container stayed"
    );
    let (status, body) = api.pool_shell("echo replaced", Some(30.0));
    assert_eq!(status, 200, "{body}");
    assert_ok_output(&body, "replaced");
}

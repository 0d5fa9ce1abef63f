//! `/health` asks the engine every time: a server whose engine stops answering says so.

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{call, Server};
use crate::common::TestEnv;

const ENGINE_SOCKET: &str = "/var/run/docker.sock";

/// A Unix socket that forwards to the engine's until it is cut: the engine "goes away" for
/// whoever reached it through here, while it keeps serving every other test.
struct EngineLink {
    path: PathBuf,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<UnixStream>>>,
}

impl EngineLink {
    fn start(dir: &Path) -> EngineLink {
        let path = dir.join("engine.sock");
        let listener = UnixListener::bind(&path).expect("bind the engine link");
        listener.set_nonblocking(true).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (stop, conns) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => forward(client, &conns),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return,
                }
            }
        });
        EngineLink { path, cut, open }
    }

    fn address(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Closes every forwarded connection and stops taking new ones.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.path);
        for conn in self.open.lock().unwrap().drain(..) {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn forward(client: UnixStream, open: &Mutex<Vec<UnixStream>>) {
    client.set_nonblocking(false).unwrap();
    let Ok(engine) = UnixStream::connect(ENGINE_SOCKET) else {
        return;
    };
    let pairs = [
        (client.try_clone().unwrap(), engine.try_clone().unwrap()),
        (engine.try_clone().unwrap(), client.try_clone().unwrap()),
    ];
    open.lock().unwrap().extend([client, engine]);
    for (mut from, mut to) in pairs {
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Both);
        });
    }
}

#[test]
fn health_says_when_the_engine_stops_answering() {
    let env = TestEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let link = EngineLink::start(dir.path());
    let mut command = Server::command(&env, &[]);
    command.env("DOCKER_HOST", link.address());
    let server = Server::start_command(command);

    let (status, body) = call(server.get("/health"));
    assert_eq!((status, &body["healthy"]), (200, &true.into()), "{body}");

    link.cut();
    let (status, body) = call(server.get("/health"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["healthy"], false, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("cannot reach the Docker engine"), "{body}");
    let (status, body) = call(server.get("/v1/health"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["kind"], "docker_unavailable", "{body}");
    // It keeps serving what needs no engine.
    let (status, _) = call(server.get("/stats"));
    assert_eq!(status, 200);
}

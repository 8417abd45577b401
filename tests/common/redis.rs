//! A real `redis-server` (Debian's package; `.ci/run` and `scripts/test.sh` install
//! it) on a free loopback port, one per test, so a test may kill and restart it.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct RedisServer {
    pub port: u16,
    password: Option<String>,
    child: Option<Child>,
    dir: super::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        RedisServer::start_with(None).await
    }

    /// With `requirepass`.
    pub async fn start_with(password: Option<&str>) -> RedisServer {
        let mut r = RedisServer {
            port: free_port(),
            password: password.map(str::to_string),
            child: None,
            dir: super::TempDir::new(),
        };
        r.restart().await;
        r
    }

    /// `redis://127.0.0.1:PORT/0`, with the password when there is one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Starts it again on the same port, empty; returns once it answers PING.
    pub async fn restart(&mut self) {
        self.kill();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir.path)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start redis-server ({e}): install Debian's redis-server package (scripts/test.sh does)")
        });
        self.child = Some(child);
        let ready = super::eventually_async(Duration::from_secs(10), || self.ping()).await;
        assert!(ready, "redis-server on port {} did not answer", self.port);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// One command in RESP, its raw reply.
    pub async fn command(&self, args: &[&str]) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to redis-server");
        let mut req = String::new();
        if let Some(p) = &self.password {
            req.push_str(&format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{p}\r\n", p.len()));
        }
        req.push_str(&format!("*{}\r\n", args.len()));
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut out))
            .await
            .expect("redis answers")
            .unwrap();
        String::from_utf8_lossy(&out[..n]).to_string()
    }

    async fn ping(&self) -> bool {
        match tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
            Ok(_) => self.command(&["PING"]).await.contains("PONG"),
            Err(_) => false,
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

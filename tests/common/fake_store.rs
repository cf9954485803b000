//! A tiny HTTP/1.1 store for the sink tests: answers each request as a
//! script says (status, headers), keeps connections alive, and records
//! when each request came and its body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What to answer to request number n (0-based): status and extra header
/// lines; `None` never answers (the connection stays open, silent).
pub type Script = dyn Fn(usize) -> Option<(u16, Vec<(String, String)>)> + Send + Sync;

pub struct Received {
    pub at: Instant,
    pub body: Vec<u8>,
    pub status: Option<u16>,
}

pub struct FakeStore {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl FakeStore {
    pub fn start(script: Box<Script>) -> FakeStore {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script: Arc<Script> = Arc::from(script);
        let r = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let (r, script) = (r.clone(), script.clone());
                std::thread::spawn(move || serve(stream, &r, &*script));
            }
        });
        FakeStore { addr, received }
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }
}

fn serve(stream: TcpStream, received: &Mutex<Vec<Received>>, script: &Script) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut input = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            match input.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if !first {
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            first = false;
        }
        let mut body = vec![0; length];
        if input.read_exact(&mut body).is_err() {
            return;
        }
        let n = {
            let mut r = received.lock().unwrap();
            r.push(Received {
                at: Instant::now(),
                body,
                status: None,
            });
            r.len() - 1
        };
        let Some((status, headers)) = script(n) else {
            // Never answer: hold the connection until the peer goes.
            let mut sink = Vec::new();
            let _ = input.read_to_end(&mut sink);
            return;
        };
        received.lock().unwrap()[n].status = Some(status);
        let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if out.write_all(head.as_bytes()).is_err() {
            return;
        }
    }
}

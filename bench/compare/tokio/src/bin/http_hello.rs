//! Tokio side of the `http_hello` workload (../../WORKLOADS.md): a minimal
//! HTTP/1.1 keep-alive server on tokio::net, written the way Pulse's
//! examples/http_hello.cpp is (one read, answer every complete request in
//! the buffer with one write). hyper is not packaged by Debian, so this is
//! hand-written on purpose.
//!
//! Usage: http_hello [--workers N] [--port P]; prints "listening on ADDR".

use std::io::Write;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn wants_close(head: &[u8]) -> bool {
    let s = String::from_utf8_lossy(head).to_ascii_lowercase();
    s.lines().any(|l| l.starts_with("connection:") && l.contains("close"))
}

async fn serve(mut s: TcpStream) {
    let mut buf = vec![0u8; 8192];
    let mut have = 0usize;
    let mut out = Vec::with_capacity(4096);
    loop {
        let n = match s.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        have += n;
        let mut start = 0;
        let mut close = false;
        out.clear();
        while let Some(end) = find(&buf[start..have], b"\r\n\r\n") {
            out.extend_from_slice(RESPONSE);
            close |= wants_close(&buf[start..start + end]);
            start += end + 4;
        }
        if !out.is_empty() && s.write_all(&out).await.is_err() {
            return;
        }
        if close {
            return;
        }
        buf.copy_within(start..have, 0);
        have -= start;
        if have == buf.len() {
            return;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut workers = 2usize;
    let mut port = 8080u16;
    let mut i = 0;
    while i + 1 < args.len() {
        match args[i].as_str() {
            "--workers" => workers = args[i + 1].parse().expect("--workers N"),
            "--port" => port = args[i + 1].parse().expect("--port P"),
            other => panic!("unknown argument {}", other),
        }
        i += 2;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let l = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        println!("listening on {}", l.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        loop {
            let (s, _) = match l.accept().await {
                Ok(x) => x,
                Err(_) => continue,
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(serve(s));
        }
    });
}

//! The scripted model as a process, for the editor end-to-end tests:
//! `mock-llm SCRIPT.json [PORT]` serves on 127.0.0.1 and prints its base URL on the first line.
//! The script can be replaced at run time with `POST /_script`; `GET /_requests` lists requests.

#[path = "mock_llm.rs"]
mod mock_llm;

use std::io::Write;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let script = match args.next() {
        Some(path) => {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                eprintln!("mock-llm: cannot read {path}: {e}");
                std::process::exit(2)
            });
            serde_json::from_str(&text).unwrap_or_else(|e| {
                eprintln!("mock-llm: {path} is not a script: {e}");
                std::process::exit(2)
            })
        }
        None => mock_llm::Script::default(),
    };
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mock = mock_llm::MockLlm::start_on(addr, script).await;
    println!("{}", mock.base_url);
    let _ = std::io::stdout().flush();
    // Serve until killed.
    std::future::pending::<()>().await;
}

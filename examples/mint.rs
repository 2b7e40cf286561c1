//! Pre-mints distinct demo subject tokens for the load benchmark (`scripts/bench-load.sh`).
//!
//! ```sh
//! cargo run --release --example mint -- <data-dir> <count> <out-file> [lifetime-secs]
//! ```
//!
//! Opens (or creates) the demo issuer under `<data-dir>` (the one `trustbridge demo token` uses:
//! an RS256 key and a `jwksFile`, so the gateway fetches nothing), and writes `<count>` lines to
//! `<out-file>`, each a complete urlencoded token request body (Entra-style client credentials for
//! `deploy-bot` on `api://payments`, as in the README walkthrough) whose subject token has its own
//! random `jti`: no two lines are equal. RSA signing costs about a millisecond per token, so every
//! core signs its share.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use trustbridge::clock::{Clock, SystemClock, unix_seconds};
use trustbridge::demo::{DemoIssuer, demo_claims};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: mint <data-dir> <count> <out-file> [lifetime-secs]");
        std::process::exit(64);
    }
    let data_dir = PathBuf::from(&args[0]);
    let count: usize = args[1].parse().expect("count is a number");
    let out = PathBuf::from(&args[2]);
    let lifetime: u64 = args
        .get(3)
        .map_or(3600, |s| s.parse().expect("lifetime is a number"));

    let issuer = Arc::new(DemoIssuer::open_or_create(&data_dir).expect("demo issuer"));
    let now = unix_seconds(SystemClock.now());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = count.div_ceil(threads);
    let chunks: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let issuer = issuer.clone();
                scope.spawn(move || {
                    let n = per_thread.min(count.saturating_sub(t * per_thread));
                    (0..n)
                        .map(|_| {
                            let mut extra = serde_json::Map::new();
                            extra.insert("repository".into(), "contoso/infra".into());
                            let claims = demo_claims(
                                "repo:contoso/infra:ref:refs/heads/main",
                                "api://trustbridge",
                                now,
                                lifetime,
                                extra,
                            );
                            let token = issuer.mint(&claims).expect("mint");
                            format!(
                                "grant_type=client_credentials\
                                 &client_id=deploy-bot\
                                 &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
                                 &client_assertion={token}\
                                 &scope=api%3A%2F%2Fpayments%2F.default"
                            )
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("minting thread"))
            .collect()
    });
    let mut file = std::io::BufWriter::new(std::fs::File::create(&out).expect("create output"));
    for line in chunks.iter().flatten() {
        writeln!(file, "{line}").expect("write");
    }
    file.flush().expect("flush");
    eprintln!(
        "minted {count} distinct subject tokens into {}",
        out.display()
    );
}

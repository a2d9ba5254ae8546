//! Writes a throwaway certificate authority for trying TLS locally (and for
//! the interoperability tests): `ca.pem`; `server.pem`/`server.key` for
//! localhost and 127.0.0.1; `client.pem`/`client.key` from the same CA for
//! mutual TLS; `rogue-client.pem`/`.key` from a CA the server does not
//! trust. Not for production: see docs/security.md.
//!
//! ```sh
//! cargo run -p mnist-server --example dev_certs -- certs/
//! mnist-server --tls-cert certs/server.pem --tls-key certs/server.key --tls-client-ca certs/ca.pem
//! mnist-client --server https://localhost:50051 --ca-cert certs/ca.pem \
//!     --cert certs/client.pem --key certs/client.key health
//! ```

#[path = "../tests/common/pki.rs"]
mod pki;

use std::path::PathBuf;

fn main() {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: dev_certs DIR");
        std::process::exit(2);
    };
    if let Err(error) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {error}", dir.display());
        std::process::exit(1);
    }
    pki::write_all(&dir);
    println!("wrote ca.pem, server.pem/.key, client.pem/.key, rogue-client.pem/.key to {}", dir.display());
}

//! Integration tests: a real test OIDC issuer and the real gateway on 127.0.0.1, talking HTTP.
//! One binary (see STYLE.md): every extra test binary costs link time.

mod cli;
mod cold_start;
mod discovery;
mod exchange;
mod http2;
mod issuer_trust;
mod operations;
mod properties;
mod redis_tls;
mod rejections;
mod restart;
mod scale;
mod sdk;
mod security;
mod shutdown;
mod support;
mod tls;
mod walkthrough;

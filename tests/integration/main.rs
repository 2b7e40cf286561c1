//! Integration tests: a real test OIDC issuer and the real gateway on 127.0.0.1, talking HTTP.
//! One binary (see STYLE.md): every extra test binary costs link time.

mod admin;
mod audit_mode;
mod cli;
mod cold_start;
mod console;
mod conventions;
mod disclosure;
mod discovery;
mod dpop;
mod exchange;
mod http2;
mod inventory;
mod issuer_fetch;
mod issuer_trust;
mod metrics;
mod operations;
mod otlp;
mod private_ca;
mod properties;
mod redis_tls;
mod rejections;
mod request_context;
mod restart;
mod review;
mod sarif;
mod scale;
mod sdk;
mod security;
mod shutdown;
mod support;
mod tls;
mod token_helper;
mod walkthrough;

//! Integration tests: a real test OIDC issuer and the real gateway on 127.0.0.1, talking HTTP.
//! One binary (see STYLE.md): every extra test binary costs link time.

mod cli;
mod discovery;
mod exchange;
mod properties;
mod rejections;
mod restart;
mod security;
mod support;
mod walkthrough;

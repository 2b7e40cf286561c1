//! The admin listener (`--admin-listen`, default `127.0.0.1:9090`): the operator console, a
//! read-only JSON API (trust graph, explain, recent decisions, identities), and the probes and
//! scrape of the public listener.
//!
//! It shows what the policies, `policy explain` and the audit trail already know, from the
//! same code: [`graph`] over the compiled policy set and its lint findings, [`explain`] over
//! `exchange::explain`/`exchange::decide`, decisions from the audit trail's in-memory tail
//! ([`crate::telemetry::recent`]). It must not change state: no route grants, reloads or
//! writes anything. Off loopback it requires a bearer token ([`auth`]); the settings refuse
//! such a bind without one (exit 64).

pub mod auth;
pub mod console;
pub mod explain;

pub mod routes;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{App, HttpServer, web};

use crate::gateway::Gateway;

/// An actix server for the admin routes of `gateway` on an already bound listener (tests bind
/// `127.0.0.1:0`). One worker: it serves operators, not workloads.
pub fn server(
    gateway: Arc<Gateway>,
    listener: TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let grace = gateway.settings().shutdown_grace.as_secs();
    let data = web::Data::from(gateway);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(routes::headers())
            .configure(routes::configure)
    })
    .workers(1)
    .shutdown_timeout(grace)
    .disable_signals()
    .listen(listener)?;
    Ok(server.run())
}

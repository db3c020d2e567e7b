//! The NATS side of the Concord kernel: how a writing service runs on the
//! bus, and how one service follows another's log.
//!
//! Owns: serving a log on `concord.log.<service>.read/head` and the client
//! calls that read it (`logs`), JSON Schemas compiled once (`schema`), the
//! command/query runtime every writing service runs on (`runtime`), the
//! consumer that follows another log in order, once (`consumer`), a view
//! kept from another log (`follow`), one writing instance per service log
//! (`one_writer`), a nats-server child process (`nats_server`, for
//! `concord up` and the testkit), who may publish and subscribe what
//! (`permissions`, one table), the identities' keys and how to connect
//! as one (`credentials`), the certificates that put the connections
//! under TLS (`tls`), the process's metrics (`metrics`) and the trace
//! context carried across NATS (`trace`).
//!
//! Must not: hold a domain rule (those are the contracts'), or acknowledge
//! anything the log has not made durable.

mod cache;
pub mod consumer;
pub mod credentials;
pub mod follow;
pub mod logs;
pub mod metrics;
pub mod nats_server;
pub mod one_writer;
pub mod permissions;
pub mod runtime;
pub mod schema;
pub mod service;
pub mod tls;
pub mod trace;

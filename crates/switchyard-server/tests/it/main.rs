//! The gateway over real HTTP: reqwest clients against the server on loopback, in front of
//! `switchyard-mock` upstreams, everything on one manual clock.
#![cfg(test)]

mod admin;
mod alerts;
mod bulk_reset;
mod chat;
mod edge;
mod embeddings;
mod inbound;
mod learned;
mod metrics;
mod pin;
mod support;
mod telemetry;

//! The gateway over real HTTP: reqwest clients against the server on loopback, in front of
//! `switchyard-mock` upstreams, everything on one manual clock.
#![cfg(test)]

mod admin;
mod alerts;
mod analytics;
mod bulk_reset;
mod chat;
mod edge;
mod embeddings;
mod inbound;
mod keylife;
mod learned;
mod metrics;
mod pin;
mod reasoning;
mod support;
mod telemetry;

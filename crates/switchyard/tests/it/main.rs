//! The router over real HTTP against `switchyard-mock`, with one manual clock shared by the
//! mock, the ledger, the scorer and the router.
#![cfg(test)]

mod admin;
mod batch;
mod budget;
mod bulk_reset;
mod cache;
mod cascade;
mod concurrency;
mod embed;
mod goodput;
mod health;
mod hostile;
mod identity;
mod learned;
mod learning;
mod money;
mod names;
mod pin;
mod probe;
mod providers;
mod restore;
mod rules;
mod support;
mod wait;

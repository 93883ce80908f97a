//! The mock over real HTTP: what a client sees of its scripting.
#![cfg(test)]

mod openai;

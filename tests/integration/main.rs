//! End-to-end tests: real plugin components through the real host, on SQLite
//! and on the PostgreSQL of the test machine. One binary, a module per area
//! (`cargo test -p mercato --test integration sandbox::` runs one area).
mod common;

mod cluster;
mod console;
mod coupons;
mod crash;
mod events;
mod hotswap;
mod hotswap_load;
mod http;
mod journey;
mod keys;
mod layout;
mod lists;
mod outbound;
mod rebuild;
mod rules;
mod runtime;
mod sandbox;
mod search;
mod shop;
mod storage;
mod traces;

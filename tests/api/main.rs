//! Integration tests: the real engine on a temp directory and, for HTTP, a real server on
//! `127.0.0.1:0`. Crash tests start the real binary and `kill -9` it.

mod helpers;

mod bad_input;
mod binary;
mod checkout;
mod concurrency;
mod crash;
mod crash_checkout;
mod customers;
mod disk_full;
mod events;
mod hardening;
mod images;
mod lifecycle;
mod metrics;
mod model;
mod notify;
mod openapi;
mod pricing;
mod promotions;
mod recommend;
mod search;
mod spans;
mod storefront;
mod webhooks;

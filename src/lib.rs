//! `elicence`: a county's licence directory, batch conversion of stock paper licences, signed
//! licence versions, verification by QR code, and the link to the city e-licence library.
//!
//! Modules are named for what the domain calls things; data flows one way:
//! input → validate (`licence`) → licence version → sign (`signing`) → store (`store`).
#![forbid(unsafe_code)]

pub mod alerts;
pub mod app;
pub mod audit;
pub mod batch;
pub mod bench;
pub mod blobs;
pub mod cli;
pub mod config;
pub mod directory;
pub mod draft;
pub mod hash;
pub mod http;
pub mod identifiers;
pub mod licence;
pub mod messages;
pub mod panics;
pub mod render;
pub mod scans;
pub mod signing;
pub mod store;
pub mod supervision;
pub mod sync;
pub mod time_util;
pub mod transparency;
pub mod verify;
pub mod verify_cache;
pub mod verify_tally;

//! One test binary with a module per area: the crate links once instead of once per file.
//! `common` holds the helpers; each module's own doc says what it covers.

mod common;

mod alerts;
mod batch;
mod browser;
mod city_library;
mod cli;
mod console_batches;
mod console_browser;
mod console_licences;
mod console_pages;
mod console_signin;
mod disk_full;
mod drafts;
mod feed;
mod house;
mod http;
mod key_changes;
mod known_answers;
mod languages;
mod licences;
mod pades;
mod pdf;
mod permissions;
mod push;
mod qr_screen;
mod register;
mod renewals;
mod staff;
mod supervision;
mod supervision_summary;
mod transparency;
mod transparency_log;
mod uploads;
mod verification;

//! ztp-runtime: serve the artifacts of `ztpc build` (DHCP, TFTP, HTTP), reload them
//! atomically when they change, and keep every device's ZTP status.

pub mod access;
pub mod agent;
pub mod cli;
pub mod clock;
pub mod dhcp;
pub mod emulate;
pub mod events;
pub mod files;
pub mod generation;
pub mod group_commit;
pub mod http;
pub mod libm_free;
pub mod memory;
pub mod metrics;
pub mod paths;
pub mod progress;
pub mod reload;
pub mod services;
pub mod state;
pub mod status;
pub mod storage;
pub mod syslog;
pub mod tftp;
pub mod web;

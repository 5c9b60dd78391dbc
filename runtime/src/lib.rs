//! ztp-runtime: serve the artifacts of `ztpc build` (DHCP, TFTP, HTTP), reload them
//! atomically when they change, and keep every device's ZTP status.

pub mod agent;
pub mod cli;
pub mod clock;
pub mod dhcp;
pub mod events;
pub mod files;
pub mod generation;
pub mod http;
pub mod metrics;
pub mod paths;
pub mod reload;
pub mod services;
pub mod state;
pub mod status;
pub mod tftp;
pub mod tftp_packet;

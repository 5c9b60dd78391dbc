//! ztp-runtime: serve the artifacts of `ztpc build` (DHCP, TFTP, HTTP), reload them
//! atomically when they change, and keep every device's ZTP status.

pub mod dhcp;
pub mod files;
pub mod generation;
pub mod paths;
pub mod state;
pub mod tftp;

//! `ztp-emulate`: play one switch of a given NOS against a ZTP server, from power-on to
//! "completed": a relayed DHCP exchange with the NOS's own identifiers, the address
//! taken on, the boot file fetched as that NOS fetches it, the real bootstrap script run
//! with the NOS commands stubbed, reboots followed, and the runtime's verdict awaited.
//!
//! Each step is printed as it happens; `Journey::run` returns whether the runtime said
//! `completed` (the binary's exit 0) or `failed` / never finished (exit 1).

pub mod address;
pub mod bootfile;
pub mod device;
pub mod dhcp;
pub mod journey;
pub mod records;
pub mod retry;
pub mod sandbox;
pub mod status;
pub mod stubs;

pub use device::Device;
pub use journey::{Journey, Options};

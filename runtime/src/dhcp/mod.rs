//! DHCP: recognition, the pure reply function, leases and the socket server.
//!
//! A packet goes [`wire::decode`] → [`reply::reply`] (with [`classify`] and [`options`],
//! over the generation's [`config::Config`] and the [`leases`]) → [`addressing`] →
//! [`wire::encode`]; [`server`] runs that loop and commits pool leases through
//! [`journal`] before their ACKs leave.

pub mod addressing;
pub mod classify;
pub mod config;
pub mod journal;
pub mod leases;
pub mod options;
pub mod ratelimit;
pub mod reply;
pub mod server;
pub mod wire;

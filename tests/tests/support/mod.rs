//! Support for the DHCP tests that run real servers in network namespaces: the
//! namespaces, the servers, a relay-agent client, and what each NOS sends.
#![allow(dead_code)]

pub mod agreement;
pub mod netns;
pub mod nos;
pub mod relay_client;
pub mod servers;

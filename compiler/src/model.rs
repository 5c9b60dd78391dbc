//! The validated fabric: span-free, ordered, every value checked and every secret resolved.
//!
//! Renderers read only this; nothing here can be invalid, so renderers never fail on
//! user input.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

use crate::platform::Platform;
use crate::values::{Cidr, Mac};

#[derive(Debug, Clone)]
pub struct Fabric {
    pub name: String,
    pub server: Server,
    pub controller: Option<Controller>,
    pub dhcp: Dhcp,
    pub defaults: Settings,
    pub platforms: BTreeMap<Platform, Settings>,
    pub models: BTreeMap<String, Settings>,
    /// Sorted by name, so output never depends on the order devices are written in.
    pub devices: Vec<Device>,
}

#[derive(Debug, Clone, Copy)]
pub struct Server {
    pub address: Ipv4Addr,
    pub http_port: u16,
}

impl Server {
    /// The base of every URL a device fetches from us (no trailing slash).
    pub fn base_url(&self) -> String {
        if self.http_port == 80 {
            format!("http://{}", self.address)
        } else {
            format!("http://{}:{}", self.address, self.http_port)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Controller {
    pub url: String,
    pub user: String,
    pub password: Secret,
    pub ca_cert: Option<LocalFile>,
}

/// A secret's resolved value. `Debug` never shows it, so it cannot leak through a log
/// line or a panic message; only the renderers that must write it call [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A file named by the fabric, relative to the fabric file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// As written in the fabric (relative to the fabric file's directory).
    pub rel: String,
    /// Where it was read from on this machine (never written into artifacts).
    pub path: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct DhcpOptions {
    pub domain_name: Option<String>,
    pub domain_search: Option<Vec<String>>,
    pub dns: Option<Vec<Ipv4Addr>>,
    pub ntp: Option<Vec<Ipv4Addr>>,
}

impl DhcpOptions {
    /// `self` with unset options taken from `outer` (a subnet over the global scope).
    pub fn over(&self, outer: &DhcpOptions) -> DhcpOptions {
        DhcpOptions {
            domain_name: self.domain_name.clone().or_else(|| outer.domain_name.clone()),
            domain_search: self.domain_search.clone().or_else(|| outer.domain_search.clone()),
            dns: self.dns.clone().or_else(|| outer.dns.clone()),
            ntp: self.ntp.clone().or_else(|| outer.ntp.clone()),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.domain_name.is_none() && self.domain_search.is_none() && self.dns.is_none() && self.ntp.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct Dhcp {
    pub options: DhcpOptions,
    pub lease_time: u32,
    pub max_lease_time: u32,
    /// Interfaces Kea listens on; `*` by default so the file validates anywhere.
    pub interfaces: Vec<String>,
    pub subnets: Vec<Subnet>,
}

#[derive(Debug, Clone)]
pub struct Subnet {
    pub cidr: Cidr,
    pub router: Option<Ipv4Addr>,
    pub pools: Vec<Pool>,
    /// Only the options this subnet overrides.
    pub options: DhcpOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Pool {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl Pool {
    pub fn contains(self, a: Ipv4Addr) -> bool {
        self.first <= a && a <= self.last
    }
}

/// Where a custom-config script or an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Local(LocalFile),
    Url(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub source: Resource,
    /// Declared or, for a local file, computed.
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

/// The agent properties, each optional so that blocks merge key by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    pub agent_type: Option<String>,
    pub install_requirements: Option<bool>,
    pub job_on_create: Option<String>,
    pub operation_mode: Option<String>,
}

impl Agent {
    pub fn is_empty(&self) -> bool {
        *self == Agent::default()
    }
    /// `self` over `base`, key by key.
    pub fn over(&self, base: &Agent) -> Agent {
        Agent {
            agent_type: self.agent_type.clone().or_else(|| base.agent_type.clone()),
            install_requirements: self.install_requirements.or(base.install_requirements),
            job_on_create: self.job_on_create.clone().or_else(|| base.job_on_create.clone()),
            operation_mode: self.operation_mode.clone().or_else(|| base.operation_mode.clone()),
        }
    }
}

/// One block of settings (defaults, a platform, a model or a device), as written.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub root_password: Option<Secret>,
    pub device_user: Option<String>,
    pub device_user_password: Option<Secret>,
    pub agent: Agent,
    pub custom_config: Option<Resource>,
    pub versions: Option<Vec<String>>,
    pub image: Option<Image>,
    pub dual_routing_engine: Option<bool>,
}

impl Settings {
    /// `self` over `base`, key by key (the precedence rule of fabric-spec.md).
    pub fn over(&self, base: &Settings) -> Settings {
        Settings {
            root_password: self.root_password.clone().or_else(|| base.root_password.clone()),
            device_user: self.device_user.clone().or_else(|| base.device_user.clone()),
            device_user_password: self
                .device_user_password
                .clone()
                .or_else(|| base.device_user_password.clone()),
            agent: self.agent.over(&base.agent),
            custom_config: self.custom_config.clone().or_else(|| base.custom_config.clone()),
            versions: self.versions.clone().or_else(|| base.versions.clone()),
            image: self.image.clone().or_else(|| base.image.clone()),
            dual_routing_engine: self.dual_routing_engine.or(base.dual_routing_engine),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Location {
    pub remote_id: Option<String>,
    pub circuit_id: String,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub name: String,
    pub platform: Platform,
    pub mac: Option<Mac>,
    pub serial: Option<String>,
    pub address: Option<Ipv4Addr>,
    pub model: Option<String>,
    pub location: Option<Location>,
    /// The device's own block; [`crate::merge`] folds in model, platform and defaults.
    pub settings: Settings,
}

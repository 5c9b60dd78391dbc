//! runtime.json: everything ztp-runtime needs to serve this fabric (DHCP answers, the
//! served tree with checksums, images, the controller) without re-parsing dhcpd.conf.
//!
//! The types here are the contract: the compiler serialises them and the runtime
//! deserialises the same types. `schema` changes whenever a field changes meaning, and
//! the runtime refuses a schema it does not know.

use std::net::Ipv4Addr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{DhcpOptions, Fabric, Location, Pool, Resource};
use crate::platform::{BootOption, Platform};
use crate::render::identity::{self, DhcpIdentity};
use crate::render::{BuildOptions, Index, TFTP_DIR, boot_value, image_path};
use crate::values::{Cidr, Mac};

pub const SCHEMA: u32 = 1;

/// runtime.json as written and read: [`ManifestOf`] with both long lists parsed.
pub type Manifest = ManifestOf<Arc<Vec<DeviceInfo>>, Vec<FileInfo>>;

/// runtime.json, with its two long lists (`devices`, `files`: nearly all of the file for a
/// large fabric) of types of the reader's choosing. The runtime reads them first as raw
/// JSON, then parses the two on separate threads (a reload of 10,000 devices parses 5 MB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ManifestOf<D, F> {
    pub schema: u32,
    pub fabric: String,
    pub server: ServerInfo,
    pub dhcp: DhcpInfo,
    /// Keyed by platform name, in [`Platform::ALL`] order.
    pub platforms: Vec<PlatformInfo>,
    /// Shared, not copied, by whoever needs it beside the manifest (the runtime's DHCP
    /// configuration): 0.3 MB for 1,000 devices.
    pub devices: D,
    /// The served tree's directory, relative to the artifact directory.
    pub tftp_root: String,
    pub files: F,
    pub images: Vec<ImageInfo>,
    pub controller: Option<ControllerInfo>,
}

impl<D, F> ManifestOf<D, F> {
    /// The same manifest with `devices` and `files` in place of its lists.
    pub fn with_lists<D2, F2>(self, devices: D2, files: F2) -> ManifestOf<D2, F2> {
        let ManifestOf { schema, fabric, server, dhcp, platforms, tftp_root, images, controller, .. } = self;
        ManifestOf { schema, fabric, server, dhcp, platforms, devices, tftp_root, files, images, controller }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServerInfo {
    pub address: Ipv4Addr,
    pub http_port: u16,
    pub base_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DhcpInfo {
    pub lease_time: u32,
    pub max_lease_time: u32,
    pub tftp_server_name: Ipv4Addr,
    pub subnets: Vec<SubnetInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SubnetInfo {
    #[serde(with = "cidr_str")]
    pub cidr: Cidr,
    pub router: Option<Ipv4Addr>,
    pub pools: Vec<Pool>,
    /// Effective options: the subnet's own over the global ones.
    pub options: OptionsInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OptionsInfo {
    pub domain_name: Option<String>,
    pub domain_search: Option<Vec<String>>,
    pub dns: Option<Vec<Ipv4Addr>>,
    pub ntp: Option<Vec<Ipv4Addr>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PlatformInfo {
    pub platform: Platform,
    /// The class name in dhcpd.conf and kea-dhcp4.json.
    pub class: String,
    pub boot_option: BootOption,
    pub boot_value: String,
    pub script: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityKind {
    Mac,
    Location,
    Serial,
    ScriptOnly,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DeviceInfo {
    pub name: String,
    pub platform: Platform,
    #[serde(with = "mac_str")]
    pub mac: Option<Mac>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub address: Option<Ipv4Addr>,
    pub location: Option<Location>,
    /// Which identity DHCP matches this device by (the first it has of these).
    pub dhcp_identity: IdentityKind,
    pub boot_value: String,
    pub script: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileInfo {
    pub path: String,
    pub sha256: String,
    pub size: u64,
    /// Octal, as written to disk (0600 for files holding secrets).
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ImageInfo {
    /// URL path (no leading slash) the runtime serves it at.
    pub path: String,
    /// Where the file is, relative to the artifact directory.
    pub source: String,
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

/// `Debug` masks the password so that a logged manifest or generation never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ControllerInfo {
    pub url: String,
    pub user: String,
    pub password: String,
    /// Relative to the artifact directory.
    pub ca_cert: Option<String>,
}

impl std::fmt::Debug for ControllerInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerInfo")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &"***")
            .field("ca_cert", &self.ca_cert)
            .finish()
    }
}

mod cidr_str {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::values::{Cidr, parse_cidr};

    pub fn serialize<S: Serializer>(c: &Cidr, s: S) -> Result<S::Ok, S::Error> {
        c.serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        parse_cidr(&s).map_err(serde::de::Error::custom)
    }
}

mod mac_str {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::values::{Mac, parse_mac};

    pub fn serialize<S: Serializer>(m: &Option<Mac>, s: S) -> Result<S::Ok, S::Error> {
        m.serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Mac>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| parse_mac(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

/// Build the manifest for `fabric` whose served tree's files are `index`.
pub fn manifest(f: &Fabric, index: &Index, opts: &BuildOptions) -> Manifest {
    let platforms = Platform::ALL
        .iter()
        .map(|p| PlatformInfo {
            platform: *p,
            class: p.dhcp_class().to_string(),
            boot_option: p.boot_option(),
            boot_value: boot_value(f, *p, &p.script_path()),
            script: p.script_path(),
        })
        .collect();
    let subnets = f
        .dhcp
        .subnets
        .iter()
        .map(|s| SubnetInfo {
            cidr: s.cidr,
            router: s.router,
            pools: s.pools.clone(),
            options: options(&s.options.over(&f.dhcp.options)),
        })
        .collect();
    let devices = f
        .devices
        .iter()
        .map(|d| {
            let script = d.platform.device_script_path(&d.name);
            DeviceInfo {
                name: d.name.clone(),
                platform: d.platform,
                mac: d.mac,
                serial: d.serial.clone(),
                model: d.model.clone(),
                address: d.address,
                location: d.location.clone(),
                dhcp_identity: match identity::dhcp_identity(d) {
                    DhcpIdentity::Mac(_) => IdentityKind::Mac,
                    DhcpIdentity::Location(_) => IdentityKind::Location,
                    DhcpIdentity::Serial(_) => IdentityKind::Serial,
                    DhcpIdentity::ScriptOnly => IdentityKind::ScriptOnly,
                },
                boot_value: boot_value(f, d.platform, &script),
                script,
            }
        })
        .collect();
    let files = index
        .iter()
        .map(|(path, s)| FileInfo {
            path: path.clone(),
            sha256: s.sha256.clone(),
            size: s.size,
            mode: format!("{:o}", s.mode),
        })
        .collect();
    let mut images: Vec<ImageInfo> = Vec::new();
    let blocks = std::iter::once(&f.defaults)
        .chain(f.platforms.values())
        .chain(f.models.values())
        .chain(f.devices.iter().map(|d| &d.settings));
    for s in blocks {
        let Some(img) = &s.image else { continue };
        let Resource::Local(file) = &img.source else { continue };
        let entry = ImageInfo {
            path: image_path(&file.rel),
            source: format!("{}/{}", opts.fabric_dir_from_out, file.rel),
            sha256: img.sha256.clone(),
            size: img.size,
        };
        if !images.contains(&entry) {
            images.push(entry);
        }
    }
    images.sort_by(|a, b| a.path.cmp(&b.path));
    let controller = f.controller.as_ref().map(|c| ControllerInfo {
        url: c.url.clone(),
        user: c.user.clone(),
        password: c.password.expose().to_string(),
        ca_cert: c.ca_cert.as_ref().map(|p| format!("{}/{}", opts.fabric_dir_from_out, p.rel)),
    });
    Manifest {
        schema: SCHEMA,
        fabric: f.name.clone(),
        server: ServerInfo {
            address: f.server.address,
            http_port: f.server.http_port,
            base_url: f.server.base_url(),
        },
        dhcp: DhcpInfo {
            lease_time: f.dhcp.lease_time,
            max_lease_time: f.dhcp.max_lease_time,
            tftp_server_name: f.server.address,
            subnets,
        },
        platforms,
        devices: Arc::new(devices),
        tftp_root: TFTP_DIR.to_string(),
        files,
        images,
        controller,
    }
}

pub fn render(f: &Fabric, index: &Index, opts: &BuildOptions) -> String {
    let mut s = serde_json::to_string_pretty(&manifest(f, index, opts)).unwrap_or_default();
    s.push('\n');
    s
}

fn options(o: &DhcpOptions) -> OptionsInfo {
    OptionsInfo {
        domain_name: o.domain_name.clone(),
        domain_search: o.domain_search.clone(),
        dns: o.dns.clone(),
        ntp: o.ntp.clone(),
    }
}

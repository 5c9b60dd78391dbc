//! Settings precedence, key by key: device > model > platform > defaults.

use crate::model::{Device, Fabric, Settings};

/// Everything a device gets, with each key taken from the most specific block that sets it.
pub fn effective(fabric: &Fabric, device: &Device) -> Settings {
    let mut s = fabric.defaults.clone();
    if let Some(p) = fabric.platforms.get(&device.platform) {
        s = p.over(&s);
    }
    if let Some(m) = device.model.as_ref().and_then(|m| fabric.models.get(m)) {
        s = m.over(&s);
    }
    device.settings.over(&s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::platform::Platform;
    use std::collections::BTreeMap;

    fn versions(v: &[&str]) -> Settings {
        Settings { versions: Some(v.iter().map(|s| s.to_string()).collect()), ..Settings::default() }
    }

    #[test]
    fn most_specific_block_wins_key_by_key() {
        let mut defaults = versions(&["d"]);
        defaults.device_user = Some("aosadmin".into());
        defaults.agent =
            Agent { agent_type: Some("onbox".into()), install_requirements: Some(true), ..Agent::default() };
        let mut platform = versions(&["p"]);
        platform.agent.agent_type = Some("offbox".into());
        let model = versions(&["m"]);
        let own = Settings { root_password: Some(Secret::new("x".into())), ..Settings::default() };
        let fabric = Fabric {
            name: "f".into(),
            server: Server { address: [10, 0, 0, 2].into(), http_port: 80 },
            controller: None,
            dhcp: Dhcp {
                options: DhcpOptions::default(),
                lease_time: 1,
                max_lease_time: 1,
                interfaces: vec![],
                subnets: vec![],
            },
            defaults,
            platforms: BTreeMap::from([(Platform::Junos, platform)]),
            models: BTreeMap::from([("QFX".to_string(), model)]),
            devices: vec![],
        };
        let mut dev = Device {
            name: "leaf1".into(),
            platform: Platform::Junos,
            mac: None,
            serial: None,
            address: None,
            model: Some("QFX".into()),
            location: None,
            settings: own,
        };
        let e = effective(&fabric, &dev);
        assert_eq!(e.versions.unwrap(), ["m"]);
        assert_eq!(e.device_user.as_deref(), Some("aosadmin"));
        assert_eq!(e.agent.agent_type.as_deref(), Some("offbox"));
        assert_eq!(e.agent.install_requirements, Some(true));
        assert_eq!(e.root_password.unwrap().expose(), "x");
        dev.model = None;
        dev.platform = Platform::Eos;
        assert_eq!(effective(&fabric, &dev).versions.unwrap(), ["d"]);
    }
}

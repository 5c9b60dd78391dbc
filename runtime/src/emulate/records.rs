//! What the stubs recorded during one run of the script (`commands.log`), and what it
//! means for the device: an image installed, a reboot asked for, config saved.

use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Every call, in order, hashes blanked.
    pub commands: Vec<String>,
}

impl Record {
    pub fn read(path: &Path) -> Record {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        Record { commands: text.lines().map(str::to_string).collect() }
    }

    /// The calls that change the device (not the reads of its facts).
    pub fn actions(&self) -> Vec<&str> {
        self.commands.iter().map(String::as_str).filter(|c| !is_read(c)).collect()
    }

    /// The image file installed and its sha256, from the last install.
    pub fn image(&self) -> Option<(&str, &str)> {
        self.commands.iter().rev().find_map(|c| {
            let rest = c.strip_prefix("image: ")?;
            let (file, sum) = rest.rsplit_once(" sha256=")?;
            Some((file, sum))
        })
    }

    pub fn rebooted(&self) -> bool {
        self.commands.iter().any(|c| c.starts_with("reboot: "))
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.commands.iter().any(|c| c.contains(needle))
    }
}

/// Reads of facts and the transport of reports: not actions.
fn is_read(c: &str) -> bool {
    let shows =
        ["cli -c show ", "FastCli -p 15 -c show ", "clid show ", "decode-syseeprom", "sonic-cfggen", "show "];
    shows.iter().any(|p| c.starts_with(p))
        || c == "nv show platform -o json"
        || (c.starts_with("cli terminal dont-ask ; copy http") && c.contains("/api/ztp/device/log?"))
}

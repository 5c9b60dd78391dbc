//! Command-line interface of `ztpc`: argument parsing, and turning outcomes into output
//! and exit codes (0 ok, 1 the fabric has errors, 2 usage or I/O problem).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{BuildOptions, Host, Outcome, RenderStyle, diag};

#[derive(Parser, Debug)]
#[command(
    name = "ztpc",
    version,
    about = "Compile a fabric.kdl into validated zero-touch-provisioning artifacts",
    long_about = "ztpc reads one declarative fabric file (KDL 2.0) and writes everything a ZTP server \
needs: ISC dhcpd.conf, kea-dhcp4.json, Apstra's ztp.json, bootstrap scripts per NOS platform and \
per device, and the TFTP/HTTP tree that ztp-runtime serves.\n\n\
Exit codes: 0 success (warnings allowed), 1 the fabric has errors, 2 usage or I/O problem.",
    after_help = "Examples:\n  ztpc check examples/dc1/fabric.kdl --env-file examples/dc1/demo.env\n  ztpc build examples/dc1/fabric.kdl --env-file examples/dc1/demo.env -o out/"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a fabric file and write all artifacts to a directory, atomically.
    #[command(
        long_about = "Validate FABRIC and write its artifacts to DIR: dhcpd.conf, kea-dhcp4.json, \
runtime.json and tftp/ (ztp.json, bootstrap scripts, custom-config files, SHA256SUMS).\n\n\
The write is atomic: the new tree is built beside DIR and swapped in, so a failed build leaves \
DIR as it was (and does not create it). DIR must be empty, missing, or an earlier ztpc output.",
        after_help = "Example:\n  ztpc build examples/dc1/fabric.kdl --env-file examples/dc1/demo.env -o out/"
    )]
    Build {
        #[command(flatten)]
        common: Common,
        /// Output directory.
        #[arg(short = 'o', long = "out", value_name = "DIR")]
        out: PathBuf,
    },
    /// Validate a fabric file without writing anything.
    #[command(
        long_about = "Parse and validate FABRIC, reading the files and environment variables it names, \
and report every problem at once. Nothing is written.",
        after_help = "Example:\n  ztpc check examples/lab/fabric.kdl"
    )]
    Check {
        #[command(flatten)]
        common: Common,
    },
    /// Show what one device, or a hypothetical DHCP request, gets and why.
    #[command(
        long_about = "Explain what a device gets from FABRIC and why: which identity DHCP recognises it by, \
the DHCP class and the exact options it is answered with, the boot file and the script in the tree, the \
image and its sha256, and each merged setting with the block it comes from (device, model, platform, \
defaults). Secrets are shown as ***.\n\n\
QUERY is a device name, a MAC (any notation) or a serial. With --dhcp-request OPT=VALUE options (and \
QUERY `-` or none) it explains a hypothetical request instead: which platform class and which device \
class match, hence what an unknown device would get. OPT is 60, 61, 77, 12, 82.1 (circuit-id), 82.2 \
(remote-id) or mac; VALUE is text, or hex as 0x....\n\n\
Exit codes: 0 explained, 1 the fabric has errors or no device matches QUERY, 2 usage or I/O problem.",
        after_help = "Examples:\n  ztpc explain examples/dc1/fabric.kdl leaf1 --env-file examples/dc1/demo.env\n  \
ztpc explain examples/lab/fabric.kdl 5254.0099.0021\n  \
ztpc explain examples/dc1/fabric.kdl --env-file examples/dc1/demo.env \\\n      \
--dhcp-request 60=Juniper-qfx5120-48y-WS3718350110 --dhcp-request 77=23.2R1.15-EVO"
    )]
    Explain(crate::explain::ExplainArgs),
    /// Show, per device, what rebuilding a fabric would change in a built directory.
    #[command(
        long_about = "Build FABRIC in memory and compare it with DIR, an earlier `ztpc build` output, \
without writing anything: per device, its tftp/devices/ files, its dhcpd.conf host or class block and \
its ztp.json section; then the fabric-wide changes. Secrets are never shown: a changed secret, or a \
changed file holding secrets, shows only as changed.",
        after_help = "Example:\n  ztpc diff examples/dc1/fabric.kdl --env-file examples/dc1/demo.env -o out/"
    )]
    Diff {
        #[command(flatten)]
        common: Common,
        /// The built directory to compare with.
        #[arg(short = 'o', long = "out", value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct Common {
    /// The fabric file (KDL 2.0).
    #[arg(value_name = "FABRIC")]
    pub fabric: PathBuf,
    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Read `(env)` secrets from KEY=VALUE lines in FILE; the process environment wins.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Colour in diagnostics.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Color {
    Auto,
    Always,
    Never,
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Explain(args) => {
            let code =
                crate::explain::run(&args, &mut std::io::stdout().lock(), &mut std::io::stderr().lock());
            ExitCode::from(code)
        }
        Command::Diff { common, out } => {
            let code = crate::explain::run_diff(
                &common,
                &out,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            );
            ExitCode::from(code)
        }
        Command::Check { common } => {
            let Some((text, env)) = load(&common) else { return ExitCode::from(2) };
            let host = Host { base_dir: base_dir(&common.fabric), env: &|k| lookup(&env, k) };
            let out = crate::check(&text, &host);
            finish(&common, &text, out, None)
        }
        Command::Build { common, out } => {
            let Some((text, env)) = load(&common) else { return ExitCode::from(2) };
            let host = Host { base_dir: base_dir(&common.fabric), env: &|k| lookup(&env, k) };
            let opts = BuildOptions { fabric_dir_from_out: relative_from(&out, &host.base_dir) };
            let outcome = crate::check(&text, &host);
            finish(&common, &text, outcome, Some((&out, &opts)))
        }
    }
}

fn load(c: &Common) -> Option<(String, HashMap<String, String>)> {
    let text = match std::fs::read_to_string(&c.fabric) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", c.fabric.display());
            return None;
        }
    };
    let mut env = HashMap::new();
    if let Some(path) = &c.env_file {
        match std::fs::read_to_string(path) {
            Ok(t) => env = parse_env_file(&t),
            Err(e) => {
                eprintln!("error: cannot read env file {}: {e}", path.display());
                return None;
            }
        }
    }
    Some((text, env))
}

/// KEY=VALUE lines; blank lines and `#` comments ignored; optional matching quotes.
pub fn parse_env_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

fn lookup(file: &HashMap<String, String>, key: &str) -> Option<String> {
    std::env::var(key).ok().or_else(|| file.get(key).cloned())
}

fn base_dir(fabric: &Path) -> PathBuf {
    match fabric.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn finish(c: &Common, text: &str, mut out: Outcome, dest: Option<(&Path, &BuildOptions)>) -> ExitCode {
    if c.deny_warnings {
        out.diagnostics.deny_warnings();
    }
    let name = c.fabric.display().to_string();
    let color = match c.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    if !out.diagnostics.items().is_empty() {
        let width = if color { 120 } else { RenderStyle::PLAIN.width };
        eprint!("{}", diag::render(&out.diagnostics, &name, text, RenderStyle { color, width }));
    }
    if out.diagnostics.has_errors() {
        return ExitCode::from(1);
    }
    let Some(fabric) = &out.fabric else { return ExitCode::from(1) };
    let platforms: std::collections::BTreeSet<_> = fabric.devices.iter().map(|d| d.platform).collect();
    let summary = format!(
        "{}: fabric \"{}\", {} device{}, {} platform{} in use",
        name,
        fabric.name,
        fabric.devices.len(),
        diag::plural(fabric.devices.len()),
        platforms.len(),
        diag::plural(platforms.len()),
    );
    match dest {
        Some((dir, opts)) => {
            let (files, done) = match crate::write(fabric, opts, dir) {
                Ok(done) => done,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if done.unchanged == 0 {
                println!("{summary}; {} files written to {}", done.written, dir.display());
            } else {
                println!(
                    "{summary}; {files} files in {}: {} written, {} unchanged since the last build",
                    dir.display(),
                    done.written,
                    done.unchanged
                );
            }
        }
        None => println!("{summary}; ok"),
    }
    ExitCode::SUCCESS
}

/// `to` as a relative path from directory `from` (which may not exist yet), so that the
/// runtime finds local images from the output directory wherever the pair is moved.
pub fn relative_from(from: &Path, to: &Path) -> String {
    let abs = |p: &Path| -> PathBuf {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        // Resolve symlinks where the path exists, then drop `.` and `..` lexically.
        let mut existing = p.clone();
        let mut tail = Vec::new();
        while !existing.exists() {
            match (existing.file_name(), existing.parent()) {
                (Some(n), Some(parent)) => {
                    tail.push(n.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        let mut base = existing.canonicalize().unwrap_or(existing);
        for n in tail.into_iter().rev() {
            base.push(n);
        }
        let mut out = PathBuf::new();
        for c in base.components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    };
    let (from, to) = (abs(from), abs(to));
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".into(); f.len() - common];
    parts.extend(t[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    if parts.is_empty() { ".".into() } else { parts.join("/") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_lines() {
        let m = parse_env_file("# c\nA=1\nexport B=\"two words\"\n\nC='x=y'\nbad line\n");
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "x=y");
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_from(Path::new("/a/b/out"), Path::new("/a/examples/dc1")), "../../examples/dc1");
        assert_eq!(relative_from(Path::new("/a"), Path::new("/a")), ".");
    }
}

//! `ztp-runtime`: not serving yet. This binary exists so the workspace layout is final;
//! serving DHCP/TFTP/HTTP lands with issue 3.

fn main() -> std::process::ExitCode {
    eprintln!(
        "ztp-runtime: serving is not implemented in this build yet; run ISC dhcpd or Kea with the \
         generated dhcpd.conf / kea-dhcp4.json and any TFTP/HTTP server over out/tftp/"
    );
    std::process::ExitCode::from(2)
}

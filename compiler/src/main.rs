//! `ztpc`: the fabric compiler's command line; everything lives in the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    ztpc::cli::run(ztpc::cli::Cli::parse())
}

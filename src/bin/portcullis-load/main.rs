//! `portcullis-load`: a single-threaded load generator for AAA servers, so
//! the server under test keeps the other cores. One subcommand per protocol;
//! each lives in its own module and reports through [`report::Report`], so
//! every protocol prints the same human summary and JSON line.
//!
//! ```text
//! portcullis-load radius --server 127.0.0.1:1812 --secret testing123 \
//!     --user alice --password alice-pass-1 --outstanding 32 --duration 10
//! ```

use clap::{Parser, Subcommand};

mod radius;
mod report;
mod tacacs;

#[derive(Parser)]
#[command(
    name = "portcullis-load",
    version,
    about = "Load generator for RADIUS (and later TACACS+) servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// PAP Access-Requests with Message-Authenticator; every reply verified.
    Radius(radius::Args),
    /// Prints `[[user]]` configuration blocks for `radius --users N`.
    #[command(hide = true)]
    RadiusUsers(radius::UsersArgs),
    /// TACACS+ logins: PAP authentication then shell authorization.
    Tacacs(tacacs::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Radius(args) => radius::run(&args),
        Command::RadiusUsers(args) => radius::print_users(&args),
        Command::Tacacs(args) => tacacs::run(&args),
    }
}

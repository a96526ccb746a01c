//! The `orderflow-admin` binary: arguments in, report out, exit status.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut out = std::io::stdout();
    match orderflow_admin::cli::run(std::env::args_os(), &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orderflow-admin: {}", platform::error::chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

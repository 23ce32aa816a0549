use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = mercato::cli::Cli::parse();
    let telemetry = mercato::telemetry::init(cli.log_format());
    let ran = mercato::cli::run(cli).await;
    // After a graceful stop (SIGTERM included): the last spans go out.
    telemetry.shutdown().await;
    match ran {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mercato: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = mercato::cli::Cli::parse();
    mercato::telemetry::init(cli.log_format());
    match mercato::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mercato: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

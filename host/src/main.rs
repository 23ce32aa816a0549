use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "info,tower_http=warn,sqlx=warn,wasmtime=warn,cranelift=warn".into()
            }),
        )
        .init();
    match mercato::cli::run(mercato::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mercato: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

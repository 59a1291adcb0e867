//! `accumen devnet-l0`: the HTTP shell of the local L0 stand-in
//! (`accumen_actors::bridge::devnet`, which holds every rule). It serves `POST /v3` on
//! `--listen`, ticks a simulated block every `--block-time`, and, with `--control`, serves the
//! fault switches and test levers as JSON over HTTP (RUNBOOK "Local L0 (devnet-l0)").
//!
//! Invariants:
//! - One request body is at most [`MAX_BODY_BYTES`] (413 beyond) and at most
//!   [`MAX_CONNECTIONS`] connections are open at once (more are closed on accept); the answer is
//!   built from the ledger under one lock, so a client can hold at most its own request.
//! - `--listen` is a small TCP front that forwards each connection to the internal actix-web
//!   server on loopback. It exists for one switch: with `refuse` on, a new connection is closed
//!   the moment it is accepted and open ones are cut, which actix-web cannot do itself. A client
//!   then sees exactly what a dead L0 looks like (connection closed or reset).
//! - The INFO line `listening` carries `v3=ADDR` and `control=ADDR` (tests bind port 0 and read
//!   them), as the node's does.
//! - SIGINT/SIGTERM: the ledger is saved (with `--data-dir`) and the process exits 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use accumen_actors::bridge::devnet::{Devnet, DevnetConfig};
use accumen_actors::bridge::encoding::AccUrl;
use accumen_actors::types::PublicKey;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::{Context as _, anyhow};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Largest `/v3` request body (an envelope at the 20 480 B limit is ~45 KB of JSON).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Largest control request body.
const MAX_CONTROL_BYTES: usize = 16 * 1024;
/// Most `/v3` connections open at once through the front.
const MAX_CONNECTIONS: usize = 256;

/// `accumen devnet-l0 …`
#[derive(Debug, Clone, clap::Args)]
pub struct DevnetArgs {
    /// Address of the JSON-RPC listener (`POST /v3`), e.g. 127.0.0.1:26660 (port 0: any).
    #[arg(long)]
    pub listen: SocketAddr,
    /// The key page that signs, e.g. acc://accumen.acme/book/1 (its book is the data
    /// account's authority).
    #[arg(long)]
    pub key_page: String,
    /// An Ed25519 public key (64 hex digits) of the page; repeat for several keys.
    #[arg(long = "public-key", required = true)]
    pub public_keys: Vec<String>,
    /// The data account the page may write, e.g. acc://accumen.acme/anchors.
    #[arg(long)]
    pub data_account: String,
    /// The page's starting balance in credit units (0.01 credit each; an anchor costs 10).
    #[arg(long, default_value_t = 1_000_000)]
    pub credits: u64,
    /// Time between simulated blocks (pending submissions execute at each block).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub block_time: Duration,
    /// Keep the ledger here across restarts (one JSON file, replaced atomically).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address of the control API (fault switches, test levers); loopback only. Off if unset.
    #[arg(long)]
    pub control: Option<SocketAddr>,
}

fn config(args: &DevnetArgs) -> anyhow::Result<DevnetConfig> {
    let key_page = AccUrl::parse(&args.key_page)
        .map_err(|e| anyhow!("--key-page {:?}: {e}", args.key_page))?;
    let data_account = AccUrl::parse(&args.data_account)
        .map_err(|e| anyhow!("--data-account {:?}: {e}", args.data_account))?;
    let public_keys = args
        .public_keys
        .iter()
        .map(|k| {
            PublicKey::from_hex(k.strip_prefix("0x").unwrap_or(k))
                .map_err(|e| anyhow!("--public-key {k:?}: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.block_time < Duration::from_millis(10) {
        return Err(anyhow!("--block-time must be at least 10ms"));
    }
    if let Some(c) = args.control
        && !c.ip().is_loopback()
    {
        return Err(anyhow!(
            "--control {c} must be a loopback address: it can switch the stand-in's state"
        ));
    }
    Ok(DevnetConfig {
        key_page,
        public_keys,
        data_account,
        credits: args.credits,
    })
}

/// Runs the stand-in until SIGINT or SIGTERM.
pub fn run(args: DevnetArgs) -> anyhow::Result<()> {
    crate::telemetry::init("info", crate::settings::LogFormat::Text);
    let config = config(&args)?;
    let devnet =
        Arc::new(Devnet::open(&config, args.data_dir.as_deref()).context("starting devnet-l0")?);
    actix_web::rt::System::new().block_on(serve(args, devnet))
}

async fn v3(devnet: web::Data<Devnet>, body: web::Bytes) -> HttpResponse {
    let delay = devnet.faults().delay_ms;
    if delay > 0 {
        actix_web::rt::time::sleep(Duration::from_millis(delay)).await;
    }
    match devnet.handle(&body) {
        Some(answer) => HttpResponse::Ok()
            .content_type("application/json")
            .body(answer),
        None => HttpResponse::NoContent().finish(),
    }
}

async fn control(
    devnet: web::Data<Devnet>,
    refuse: web::Data<watch::Sender<bool>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (code, answer) = devnet.control(req.method().as_str(), req.path(), &body);
    refuse.send_replace(devnet.faults().refuse);
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(code)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .json(answer)
}

async fn serve(args: DevnetArgs, devnet: Arc<Devnet>) -> anyhow::Result<()> {
    let data = web::Data::from(devnet.clone());
    let (refuse_tx, refuse_rx) = watch::channel(false);
    let refuse_tx = web::Data::new(refuse_tx);

    let d = data.clone();
    let inner = HttpServer::new(move || {
        App::new()
            .app_data(d.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .route("/v3", web::post().to(v3))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(("127.0.0.1", 0))
    .context("binding the internal /v3 server")?;
    let inner_addr = *inner
        .addrs()
        .first()
        .ok_or_else(|| anyhow!("internal /v3 server has no address"))?;
    let inner = inner.run();

    let front = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding --listen {}", args.listen))?;
    let v3_addr = front.local_addr()?;

    let mut handles = vec![inner.handle()];
    let mut control_addr = None;
    if let Some(addr) = args.control {
        let (d, r) = (data.clone(), refuse_tx.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(d.clone())
                .app_data(r.clone())
                .app_data(web::PayloadConfig::new(MAX_CONTROL_BYTES))
                .default_service(web::to(control))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(addr)
        .with_context(|| format!("binding --control {addr}"))?;
        control_addr = server.addrs().first().copied();
        let server = server.run();
        handles.push(server.handle());
        actix_web::rt::spawn(server);
    }
    actix_web::rt::spawn(inner);
    actix_web::rt::spawn(accept_loop(front, inner_addr, refuse_rx));

    let blocks = devnet.clone();
    let block_time = args.block_time;
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(block_time);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match blocks.block() {
                Ok(r) if !r.delivered.is_empty() || r.failed > 0 => tracing::info!(
                    height = r.height,
                    delivered = r.delivered.len(),
                    failed = r.failed,
                    "devnet-l0 block"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!("devnet-l0 failed to save its state: {e}"),
            }
        }
    });

    tracing::info!(
        v3 = %v3_addr,
        control = %control_addr.map_or_else(|| "-".to_string(), |a| a.to_string()),
        key_page = %args.key_page,
        data_account = %args.data_account,
        "listening"
    );

    wait_for_signal().await;
    tracing::info!("devnet-l0 stopping");
    for h in handles {
        h.stop(false).await;
    }
    devnet.save().context("saving devnet-l0 state")?;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The `--listen` front (module docs): forwards connections, or closes them while `refuse` is on.
async fn accept_loop(front: TcpListener, inner: SocketAddr, refuse: watch::Receiver<bool>) {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((client, _)) = front.accept().await else {
            // Out of descriptors or a transient error: do not spin on it.
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if *refuse.borrow() {
            drop(client);
            continue;
        }
        let Ok(permit) = open.clone().try_acquire_owned() else {
            drop(client);
            continue;
        };
        let mut refuse = refuse.clone();
        actix_web::rt::spawn(async move {
            let _permit = permit;
            let Ok(server) = TcpStream::connect(inner).await else {
                return;
            };
            forward(client, server, &mut refuse).await;
        });
    }
}

async fn forward(mut client: TcpStream, mut server: TcpStream, refuse: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = refuse.wait_for(|r| *r) => {}
    }
}

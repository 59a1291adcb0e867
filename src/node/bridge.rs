//! The bridge's part of a sequencer: the L0 key and client, and the two supervised actors
//! (`BridgeStager`, `BridgeSubmitter`) over the shared storage, started only when
//! `bridge.enable_bridge` is true.
//!
//! Invariants:
//! - The block producer knows nothing of this: the stager wakes on the `Recorder`'s head watch
//!   and reads committed blocks from storage.
//! - Both factories build from durable or shared state (storage, the key, the validated
//!   settings, the shared status), so a supervisor restart loses nothing. Each incarnation gets
//!   its own L0 client (its connections live on that actor's Arbiter).
//! - Everything an operator could get wrong (key file, URLs, endpoint) fails the start with the
//!   key's name, before any actor runs.
//! - Stop ([`BridgeParts::flush`]): stage every committed height, then give the submitter a
//!   bounded window to send and confirm; what is left stays in the outbox for the next start.

use std::sync::Arc;
use std::time::Duration;

use accumen_actors::bridge::client::L0Client;
use accumen_actors::bridge::codec::L0Key;
use accumen_actors::bridge::encoding::AccUrl;
use accumen_actors::bridge::stage::StagerConfig;
use accumen_actors::bridge::status::{BridgeShared, publish_stats};
use accumen_actors::bridge::submit::SubmitterConfig;
use accumen_actors::bridge_stager::{BridgeStager, Flush, MakeL0, StagerDeps};
use accumen_actors::bridge_submitter::{BridgeSubmitter, Settle, SubmitterDeps};
use accumen_actors::supervisor::{Child, ChildSpec, Port};
use anyhow::Context as _;

use super::Services;

/// Longest the stop order waits for the stager to stage what is committed.
const FLUSH_WINDOW: Duration = Duration::from_secs(2);
/// Longest the stop order then gives the submitter to send and confirm.
const SETTLE_WINDOW: Duration = Duration::from_secs(3);
/// The bridge's share of the stop budget (the producer's wait is shortened by it).
pub(super) const STOP_WINDOW: Duration = Duration::from_secs(5);

/// The running bridge: its actors, its shared status and its stop step.
pub(super) struct BridgeParts {
    pub children: Vec<Box<dyn Child>>,
    pub shared: Arc<BridgeShared>,
    flush: Port<Flush>,
    settle: Port<Settle>,
}

impl BridgeParts {
    /// The bridge's part of the stop order (module docs), within [`STOP_WINDOW`].
    pub async fn flush(self) {
        match self.flush.send(Flush).timeout(FLUSH_WINDOW).await {
            Ok(Ok(r)) => tracing::info!(staged = r.staged, "bridge: committed blocks staged"),
            Ok(Err(e)) => tracing::warn!(error = %e, "bridge: staging at stop failed"),
            Err(e) => tracing::warn!(error = %e, "bridge: staging at stop did not finish"),
        }
        let settle = Settle {
            within: SETTLE_WINDOW,
        };
        match self
            .settle
            .send(settle)
            .timeout(SETTLE_WINDOW + Duration::from_millis(500))
            .await
        {
            Ok(0) => tracing::info!("bridge: every staged batch confirmed"),
            Ok(left) => tracing::info!(
                left,
                "bridge: batches still unconfirmed at stop; they are resumed from the outbox at \
                 the next start"
            ),
            Err(e) => tracing::warn!(error = %e, "bridge: submitter did not settle in time"),
        }
    }
}

/// Loads the key, builds the client and starts both actors.
pub(super) fn start(services: &Services) -> anyhow::Result<BridgeParts> {
    let settings = &services.settings;
    let l0 = &settings.bridge.l0;
    let keypair = l0
        .read_key()
        .context("bridge.l0.key_file must be set when bridge.enable_bridge is true")?
        .context("bridge.l0.key_file")?;
    let key = Arc::new(L0Key::from_keypair(&keypair).context("bridge.l0.key_file")?);
    let url = |v: &Option<String>, name: &str| -> anyhow::Result<AccUrl> {
        let v = v
            .as_deref()
            .with_context(|| format!("{name} must be set"))?;
        AccUrl::parse(v).with_context(|| format!("{name} {v:?}"))
    };
    let data_account = url(&l0.data_account, "bridge.l0.data_account")?;
    let key_page = url(&l0.key_page, "bridge.l0.key_page")?;
    let endpoint = l0
        .endpoint
        .clone()
        .context("bridge.l0.endpoint must be set")?;
    let timeout = l0.request_timeout;
    let client = L0Client::new(&endpoint, timeout)
        .with_context(|| format!("bridge.l0.endpoint {endpoint:?}"))?;
    let make_l0: MakeL0<L0Client> = {
        let endpoint = endpoint.clone();
        // The same arguments built `client` above, so a fresh one cannot fail; the validated
        // client is the fallback all the same.
        Arc::new(move || L0Client::new(&endpoint, timeout).unwrap_or_else(|_| client.clone()))
    };
    let shared = Arc::new(BridgeShared::new(endpoint.clone()));
    // Every outcome series exists at 0 from the start, so `increase()` alerts see the first one.
    for outcome in ["delivered", "failed", "retried", "already_known"] {
        let _ = services
            .metrics
            .bridge_submissions
            .get_or_create(&vec![("outcome".to_string(), outcome.to_string())]);
    }
    if let Err(e) = publish_stats(&services.storage, &services.metrics, &services.stats) {
        tracing::warn!(error = %e, "bridge stats could not be read");
    }
    tracing::info!(
        %endpoint,
        %data_account,
        %key_page,
        public_key = %key.public(),
        batch_size = settings.bridge.stager.batch_size,
        workers = settings.bridge.submitter.workers,
        "starting the L0 bridge"
    );

    let stager_deps = StagerDeps {
        storage: services.storage.clone(),
        key,
        config: StagerConfig {
            chain_id: services.storage.chain_id().to_string(),
            data_account,
            key_page,
            batch_size: settings.bridge.stager.batch_size.max(1) as u64,
            flush_interval: settings.bridge.stager.flush_interval,
        },
        make_l0: make_l0.clone(),
        head: services.recorder.subscribe(),
        shared: shared.clone(),
        metrics: services.metrics.clone(),
        stats: services.stats.clone(),
    };
    let submitter_deps = SubmitterDeps {
        storage: services.storage.clone(),
        config: SubmitterConfig {
            workers: settings.bridge.submitter.workers.max(1),
            ..SubmitterConfig::default()
        },
        make_l0,
        shared: shared.clone(),
        metrics: services.metrics.clone(),
        stats: services.stats.clone(),
    };
    let stager = ChildSpec::start("bridge_stager", move || {
        BridgeStager::new(stager_deps.clone())
    });
    let submitter = ChildSpec::start("bridge_submitter", move || {
        BridgeSubmitter::new(submitter_deps.clone())
    });
    Ok(BridgeParts {
        flush: stager.slot().port(),
        settle: submitter.slot().port(),
        children: vec![Box::new(stager), Box::new(submitter)],
        shared,
    })
}

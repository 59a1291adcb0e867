//! The follower role: no key, no mempool, no producer; an executor (for verification and the
//! read API's queries) and the Syncer that replicates the sequencer named by `follower.*`.
//!
//! Invariants:
//! - A new follower's chain is the sequencer's: before storage is created, [`genesis_params`]
//!   fetches the sequencer's `GET /v1/chain` and checks that its `params_hash` is the hash of
//!   its `params`, that its genesis hash follows from them, and that it is signed for by the
//!   pinned `follower.sequencer_key`. The follower's own `execution.gas_limit` and
//!   `wasm.max_memory_pages` never choose the chain (they are reported as overrides).
//! - An existing follower's storage needs no sequencer to start: it resumes from its committed
//!   head, and its genesis (which commits to the params) makes block 1 fail verification if it
//!   ever followed another chain.
//! - Every actor is built by a factory from shared state, so a supervisor restart of the Syncer
//!   resumes from storage, and a halt (shared `SyncStatus`) survives it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::Ordering;

use accumen_actors::anchor_watcher::{AnchorWatcher, AnchorWatcherDeps};
use accumen_actors::bridge::{AccUrl, L0Client};
use accumen_actors::chain::ChainParams;
use accumen_actors::chain::sync::{
    AnswerBody, BINARY_ANSWER, MAX_ANSWER_BYTES, MAX_BINARY_ANSWER_BYTES, SyncStatus,
    is_binary_answer,
};
use accumen_actors::executor::{RunQuery, VerifyBlock};
use accumen_actors::supervisor::{Child, ChildSpec};
use accumen_actors::syncer::{
    BlockSource, Fetch, SourceError, SyncConfig, SyncMetrics, Syncer, SyncerDeps,
};
use accumen_actors::types::{Hash, PublicKey};
use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;

use super::{Drain, RoleParts, Services};
use crate::api::sync::FollowerView;
use crate::settings::{Settings, StorageKind};

/// `follower.sequencer_api` and the pinned `follower.sequencer_key`, or why the follower cannot
/// start (naming the key).
pub(super) fn sequencer(settings: &Settings) -> anyhow::Result<(String, PublicKey)> {
    let f = &settings.follower;
    let api = f.sequencer_api.clone().ok_or_else(|| {
        anyhow!(
            "follower.sequencer_api must be set for --role=follower: the sequencer's API URL, \
             such as http://10.0.0.1:8080 or https://seq.example:8080 (or \
             ACCUMEN_FOLLOWER__SEQUENCER_API)"
        )
    })?;
    let key = match f.pinned_key() {
        Some(Ok(k)) => k,
        Some(Err(e)) => bail!("follower.sequencer_key: {e}"),
        None => bail!(
            "follower.sequencer_key must be set for --role=follower: the sequencer's public key \
             (hex, as `accumen key` prints it; or ACCUMEN_FOLLOWER__SEQUENCER_KEY); blocks \
             signed by any other key are refused"
        ),
    };
    Ok((api.trim_end_matches('/').to_owned(), key))
}

/// Whether this follower has no chain yet (so its genesis must come from the sequencer).
pub(super) fn needs_genesis(settings: &Settings) -> bool {
    match settings.storage {
        StorageKind::Memory => true,
        StorageKind::Persistent => !settings.data_dir.join("accumen.redb").exists(),
    }
}

#[derive(Debug, Deserialize)]
struct ChainAnswer {
    sequencer: PublicKey,
    genesis_hash: Option<Hash>,
    params: ChainParams,
    params_hash: Hash,
}

/// The sequencer's chain parameters, checked (module comment). Retries an unreachable
/// sequencer for up to `follower.request_timeout`, then gives up with the reason.
pub(super) async fn genesis_params(settings: &Settings) -> anyhow::Result<ChainParams> {
    let (api, pinned) = sequencer(settings)?;
    let client = client(settings)?;
    let url = format!("{api}/v1/chain");
    let deadline = Instant::now() + settings.follower.request_timeout;
    let mut wait = settings.follower.retry_min;
    let answer: ChainAnswer = loop {
        let got = async {
            let res = client.get(&url).send().await?.error_for_status()?;
            let body = res.bytes().await?;
            anyhow::Ok(serde_json::from_slice::<ChainAnswer>(&body)?)
        }
        .await;
        match got {
            Ok(a) => break a,
            Err(e) if Instant::now() + wait < deadline => {
                tracing::warn!(url, error = %e, "follower: cannot read the sequencer's chain yet, retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(settings.follower.retry_max);
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "follower: reading the chain parameters from the sequencer at {url} \
                         (a new follower needs them to create its genesis)"
                    )
                });
            }
        }
    };
    let params = answer.params;
    if params.hash() != answer.params_hash {
        bail!(
            "the sequencer at {api} answers params_hash {} for parameters whose hash is {}: \
             refusing to create a chain from them",
            answer.params_hash,
            params.hash()
        );
    }
    if answer.sequencer != pinned {
        bail!(
            "the sequencer at {api} signs with {}, not with the pinned follower.sequencer_key {}",
            answer.sequencer,
            pinned
        );
    }
    let genesis = params.genesis().hash();
    if answer.genesis_hash != Some(genesis) {
        bail!(
            "the sequencer at {api} reports genesis {:?}, but its parameters give {genesis}",
            answer.genesis_hash
        );
    }
    tracing::info!(sequencer = %api, params_hash = %answer.params_hash, chain_id = %params.chain_id, "follower: creating the sequencer's chain");
    Ok(params)
}

/// The HTTP client for the sequencer's API: for an https one, trusting `follower.ca_cert_file`
/// or the system's roots (errors name the key: `node::run` builds one before starting).
pub(super) fn client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    let f = &settings.follower;
    let api = f.sequencer_api.as_deref().unwrap_or("");
    // ring, never a process default (stack-notes §2); see `client::tls_config_for`.
    let tls = crate::client::tls_config_for(api, f.ca_cert_file.as_deref())
        .context("follower.ca_cert_file")?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(5))
        .timeout(settings.follower.request_timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("HTTP client")
}

/// Fetches `GET /v1/sync/blocks` from the sequencer, reading at most `MAX_ANSWER_BYTES`: asks
/// for the binary answer and reads whichever encoding the answer's `Content-Type` names (a
/// sequencer without the binary answer sends JSON).
#[derive(Debug)]
struct HttpSource {
    api: String,
    client: reqwest::Client,
}

impl BlockSource for HttpSource {
    fn fetch(&self, from: u64, limit: u32, wait: Duration) -> Fetch {
        let url = format!(
            "{}/v1/sync/blocks?from={from}&limit={limit}&wait_ms={}",
            self.api,
            wait.as_millis()
        );
        let client = self.client.clone();
        Box::pin(async move {
            let err = |e: String| SourceError(format!("{url}: {e}"));
            let mut res = client
                .get(&url)
                .header(
                    reqwest::header::ACCEPT,
                    format!("{BINARY_ANSWER}, application/json;q=0.5"),
                )
                .send()
                .await
                .map_err(|e| err(e.to_string()))?;
            let status = res.status();
            if !status.is_success() {
                return Err(err(format!("status {status}")));
            }
            let binary = res
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(is_binary_answer);
            // Bounded before it is read (chain::sync: one answer, one batch); a binary answer
            // by its own, smaller bound.
            let max = if binary {
                MAX_BINARY_ANSWER_BYTES
            } else {
                MAX_ANSWER_BYTES
            };
            if res.content_length().is_some_and(|n| n > max as u64) {
                return Err(err("answer too large".into()));
            }
            let mut body = Vec::new();
            while let Some(chunk) = res.chunk().await.map_err(|e| err(e.to_string()))? {
                if body.len() + chunk.len() > max {
                    return Err(err("answer too large".into()));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(if binary {
                AnswerBody::Binary(body)
            } else {
                AnswerBody::Json(body)
            })
        })
    }
}

/// The L0 anchor checks (`anchor_watcher`), when `bridge.l0.endpoint` and
/// `bridge.l0.data_account` are both set; read-only, so no key page or key file is needed.
fn anchor_watcher(
    services: &Services,
    deps: &SyncerDeps,
) -> anyhow::Result<Option<ChildSpec<AnchorWatcher>>> {
    let l0 = &services.settings.bridge.l0;
    let (endpoint, account) = match (&l0.endpoint, &l0.data_account) {
        (Some(e), Some(a)) => (e.clone(), a),
        (None, None) => {
            tracing::info!(
                "follower: bridge.l0.endpoint and data_account are not set: the sequencer's L0 \
                 anchors are not checked (anchored_height is null)"
            );
            return Ok(None);
        }
        _ => bail!(
            "a follower checks the sequencer's L0 anchors only with both bridge.l0.endpoint and \
             bridge.l0.data_account set; set both, or neither"
        ),
    };
    let account =
        AccUrl::parse(account).with_context(|| format!("bridge.l0.data_account {account:?}"))?;
    let timeout = l0.request_timeout;
    let client = L0Client::new(&endpoint, timeout)
        .with_context(|| format!("bridge.l0.endpoint {endpoint:?}"))?;
    let make_l0: Arc<dyn Fn() -> L0Client + Send + Sync> = {
        let endpoint = endpoint.clone();
        // The same arguments built `client`, so a fresh one cannot fail; it is the fallback.
        Arc::new(move || L0Client::new(&endpoint, timeout).unwrap_or_else(|_| client.clone()))
    };
    deps.status.anchor_checks.store(true, Ordering::Relaxed);
    tracing::info!(%endpoint, data_account = %account, "follower: checking the sequencer's L0 anchors");
    let f = &services.settings.follower;
    let watcher = AnchorWatcherDeps {
        storage: services.storage.clone(),
        chain_id: services.params.chain_id.clone(),
        account,
        make_l0,
        head: services.recorder.subscribe(),
        status: deps.status.clone(),
        metrics: deps.sync_metrics.clone(),
        poll: ANCHOR_POLL,
        retry_min: f.retry_min,
        retry_max: f.retry_max,
    };
    Ok(Some(ChildSpec::start("anchor_watcher", move || {
        AnchorWatcher::new(watcher.clone())
    })))
}

/// How often a follower that has read every anchor asks the L0 for new ones.
const ANCHOR_POLL: Duration = Duration::from_secs(1);

/// Starts the follower's actors over the shared services.
pub(super) fn start(services: &Services, sync_metrics: SyncMetrics) -> anyhow::Result<RoleParts> {
    let settings = &services.settings;
    let (api, key) = sequencer(settings)?;
    tracing::info!(
        chain_id = %services.params.chain_id,
        params_hash = %services.params.hash(),
        height = services.stats.block_height.load(std::sync::atomic::Ordering::Relaxed),
        sequencer = %key,
        sequencer_api = %api,
        storage = ?settings.storage,
        "starting follower"
    );
    let executor = services.executor_spec();
    let executor_slot = executor.slot();
    let status = Arc::new(SyncStatus::default());
    let f = &settings.follower;
    let deps = SyncerDeps {
        storage: services.storage.clone(),
        params: services.params.clone(),
        sequencer: key,
        executor: executor_slot.port::<VerifyBlock>(),
        recorder: services.recorder.clone(),
        status: status.clone(),
        stats: services.stats.clone(),
        metrics: services.metrics.clone(),
        sync_metrics,
        source: Arc::new(HttpSource {
            api: api.clone(),
            client: client(settings)?,
        }),
        config: SyncConfig {
            batch_size: f.batch_size,
            long_poll: f.long_poll,
            retry_min: f.retry_min,
            retry_max: f.retry_max,
            queue_size: settings.execution.queue_size,
        },
    };
    let anchors = anchor_watcher(services, &deps)?;
    let syncer = ChildSpec::start("syncer", move || Syncer::new(deps.clone()));
    let mut children: Vec<Box<dyn Child>> = vec![Box::new(executor), Box::new(syncer)];
    if let Some(a) = anchors {
        children.push(Box::new(a));
    }
    let drain: Drain = Box::new(|| Box::pin(async {}));
    Ok(RoleParts {
        children,
        query: executor_slot.port::<RunQuery>(),
        intake: None,
        sequencer: key,
        drain,
        // A follower anchors nothing (its L0 checks, when configured, only read anchors).
        bridge: None,
        follower: Some(FollowerView {
            status,
            sequencer_api: api,
        }),
    })
}

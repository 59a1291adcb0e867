//! The sequencer role: its signing key and its actors (mempool with the journal re-admitted,
//! executor, block producer), and its part of the stop order.
//!
//! Invariants:
//! - Every actor is built by a factory from shared or durable state (the shared pool, storage,
//!   the VM), so a supervisor restart loses nothing acknowledged or committed.
//! - The journal is re-admitted before any actor starts, so the first block sees it.
//! - Draining refuses new transactions first, then lets the producer finish its block and one
//!   last block with what is pending, then (bridge on) stages every committed block and gives
//!   the submitter a short window, all bounded by `STOP_BUDGET`.
//! - With `bridge.enable_bridge`, the bridge's two actors (`node::bridge`) are supervised with
//!   the others; the block producer does not know them.

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use accumen_actors::block_producer::{
    BlockProducer, MempoolPorts, ProducerConfig, ProducerDeps, Shutdown,
};
use accumen_actors::chain::ChainParams;
use accumen_actors::executor::{Executor, RunQuery};
use accumen_actors::mempool::pool::{Pool, PoolConfig};
use accumen_actors::mempool::{AccountPending, Admission, Admit, IsPending, Mempool, Shared};
use accumen_actors::supervisor::{ChildSpec, Port, Slot};
use accumen_actors::types::Keypair;
use anyhow::Context as _;

use super::{Drain, RoleParts, STOP_BUDGET, Services};
use crate::api::Intake;
use crate::keyfile;
use crate::settings::{Settings, StorageKind};

/// Starts the sequencer's actors over the shared services.
pub(super) fn start(services: &Services) -> anyhow::Result<RoleParts> {
    let settings = &services.settings;
    let key = Arc::new(load_key(settings)?);
    tracing::info!(
        chain_id = %settings.chain_id,
        params_hash = %services.params.hash(),
        height = services.stats.block_height.load(Ordering::Relaxed),
        sequencer = %key.public(),
        storage = ?settings.storage,
        "starting sequencer"
    );

    let pool = Arc::new(Mutex::new(Shared::new(Pool::new(pool_config(
        settings,
        &services.params,
    )))));
    // The journal is its own file (issue 10): admissions never wait for a block commit.
    let journal: Option<Arc<dyn accumen_actors::mempool::Journal>> = if settings.mempool.persist {
        let store = match settings.storage {
            StorageKind::Persistent => {
                let path = settings
                    .data_dir
                    .join(accumen_actors::storage::JOURNAL_FILE);
                accumen_actors::storage::JournalStore::open(
                    &path,
                    &settings.chain_id,
                    services.storage.health(),
                )
                .with_context(|| format!("opening the mempool journal {}", path.display()))?
            }
            StorageKind::Memory => {
                accumen_actors::storage::JournalStore::in_memory(&settings.chain_id)
                    .context("creating the in-memory mempool journal")?
            }
        };
        Some(Arc::new(store))
    } else {
        None
    };
    let admission = Admission::new(
        pool,
        services.storage.clone(),
        journal,
        services.stats.clone(),
        services.metrics.clone(),
    );
    let new_mempool = {
        let admission = admission.clone();
        move || Mempool::new(admission.clone())
    };
    let restored = admission
        .restore()
        .context("restoring the mempool journal")?;
    if restored > 0 {
        tracing::info!(
            restored,
            "journaled transactions re-admitted to the mempool"
        );
    }
    let mempool = ChildSpec::start("mempool", new_mempool);

    let executor = services.executor_spec();
    let (mempool_slot, executor_slot) = (mempool.slot(), executor.slot());
    let producer = producer(services, key.clone(), &mempool_slot, &executor_slot);
    let stop: Port<Shutdown> = producer.slot().port();
    let bridge = if settings.bridge.enable_bridge {
        Some(super::bridge::start(services)?)
    } else {
        None
    };
    let bridge_shared = bridge.as_ref().map(|b| b.shared.clone());
    let mut children: Vec<Box<dyn accumen_actors::supervisor::Child>> =
        vec![Box::new(mempool), Box::new(executor), Box::new(producer)];
    // The bridge's actors and its part of the stop order; the producer never hears of them.
    let bridge = bridge.map(|mut b| {
        children.append(&mut b.children);
        b
    });
    let producer_budget = match bridge {
        Some(_) => STOP_BUDGET.saturating_sub(super::bridge::STOP_WINDOW),
        None => STOP_BUDGET,
    };

    let accepting = Arc::new(AtomicBool::new(true));
    let intake = Intake {
        admit: mempool_slot.port::<Admit>(),
        admission: Some(admission),
        is_pending: mempool_slot.port::<IsPending>(),
        account_pending: mempool_slot.port::<AccountPending>(),
        accepting: accepting.clone(),
    };
    let drain: Drain = Box::new(move || {
        Box::pin(async move {
            accepting.store(false, Ordering::Relaxed);
            match stop.send(Shutdown).timeout(producer_budget).await {
                Ok(()) => tracing::info!("block producer finished"),
                Err(e) => tracing::error!(error = %e, "block producer did not finish in time"),
            }
            // Flush the bridge: stage what is committed, a short window to send it.
            if let Some(bridge) = bridge {
                bridge.flush().await;
            }
        })
    });
    Ok(RoleParts {
        children,
        bridge: bridge_shared,
        query: executor_slot.port::<RunQuery>(),
        intake: Some(intake),
        sequencer: key.public(),
        drain,
        follower: None,
    })
}

/// The block producer (one function, so its constructor is changed in one place).
fn producer(
    services: &Services,
    key: Arc<Keypair>,
    mempool: &Slot<Mempool>,
    executor: &Slot<Executor>,
) -> ChildSpec<BlockProducer> {
    let settings = &services.settings;
    let deps = ProducerDeps {
        storage: services.storage.clone(),
        key,
        params: services.params.clone(),
        config: ProducerConfig {
            block_time: settings.block_time,
            max_transactions: settings.max_transactions,
            queue_size: settings.execution.queue_size,
        },
        mempool: MempoolPorts::of(mempool),
        executor: executor.port(),
        recorder: services.recorder.clone(),
        stats: services.stats.clone(),
        metrics: services.metrics.clone(),
    };
    ChildSpec::start("block_producer", move || BlockProducer::new(deps.clone()))
}

fn pool_config(settings: &Settings, params: &ChainParams) -> PoolConfig {
    PoolConfig {
        chain_id: settings.chain_id.clone(),
        max_size: settings.mempool.max_size,
        max_bytes: settings.mempool.max_bytes,
        account_limit: settings.mempool.account_limit,
        // A transaction asking for more than a whole block's gas could never be selected.
        max_tx_gas: params.max_tx_gas.min(params.max_block_gas),
        max_future_nonces: settings.mempool.account_limit as u64,
        future_limit: settings
            .mempool
            .future_limit
            .min(settings.mempool.account_limit),
        future_ttl_ms: u64::try_from(settings.mempool.future_ttl.as_millis()).unwrap_or(u64::MAX),
    }
}

/// The sequencer's signing key: `sequencer_key` if set; else, with persistent storage,
/// `data_dir/sequencer.key` (created owner-only on first start); else an ephemeral key.
fn load_key(settings: &Settings) -> anyhow::Result<Keypair> {
    if let Some(path) = &settings.sequencer_key {
        return read_key(path);
    }
    match settings.storage {
        StorageKind::Memory => {
            tracing::warn!(
                "no sequencer_key configured: using an ephemeral key (fine for in-memory development chains)"
            );
            Ok(Keypair::generate()?)
        }
        StorageKind::Persistent => {
            let path = settings.data_dir.join("sequencer.key");
            if fs::exists(&path).unwrap_or(true) {
                return read_key(&path);
            }
            let key = Keypair::generate()?;
            keyfile::create(&path, &key)
                .with_context(|| format!("creating sequencer key {}", path.display()))?;
            tracing::info!(path = %path.display(), public_key = %key.public(), "generated a new sequencer key");
            Ok(key)
        }
    }
}

fn read_key(path: &std::path::Path) -> anyhow::Result<Keypair> {
    let key = keyfile::read(path).context("sequencer key")?;
    if keyfile::open_to_others(path) {
        tracing::warn!(path = %path.display(), "sequencer key file is readable by others; chmod 600 it");
    }
    Ok(key)
}

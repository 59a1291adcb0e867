//! The API over a role-aware `AppState`: a role without a mempool (a follower) refuses
//! transactions and answers everything else, and a sequencer's endpoints reach its mempool only
//! through the intake ports (a recording fake here).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use accumen_actors::executor::Executor;
use accumen_actors::health::{HealthRule, Role};
use accumen_actors::mempool::{AccountPending, Admit, IsPending, MempoolError};
use accumen_actors::metrics::{NodeMetrics, NodeStats, now_ms};
use accumen_actors::storage::Storage;
use accumen_actors::supervisor::Port;
use accumen_actors::types::{Hash, KeyCache, Keypair};
use accumen_actors::vm::Vm;
use actix::prelude::*;
use actix_web::{App, test, web};
use prometheus_client::registry::Registry;
use serde_json::Value;

use super::{AppState, Intake, api_routes};
use crate::settings::Settings;

/// A mempool that answers from fixed values and records what it was asked.
#[derive(Default)]
struct FakeMempool {
    asked: Arc<Mutex<Vec<String>>>,
}
impl Actor for FakeMempool {
    type Context = Context<Self>;
}
impl Handler<IsPending> for FakeMempool {
    type Result = bool;
    fn handle(&mut self, msg: IsPending, _: &mut Context<Self>) -> bool {
        self.asked
            .lock()
            .unwrap()
            .push(format!("pending {}", msg.0));
        true
    }
}
impl Handler<AccountPending> for FakeMempool {
    type Result = MessageResult<AccountPending>;
    fn handle(&mut self, msg: AccountPending, _: &mut Context<Self>) -> Self::Result {
        self.asked
            .lock()
            .unwrap()
            .push(format!("account {}", msg.sender));
        MessageResult((3, msg.state_nonce + 3))
    }
}
impl Handler<Admit> for FakeMempool {
    type Result = Vec<Result<Hash, MempoolError>>;
    fn handle(&mut self, msg: Admit, _: &mut Context<Self>) -> Self::Result {
        self.asked.lock().unwrap().push("admit".into());
        msg.0.iter().map(|t| Ok(t.id())).collect()
    }
}

pub(super) fn state(role: Role, intake: Option<Intake>) -> web::Data<AppState> {
    let settings = Arc::new(Settings::default());
    let vm = Arc::new(Vm::new(settings.vm_config()).unwrap());
    let stats = Arc::new(NodeStats::default());
    let metrics = NodeMetrics::default();
    let executor = Executor::new(vm.clone(), stats.clone(), metrics.clone()).start();
    web::Data::new(AppState {
        storage: Arc::new(Storage::in_memory_with(&settings.chain_params()).unwrap()),
        vm,
        stats,
        metrics,
        registry: Arc::new(Registry::default()),
        health: HealthRule::new(
            role,
            settings.supervisor.heartbeat_interval,
            settings.block_time,
        ),
        query: Port::fixed(executor.recipient()),
        intake,
        sequencer: Keypair::from_seed([1; 32]).public(),
        keys: Arc::new(KeyCache::new(16)),
        bridge: None,
        sync: super::sync::SyncApi::new(
            tokio::sync::watch::channel(accumen_actors::chain::Head {
                height: 0,
                hash: Default::default(),
                timestamp_ms: 0,
            })
            .1,
            None,
        ),
        supervisor: accumen_actors::supervisor::Supervisor::new(
            Vec::new(),
            settings.supervisor.clone(),
            NodeMetrics::default(),
            Arc::default(),
        )
        .start(),
        settings,
    })
}

/// GET `path`: status and JSON body.
macro_rules! get {
    ($app:expr, $path:expr) => {{
        let res = test::call_service(
            &$app,
            test::TestRequest::get()
                .uri(&format!("{}", $path))
                .to_request(),
        )
        .await;
        let code = res.status().as_u16();
        let body: Value = test::read_body_json(res).await;
        (code, body)
    }};
}

#[actix_web::test]
async fn a_role_without_a_mempool_refuses_transactions_and_serves_the_rest() {
    let state = state(Role::Follower, None);
    let app = test::init_service(App::new().app_data(state.clone()).configure(api_routes)).await;

    let res = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/v1/tx")
            .set_payload("{}")
            .to_request(),
    )
    .await;
    assert_eq!(res.status().as_u16(), 405);
    let body: Value = test::read_body_json(res).await;
    assert_eq!(body["error"]["code"], "not_a_sequencer", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("follower")
    );

    // Not included and no mempool: unknown, not an error about the missing mempool.
    let (code, v) = get!(app, format!("/v1/tx/{}", Hash([7; 32])));
    assert_eq!(code, 404, "{v}");
    let key = Keypair::from_seed([2; 32]).public();
    let (code, v) = get!(app, format!("/v1/accounts/{key}"));
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["pending"].as_u64(), v["pending_nonce"].as_u64()),
        (Some(0), Some(0))
    );

    let (code, v) = get!(app, "/stats");
    assert_eq!(code, 200);
    assert_eq!(v["role"], "follower");
    assert!(v.get("mempool_stats").is_none(), "{v}");

    // Health is the follower's rule: a head check, no transaction intake.
    state
        .stats
        .last_heartbeat_ms
        .store(now_ms(), Ordering::Relaxed);
    let (code, v) = get!(app, "/health");
    assert_eq!(code, 503, "not running yet: {v}");
    assert_eq!(v["reason"], "not running (starting or stopping)");
    state.stats.running.store(true, Ordering::Relaxed);
    let (code, v) = get!(app, "/health");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["role"], "follower");
    assert_eq!(v["checks"]["head"], true);
    assert!(v["checks"].get("accepting_transactions").is_none(), "{v}");
}

#[actix_web::test]
async fn a_sequencer_reaches_its_mempool_through_the_intake_ports() {
    let fake = FakeMempool::default();
    let asked = fake.asked.clone();
    let addr = fake.start();
    let accepting = Arc::new(AtomicBool::new(true));
    let intake = Intake {
        admit: Port::fixed(addr.clone().recipient()),
        admission: None,
        is_pending: Port::fixed(addr.clone().recipient()),
        account_pending: Port::fixed(addr.recipient()),
        accepting: accepting.clone(),
    };
    let state = state(Role::Sequencer, Some(intake));
    let app = test::init_service(App::new().app_data(state.clone()).configure(api_routes)).await;

    let id = Hash([7; 32]);
    let (code, v) = get!(app, format!("/v1/tx/{id}"));
    assert_eq!((code, v["status"].as_str()), (200, Some("pending")), "{v}");
    let key = Keypair::from_seed([2; 32]).public();
    let (_, v) = get!(app, format!("/v1/accounts/{key}"));
    assert_eq!(
        (v["pending"].as_u64(), v["pending_nonce"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        *asked.lock().unwrap(),
        vec![format!("pending {id}"), format!("account {key}")]
    );

    state.stats.running.store(true, Ordering::Relaxed);
    state
        .stats
        .last_heartbeat_ms
        .store(now_ms(), Ordering::Relaxed);
    let (code, v) = get!(app, "/health");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["checks"]["accepting_transactions"], true);
    assert_eq!(v["checks"]["block_production"], true);

    // Shutdown closes intake: refused before the body is read, the mempool is not asked.
    accepting.store(false, Ordering::Relaxed);
    let res = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/v1/tx")
            .set_payload("{}")
            .to_request(),
    )
    .await;
    assert_eq!(res.status().as_u16(), 503);
    let body: Value = test::read_body_json(res).await;
    assert_eq!(body["error"]["code"], "shutting_down");
    assert_eq!(asked.lock().unwrap().len(), 2);
    let (_, v) = get!(app, "/health");
    assert_eq!(v["checks"]["accepting_transactions"], false);
}

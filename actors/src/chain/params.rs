//! Chain parameters: every value that changes receipts, state or what a block accepts.
//!
//! Invariant: all nodes of one chain execute with the same `ChainParams`, whatever their own
//! configuration says. The values are fixed when the chain is created (genesis) and recorded
//! with it; a node's configuration only supplies them for a new chain.
//!
//! The rule, design level (RUNBOOK.md "Chain parameters" says the same for operators):
//!
//! - **Fixed at genesis.** A new chain takes `max_tx_gas` (`execution.gas_limit`) and
//!   `max_memory_pages` (`wasm.max_memory_pages`) from the configuration of the node that creates
//!   it, and every other value from this build's constants (`vm::gas`: ABI version, gas schedule
//!   version of new chains, Wasm stack limit, per-block limits). Storage records them in the same transaction
//!   as the genesis block (schema version 2), and the genesis block commits to their hash
//!   (`ChainParams::genesis`), so two chains with different parameters differ from block 1 on:
//!   block 1's parent is already a different hash.
//! - **The chain's value rules.** On every later start the recorded parameters are the effective
//!   ones, whatever the configuration says. `reconcile` compares them with what the
//!   configuration would choose for a new chain: a value the node can honour but its
//!   configuration sets differently is an [`Override`] (logged at WARN naming the config key, the
//!   config value and the chain's value, and listed at `GET /v1/chain`); the node then runs with
//!   the chain's value. The VM (`vm_config`), deploy validation, the mempool's per-transaction
//!   gas cap and the block context's `max_tx_gas` all come from the effective parameters, never
//!   from `Settings`, so no configuration can make a node produce or accept different results.
//! - **Refuse what cannot be honoured.** A chain whose ABI version, Wasm stack or block limits
//!   are not this build's constants would execute differently here: the node refuses to start
//!   ([`ParamsError`]) rather than run a different rule. The gas schedule is the exception that
//!   proves the rule: this build keeps every schedule it knows (`gas::GasSchedule`, versions 1
//!   and 2), runs a chain with the one it recorded, and refuses a version it does not know. The same for a chain whose
//!   `max_memory_pages` does not fit this node's `execution.memory_limit` and `execution.workers`
//!   (`VmConfig::check`): the operator can fix that one in the configuration.
//! - **Changing a parameter is a new chain.** There is no in-place upgrade: the genesis hash
//!   commits to the parameters. An operator who needs other values starts a new chain (new
//!   `data_dir`, preferably a new `chain_id`).
//!
//! Why consensus stays machine-independent: every value here is an integer recorded once and
//! compared exactly; none depends on the worker count, memory size or timing of a node (those
//! are only checked for whether they can *hold* the chain's values, never used to change them).

use serde::{Deserialize, Serialize};

use crate::types::{Block, Hash, hash_of};
use crate::vm::{ConfigError, VmConfig, gas};

/// `execution.gas_limit` when the configuration does not set it: the per-transaction gas cap of
/// a new chain.
pub const DEFAULT_MAX_TX_GAS: u64 = 50_000_000;
/// `wasm.max_memory_pages` when the configuration does not set it.
pub const DEFAULT_MAX_MEMORY_PAGES: u32 = 64;

/// The consensus parameters of one chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainParams {
    /// The chain id every transaction names.
    pub chain_id: String,
    /// Contract ABI version (imports and calling convention), see `CONTRACT_ABI.md`.
    pub abi_version: u32,
    /// Version of the gas schedule (`vm::gas::GasSchedule`: compile prices) the chain runs.
    pub gas_schedule: u32,
    /// Most gas one transaction may declare (`execution.gas_limit` at genesis).
    pub max_tx_gas: u64,
    /// Most 64 KiB pages one call's linear memory may have (`wasm.max_memory_pages` at genesis):
    /// deploy validation and execution both use it.
    pub max_memory_pages: u32,
    /// Wasm stack limit of one call, bytes.
    pub max_wasm_stack: u64,
    /// Sum of declared gas limits in one block.
    pub max_block_gas: u64,
    /// Sum of canonical transaction bytes in one block.
    pub max_block_tx_bytes: u64,
    /// Sum of receipt and write bytes in one block.
    pub max_block_result_bytes: u64,
}

impl ChainParams {
    /// The parameters of a new chain created by this build: the two values a configuration
    /// chooses (`execution.gas_limit`, `wasm.max_memory_pages`) and this build's constants for
    /// everything else.
    pub fn new(chain_id: impl Into<String>, max_tx_gas: u64, max_memory_pages: u32) -> Self {
        Self {
            chain_id: chain_id.into(),
            abi_version: gas::ABI_VERSION,
            gas_schedule: gas::GAS_SCHEDULE_VERSION,
            max_tx_gas,
            max_memory_pages,
            max_wasm_stack: gas::MAX_WASM_STACK,
            max_block_gas: gas::MAX_BLOCK_GAS,
            max_block_tx_bytes: gas::MAX_BLOCK_TX_BYTES,
            max_block_result_bytes: gas::MAX_BLOCK_RESULT_BYTES,
        }
    }

    /// `new` with the default configuration values: tests, benchmarks, development chains.
    pub fn with_defaults(chain_id: impl Into<String>) -> Self {
        Self::new(chain_id, DEFAULT_MAX_TX_GAS, DEFAULT_MAX_MEMORY_PAGES)
    }

    /// SHA-256 of the canonical encoding: what a chain commits to at genesis.
    pub fn hash(&self) -> Hash {
        hash_of(self)
    }

    /// The genesis block of the chain with these parameters: it commits to their hash.
    pub fn genesis(&self) -> Block {
        Block::genesis(&self.chain_id, &self.hash())
    }

    /// The engine configuration that runs this chain with `node`'s own resources (memory
    /// limit, workers, timeout, caches): the chain's page and stack limits and its gas schedule
    /// replace the node's (`Vm::new` refuses a schedule this build does not know).
    pub fn vm_config(&self, node: &VmConfig) -> VmConfig {
        VmConfig {
            max_memory_pages: self.max_memory_pages,
            max_wasm_stack: usize::try_from(self.max_wasm_stack).unwrap_or(usize::MAX),
            gas_schedule: self.gas_schedule,
            ..node.clone()
        }
    }

    /// The values of this chain that a node configured for `config` would have chosen
    /// differently, and which the node honours anyway (the chain's value rules).
    pub fn overrides(&self, config: &ChainParams) -> Vec<Override> {
        let mut out = Vec::new();
        if self.max_tx_gas != config.max_tx_gas {
            out.push(Override {
                key: "execution.gas_limit",
                config: config.max_tx_gas,
                chain: self.max_tx_gas,
            });
        }
        if self.max_memory_pages != config.max_memory_pages {
            out.push(Override {
                key: "wasm.max_memory_pages",
                config: u64::from(config.max_memory_pages),
                chain: u64::from(self.max_memory_pages),
            });
        }
        out
    }

    /// The parameters this build's own constants fix, with the chain's value and the build's.
    /// Not the gas schedule: a build runs every schedule it knows (`gas::GasSchedule`).
    fn build_values(&self) -> [(&'static str, u64, u64); 5] {
        [
            (
                "abi_version",
                u64::from(self.abi_version),
                u64::from(gas::ABI_VERSION),
            ),
            ("max_wasm_stack", self.max_wasm_stack, gas::MAX_WASM_STACK),
            ("max_block_gas", self.max_block_gas, gas::MAX_BLOCK_GAS),
            (
                "max_block_tx_bytes",
                self.max_block_tx_bytes,
                gas::MAX_BLOCK_TX_BYTES,
            ),
            (
                "max_block_result_bytes",
                self.max_block_result_bytes,
                gas::MAX_BLOCK_RESULT_BYTES,
            ),
        ]
    }
}

/// A configuration value that differs from the chain's: the chain's value is used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Override {
    /// The configuration key, e.g. `execution.gas_limit`.
    pub key: &'static str,
    /// What the node's configuration says.
    pub config: u64,
    /// What the chain recorded at genesis, and what the node uses.
    pub chain: u64,
}

/// The parameters a node runs with, and the configuration values they override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciled {
    /// The chain's parameters: the effective ones.
    pub params: ChainParams,
    /// Configuration values that differ from them.
    pub overrides: Vec<Override>,
}

impl Reconciled {
    /// One WARN line per overridden configuration value (startup log).
    pub fn log_overrides(&self) {
        for o in &self.overrides {
            tracing::warn!(
                key = o.key,
                config = o.config,
                chain = o.chain,
                "{} = {} in the config differs from this chain's {}: the chain's value rules \
                 (changing a chain parameter means a new chain, see RUNBOOK \"Chain parameters\")",
                o.key,
                o.config,
                o.chain
            );
        }
    }
}

/// A chain this node cannot run as its parameters say. Refusing is the only safe answer: running
/// anyway would produce or accept results the chain's other nodes do not.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error(
        "the data dir holds chain {chain:?} but the node is configured for chain {config:?}; fix \
         chain_id in the config or point data_dir at this chain's data"
    )]
    ChainId { chain: String, config: String },
    #[error(
        "this chain was created with {param} = {chain}, but this accumen build has {build}: it \
         would execute the chain's blocks differently. Run this chain with an accumen build whose \
         {param} is {chain}, or start a new chain (empty data_dir) with this build"
    )]
    Build {
        param: &'static str,
        chain: u64,
        build: u64,
    },
    #[error(
        "this chain was created with gas_schedule = {}, which this accumen build does not know \
         (it runs gas schedules {:?}): run this chain with an accumen build that knows it",
        .0.version,
        .0.known
    )]
    GasSchedule(gas::UnknownGasSchedule),
    #[error(
        "this chain's max_tx_gas = {chain} is invalid (must be 1 to the block gas limit \
         {max_block_gas}): the chain's parameters are damaged"
    )]
    TxGas { chain: u64, max_block_gas: u64 },
    // The engine's reason is the source (printed after this by `{:#}`), not repeated here.
    #[error(
        "this chain's wasm.max_memory_pages = {pages} cannot run on this node; the chain's value \
         rules, so raise execution.memory_limit or lower execution.workers"
    )]
    Memory {
        pages: u32,
        #[source]
        source: ConfigError,
    },
}

/// Decides what a node runs with: the chain's recorded `chain` parameters, checked against what
/// this build and this node (`node_vm`: its memory limit and workers) can honour, and compared
/// with `config`, the parameters its configuration would give a new chain.
pub fn reconcile(
    chain: &ChainParams,
    config: &ChainParams,
    node_vm: &VmConfig,
) -> Result<Reconciled, ParamsError> {
    if chain.chain_id != config.chain_id {
        return Err(ParamsError::ChainId {
            chain: chain.chain_id.clone(),
            config: config.chain_id.clone(),
        });
    }
    for (param, chain, build) in chain.build_values() {
        if chain != build {
            return Err(ParamsError::Build {
                param,
                chain,
                build,
            });
        }
    }
    // The chain's own schedule, whichever this build gives new chains: a chain keeps the
    // schedule it was created with, so its receipts replay unchanged.
    gas::GasSchedule::from_version(chain.gas_schedule).map_err(ParamsError::GasSchedule)?;
    if !(1..=chain.max_block_gas).contains(&chain.max_tx_gas) {
        return Err(ParamsError::TxGas {
            chain: chain.max_tx_gas,
            max_block_gas: chain.max_block_gas,
        });
    }
    chain
        .vm_config(node_vm)
        .check()
        .map_err(|source| ParamsError::Memory {
            pages: chain.max_memory_pages,
            source,
        })?;
    Ok(Reconciled {
        params: chain.clone(),
        overrides: chain.overrides(config),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN: &str = "params-test";

    fn node_vm() -> VmConfig {
        // 128 MB holds 4 workers of 64 pages (4 MiB each) and of 512 pages (32 MiB each).
        VmConfig {
            memory_limit_mb: 128,
            workers: 4,
            ..VmConfig::default()
        }
    }

    #[test]
    fn same_params_no_overrides() {
        let p = ChainParams::with_defaults(CHAIN);
        let r = reconcile(&p, &p, &node_vm()).unwrap();
        assert_eq!(r.params, p);
        assert!(r.overrides.is_empty());
    }

    #[test]
    fn new_chain_takes_config_values_and_build_constants() {
        let p = ChainParams::new(CHAIN, 7, 9);
        assert_eq!((p.max_tx_gas, p.max_memory_pages), (7, 9));
        assert_eq!(p.abi_version, gas::ABI_VERSION);
        assert_eq!(p.gas_schedule, gas::GAS_SCHEDULE_VERSION);
        assert_eq!(p.max_wasm_stack, gas::MAX_WASM_STACK);
        assert_eq!(p.max_block_gas, gas::MAX_BLOCK_GAS);
        assert_eq!(p.max_block_tx_bytes, gas::MAX_BLOCK_TX_BYTES);
        assert_eq!(p.max_block_result_bytes, gas::MAX_BLOCK_RESULT_BYTES);
    }

    #[test]
    fn config_gas_limit_differs_chain_rules_with_override() {
        let chain = ChainParams::new(CHAIN, 1_000_000, 64);
        let config = ChainParams::new(CHAIN, 2_000_000, 64);
        let r = reconcile(&chain, &config, &node_vm()).unwrap();
        assert_eq!(r.params.max_tx_gas, 1_000_000);
        assert_eq!(
            r.overrides,
            vec![Override {
                key: "execution.gas_limit",
                config: 2_000_000,
                chain: 1_000_000
            }]
        );
    }

    #[test]
    fn config_memory_pages_differ_chain_rules_with_override() {
        let chain = ChainParams::new(CHAIN, DEFAULT_MAX_TX_GAS, 512);
        let config = ChainParams::new(CHAIN, DEFAULT_MAX_TX_GAS, 64);
        let r = reconcile(&chain, &config, &node_vm()).unwrap();
        assert_eq!(r.params.max_memory_pages, 512);
        assert_eq!(
            r.overrides,
            vec![Override {
                key: "wasm.max_memory_pages",
                config: 64,
                chain: 512
            }]
        );
        // The engine runs the chain's pages, with the node's own memory limit and workers.
        let vm = r.params.vm_config(&node_vm());
        assert_eq!(vm.max_memory_pages, 512);
        assert_eq!((vm.memory_limit_mb, vm.workers), (128, 4));
        assert_eq!(vm.max_wasm_stack as u64, gas::MAX_WASM_STACK);
    }

    #[test]
    fn both_overrides_are_listed() {
        let chain = ChainParams::new(CHAIN, 3, 5);
        let config = ChainParams::with_defaults(CHAIN);
        let keys: Vec<_> = reconcile(&chain, &config, &node_vm())
            .unwrap()
            .overrides
            .iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["execution.gas_limit", "wasm.max_memory_pages"]);
    }

    #[test]
    fn chain_pages_that_do_not_fit_this_node_are_refused() {
        // 1024 pages = 64 MiB per call; 4 workers need 256 MB, the node has 128.
        let chain = ChainParams::new(CHAIN, DEFAULT_MAX_TX_GAS, 1024);
        let config = ChainParams::with_defaults(CHAIN);
        let e = reconcile(&chain, &config, &node_vm()).unwrap_err();
        assert!(
            matches!(
                e,
                ParamsError::Memory {
                    pages: 1024,
                    source: ConfigError::MemoryLimit { .. }
                }
            ),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.contains("wasm.max_memory_pages = 1024"), "{msg}");
        assert!(msg.contains("raise execution.memory_limit"), "{msg}");
        assert!(std::error::Error::source(&e).is_some());
        // Out of wasm's range altogether.
        let chain = ChainParams::new(CHAIN, DEFAULT_MAX_TX_GAS, 0);
        assert!(matches!(
            reconcile(&chain, &config, &node_vm()),
            Err(ParamsError::Memory {
                source: ConfigError::MemoryPages(0),
                ..
            })
        ));
    }

    #[test]
    fn chain_tx_gas_out_of_range_is_refused() {
        let config = ChainParams::with_defaults(CHAIN);
        for bad in [0, gas::MAX_BLOCK_GAS + 1] {
            let chain = ChainParams::new(CHAIN, bad, 64);
            assert!(
                matches!(
                    reconcile(&chain, &config, &node_vm()),
                    Err(ParamsError::TxGas { chain, .. }) if chain == bad
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn values_of_another_build_are_refused_each_by_name() {
        type Set = fn(&mut ChainParams);
        let cases: [(&str, Set); 5] = [
            ("abi_version", |p| p.abi_version += 1),
            ("max_wasm_stack", |p| p.max_wasm_stack *= 2),
            ("max_block_gas", |p| p.max_block_gas -= 1),
            ("max_block_tx_bytes", |p| p.max_block_tx_bytes += 1),
            ("max_block_result_bytes", |p| p.max_block_result_bytes += 1),
        ];
        let config = ChainParams::with_defaults(CHAIN);
        for (name, set) in cases {
            let mut chain = config.clone();
            set(&mut chain);
            match reconcile(&chain, &config, &node_vm()) {
                Err(e @ ParamsError::Build { param, .. }) => {
                    assert_eq!(param, name);
                    let msg = e.to_string();
                    assert!(msg.contains(name), "{msg}");
                    assert!(msg.contains("start a new chain"), "{msg}");
                }
                other => panic!("{name}: expected a refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn every_known_gas_schedule_runs_and_is_handed_to_the_engine() {
        let config = ChainParams::with_defaults(CHAIN);
        assert_eq!(config.gas_schedule, 2, "new chains get schedule 2");
        for &version in gas::GasSchedule::KNOWN_VERSIONS {
            let chain = ChainParams {
                gas_schedule: version,
                ..config.clone()
            };
            let r = reconcile(&chain, &config, &node_vm())
                .unwrap_or_else(|e| panic!("schedule {version}: {e}"));
            // Not an override: the schedule is not a configuration value.
            assert!(r.overrides.is_empty());
            assert_eq!(r.params.gas_schedule, version);
            let vm = r.params.vm_config(&node_vm());
            assert_eq!(vm.gas_schedule, version);
            assert!(vm.check().is_ok());
        }
    }

    #[test]
    fn an_unknown_gas_schedule_is_refused_by_name() {
        let config = ChainParams::with_defaults(CHAIN);
        for version in [0, 3, u32::MAX] {
            let chain = ChainParams {
                gas_schedule: version,
                ..config.clone()
            };
            let e = reconcile(&chain, &config, &node_vm()).unwrap_err();
            assert!(
                matches!(&e, ParamsError::GasSchedule(u) if u.version == version),
                "{e:?}"
            );
            let msg = e.to_string();
            assert!(msg.contains(&format!("gas_schedule = {version}")), "{msg}");
            assert!(msg.contains("[1, 2]"), "{msg}");
            // A tool that builds the engine without `reconcile` (`accumen db check`) is refused
            // by the engine's own check.
            let vm = chain.vm_config(&node_vm());
            assert!(matches!(
                vm.check(),
                Err(ConfigError::GasSchedule(u)) if u.version == version
            ));
        }
    }

    #[test]
    fn another_chain_id_is_refused() {
        let chain = ChainParams::with_defaults("a");
        let config = ChainParams::with_defaults("b");
        assert!(matches!(
            reconcile(&chain, &config, &node_vm()),
            Err(ParamsError::ChainId { .. })
        ));
    }

    #[test]
    fn genesis_commits_to_every_parameter() {
        let base = ChainParams::with_defaults(CHAIN);
        assert_eq!(base.genesis(), base.genesis());
        let variants = [
            ChainParams::with_defaults("other"),
            ChainParams::new(CHAIN, DEFAULT_MAX_TX_GAS - 1, DEFAULT_MAX_MEMORY_PAGES),
            ChainParams::new(CHAIN, DEFAULT_MAX_TX_GAS, DEFAULT_MAX_MEMORY_PAGES + 1),
            ChainParams {
                abi_version: 2,
                ..base.clone()
            },
            ChainParams {
                gas_schedule: 1,
                ..base.clone()
            },
            ChainParams {
                max_wasm_stack: 1,
                ..base.clone()
            },
            ChainParams {
                max_block_gas: 1,
                ..base.clone()
            },
            ChainParams {
                max_block_tx_bytes: 1,
                ..base.clone()
            },
            ChainParams {
                max_block_result_bytes: 1,
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.genesis().hash(), base.genesis().hash(), "{v:?}");
        }
    }
}

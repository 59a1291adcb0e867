//! The raw key tree behind [`Settings`]: the YAML file and the `ACCUMEN_*` variables merged
//! into one tree that remembers, for every key, which file or variable it came from.
//!
//! Why not just `ConfigBuilder::add_source(..).build()`: config nests a dotted key only at the
//! top level of a file and merges its map in hash order, so `execution.workers: 8` next to a
//! nested `execution: { workers: 16 }` would win or lose at random; and its values do not say
//! which variable set them. Here dotted keys are split at every level, in sorted order, a key
//! given twice is an error, and unknown keys are found against the real schema (the serialized
//! defaults) with their full dotted path before serde sees anything.
//!
//! Invariant: the tree handed to serde contains only keys that exist in `Settings`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use config::{Environment, File, FileFormat, Source as _, Value, ValueKind};
use serde::Deserialize as _;

use super::{ENV_PREFIX, Settings, SettingsError};

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The YAML file.
    File(PathBuf),
    /// An environment variable, by name (`ACCUMEN_EXECUTION__WORKERS`).
    Env(String),
    /// A `Settings` value checked on its own, not loaded from anywhere.
    Settings,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Env(var) => write!(f, "environment variable {var}"),
            Self::Settings => f.write_str("settings"),
        }
    }
}

#[derive(Debug, Clone)]
struct Node {
    /// Who first wrote this key (for a section: who opened it).
    origin: Origin,
    kind: NodeKind,
}

#[derive(Debug, Clone)]
enum NodeKind {
    Leaf(Value),
    Table(BTreeMap<String, Node>),
}

impl Node {
    fn table(origin: Origin) -> Self {
        Self {
            origin,
            kind: NodeKind::Table(BTreeMap::new()),
        }
    }

    /// `execution:` with nothing under it parses as null; that is an empty section, not a
    /// value.
    fn is_empty_section(&self) -> bool {
        matches!(&self.kind, NodeKind::Leaf(v) if matches!(v.kind, ValueKind::Nil))
    }

    /// The config value, unchecked (serde will report any type mismatch).
    fn into_value(self) -> Value {
        match self.kind {
            NodeKind::Leaf(v) => v,
            NodeKind::Table(t) => table_value(
                t.into_iter()
                    .map(|(k, n)| (k, n.into_value()))
                    .collect::<config::Map<_, _>>(),
            ),
        }
    }
}

fn table_value(map: config::Map<String, Value>) -> Value {
    Value::new(None, ValueKind::Table(map))
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The merged file + environment keys, not yet checked.
#[derive(Debug)]
pub(super) struct Tree {
    file: PathBuf,
    root: BTreeMap<String, Node>,
}

impl Tree {
    /// Reads the file and the environment; reports every duplicate and unknown key at once.
    pub(super) fn read(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => SettingsError::NotFound {
                path: path.to_owned(),
            },
            _ => SettingsError::Read {
                path: path.to_owned(),
                source,
            },
        })?;
        let file_map = File::from_str(&text, FileFormat::Yaml)
            .collect()
            .map_err(|e| SettingsError::Syntax {
                path: path.to_owned(),
                message: e.to_string(),
            })?;

        // Variables the client subcommands read are not node settings.
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| !CLIENT_ENV.contains(&k.as_str()))
            .collect();
        // stack-notes §6: without prefix_separator("_"), config would expect ACCUMEN__KEY and
        // silently ignore ACCUMEN_KEY.
        let env_map = Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .ignore_empty(true)
            .source(Some(env))
            .collect()
            .map_err(|e| SettingsError::Invalid {
                origin: Origin::Env(format!("{ENV_PREFIX}_*")),
                key: String::new(),
                message: e.to_string(),
            })?;

        let mut tree = Self {
            file: path.to_owned(),
            root: BTreeMap::new(),
        };
        let mut errors = Vec::new();
        let file_origin = Origin::File(path.to_owned());
        for (key, value) in sorted(file_map) {
            insert_file(&mut tree.root, "", &key, value, &file_origin, &mut errors);
        }
        // Environment after the file: a variable replaces whatever the file said.
        for (key, value) in sorted(env_map) {
            let origin = Origin::Env(env_var_name(&key));
            insert_override(&mut tree.root, &key, value, origin);
        }

        let schema = schema();
        check_known(&tree.root, &schema, "", &mut errors);
        match SettingsError::from_list(errors) {
            Some(e) => Err(e),
            None => Ok(tree),
        }
    }

    /// Hands the tree to serde; a type error names its key and the source of that key.
    pub(super) fn deserialize(&self) -> Result<Settings, SettingsError> {
        let value = self.to_value();
        Settings::deserialize(value).map_err(|e| {
            let (key, message) = describe(e);
            match key {
                Some(key) => SettingsError::Value {
                    origin: self.origin_of(&key),
                    key,
                    message,
                },
                None => SettingsError::Invalid {
                    origin: Origin::File(self.file.clone()),
                    key: String::new(),
                    message,
                },
            }
        })
    }

    fn to_value(&self) -> Value {
        let schema = schema();
        prune(&self.root, &schema)
    }

    /// The source that set `key` (or the closest enclosing section); the file if nobody did.
    fn origin_of(&self, key: &str) -> Origin {
        let mut table = &self.root;
        let mut found = None;
        for segment in key.split('.') {
            match table.get(segment) {
                Some(node) => {
                    found = Some(&node.origin);
                    match &node.kind {
                        NodeKind::Table(t) => table = t,
                        NodeKind::Leaf(_) => break,
                    }
                }
                None => break,
            }
        }
        found
            .cloned()
            .unwrap_or_else(|| Origin::File(self.file.clone()))
    }

    /// For a broken rule: blame the variable if one set the key, else the file, since a default
    /// left in place is still the file's choice.
    pub(super) fn origin_for_rule(&self, key: &str) -> Origin {
        match self.origin_of(key) {
            env @ Origin::Env(_) if self.is_leaf(key) => env,
            _ => Origin::File(self.file.clone()),
        }
    }

    fn is_leaf(&self, key: &str) -> bool {
        let mut table = &self.root;
        let mut segments = key.split('.').peekable();
        while let Some(segment) = segments.next() {
            match table.get(segment).map(|n| &n.kind) {
                Some(NodeKind::Table(t)) => table = t,
                Some(NodeKind::Leaf(_)) => return segments.peek().is_none(),
                None => return false,
            }
        }
        false
    }
}

fn sorted(map: config::Map<String, Value>) -> Vec<(String, Value)> {
    let mut entries: Vec<_> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

/// `ACCUMEN_*` variables that belong to the command-line client (`--api`, `--token`,
/// `accumen admin --admin`, `--ca-cert`), not to the node: a node started in a shell that exports them for
/// the CLI must not refuse them as unknown settings.
const CLIENT_ENV: &[&str] = &[
    "ACCUMEN_API",
    "ACCUMEN_TOKEN",
    "ACCUMEN_ADMIN",
    "ACCUMEN_CA_CERT",
];

/// `execution.workers` → `ACCUMEN_EXECUTION__WORKERS` (config lower-cased the original).
fn env_var_name(key: &str) -> String {
    format!("{ENV_PREFIX}_{}", key.replace('.', "__").to_uppercase())
}

/// Adds one file entry; a dotted key is split into sections at any level.
fn insert_file(
    table: &mut BTreeMap<String, Node>,
    prefix: &str,
    key: &str,
    value: Value,
    origin: &Origin,
    errors: &mut Vec<SettingsError>,
) {
    let mut table = table;
    let mut path = prefix.to_owned();
    let mut segments = key.split('.').peekable();
    while let Some(segment) = segments.next() {
        path = join(&path, segment);
        let last = segments.peek().is_none();
        if !last {
            let node = table
                .entry(segment.to_owned())
                .or_insert_with(|| Node::table(origin.clone()));
            if node.is_empty_section() {
                *node = Node::table(origin.clone());
            }
            match &mut node.kind {
                NodeKind::Table(t) => table = t,
                NodeKind::Leaf(_) => {
                    errors.push(SettingsError::Duplicate {
                        origin: origin.clone(),
                        key: path,
                    });
                    return;
                }
            }
            continue;
        }
        match value.kind {
            ValueKind::Table(map) => {
                let node = table
                    .entry(segment.to_owned())
                    .or_insert_with(|| Node::table(origin.clone()));
                if node.is_empty_section() {
                    *node = Node::table(origin.clone());
                }
                match &mut node.kind {
                    NodeKind::Table(t) => {
                        for (k, v) in sorted(map) {
                            insert_file(t, &path, &k, v, origin, errors);
                        }
                    }
                    NodeKind::Leaf(_) => errors.push(SettingsError::Duplicate {
                        origin: origin.clone(),
                        key: path,
                    }),
                }
            }
            _ => match table.get(segment) {
                // An empty section next to the same section written out: nothing to add.
                Some(existing) if matches!(value.kind, ValueKind::Nil) => {
                    if existing.is_empty_section() {
                        errors.push(SettingsError::Duplicate {
                            origin: origin.clone(),
                            key: path,
                        });
                    }
                }
                Some(_) => errors.push(SettingsError::Duplicate {
                    origin: origin.clone(),
                    key: path,
                }),
                None => {
                    table.insert(
                        segment.to_owned(),
                        Node {
                            origin: origin.clone(),
                            kind: NodeKind::Leaf(value),
                        },
                    );
                }
            },
        }
        return;
    }
}

/// Adds one environment entry, replacing whatever is at that key.
fn insert_override(table: &mut BTreeMap<String, Node>, key: &str, value: Value, origin: Origin) {
    let mut table = table;
    let mut segments = key.split('.').peekable();
    while let Some(segment) = segments.next() {
        if segments.peek().is_none() {
            table.insert(
                segment.to_owned(),
                Node {
                    origin,
                    kind: NodeKind::Leaf(value),
                },
            );
            return;
        }
        let node = table
            .entry(segment.to_owned())
            .or_insert_with(|| Node::table(origin.clone()));
        if matches!(node.kind, NodeKind::Leaf(_)) {
            *node = Node::table(origin.clone());
        }
        match &mut node.kind {
            NodeKind::Table(t) => table = t,
            // Unreachable: replaced by a table just above.
            NodeKind::Leaf(_) => return,
        }
    }
}

/// Every key `Settings` knows, with the default values' JSON types: the schema comes from the
/// struct itself, so it cannot drift from it.
fn schema() -> serde_json::Value {
    serde_json::to_value(Settings::default()).unwrap_or(serde_json::Value::Null)
}

/// Reports keys that are not in the schema, and values that config would otherwise coerce
/// silently (`workers: 1.5` rounds to 2, `persist: 1` becomes true).
fn check_known(
    table: &BTreeMap<String, Node>,
    schema: &serde_json::Value,
    prefix: &str,
    errors: &mut Vec<SettingsError>,
) {
    for (key, node) in table {
        let path = join(prefix, key);
        let Some(expected) = schema.get(key) else {
            errors.push(SettingsError::UnknownKey {
                origin: node.origin.clone(),
                key: path,
            });
            continue;
        };
        match (&node.kind, expected) {
            (NodeKind::Table(t), serde_json::Value::Object(_)) => {
                check_known(t, expected, &path, errors);
            }
            (NodeKind::Leaf(v), serde_json::Value::Number(_)) => {
                if matches!(v.kind, ValueKind::Float(_) | ValueKind::Boolean(_)) {
                    errors.push(coercion_error(node, path, v, "an integer"));
                }
            }
            (NodeKind::Leaf(v), serde_json::Value::Bool(_)) => {
                if matches!(
                    v.kind,
                    ValueKind::I64(_)
                        | ValueKind::I128(_)
                        | ValueKind::U64(_)
                        | ValueKind::U128(_)
                        | ValueKind::Float(_)
                ) {
                    errors.push(coercion_error(node, path, v, "a boolean"));
                }
            }
            // Other mismatches (a map where a number belongs, ...) are left to serde, which
            // names the key.
            _ => {}
        }
    }
}

fn coercion_error(node: &Node, key: String, value: &Value, expected: &str) -> SettingsError {
    SettingsError::Value {
        origin: node.origin.clone(),
        key,
        message: format!("invalid type: {}, expected {expected}", unexpected(value)),
    }
}

/// Worded like config's own type errors, so all type errors read alike.
fn unexpected(value: &Value) -> String {
    match &value.kind {
        ValueKind::Boolean(b) => format!("boolean `{b}`"),
        ValueKind::I64(i) => format!("integer `{i}`"),
        ValueKind::I128(i) => format!("integer `{i}`"),
        ValueKind::U64(i) => format!("integer `{i}`"),
        ValueKind::U128(i) => format!("integer `{i}`"),
        ValueKind::Float(f) => format!("floating point `{f}`"),
        other => other.to_string(),
    }
}

/// The tree as a config value, dropping empty sections (`execution:` with nothing under it).
fn prune(table: &BTreeMap<String, Node>, schema: &serde_json::Value) -> Value {
    let mut map = config::Map::new();
    for (key, node) in table {
        let sub = schema.get(key);
        let is_section = matches!(sub, Some(serde_json::Value::Object(_)));
        if is_section && node.is_empty_section() {
            continue;
        }
        let value = match (&node.kind, sub) {
            (NodeKind::Table(t), Some(sub)) => prune(t, sub),
            _ => node.clone().into_value(),
        };
        map.insert(key.clone(), value);
    }
    table_value(map)
}

/// Splits a config deserialization error into the dotted key (when config tracked one) and a
/// message without config's own " for key .. in .." suffix, since we add key and source.
fn describe(e: config::ConfigError) -> (Option<String>, String) {
    let (key, message) = describe_raw(e);
    (key, reword(message))
}

/// Serde's wording names Rust types; say what an operator should write instead.
fn reword(message: String) -> String {
    if message.ends_with("expected a duration") {
        return format!("{message} such as \"1s\", \"500ms\" or \"1m 30s\"");
    }
    match message.find("expected struct ") {
        Some(i) => format!("{}expected a section of nested keys", &message[..i]),
        None => message,
    }
}

fn describe_raw(e: config::ConfigError) -> (Option<String>, String) {
    match e {
        config::ConfigError::Type {
            unexpected,
            expected,
            key,
            ..
        } => (
            key,
            format!("invalid type: {unexpected}, expected {expected}"),
        ),
        config::ConfigError::At { error, key, .. } => {
            let (inner_key, message) = describe_raw(*error);
            (key.or(inner_key), message)
        }
        config::ConfigError::NotFound(key) => (Some(key), "missing".to_owned()),
        other => (None, other.to_string()),
    }
}

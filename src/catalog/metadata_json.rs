//! Table metadata to and from JSON, the way the Java reference writes and keeps it, where the
//! iceberg crate's serde form differs:
//!
//! - **Refs of format-version 1 tables.** The crate's v1 form has no `refs`, so branches and
//!   tags of a v1 table would be dropped on every write and read. Java keeps them (the spec
//!   does not restrict them to v2). They are written beside the crate's document and put back
//!   into the parsed metadata.
//! - **Order.** Snapshots in commit order; schemas, specs and sort orders by id (the crate keeps
//!   them in hash maps).
//! - **Float defaults.** A `float` field's `initial-default` and `write-default` are written in
//!   the shortest form that reads back as the same float (`22.27`, not `22.270000457763672`),
//!   as Java writes them; readers that use doubles then see the value the client sent.
//! - **Snapshot summaries in the writer's order.** The crate keeps a summary in a hash map;
//!   Java and PyIceberg keep the keys in the order the writer put them (`added-files-size`
//!   before `added-data-files`, ...), and clients show them so. The order is read off the
//!   commit request and the previous document ([`SummaryOrder`]) and written back.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use iceberg::spec::{FormatVersion, SnapshotReference, TableMetadata, TableMetadataBuilder};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{CatalogError, CatalogResult};

const MAIN_BRANCH: &str = "main";
const SNAPSHOTS: &str = "snapshots";

/// The JSON document of table metadata, as Serac writes metadata files and keeps rows.
pub(crate) fn to_json(metadata: &TableMetadata) -> CatalogResult<String> {
    to_json_ordered(metadata, &SummaryOrder::default())
}

/// [`to_json`], with snapshot summaries in the given key order.
pub(crate) fn to_json_ordered(
    metadata: &TableMetadata,
    order: &SummaryOrder,
) -> CatalogResult<String> {
    let failed = |e: serde_json::Error| {
        CatalogError::Internal(format!("table metadata failed to serialize: {e}"))
    };
    let mut doc = serde_json::to_value(metadata).map_err(failed)?;
    as_java_writes(&mut doc, metadata)?;
    write(&doc, order).map_err(failed)
}

/// Puts into the crate's document what Java writes and the crate does not: v1 refs, commit
/// and id order, shortest float defaults.
fn as_java_writes(doc: &mut Value, metadata: &TableMetadata) -> CatalogResult<()> {
    if metadata.format_version() == FormatVersion::V1
        && let Some(refs) = v1_refs(metadata)?
    {
        doc["refs"] = refs;
    }
    in_commit_order(doc);
    if let Some(Value::Array(schemas)) = doc.get_mut("schemas") {
        schemas.iter_mut().for_each(shortest_float_defaults);
    }
    if let Some(schema) = doc.get_mut("schema") {
        shortest_float_defaults(schema);
    }
    Ok(())
}

/// Where each snapshot of a metadata document sits in it, by snapshot id, and the
/// document's format version: what the next document of the table copies its old snapshots
/// from.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SnapshotSpans {
    format_version: u8,
    at: HashMap<i64, Range<usize>>,
}

impl SnapshotSpans {
    /// Reads the spans off a document (once for a version read from the database; the
    /// versions a commit makes come with theirs).
    pub(crate) fn of_document(json: &str) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Doc<'a> {
            #[serde(rename = "format-version")]
            format_version: u8,
            #[serde(borrow, default)]
            snapshots: Vec<&'a RawValue>,
        }
        let doc: Doc = serde_json::from_str(json)?;
        let base = json.as_ptr() as usize;
        let texts: Vec<&str> = doc.snapshots.iter().map(|s| s.get()).collect();
        let starts = texts.iter().map(|t| t.as_ptr() as usize - base).collect();
        Self::of_texts(doc.format_version, &texts, starts)
    }

    /// The spans of snapshots `texts` written at `starts` in a document, their ids read off
    /// their JSON.
    fn of_texts(
        format_version: u8,
        texts: &[&str],
        starts: Vec<usize>,
    ) -> Result<Self, serde_json::Error> {
        let mut at = HashMap::with_capacity(texts.len());
        for (text, start) in texts.iter().zip(starts) {
            let place: SnapshotPlace = serde_json::from_str(text)?;
            at.insert(place.id, start..start + text.len());
        }
        Ok(Self { format_version, at })
    }

    /// The ids of the snapshots.
    pub(crate) fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.at.keys().copied()
    }

    pub(crate) fn contains(&self, id: i64) -> bool {
        self.at.contains_key(&id)
    }

    /// The JSON of a snapshot within the document the spans were read off.
    pub(crate) fn text<'a>(&self, document: &'a str, id: i64) -> Option<&'a str> {
        document.get(self.at.get(&id)?.clone())
    }

    /// Bytes of memory the spans hold, about.
    pub(crate) fn weight(&self) -> usize {
        self.at.capacity() * (size_of::<(i64, Range<usize>)>() + 1)
    }
}

/// [`to_json_ordered`] for the next version of a table whose current document is
/// `previous`, `order` holding the summaries of the snapshots the commit adds, with the spans
/// of the snapshots in the new document. A snapshot never changes once written, so the
/// snapshots both versions hold are copied from `previous` as they stand there, and only the
/// rest of the metadata and the new snapshots are serialized: the cost of a commit then
/// hardly grows with the table's history. The document is the same as [`to_json_ordered`]'s
/// (which it falls back to on anything unexpected, and when the format version changed).
pub(crate) fn to_json_next(
    metadata: &TableMetadata,
    order: &SummaryOrder,
    previous: &str,
    spans: &SnapshotSpans,
) -> CatalogResult<NextDocument> {
    if let Some(next) = next_document(metadata, order, previous, spans) {
        return Ok(next);
    }
    // Every snapshot is written anew: the old ones keep the order `previous` gave them.
    let json = to_json_ordered(
        metadata,
        &SummaryOrder::of_metadata(previous.as_bytes()).merged(order),
    )?;
    let read_back = |e: serde_json::Error| {
        CatalogError::Internal(format!("reading back written table metadata: {e}"))
    };
    let spans = SnapshotSpans::of_document(&json).map_err(read_back)?;
    let top: BTreeMap<&str, &RawValue> = serde_json::from_str(&json).map_err(read_back)?;
    let rest = write_object(&members_but_snapshots(&top)).map_err(read_back)?;
    Ok(NextDocument { json, rest, spans })
}

/// A table's next metadata document, as [`to_json_next`] makes it.
#[derive(Debug)]
pub(crate) struct NextDocument {
    pub json: String,
    /// The document without its `snapshots`, as a table row keeps it beside them.
    pub rest: String,
    /// Where the snapshots sit in `json`.
    pub spans: SnapshotSpans,
}

/// A document kept as its `rest` and its snapshots apart (a JSON array of them in commit
/// order), made whole again as [`to_json_next`] wrote it, with the snapshots' spans.
pub(crate) fn assemble(
    rest: &str,
    snapshots: &str,
) -> Result<(String, SnapshotSpans), serde_json::Error> {
    let top: BTreeMap<&str, &RawValue> = serde_json::from_str(rest)?;
    let listed: Vec<&RawValue> = serde_json::from_str(snapshots)?;
    let texts: Vec<&str> = listed.iter().map(|s| s.get()).collect();
    let (json, starts) = write_document(&members_but_snapshots(&top), &texts)?;
    let format_version = top
        .get("format-version")
        .map(|v| serde_json::from_str::<u8>(v.get()))
        .transpose()?
        .unwrap_or_default();
    let spans = SnapshotSpans::of_texts(format_version, &texts, starts)?;
    Ok((json, spans))
}

/// The members of a document as written, but its `snapshots`.
fn members_but_snapshots<'a>(
    top: &BTreeMap<&'a str, &'a RawValue>,
) -> BTreeMap<&'a str, Cow<'a, str>> {
    top.iter()
        .filter(|(key, _)| **key != SNAPSHOTS)
        .map(|(key, value)| (*key, Cow::Borrowed(value.get())))
        .collect()
}

/// The id of a snapshot, read off its JSON.
#[derive(Deserialize)]
struct SnapshotPlace {
    #[serde(rename = "snapshot-id")]
    id: i64,
}

fn next_document(
    metadata: &TableMetadata,
    order: &SummaryOrder,
    previous: &str,
    spans: &SnapshotSpans,
) -> Option<NextDocument> {
    if spans.format_version != metadata.format_version() as u8 {
        return None;
    }
    // Everything but the snapshots and their log, as `to_json_ordered` makes it.
    let mut doc = serde_json::to_value(metadata.without_snapshots()).ok()?;
    as_java_writes(&mut doc, metadata).ok()?;
    let Value::Object(doc) = doc else {
        return None;
    };
    let mut parts: BTreeMap<&str, Cow<str>> = doc
        .iter()
        .map(|(key, value)| Some((key.as_str(), Cow::Owned(serde_json::to_string(value).ok()?))))
        .collect::<Option<_>>()?;
    // The snapshots in commit order: copied when written before, else written now.
    let mut snapshots: Vec<_> = metadata.snapshots().collect();
    snapshots.sort_by_key(|s| (s.sequence_number(), s.timestamp_ms(), s.snapshot_id()));
    let mut texts: Vec<Cow<str>> = Vec::with_capacity(snapshots.len());
    for snapshot in &snapshots {
        texts.push(match spans.at.get(&snapshot.snapshot_id()) {
            Some(span) => Cow::Borrowed(previous.get(span.clone())?),
            None => {
                let json = metadata.snapshot_to_json(snapshot).ok()?;
                Cow::Owned(write_snapshot(&json, order).ok()?)
            }
        });
    }
    if !metadata.history().is_empty() {
        parts.insert(
            "snapshot-log",
            Cow::Owned(serde_json::to_string(metadata.history()).ok()?),
        );
    }
    let rest = write_object(&parts).ok()?;
    let texts: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
    let (json, starts) = write_document(&parts, &texts).ok()?;
    let at = snapshots
        .iter()
        .zip(texts.iter().zip(starts))
        .map(|(snapshot, (text, start))| (snapshot.snapshot_id(), start..start + text.len()))
        .collect();
    Some(NextDocument {
        json,
        rest,
        spans: SnapshotSpans {
            format_version: spans.format_version,
            at,
        },
    })
}

/// A JSON object of already written values, keys in order as a `Map` writes them.
fn write_object(parts: &BTreeMap<&str, Cow<str>>) -> Result<String, serde_json::Error> {
    Ok(write_document(parts, &[])?.0)
}

/// [`write_object`] with a `snapshots` member listing `snapshots` (none when empty), written
/// straight into the document; answers where each of them starts in it.
fn write_document(
    parts: &BTreeMap<&str, Cow<str>>,
    snapshots: &[&str],
) -> Result<(String, Vec<usize>), serde_json::Error> {
    let listed: usize = snapshots.iter().map(|s| s.len() + 1).sum();
    let mut out =
        String::with_capacity(parts.values().map(|v| v.len() + 32).sum::<usize>() + listed + 16);
    let mut starts = Vec::with_capacity(snapshots.len());
    let mut pending = !snapshots.is_empty();
    out.push('{');
    let mut list = |out: &mut String| -> Result<(), serde_json::Error> {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(SNAPSHOTS)?);
        out.push_str(":[");
        for (i, snapshot) in snapshots.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            starts.push(out.len());
            out.push_str(snapshot);
        }
        out.push(']');
        Ok(())
    };
    for (key, value) in parts {
        if pending && *key > SNAPSHOTS {
            list(&mut out)?;
            pending = false;
        }
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(key)?);
        out.push(':');
        out.push_str(value);
    }
    if pending {
        list(&mut out)?;
    }
    out.push('}');
    Ok((out, starts))
}

/// A stored metadata document with only the snapshots that branches, tags and the current
/// snapshot point at (the spec's `snapshots=refs` mode). Everything is copied as written.
pub(crate) fn refs_only(json: &str) -> Result<String, serde_json::Error> {
    #[derive(Deserialize)]
    struct Ref {
        #[serde(rename = "snapshot-id")]
        snapshot_id: i64,
    }
    let top: BTreeMap<&str, &RawValue> = serde_json::from_str(json)?;
    let mut keep: HashSet<i64> = HashSet::new();
    if let Some(refs) = top.get("refs") {
        let refs: HashMap<String, Ref> = serde_json::from_str(refs.get())?;
        keep.extend(refs.values().map(|r| r.snapshot_id));
    }
    if let Some(current) = top.get("current-snapshot-id") {
        keep.extend(serde_json::from_str::<Option<i64>>(current.get())?);
    }
    let mut parts: BTreeMap<&str, Cow<str>> = top
        .iter()
        .map(|(key, value)| (*key, Cow::Borrowed(value.get())))
        .collect();
    if let Some(snapshots) = top.get("snapshots") {
        let mut listed = String::from("[");
        for snapshot in serde_json::from_str::<Vec<&RawValue>>(snapshots.get())? {
            let place: SnapshotPlace = serde_json::from_str(snapshot.get())?;
            if keep.contains(&place.id) {
                if listed.len() > 1 {
                    listed.push(',');
                }
                listed.push_str(snapshot.get());
            }
        }
        listed.push(']');
        parts.insert("snapshots", Cow::Owned(listed));
    }
    write_object(&parts)
}

/// One snapshot as [`write`] writes it within a document.
fn write_snapshot(snapshot: &Value, order: &SummaryOrder) -> Result<String, serde_json::Error> {
    serde_json::to_string(&SnapshotInOrder(snapshot, order))
}

/// Writes a metadata document with its snapshot summaries in `order`.
fn write(doc: &Value, order: &SummaryOrder) -> Result<String, serde_json::Error> {
    if order.0.is_empty() {
        return serde_json::to_string(doc);
    }
    serde_json::to_string(&Ordered { doc, order })
}

/// The key order of snapshot summaries, by snapshot id, as a document lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryOrder(HashMap<i64, Vec<String>>);

impl SummaryOrder {
    /// The summaries of a table metadata document. A document it cannot read gives none.
    pub fn of_metadata(json: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Doc {
            #[serde(default)]
            snapshots: Vec<SnapshotKeys>,
        }
        serde_json::from_slice::<Doc>(json)
            .map(|d| Self::collect([d.snapshots]))
            .unwrap_or_default()
    }

    /// The summaries of the snapshots a commit request (`updates`) or a transaction
    /// (`table-changes`) adds. A body it cannot read gives none.
    pub fn of_commit(json: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Update {
            snapshot: Option<SnapshotKeys>,
        }
        #[derive(Deserialize)]
        struct Commit {
            #[serde(default)]
            updates: Vec<Update>,
        }
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            updates: Vec<Update>,
            #[serde(default, rename = "table-changes")]
            table_changes: Vec<Commit>,
        }
        let added = |updates: Vec<Update>| updates.into_iter().filter_map(|u| u.snapshot);
        serde_json::from_slice::<Body>(json)
            .map(|body| {
                let commits = body.table_changes.into_iter().map(|c| c.updates);
                Self::collect(std::iter::once(body.updates).chain(commits).map(added))
            })
            .unwrap_or_default()
    }

    /// This order, with `later`'s entries taking precedence.
    fn merged(mut self, later: &SummaryOrder) -> Self {
        self.0
            .extend(later.0.iter().map(|(id, keys)| (*id, keys.clone())));
        self
    }

    fn collect<I: IntoIterator<Item = SnapshotKeys>>(
        snapshots: impl IntoIterator<Item = I>,
    ) -> Self {
        Self(
            snapshots
                .into_iter()
                .flatten()
                .filter_map(|s| Some((s.id, s.summary?.0)))
                .collect(),
        )
    }
}

#[derive(Deserialize)]
struct SnapshotKeys {
    #[serde(rename = "snapshot-id")]
    id: i64,
    summary: Option<Keys>,
}

/// The keys of a JSON object, in order; the values are skipped.
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(Keys(keys))
            }
        }
        deserializer.deserialize_map(KeysVisitor)
    }
}

/// A metadata document whose snapshot summaries are written in a given key order.
struct Ordered<'a> {
    doc: &'a Value,
    order: &'a SummaryOrder,
}

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Value::Object(doc) = self.doc else {
            return self.doc.serialize(serializer);
        };
        let mut out = serializer.serialize_map(Some(doc.len()))?;
        for (key, value) in doc {
            match value {
                Value::Array(snapshots) if key == "snapshots" => {
                    out.serialize_entry(key, &OrderedSnapshots(snapshots, self.order))?;
                }
                _ => out.serialize_entry(key, value)?,
            }
        }
        out.end()
    }
}

struct OrderedSnapshots<'a>(&'a [Value], &'a SummaryOrder);

impl Serialize for OrderedSnapshots<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_seq(Some(self.0.len()))?;
        for snapshot in self.0 {
            out.serialize_element(&SnapshotInOrder(snapshot, self.1))?;
        }
        out.end()
    }
}

/// A snapshot whose summary is written in the order `order` holds for it, if any.
struct SnapshotInOrder<'a>(&'a Value, &'a SummaryOrder);

impl Serialize for SnapshotInOrder<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let keys = self
            .0
            .get("snapshot-id")
            .and_then(Value::as_i64)
            .and_then(|id| self.1.0.get(&id));
        match (self.0, keys) {
            (Value::Object(fields), Some(keys)) => {
                OrderedSnapshot(fields, keys).serialize(serializer)
            }
            _ => self.0.serialize(serializer),
        }
    }
}

struct OrderedSnapshot<'a>(&'a Map<String, Value>, &'a [String]);

impl Serialize for OrderedSnapshot<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            match value {
                Value::Object(summary) if key == "summary" => {
                    out.serialize_entry(key, &OrderedObject(summary, self.1))?;
                }
                _ => out.serialize_entry(key, value)?,
            }
        }
        out.end()
    }
}

/// An object with `keys` first, in that order, then any others.
struct OrderedObject<'a>(&'a Map<String, Value>, &'a [String]);

impl Serialize for OrderedObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (map, keys) = (self.0, self.1);
        let mut out = serializer.serialize_map(Some(map.len()))?;
        let mut written = std::collections::HashSet::with_capacity(keys.len());
        for key in keys {
            if let Some(value) = map.get(key)
                && written.insert(key.as_str())
            {
                out.serialize_entry(key, value)?;
            }
        }
        for (key, value) in map {
            if !written.contains(key.as_str()) {
                out.serialize_entry(key, value)?;
            }
        }
        out.end()
    }
}

/// Parses table metadata, keeping the refs of a format-version 1 document.
pub(crate) fn parse(json: &[u8]) -> Result<TableMetadata, String> {
    let metadata: TableMetadata = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    if metadata.format_version() != FormatVersion::V1 {
        return Ok(metadata);
    }
    // Only a document that names refs other than main needs a second look.
    let doc: Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let Some(Value::Object(refs)) = doc.get("refs") else {
        return Ok(metadata);
    };
    let others: Vec<(&String, &Value)> = refs.iter().filter(|(n, _)| *n != MAIN_BRANCH).collect();
    if others.is_empty() {
        return Ok(metadata);
    }
    let mut builder = TableMetadataBuilder::new_from_metadata(metadata, None);
    for (name, reference) in others {
        let reference: SnapshotReference =
            serde_json::from_value(reference.clone()).map_err(|e| format!("ref '{name}': {e}"))?;
        builder = builder
            .set_ref(name, reference)
            .map_err(|e| format!("ref '{name}': {e}"))?;
    }
    Ok(builder.build().map_err(|e| e.to_string())?.metadata)
}

/// The refs of a v1 table other than `main` as JSON (`None` when there are none): the crate
/// keeps them in memory but its v1 form cannot write them, so they are read off the same
/// metadata in the v2 form.
fn v1_refs(metadata: &TableMetadata) -> CatalogResult<Option<Value>> {
    // A ref needs a snapshot to point at.
    if metadata.snapshots().len() == 0 {
        return Ok(None);
    }
    let as_v2 = metadata
        .clone()
        .into_builder(None)
        .upgrade_format_version(FormatVersion::V2)
        .and_then(|b| b.build())
        .map_err(|e| CatalogError::Internal(format!("reading the refs of a v1 table: {e}")))?
        .metadata;
    let doc = serde_json::to_value(&as_v2)
        .map_err(|e| CatalogError::Internal(format!("reading the refs of a v1 table: {e}")))?;
    match doc.get("refs") {
        Some(Value::Object(refs)) if refs.keys().any(|k| k != MAIN_BRANCH) => {
            Ok(Some(Value::Object(refs.clone())))
        }
        _ => Ok(None),
    }
}

/// Lists snapshots in commit order, and schemas, specs and sort orders by id, as the Java
/// catalogs write them (the iceberg crate keeps them in hash maps, in no order).
fn in_commit_order(doc: &mut Value) {
    let sort_by = |doc: &mut Value, list: &str, keys: &[&str]| {
        if let Some(Value::Array(items)) = doc.get_mut(list) {
            items.sort_by_key(|item| {
                keys.iter()
                    .map(|k| item.get(*k).and_then(Value::as_i64).unwrap_or(0))
                    .collect::<Vec<_>>()
            });
        }
    };
    sort_by(
        doc,
        "snapshots",
        &["sequence-number", "timestamp-ms", "snapshot-id"],
    );
    sort_by(doc, "schemas", &["schema-id"]);
    sort_by(doc, "partition-specs", &["spec-id"]);
    sort_by(doc, "sort-orders", &["order-id"]);
}

/// Rewrites the defaults of `float` fields anywhere in a schema (or type) in their shortest
/// single-precision form.
fn shortest_float_defaults(node: &mut Value) {
    match node {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("float") {
                for key in ["initial-default", "write-default"] {
                    shorten(map, key);
                }
            }
            for value in map.values_mut() {
                shortest_float_defaults(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(shortest_float_defaults),
        _ => {}
    }
}

fn shorten(map: &mut Map<String, Value>, key: &str) {
    let Some(Value::Number(n)) = map.get(key) else {
        return;
    };
    let Some(wide) = n.as_f64() else {
        return;
    };
    #[allow(clippy::cast_possible_truncation)]
    let single = wide as f32;
    // Rust prints the shortest decimal that reads back as the same f32.
    if let Ok(shortest) = single.to_string().parse::<f64>()
        && let Some(number) = serde_json::Number::from_f64(shortest)
    {
        map.insert(key.to_owned(), Value::Number(number));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table metadata document with `count` snapshots on main (and a tag on the first).
    fn document(version: u8, count: i64) -> String {
        let snapshots: Vec<Value> = (1..=count)
            .map(|i| {
                let mut s = serde_json::json!({
                    "snapshot-id": 1000 + i, "timestamp-ms": 1_700_000_000_000_i64 + i,
                    "manifest-list": format!("file:///wh/t/metadata/snap-{i}.avro"),
                    "summary": {"operation": "append", "zeta": "1", "added-files-size": "9",
                                "alpha": i.to_string()},
                    "schema-id": 0});
                if version > 1 {
                    s["sequence-number"] = serde_json::json!(i);
                }
                if version > 2 {
                    s["first-row-id"] = serde_json::json!((i - 1) * 10);
                    s["added-rows"] = serde_json::json!(10);
                }
                if i > 1 {
                    s["parent-snapshot-id"] = serde_json::json!(999 + i);
                }
                s
            })
            .collect();
        let log: Vec<Value> = (1..=count)
            .map(|i| serde_json::json!({"snapshot-id": 1000 + i, "timestamp-ms": 1_700_000_000_000_i64 + i}))
            .collect();
        let mut doc = serde_json::json!({
            "format-version": version, "table-uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1",
            "location": "file:///wh/t", "last-updated-ms": 1_700_000_000_000_i64 + count,
            "last-column-id": 2, "current-schema-id": 0,
            "schemas": [{"type": "struct", "schema-id": 0, "fields": [
                {"id": 1, "name": "id", "required": true, "type": "long"},
                {"id": 2, "name": "f", "required": false, "type": "float"}]}],
            "default-spec-id": 0, "partition-specs": [{"spec-id": 0, "fields": []}],
            "last-partition-id": 999, "default-sort-order-id": 0,
            "sort-orders": [{"order-id": 0, "fields": []}],
            "properties": {"b": "2", "a": "1", "write.format.default": "parquet"},
            "current-snapshot-id": 1000 + count, "snapshots": snapshots, "snapshot-log": log,
            "metadata-log": [{"metadata-file": "file:///wh/t/metadata/00000-a.metadata.json",
                              "timestamp-ms": 1_700_000_000_000_i64}],
            "refs": {"main": {"snapshot-id": 1000 + count, "type": "branch"},
                     "first": {"snapshot-id": 1001, "type": "tag"}}});
        if version == 1 {
            doc["schema"] = doc["schemas"][0].clone();
            doc["partition-spec"] = serde_json::json!([]);
        } else {
            doc["last-sequence-number"] = serde_json::json!(count);
        }
        if version > 2 {
            doc["next-row-id"] = serde_json::json!(count * 10);
        }
        doc.to_string()
    }

    /// The next document after `previous`, checking the spans it comes with against the
    /// ones read off it.
    fn next(after: &TableMetadata, order: &SummaryOrder, previous: &str) -> String {
        let spans = SnapshotSpans::of_document(previous).unwrap();
        let fast = next_document(after, order, previous, &spans);
        let NextDocument { json, rest, spans } =
            to_json_next(after, order, previous, &spans).unwrap();
        assert_eq!(spans, SnapshotSpans::of_document(&json).unwrap());
        // Within a format version, the document is made from the previous one.
        if SnapshotSpans::of_document(previous).unwrap().format_version
            == after.format_version() as u8
        {
            assert_eq!(fast.map(|next| next.json).as_ref(), Some(&json));
        }
        // The rest and the snapshots, as a row keeps them apart, make the document again.
        let mut whole: Map<String, Value> = serde_json::from_str(&json).unwrap();
        let listed = whole
            .remove("snapshots")
            .unwrap_or(Value::Array(Vec::new()));
        assert_eq!(
            serde_json::from_str::<Map<String, Value>>(&rest).unwrap(),
            whole
        );
        let top: BTreeMap<&str, &RawValue> = serde_json::from_str(&json).unwrap();
        let array = top
            .get("snapshots")
            .map_or("[]".to_owned(), |r| r.get().to_owned());
        assert_eq!(serde_json::from_str::<Value>(&array).unwrap(), listed);
        assert_eq!(assemble(&rest, &array).unwrap(), (json.clone(), spans));
        json
    }

    #[test]
    fn next_documents_equal_full_ones() {
        for version in [1, 2, 3] {
            let before = parse(document(version, 20).as_bytes()).unwrap();
            let after = parse(document(version, 25).as_bytes()).unwrap();
            let order = SummaryOrder::of_metadata(document(version, 25).as_bytes());
            assert_eq!(order.0.len(), 25);
            let previous = to_json_ordered(&before, &order).unwrap();
            let full = to_json_ordered(&after, &order).unwrap();
            assert!(full.contains(r#""refs":{"first""#), "{full}");
            if version == 3 {
                assert!(full.contains(r#""first-row-id":240"#), "{full}");
            }
            assert_eq!(next(&after, &order, &previous), full, "v{version}");
            // The next commit copies from that document as well.
            let third = parse(document(version, 26).as_bytes()).unwrap();
            assert_eq!(
                next(&third, &order, &next(&after, &order, &previous)),
                to_json_ordered(&third, &order).unwrap(),
                "v{version}"
            );
            // Nothing to reuse: another format version, a document without snapshots.
            let other = to_json_ordered(
                &parse(document(if version == 1 { 2 } else { 1 }, 20).as_bytes()).unwrap(),
                &order,
            )
            .unwrap();
            assert_eq!(next(&after, &order, &other), full);
            // A commit knows the order of the snapshots it adds only; the others keep theirs
            // from the previous document, copied or (across format versions) read off it.
            let added = SummaryOrder(
                order
                    .0
                    .iter()
                    .filter(|(id, _)| **id > 1020)
                    .map(|(i, k)| (*i, k.clone()))
                    .collect(),
            );
            assert_eq!(added.0.len(), 5);
            assert_eq!(next(&after, &added, &previous), full);
            assert_eq!(next(&after, &added, &other), full);
            let empty = format!("{{\"format-version\": {version}}}");
            let spans = SnapshotSpans::of_document(&empty).unwrap();
            assert_eq!(
                next_document(&after, &order, &empty, &spans).unwrap().json,
                full
            );
        }
        // A previous snapshot's text is taken as it stands (it never changes).
        let before = parse(document(2, 3).as_bytes()).unwrap();
        let after = parse(document(2, 4).as_bytes()).unwrap();
        let order = SummaryOrder::default();
        let previous = to_json_ordered(&before, &order).unwrap();
        let marked = previous.replace(
            r#""manifest-list":"file:///wh/t/metadata/snap-2.avro""#,
            r#""manifest-list":"file:///wh/t/metadata/snap-2.avro" "#,
        );
        assert_ne!(marked, previous);
        let copied = next(&after, &order, &marked);
        assert!(copied.contains(r#"snap-2.avro" "#));
        assert_eq!(
            serde_json::from_str::<Value>(&copied).unwrap(),
            serde_json::from_str::<Value>(&to_json_ordered(&after, &order).unwrap()).unwrap()
        );
    }

    #[test]
    fn refs_only_keeps_referenced_snapshots() {
        let doc = serde_json::json!({
            "current-snapshot-id": 3,
            "refs": {"main": {"snapshot-id": 3, "type": "branch"}, "t": {"snapshot-id": 1, "type": "tag"}},
            "snapshots": [{"snapshot-id": 1}, {"snapshot-id": 2}, {"snapshot-id": 3}],
        });
        let out: Value = serde_json::from_str(&refs_only(&doc.to_string()).unwrap()).unwrap();
        let ids: Vec<i64> = out["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["snapshot-id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, vec![1, 3]);
    }

    #[test]
    fn summaries_keep_the_writers_order() {
        let body = br#"{"updates": [{"action": "add-snapshot", "snapshot": {"snapshot-id": 7,
            "summary": {"operation": "append", "added-files-size": "9", "added-data-files": "1",
            "zeta": "z", "alpha": "a"}}}, {"action": "set-properties", "updates": {}}]}"#;
        let order = SummaryOrder::of_commit(body);
        let older = SummaryOrder::of_metadata(
            br#"{"snapshots": [{"snapshot-id": 3, "summary": {"b": "1", "a": "2"}}]}"#,
        );
        let order = older.merged(&order);
        let doc = serde_json::json!({"format-version": 2, "snapshots": [
            {"snapshot-id": 3, "summary": {"a": "2", "b": "1"}},
            {"snapshot-id": 7, "summary": {"added-data-files": "1", "added-files-size": "9",
             "alpha": "a", "late": "x", "operation": "append", "zeta": "z"}},
            {"snapshot-id": 8, "summary": {"y": "1", "x": "2"}}]});
        let text = write(&doc, &order).unwrap();
        assert!(
            text.contains(r#"{"b":"1","a":"2"}"#)
                && text.contains(
                    r#"{"operation":"append","added-files-size":"9","added-data-files":"1","zeta":"z","alpha":"a","late":"x"}"#
                )
                && text.contains(r#"{"x":"2","y":"1"}"#),
            "{text}"
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, doc);
        // A transaction body, and bodies it cannot read.
        let tx = br#"{"table-changes": [{"updates": [{"snapshot": {"snapshot-id": 1,
            "summary": {"q": "1", "p": "2"}}}]}]}"#;
        assert_eq!(
            SummaryOrder::of_commit(tx).0.get(&1),
            Some(&vec!["q".to_owned(), "p".to_owned()])
        );
        for junk in [
            &b"[]"[..],
            b"{\"updates\": 5}",
            b"{\"snapshots\": [{}]}",
            b"nonsense",
        ] {
            assert!(SummaryOrder::of_commit(junk).0.is_empty());
            assert!(SummaryOrder::of_metadata(junk).0.is_empty());
        }
    }

    #[test]
    fn float_defaults_are_shortest() {
        let mut schema = serde_json::json!({"type": "struct", "fields": [
            {"id": 1, "name": "f", "type": "float", "write-default": 22.270000457763672,
             "initial-default": 0.10000000149011612},
            {"id": 2, "name": "d", "type": "double", "write-default": 22.270000457763672}]});
        shortest_float_defaults(&mut schema);
        assert_eq!(schema["fields"][0]["write-default"].to_string(), "22.27");
        assert_eq!(schema["fields"][0]["initial-default"].to_string(), "0.1");
        assert_eq!(
            schema["fields"][1]["write-default"].to_string(),
            "22.270000457763672",
            "doubles stay as they are"
        );
    }
}

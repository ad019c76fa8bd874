//! Storage: the only module that touches sled.
//!
//! - [`Store`] opens the data directory's sled database and owns one [`Table`] per
//!   aggregate ([`Tables`]).
//! - Keys are encoded by [`keys`] (big-endian, order-preserving), values by [`codec`]
//!   (a version byte + bincode; older versions upgraded on read).
//! - [`Store::write`] applies a multi-table [`WriteBatch`] atomically through the journal
//!   (`journal.rs`: one insert of the whole batch, then each operation, then its removal;
//!   replayed on open), never through sled's batches or transactions; a single put is a
//!   plain insert. [`GroupWriter`] splits many independent writes into entries under
//!   [`MAX_JOURNAL_BYTES`].
//! - [`barrier`] makes writes durable before replies are released.
//!
//! Architecture invariant: no sled type appears in this module's public API, and this
//! module names nothing of ours but `domain` (`layering.rs` checks it).

pub mod barrier;
pub mod codec;
mod journal;
pub mod keys;

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::Clock;

pub use barrier::{Barrier, BarrierStats, Durability};
pub use codec::Record;
pub use keys::Key;

/// The underlying error a [`StorageError`] keeps. Shared, so that one failure can be
/// handed to every waiter (the barrier's) and the error stays `Clone`.
pub type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// Errors of the storage layer. Each keeps the error that caused it as its
/// [`std::error::Error::source`]; nothing is decided by reading an error's text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// A file operation of ours failed.
    #[error("storage I/O error while {doing}: {source}")]
    Io {
        /// What the store was doing.
        doing: String,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// sled reported an error.
    #[error("storage engine error: {0}")]
    Sled(#[source] Arc<sled::Error>),
    /// Another process holds the store's file lock.
    #[error(
        "the store at {} is locked: is another emporium process using this data directory?",
        .0.display()
    )]
    Locked(PathBuf),
    /// Stored bytes have the wrong shape (truncated, trailing bytes, unknown version).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A stored value could not be decoded.
    #[error("stored {what} cannot be decoded: {source}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// The decoder's error.
        #[source]
        source: Cause,
    },
    /// A value could not be encoded.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: Cause,
    },
    /// A value is larger than the store accepts.
    #[error("record too large: {0} bytes")]
    TooLarge(usize),
    /// A flush or fsync failed; nothing more is acknowledged.
    #[error("durability failure while {step}: {source}")]
    Durability {
        /// The step that failed.
        step: &'static str,
        /// Why.
        #[source]
        source: Cause,
    },
    /// A flush or fsync failed because the disk is full (or over quota); nothing more
    /// is acknowledged.
    #[error("the disk is full ({step}): {source}")]
    DiskFull {
        /// The step that failed.
        step: &'static str,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The store is shutting down.
    #[error("store is closed")]
    Closed,
}

impl StorageError {
    /// The failure of a flush or fsync step: a full disk (ENOSPC, EDQUOT) is told apart
    /// by its error code, not its text.
    pub(crate) fn from_sync(step: &'static str, e: std::io::Error) -> StorageError {
        const ENOSPC: i32 = 28;
        const EDQUOT: i32 = 122;
        let full = matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
            || matches!(
                e.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            );
        if full {
            StorageError::DiskFull {
                step,
                source: Arc::new(e),
            }
        } else {
            StorageError::Durability {
                step,
                source: Arc::new(e),
            }
        }
    }

    /// A failed file operation of ours, with what we were doing.
    pub(crate) fn io(doing: impl Into<String>, e: std::io::Error) -> StorageError {
        StorageError::Io {
            doing: doing.into(),
            source: Arc::new(e),
        }
    }

    /// A value that could not be decoded, with what it was.
    pub(crate) fn decode(
        what: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> StorageError {
        StorageError::Decode {
            what: what.into(),
            source: Arc::new(e),
        }
    }

    /// A value that could not be encoded, with what it was.
    pub(crate) fn encode(
        what: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> StorageError {
        StorageError::Encode {
            what,
            source: Arc::new(e),
        }
    }
}

impl From<sled::Error> for StorageError {
    fn from(e: sled::Error) -> Self {
        StorageError::Sled(Arc::new(e))
    }
}

/// Largest encoded value we store. sled moves values of roughly 64 KiB and more to
/// separate blob files, which the barrier does not fsync; every record stays far below.
pub const MAX_RECORD_BYTES: usize = 48 * 1024;

/// Largest journal entry (a multi-key write, see `journal.rs`): the entry is one sled
/// value, and values near sled's blob threshold (a quarter of a 512 KiB segment in 0.34.7,
/// less headers; 64 KiB was seen) would go to a blob file the barrier does not fsync. A
/// batch whose entry would be larger is refused whole ([`StorageError::TooLarge`]);
/// writers of many independent records split them ([`GroupWriter`]). Room is left for a
/// record of [`MAX_RECORD_BYTES`] with its index entries and event.
pub const MAX_JOURNAL_BYTES: usize = 60 * 1024;

/// Options for [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Durability mode of acknowledged writes.
    pub durability: Durability,
    /// sled's page cache size.
    pub cache_capacity_bytes: u64,
    /// The clock event times are read from, and that the store hands to its users
    /// ([`Store::clock`]).
    pub clock: Clock,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Strict,
            cache_capacity_bytes: 256 * 1024 * 1024,
            clock: Clock::system(),
        }
    }
}

/// Marker for a table's key and value types (`fn(&K)` so that unsized keys work).
type TableTypes<K, V> = (fn(&K), V);

/// Puts and removes of one table (or the journal), counted while counting is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCount {
    /// Inserts.
    pub puts: u64,
    /// Removes.
    pub removes: u64,
    /// Bytes of the values put (keys not counted).
    pub bytes: u64,
}

/// The store's operations by tree, counted only while switched on ([`Store::count_ops`]:
/// measurement runs); switched off, an operation pays one relaxed load.
#[derive(Default)]
struct OpCounter {
    on: std::sync::atomic::AtomicBool,
    by_tree: std::sync::Mutex<std::collections::BTreeMap<String, OpCount>>,
}

impl OpCounter {
    /// Counts a put of `bytes` (`Some`) or a remove (`None`).
    fn count(&self, tree: &sled::Tree, put: Option<usize>) {
        if !self.on.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let name = String::from_utf8_lossy(&tree.name()).into_owned();
        let mut by = self.by_tree.lock().expect("op counter lock");
        let c = by.entry(name).or_default();
        match put {
            Some(bytes) => {
                c.puts += 1;
                c.bytes += bytes as u64;
            }
            None => c.removes += 1,
        }
    }
}

/// A typed view of one sled tree: keys of type `K`, values of type `V`.
pub struct Table<K: ?Sized, V> {
    tree: sled::Tree,
    /// Writes are refused once it has failed (see [`Barrier::writable`]).
    barrier: Barrier,
    ops: Arc<OpCounter>,
    _types: PhantomData<TableTypes<K, V>>,
}

impl<K: ?Sized, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Self {
            tree: self.tree.clone(),
            barrier: self.barrier.clone(),
            ops: self.ops.clone(),
            _types: PhantomData,
        }
    }
}

impl<K: Key + ?Sized, V: Record> Table<K, V> {
    fn open(
        db: &sled::Db,
        (barrier, ops): (&Barrier, &Arc<OpCounter>),
        name: &str,
    ) -> Result<Self, StorageError> {
        Ok(Self {
            tree: db.open_tree(name)?,
            barrier: barrier.clone(),
            ops: ops.clone(),
            _types: PhantomData,
        })
    }

    /// Reads one value.
    pub fn get(&self, key: &K) -> Result<Option<V>, StorageError> {
        self.tree
            .get(key.encode())?
            .map(|b| codec::decode(&b))
            .transpose()
    }

    /// The stored bytes under an encoded key (sled hands out a shared buffer, not a copy).
    fn get_raw(&self, encoded: &[u8]) -> Result<Option<sled::IVec>, StorageError> {
        Ok(self.tree.get(encoded)?)
    }

    /// Whether a key is present.
    pub fn contains(&self, key: &K) -> Result<bool, StorageError> {
        Ok(self.tree.contains_key(key.encode())?)
    }

    /// Writes one value (not yet durable: take a barrier ticket after it).
    pub fn put(&self, key: &K, value: &V) -> Result<(), StorageError> {
        self.barrier.writable()?;
        let bytes = checked_encode(value)?;
        let len = bytes.len();
        self.tree.insert(key.encode(), bytes)?;
        self.ops.count(&self.tree, Some(len));
        Ok(())
    }

    /// Removes one key.
    pub fn remove(&self, key: &K) -> Result<(), StorageError> {
        self.barrier.writable()?;
        self.tree.remove(key.encode())?;
        self.ops.count(&self.tree, None);
        Ok(())
    }

    /// Number of entries (a full scan: for tests and tools).
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Every value in key order, decoded lazily (a full scan: for rebuilds and tools).
    pub fn values(&self) -> impl Iterator<Item = Result<V, StorageError>> + '_ {
        self.tree.iter().map(|item| {
            let (_, v) = item?;
            codec::decode(&v)
        })
    }

    /// Iterates values in key order starting after `after` (raw encoded key), at most
    /// `limit` of them, returning each with its raw key.
    pub fn scan_after(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, V)>, StorageError> {
        let iter = match after {
            Some(k) => self
                .tree
                .range::<&[u8], _>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded)),
            None => self.tree.iter(),
        };
        let mut out = Vec::new();
        for item in iter.take(limit) {
            let (k, v) = item?;
            out.push((k.to_vec(), codec::decode(&v)?));
        }
        Ok(out)
    }

    /// The whole table in key order, `size` entries at a time (each page is read when it
    /// is asked for, so a caller may write between pages): for sweeps.
    pub fn pages(
        &self,
        size: usize,
    ) -> impl Iterator<Item = Result<Vec<(Vec<u8>, V)>, StorageError>> + '_ {
        let mut after: Option<Vec<u8>> = None;
        let mut done = false;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            let page = self.scan_after(after.as_deref(), size);
            match &page {
                Ok(p) if p.is_empty() => return None,
                Ok(p) => after = p.last().map(|(k, _)| k.clone()),
                Err(_) => done = true,
            }
            Some(page)
        })
    }
}

impl<V: Record> Table<[u8], V> {
    /// Entries whose key starts with `prefix`, after `after` (a full key) if given, in key
    /// order, at most `limit`.
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, V)>, StorageError> {
        let start = match after {
            Some(k) if k > prefix => std::ops::Bound::Excluded(k.to_vec()),
            _ => std::ops::Bound::Included(prefix.to_vec()),
        };
        let mut out = Vec::new();
        for item in self
            .tree
            .range::<Vec<u8>, _>((start, std::ops::Bound::Unbounded))
        {
            let (k, v) = item?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k.to_vec(), codec::decode(&v)?));
        }
        Ok(out)
    }
}

impl<V: Record> Table<u64, V> {
    /// Entries with keys in `from..`, in order, at most `limit`.
    pub fn scan_from(&self, from: u64, limit: usize) -> Result<Vec<(u64, V)>, StorageError> {
        let mut out = Vec::new();
        for item in self.tree.range(from.encode()..).take(limit) {
            let (k, v) = item?;
            let key = keys::decode_u64(&k)
                .ok_or_else(|| StorageError::Corrupt("short u64 key".into()))?;
            out.push((key, codec::decode(&v)?));
        }
        Ok(out)
    }

    /// Removes every key `<= upto`.
    pub fn remove_through(&self, upto: u64) -> Result<(), StorageError> {
        self.barrier.writable()?;
        let mut batch = sled::Batch::default();
        for item in self.tree.range(..=upto.encode()) {
            let (k, _) = item?;
            batch.remove(k);
            self.ops.count(&self.tree, None);
        }
        Ok(self.tree.apply_batch(batch)?)
    }

    /// The largest key, if any.
    pub fn last_key(&self) -> Result<Option<u64>, StorageError> {
        Ok(self.tree.last()?.and_then(|(k, _)| keys::decode_u64(&k)))
    }
}

/// How long `Store::open` waits for sled's file lock to be released.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens sled, waiting a bounded time for its file lock: after the last handle of a store
/// is dropped, sled's background I/O jobs keep the locked file open a moment longer, so
/// reopening in the same process can briefly find the lock held. A store that is really in
/// use by another process still fails, after [`LOCK_WAIT`], with an error that says so.
fn open_sled(path: &Path, options: &StoreOptions) -> Result<sled::Db, StorageError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_capacity_bytes)
            .flush_every_ms(Some(500))
            .open();
        match opened {
            // sled reports a held lock only as text; whether the lock is held is asked of
            // the file itself instead.
            Err(sled::Error::Io(_)) if db_file_locked(path) => {
                if std::time::Instant::now() >= deadline {
                    return Err(StorageError::Locked(path.to_path_buf()));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// Whether sled's data file under `path` is locked by an open database: sled takes an
/// exclusive `flock` on it, so a non-blocking attempt of ours fails exactly then (ours is
/// released at once, when the file closes).
fn db_file_locked(path: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path.join("db"))
    else {
        return false;
    };
    matches!(
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive),
        Err(rustix::io::Errno::WOULDBLOCK)
    )
}

fn checked_encode<V: Record>(value: &V) -> Result<Vec<u8>, StorageError> {
    let bytes = codec::encode(value)?;
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(StorageError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// A set of puts and removes over several tables, applied atomically by [`Store::write`].
#[derive(Default)]
pub struct WriteBatch {
    /// In the order added: tree, key, value (`None` = remove).
    ops: Vec<(sled::Tree, Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    /// Adds a put.
    pub fn put<K: Key + ?Sized, V: Record>(
        &mut self,
        table: &Table<K, V>,
        key: &K,
        value: &V,
    ) -> Result<(), StorageError> {
        let bytes = checked_encode(value)?;
        self.ops
            .push((table.tree.clone(), key.encode(), Some(bytes)));
        Ok(())
    }

    /// Adds a remove.
    pub fn remove<K: Key + ?Sized, V: Record>(&mut self, table: &Table<K, V>, key: &K) {
        self.ops.push((table.tree.clone(), key.encode(), None));
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Bytes its journal entry takes (see [`MAX_JOURNAL_BYTES`]).
    pub fn encoded_len(&self) -> usize {
        journal::encoded_len(&self.ops)
    }

    /// Moves every operation of `other` to the end of this batch.
    pub fn append(&mut self, mut other: WriteBatch) {
        self.ops.append(&mut other.ops);
    }
}

/// Writes many independent groups of operations (each with its events), each group
/// atomic, in as few writes as keep every journal entry within [`MAX_JOURNAL_BYTES`]: an
/// import of thousands of products is many entries, never one huge one.
pub struct GroupWriter<'a> {
    store: &'a Store,
    batch: WriteBatch,
    events: Vec<crate::domain::event::DomainEvent>,
    bytes: usize,
    /// Writes made so far.
    pub writes: usize,
}

impl<'a> GroupWriter<'a> {
    /// A writer into `store`.
    pub fn new(store: &'a Store) -> Self {
        GroupWriter {
            store,
            batch: WriteBatch::default(),
            events: Vec::new(),
            bytes: 4,
            writes: 0,
        }
    }

    /// Adds a group; writes what was gathered first if the group would not fit beside it.
    /// A group that alone exceeds the limit is refused ([`StorageError::TooLarge`]) and
    /// nothing of it is written.
    pub fn add(
        &mut self,
        group: WriteBatch,
        events: Vec<crate::domain::event::DomainEvent>,
    ) -> Result<(), StorageError> {
        let mut size = group.encoded_len() - 4;
        for e in &events {
            size += Store::event_entry_len(e)?;
        }
        if size + 4 > MAX_JOURNAL_BYTES {
            return Err(StorageError::TooLarge(size + 4));
        }
        if self.bytes + size > MAX_JOURNAL_BYTES {
            self.flush()?;
        }
        self.batch.append(group);
        self.events.extend(events);
        self.bytes += size;
        Ok(())
    }

    /// Writes what is gathered.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.batch.is_empty() && self.events.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let events = std::mem::take(&mut self.events);
        self.bytes = 4;
        self.store.write_with_events(batch, &events)?;
        self.writes += 1;
        Ok(())
    }
}

/// Decoded values of a table kept for reads that return many of them (search results,
/// recommendations). An entry remembers the stored bytes it was decoded from and is used
/// only while the store still holds exactly those bytes, so no write path has to
/// invalidate it and a read never sees a stale value: a hit costs a tree lookup and a
/// byte comparison instead of a decode (a product with its attributes was a quarter of
/// a search's CPU).
pub struct DecodedCache<V> {
    entries: quick_cache::sync::Cache<Vec<u8>, (sled::IVec, Arc<V>)>,
}

impl<V: Record> DecodedCache<V> {
    /// A cache of at most `items` values.
    pub fn new(items: usize) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(items),
        }
    }

    /// Reads `key` from `table`, decoding only when the stored bytes changed.
    pub fn get<K: Key + ?Sized>(
        &self,
        table: &Table<K, V>,
        key: &K,
    ) -> Result<Option<Arc<V>>, StorageError> {
        let encoded = key.encode();
        let Some(raw) = table.get_raw(&encoded)? else {
            return Ok(None);
        };
        if let Some((bytes, value)) = self.entries.get(&encoded)
            && bytes == raw
        {
            return Ok(Some(value));
        }
        let value = Arc::new(codec::decode::<V>(&raw)?);
        self.entries.insert(encoded, (raw, value.clone()));
        Ok(Some(value))
    }
}

/// The tables of the store.
#[derive(Clone)]
pub struct Tables {
    /// Decoded products (see [`DecodedCache`]); read them with [`Tables::product`].
    product_cache: Arc<DecodedCache<crate::domain::product::Product>>,
    /// Decoded orders (see [`DecodedCache`]); read them with [`Tables::order`].
    order_cache: Arc<DecodedCache<crate::domain::order::Order>>,
    /// Products by SKU.
    pub products: Table<str, crate::domain::product::Product>,
    /// Carts by id.
    pub carts: Table<str, crate::domain::cart::Cart>,
    /// Stock (on hand and reservations) by SKU.
    pub stock: Table<str, crate::domain::inventory::Stock>,
    /// Small settings and markers by name.
    pub meta: Table<str, MetaValue>,
    /// SKUs whose search document must be refreshed, by sequence number. Written in the
    /// same atomic batch as the change that makes a product's document stale, drained by
    /// the search indexer after its commit: the index can lag the store, never lose a change.
    pub index_queue: Table<u64, IndexEntry>,
    /// The durable event log, by sequence number (see [`Store::write_with_events`]).
    pub events: Table<u64, EventRecord>,
    /// Orders by id.
    pub orders: Table<str, crate::domain::order::Order>,
    /// Secondary index of orders: `[tag][created_at BE][id]` → mark, where the tag is a
    /// status (listing by status), [`ORDERS_ALL`] (every order) or [`ORDERS_ACTIVE`]
    /// (saga or owed work outstanding: what recovery drives). Written in the same batch as
    /// the order.
    pub order_index: Table<[u8], Mark>,
    /// Checkout idempotency records by `{cart id}:{key}`.
    pub idempotency: Table<str, crate::domain::order::IdempotencyRecord>,
    /// Payments by order id, as this engine recorded them.
    pub payments: Table<str, crate::domain::payment::Payment>,
    /// The simulated gateway's own ledger of charges, by idempotency key (it stands in
    /// for an external system, so it keeps its own books).
    pub gateway_ledger: Table<str, crate::domain::payment::Charge>,
    /// Email templates stored over the built-in defaults, by name.
    pub templates: Table<str, crate::domain::notification::Template>,
    /// Notifications by the sequence number of the event that caused them.
    pub notifications: Table<u64, crate::domain::notification::Notification>,
    /// Notifications still to be sent, by sequence number.
    pub mail_queue: Table<u64, Mark>,
    /// Customer accounts by id (written by the customer's actor; created by the accounts
    /// registry together with the email claim).
    pub customers: Table<str, crate::domain::customer::Customer>,
    /// Which account holds each sign-in email (normalised): written only by the accounts
    /// registry, so two registrations cannot both claim one address.
    pub customer_emails: Table<str, crate::domain::customer::CustomerRef>,
    /// Open sessions by the SHA-256 digest of their token (hex): written by the account's
    /// actor, read by every authenticated request.
    pub sessions: Table<str, crate::domain::customer::Session>,
    /// The account each customer's order belongs to, by order id: written with the order.
    pub order_owners: Table<str, crate::domain::customer::CustomerRef>,
    /// A customer's orders, newest first: `[customer id][!created_at BE][order id]` →
    /// mark ([`customer_order_key`]); written with the order.
    pub customer_orders: Table<[u8], Mark>,
    /// The account holding each cart, by cart id: written by the account's actor.
    pub cart_owners: Table<str, crate::domain::customer::CustomerRef>,
    /// Orders by the email they were placed with (lower-cased), newest first:
    /// `[email][0][!created_at BE][order id]` → mark ([`email_order_key`]); written with
    /// the order. A verified account's history includes its email's guest orders.
    pub email_orders: Table<[u8], Mark>,
    /// Promotion codes by code (canonical), with their uses: written by the code's actor.
    pub promotions: Table<str, crate::domain::promotion::Promotion>,
    /// How often each customer used each code: `{code}\0{customer}` → count
    /// ([`promotion_use_key`]); written by the code's actor.
    pub promotion_uses: Table<[u8], crate::domain::promotion::CustomerUses>,
    /// The orders whose use of a code is committed: `{code}\0{order id}` → mark
    /// ([`promotion_use_key`] with the order id); written by the code's actor with the
    /// commit, removed when the use is given back. A repeated commit is recognised by it,
    /// so the code's record holds no list of orders.
    pub promotion_orders: Table<[u8], crate::domain::promotion::CommittedUse>,
    /// The store's pricing settings (shipping zones, tax table, price mode) under one
    /// key, `pricing`: written by the engine's settings use cases, one at a time.
    pub settings: Table<str, crate::domain::pricing::PricingSettings>,
    /// Webhook endpoints by id, with their offsets and retry state: written by the
    /// endpoint's delivery actor (created by the engine's use case, under a fresh id).
    pub webhooks: Table<str, crate::domain::webhook::Endpoint>,
    /// Webhook delivery attempts, newest first per endpoint: `[endpoint id][!number BE]`
    /// ([`webhook_attempt_key`]); written by the endpoint's actor, the oldest dropped past
    /// a bound.
    pub webhook_attempts: Table<[u8], crate::domain::webhook::Attempt>,
}

/// Decoded products kept by [`Tables::product`].
const PRODUCT_CACHE_ITEMS: usize = 8_192;
/// Decoded orders kept by [`Tables::order`] (each entry holds the order's stored bytes
/// and its decoded value): a full page of history (100 orders) for 163 shoppers, or the
/// whole history of thousands of shoppers with a few orders each.
const ORDER_CACHE_ITEMS: usize = 16_384;

impl Tables {
    /// One product, decoded once per stored version (see [`DecodedCache`]).
    pub fn product(
        &self,
        sku: &str,
    ) -> Result<Option<Arc<crate::domain::product::Product>>, StorageError> {
        self.product_cache.get(&self.products, sku)
    }

    /// One order, decoded once per stored version (see [`DecodedCache`]): a shopper's
    /// history is read on every recommendation made for them.
    pub fn order(
        &self,
        id: &str,
    ) -> Result<Option<Arc<crate::domain::order::Order>>, StorageError> {
        self.order_cache.get(&self.orders, id)
    }
}

/// Index tag of the "every order" listing.
pub const ORDERS_ALL: u8 = 0;
/// Index tag of orders recovery must drive.
pub const ORDERS_ACTIVE: u8 = 0xFF;

/// The key of an order in [`Tables::order_index`].
pub fn order_index_key(tag: u8, created_at: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + id.len());
    k.push(tag);
    k.extend_from_slice(&(created_at.max(0) as u64).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// The key of a customer's order in [`Tables::customer_orders`]: newest first within the
/// customer (the time is stored inverted).
pub fn customer_order_key(customer_id: &str, created_at: i64, order_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(customer_id.len() + 8 + order_id.len());
    k.extend_from_slice(customer_id.as_bytes());
    k.extend_from_slice(&(!(created_at.max(0) as u64)).to_be_bytes());
    k.extend_from_slice(order_id.as_bytes());
    k
}

/// The key of an endpoint's attempt `number` in [`Tables::webhook_attempts`]: the
/// endpoint's id (fixed length), then the number inverted, so a prefix scan reads the
/// newest first.
pub fn webhook_attempt_key(endpoint_id: &str, number: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(endpoint_id.len() + 8);
    k.extend_from_slice(endpoint_id.as_bytes());
    k.extend_from_slice(&(!number).to_be_bytes());
    k
}

/// The key of a customer's uses of a code in [`Tables::promotion_uses`].
pub fn promotion_use_key(code: &str, customer: &str) -> Vec<u8> {
    let mut k = code.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(customer.as_bytes());
    k
}

/// The prefix of an email's orders in [`Tables::email_orders`].
pub fn email_orders_prefix(email: &str) -> Vec<u8> {
    let mut k = email.to_lowercase().into_bytes();
    k.push(0);
    k
}

/// The key of an order in [`Tables::email_orders`]: newest first within the email.
pub fn email_order_key(email: &str, created_at: i64, order_id: &str) -> Vec<u8> {
    let mut k = email_orders_prefix(email);
    k.extend_from_slice(&(!(created_at.max(0) as u64)).to_be_bytes());
    k.extend_from_slice(order_id.as_bytes());
    k
}

impl Tables {
    /// Removes an order's entries in the email and customer indexes and its owner (the
    /// order itself is being deleted).
    pub fn unstage_order_indexes(
        &self,
        batch: &mut WriteBatch,
        order: &crate::domain::order::Order,
    ) -> Result<(), StorageError> {
        batch.remove(
            &self.email_orders,
            &email_order_key(&order.email, order.created_at, &order.id),
        );
        if let Some(owner) = self.order_owners.get(order.id.as_str())? {
            batch.remove(&self.order_owners, order.id.as_str());
            let key = customer_order_key(&owner.customer_id, order.created_at, &order.id);
            batch.remove(&self.customer_orders, &key);
        }
        Ok(())
    }

    /// Records that the new order `order` belongs to `customer_id` (its owner and its
    /// place in the customer's history), in the batch that creates it.
    pub fn stage_order_owner(
        &self,
        batch: &mut WriteBatch,
        order: &crate::domain::order::Order,
        customer_id: &str,
    ) -> Result<(), StorageError> {
        let owner = crate::domain::customer::CustomerRef {
            customer_id: customer_id.to_owned(),
        };
        batch.put(&self.order_owners, order.id.as_str(), &owner)?;
        let key = customer_order_key(customer_id, order.created_at, &order.id);
        batch.put(&self.customer_orders, &key, &Mark)
    }

    /// Adds order `after` and its index entries to `batch`; `before` is the stored
    /// version, if any. The order index is kept here, beside the table it indexes, so
    /// every writer of an order (its actor, the cart that creates it, the history import)
    /// keeps it the same way.
    pub fn stage_order(
        &self,
        batch: &mut WriteBatch,
        before: Option<&crate::domain::order::Order>,
        after: &crate::domain::order::Order,
    ) -> Result<(), StorageError> {
        use crate::domain::order::{Order, OrderStatus};
        batch.put(&self.orders, after.id.as_str(), after)?;
        let by_email = |o: &Order| email_order_key(&o.email, o.created_at, &o.id);
        if before.is_none_or(|b| b.email != after.email) {
            if let Some(b) = before {
                batch.remove(&self.email_orders, &by_email(b));
            }
            if !after.is_anonymised() {
                batch.put(&self.email_orders, &by_email(after), &Mark)?;
            }
        }
        let key = |tag: u8| order_index_key(tag, after.created_at, &after.id);
        if before.is_none() {
            batch.put(&self.order_index, &key(ORDERS_ALL), &Mark)?;
        }
        // A failed checkout never became an order: it leaves the listing of all orders.
        if after.status == OrderStatus::Failed
            && before.is_some_and(|b| b.status != OrderStatus::Failed)
        {
            batch.remove(&self.order_index, &key(ORDERS_ALL));
        }
        if before.map(|b| b.status) != Some(after.status) {
            if let Some(b) = before {
                batch.remove(&self.order_index, &key(b.status.tag()));
            }
            batch.put(&self.order_index, &key(after.status.tag()), &Mark)?;
        }
        let was_active = before.is_some_and(Order::is_active);
        match (was_active, after.is_active()) {
            (false, true) => batch.put(&self.order_index, &key(ORDERS_ACTIVE), &Mark)?,
            (true, false) => batch.remove(&self.order_index, &key(ORDERS_ACTIVE)),
            _ => {}
        }
        Ok(())
    }
}

/// An empty value (index entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mark;

impl Record for Mark {
    const VERSION: u8 = 1;
    const NAME: &'static str = "mark";
}

/// An event as stored: its JSON (type and data) and when it was appended. JSON keeps the
/// log readable by any tool and independent of the codec of the aggregates.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventRecord {
    /// Append time (ms since the epoch).
    pub at: i64,
    /// `{"type": …, "data": …}`.
    pub json: String,
}

impl Record for EventRecord {
    const VERSION: u8 = 1;
    const NAME: &'static str = "event";
}

/// An entry of the `index_queue` table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexEntry {
    /// The product to re-index.
    pub sku: String,
}

impl Record for IndexEntry {
    const VERSION: u8 = 1;
    const NAME: &'static str = "index_entry";
}

/// A value in the `meta` table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum MetaValue {
    /// A number.
    Number(u64),
    /// A string.
    Text(String),
}

impl Record for MetaValue {
    const VERSION: u8 = 1;
    const NAME: &'static str = "meta";
}

struct StoreInner {
    db: sled::Db,
    path: PathBuf,
    tables: Tables,
    barrier: Barrier,
    sync: Arc<barrier::SyncTarget>,
    flusher: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The next event sequence number. Held while a batch with events is written, so
    /// numbers are assigned in commit order and the log never has a gap a reader could
    /// step over.
    next_event: std::sync::Mutex<u64>,
    /// Woken after events are appended (the dispatcher waits on it).
    appended: tokio::sync::Notify,
    /// Commit points of multi-key writes (see `journal.rs`).
    journal: sled::Tree,
    journal_seq: std::sync::atomic::AtomicU64,
    clock: Clock,
    ops: Arc<OpCounter>,
}

/// The embedded store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

impl Store {
    /// The engine's clock (see [`crate::clock`]).
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Store, StorageError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join("store");
        let db = open_sled(&path, options)?;
        let log = std::fs::File::open(path.join("db"))
            .map_err(|e| StorageError::io("opening sled's log", e))?;
        // Make the freshly created files' directory entries durable once.
        if let Ok(d) = std::fs::File::open(&path) {
            let _ = d.sync_all();
        }
        // The barrier first: every table refuses writes once it has failed.
        let sync = Arc::new(barrier::SyncTarget {
            db: db.clone(),
            log,
        });
        let (barrier, flusher) = Barrier::start(options.durability, sync.clone());
        let ops = Arc::new(OpCounter::default());
        let opened = (|| {
            let tables = Tables {
                product_cache: Arc::new(DecodedCache::new(PRODUCT_CACHE_ITEMS)),
                order_cache: Arc::new(DecodedCache::new(ORDER_CACHE_ITEMS)),
                products: Table::open(&db, (&barrier, &ops), "products")?,
                carts: Table::open(&db, (&barrier, &ops), "carts")?,
                stock: Table::open(&db, (&barrier, &ops), "stock")?,
                meta: Table::open(&db, (&barrier, &ops), "meta")?,
                index_queue: Table::open(&db, (&barrier, &ops), "index_queue")?,
                events: Table::open(&db, (&barrier, &ops), "events")?,
                orders: Table::open(&db, (&barrier, &ops), "orders")?,
                order_index: Table::open(&db, (&barrier, &ops), "order_index")?,
                idempotency: Table::open(&db, (&barrier, &ops), "idempotency")?,
                payments: Table::open(&db, (&barrier, &ops), "payments")?,
                gateway_ledger: Table::open(&db, (&barrier, &ops), "gateway_ledger")?,
                templates: Table::open(&db, (&barrier, &ops), "templates")?,
                notifications: Table::open(&db, (&barrier, &ops), "notifications")?,
                mail_queue: Table::open(&db, (&barrier, &ops), "mail_queue")?,
                customers: Table::open(&db, (&barrier, &ops), "customers")?,
                customer_emails: Table::open(&db, (&barrier, &ops), "customer_emails")?,
                sessions: Table::open(&db, (&barrier, &ops), "sessions")?,
                order_owners: Table::open(&db, (&barrier, &ops), "order_owners")?,
                customer_orders: Table::open(&db, (&barrier, &ops), "customer_orders")?,
                cart_owners: Table::open(&db, (&barrier, &ops), "cart_owners")?,
                email_orders: Table::open(&db, (&barrier, &ops), "email_orders")?,
                promotions: Table::open(&db, (&barrier, &ops), "promotions")?,
                promotion_uses: Table::open(&db, (&barrier, &ops), "promotion_uses")?,
                promotion_orders: Table::open(&db, (&barrier, &ops), "promotion_orders")?,
                webhooks: Table::open(&db, (&barrier, &ops), "webhooks")?,
                webhook_attempts: Table::open(&db, (&barrier, &ops), "webhook_attempts")?,
                settings: Table::open(&db, (&barrier, &ops), "settings")?,
            };
            // Multi-key writes a crash interrupted are completed before anything reads.
            let journal = db.open_tree("journal")?;
            let replayed = journal::replay(&db, &journal)?;
            if replayed > 0 {
                tracing::info!(entries = replayed, "completed interrupted multi-key writes");
                db.flush()?;
            }
            let next_event = tables.events.last_key()?.map_or(1, |k| k + 1);
            Ok((tables, journal, next_event))
        })();
        let (tables, journal, next_event) = match opened {
            Ok(t) => t,
            Err(e) => {
                // Stop the flusher, which holds the database (and its file lock).
                barrier.shutdown();
                if let Some(t) = flusher {
                    let _ = t.join();
                }
                return Err(e);
            }
        };
        Ok(Store {
            inner: Arc::new(StoreInner {
                db,
                path,
                tables,
                barrier,
                sync,
                flusher: std::sync::Mutex::new(flusher),
                next_event: std::sync::Mutex::new(next_event),
                appended: tokio::sync::Notify::new(),
                clock: options.clock.clone(),
                journal,
                journal_seq: std::sync::atomic::AtomicU64::new(1),
                ops,
            }),
        })
    }

    /// Applies `batch` together with `events` appended to the event log, atomically: the
    /// state change and its events land together or not at all. Returns the events'
    /// sequence numbers.
    pub fn write_with_events(
        &self,
        mut batch: WriteBatch,
        events: &[crate::domain::event::DomainEvent],
    ) -> Result<Vec<u64>, StorageError> {
        if events.is_empty() {
            self.write(batch)?;
            return Ok(Vec::new());
        }
        let at = self.inner.clock.now();
        let mut next = self.inner.next_event.lock().expect("event lock");
        let mut seqs = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let seq = *next + i as u64;
            let json = serde_json::to_string(e).map_err(|e| StorageError::encode("an event", e))?;
            batch.put(&self.inner.tables.events, &seq, &EventRecord { at, json })?;
            seqs.push(seq);
        }
        self.write(batch)?;
        *next += events.len() as u64;
        drop(next);
        self.inner.appended.notify_waiters();
        Ok(seqs)
    }

    /// The journal bytes an event adds to a write (its log entry: key, JSON and framing).
    pub fn event_entry_len(e: &crate::domain::event::DomainEvent) -> Result<usize, StorageError> {
        let json = serde_json::to_string(e).map_err(|e| StorageError::encode("an event", e))?;
        // Tree name, u64 key, version byte, `at` and the JSON's length (varints), framing.
        Ok(json.len() + "events".len() + 8 + 1 + 10 + 5 + 13)
    }

    /// Waits until an event is appended (or returns at once if one was appended since the
    /// returned future was created — callers re-check the log after it resolves).
    pub fn events_appended(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.appended.notified()
    }

    /// Events with sequence numbers after `after`, at most `limit`, decoded.
    pub fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<crate::domain::event::LoggedEvent>, StorageError> {
        self.inner
            .tables
            .events
            .scan_from(after.saturating_add(1), limit)?
            .into_iter()
            .map(|(seq, r)| {
                let event = serde_json::from_str(&r.json)
                    .map_err(|e| StorageError::decode(format!("event {seq}"), e))?;
                Ok(crate::domain::event::LoggedEvent {
                    seq,
                    at: r.at,
                    event,
                })
            })
            .collect()
    }

    /// The typed tables.
    pub fn tables(&self) -> &Tables {
        &self.inner.tables
    }

    /// The durability barrier.
    pub fn barrier(&self) -> &Barrier {
        &self.inner.barrier
    }

    /// Where sled keeps its files.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Applies `batch` atomically: after a crash either all of it or none of it is there.
    ///
    /// One operation is a plain insert or remove (atomic on its own); several go through
    /// the journal (see `journal.rs`): sled's own batches and transactions serialise every
    /// writer behind a global lock and an I/O-buffer roll.
    pub fn write(&self, mut batch: WriteBatch) -> Result<(), StorageError> {
        self.inner.barrier.writable()?;
        if batch.ops.is_empty() {
            return Ok(());
        }
        let counter = &self.inner.ops;
        if batch.ops.len() == 1 {
            let (tree, key, value) = batch.ops.pop().expect("one op");
            let put = value.as_ref().map(Vec::len);
            match value {
                Some(v) => tree.insert(key, v)?,
                None => tree.remove(key)?,
            };
            counter.count(&tree, put);
            return Ok(());
        }
        let entry = journal::encode(&batch.ops);
        if entry.len() > MAX_JOURNAL_BYTES {
            return Err(StorageError::TooLarge(entry.len()));
        }
        let seq = self
            .inner
            .journal_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = seq.to_be_bytes();
        let entry_len = entry.len();
        self.inner.journal.insert(key, entry)?;
        counter.count(&self.inner.journal, Some(entry_len));
        let applied = batch
            .ops
            .iter()
            .try_for_each(|(tree, key, value)| {
                journal::apply(tree, key, value.as_deref())?;
                counter.count(tree, value.as_ref().map(Vec::len));
                Ok(())
            })
            .and_then(|()| Ok(self.inner.journal.remove(key).map(|_| ())?));
        counter.count(&self.inner.journal, None);
        if let Err(e) = applied {
            // Half applied, with its journal entry in place: only a restart (which replays
            // it) brings the store back to a state we can vouch for.
            self.inner.barrier.fail(match &e {
                StorageError::DiskFull { .. } => e.clone(),
                _ => StorageError::Durability {
                    step: "a multi-key write (failed half-way)",
                    source: Arc::new(e.clone()),
                },
            });
            return Err(e);
        }
        Ok(())
    }

    /// Starts counting the store's operations by table from zero (`true`), or stops
    /// (`false`): for measurements ([`Store::op_counts`]).
    pub fn count_ops(&self, on: bool) {
        self.inner
            .ops
            .by_tree
            .lock()
            .expect("op counter lock")
            .clear();
        self.inner
            .ops
            .on
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The operations counted since [`Store::count_ops`] switched counting on, by table
    /// (`journal` for the commit points of multi-key writes).
    pub fn op_counts(&self) -> Vec<(String, OpCount)> {
        self.inner
            .ops
            .by_tree
            .lock()
            .expect("op counter lock")
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// A new sequence number, larger than every one handed out before (also across
    /// restarts; numbers may be skipped after a crash).
    pub fn next_seq(&self) -> Result<u64, StorageError> {
        Ok(self.inner.db.generate_id()?)
    }

    /// Adds "re-index `sku`" to `batch`.
    pub fn enqueue_reindex(&self, batch: &mut WriteBatch, sku: &str) -> Result<(), StorageError> {
        let seq = self.next_seq()?;
        batch.put(
            &self.inner.tables.index_queue,
            &seq,
            &IndexEntry {
                sku: sku.to_owned(),
            },
        )
    }

    /// Flushes and fsyncs now, whatever the durability mode (shutdown, tests).
    pub fn sync_now(&self) -> Result<(), StorageError> {
        barrier::Sync::sync(&*self.inner.sync)
    }

    /// Makes everything durable and stops the flusher thread.
    pub fn close(&self) -> Result<(), StorageError> {
        self.inner.barrier.shutdown();
        if let Some(t) = self.inner.flusher.lock().expect("flusher lock").take() {
            let _ = t.join();
        }
        self.sync_now()
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }
}

impl Record for crate::domain::product::Product {
    const VERSION: u8 = 2;
    const NAME: &'static str = "product";

    /// Version 1 had no weight and no tax class.
    fn upgrade(version: u8, body: &[u8]) -> Option<Result<Self, StorageError>> {
        use crate::domain::product::{AttrValue, Product, STANDARD_TAX_CLASS};
        use crate::domain::{Millis, Sku};
        #[derive(serde::Deserialize)]
        struct V1 {
            sku: Sku,
            name: String,
            description: String,
            category: String,
            price: u64,
            currency: String,
            attributes: std::collections::BTreeMap<String, AttrValue>,
            images: Vec<String>,
            created_at: Millis,
            updated_at: Millis,
        }
        (version == 1).then(|| {
            codec::decode_body::<V1>(Self::NAME, body).map(|v| Product {
                sku: v.sku,
                name: v.name,
                description: v.description,
                category: v.category,
                price: v.price,
                currency: v.currency,
                attributes: v.attributes,
                images: v.images,
                weight_grams: None,
                tax_class: STANDARD_TAX_CLASS.to_owned(),
                created_at: v.created_at,
                updated_at: v.updated_at,
            })
        })
    }
}

/// An address as versions before regions stored it (orders v1, carts v3, customers v1).
#[derive(serde::Deserialize)]
struct AddressV1 {
    name: String,
    line1: String,
    line2: Option<String>,
    city: String,
    postal_code: String,
    country: String,
}

impl From<AddressV1> for crate::domain::order::Address {
    fn from(a: AddressV1) -> Self {
        crate::domain::order::Address {
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
            region: None,
        }
    }
}

impl Record for crate::domain::cart::Cart {
    const VERSION: u8 = 4;
    const NAME: &'static str = "cart";

    /// Version 2 did not count failed checkouts; version 3 had no promotion code,
    /// address or shipping method.
    fn upgrade(version: u8, body: &[u8]) -> Option<Result<Self, StorageError>> {
        use crate::domain::Millis;
        use crate::domain::cart::{Cart, CartStatus, Line};
        #[derive(serde::Deserialize)]
        struct V3 {
            id: String,
            lines: Vec<Line>,
            email: Option<String>,
            status: CartStatus,
            checkout: Option<String>,
            reminded_at: Option<Millis>,
            created_at: Millis,
            updated_at: Millis,
            expires_at: Millis,
            failed_checkouts: Vec<Millis>,
            failure_mailed: Option<(String, Millis)>,
        }
        if version == 3 {
            return Some(codec::decode_body::<V3>(Self::NAME, body).map(|v| Cart {
                id: v.id,
                lines: v.lines,
                email: v.email,
                status: v.status,
                checkout: v.checkout,
                reminded_at: v.reminded_at,
                created_at: v.created_at,
                updated_at: v.updated_at,
                expires_at: v.expires_at,
                failed_checkouts: v.failed_checkouts,
                failure_mailed: v.failure_mailed,
                promotion_code: None,
                shipping_address: None,
                shipping_method: None,
            }));
        }
        #[derive(serde::Deserialize)]
        struct V2 {
            id: String,
            lines: Vec<Line>,
            email: Option<String>,
            status: CartStatus,
            checkout: Option<String>,
            reminded_at: Option<Millis>,
            created_at: Millis,
            updated_at: Millis,
            expires_at: Millis,
        }
        (version == 2).then(|| {
            codec::decode_body::<V2>(Self::NAME, body).map(|v| Cart {
                id: v.id,
                lines: v.lines,
                email: v.email,
                status: v.status,
                checkout: v.checkout,
                reminded_at: v.reminded_at,
                created_at: v.created_at,
                updated_at: v.updated_at,
                expires_at: v.expires_at,
                failed_checkouts: Vec::new(),
                failure_mailed: None,
                promotion_code: None,
                shipping_address: None,
                shipping_method: None,
            })
        })
    }
}

/// The stock record as version 3 wrote it (every id as text): read by the upgrade, written
/// by its test.
mod stock_v3 {
    #[derive(serde::Serialize, serde::Deserialize)]
    pub(super) struct TextReservation {
        pub id: String,
        pub quantity: u32,
        pub expires_at: i64,
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    pub(super) struct V3 {
        pub on_hand: u64,
        pub reservations: Vec<TextReservation>,
        pub committed: Vec<String>,
        pub returned: Vec<String>,
        pub lapsed: Vec<String>,
    }
}

impl Record for crate::domain::inventory::Stock {
    const VERSION: u8 = 4;
    const NAME: &'static str = "stock";

    /// Version 3 kept every id as text (version 4 keeps order ids as 16 bytes); version 2
    /// also had no memory of lapsed reservations.
    fn upgrade(version: u8, body: &[u8]) -> Option<Result<Self, StorageError>> {
        use crate::domain::inventory::{Reservation, Stock};
        use stock_v3::{TextReservation, V3};
        #[derive(serde::Deserialize)]
        struct V2 {
            on_hand: u64,
            reservations: Vec<TextReservation>,
            committed: Vec<String>,
            returned: Vec<String>,
        }
        let v3 = match version {
            3 => codec::decode_body::<V3>(Self::NAME, body),
            2 => codec::decode_body::<V2>(Self::NAME, body).map(|v| V3 {
                on_hand: v.on_hand,
                reservations: v.reservations,
                committed: v.committed,
                returned: v.returned,
                lapsed: Vec::new(),
            }),
            _ => return None,
        };
        Some(v3.map(|v| {
            Stock {
                on_hand: v.on_hand,
                reservations: v
                    .reservations
                    .into_iter()
                    .map(|r| Reservation {
                        id: r.id,
                        quantity: r.quantity,
                        expires_at: r.expires_at,
                    })
                    .collect(),
                committed: v.committed,
                returned: v.returned,
                lapsed: v.lapsed,
            }
        }))
    }
}

impl Record for crate::domain::order::Order {
    const VERSION: u8 = 2;
    const NAME: &'static str = "order";

    /// Version 1 had no pricing beyond its lines, no partial refunds and no region in
    /// its address.
    fn upgrade(version: u8, body: &[u8]) -> Option<Result<Self, StorageError>> {
        use crate::domain::Millis;
        use crate::domain::order::{
            Order, OrderLine, OrderPricing, OrderStatus, Outcome, Owed, PaymentRef, Shipment, Step,
            Transition,
        };
        use crate::domain::pricing::Breakdown;
        #[derive(serde::Deserialize)]
        struct V1 {
            id: String,
            cart_id: String,
            email: String,
            lines: Vec<OrderLine>,
            subtotal: u64,
            total: u64,
            currency: String,
            shipping_address: AddressV1,
            status: OrderStatus,
            step: Step,
            payment_token: Option<String>,
            payment: Option<PaymentRef>,
            owed: Vec<Owed>,
            shipment: Option<Shipment>,
            history: Vec<Transition>,
            outcome: Option<Outcome>,
            created_at: Millis,
            updated_at: Millis,
        }
        (version == 1).then(|| {
            codec::decode_body::<V1>(Self::NAME, body).map(|v| {
                let totals: Vec<u64> = v.lines.iter().map(|l| l.line_total).collect();
                Order {
                    id: v.id,
                    cart_id: v.cart_id,
                    email: v.email,
                    lines: v.lines,
                    subtotal: v.subtotal,
                    total: v.total,
                    currency: v.currency,
                    pricing: OrderPricing {
                        breakdown: Breakdown::plain(&totals),
                        ..OrderPricing::default()
                    },
                    refunds: Vec::new(),
                    shipping_address: v.shipping_address.into(),
                    status: v.status,
                    step: v.step,
                    payment_token: v.payment_token,
                    payment: v.payment,
                    owed: v.owed,
                    shipment: v.shipment,
                    history: v.history,
                    outcome: v.outcome,
                    created_at: v.created_at,
                    updated_at: v.updated_at,
                }
            })
        })
    }
}

impl Record for crate::domain::order::IdempotencyRecord {
    const VERSION: u8 = 1;
    const NAME: &'static str = "idempotency";
}

impl Record for crate::domain::payment::Payment {
    const VERSION: u8 = 1;
    const NAME: &'static str = "payment";
}

impl Record for crate::domain::notification::Template {
    const VERSION: u8 = 1;
    const NAME: &'static str = "template";
}

impl Record for crate::domain::notification::Notification {
    const VERSION: u8 = 1;
    const NAME: &'static str = "notification";
}

impl Record for crate::domain::customer::Customer {
    const VERSION: u8 = 2;
    const NAME: &'static str = "customer";

    /// Version 1's addresses had no region.
    fn upgrade(version: u8, body: &[u8]) -> Option<Result<Self, StorageError>> {
        use crate::domain::Millis;
        use crate::domain::customer::{Customer, PendingToken, SavedAddress, SessionRef};
        #[derive(serde::Deserialize)]
        struct SavedV1 {
            id: String,
            address: AddressV1,
        }
        #[derive(serde::Deserialize)]
        struct V1 {
            id: String,
            email: String,
            name: Option<String>,
            password_hash: String,
            email_verified: bool,
            addresses: Vec<SavedV1>,
            default_shipping: Option<String>,
            default_billing: Option<String>,
            sessions: Vec<SessionRef>,
            cart_id: Option<String>,
            pending_reset: Option<PendingToken>,
            pending_verification: Option<PendingToken>,
            created_at: Millis,
            updated_at: Millis,
        }
        (version == 1).then(|| {
            codec::decode_body::<V1>(Self::NAME, body).map(|v| Customer {
                id: v.id,
                email: v.email,
                name: v.name,
                password_hash: v.password_hash,
                email_verified: v.email_verified,
                addresses: v
                    .addresses
                    .into_iter()
                    .map(|a| SavedAddress {
                        id: a.id,
                        address: a.address.into(),
                    })
                    .collect(),
                default_shipping: v.default_shipping,
                default_billing: v.default_billing,
                sessions: v.sessions,
                cart_id: v.cart_id,
                pending_reset: v.pending_reset,
                pending_verification: v.pending_verification,
                created_at: v.created_at,
                updated_at: v.updated_at,
            })
        })
    }
}

impl Record for crate::domain::customer::CustomerRef {
    const VERSION: u8 = 1;
    const NAME: &'static str = "customer_ref";
}

impl Record for crate::domain::promotion::Promotion {
    const VERSION: u8 = 2;
    const NAME: &'static str = "promotion";

    /// Version 1 had no automatic promotions.
    fn upgrade(version: u8, body: &[u8]) -> Option<Result<Self, StorageError>> {
        use crate::domain::Millis;
        use crate::domain::pricing::{Reduction, Target};
        use crate::domain::promotion::{Hold, Promotion, PromotionDraft};
        #[derive(serde::Deserialize)]
        struct DraftV1 {
            reduction: Reduction,
            target: Target,
            min_subtotal: u64,
            starts_at: Option<Millis>,
            ends_at: Option<Millis>,
            usage_limit: Option<u32>,
            per_customer_limit: Option<u32>,
            active: bool,
        }
        #[derive(serde::Deserialize)]
        struct V1 {
            code: String,
            draft: DraftV1,
            used: u32,
            holds: Vec<Hold>,
            // Version 1 kept its last committed orders here; no build ever committed a
            // checkout's use with it (codes were not yet applied to carts), so the list
            // is dropped rather than turned into marks.
            _committed: Vec<String>,
            created_at: Millis,
            updated_at: Millis,
        }
        (version == 1).then(|| {
            codec::decode_body::<V1>(Self::NAME, body).map(|v| Promotion {
                code: v.code,
                draft: PromotionDraft {
                    reduction: v.draft.reduction,
                    target: v.draft.target,
                    min_subtotal: v.draft.min_subtotal,
                    starts_at: v.draft.starts_at,
                    ends_at: v.draft.ends_at,
                    usage_limit: v.draft.usage_limit,
                    per_customer_limit: v.draft.per_customer_limit,
                    active: v.draft.active,
                    automatic: false,
                },
                used: v.used,
                holds: v.holds,
                created_at: v.created_at,
                updated_at: v.updated_at,
            })
        })
    }
}

impl Record for crate::domain::pricing::PricingSettings {
    const VERSION: u8 = 1;
    const NAME: &'static str = "pricing_settings";
}

impl Record for crate::domain::promotion::CustomerUses {
    const VERSION: u8 = 1;
    const NAME: &'static str = "promotion_uses";
}

impl Record for crate::domain::promotion::CommittedUse {
    const VERSION: u8 = 1;
    const NAME: &'static str = "committed_use";
}

impl Record for crate::domain::customer::Session {
    const VERSION: u8 = 1;
    const NAME: &'static str = "session";
}

impl Record for crate::domain::webhook::Endpoint {
    const VERSION: u8 = 1;
    const NAME: &'static str = "webhook_endpoint";
}

impl Record for crate::domain::webhook::Attempt {
    const VERSION: u8 = 1;
    const NAME: &'static str = "webhook_attempt";
}

impl Record for crate::domain::payment::Charge {
    const VERSION: u8 = 1;
    const NAME: &'static str = "charge";
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every enum shape the records use decodes with the codec (bincode reads no
    /// internally tagged enum; this failed when one slipped in).
    #[test]
    fn promotions_and_customers_round_trip_through_the_codec() {
        use crate::domain::pricing::{Reduction, Target};
        use crate::domain::promotion::{Promotion, PromotionDraft};
        for (reduction, target) in [
            (Reduction::Percent(1_000), Target::Order),
            (Reduction::Fixed(500), Target::Shipping),
            (
                Reduction::Fixed(1),
                Target::Items {
                    skus: vec![crate::domain::Sku::parse("A-1").unwrap()],
                    categories: vec!["Suits".into()],
                },
            ),
        ] {
            let draft = PromotionDraft {
                reduction,
                target,
                min_subtotal: 5,
                starts_at: Some(1),
                ends_at: None,
                usage_limit: Some(3),
                per_customer_limit: None,
                active: true,
                automatic: false,
            };
            let p = Promotion::new("CODE".into(), draft, 7)
                .reserve("o1", "email:a", 0, false, 100, 7)
                .unwrap();
            assert_eq!(
                codec::decode::<Promotion>(&codec::encode(&p).unwrap()).unwrap(),
                p
            );
        }
        let c = crate::domain::customer::Customer::new(
            "c".into(),
            "a@b.co".into(),
            None,
            "h".into(),
            1,
        )
        .with_session("d".into(), 5, 1)
        .0;
        let c = c.with_token_requested(
            crate::domain::customer::TokenPurpose::Reset,
            "x".into(),
            9,
            1,
        );
        assert_eq!(
            codec::decode::<crate::domain::customer::Customer>(&codec::encode(&c).unwrap())
                .unwrap(),
            c
        );
    }

    #[test]
    fn an_open_store_holds_the_lock_that_a_second_open_waits_for() {
        let dir = tempfile::tempdir().unwrap();
        let sled_dir = dir.path().join("store");
        assert!(!db_file_locked(&sled_dir), "no store yet");
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert!(db_file_locked(&sled_dir));
        store.close().unwrap();
        drop(store);
        // Reopening in the same process waits out sled's late release of the file.
        let again = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert!(db_file_locked(&sled_dir));
        again.close().unwrap();
    }

    #[test]
    fn a_multi_key_write_over_the_journal_limit_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let meta = &store.tables().meta;
        let big = |i: usize| MetaValue::Text(format!("{i}").repeat(40 * 1024));
        let mut batch = WriteBatch::default();
        batch.put(meta, "a", &big(1)).unwrap();
        batch.put(meta, "b", &big(2)).unwrap();
        assert!(batch.encoded_len() > MAX_JOURNAL_BYTES);
        assert!(matches!(store.write(batch), Err(StorageError::TooLarge(_))));
        assert_eq!(meta.get("a").unwrap(), None, "nothing of it applied");
        assert_eq!(meta.get("b").unwrap(), None);
    }

    #[test]
    fn a_group_writer_splits_independent_groups_into_writes_under_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let meta = &store.tables().meta;
        let mut writer = GroupWriter::new(&store);
        for i in 0..40 {
            let mut group = WriteBatch::default();
            group
                .put(
                    meta,
                    &format!("k{i}"),
                    &MetaValue::Text("x".repeat(6 * 1024)),
                )
                .unwrap();
            group
                .put(meta, &format!("n{i}"), &MetaValue::Number(i))
                .unwrap();
            let event = crate::domain::event::DomainEvent::CartAbandoned {
                cart_id: format!("c{i}"),
            };
            writer.add(group, vec![event]).unwrap();
        }
        writer.flush().unwrap();
        // 40 groups of ~6 KiB: several writes, each of them accepted under the limit.
        assert!(
            (4..=10).contains(&writer.writes),
            "{} writes",
            writer.writes
        );
        for i in 0..40u64 {
            assert!(meta.get(&format!("k{i}")).unwrap().is_some());
            assert_eq!(
                meta.get(&format!("n{i}")).unwrap(),
                Some(MetaValue::Number(i))
            );
        }
        assert_eq!(store.events_after(0, 100).unwrap().len(), 40);
        // A group that cannot fit alone is refused, and nothing of it is written.
        let mut huge = WriteBatch::default();
        for k in ["h1", "h2"] {
            huge.put(meta, k, &MetaValue::Text("y".repeat(40 * 1024)))
                .unwrap();
        }
        assert!(matches!(
            writer.add(huge, Vec::new()),
            Err(StorageError::TooLarge(_))
        ));
        writer.flush().unwrap();
        assert_eq!(meta.get("h1").unwrap(), None);
    }

    #[test]
    fn a_stock_at_its_reservation_bound_fits_in_a_record_with_every_field_at_its_widest() {
        use crate::domain::inventory::*;
        let id = |i: usize| format!("{i:0width$}", width = MAX_RESERVATION_ID);
        let stock = Stock {
            on_hand: u64::MAX,
            reservations: (0..MAX_RESERVATIONS)
                .map(|i| Reservation {
                    id: id(i),
                    quantity: u32::MAX,
                    expires_at: i64::MIN,
                })
                .collect(),
            committed: (0..COMMITTED_MEMORY).map(id).collect(),
            returned: (0..COMMITTED_MEMORY).map(id).collect(),
            lapsed: (0..LAPSED_MEMORY).map(id).collect(),
        };
        let bytes = checked_encode(&stock).expect("fits under MAX_RECORD_BYTES");
        assert!(bytes.len() <= MAX_RECORD_BYTES, "{} bytes", bytes.len());
        assert_eq!(codec::decode::<Stock>(&bytes).unwrap(), stock);
    }

    #[test]
    fn a_cart_written_by_version_2_is_read_with_no_failed_checkouts() {
        use crate::domain::cart::{Cart, CartStatus, Line};
        #[derive(serde::Serialize)]
        struct V2 {
            id: String,
            lines: Vec<Line>,
            email: Option<String>,
            status: CartStatus,
            checkout: Option<String>,
            reminded_at: Option<i64>,
            created_at: i64,
            updated_at: i64,
            expires_at: i64,
        }
        let v2 = V2 {
            id: "c1".into(),
            lines: vec![Line {
                sku: crate::domain::Sku::parse("A-1").unwrap(),
                quantity: 3,
            }],
            email: Some("a@b.co".into()),
            status: CartStatus::Open,
            checkout: None,
            reminded_at: Some(5),
            created_at: 1,
            updated_at: 2,
            expires_at: 9,
        };
        let mut bytes = vec![2u8];
        bytes.extend(bincode::serde::encode_to_vec(&v2, bincode::config::standard()).unwrap());
        let cart: Cart = codec::decode(&bytes).unwrap();
        assert_eq!((cart.id.as_str(), cart.lines[0].quantity), ("c1", 3));
        assert_eq!((cart.reminded_at, cart.expires_at), (Some(5), 9));
        assert!(cart.failed_checkouts.is_empty() && cart.failure_mailed.is_none());
    }

    /// `[version] ++ bincode(value)`: a record as an older build wrote it. bincode lays
    /// out structs and tuples alike (their fields in order), so a tuple of the old
    /// fields stands for the old struct.
    fn written_as<T: serde::Serialize>(version: u8, value: &T) -> Vec<u8> {
        let mut bytes = vec![version];
        bytes.extend(bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap());
        bytes
    }

    #[test]
    fn records_written_before_pricing_are_read_with_its_defaults() {
        use crate::domain::order::{Order, OrderLine, OrderStatus, Step, Transition};
        use crate::domain::product::Product;
        use std::collections::BTreeMap;
        let sku = crate::domain::Sku::parse("A-1").unwrap();
        // Product v1: no weight, no tax class.
        let attrs: BTreeMap<String, crate::domain::product::AttrValue> = BTreeMap::new();
        let product = written_as(
            1,
            &(
                &sku,
                "Helmet",
                "d",
                "Suits",
                2500u64,
                "USD",
                attrs,
                Vec::<String>::new(),
                1i64,
                2i64,
            ),
        );
        let p: Product = codec::decode(&product).unwrap();
        assert_eq!(
            (p.price, p.weight_grams, p.tax_class.as_str()),
            (2500, None, "standard")
        );
        // Order v1: no breakdown, no refunds, an address without a region.
        let line = OrderLine {
            sku: sku.clone(),
            name: "Helmet".into(),
            quantity: 2,
            unit_price: 2500,
            line_total: 5000,
        };
        let address = ("Ada", "1 Orbit Way", None::<String>, "Base", "00001", "US");
        let order = written_as(
            1,
            &(
                (
                    "o1",
                    "c1",
                    "a@b.co",
                    vec![line],
                    5000u64,
                    5000u64,
                    "USD",
                    address,
                ),
                (
                    OrderStatus::Paid,
                    Step::Done,
                    None::<String>,
                    None::<crate::domain::order::PaymentRef>,
                    Vec::<crate::domain::order::Owed>::new(),
                    None::<crate::domain::order::Shipment>,
                    vec![Transition {
                        status: OrderStatus::Paid,
                        at: 3,
                    }],
                    None::<crate::domain::order::Outcome>,
                    3i64,
                    4i64,
                ),
            ),
        );
        let o: Order = codec::decode(&order).unwrap();
        assert_eq!(
            (o.total, o.shipping_address.region.as_deref()),
            (5000, None)
        );
        assert_eq!(o.pricing.breakdown.lines_paid, [5000]);
        assert_eq!(o.pricing.breakdown.total, 5000);
        assert!(o.pricing.promotion.is_none() && o.refunds.is_empty());
        // Cart v3: no code, address or method.
        let cart = written_as(
            3,
            &(
                "c1",
                Vec::<crate::domain::cart::Line>::new(),
                None::<String>,
                crate::domain::cart::CartStatus::Open,
                None::<String>,
                None::<i64>,
                1i64,
                2i64,
                9i64,
                vec![5i64],
                None::<(String, i64)>,
            ),
        );
        let c: crate::domain::cart::Cart = codec::decode(&cart).unwrap();
        assert_eq!((c.expires_at, c.failed_checkouts.as_slice()), (9, &[5][..]));
        assert!(c.promotion_code.is_none() && c.shipping_address.is_none());
    }

    #[test]
    fn a_stock_keeps_order_ids_as_16_bytes_and_reads_version_3_text_ids() {
        use crate::domain::inventory::{Reservation, Stock};
        let order = "0123456789abcdef0123456789abcdef".to_owned();
        let stock = Stock {
            on_hand: 9,
            reservations: vec![Reservation {
                id: order.clone(),
                quantity: 1,
                expires_at: 5,
            }],
            // Upper-case hex and other shapes stay text: every id reads back as it was.
            committed: vec![
                order.clone(),
                "0123456789ABCDEF0123456789ABCDEF".into(),
                "r-1".into(),
            ],
            returned: vec!["ffffffffffffffffffffffffffffffff".into()],
            lapsed: vec!["00000000000000000000000000000000".into()],
        };
        let bytes = codec::encode(&stock).unwrap();
        assert_eq!(codec::decode::<Stock>(&bytes).unwrap(), stock);
        let texts = Stock {
            committed: vec![order.clone(); 64],
            ..Stock::default()
        };
        assert!(codec::encode(&texts).unwrap().len() < 64 * 18 + 16);
        // Version 3: the same fields, every id as text.
        use super::stock_v3::{TextReservation, V3};
        let v3 = V3 {
            on_hand: 9,
            reservations: vec![TextReservation {
                id: order.clone(),
                quantity: 1,
                expires_at: 5,
            }],
            committed: stock.committed.clone(),
            returned: stock.returned.clone(),
            lapsed: stock.lapsed.clone(),
        };
        let mut old = vec![3u8];
        old.extend(bincode::serde::encode_to_vec(&v3, bincode::config::standard()).unwrap());
        assert_eq!(codec::decode::<Stock>(&old).unwrap(), stock);
    }

    #[test]
    fn a_stock_written_by_version_2_is_read_with_an_empty_lapse_memory() {
        use crate::domain::inventory::Stock;
        // Version 2 kept reservation ids as text.
        #[derive(serde::Serialize)]
        struct Reservation {
            id: String,
            quantity: u32,
            expires_at: i64,
        }
        #[derive(serde::Serialize)]
        struct V2 {
            on_hand: u64,
            reservations: Vec<Reservation>,
            committed: Vec<String>,
            returned: Vec<String>,
        }
        let v2 = V2 {
            on_hand: 7,
            reservations: vec![Reservation {
                id: "r".into(),
                quantity: 2,
                expires_at: 9,
            }],
            committed: vec!["c".into()],
            returned: vec![],
        };
        let mut bytes = vec![2u8];
        bytes.extend(bincode::serde::encode_to_vec(&v2, bincode::config::standard()).unwrap());
        let stock: Stock = codec::decode(&bytes).unwrap();
        assert_eq!((stock.on_hand, stock.reserved()), (7, 2));
        assert_eq!(stock.committed, ["c"]);
        assert!(stock.lapsed.is_empty());
        assert!(
            codec::decode::<Stock>(&[9, 0]).is_err(),
            "unknown versions stay errors"
        );
    }

    #[test]
    fn after_a_failed_flush_no_write_path_applies_anything() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let t = store.tables();
        t.meta.put("k", &MetaValue::Number(1)).unwrap();
        store.barrier().fail(StorageError::from_sync(
            "fsync",
            std::io::Error::other("injected"),
        ));
        let refused =
            |r: Result<(), StorageError>| matches!(r, Err(StorageError::Durability { .. }));
        assert!(refused(t.meta.put("k", &MetaValue::Number(2))));
        assert!(refused(t.meta.remove("k")));
        let mut batch = WriteBatch::default();
        batch.put(&t.meta, "k", &MetaValue::Number(3)).unwrap();
        batch.put(&t.meta, "other", &MetaValue::Number(3)).unwrap();
        assert!(refused(store.write(batch)));
        assert!(refused(t.index_queue.remove_through(10)));
        // Reads go on, and see only what was written before.
        assert_eq!(t.meta.get("k").unwrap(), Some(MetaValue::Number(1)));
        assert_eq!(t.meta.get("other").unwrap(), None);
    }

    #[test]
    fn the_decoded_cache_follows_every_write_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let t = store.tables();
        let cache = DecodedCache::new(4);
        let v = |n: u64| MetaValue::Number(n);
        t.meta.put("k", &v(1)).unwrap();
        assert_eq!(*cache.get(&t.meta, "k").unwrap().unwrap(), v(1));
        let first = cache.get(&t.meta, "k").unwrap().unwrap();
        // A hit hands out the same decoded value, not a new decode.
        assert!(Arc::ptr_eq(
            &first,
            &cache.get(&t.meta, "k").unwrap().unwrap()
        ));
        // Changed under the cache (no invalidation anywhere): the new value is read.
        t.meta.put("k", &v(2)).unwrap();
        assert_eq!(*cache.get(&t.meta, "k").unwrap().unwrap(), v(2));
        t.meta.remove("k").unwrap();
        assert!(cache.get(&t.meta, "k").unwrap().is_none());
    }

    #[test]
    fn a_batch_over_two_tables_lands_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let t = store.tables();
        let mut b = WriteBatch::default();
        b.put(&t.meta, "a", &MetaValue::Number(1)).unwrap();
        b.put(&t.meta, "b", &MetaValue::Text("x".into())).unwrap();
        let stock = crate::domain::inventory::Stock::default();
        b.put(&t.stock, "SKU-1", &stock).unwrap();
        store.write(b).unwrap();
        assert_eq!(t.meta.get("a").unwrap(), Some(MetaValue::Number(1)));
        assert_eq!(t.stock.get("SKU-1").unwrap(), Some(stock));
        store.close().unwrap();
    }

    #[test]
    fn oversized_records_are_refused_before_they_reach_sled() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let big = MetaValue::Text("x".repeat(MAX_RECORD_BYTES + 1));
        assert!(matches!(
            store.tables().meta.put("big", &big),
            Err(StorageError::TooLarge(_))
        ));
        assert_eq!(store.tables().meta.get("big").unwrap(), None);
    }

    #[tokio::test]
    async fn the_barrier_releases_a_ticket_after_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        store.tables().meta.put("k", &MetaValue::Number(7)).unwrap();
        let ticket = store.barrier().ticket();
        store.barrier().wait(ticket).await.unwrap();
        assert!(store.barrier().stats().flushes >= 1);
        // A ticket that is already durable is released without another flush.
        let before = store.barrier().stats().flushes;
        store.barrier().wait(ticket).await.unwrap();
        assert_eq!(store.barrier().stats().flushes, before);
        store.close().unwrap();
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn a_store_in_use_is_refused_with_a_clear_error_and_reopens_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            durability: Durability::Relaxed,
            ..StoreOptions::default()
        };
        let first = Store::open(dir.path(), &opts).unwrap();
        let started = std::time::Instant::now();
        let second = Store::open(dir.path(), &opts);
        let Err(e @ StorageError::Locked(_)) = second else {
            panic!("a locked store must not open twice")
        };
        assert!(e.to_string().contains("another emporium process"), "{e}");
        assert!(
            started.elapsed() >= LOCK_WAIT,
            "it waited for a transient lock first"
        );
        // Released on another thread while the next open is waiting: the open succeeds.
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            first.close().unwrap();
            drop(first);
        });
        Store::open(dir.path(), &opts).unwrap();
        release.join().unwrap();
    }
}

/// The layering, checked on the source (in a file of its own, which it does not read).
#[cfg(test)]
mod layering;

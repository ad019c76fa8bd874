//! The indexer: the one thread that owns the index's `IndexWriter`.
//!
//! Each round it takes the pending entries of the store's `index_queue`, waits until the
//! store writes it read are durable (so the index never shows a product a crash could take
//! back), re-reads each SKU's product and stock from the store, replaces its document (or
//! deletes it), and commits with the last applied sequence number as the commit payload;
//! then it reloads the reader and drops the applied queue entries. Re-applying an entry is
//! harmless, so a crash anywhere in a round is repaired by the next start replaying the
//! queue. Rounds run when woken (a product or stock write) and at least every 500 ms.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use tantivy::{IndexWriter, TantivyDocument, Term};

use super::schema::{self, SCHEMA_VERSION};
use super::{SearchError, SearchIndex};
use crate::domain::product::Product;
use crate::storage::Store;

/// Queue entries applied per commit at most.
const BATCH: usize = 20_000;
/// Heap given to tantivy's writer.
const WRITER_HEAP_BYTES: usize = 64 * 1024 * 1024;

enum Msg {
    Wake,
    /// Apply everything queued so far, then answer.
    Flush(tokio::sync::oneshot::Sender<Result<(), SearchError>>),
    Shutdown,
}

/// Handle to the indexer thread.
pub struct Indexer {
    tx: Sender<Msg>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    seq: u64,
    schema: u32,
}

fn payload_of(index: &tantivy::Index) -> Option<Payload> {
    let meta = index.load_metas().ok()?;
    serde_json::from_str(meta.payload.as_deref()?).ok()
}

struct Worker {
    store: Store,
    search: Arc<SearchIndex>,
    writer: IndexWriter<TantivyDocument>,
}

impl Worker {
    /// The document of `product`, with its in-stock flag from the store.
    fn document_of(&self, product: &Product) -> Result<TantivyDocument, SearchError> {
        let stock = self.store.tables().stock.get(product.sku.as_str())?;
        let in_stock = stock.is_some_and(|s| s.available() > 0);
        Ok(schema::document(self.search.fields(), product, in_stock))
    }

    /// The document of `sku` as the store has it now; `None` if the product is gone.
    fn document(&self, sku: &str) -> Result<Option<TantivyDocument>, SearchError> {
        let product = self.store.tables().products.get(sku)?;
        product.map(|p| self.document_of(&p)).transpose()
    }

    fn commit(&mut self, seq: u64) -> Result<(), SearchError> {
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(
            &serde_json::to_string(&Payload {
                seq,
                schema: SCHEMA_VERSION,
            })
            .expect("payload"),
        );
        prepared.commit()?;
        self.search.reload()
    }

    /// Replaces the whole index with the store's products.
    fn rebuild(&mut self) -> Result<(), SearchError> {
        let queue = self.store.tables().index_queue.clone();
        let upto = queue.last_key()?.unwrap_or(0);
        self.writer.delete_all_documents()?;
        let mut n = 0;
        for product in self.store.tables().products.values() {
            self.writer.add_document(self.document_of(&product?)?)?;
            n += 1;
        }
        self.commit(upto)?;
        let _ = queue.remove_through(upto);
        tracing::info!(products = n, "search index rebuilt from the store");
        Ok(())
    }

    /// One round: applies up to [`BATCH`] queued entries. Returns how many.
    fn round(&mut self) -> Result<usize, SearchError> {
        let queue = self.store.tables().index_queue.clone();
        let entries = queue.scan_from(0, BATCH)?;
        let Some(&(last_seq, _)) = entries.last() else {
            return Ok(0);
        };
        // Everything read below was written before this ticket: wait until it is durable.
        let ticket = self.store.barrier().current();
        self.store.barrier().wait_blocking(ticket)?;
        let sku_field = self.search.fields().sku;
        let mut seen = std::collections::HashSet::new();
        for (_, entry) in entries.iter().rev() {
            if !seen.insert(entry.sku.as_str()) {
                continue;
            }
            self.writer
                .delete_term(Term::from_field_text(sku_field, &entry.sku));
            if let Some(doc) = self.document(&entry.sku)? {
                self.writer.add_document(doc)?;
            }
        }
        self.commit(last_seq)?;
        queue.remove_through(last_seq)?;
        Ok(entries.len())
    }

    fn drain(&mut self) -> Result<(), SearchError> {
        while self.round()? == BATCH {}
        Ok(())
    }
}

impl Indexer {
    /// Opens the index in `dir` and starts the indexer. Before returning it brings the
    /// index in line with the store: a rebuild if the index was missing, corrupt, of
    /// another schema or never committed, otherwise a replay of the queue.
    pub fn start(
        dir: &Path,
        store: Store,
        force_rebuild: bool,
    ) -> Result<(Arc<SearchIndex>, Indexer), SearchError> {
        if force_rebuild && dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(SearchError::io(format!("removing {}", dir.display())))?;
        }
        let (search, fresh) = SearchIndex::open(dir)?;
        let search = Arc::new(search);
        let writer = search
            .index()
            .writer_with_num_threads(1, WRITER_HEAP_BYTES)?;
        writer.set_merge_policy(Box::new(merge_policy()));
        let payload = payload_of(search.index());
        let mut worker = Worker {
            store,
            search: search.clone(),
            writer,
        };
        let stale = payload.as_ref().is_none_or(|p| p.schema != SCHEMA_VERSION);
        if fresh || stale {
            worker.rebuild()?;
        } else {
            let seq = payload.map_or(0, |p| p.seq);
            // Entries up to the committed sequence are in the index already.
            let _ = worker.store.tables().index_queue.remove_through(seq);
            worker.drain()?;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("emporium-indexer".into())
            .spawn(move || run(worker, rx))
            .map_err(SearchError::io("starting the indexer"))?;
        Ok((
            search,
            Indexer {
                tx,
                thread: std::sync::Mutex::new(Some(thread)),
            },
        ))
    }

    /// A function that wakes the indexer (given to the writers of products and stock).
    pub fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let tx = self.tx.clone();
        Arc::new(move || {
            let _ = tx.send(Msg::Wake);
        })
    }

    /// Waits until everything queued before this call is searchable.
    pub async fn flush(&self) -> Result<(), SearchError> {
        let stopped = || SearchError::Stopped;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Msg::Flush(tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Applies what is queued and stops the thread.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(t) = self.thread.lock().expect("indexer lock").take() {
            let _ = t.join();
        }
    }
}

/// Merges eagerly. Every segment costs each search a fixed price (a scorer per query term,
/// a facet dictionary walk, a union buffer), and a catalog is small enough to merge in
/// the background in a fraction of a second: with tantivy's default (merge 8 alike
/// segments) a 19k-product import left 8 segments and searches paid for each.
fn merge_policy() -> tantivy::indexer::LogMergePolicy {
    let mut policy = tantivy::indexer::LogMergePolicy::default();
    // Two segments of similar size are merged; anything under 1,000 documents counts
    // as one size, so the small segments of single-product commits fold together at once.
    policy.set_min_num_segments(2);
    policy.set_min_layer_size(1_000);
    // Updated products leave deleted documents behind in old segments; rewrite a segment
    // once a fifth of it is dead.
    policy.set_del_docs_ratio_before_merge(0.2);
    policy
}

fn run(mut worker: Worker, rx: Receiver<Msg>) {
    loop {
        let first = rx.recv_timeout(Duration::from_millis(500));
        // Every sender gone (the engine was dropped without shutdown): a last round, then stop.
        let mut stop = matches!(first, Err(RecvTimeoutError::Disconnected));
        // Let a burst of writes gather into one commit, then take every message waiting.
        std::thread::sleep(Duration::from_millis(20));
        let mut flushes = Vec::new();
        for msg in first.into_iter().chain(rx.try_iter()) {
            match msg {
                Msg::Flush(tx) => flushes.push(tx),
                Msg::Shutdown => stop = true,
                Msg::Wake => {}
            }
        }
        let result = worker.drain();
        if let Err(e) = &result {
            tracing::error!(error = %e, "indexing round failed; will retry");
        }
        for tx in flushes {
            let _ = tx.send(result.clone());
        }
        if stop {
            // Let running merges finish, so the next start opens a merged index.
            if let Err(e) = worker.writer.wait_merging_threads() {
                tracing::warn!(error = %e, "waiting for index merges at shutdown");
            }
            return;
        }
    }
}

/// Where the index lives in a data directory.
pub fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

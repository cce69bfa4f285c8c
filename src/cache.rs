//! The review cache: a persistent store (redb, in the user's cache folder) of finished
//! reviews, keyed by everything that shapes one: models and endpoints, prompt and principle
//! versions, loop settings, the code, its context and the facts. Reviewing unchanged code again
//! makes no model call. The store is bounded; a corrupt or unreadable store is ignored with a
//! warning and never stops a review.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use serde::Serialize;
use serde::de::DeserializeOwned;

const REVIEWS: TableDefinition<'_, &[u8; 32], (u64, &[u8])> = TableDefinition::new("reviews_v1");
/// Entries kept at most; the oldest tenth goes when the store is full.
const MAX_ENTRIES: u64 = 2_000;

/// An open cache.
pub struct Cache {
    db: Database,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cache")
    }
}

/// The default location: `$REFINE_LS_CACHE_DIR`, else `<cache dir>/refine-ls`.
pub fn default_path() -> Option<PathBuf> {
    std::env::var_os("REFINE_LS_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("refine-ls")))
        .map(|d| d.join("reviews.redb"))
}

impl Cache {
    /// Opens (or creates) the store; a failure is logged and means no cache.
    pub fn open(path: &Path) -> Option<Self> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
            crate::secrets::private(dir, true);
        }
        // Reviews hold the user's code: readable by the user alone.
        crate::secrets::create_private(path);
        match Database::create(path) {
            Ok(db) => Some(Self { db }),
            Err(e) => {
                tracing::warn!("review cache {} ignored: {e}", path.display());
                None
            }
        }
    }

    /// The record stored under this key (the engine stores reviews with offsets relative to
    /// the reviewed region). A record that does not read as `T` is no record.
    pub fn get<T: DeserializeOwned>(&self, key: &[u8; 32]) -> Option<T> {
        let read = || -> Result<Option<Vec<u8>>, Box<redb::Error>> {
            let tx = self.db.begin_read().map_err(|e| Box::new(e.into()))?;
            let table = match tx.open_table(REVIEWS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(Box::new(e.into())),
            };
            Ok(table
                .get(key)
                .map_err(|e| Box::new(e.into()))?
                .map(|v| v.value().1.to_vec()))
        };
        match read() {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .inspect_err(|e| tracing::warn!("a cached review is unreadable ({e}); ignored"))
                .ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("review cache read failed ({e}); ignored");
                None
            }
        }
    }

    /// Stores a record under a key.
    pub fn put<T: Serialize>(&self, key: &[u8; 32], record: &T) {
        let Ok(bytes) = serde_json::to_vec(record) else {
            return;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let write = || -> Result<(), Box<redb::Error>> {
            let boxed = |e: redb::Error| Box::new(e);
            let tx = self.db.begin_write().map_err(|e| boxed(e.into()))?;
            {
                let mut table = tx.open_table(REVIEWS).map_err(|e| boxed(e.into()))?;
                if table.len().map_err(|e| boxed(e.into()))? >= MAX_ENTRIES {
                    let mut by_age: Vec<(u64, [u8; 32])> = table
                        .iter()
                        .map_err(|e| boxed(e.into()))?
                        .filter_map(Result::ok)
                        .map(|(k, v)| (v.value().0, *k.value()))
                        .collect();
                    by_age.sort_unstable();
                    for (_, k) in by_age.iter().take((MAX_ENTRIES / 10) as usize) {
                        table.remove(k).map_err(|e| boxed(e.into()))?;
                    }
                }
                table
                    .insert(key, (now, bytes.as_slice()))
                    .map_err(|e| boxed(e.into()))?;
            }
            tx.commit().map_err(|e| boxed(e.into()))?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::warn!("review cache write failed ({e}); ignored");
        }
    }
}

/// Builds a cache key from the parts that shape a review.
pub fn key(parts: &[&str]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_reads_back_and_survives_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.redb");
        let cache = Cache::open(&path).unwrap();
        let k = key(&["a", "b"]);
        assert!(cache.get::<serde_json::Value>(&k).is_none());
        let record = serde_json::json!({"iterations": 2, "notes": ["n"]});
        cache.put(&k, &record);
        assert_eq!(cache.get::<serde_json::Value>(&k).unwrap()["iterations"], 2);
        assert!(
            cache.get::<Vec<u32>>(&k).is_none(),
            "a record of another shape is no record"
        );
        assert_ne!(key(&["ab", ""]), key(&["a", "b"]), "parts are delimited");
        drop(cache);
        std::fs::write(&path, b"this is not a database").unwrap();
        // A corrupt store is no store, not a failure.
        assert!(Cache::open(&path).is_none());
    }
}

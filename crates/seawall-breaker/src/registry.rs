//! Breakers by key (provider × endpoint, output × URL …), created on demand from a template,
//! bounded in number, with idle closed breakers evicted.

use foldhash::HashMap;
use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::breaker::CircuitBreaker;
use crate::clock::saturating_nanos;
use crate::config::Config;
use crate::snapshot::Snapshot;
use crate::state::{Mode, State};
use crate::transition::Transition;

type KeyedListener<K> = Arc<dyn Fn(&K, &Transition) + Send + Sync>;
type KeyedHook<K> = Arc<dyn Fn(&K, &CircuitBreaker) + Send + Sync>;

/// Breakers by key, created from a template [`Config`].
///
/// ```
/// use seawall_breaker::{Config, Registry};
///
/// let registry: Registry<(&str, &str)> = Registry::new(Config::default()).max_keys(100);
/// let a = registry.get(&("openai", "/v1/chat/completions")).unwrap();
/// let b = registry.get(&("openai", "/v1/responses")).unwrap();
/// assert!(!a.ptr_eq(&b)); // one breaker per key
/// assert!(a.ptr_eq(&registry.get(&("openai", "/v1/chat/completions")).unwrap()));
/// ```
pub struct Registry<K> {
    template: RwLock<Config>,
    /// The template's clock, read by every `get`.
    clock: crate::Clock,
    max_keys: AtomicUsize,
    /// Nanoseconds.
    idle_after: AtomicU64,
    entries: RwLock<HashMap<K, Entry>>,
    listener: Option<KeyedListener<K>>,
    on_create: Option<KeyedHook<K>>,
    on_evict: Option<KeyedHook<K>>,
}

struct Entry {
    breaker: CircuitBreaker,
    /// Last time `get` returned this breaker (clock nanoseconds).
    last_used: AtomicU64,
}

/// The registry already holds `max_keys` breakers, none of them evictable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker registry is full ({max_keys} keys)")]
pub struct RegistryFull {
    /// The bound that was reached.
    pub max_keys: usize,
}

impl<K> Registry<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// An empty registry; by default at most 10,000 keys, idle after 10 minutes.
    pub fn new(template: Config) -> Self {
        Registry {
            clock: template.clock.clone(),
            template: RwLock::new(template),
            max_keys: AtomicUsize::new(10_000),
            idle_after: AtomicU64::new(saturating_nanos(Duration::from_secs(600))),
            entries: RwLock::new(HashMap::default()),
            listener: None,
            on_create: None,
            on_evict: None,
        }
    }

    /// The most breakers held at once.
    pub fn max_keys(self, max_keys: usize) -> Self {
        self.set_max_keys(max_keys);
        self
    }

    /// How long a closed breaker must go unused before it may be evicted.
    pub fn idle_after(self, idle_after: Duration) -> Self {
        self.set_idle_after(idle_after);
        self
    }

    /// Changes [`max_keys`](Self::max_keys) of a registry in use (a lower bound evicts
    /// nothing at once: it refuses new keys until idle ones are evicted).
    pub fn set_max_keys(&self, max_keys: usize) {
        self.max_keys.store(max_keys.max(1), Relaxed);
    }

    /// Changes [`idle_after`](Self::idle_after) of a registry in use.
    pub fn set_idle_after(&self, idle_after: Duration) {
        self.idle_after.store(saturating_nanos(idle_after), Relaxed);
    }

    /// Makes `template` the policy of every breaker: new ones are created from it, and every
    /// existing one is [reconfigured](CircuitBreaker::reconfigure) (keeping its state).
    pub fn reconfigure(&self, template: Config) {
        let mut current = self
            .template
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *current = template.clone();
        drop(current);
        for b in self.breakers() {
            b.reconfigure(template.clone());
        }
    }

    /// A listener added to every breaker the registry creates, told the key.
    pub fn on_state_change(mut self, f: impl Fn(&K, &Transition) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(f));
        self
    }

    /// A hook called with every breaker the registry creates, before anyone else sees it
    /// (e.g. to set its mode or publish its metrics). Called under the registry's write lock:
    /// it must not call back into the registry.
    pub fn on_create(mut self, f: impl Fn(&K, &CircuitBreaker) + Send + Sync + 'static) -> Self {
        self.on_create = Some(Arc::new(f));
        self
    }

    /// A hook called with every breaker evicted as idle (e.g. to drop its metric series).
    /// Called under the registry's write lock: it must not call back into the registry.
    pub fn on_evict(mut self, f: impl Fn(&K, &CircuitBreaker) + Send + Sync + 'static) -> Self {
        self.on_evict = Some(Arc::new(f));
        self
    }

    /// The breaker for `key`, created from the template on first use. When the registry is
    /// full it first evicts idle breakers; if none is evictable it returns [`RegistryFull`].
    pub fn get<Q>(&self, key: &Q) -> Result<CircuitBreaker, RegistryFull>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = self.now();
        {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = entries.get(key) {
                e.touch(now);
                return Ok(e.breaker.clone());
            }
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = entries.get(key) {
            e.touch(now);
            return Ok(e.breaker.clone());
        }
        let max_keys = self.max_keys.load(Relaxed);
        if entries.len() >= max_keys {
            self.evict_locked(&mut entries, now);
            if entries.len() >= max_keys {
                return Err(RegistryFull { max_keys });
            }
        }
        let owned = key.to_owned();
        let breaker = CircuitBreaker::new(self.template());
        if let Some(l) = &self.listener {
            let (l, k) = (l.clone(), owned.clone());
            breaker.on_state_change(move |t| l(&k, t));
        }
        if let Some(hook) = &self.on_create {
            hook(&owned, &breaker);
        }
        entries.insert(
            owned,
            Entry {
                breaker: breaker.clone(),
                last_used: AtomicU64::new(now),
            },
        );
        Ok(breaker)
    }

    /// The breaker for `key` if it exists, without creating one.
    pub fn find<Q>(&self, key: &Q) -> Option<CircuitBreaker>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).map(|e| e.breaker.clone())
    }

    /// Removes breakers that are closed, in normal or metrics-only mode, unused for `idle_after` and held by
    /// nobody else. Returns how many went.
    pub fn evict_idle(&self) -> usize {
        let now = self.now();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.evict_locked(&mut entries, now)
    }

    fn evict_locked(&self, entries: &mut HashMap<K, Entry>, now: u64) -> usize {
        let idle = self.idle_after.load(Relaxed);
        let before = entries.len();
        entries.retain(|k, e| {
            let unused = now.saturating_sub(e.last_used.load(Ordering::Relaxed)) >= idle;
            let quiet = e.breaker.state() == State::Closed
                && matches!(e.breaker.mode(), Mode::Normal | Mode::MetricsOnly);
            let evict = unused && quiet && e.breaker.handle_count() == 1;
            if evict {
                if let Some(hook) = &self.on_evict {
                    hook(k, &e.breaker);
                }
            }
            !evict
        });
        before - entries.len()
    }

    /// Performs the due timed transitions of every breaker (see [`CircuitBreaker::tick`]).
    pub fn tick(&self) {
        for b in self.breakers() {
            b.tick();
        }
    }

    /// Every key with its breaker, in no particular order.
    pub fn entries(&self) -> Vec<(K, CircuitBreaker)> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .iter()
            .map(|(k, e)| (k.clone(), e.breaker.clone()))
            .collect()
    }

    /// Every key with a snapshot of its breaker.
    pub fn snapshots(&self) -> Vec<(K, Snapshot)> {
        self.entries()
            .into_iter()
            .map(|(k, b)| (k, b.snapshot()))
            .collect()
    }

    /// How many breakers are held.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no breaker is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The template new breakers are made from.
    pub fn template(&self) -> Config {
        self.template
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn breakers(&self) -> Vec<CircuitBreaker> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.values().map(|e| e.breaker.clone()).collect()
    }

    fn now(&self) -> u64 {
        self.clock.now_nanos()
    }
}

impl Entry {
    fn touch(&self, now: u64) {
        // Write only when the reading moved by a millisecond or more, so that hot keys read
        // by many threads do not bounce the cache line on every call.
        if now.saturating_sub(self.last_used.load(Ordering::Relaxed)) >= 1_000_000 {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }
}

impl<K> fmt::Debug for Registry<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("Registry")
            .field("len", &len)
            .field("max_keys", &self.max_keys.load(Relaxed))
            .finish()
    }
}

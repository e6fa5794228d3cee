//! The cluster's Redis operations. Each step that reads and writes shared state is one Lua
//! script, so it is atomic however many replicas act at once. Keys (all under the prefix):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}:events` | channel | [`Message`]s |
//! | `{p}:open` | hash id → [`OpenRecord`] | breakers the fleet holds open |
//! | `{p}:modes` | hash id → [`ModeRecord`] | operators' `force_open` / `disable` |
//! | `{p}:nodes` | hash node → last heartbeat (Unix ms) | the fleet's replicas |
//! | `{p}:votes:{id}` | sorted set node → trip time | trips toward `trip_quorum` |
//! | `{p}:streaks:{id}` | hash node → failures in a row | runs added up toward `failure_threshold` |
//! | `{p}:lease:{id}` | string, with expiry | the replica probing for the fleet |

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, RedisResult, Script};

use super::message::{
    now_ms, now_us, AdminAction, Event, FleetKey, Message, ModeRecord, OpenRecord, VERSION,
};

/// A trip message (`Message`'s JSON, as Rust wrote it) with its `first` and `reason` replaced:
/// text substitution, so its numbers pass untouched (Lua's cjson rounds to 14 digits).
const WITH: &str = r#"
local function with(message, first, reason)
  local quoted = function(s) return (cjson.encode(s):gsub('%%', '%%%%')) end
  message = message:gsub('"first":"[^"]*"', '"first":' .. quoted(first), 1)
  return (message:gsub('"reason":"[^"]*"', '"reason":' .. quoted(reason), 1))
end
"#;

/// Adds a trip toward the quorum; opens the fleet's breaker when the quorum is reached, or
/// extends an open one by more than a second (a longer `Retry-After`). Returns `{0, ''}` (below quorum), `{1, record}` (already open at
/// least that long) or `{2, record}` (opened or extended now, message published).
const VOTE: &str = r"
local now = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local record = cjson.decode(ARGV[6])
local current = redis.call('HGET', KEYS[2], ARGV[5])
local open = false
if current then
  local c = cjson.decode(current)
  if c.until_ms + 1000 >= record.until_ms then return {1, current} end
  if c.until_ms > now then
    open = true
    record.first = c.first
    record.reason = c.reason
  end
end
if not open then
  if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then return {0, ''} end
  record.first = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
end
local text = cjson.encode(record)
redis.call('HSET', KEYS[2], ARGV[5], text)
redis.call('PUBLISH', ARGV[8], with(ARGV[7], record.first, record.reason))
return {2, text}
";

/// One replica's run of failures is now ARGV[2] long (kept as `count started_ms`): the fleet
/// opens once the runs of at least `quorum` replicas add up to `failure_threshold`; its first
/// replica is the one whose run began first. Returns like [`VOTE`].
const STREAK: &str = r"
local now = tonumber(ARGV[10])
if tonumber(ARGV[2]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {0, ''}
end
local started = now
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if prev then started = tonumber(string.match(prev, ' (%d+)$')) or now end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. string.format('%d', started))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local current = redis.call('HGET', KEYS[2], ARGV[6])
if current and cjson.decode(current).until_ms > now then return {1, current} end
local sum, replicas, first, earliest = 0, 0, ARGV[1], nil
local runs = redis.call('HGETALL', KEYS[1])
for i = 1, #runs, 2 do
  local count, since = string.match(runs[i + 1], '^(%d+) (%d+)$')
  count, since = tonumber(count), tonumber(since)
  if count and count > 0 then
    sum = sum + count
    replicas = replicas + 1
    if earliest == nil or since < earliest then
      earliest = since
      first = runs[i]
    end
  end
end
if sum < tonumber(ARGV[4]) or replicas < tonumber(ARGV[5]) then return {0, ''} end
redis.call('DEL', KEYS[1])
local record = cjson.decode(ARGV[7])
record.first = first
local text = cjson.encode(record)
redis.call('HSET', KEYS[2], ARGV[6], text)
redis.call('PUBLISH', ARGV[9], with(ARGV[8], first, record.reason))
return {2, text}
";

/// The probing replica's round failed: the fleet stays open until the new deadline (the
/// outage keeps its first replica); the lease goes.
const REOPEN: &str = r"
local record = cjson.decode(ARGV[2])
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then record.first = cjson.decode(current).first end
local text = cjson.encode(record)
redis.call('HSET', KEYS[1], ARGV[1], text)
if redis.call('GET', KEYS[2]) == ARGV[5] then redis.call('DEL', KEYS[2]) end
redis.call('PUBLISH', ARGV[4], with(ARGV[3], record.first, record.reason))
return text
";

/// The fleet's breaker closes: its record, votes, failure runs and (our) lease go.
const CLOSE: &str = r"
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[4])
if redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
redis.call('PUBLISH', ARGV[3], ARGV[2])
return 1
";

/// Extends the lease if this replica still holds it.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

/// Gives the lease up if this replica holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// What a trip vote led to.
#[derive(Debug, PartialEq)]
pub(super) enum Vote {
    /// Fewer than `trip_quorum` replicas tripped: this replica stays open alone.
    Below,
    /// The fleet holds the breaker open; `published` when this vote opened or extended it.
    Open {
        /// The fleet's record.
        record: OpenRecord,
        /// Whether this replica's message told the others.
        published: bool,
    },
}

impl Vote {
    /// A VOTE or STREAK script's answer: `0` below the quorum, `1` open (the fleet's record in
    /// `text`, else `ours`), `2` open by this very message.
    fn answered(code: u8, text: &str, ours: OpenRecord) -> Vote {
        match code {
            0 => Vote::Below,
            _ => Vote::Open {
                record: parse_record(text).unwrap_or(ours),
                published: code == 2,
            },
        }
    }
}

/// What Redis holds when a replica (re)connects.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    /// Breakers the fleet holds open, by id.
    pub open: Vec<(String, OpenRecord)>,
    /// Operators' modes, by id.
    pub modes: Vec<(String, ModeRecord)>,
    /// Replicas and their last heartbeat (Unix ms).
    pub nodes: Vec<(String, u64)>,
}

/// The names of the cluster's keys.
#[derive(Clone, Debug)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }
    pub(super) fn channel(&self) -> String {
        format!("{}:events", self.prefix)
    }
    fn open(&self) -> String {
        format!("{}:open", self.prefix)
    }
    fn modes(&self) -> String {
        format!("{}:modes", self.prefix)
    }
    fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    fn votes(&self, id: &str) -> String {
        format!("{}:votes:{id}", self.prefix)
    }
    fn streaks(&self, id: &str) -> String {
        format!("{}:streaks:{id}", self.prefix)
    }
    fn lease(&self, id: &str) -> String {
        format!("{}:lease:{id}", self.prefix)
    }
}

/// One replica's commands over one multiplexed connection.
pub(super) struct Store {
    conn: MultiplexedConnection,
    keys: Keys,
    node: String,
}

impl Store {
    pub(super) fn new(conn: MultiplexedConnection, keys: Keys, node: &str) -> Self {
        Store {
            conn,
            keys,
            node: node.to_owned(),
        }
    }

    fn message(&self, key: &FleetKey, event: Event) -> String {
        let m = Message {
            v: VERSION,
            node: self.node.clone(),
            sent_us: now_us(),
            key: key.clone(),
            event,
        };
        serde_json::to_string(&m).expect("a message serialises")
    }

    /// This replica tripped `key` (id `id`) for `reason` until `until_ms`: a vote toward
    /// `quorum` within `window`.
    pub(super) async fn vote(
        &mut self,
        id: &str,
        key: &FleetKey,
        reason: &str,
        until_ms: u64,
        quorum: u32,
        window: Duration,
    ) -> RedisResult<Vote> {
        let (record, event) = self.trip(key, reason, until_ms);
        let (code, text): (u8, String) = Script::new(&format!("{WITH}{VOTE}"))
            .key(self.keys.votes(id))
            .key(self.keys.open())
            .arg(&self.node)
            .arg(now_ms())
            .arg(window.as_millis().max(1) as u64)
            .arg(quorum)
            .arg(id)
            .arg(serde_json::to_string(&record).expect("a record serialises"))
            .arg(self.message(key, event))
            .arg(self.keys.channel())
            .invoke_async(&mut self.conn)
            .await?;
        Ok(Vote::answered(code, &text, record))
    }

    /// The record and the message of this replica's trip of `key`.
    fn trip(&self, key: &FleetKey, reason: &str, until_ms: u64) -> (OpenRecord, Event) {
        let record = OpenRecord {
            key: key.clone(),
            until_ms,
            first: self.node.clone(),
            reason: reason.to_owned(),
        };
        let event = Event::Trip {
            until_ms,
            first: self.node.clone(),
            reason: reason.to_owned(),
        };
        (record, event)
    }

    /// This replica's run of failures of `id` is `streak` long: the runs of the fleet add up
    /// toward `threshold` (from at least `quorum` replicas, within `window`); the fleet opens
    /// until `until_ms` when they reach it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn streak(
        &mut self,
        id: &str,
        key: &FleetKey,
        streak: u32,
        threshold: u32,
        quorum: u32,
        window: Duration,
        until_ms: u64,
    ) -> RedisResult<Vote> {
        let reason = "consecutive_failures";
        let (record, event) = self.trip(key, reason, until_ms);
        let (code, text): (u8, String) = Script::new(&format!("{WITH}{STREAK}"))
            .key(self.keys.streaks(id))
            .key(self.keys.open())
            .arg(&self.node)
            .arg(streak)
            .arg(window.as_millis().max(1) as u64)
            .arg(threshold)
            .arg(quorum)
            .arg(id)
            .arg(serde_json::to_string(&record).expect("a record serialises"))
            .arg(self.message(key, event))
            .arg(self.keys.channel())
            .arg(now_ms())
            .invoke_async(&mut self.conn)
            .await?;
        Ok(Vote::answered(code, &text, record))
    }

    /// This replica's trip of `id` no longer counts (it recovered on its own).
    pub(super) async fn withdraw_vote(&mut self, id: &str) -> RedisResult<()> {
        self.conn.zrem(self.keys.votes(id), &self.node).await
    }

    /// The round this replica probed failed: open until `until_ms`.
    pub(super) async fn reopen(
        &mut self,
        id: &str,
        key: &FleetKey,
        reason: &str,
        until_ms: u64,
    ) -> RedisResult<OpenRecord> {
        let (record, event) = self.trip(key, reason, until_ms);
        let text: String = Script::new(&format!("{WITH}{REOPEN}"))
            .key(self.keys.open())
            .key(self.keys.lease(id))
            .arg(id)
            .arg(serde_json::to_string(&record).expect("a record serialises"))
            .arg(self.message(key, event))
            .arg(self.keys.channel())
            .arg(&self.node)
            .invoke_async(&mut self.conn)
            .await?;
        Ok(parse_record(&text).unwrap_or(record))
    }

    /// The breaker recovered: the fleet closes it.
    pub(super) async fn close(&mut self, id: &str, key: &FleetKey) -> RedisResult<()> {
        let _: u8 = Script::new(CLOSE)
            .key(self.keys.open())
            .key(self.keys.votes(id))
            .key(self.keys.lease(id))
            .key(self.keys.streaks(id))
            .arg(id)
            .arg(self.message(key, Event::Close))
            .arg(self.keys.channel())
            .arg(&self.node)
            .invoke_async(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Takes the probe lease of `id` for `ttl` if nobody holds it.
    pub(super) async fn try_lease(&mut self, id: &str, ttl: Duration) -> RedisResult<bool> {
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.lease(id))
            .arg(&self.node)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut self.conn)
            .await?;
        Ok(set.is_some())
    }

    /// Extends this replica's lease of `id`; `false` when it is no longer ours.
    pub(super) async fn renew_lease(&mut self, id: &str, ttl: Duration) -> RedisResult<bool> {
        let renewed: u8 = Script::new(RENEW)
            .key(self.keys.lease(id))
            .arg(&self.node)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut self.conn)
            .await?;
        Ok(renewed == 1)
    }

    /// Gives up this replica's lease of `id`.
    pub(super) async fn release_lease(&mut self, id: &str) -> RedisResult<()> {
        let _: u8 = Script::new(RELEASE)
            .key(self.keys.lease(id))
            .arg(&self.node)
            .invoke_async(&mut self.conn)
            .await?;
        Ok(())
    }

    /// An operator's `action` on `key`, for the whole fleet (and replicas that start later).
    pub(super) async fn admin(
        &mut self,
        id: &str,
        key: &FleetKey,
        action: AdminAction,
    ) -> RedisResult<()> {
        let message = self.message(key, Event::Admin { action });
        let mut pipe = redis::pipe();
        pipe.atomic();
        match action {
            AdminAction::Reset => {
                pipe.hdel(self.keys.modes(), id)
                    .hdel(self.keys.open(), id)
                    .del(self.keys.votes(id))
                    .del(self.keys.streaks(id))
                    .del(self.keys.lease(id));
            }
            AdminAction::ForceOpen | AdminAction::Disable => {
                let record = ModeRecord {
                    key: key.clone(),
                    action,
                };
                let text = serde_json::to_string(&record).expect("a record serialises");
                pipe.hset(self.keys.modes(), id, text);
            }
        }
        pipe.publish(self.keys.channel(), message);
        pipe.query_async::<()>(&mut self.conn).await
    }

    /// Says this replica is alive.
    pub(super) async fn heartbeat(&mut self) -> RedisResult<()> {
        self.conn
            .hset(self.keys.nodes(), &self.node, now_ms())
            .await
    }

    /// Every replica's last heartbeat (Unix ms).
    pub(super) async fn load_nodes(&mut self) -> RedisResult<Vec<(String, u64)>> {
        self.conn.hgetall(self.keys.nodes()).await
    }

    /// Forgets replicas that went silent long ago.
    pub(super) async fn forget_nodes(&mut self, nodes: &[String]) -> RedisResult<()> {
        if nodes.is_empty() {
            return Ok(());
        }
        self.conn.hdel(self.keys.nodes(), nodes).await
    }

    /// Everything a replica needs on (re)connecting. Records it cannot read are skipped.
    pub(super) async fn load(&mut self) -> RedisResult<Loaded> {
        let open: Vec<(String, String)> = self.conn.hgetall(self.keys.open()).await?;
        let modes: Vec<(String, String)> = self.conn.hgetall(self.keys.modes()).await?;
        let nodes: Vec<(String, u64)> = self.conn.hgetall(self.keys.nodes()).await?;
        Ok(Loaded {
            open: open
                .into_iter()
                .filter_map(|(id, text)| Some((id, parse_record(&text)?)))
                .collect(),
            modes: modes
                .into_iter()
                .filter_map(|(id, text)| Some((id, serde_json::from_str(&text).ok()?)))
                .collect(),
            nodes,
        })
    }
}

fn parse_record(text: &str) -> Option<OpenRecord> {
    serde_json::from_str(text).ok()
}

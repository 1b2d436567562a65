//! The presence entries a cluster shares, so a room on a node that opens
//! late knows who is already there, and the members of a node that died
//! without a word are let go.
//!
//! Per room, a hash `hub:presence:<room>` (field `<node>|<person>`, value
//! what the room shows for the person) and a sorted set
//! `hub:presence:<room>:expiry` of the same fields scored by when they
//! expire, in Redis's own clock (so nodes' clocks never matter). Each node
//! refreshes its own fields well within the TTL; any node may reap expired
//! fields, and the script that reaps is atomic, so each dead entry is
//! reaped, and announced, once. Both keys vanish with their last field.
//!
//! A room whose only node died has no node left to reap it: a sorted set
//! `hub:presence-rooms` scores each room by when its last entry expires,
//! and every node sweeps away the rooms whose entries have all expired.
//!
//! A node alone keeps nothing here: its rooms know all their members.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;

use crate::metrics::Metrics;

// The scripts are called by their hash (`EVALSHA`), and loaded once when
// Redis does not know them (at the first call, and after a restart empty),
// so a call carries 40 bytes instead of the script's text. Redis caches a
// script sent with `EVAL` too: measured, its CPU did not change; what costs
// is the number of calls (see `PUT`).

/// Adds or refreshes fields: KEYS = hash, expiry set, rooms set; ARGV =
/// ttl in ms, the room, then field/value pairs. With ARGV[3] `reap`, the
/// pairs start at ARGV[4] and the fields that had expired are then removed
/// and returned (a room's refresh and reap in one call: half the calls of
/// two scripts, which were most of what Redis did for presence).
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expires = now + tonumber(ARGV[1])
local reap = ARGV[3] == 'reap'
local first = reap and 4 or 3
for i = first, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], expires, ARGV[i])
end
if #ARGV >= first then
  redis.call('ZADD', KEYS[3], 'GT', expires, ARGV[2])
end
if not reap then
  return {}
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, field in ipairs(dead) do
  redis.call('ZREM', KEYS[2], field)
  redis.call('HDEL', KEYS[1], field)
end
return dead",
    )
});

/// Deletes the entries of rooms whose entries have all expired, a hundred
/// at a time: KEYS = rooms set; ARGV = the key prefix.
static SWEEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local rooms = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)
for _, room in ipairs(rooms) do
  redis.call('DEL', ARGV[1] .. room, ARGV[1] .. room .. ':expiry')
  redis.call('ZREM', KEYS[1], room)
end
return #rooms",
    )
});

const ROOMS: &str = "hub:presence-rooms";
const PREFIX: &str = "hub:presence:";

/// A command that takes longer has failed; presence waits for the next
/// refresh rather than hold up its room.
const TIMEOUT: Duration = Duration::from_secs(2);

/// A presence command that did not get its answer: never an answer itself
/// (a failed read is not an empty room), but something to do again.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("no answer within {TIMEOUT:?}")]
    TimedOut,
}

impl PresenceError {
    /// Counts the failure and logs it: as a warning, unless Redis cannot be
    /// reached at all, which the bus reports itself.
    pub fn report(&self, metrics: &Metrics, room: &str, what: &str) {
        metrics.presence_failed();
        let outage = match self {
            Self::Redis(err) => err.is_io_error() || err.is_connection_dropped(),
            Self::TimedOut => true,
        };
        if outage {
            tracing::debug!(room, error = %self, "{what} failed");
        } else {
            tracing::warn!(room, error = %self, "{what} failed");
        }
    }
}

async fn within<T>(
    command: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, PresenceError> {
    match tokio::time::timeout(TIMEOUT, command).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(PresenceError::TimedOut),
    }
}

#[derive(Clone)]
pub enum SharedPresence {
    Alone,
    Redis {
        connection: ConnectionManager,
        ttl: Duration,
    },
}

fn keys(room: &str) -> [String; 2] {
    [format!("{PREFIX}{room}"), format!("{PREFIX}{room}:expiry")]
}

impl SharedPresence {
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Redis { .. })
    }

    /// How often a node refreshes its entries and reaps others': three
    /// times per TTL, so one missed refresh never lets a live entry expire.
    pub fn refresh_every(&self) -> Option<Duration> {
        match self {
            Self::Alone => None,
            Self::Redis { ttl, .. } => Some(*ttl / 3),
        }
    }

    /// Adds or refreshes this node's entries (`(field, shown)` pairs).
    pub async fn put(
        &self,
        room: &str,
        entries: Vec<(String, String)>,
    ) -> Result<(), PresenceError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.put_then(room, entries, false).await.map(drop)
    }

    /// Refreshes this node's entries, then removes the room's expired
    /// entries and returns their fields: only the node whose call removed
    /// an entry is told of it.
    pub async fn refresh_and_reap(
        &self,
        room: &str,
        entries: Vec<(String, String)>,
    ) -> Result<Vec<String>, PresenceError> {
        self.put_then(room, entries, true).await
    }

    async fn put_then(
        &self,
        room: &str,
        entries: Vec<(String, String)>,
        reap: bool,
    ) -> Result<Vec<String>, PresenceError> {
        let Self::Redis {
            connection, ttl, ..
        } = self
        else {
            return Ok(Vec::new());
        };
        let mut put = PUT.prepare_invoke();
        put.key(&keys(room))
            .key(ROOMS)
            .arg(ttl.as_millis().to_string())
            .arg(room);
        if reap {
            put.arg("reap");
        }
        for (field, shown) in entries {
            put.arg(field).arg(shown);
        }
        let mut connection = connection.clone();
        within(put.invoke_async::<Vec<String>>(&mut connection)).await
    }

    /// Removes one entry of this node's.
    pub async fn remove(&self, room: &str, field: String) -> Result<(), PresenceError> {
        let Self::Redis { connection, .. } = self else {
            return Ok(());
        };
        let [hash, expiry] = keys(room);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hdel(hash, &field)
            .ignore()
            .zrem(expiry, &field)
            .ignore();
        let mut connection = connection.clone();
        within(pipe.query_async::<()>(&mut connection)).await
    }

    /// Every entry of the room, `(field, shown)`.
    pub async fn load(&self, room: &str) -> Result<Vec<(String, String)>, PresenceError> {
        let Self::Redis { connection, .. } = self else {
            return Ok(Vec::new());
        };
        let [hash, _] = keys(room);
        let mut connection = connection.clone();
        let mut all = redis::cmd("HGETALL");
        all.arg(hash);
        within(all.query_async::<Vec<(String, String)>>(&mut connection)).await
    }

    /// Deletes what dead nodes left in rooms no live node serves (a live
    /// node's room reaps its own); run by every node, now and then.
    pub async fn sweep(&self) -> Result<(), PresenceError> {
        let Self::Redis { connection, .. } = self else {
            return Ok(());
        };
        let mut connection = connection.clone();
        let mut sweep = SWEEP.key(ROOMS);
        sweep.arg(PREFIX);
        within(sweep.invoke_async::<i64>(&mut connection)).await?;
        Ok(())
    }
}

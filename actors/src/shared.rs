//! Key budgets shared by replicas through Redis (`[cluster] redis_url`).
//!
//! Each key's sliding windows (requests and tokens, for the key and for each
//! model with its own limits), its requests in flight and its cooldown live in
//! Redis, changed only by the scripts below. A script touches one key's data,
//! whose names share the hash tag `{k<id>}`, so it runs on one node of a Redis
//! Cluster as well as on a single Redis. Instants come from Redis's own clock
//! (`TIME`), so replicas whose clocks differ still agree on every window edge.
//!
//! The key actor keeps deciding everything else (learned limits, failure
//! backoff, health, calibration) and asks [`SharedWindows::acquire`] only once
//! its own view says the key can take the request: one round trip per admission.
//! When Redis cannot be reached, the actor falls back to its own window, with a
//! share of every limit (see `KeyBudget::set_share`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Script;

use crate::budget::{End, Limits};
use crate::redis_link::{Connection, RedisLink};

/// Admit a request if every window it counts in has room. Returns
/// `{key_wait, model_wait, requests, tokens}`: waits in ms (0 admitted, -1 at
/// the concurrency limit), and the key window's counts after the decision.
const ACQUIRE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member, tokens = ARGV[1], tonumber(ARGV[2])
local span, lease = tonumber(ARGV[3]), tonumber(ARGV[4])

-- Entries whose instant + span has passed left the window (as in window.rs).
local function prune(win, tok)
  while true do
    local old = redis.call('ZRANGEBYSCORE', win, '-inf', now - span, 'LIMIT', 0, 500)
    if #old == 0 then return end
    local counted = redis.call('HMGET', tok, unpack(old))
    local freed = 0
    for _, v in ipairs(counted) do freed = freed + (tonumber(v) or 0) end
    redis.call('ZREM', win, unpack(old))
    redis.call('HDEL', tok, unpack(old))
    -- Lua writes a negated zero as "-0", which HINCRBY refuses.
    if freed > 0 then redis.call('HINCRBY', tok, '#sum', -freed) end
  end
end

-- The earliest instant a request fits the window's limits.
local function ready_at(win, tok, rpm, tpm)
  local at = now
  if rpm > 0 then
    local n = redis.call('ZCARD', win)
    if n >= rpm then
      local e = redis.call('ZRANGE', win, n - rpm, n - rpm, 'WITHSCORES')
      at = math.max(at, tonumber(e[2]) + span)
    end
  end
  if tpm > 0 then
    -- A request larger than the whole budget goes alone, into an empty window.
    local need = math.min(tokens, tpm)
    local sum = tonumber(redis.call('HGET', tok, '#sum') or '0')
    if sum + need > tpm then
      local freed, start, found = 0, 0, nil
      while not found do
        local page = redis.call('ZRANGE', win, start, start + 199, 'WITHSCORES')
        if #page == 0 then break end
        local members = {}
        for i = 1, #page, 2 do members[#members + 1] = page[i] end
        local counted = redis.call('HMGET', tok, unpack(members))
        for i, v in ipairs(counted) do
          freed = freed + (tonumber(v) or 0)
          if sum - freed + need <= tpm then
            found = tonumber(page[2 * i]) + span
            break
          end
        end
        start = start + 200
      end
      at = math.max(at, found or (now + span))
    end
  end
  return at
end

local function admit(win, tok)
  redis.call('ZADD', win, now, member)
  redis.call('HSET', tok, member, tokens)
  redis.call('HINCRBY', tok, '#sum', tokens)
  redis.call('PEXPIRE', win, span + lease)
  redis.call('PEXPIRE', tok, span + lease)
end

local function counts()
  return redis.call('ZCARD', KEYS[1]), tonumber(redis.call('HGET', KEYS[2], '#sum') or '0')
end

local rpm, tpm, conc = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local waited, origin = tonumber(ARGV[10]), ARGV[11]
local cool = tonumber(redis.call('HGET', KEYS[4], 'cool') or '0')

-- First come, first served across replicas: a replica refused for room leaves
-- a claim (when its request was queued, until when it will be back: the
-- instant Redis named, plus 50 ms; 2 s when waiting for a concurrency slot);
-- when room frees, a replica whose request came more than 50 ms later yields
-- to a live, older claim. Without it, replicas that wake at the same window
-- edge race, and a request that keeps losing waits several edges longer.
local mine = now - waited
local claim = 'c:' .. origin
local function claim_room(back)
  -- The request asking now is the one its replica serves next: its claim
  -- replaces the one before (whose request may have gone elsewhere).
  redis.call('HSET', KEYS[4], claim, mine .. ':' .. (back + 50))
  redis.call('PEXPIRE', KEYS[4], span + lease)
end
local function older_claim_until()
  local until_ms = nil
  local fields = redis.call('HGETALL', KEYS[4])
  for i = 1, #fields, 2 do
    local f = fields[i]
    if string.sub(f, 1, 2) == 'c:' and f ~= claim then
      local enq, exp = string.match(fields[i + 1], '(%d+):(%d+)')
      enq, exp = tonumber(enq), tonumber(exp)
      if exp <= now then
        redis.call('HDEL', KEYS[4], f)
      elseif enq + 50 < mine then
        until_ms = math.max(until_ms or 0, exp)
      end
    end
  end
  return until_ms
end
prune(KEYS[1], KEYS[2])
local key_at = math.max(now, cool, ready_at(KEYS[1], KEYS[2], rpm, tpm))
local model_at = now
if #KEYS >= 6 then
  prune(KEYS[5], KEYS[6])
  model_at = ready_at(KEYS[5], KEYS[6], tonumber(ARGV[8]), tonumber(ARGV[9]))
end
local queued = waited >= 0
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= conc then
    if queued then claim_room(now + 2000) end
    local n, sum = counts()
    return {-1, 0, n, sum}
  end
end
if key_at > now or model_at > now then
  if queued then claim_room(math.max(key_at, model_at)) end
  local n, sum = counts()
  return {key_at - now, model_at - now, n, sum}
end
if queued then
  local yield = older_claim_until()
  if yield then
    local n, sum = counts()
    return {yield - now, 0, n, sum}
  end
  redis.call('HDEL', KEYS[4], claim)
end
admit(KEYS[1], KEYS[2])
if #KEYS >= 6 then admit(KEYS[5], KEYS[6]) end
if conc > 0 then
  redis.call('ZADD', KEYS[3], now + lease, member)
  redis.call('PEXPIRE', KEYS[3], lease)
end
local n, sum = counts()
return {0, 0, n, sum}
"#;

/// A request ended: its concurrency slot frees and its tokens are settled (or,
/// never sent, it leaves the windows). When that frees room another replica's
/// waiting request could use, say so on the deployment's key channel.
const FINISH: &str = r#"
local member, ending, used = ARGV[1], ARGV[2], tonumber(ARGV[3])
local freed = redis.call('ZREM', KEYS[3], member) > 0
local function settle(win, tok)
  local counted = tonumber(redis.call('HGET', tok, member) or '')
  if counted == nil then return end
  if ending == 'unsent' then
    redis.call('ZREM', win, member)
    redis.call('HDEL', tok, member)
    if counted > 0 then redis.call('HINCRBY', tok, '#sum', -counted) end
    freed = true
  elseif ending == 'used' then
    redis.call('HSET', tok, member, used)
    if used ~= counted then redis.call('HINCRBY', tok, '#sum', used - counted) end
    if used < counted then freed = true end
  end
end
settle(KEYS[1], KEYS[2])
if #KEYS >= 5 then settle(KEYS[4], KEYS[5]) end
if freed and ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return freed and 1 or 0
"#;

/// The provider refused: no replica sends on the key before the cooldown ends;
/// the learned limits go to every replica on the key channel.
const COOL_DOWN: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local till = now + tonumber(ARGV[1])
local cool = tonumber(redis.call('HGET', KEYS[1], 'cool') or '0')
if till > cool then
  redis.call('HSET', KEYS[1], 'cool', till)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + 1000)
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"#;

/// Take (or keep) a duty's lease for this replica: `1` when it holds it.
const LEASE_TAKE: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
"#;

/// Give a duty's lease back, if this replica holds it.
const LEASE_GIVE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Count this replica as alive and the others seen lately; returns how many are.
const PRESENCE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZCARD', KEYS[1])
"#;

/// How long a request in flight holds a concurrency slot at most, should its
/// replica die before it ends: longer than any generation.
const LEASE: Duration = Duration::from_secs(15 * 60);

/// Longest a call to Redis may take before the replica goes on without it.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// After Redis failed, how long the replica keeps to its own share before trying again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A replica is counted alive while it reported within this long.
pub const PRESENCE_TTL: Duration = Duration::from_secs(5);

/// Whose windows: an upstream key's, or a user's or token's own limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Budget {
    /// An upstream key.
    Key(i64),
    /// A user's own limits.
    User(i64),
    /// An `sk-` token's own limits.
    Token(i64),
}

impl Budget {
    /// The hash tag all its data in Redis share.
    fn tag(self) -> String {
        match self {
            Budget::Key(id) => format!("k{id}"),
            Budget::User(id) => format!("u{id}"),
            Budget::Token(id) => format!("t{id}"),
        }
    }
}

/// What an admission asks of the shared windows.
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    /// Whose windows.
    pub budget: Budget,
    /// This replica's permit id.
    pub permit: u64,
    /// Tokens it counts for (estimated).
    pub tokens: u64,
    /// How long the request has waited, for a key: when room frees, a
    /// replica whose request waited longer goes first.
    pub waited: Option<Duration>,
    /// The key's limits in force (learned or configured).
    pub limits: Limits,
    /// The model and its own limits in force, when the key has some for it.
    pub model: Option<(&'a str, Limits)>,
}

/// The shared windows' answer to an admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Admitted: it counts in every replica's view now.
    pub admitted: bool,
    /// At the concurrency limit: ready when a request in flight ends.
    pub slot_full: bool,
    /// How long until the key's own window (or cooldown) has room.
    pub key_wait: Duration,
    /// How long until the model's window has room.
    pub model_wait: Duration,
    /// Requests in the key's window, all replicas together.
    pub requests: u32,
    /// Tokens in the key's window, all replicas together.
    pub tokens: u64,
}

/// An event on a deployment's key channel.
#[derive(Clone, Debug, PartialEq)]
pub enum KeyEvent {
    /// Room freed on a key before its window said so (a request ended early,
    /// used fewer tokens than held, or was never sent).
    Freed {
        /// The key.
        key_id: i64,
    },
    /// Health checks on a replica disabled a key (it is in the database):
    /// the others reload their keys.
    Disabled {
        /// The key.
        key_id: i64,
    },
    /// A replica learned lower limits for a key from a provider 429.
    Learned {
        /// Which replica (it already applied them).
        origin: String,
        /// The key.
        key_id: i64,
        /// The model whose own limits they are, or `None` for the key's.
        model: Option<String>,
        /// Requests per window now in force.
        rpm: u32,
        /// Tokens per window now in force.
        tpm: u64,
    },
}

impl KeyEvent {
    /// The message's text on the channel.
    pub fn encode(&self) -> String {
        match self {
            KeyEvent::Freed { key_id } => format!("freed {key_id}"),
            KeyEvent::Disabled { key_id } => format!("disabled {key_id}"),
            KeyEvent::Learned {
                origin,
                key_id,
                model,
                rpm,
                tpm,
            } => format!(
                "learned {origin} {key_id} {rpm} {tpm} {}",
                model.as_deref().unwrap_or("")
            ),
        }
    }

    /// Read a message from the channel.
    pub fn parse(text: &str) -> Option<KeyEvent> {
        let mut parts = text.splitn(6, ' ');
        match parts.next()? {
            "freed" => Some(KeyEvent::Freed {
                key_id: parts.next()?.parse().ok()?,
            }),
            "disabled" => Some(KeyEvent::Disabled {
                key_id: parts.next()?.parse().ok()?,
            }),
            "learned" => {
                let origin = parts.next()?.to_string();
                let key_id = parts.next()?.parse().ok()?;
                let rpm = parts.next()?.parse().ok()?;
                let tpm = parts.next()?.parse().ok()?;
                let model = parts.next().filter(|m| !m.is_empty()).map(str::to_string);
                Some(KeyEvent::Learned {
                    origin,
                    key_id,
                    model,
                    rpm,
                    tpm,
                })
            }
            _ => None,
        }
    }
}

/// This replica's handle on the shared windows. Cheap to clone.
#[derive(Clone)]
pub struct SharedWindows {
    inner: Arc<Inner>,
}

struct Inner {
    link: RedisLink,
    prefix: String,
    /// This replica, in window entries and on the key channel.
    origin: String,
    span: Duration,
    acquire: Script,
    finish: Script,
    cool_down: Script,
    presence: Script,
    lease_take: Script,
    lease_give: Script,
    /// Replicas alive at the last count (at least 1).
    replicas: Arc<AtomicUsize>,
    /// Until when Redis is not asked again after a failure.
    failed_until: Mutex<Option<Instant>>,
    /// Calls that failed since start, and the last failure.
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A shared-window call that did not reach Redis (the caller falls back).
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct Unreachable(String);

impl SharedWindows {
    /// Windows of `span` (the provider's window plus the margin) under `prefix`,
    /// for the replica `origin`, in the Redis at `url` (see [`RedisLink::open`]).
    /// Connects on first use.
    pub fn new(url: &str, prefix: &str, origin: &str, span: Duration) -> Result<Self, String> {
        Ok(SharedWindows {
            inner: Arc::new(Inner {
                link: RedisLink::open(url, CALL_TIMEOUT)?,
                prefix: prefix.to_string(),
                origin: origin.to_string(),
                span,
                acquire: Script::new(ACQUIRE),
                finish: Script::new(FINISH),
                cool_down: Script::new(COOL_DOWN),
                presence: Script::new(PRESENCE),
                lease_take: Script::new(LEASE_TAKE),
                lease_give: Script::new(LEASE_GIVE),
                replicas: Arc::new(AtomicUsize::new(1)),
                failed_until: Mutex::new(None),
                errors: AtomicU64::new(0),
                last_error: Mutex::new(None),
            }),
        })
    }

    /// A client of the deployment's Redis (of its first node, for a Redis
    /// Cluster), for pub/sub.
    pub fn client(&self) -> redis::Client {
        self.inner.link.client().clone()
    }

    /// This replica's name.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The pub/sub channel of key events.
    pub fn channel(&self) -> String {
        format!("{}:keys", self.inner.prefix)
    }

    /// Replicas alive at the last count (at least 1); shared with the quota ledger.
    pub fn replicas(&self) -> Arc<AtomicUsize> {
        self.inner.replicas.clone()
    }

    /// Whether Redis failed lately (the caller keeps to its share meanwhile).
    pub fn failing(&self) -> bool {
        let until = *self.inner.failed_until.lock().expect("failure lock");
        until.is_some_and(|u| u > Instant::now())
    }

    fn names(&self, budget: Budget, model: Option<&str>) -> Vec<String> {
        let base = format!("{}:{{{}}}", self.inner.prefix, budget.tag());
        let mut names = vec![
            format!("{base}:win"),
            format!("{base}:tok"),
            format!("{base}:fly"),
            format!("{base}:state"),
        ];
        if let Some(model) = model {
            names.push(format!("{base}:m:{model}:win"));
            names.push(format!("{base}:m:{model}:tok"));
        }
        names
    }

    fn member(&self, permit: u64) -> String {
        format!("{}:{permit}", self.inner.origin)
    }

    /// `request` on the link to Redis, unless Redis failed a moment ago.
    async fn call<T, F, Fut>(&self, request: F) -> Result<T, Unreachable>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if self.failing() {
            return Err(Unreachable("unreachable a moment ago".into()));
        }
        self.inner.link.call(request).await.map_err(|e| self.failed(e))
    }

    /// Calls to Redis that failed since start, and the last one's error.
    pub fn errors(&self) -> (u64, Option<String>) {
        let last = self.inner.last_error.lock().expect("error lock").clone();
        (self.inner.errors.load(Ordering::Relaxed), last)
    }

    fn failed(&self, e: redis::RedisError) -> Unreachable {
        self.inner.errors.fetch_add(1, Ordering::Relaxed);
        *self.inner.last_error.lock().expect("error lock") = Some(e.to_string());
        *self.inner.failed_until.lock().expect("failure lock") = Some(Instant::now() + RETRY_AFTER_FAILURE);
        Unreachable(e.to_string())
    }

    /// Admit the request in every replica's view if its windows have room.
    pub async fn acquire(&self, ask: Ask<'_>) -> Result<Answer, Unreachable> {
        let mut invocation = self.inner.acquire.prepare_invoke();
        for name in self.names(ask.budget, ask.model.map(|(m, _)| m)) {
            invocation.key(name);
        }
        let model_limits = ask.model.map(|(_, l)| l).unwrap_or_default();
        invocation
            .arg(self.member(ask.permit))
            .arg(ask.tokens)
            .arg(self.inner.span.as_millis() as u64)
            .arg(LEASE.as_millis() as u64)
            .arg(ask.limits.rpm)
            .arg(ask.limits.tpm)
            .arg(ask.limits.max_concurrency)
            .arg(model_limits.rpm)
            .arg(model_limits.tpm)
            .arg(ask.waited.map_or(-1, |w| w.as_millis() as i64))
            .arg(&self.inner.origin);
        let reply: (i64, i64, u64, u64) = self
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        let (key_wait, model_wait, requests, tokens) = reply;
        let ms = |w: i64| Duration::from_millis(w.max(0) as u64);
        Ok(Answer {
            admitted: key_wait == 0 && model_wait == 0,
            slot_full: key_wait < 0,
            key_wait: ms(key_wait),
            model_wait: ms(model_wait),
            requests: requests.min(u64::from(u32::MAX)) as u32,
            tokens,
        })
    }

    /// Settle a request admitted by [`SharedWindows::acquire`].
    pub async fn finish(
        &self,
        budget: Budget,
        model: Option<&str>,
        permit: u64,
        end: End,
    ) -> Result<(), Unreachable> {
        let names = self.names(budget, model);
        let mut invocation = self.inner.finish.prepare_invoke();
        // The key's window, tokens and flights, then the model's window and tokens.
        for (i, name) in names.into_iter().enumerate() {
            if i != 3 {
                invocation.key(name);
            }
        }
        let (ending, used) = match end {
            End::Sent => ("sent", 0),
            End::Used(tokens) => ("used", tokens),
            End::Unsent => ("unsent", 0),
        };
        invocation
            .arg(self.member(permit))
            .arg(ending)
            .arg(used)
            .arg(self.channel());
        // Room freed on a key wakes the other replicas' waiters; a user's or
        // token's own limits are looked at again by their waiters' next try.
        match budget {
            Budget::Key(key_id) => invocation.arg(KeyEvent::Freed { key_id }.encode()),
            Budget::User(_) | Budget::Token(_) => invocation.arg(""),
        };
        let _: i64 = self
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(())
    }

    /// No replica sends on the key for `cooldown`; tell them the learned limits.
    pub async fn cool_down(
        &self,
        key_id: i64,
        cooldown: Duration,
        learned: KeyEvent,
    ) -> Result<(), Unreachable> {
        let names = self.names(Budget::Key(key_id), None);
        let mut invocation = self.inner.cool_down.key(&names[3]);
        invocation
            .arg(cooldown.as_millis() as u64)
            .arg(self.channel())
            .arg(learned.encode());
        let _: i64 = self
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(())
    }

    /// Hold the lease of a duty that must run on one replica at a time (the
    /// prober, start-up migrations), for `ttl` from now: true when this
    /// replica holds it (it keeps it by calling again within `ttl`; another
    /// takes it over once a holder that died lets it lapse).
    pub async fn lease(&self, duty: &str, ttl: Duration) -> Result<bool, Unreachable> {
        let mut invocation = self
            .inner
            .lease_take
            .key(format!("{}:lease:{duty}", self.inner.prefix));
        invocation.arg(&self.inner.origin).arg(ttl.as_millis() as u64);
        let held: i64 = self
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(held == 1)
    }

    /// Give a duty's lease back at once (the duty is done).
    pub async fn release(&self, duty: &str) -> Result<(), Unreachable> {
        let mut invocation = self
            .inner
            .lease_give
            .key(format!("{}:lease:{duty}", self.inner.prefix));
        invocation.arg(&self.inner.origin);
        let _: i64 = self
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(())
    }

    /// Tell the other replicas about a key event (a key health checks disabled).
    pub async fn publish(&self, event: &KeyEvent) -> Result<(), Unreachable> {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.channel()).arg(event.encode());
        let _: i64 = self
            .call(|mut conn| async move { publish.query_async(&mut conn).await })
            .await?;
        Ok(())
    }

    /// Report this replica alive and count the live ones.
    pub async fn heartbeat(&self) -> Result<usize, Unreachable> {
        let mut invocation = self.inner.presence.key(format!("{}:replicas", self.inner.prefix));
        invocation
            .arg(&self.inner.origin)
            .arg(PRESENCE_TTL.as_millis() as u64);
        let count: usize = self
            .call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        self.inner.replicas.store(count.max(1), Ordering::Relaxed);
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_events_travel_as_text() {
        let events = [
            KeyEvent::Freed { key_id: 7 },
            KeyEvent::Disabled { key_id: 8 },
            KeyEvent::Learned {
                origin: "abc".into(),
                key_id: 3,
                model: Some("meta/llama 3".into()),
                rpm: 38,
                tpm: 0,
            },
            KeyEvent::Learned {
                origin: "abc".into(),
                key_id: 3,
                model: None,
                rpm: 0,
                tpm: 9000,
            },
        ];
        for event in events {
            assert_eq!(KeyEvent::parse(&event.encode()), Some(event));
        }
        assert_eq!(KeyEvent::parse("freed x"), None);
        assert_eq!(KeyEvent::parse("hello"), None);
    }
}

//! The Lua scripts that make each write one atomic round trip.
//!
//! Redis runs a script as a single command: no other client's command runs in between,
//! so a document and its request-id sets always change together (a crash or a dropped
//! connection leaves either all of a write or none of it). The scripts are sent with
//! `EVALSHA` and loaded on the first `NOSCRIPT` (after a server restart, for example).
//!
//! Redis does not roll back a script's earlier writes when a later command fails, so
//! every write script is in two phases: first it reads and checks everything that could
//! make a command fail (each key it will touch has the type it expects: a string or
//! nothing at the task key, a set or nothing at each index key) and answers with an error
//! before anything is written; then it writes. The one write Redis may still refuse, when
//! it is out of memory, is the document's `SET`, so that comes first: Redis decides on
//! that for the whole script, so if the `SET` went through, the rest does too. Of the
//! writes that follow, index removals come before index additions, so even an unforeseen
//! failure would leave only entries that lookups prune (DESIGN decision 17), never a
//! task that a lookup cannot reach.
//!
//! Writes return a status code ([`OK`], [`MISSING`], [`CONFLICT`]) that the store maps to
//! a typed error. The TTL rule for index sets lives in `index_add`: a set lives at least
//! as long as every task it lists, so its expiry is only ever pushed back, and a set
//! listing a task without expiry never expires.
//!
//! `update`, `delete` and the quarantine need the request ids of the document already
//! stored. They find them by scanning its text for `"request_id"` keys, with a full
//! `cjson` decode only when a value has escapes: on the standard workload's tasks the
//! full decode made the update script cost 31 µs of server time per call and the delete
//! script 26 µs; with the scan they cost 20 µs and 13 µs, and the server's single thread
//! is what bounds throughput under concurrency.
//!
//! The scripts compute some index keys from a prefix (the old request ids of an updated
//! task are only known inside the script), so they are for a standalone server or a
//! replicated one, not for Redis Cluster, like the Python original's key layout itself.

use redis::Script;

/// The write was done.
pub(crate) const OK: i64 = 1;
/// `create`: the id is taken. `update`/`delete`: the id is not stored.
pub(crate) const MISSING: i64 = 0;
/// `update` with an expected ETag: the stored document has another one.
pub(crate) const CONFLICT: i64 = 2;

/// Functions shared by the scripts.
const SHARED_FUNCTIONS: &str = r#"
-- The error a write answers with, before it has written anything, when a key it would
-- touch holds another type than it expects.
local function wrong_type(key, found, expected)
  return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. found .. ', expected ' .. expected)
end

-- The error for the first of keys[from..] that is neither a set nor absent, or nil.
local function check_sets(keys, from)
  for i = from, #keys do
    local found = redis.call('TYPE', keys[i])['ok']
    if found ~= 'set' and found ~= 'none' then
      return wrong_type(keys[i], found, 'a request-id set')
    end
  end
  return nil
end

-- The document at a task key: the text, false when there is none, or the error to
-- answer with when the key holds another type.
local function read_document(key)
  local doc = redis.pcall('GET', key)
  if type(doc) == 'table' then
    return nil, wrong_type(key, redis.call('TYPE', key)['ok'], 'a task document')
  end
  return doc, nil
end

-- Adds a task id to a request-id set and keeps the set alive at least as long as the
-- task: a new set gets the TTL, an existing one's expiry is only ever pushed back, and
-- with no TTL ('0') the set is made persistent like the task. The TTL travels as the
-- text the client sent, so a large one never reaches PEXPIRE in exponent notation.
local function index_add(key, task_id, ttl_ms)
  local left = redis.call('PTTL', key)
  redis.call('SADD', key, task_id)
  if ttl_ms == '0' then
    if left >= 0 then redis.call('PERSIST', key) end
  elseif left == -2 or (left >= 0 and left < tonumber(ttl_ms)) then
    redis.call('PEXPIRE', key, ttl_ms)
  end
end

-- Writes a task document with the TTL (seconds, as text; '0': no expiry).
local function set_document(key, doc, ttl)
  if ttl ~= '0' then
    redis.call('SET', key, doc, 'EX', ttl)
  else
    redis.call('SET', key, doc)
  end
end

-- The request ids of a stored document (nil when it cannot be read for them).
--
-- A full cjson decode of a task costs about as much as the rest of an update together,
-- so the ids are found by scanning for "request_id" keys, in C (string.find, plain).
-- That may also pick up a "request_id" key inside opaque content (a tool call's
-- arguments): harmless, as the ids are only used to take this task out of sets it must
-- no longer be in. A value the scan cannot read as it is (an escape, or not a string)
-- sends the whole document through cjson instead.
local function decoded_request_ids(doc)
  local ok, task = pcall(cjson.decode, doc)
  if not ok or type(task) ~= 'table' or type(task.items) ~= 'table' then
    return nil
  end
  local ids = {}
  for _, item in ipairs(task.items) do
    if type(item) == 'table' and type(item.request_id) == 'string' then
      ids[#ids + 1] = item.request_id
    end
  end
  return ids
end

local function request_ids(doc)
  local ids, at = {}, 1
  while true do
    local _, last = string.find(doc, '"request_id"', at, true)
    if not last then return ids end
    local value = string.match(doc, '^%s*:%s*"([^"\\]*)"', last + 1)
    if value then
      ids[#ids + 1] = value
    elseif string.match(doc, '^%s*:', last + 1) then
      return decoded_request_ids(doc)
    end
    at = last + 1
  end
end

-- The first free quarantine key: the base, then base:2, base:3, ... so an earlier
-- quarantined copy is never overwritten.
local function quarantine_key(base)
  if redis.call('EXISTS', base) == 0 then return base end
  local n = 2
  while redis.call('EXISTS', base .. ':' .. n) == 1 do n = n + 1 end
  return base .. ':' .. n
end
"#;

/// KEYS: task key, then the index key of each request id.
/// ARGV: task id, TTL in seconds, TTL in milliseconds, document.
/// Returns OK, or MISSING when the id is taken, whatever the task key holds (nothing
/// changed); an error, with nothing changed, when an index key is not a set.
const CREATE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local bad = check_sets(KEYS, 2)
if bad then return bad end
set_document(KEYS[1], ARGV[4], ARGV[2])
for i = 2, #KEYS do index_add(KEYS[i], ARGV[1], ARGV[3]) end
return 1
"#;

/// KEYS: task key, then the index key of each new request id.
/// ARGV: task id, TTL in seconds, TTL in milliseconds, document, index key prefix,
/// expected ETag ('' = any).
/// Returns OK, MISSING when the id is not stored, CONFLICT when the stored document's
/// SHA-1 is not the expected ETag (nothing changed in either case); an error, with
/// nothing changed, when the task key is not a string or an index key (old or new) is
/// not a set. The old document is replaced whatever it holds (a corrupt one too: update
/// means replace); index entries of an old document that cannot be read are left for
/// lookups to prune.
const UPDATE: &str = r#"
local old, err = read_document(KEYS[1])
if err then return err end
if not old then return 0 end
if ARGV[6] ~= '' and redis.sha1hex(old) ~= ARGV[6] then return 2 end
local keep = {}
for i = 2, #KEYS do keep[KEYS[i]] = true end
local dropped = {}
for _, rid in ipairs(request_ids(old) or {}) do
  local key = ARGV[5] .. rid
  if not keep[key] then dropped[#dropped + 1] = key end
end
local bad = check_sets(KEYS, 2) or check_sets(dropped, 1)
if bad then return bad end
set_document(KEYS[1], ARGV[4], ARGV[2])
for _, key in ipairs(dropped) do redis.call('SREM', key, ARGV[1]) end
for i = 2, #KEYS do index_add(KEYS[i], ARGV[1], ARGV[3]) end
return 1
"#;

/// KEYS: task key. ARGV: task id, index key prefix.
/// Returns OK, or MISSING when the id is not stored; an error, with nothing changed,
/// when the task key is not a string or an index key its document names is not a set.
/// A document that does not decode is deleted all the same; its index entries, unknown,
/// are pruned by later lookups.
const DELETE: &str = r#"
local old, err = read_document(KEYS[1])
if err then return err end
if not old then return 0 end
local dropped = {}
for _, rid in ipairs(request_ids(old) or {}) do dropped[#dropped + 1] = ARGV[2] .. rid end
local bad = check_sets(dropped, 1)
if bad then return bad end
redis.call('DEL', KEYS[1])
for _, key in ipairs(dropped) do redis.call('SREM', key, ARGV[1]) end
return 1
"#;

/// KEYS: index key. ARGV: task key prefix.
/// Returns a flat array: each member's task id followed by its document, or nil when
/// the task is gone (expired or deleted).
const FIND: &str = r#"
local ids = redis.call('SMEMBERS', KEYS[1])
local out = {}
for i, id in ipairs(ids) do
  local doc = redis.pcall('GET', ARGV[1] .. id)
  if type(doc) ~= 'string' then doc = false end
  out[2 * i - 1] = id
  out[2 * i] = doc
end
return out
"#;

/// KEYS: index key. ARGV: task key prefix, then pairs of (task id, SHA-1 of the document
/// that did not hold the request id, or '' when the task was gone).
/// Removes each listed member whose task is still gone or still that document (a member
/// whose task was written since is left alone). Returns how many were removed.
const PRUNE: &str = r#"
local removed = 0
for i = 2, #ARGV, 2 do
  local doc = redis.pcall('GET', ARGV[1] .. ARGV[i])
  if type(doc) ~= 'string' or (ARGV[i + 1] ~= '' and redis.sha1hex(doc) == ARGV[i + 1]) then
    removed = removed + redis.call('SREM', KEYS[1], ARGV[i])
  end
end
return removed
"#;

/// KEYS: task key, quarantine key. ARGV: SHA-1 of the corrupt document read, task id,
/// index key prefix.
/// Moves the document to the first free quarantine key (without expiry) and removes the
/// task from the index sets its items name, if it decodes that far. Returns the key it
/// was moved to, or nil when the task changed (or went) since it was read; an error, with
/// nothing changed, when an index key it names is not a set.
const QUARANTINE: &str = r#"
local doc, err = read_document(KEYS[1])
if err then return err end
if not doc or redis.sha1hex(doc) ~= ARGV[1] then return false end
local dropped = {}
for _, rid in ipairs(request_ids(doc) or {}) do dropped[#dropped + 1] = ARGV[3] .. rid end
local bad = check_sets(dropped, 1)
if bad then return bad end
local target = quarantine_key(KEYS[2])
redis.call('RENAME', KEYS[1], target)
redis.call('PERSIST', target)
for _, key in ipairs(dropped) do redis.call('SREM', key, ARGV[2]) end
return target
"#;

/// The scripts, each with its SHA-1 computed once.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) create: Script,
    pub(crate) update: Script,
    pub(crate) delete: Script,
    pub(crate) find: Script,
    pub(crate) prune: Script,
    pub(crate) quarantine: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        let with_shared = |body: &str| Script::new(&format!("{SHARED_FUNCTIONS}{body}"));
        Scripts {
            create: with_shared(CREATE),
            update: with_shared(UPDATE),
            delete: with_shared(DELETE),
            find: Script::new(FIND),
            prune: Script::new(PRUNE),
            quarantine: with_shared(QUARANTINE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_codes_in_the_lua_text_are_the_rust_constants() {
        assert!(CREATE.contains(&format!("return {MISSING} end")));
        assert!(CREATE.trim_end().ends_with(&format!("return {OK}")));
        assert!(UPDATE.contains(&format!("if not old then return {MISSING} end")));
        assert!(UPDATE.contains(&format!("~= ARGV[6] then return {CONFLICT} end")));
        assert!(UPDATE.trim_end().ends_with(&format!("return {OK}")));
        assert!(DELETE.contains(&format!("if not old then return {MISSING} end")));
        assert!(DELETE.trim_end().ends_with(&format!("return {OK}")));
    }

    #[test]
    fn every_script_has_its_own_hash() {
        let s = Scripts::new();
        let hashes = [
            s.create.get_hash(),
            s.update.get_hash(),
            s.delete.get_hash(),
            s.find.get_hash(),
            s.prune.get_hash(),
            s.quarantine.get_hash(),
        ];
        for (i, a) in hashes.iter().enumerate() {
            assert_eq!(a.len(), 40);
            for b in &hashes[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}

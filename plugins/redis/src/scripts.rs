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
//! a typed error. The TTL rule for index keys (request-id sets, listing indexes, the
//! entries hash) lives in `keep_alive`: a key lives at least as long as every task it
//! holds an entry of, so its expiry is only ever pushed back, and a key holding a task
//! without expiry has none.
//!
//! Why that holds, for every index key K and every task T with an entry in K: a task's
//! TTL is set only by a write script, and the same script runs `keep_alive` on every key
//! it enters T in, which leaves K either without a TTL or with at least T's new one;
//! other writes only push K's expiry back or remove it; removing entries never touches
//! a TTL. The one writer outside this rule is the Python original, which sets its own
//! TTL on a task it rewrites without touching the listing indexes: `reindex` restores
//! the rule for such tasks.
//!
//! Every write also keeps the listing indexes (module `listing` spells their members):
//! the task's entry in `{prefix}:listing:all`, in its session's and in its user's index,
//! and a record in the `{prefix}:listing:entries` hash of where those entries are, so an
//! update that moves a task to another session, a delete or a quarantine removes the old
//! entries without decoding the old document. Entries of tasks that expired or that
//! another writer removed stay behind until a listing, a purge or a reindex meets them.
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
/// `reindex`: a key the task's entries go to holds another type; the task was skipped.
pub(crate) const WRONG_TYPE: i64 = 3;

/// Functions shared by the scripts.
const SHARED_FUNCTIONS: &str = r#"
-- The error a write answers with, before it has written anything, when a key it would
-- touch holds another type than it expects.
local function wrong_type(key, found, expected)
  return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. found .. ', expected ' .. expected)
end

-- The error for the first of keys[from..to] whose type is neither `kind` nor absent, or nil.
local function check_kind(keys, from, to, kind, what)
  for i = from, to do
    local found = redis.call('TYPE', keys[i])['ok']
    if found ~= kind and found ~= 'none' then
      return wrong_type(keys[i], found, what)
    end
  end
  return nil
end

local function check_sets(keys, from)
  return check_kind(keys, from, #keys, 'set', 'a request-id set')
end

local function check_zsets(keys, from, to)
  return check_kind(keys, from, to, 'zset', 'a listing index')
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

-- A task's record in the entries hash: the text, false when there is none, or the error
-- to answer with when the hash key holds another type.
local function read_record(key, task_id)
  local record = redis.pcall('HGET', key, task_id)
  if type(record) == 'table' then
    return nil, wrong_type(key, redis.call('TYPE', key)['ok'], 'a listing entries hash')
  end
  return record, nil
end

-- The member and the three listing keys a record names, or nil for no record (or one
-- that does not decode, which only a hand-made edit produces).
local function recorded_entries(record, listing_prefix)
  if not record then return nil end
  local ok, r = pcall(cjson.decode, record)
  if not ok or type(r) ~= 'table' or type(r[1]) ~= 'string' or type(r[2]) ~= 'string'
      or type(r[3]) ~= 'string' then
    return nil
  end
  return r[1], { listing_prefix .. 'all', listing_prefix .. 'session:' .. r[2],
                 listing_prefix .. 'user:' .. r[3] }
end

-- Keeps an index key alive at least as long as the task just entered in it, given the
-- key's PTTL from before the entry (-2: the key did not exist, -1: no expiry): a new key
-- gets the task's TTL, an existing one's expiry is only ever pushed back, and with no
-- TTL ('0') the key is made persistent like the task. The TTL travels as the text the
-- client sent, so a large one never reaches PEXPIRE in exponent notation.
local function keep_alive(key, left, ttl_ms)
  if ttl_ms == '0' then
    if left >= 0 then redis.call('PERSIST', key) end
  elseif left == -2 or (left >= 0 and left < tonumber(ttl_ms)) then
    redis.call('PEXPIRE', key, ttl_ms)
  end
end

-- Adds a task id to a request-id set, keeping the set alive as long as the task.
local function index_add(key, task_id, ttl_ms)
  local left = redis.call('PTTL', key)
  redis.call('SADD', key, task_id)
  keep_alive(key, left, ttl_ms)
end

-- Adds a listing entry, keeping the index alive as long as the task.
local function zset_add(key, member, ttl_ms)
  local left = redis.call('PTTL', key)
  redis.call('ZADD', key, 0, member)
  keep_alive(key, left, ttl_ms)
end

-- Records where a task's entries are, keeping the hash alive as long as the task.
local function record_set(key, task_id, record, ttl_ms)
  local left = redis.call('PTTL', key)
  redis.call('HSET', key, task_id, record)
  keep_alive(key, left, ttl_ms)
end

-- Removes the entries a record names (member, keys from recorded_entries).
local function entries_remove(member, keys)
  if member then
    for _, key in ipairs(keys) do redis.call('ZREM', key, member) end
  end
end

-- Writes a task document with the TTL (milliseconds, as text; '0': no expiry, which a
-- plain SET also gives a key that had one).
local function set_document(key, doc, ttl_ms)
  if ttl_ms ~= '0' then
    redis.call('SET', key, doc, 'PX', ttl_ms)
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

/// The task id a listing member names (module `listing` spells members), or nil for a
/// member no write made.
const MEMBER_ID: &str = r#"
local function member_id(member)
  local hex = string.match(member, '^%x+:(%x*)~$')
  if not hex or #hex % 2 == 1 then return nil end
  return (string.gsub(hex, '..', function(h) return string.char(255 - tonumber(h, 16)) end))
end
"#;

/// The part every create and update shares once its own checks passed: check the
/// listing keys (the new ones and those the task's record names), then write the
/// document, remove stale entries (request-id ones first, given as `dropped`), and add
/// the new ones. Returns an error (nothing written) or nil (all written).
///
/// KEYS: task key, entries hash, the three listing indexes, then the request-id keys.
/// ARGV: task id, TTL in ms, document, member, record, listing prefix, ...
const WRITE_FUNCTION: &str = r#"
local function write_task(dropped)
  local record, err = read_record(KEYS[2], ARGV[1])
  if err then return err end
  local old_member, old_keys = nil, nil
  if record ~= ARGV[5] then old_member, old_keys = recorded_entries(record, ARGV[6]) end
  local bad = check_sets(KEYS, 6) or check_sets(dropped, 1) or check_zsets(KEYS, 3, 5)
    or (old_member and check_zsets(old_keys, 1, 3))
  if bad then return bad end
  set_document(KEYS[1], ARGV[3], ARGV[2])
  for _, key in ipairs(dropped) do redis.call('SREM', key, ARGV[1]) end
  entries_remove(old_member, old_keys)
  for i = 3, 5 do zset_add(KEYS[i], ARGV[4], ARGV[2]) end
  record_set(KEYS[2], ARGV[1], ARGV[5], ARGV[2])
  for i = 6, #KEYS do index_add(KEYS[i], ARGV[1], ARGV[2]) end
  return nil
end
"#;

/// KEYS: task key, entries hash, listing index of all tasks, of the session, of the
/// user, then the index key of each request id.
/// ARGV: task id, TTL in ms ('0': none), document, listing member, entries record,
/// listing key prefix.
/// Returns OK, or MISSING when the id is taken, whatever the task key holds (nothing
/// changed); an error, with nothing changed, when an index key is not of its type. A
/// record left by an earlier task of this id (one that expired) has its entries removed.
const CREATE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local bad = write_task({})
if bad then return bad end
return 1
"#;

/// KEYS: as for create.
/// ARGV: as for create, then the request-id key prefix, the expected ETag ('' = any).
/// Returns OK, MISSING when the id is not stored, CONFLICT when the stored document's
/// SHA-1 is not the expected ETag (nothing changed in either case); an error, with
/// nothing changed, when the task key is not a string or an index key (old or new) is
/// not of its type. The old document is replaced whatever it holds (a corrupt one too:
/// update means replace); request-id entries of an old document that cannot be read
/// are left for lookups to prune.
const UPDATE: &str = r#"
local old, err = read_document(KEYS[1])
if err then return err end
if not old then return 0 end
if ARGV[8] ~= '' and redis.sha1hex(old) ~= ARGV[8] then return 2 end
local keep = {}
for i = 6, #KEYS do keep[KEYS[i]] = true end
local dropped = {}
for _, rid in ipairs(request_ids(old) or {}) do
  local key = ARGV[7] .. rid
  if not keep[key] then dropped[#dropped + 1] = key end
end
local bad = write_task(dropped)
if bad then return bad end
return 1
"#;

/// KEYS: task key, entries hash. ARGV: task id, request-id key prefix, listing key prefix.
/// Returns OK, or MISSING when the id is not stored; an error, with nothing changed,
/// when the task key is not a string or an index key its document or record names is
/// not of its type. A document that does not decode is deleted all the same; its
/// request-id entries, unknown, are pruned by later lookups.
const DELETE: &str = r#"
local old, err = read_document(KEYS[1])
if err then return err end
if not old then return 0 end
local record, err2 = read_record(KEYS[2], ARGV[1])
if err2 then return err2 end
local member, keys = recorded_entries(record, ARGV[3])
local dropped = {}
for _, rid in ipairs(request_ids(old) or {}) do dropped[#dropped + 1] = ARGV[2] .. rid end
local bad = check_sets(dropped, 1) or (member and check_zsets(keys, 1, 3))
if bad then return bad end
redis.call('DEL', KEYS[1])
for _, key in ipairs(dropped) do redis.call('SREM', key, ARGV[1]) end
entries_remove(member, keys)
if record then redis.call('HDEL', KEYS[2], ARGV[1]) end
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

/// KEYS: task key, quarantine key, entries hash. ARGV: SHA-1 of the corrupt document
/// read, task id, request-id key prefix, listing key prefix.
/// Moves the document to the first free quarantine key (without expiry) and removes the
/// task from the request-id sets its items name, if it decodes that far, and from the
/// listing indexes. Returns the key it was moved to, or nil when the task changed (or
/// went) since it was read; an error, with nothing changed, when an index key it names
/// is not of its type.
const QUARANTINE: &str = r#"
local doc, err = read_document(KEYS[1])
if err then return err end
if not doc or redis.sha1hex(doc) ~= ARGV[1] then return false end
local record, err2 = read_record(KEYS[3], ARGV[2])
if err2 then return err2 end
local member, keys = recorded_entries(record, ARGV[4])
local dropped = {}
for _, rid in ipairs(request_ids(doc) or {}) do dropped[#dropped + 1] = ARGV[3] .. rid end
local bad = check_sets(dropped, 1) or (member and check_zsets(keys, 1, 3))
if bad then return bad end
local target = quarantine_key(KEYS[2])
redis.call('RENAME', KEYS[1], target)
redis.call('PERSIST', target)
for _, key in ipairs(dropped) do redis.call('SREM', key, ARGV[2]) end
entries_remove(member, keys)
if record then redis.call('HDEL', KEYS[3], ARGV[2]) end
return target
"#;

/// KEYS: listing index. ARGV: lower bound ('-' or '(' followed by a member), count,
/// task key prefix.
/// Returns a flat array: each of the next `count` members followed by its task's
/// document, or nil when the task is gone (or the member names no task).
const LIST_PAGE: &str = r#"
local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, ARGV[2])
local out = {}
for i, member in ipairs(members) do
  local id = member_id(member)
  local doc = false
  if id then
    doc = redis.pcall('GET', ARGV[3] .. id)
    if type(doc) ~= 'string' then doc = false end
  end
  out[2 * i - 1] = member
  out[2 * i] = doc
end
return out
"#;

/// Removes the entries of a task that is gone: `member` from `index`, and what its
/// record names, with the record, unless the record is a newer task's of that id.
/// Best effort: a key of another type is skipped.
const PRUNE_FUNCTION: &str = r#"
local function prune_gone(index, entries, member, id, listing_prefix)
  redis.pcall('ZREM', index, member)
  if not id then return end
  local record = redis.pcall('HGET', entries, id)
  if type(record) ~= 'string' then return end
  local old_member, keys = recorded_entries(record, listing_prefix)
  if old_member then
    for _, key in ipairs(keys) do redis.pcall('ZREM', key, old_member) end
  end
  redis.pcall('HDEL', entries, id)
end
"#;

/// KEYS: listing index, entries hash. ARGV: task key prefix, listing key prefix, then
/// triples of (member, task id or '' for a member that names none, SHA-1 of the document
/// that did not fit the entry or '' when the task was gone).
/// Removes each entry whose task is still gone (with everything its record names) or
/// still that document (only this entry: the task is listed where its record says).
/// Returns how many entries were removed from this index.
const PRUNE_LISTING: &str = r#"
local removed = 0
for i = 3, #ARGV, 3 do
  local member, id, sha = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if id == '' then
    removed = removed + redis.call('ZREM', KEYS[1], member)
  else
    local doc = redis.pcall('GET', ARGV[1] .. id)
    if doc == false then
      if redis.call('ZSCORE', KEYS[1], member) then removed = removed + 1 end
      prune_gone(KEYS[1], KEYS[2], member, id, ARGV[2])
    elseif type(doc) == 'string' and sha ~= '' and redis.sha1hex(doc) == sha then
      removed = removed + redis.call('ZREM', KEYS[1], member)
    end
  end
end
return removed
"#;

/// KEYS: listing index of all tasks, entries hash. ARGV: lower bound ('-' or '('
/// followed by a member), count, task key prefix, listing key prefix.
/// Walks the next `count` entries of the index and removes those of tasks that are gone
/// (Redis expired them, or another writer deleted them), with every entry their record
/// names. Returns { the last member walked or '' at the end, entries removed }.
const SWEEP: &str = r#"
local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, ARGV[2])
local removed = 0
for _, member in ipairs(members) do
  local id = member_id(member)
  if not id or redis.call('EXISTS', ARGV[3] .. id) == 0 then
    prune_gone(KEYS[1], KEYS[2], member, id, ARGV[4])
    removed = removed + 1
  end
end
local last = ''
if #members == tonumber(ARGV[2]) then last = members[#members] end
return { last, removed }
"#;

/// KEYS: entries hash, listing index of all tasks. ARGV: task key prefix, request-id key
/// prefix, listing key prefix, then per task: task id, SHA-1 of the document read,
/// member, record, session id, user id, the number of request ids, the request ids.
/// Indexes each task as a write would, if its document is still the one read: entries
/// moved to where the record says, request-id entries added, every index key kept alive
/// as long as the task's key (whose TTL is left as it is). Returns, per task, OK,
/// MISSING when the document changed or went since it was read, or WRONG_TYPE when a
/// key it would touch holds another type (that task is left as it was).
const REINDEX: &str = r#"
local results = {}
local i = 4
while i <= #ARGV do
  local id, sha, member, record = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local session, user, n = ARGV[i + 4], ARGV[i + 5], tonumber(ARGV[i + 6])
  local sets = {}
  for j = 1, n do sets[j] = ARGV[2] .. ARGV[i + 6 + j] end
  i = i + 7 + n
  local task_key = ARGV[1] .. id
  local result = 1
  local doc = redis.pcall('GET', task_key)
  if type(doc) ~= 'string' or redis.sha1hex(doc) ~= sha then
    result = type(doc) == 'table' and 3 or 0
  else
    local lists = { KEYS[2], ARGV[3] .. 'session:' .. session, ARGV[3] .. 'user:' .. user }
    local old, err = read_record(KEYS[1], id)
    local old_member, old_keys = nil, nil
    if not err and old ~= record then old_member, old_keys = recorded_entries(old, ARGV[3]) end
    if err or check_sets(sets, 1) or check_zsets(lists, 1, 3)
        or (old_member and check_zsets(old_keys, 1, 3)) then
      result = 3
    else
      local left = redis.call('PTTL', task_key)
      local ttl_ms = '0'
      if left >= 0 then ttl_ms = string.format('%d', math.max(left, 1)) end
      entries_remove(old_member, old_keys)
      for _, key in ipairs(lists) do zset_add(key, member, ttl_ms) end
      record_set(KEYS[1], id, record, ttl_ms)
      for _, key in ipairs(sets) do index_add(key, id, ttl_ms) end
    end
  end
  results[#results + 1] = result
end
return results
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
    pub(crate) list_page: Script,
    pub(crate) prune_listing: Script,
    pub(crate) sweep: Script,
    pub(crate) reindex: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        let with_shared = |body: &str| Script::new(&format!("{SHARED_FUNCTIONS}{body}"));
        let writing = |body: &str| with_shared(&format!("{WRITE_FUNCTION}{body}"));
        let pruning = |body: &str| with_shared(&format!("{MEMBER_ID}{PRUNE_FUNCTION}{body}"));
        Scripts {
            create: writing(CREATE),
            update: writing(UPDATE),
            delete: with_shared(DELETE),
            find: Script::new(FIND),
            prune: Script::new(PRUNE),
            quarantine: with_shared(QUARANTINE),
            list_page: Script::new(&format!("{MEMBER_ID}{LIST_PAGE}")),
            prune_listing: pruning(PRUNE_LISTING),
            sweep: pruning(SWEEP),
            reindex: with_shared(REINDEX),
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
        assert!(UPDATE.contains(&format!("~= ARGV[8] then return {CONFLICT} end")));
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
            s.list_page.get_hash(),
            s.prune_listing.get_hash(),
            s.sweep.get_hash(),
            s.reindex.get_hash(),
        ];
        for (i, a) in hashes.iter().enumerate() {
            assert_eq!(a.len(), 40);
            for b in &hashes[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}

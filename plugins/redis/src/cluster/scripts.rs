//! The Lua scripts of cluster mode: each touches only the keys it is given in `KEYS`, and
//! those keys share one slot (a task's keys, one request id's index, or one listing
//! index with its marks).
//!
//! Task scripts change a task's document and its records (request ids, listing entries)
//! together; index scripts change one request id's index or one listing index. Which runs when, and why that order is safe
//! although the two kinds cannot be one atomic step, is in the parent module's docs.
//! Each task script reads and checks before it writes (a wrong key type is an error with
//! nothing written), and its first write is the document's `SET`, which Redis refuses,
//! if at all, for the whole script (out of memory).

use redis::Script;

/// Shared by the task scripts.
const TASK_FUNCTIONS: &str = r#"
-- The value at a string key: the text, false when there is none, or the error to answer
-- with when the key holds another type.
local function read_string(key, expected)
  local value = redis.pcall('GET', key)
  if type(value) == 'table' then
    local found = redis.call('TYPE', key)['ok']
    return nil, redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. found .. ', expected ' .. expected)
  end
  return value, nil
end

-- Writes a string with the TTL in milliseconds (as text; '0': no expiry).
local function set_with_ttl(key, value, ttl_ms)
  if ttl_ms ~= '0' then
    redis.call('SET', key, value, 'PX', ttl_ms)
  else
    redis.call('SET', key, value)
  end
end
"#;

/// KEYS: task key, record key, listing record key. ARGV: TTL in milliseconds, document,
/// record, listing record.
/// Returns 1, or 0 when the id is taken (nothing changed); an error, with nothing
/// changed, when a record key is not a string.
const TASK_CREATE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local _, err = read_string(KEYS[2], 'a request-id record')
if err then return err end
local _, err2 = read_string(KEYS[3], 'a listing record')
if err2 then return err2 end
set_with_ttl(KEYS[1], ARGV[2], ARGV[1])
set_with_ttl(KEYS[2], ARGV[3], ARGV[1])
set_with_ttl(KEYS[3], ARGV[4], ARGV[1])
return 1
"#;

/// KEYS: task key, record key, listing record key. ARGV: TTL in milliseconds, document,
/// record, listing record, expected ETag ('' = any).
/// Returns `{1, old record or false, old listing record or false}`, `{0}` when the id
/// is not stored, `{2}` when the stored document's SHA-1 is not the expected ETag
/// (nothing changed in either case); an error, with nothing changed, when a key is not
/// a string.
const TASK_UPDATE: &str = r#"
local old, err = read_string(KEYS[1], 'a task document')
if err then return err end
if not old then return {0} end
if ARGV[5] ~= '' and redis.sha1hex(old) ~= ARGV[5] then return {2} end
local record, err2 = read_string(KEYS[2], 'a request-id record')
if err2 then return err2 end
local listed, err3 = read_string(KEYS[3], 'a listing record')
if err3 then return err3 end
set_with_ttl(KEYS[1], ARGV[2], ARGV[1])
set_with_ttl(KEYS[2], ARGV[3], ARGV[1])
set_with_ttl(KEYS[3], ARGV[4], ARGV[1])
return {1, record, listed}
"#;

/// KEYS: task key, record key, listing record key.
/// Returns `{1, old record or false, old listing record or false}`, or `{0}` when the
/// id is not stored; an error, with nothing changed, when a key is not a string.
const TASK_DELETE: &str = r#"
local old, err = read_string(KEYS[1], 'a task document')
if err then return err end
if not old then return {0} end
local record, err2 = read_string(KEYS[2], 'a request-id record')
if err2 then return err2 end
local listed, err3 = read_string(KEYS[3], 'a listing record')
if err3 then return err3 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return {1, record, listed}
"#;

/// KEYS: task key, quarantine key (named after the document's SHA-1, so an earlier
/// quarantined document is never overwritten by different bytes), record key, listing
/// record key.
/// ARGV: SHA-1 of the corrupt document read.
/// Moves the document to the quarantine key (without expiry) and drops its records; its
/// index entries point nowhere then, which lookups and listings prune. Returns the
/// quarantine key, or false when the task changed (or went) since it was read.
const TASK_QUARANTINE: &str = r#"
local doc, err = read_string(KEYS[1], 'a task document')
if err then return err end
if not doc or redis.sha1hex(doc) ~= ARGV[1] then return false end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PERSIST', KEYS[2])
redis.call('DEL', KEYS[3], KEYS[4])
return KEYS[2]
"#;

/// KEYS: index key. ARGV: task id, TTL in milliseconds.
/// Sets the task's entry to `live` (over a prune's token, which makes that prune leave
/// it) and keeps the index alive at least as long as the task: a new index gets the TTL,
/// an existing one's expiry is only ever pushed back, and with no TTL ('0') it is made
/// persistent. Returns 1.
const INDEX_ADD: &str = r#"
local left = redis.call('PTTL', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], 'live')
if ARGV[2] == '0' then
  if left >= 0 then redis.call('PERSIST', KEYS[1]) end
elseif left == -2 or (left >= 0 and left < tonumber(ARGV[2])) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"#;

/// KEYS: index key. ARGV: task id, the prune's token.
/// Marks the task's entry, if there is one, with the token. Returns 1 when marked, 0
/// when there was no entry.
const INDEX_MARK: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#;

/// KEYS: index key. ARGV: task id, the prune's token, '1' to keep the entry or '0' to
/// remove it.
/// Only if the entry still holds the token (no write re-added it since the mark): keeps
/// it (as `live`) or removes it. Returns 1 when it removed the entry, else 0.
const INDEX_SETTLE: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], 'live')
  return 0
end
return redis.call('HDEL', KEYS[1], ARGV[1])
"#;

/// KEYS: listing index, its marks. ARGV: member, TTL in milliseconds.
/// Adds the member and clears its mark (which makes a prune checking it leave it), and
/// keeps the index alive at least as long as the task, as `INDEX_ADD` does. Returns 1.
const LIST_ADD: &str = r#"
local left = redis.call('PTTL', KEYS[1])
redis.call('ZADD', KEYS[1], 0, ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[2] == '0' then
  if left >= 0 then redis.call('PERSIST', KEYS[1]) end
elseif left == -2 or (left >= 0 and left < tonumber(ARGV[2])) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"#;

/// KEYS: listing index, its marks. ARGV: member, the prune's token, how long marks live
/// at least (milliseconds).
/// Marks the member, if the index holds it, with the token. The marks hash expires
/// (its expiry only ever pushed back): a lost mark only makes a prune keep an entry.
/// Returns 1 when marked, 0 when there was no member.
const LIST_MARK: &str = r#"
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local left = redis.call('PTTL', KEYS[2])
if left == -1 or (left >= 0 and left < tonumber(ARGV[3])) then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
"#;

/// KEYS: listing index, its marks. ARGV: member, the prune's token, '1' to keep the
/// member or '0' to remove it.
/// Only if the member's mark is still the token (no write re-added it since): clears
/// the mark and keeps or removes the member. Returns 1 when it removed it, else 0.
const LIST_SETTLE: &str = r#"
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[3] == '1' then return 0 end
return redis.call('ZREM', KEYS[1], ARGV[1])
"#;

/// The scripts, each with its SHA-1 computed once.
#[derive(Debug)]
pub(crate) struct ClusterScripts {
    pub(crate) create: Script,
    pub(crate) update: Script,
    pub(crate) delete: Script,
    pub(crate) quarantine: Script,
    pub(crate) index_add: Script,
    pub(crate) index_mark: Script,
    pub(crate) index_settle: Script,
    pub(crate) list_add: Script,
    pub(crate) list_mark: Script,
    pub(crate) list_settle: Script,
}

impl ClusterScripts {
    pub(crate) fn new() -> Self {
        let task = |body: &str| Script::new(&format!("{TASK_FUNCTIONS}{body}"));
        ClusterScripts {
            create: task(TASK_CREATE),
            update: task(TASK_UPDATE),
            delete: task(TASK_DELETE),
            quarantine: task(TASK_QUARANTINE),
            index_add: Script::new(INDEX_ADD),
            index_mark: Script::new(INDEX_MARK),
            index_settle: Script::new(INDEX_SETTLE),
            list_add: Script::new(LIST_ADD),
            list_mark: Script::new(LIST_MARK),
            list_settle: Script::new(LIST_SETTLE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_script_builds_a_key_name() {
        // Every key a script touches comes from KEYS: no text is ever joined into a
        // key name inside a script.
        for body in [
            TASK_CREATE,
            TASK_QUARANTINE,
            TASK_UPDATE,
            TASK_DELETE,
            INDEX_ADD,
            INDEX_MARK,
            INDEX_SETTLE,
            LIST_ADD,
            LIST_MARK,
            LIST_SETTLE,
        ] {
            assert!(!body.contains(".."), "{body}");
        }
    }
}

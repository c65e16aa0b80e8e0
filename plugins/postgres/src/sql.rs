//! The SQL text of each operation (pure: no I/O).
//!
//! Every write is one statement, and so one transaction and one round trip: data-
//! modifying `WITH` clauses change a task and its request-id rows together. A task that
//! has expired (`expires_at <= now()`) is invisible to every statement here until a purge
//! deletes it; `create` of its id takes its row over.
//!
//! Parameters of the writes: `$1` task id, `$2` JSON text, `$3` session id, `$4` user
//! id, `$5` status, `$6` `created_at` in microseconds, `$7` retention in microseconds
//! (NULL: never expires), `$8` the distinct request ids; `update_if_match` adds `$9`, the
//! version the caller read.

/// A row that has not expired (for statements over `ta_tasks` unqualified).
const LIVE: &str = "(expires_at IS NULL OR expires_at > now())";

/// The request-id rows of the written task (`w`, which yields one row when the write
/// happened): those it no longer has are deleted, new ones added.
const INDEX_OF_WRITTEN: &str = "
  stale AS (
    DELETE FROM ta_request_ids
    WHERE task_id = $1 AND request_id <> ALL ($8::bytea[]) AND EXISTS (SELECT 1 FROM w)
  ),
  added AS (
    INSERT INTO ta_request_ids (request_id, task_id)
    SELECT r, $1::bytea FROM w, unnest($8::bytea[]) AS r
    ON CONFLICT DO NOTHING
  )";

/// The values every write sets.
const SET_ALL: &str = "json = $2, session_id = $3, user_id = $4, status = $5, created_us = $6,
    version = nextval('ta_task_version'),
    expires_at = now() + $7::bigint * interval '1 microsecond'";

/// `create`: inserts, or takes over the row of an expired task; yields the new version,
/// or no row when a live task holds the id. Racing creates of one id wait on the
/// primary key, and all but the first then find a live task: exactly one wins.
pub(crate) fn create() -> String {
    format!(
        "WITH w AS (
    INSERT INTO ta_tasks AS t (task_id, json, session_id, user_id, status, created_us, version, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, nextval('ta_task_version'),
            now() + $7::bigint * interval '1 microsecond')
    ON CONFLICT (task_id) DO UPDATE SET
        json = EXCLUDED.json, session_id = EXCLUDED.session_id, user_id = EXCLUDED.user_id,
        status = EXCLUDED.status, created_us = EXCLUDED.created_us,
        version = EXCLUDED.version, expires_at = EXCLUDED.expires_at
    WHERE t.expires_at <= now()
    RETURNING version
  ),{INDEX_OF_WRITTEN}
SELECT version FROM w"
    )
}

/// `update`: yields the new version, or no row when no live task has the id.
pub(crate) fn update() -> String {
    format!(
        "WITH w AS (
    UPDATE ta_tasks SET {SET_ALL}
    WHERE task_id = $1 AND {LIVE}
    RETURNING version
  ),{INDEX_OF_WRITTEN}
SELECT version FROM w"
    )
}

/// `update_if_match`: a version-checked `UPDATE`; yields the new version (NULL when
/// nothing was written) and whether a live task has the id (to tell a conflict from a
/// missing task). Under concurrent writers the `version = $9` test is re-checked on the
/// newest row, so of several updates from one version exactly one lands.
pub(crate) fn update_if_match() -> String {
    format!(
        "WITH w AS (
    UPDATE ta_tasks SET {SET_ALL}
    WHERE task_id = $1 AND version = $9 AND {LIVE}
    RETURNING version
  ),{INDEX_OF_WRITTEN}
SELECT (SELECT version FROM w),
       EXISTS (SELECT 1 FROM ta_tasks WHERE task_id = $1 AND {LIVE})"
    )
}

/// `delete`: removes the row (its request ids go with it, by the foreign key) and yields
/// whether it was live; an expired row is removed all the same and counts as missing.
pub(crate) fn delete() -> String {
    format!("DELETE FROM ta_tasks WHERE task_id = $1 RETURNING {LIVE}")
}

/// `load` and `load_with_etag`.
pub(crate) fn get() -> String {
    format!("SELECT json, version FROM ta_tasks WHERE task_id = $1 AND {LIVE}")
}

/// `load_by_request_id`: of the live tasks holding the request id, the first created
/// (ties: the smallest task id in byte order, which `bytea` compares by).
pub(crate) fn find() -> &'static str {
    "SELECT t.task_id, t.json FROM ta_request_ids r
     JOIN ta_tasks t ON t.task_id = r.task_id
     WHERE r.request_id = $1 AND (t.expires_at IS NULL OR t.expires_at > now())
     ORDER BY t.created_us, t.task_id
     LIMIT 1"
}

/// `clear`: removes every row; yields how many were live.
pub(crate) fn clear() -> &'static str {
    "WITH d AS (DELETE FROM ta_tasks RETURNING expires_at)
SELECT count(*) FILTER (WHERE expires_at IS NULL OR expires_at > now()) FROM d"
}

/// One batch of a purge: deletes at most `$1` expired rows, skipping rows another
/// writer holds (a concurrent purge takes others); yields how many.
pub(crate) fn purge_batch() -> &'static str {
    "WITH d AS (
    DELETE FROM ta_tasks WHERE task_id IN (
        SELECT task_id FROM ta_tasks WHERE expires_at <= now()
        LIMIT $1 FOR UPDATE SKIP LOCKED)
    RETURNING 1)
SELECT count(*) FROM d"
}

/// The shape of a listing: which filters it has. Each shape is its own statement, so
/// the planner sees plain equalities (and picks the index of the session, of the user,
/// or the global one) rather than `$n IS NULL OR ...` tests that defeat indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ListShape {
    /// Filtered by session id.
    pub(crate) session: bool,
    /// Filtered by user id.
    pub(crate) user: bool,
    /// Filtered by a set of statuses.
    pub(crate) statuses: bool,
    /// After a cursor's key.
    pub(crate) after: bool,
}

impl ListShape {
    /// The statement: live rows, newest first, ties by task id descending, at most the
    /// last parameter rows. Parameters in order: session, user, statuses, cursor's
    /// `created_us` and task id (each only when the shape has it), limit.
    pub(crate) fn sql(self) -> String {
        if self.statuses && !self.session && !self.user {
            return self.by_status();
        }
        let mut conditions = vec![LIVE.to_owned()];
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if self.session {
            conditions.push(format!("session_id = ${}", next()));
        }
        if self.user {
            conditions.push(format!("user_id = ${}", next()));
        }
        if self.statuses {
            conditions.push(format!("status = ANY (${}::text[])", next()));
        }
        if self.after {
            let (at, id) = (next(), next());
            conditions.push(format!(
                "(created_us, task_id) < (${at}::bigint, ${id}::bytea)"
            ));
        }
        let limit = next();
        format!(
            "SELECT task_id, json FROM ta_tasks WHERE {} ORDER BY created_us DESC, task_id DESC LIMIT ${limit}",
            conditions.join(" AND ")
        )
    }

    /// A listing filtered by statuses alone: for each status, the first rows of its own
    /// range of the status index (`status, created_us DESC, task_id DESC`), then the
    /// newest of those. It reads at most the page size per status, however many tasks
    /// of other statuses there are. Parameters: statuses, the cursor's `created_us` and
    /// task id (with a cursor), limit.
    ///
    /// The status is matched as `>= s AND <= s` and ordered on, not `= s`: from an
    /// equality the planner would drop the status from the order, and could then walk
    /// the global index filtering by status (all of it, for a rare status) when its
    /// statistics say so. Ordered by status first, only the status index gives the order
    /// without sorting, so the plan is the same whatever the statistics.
    fn by_status(self) -> String {
        let (after, limit) = if self.after {
            (
                " AND (t.created_us, t.task_id) < ($2::bigint, $3::bytea)",
                "$4",
            )
        } else {
            ("", "$2")
        };
        format!(
            "SELECT p.task_id, p.json FROM unnest($1::text[]) AS s(status) \
             CROSS JOIN LATERAL (SELECT t.task_id, t.json, t.created_us FROM ta_tasks t \
             WHERE t.status >= s.status AND t.status <= s.status AND {live}{after} \
             ORDER BY t.status, t.created_us DESC, t.task_id DESC LIMIT {limit}) p \
             ORDER BY p.created_us DESC, p.task_id DESC LIMIT {limit}",
            live = LIVE.replace("expires_at", "t.expires_at"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_numbers_its_parameters_in_order() {
        let all = ListShape {
            session: true,
            user: true,
            statuses: true,
            after: true,
        }
        .sql();
        for (n, part) in [
            "session_id = $1",
            "user_id = $2",
            "ANY ($3::text[])",
            "($4::bigint, $5::bytea)",
            "LIMIT $6",
        ]
        .iter()
        .enumerate()
        {
            assert!(all.contains(part), "{n}: {all}");
        }
        let none = ListShape {
            session: false,
            user: false,
            statuses: false,
            after: false,
        }
        .sql();
        assert!(none.ends_with("LIMIT $1"), "{none}");
        assert!(!none.contains("$2"), "{none}");
    }

    #[test]
    fn a_listing_by_status_alone_reads_each_status_range_with_its_parameters_in_order() {
        let first = ListShape {
            session: false,
            user: false,
            statuses: true,
            after: false,
        }
        .sql();
        assert!(first.contains("unnest($1::text[])"), "{first}");
        assert!(first.contains("t.expires_at > now()"), "{first}");
        assert_eq!(first.matches("LIMIT $2").count(), 2, "{first}");
        assert!(!first.contains("$3"), "{first}");
        let next = ListShape {
            session: false,
            user: false,
            statuses: true,
            after: true,
        }
        .sql();
        assert!(next.contains("< ($2::bigint, $3::bytea)"), "{next}");
        assert_eq!(next.matches("LIMIT $4").count(), 2, "{next}");
        // With a session or user, their index is narrower: the plain shape.
        let by_user = ListShape {
            session: false,
            user: true,
            statuses: true,
            after: false,
        }
        .sql();
        assert!(by_user.contains("status = ANY ($2::text[])"), "{by_user}");
    }

    #[test]
    fn every_read_and_update_skips_expired_rows() {
        for sql in [get(), update(), update_if_match(), find().to_owned()] {
            assert!(sql.contains("expires_at > now()"), "{sql}");
        }
    }
}

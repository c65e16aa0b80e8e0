//! The registry of cases: each case's name, description and how to call it.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::CaseResult;
use super::{
    concurrency, contention, crud, documents, etag, index, listing, retention, roundtrip,
    validation,
};
use crate::document_store::DocumentManager;

/// One case of the suite.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// The case's name: the name of its function.
    pub name: &'static str,
    /// What the case checks, in one line.
    pub description: &'static str,
    run: fn(Arc<dyn DocumentManager>) -> BoxFuture<'static, CaseResult>,
}

impl Case {
    /// Runs the case against a store, without the time limit and panic handling of
    /// [`run_case`](super::run_case).
    pub fn run(&self, store: Arc<dyn DocumentManager>) -> BoxFuture<'static, CaseResult> {
        (self.run)(store)
    }
}

/// Builds the registry: `borrowed` cases take `&dyn DocumentManager`, `shared`
/// cases take the `Arc` (they spawn tasks that outlive a borrow).
macro_rules! registry {
    ($($how:ident $module:ident :: $name:ident => $description:literal;)*) => {
        vec![$(registry!(@case $how $module::$name, $description)),*]
    };
    (@case borrowed $module:ident :: $name:ident, $description:literal) => {
        Case {
            name: stringify!($name),
            description: $description,
            run: |store: Arc<dyn DocumentManager>| -> BoxFuture<'static, CaseResult> {
                async move { $module::$name(&*store).await }.boxed()
            },
        }
    };
    (@case shared $module:ident :: $name:ident, $description:literal) => {
        Case {
            name: stringify!($name),
            description: $description,
            run: |store: Arc<dyn DocumentManager>| -> BoxFuture<'static, CaseResult> {
                async move { $module::$name(store).await }.boxed()
            },
        }
    };
}

/// Every case of the suite, in the order [`run_suite`](super::run_suite) runs them.
pub fn cases() -> Vec<Case> {
    registry! {
        borrowed crud::create_then_load_returns_equal_task
            => "create, then load returns an equal task";
        borrowed crud::load_of_unknown_id_is_none => "load of an unknown id is Ok(None)";
        borrowed crud::duplicate_create_fails_and_keeps_first
            => "a second create of an id is AlreadyExists and keeps the first";
        borrowed crud::update_then_load_shows_change
            => "update, then load shows the new status and last_updated";
        borrowed crud::update_of_unknown_id_fails_and_stores_nothing
            => "update of an unknown id is NotFound and stores nothing";
        borrowed crud::delete_then_load_is_none => "delete, then load is None";
        borrowed crud::delete_of_unknown_id_fails => "delete of an unknown id is NotFound";
        borrowed crud::second_delete_fails => "a second delete of an id is NotFound";
        borrowed crud::loaded_task_is_an_independent_value
            => "changing a loaded task changes nothing stored";
        borrowed crud::created_task_is_stored_by_value
            => "the store keeps what create was given, not a later change";
        borrowed crud::task_without_items_is_supported
            => "a task with no items is created, updated, loaded and deleted";
        borrowed crud::health_is_ok => "health() succeeds";
        borrowed crud::clear_removes_every_task
            => "clear() removes every task and request id and the store stays usable";
        borrowed roundtrip::every_item_field_round_trips
            => "tool calls, chat history, images and roles survive create/load";
        borrowed roundtrip::every_status_round_trips
            => "all five statuses survive create/load and update/load";
        borrowed roundtrip::naive_and_offset_timestamps_round_trip
            => "naive and offset timestamps keep their form";
        borrowed roundtrip::unknown_fields_round_trip
            => "fields unknown to the model survive create/load";
        borrowed roundtrip::unicode_ids_round_trip
            => "non-ASCII, emoji, space, slash and colon ids work";
        borrowed roundtrip::key_like_ids_stay_distinct
            => "ids that look like key patterns or prefixes never collide";
        borrowed roundtrip::five_megabyte_task_round_trips
            => "a task with a 5 MB item round-trips exactly";
        borrowed roundtrip::many_items_round_trip
            => "a task with 500 items round-trips and is found by each request id";
        borrowed index::shared_request_id_within_task_finds_it
            => "items sharing one request id find their task, also after one more";
        borrowed index::index_follows_item_changes
            => "after update the task is found by exactly its new request ids";
        borrowed index::delete_removes_request_ids
            => "after delete the task's request ids find nothing";
        borrowed index::mixed_request_ids_find_same_task
            => "items A, A, B: both A and B find the task";
        borrowed index::unknown_request_id_is_none
            => "load_by_request_id of an unknown id is Ok(None)";
        borrowed index::earliest_created_task_wins
            => "of two tasks sharing a request id the earlier created_at wins";
        borrowed index::equal_created_at_smallest_task_id_wins
            => "equal created_at: the smallest task id wins, in either order";
        borrowed index::created_at_compares_in_utc
            => "created_at is compared as UTC instants, naive read as UTC";
        borrowed index::update_dropping_items_drops_their_request_ids
            => "update dropping items drops only their request ids";
        borrowed index::update_of_created_at_changes_winner
            => "update of created_at changes which sharing task wins";
        borrowed index::deleting_one_sharing_task_leaves_the_other
            => "delete of one of two sharing tasks leaves the other found";
        borrowed index::lookup_returns_current_version
            => "load_by_request_id returns the task as last updated";
        borrowed index::duplicate_request_ids_count_once
            => "a request id repeated within one task counts once";
        borrowed index::task_ids_and_request_ids_are_separate
            => "a request id equal to another task's id finds only its holder";
        borrowed etag::load_with_etag_of_unknown_id_is_none
            => "load_with_etag of an unknown id is Ok(None)";
        borrowed etag::load_with_etag_returns_stored_task
            => "load_with_etag returns the same task as load";
        borrowed etag::update_if_match_with_current_etag_succeeds
            => "update_if_match with the current ETag succeeds with a new ETag";
        borrowed etag::update_if_match_with_stale_etag_conflicts
            => "update_if_match with a stale ETag is Conflict and changes nothing";
        borrowed etag::plain_update_changes_etag
            => "update changes the ETag; the old one then conflicts";
        borrowed etag::update_if_match_of_unknown_id_fails
            => "update_if_match of an unknown id is NotFound and stores nothing";
        borrowed etag::update_if_match_after_delete_fails
            => "update_if_match after delete is NotFound";
        borrowed etag::etag_of_recreated_task_differs
            => "an ETag read before delete does not match a recreated, changed task";
        borrowed etag::reads_do_not_change_etag => "reads leave the ETag valid for update_if_match";
        borrowed etag::update_if_match_reindexes
            => "update_if_match moves the request ids like update";
        borrowed validation::empty_task_id_is_invalid
            => "an empty task id is InvalidInput for every operation";
        borrowed validation::over_long_task_id_is_invalid
            => "a task id over 1024 bytes is InvalidInput and stores nothing";
        borrowed validation::ids_of_maximum_length_are_accepted
            => "task and request ids of exactly 1024 bytes work";
        borrowed validation::invalid_request_id_in_create_stores_nothing
            => "create with an empty or long item request id stores nothing";
        borrowed validation::invalid_request_id_argument_is_invalid
            => "load_by_request_id of an empty or long id is InvalidInput";
        borrowed validation::invalid_request_id_in_update_keeps_task
            => "update with an invalid item request id changes nothing";
        borrowed validation::errors_name_operation_and_id
            => "every error names its operation and task id";
        borrowed documents::create_document_then_load
            => "create_document, then load returns the task";
        borrowed documents::load_document_matches_task
            => "load_document returns the task's document";
        borrowed documents::unknown_document_is_none
            => "document loads of unknown ids are Ok(None)";
        borrowed documents::load_document_by_request_id_finds_task
            => "load_document_by_request_id follows the index";
        borrowed documents::document_etag_round_trip
            => "load_document_with_etag and update_document_if_match";
        borrowed documents::update_document_replaces_task
            => "update_document replaces the task and its request ids";
        borrowed documents::update_document_of_unknown_id_fails
            => "update_document of an unknown id is NotFound";
        borrowed documents::create_document_checks_ids_and_duplicates
            => "create_document refuses bad ids and taken task ids";
        shared concurrency::concurrent_creates_of_distinct_ids
            => "100 concurrent creates of distinct ids all land";
        shared concurrency::concurrent_updates_all_persist
            => "50 concurrent updates to Paused all land";
        shared concurrency::concurrent_mixed_operations
            => "concurrent creates, updates, deletes and loads end consistent";
        shared contention::concurrent_creates_of_one_id_have_one_winner
            => "64 concurrent creates of one id: one wins, its task is stored";
        shared concurrency::concurrent_tasks_sharing_request_ids
            => "tasks sharing request ids created concurrently: lookups agree";
        shared concurrency::concurrent_writes_keep_index_consistent
            => "concurrent updates and deletes leave a consistent index";
        shared contention::concurrent_update_if_match_has_one_winner
            => "32 update_if_match with one ETag: exactly one wins";
        shared contention::concurrent_read_modify_write_loses_nothing
            => "64 ETag read-modify-write turns: no update is lost";
        borrowed listing::listing_of_an_empty_session_is_empty
            => "listing a session with no tasks is one empty, last page";
        borrowed listing::listing_is_newest_first_then_by_task_id
            => "listings are newest created first, ties by task id descending";
        borrowed listing::pages_cover_every_task_once
            => "walks with any page size list every task once, in order";
        borrowed listing::summaries_carry_the_task_fields
            => "a summary holds the task's ids, status, times and item count";
        borrowed listing::filters_select_exactly_their_tasks
            => "session, user and status filters list exactly their tasks";
        borrowed listing::listing_follows_updates_and_deletes
            => "listings follow updated sessions, statuses, times, deletes, clear";
        borrowed listing::foreign_cursors_and_sizes_are_refused
            => "edited, cut or foreign cursors and bad sizes are InvalidInput";
        borrowed listing::a_cursor_outlives_the_deletion_of_its_task
            => "a page resumes exactly after a cursor whose task was deleted";
        shared listing::a_walk_is_exact_while_others_write
            => "a walk lists every lasting task once while others write";
    }
}

/// The retention cases, for a store configured with
/// [`suite_policy`](super::retention::suite_policy); see
/// [`run_retention_suite`](super::run_retention_suite).
pub fn retention_cases() -> Vec<Case> {
    registry! {
        borrowed retention::expired_tasks_vanish_from_every_read
            => "an expired task is gone from reads, lookups, listings and writes";
        borrowed retention::unretained_statuses_stay
            => "running, paused and unnamed statuses never expire";
        borrowed retention::a_write_into_running_clears_the_expiry
            => "a write into a status that is not retained clears the expiry";
        borrowed retention::a_write_restarts_the_clock
            => "age counts from the last write";
        borrowed retention::purge_removes_only_what_expired
            => "purge removes what expired, nothing else, and nothing twice";
    }
}

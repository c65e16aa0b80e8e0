//! Frozen copies of earlier interfaces' types, so the host can check a library built
//! against one of them and still load it.
//!
//! Each submodule declares, under the same names and in the same order, the types an
//! interface version exported: abi_stable's layout checker compares type names, fields
//! and function signatures, so a library built then passes the check against its copy
//! here. Never edit a copy; add one when an interface version is superseded.

pub mod v2;

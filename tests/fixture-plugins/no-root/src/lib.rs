//! A shared library with no root module: loadable, but not a plugin.

/// A symbol, so the library is not empty.
#[unsafe(no_mangle)]
pub extern "C" fn ta_fixture_answer() -> i32 {
    42
}

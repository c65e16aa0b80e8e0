//! A shared library whose static initialiser misbehaves: the dynamic loader runs it while
//! opening the file, before any check of the host can look at the library's contents.
//! It aborts the process, or with `TA_FIXTURE_HANG` set, sleeps forever.

/// Run by the dynamic loader when the library is opened (ELF `.init_array`).
extern "C" fn misbehave() {
    if std::env::var_os("TA_FIXTURE_HANG").is_some() {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    std::process::abort();
}

#[used]
#[cfg_attr(any(target_os = "linux", target_os = "android"), link_section = ".init_array")]
#[cfg_attr(target_vendor = "apple", link_section = "__DATA,__mod_init_func")]
static INIT: extern "C" fn() = misbehave;

/// Something to export, so the library is not empty.
#[no_mangle]
pub extern "C" fn ta_fixture_crash_on_load() -> u32 {
    1
}

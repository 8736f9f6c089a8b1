//! libpq and the end of the process.
//!
//! libpq encrypts with OpenSSL and authenticates with Kerberos (GSSAPI),
//! and both libraries free their locks and tables when the process exits
//! (OpenSSL from `atexit`, Kerberos from its finalizers) while other
//! threads may still be inside them. r2d2 opens connections on threads of
//! its own (to keep an idle one ready), so a command that finished while
//! such a thread was mid-handshake died after its work was done and its
//! output written: `keepword client link` ended by SIGSEGV (OpenSSL) or
//! SIGABRT (Kerberos' `k5_mutex_lock` assertion) in 19 of 300 runs on a
//! loaded machine (r2d2#137 and diesel#3441 describe the OpenSSL one).
//!
//! Two remedies. The process stops opening connections and waits for those
//! being opened before it ends ([`before_exit`]), which covers every library
//! libpq uses; and OpenSSL is asked, before its first use, not to register
//! its clean-up at all, which also covers processes that end without asking
//! (test binaries). The kernel frees a process's memory anyway.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Connections being opened, and whether the process is ending.
struct Opening {
    ending: bool,
    in_flight: usize,
}

static OPENING: Mutex<Opening> = Mutex::new(Opening {
    ending: false,
    in_flight: 0,
});
static OPENED: Condvar = Condvar::new();

/// Runs `connect` (a libpq connection being opened) unless the process is
/// ending; `None` if it is.
pub(crate) fn open_unless_ending<T>(connect: impl FnOnce() -> T) -> Option<T> {
    {
        let mut o = OPENING.lock().unwrap_or_else(|e| e.into_inner());
        if o.ending {
            return None;
        }
        o.in_flight += 1;
    }
    // Counted down even if `connect` panics.
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            let mut o = OPENING.lock().unwrap_or_else(|e| e.into_inner());
            o.in_flight -= 1;
            OPENED.notify_all();
        }
    }
    let _done = Done;
    Some(connect())
}

/// Call as the process ends: no connection is opened from now on, and this
/// waits (at most `within`) for those being opened. `false` if some were
/// still being opened when the time ran out (a server that does not answer).
pub fn before_exit(within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut o = OPENING.lock().unwrap_or_else(|e| e.into_inner());
    o.ending = true;
    while o.in_flight > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        o = OPENED
            .wait_timeout(o, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    true
}

/// `OPENSSL_INIT_NO_ATEXIT` (openssl/crypto.h, OpenSSL 1.1.1b and later).
const OPENSSL_INIT_NO_ATEXIT: u64 = 0x0008_0000;

/// Asks the OpenSSL that libpq loaded not to clean up at exit. Call before
/// the first PostgreSQL connection; later calls do nothing. `true` when it
/// was asked and agreed, `false` when this process has no OpenSSL (a libpq
/// built without TLS) or it refused (it was initialised before).
pub(crate) fn keep_tls_through_exit() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(disarm)
}

#[allow(unsafe_code)]
fn disarm() -> bool {
    type InitCrypto = unsafe extern "C" fn(u64, *const libc::c_void) -> libc::c_int;
    // Looked up, not linked: it must be the libcrypto libpq itself loaded,
    // whichever that is, and linking it would add a build dependency.
    // SAFETY: dlsym with the default handle and a NUL-terminated name.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"OPENSSL_init_crypto".as_ptr()) };
    if symbol.is_null() {
        return false;
    }
    // SAFETY: `OPENSSL_init_crypto(uint64_t opts, const OPENSSL_INIT_SETTINGS
    // *settings)` returns int; a null settings pointer is allowed.
    unsafe {
        let init: InitCrypto = std::mem::transmute::<*mut libc::c_void, InitCrypto>(symbol);
        init(OPENSSL_INIT_NO_ATEXIT, std::ptr::null()) == 1
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::Duration;

    use diesel::Connection;
    use diesel::pg::PgConnection;

    /// Set in the child process of the test below.
    const CHILD: &str = "KEEPWORD_TLS_EXIT_CHILD";

    /// Debian's libpq is built with OpenSSL: the symbol is found and the
    /// call accepted. (OpenSSL answers 1 also when it was initialised
    /// before and ignored the flag; the child-process test below is what
    /// shows the process ends cleanly.)
    #[test]
    fn openssl_is_found_and_agrees() {
        assert!(super::keep_tls_through_exit());
        assert!(
            super::keep_tls_through_exit(),
            "a second call answers the same"
        );
    }

    /// A process that ends while other threads keep opening TLS connections
    /// to PostgreSQL ends cleanly. Without the two remedies the same child
    /// died of SIGSEGV or SIGABRT in about one run in five
    /// (`KEEPWORD_EXIT_UNGUARDED=1` runs it so).
    #[test]
    fn a_process_ending_during_tls_handshakes_exits_cleanly() {
        let exe = std::env::current_exe().expect("the test binary");
        for run in 1..=10 {
            let out = Command::new(&exe)
                .args([
                    "--exact",
                    "store::libpq::tests::handshakes_then_exit",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD, "1")
                .output()
                .expect("run the child");
            assert!(
                out.status.success(),
                "run {run}: the child ended {:?}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("tls handshakes: "),
                "run {run}: the child did not get as far as its handshakes"
            );
        }
    }

    #[test]
    #[ignore = "the child of a_process_ending_during_tls_handshakes_exits_cleanly"]
    fn handshakes_then_exit() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let guarded = std::env::var_os("KEEPWORD_EXIT_UNGUARDED").is_none();
        if guarded {
            super::keep_tls_through_exit();
        }
        let admin = std::env::var("KEEPWORD_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let sep = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{sep}sslmode=require");
        // The server must speak TLS, or this proves nothing.
        if let Err(e) = PgConnection::establish(&url) {
            panic!(
                "a TLS connection to the test PostgreSQL ({admin}, sslmode=require) failed: {e}"
            );
        }
        for _ in 0..8 {
            let url = url.clone();
            std::thread::spawn(move || {
                while super::open_unless_ending(|| PgConnection::establish(&url)).is_some() {}
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        println!("tls handshakes: running");
        if guarded {
            assert!(super::before_exit(Duration::from_secs(10)));
        }
        std::process::exit(0);
    }
}

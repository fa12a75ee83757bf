//! Every log line of this test binary, captured: one global `tracing` subscriber at TRACE,
//! writing JSON lines into memory (with `log` records bridged in), so a test can assert that
//! no line holds a credential.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tracing_subscriber::fmt::MakeWriter;

/// The captured bytes, shared by every writer the subscriber makes.
#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Vec<u8>>>);

impl Write for Memory {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Memory {
    type Writer = Memory;

    fn make_writer(&'a self) -> Memory {
        self.clone()
    }
}

static CAPTURE: OnceLock<Memory> = OnceLock::new();

/// Installs the capture (once per process; later calls do nothing).
pub(crate) fn install() {
    CAPTURE.get_or_init(|| {
        let memory = Memory::default();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(memory.clone())
            .try_init()
            .expect("the only global subscriber of this test binary");
        memory
    });
}

/// Everything logged so far, as text.
pub(crate) fn captured() -> String {
    let memory = CAPTURE.get().expect("logs::install() first");
    let bytes = memory.0.lock().unwrap_or_else(PoisonError::into_inner);
    String::from_utf8_lossy(&bytes).into_owned()
}

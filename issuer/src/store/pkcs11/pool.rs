//! A pool of logged-in sessions on one token, so that signatures run side by side: a PKCS#11
//! session runs one operation at a time, and the token runs as many sessions as it allows.

use std::sync::{Condvar, Mutex, PoisonError};

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, Result, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

/// Up to `max` sessions on `slot`, opened when first needed and kept for the next caller.
pub(super) struct SessionPool {
    module: Pkcs11,
    slot: Slot,
    pin: AuthPin,
    max: usize,
    state: Mutex<State>,
    returned: Condvar,
}

struct State {
    idle: Vec<Session>,
    open: usize,
}

/// An error after which a session is not given to anyone again.
fn session_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn
                | RvError::OperationActive
                | RvError::GeneralError,
            _
        )
    )
}

impl SessionPool {
    pub(super) fn new(module: Pkcs11, slot: Slot, pin: AuthPin, max: usize) -> Self {
        SessionPool {
            module,
            slot,
            pin,
            max: max.max(1),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    pub(super) fn slot(&self) -> Slot {
        self.slot
    }

    /// Runs `f` on a session of the pool: an idle one, a new one while fewer than `max` are
    /// open, else the next one returned. A session that failed in a way that may have ended it
    /// (the token was removed, the session closed, the login lost) is closed, and `f` runs
    /// once more on a new session.
    pub(super) fn run<R>(&self, mut f: impl FnMut(&Session) -> Result<R>) -> Result<R> {
        let mut retried = false;
        loop {
            let session = self.take()?;
            let outcome = f(&session);
            match outcome {
                Err(ref e) if session_lost(e) => {
                    self.discard(session);
                    if retried {
                        return outcome;
                    }
                    retried = true;
                }
                _ => {
                    self.give_back(session);
                    return outcome;
                }
            }
        }
    }

    fn take(&self) -> Result<Session> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(session) = state.idle.pop() {
                return Ok(session);
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                let opened = self.open();
                if opened.is_err() {
                    self.forget_one();
                }
                return opened;
            }
            state = (self.returned.wait(state)).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A new read-write session, logged in (the login is the application's: a second session
    /// finds the user already logged in).
    fn open(&self) -> Result<Session> {
        let session = self.module.open_rw_session(self.slot)?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(e),
        }
    }

    fn give_back(&self, session: Session) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.idle.push(session);
        drop(state);
        self.returned.notify_one();
    }

    fn discard(&self, session: Session) {
        drop(session);
        self.forget_one();
    }

    fn forget_one(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.open -= 1;
        drop(state);
        self.returned.notify_one();
    }
}

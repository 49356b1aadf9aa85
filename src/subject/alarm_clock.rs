//! The object's alarm as this instance last set or read it. Shared (an `Rc`) with the schedules
//! that outlive the event that started them: a WebSocket event returns at once when its alarm
//! needs no storage call, and otherwise hands the schedule to a promise (`events`).

use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use worker::worker_sys::DurableObjectState;
use worker::{Date, Result, State};

#[derive(Clone)]
pub struct AlarmClock {
    /// The runtime's `DurableObjectState`, which storage is reached through.
    state: js_sys::Object,
    /// The alarm time last set or read (ms since the epoch); outer None = not known yet.
    at: Rc<Cell<Option<Option<u64>>>>,
}

impl AlarmClock {
    pub fn new(state: js_sys::Object) -> Self {
        AlarmClock { state, at: Rc::default() }
    }

    /// Whether making sure of `wanted` needs storage: the alarm is not known yet, or it is
    /// later than `wanted` (or not set).
    pub fn must_move(&self, wanted: Option<u64>) -> bool {
        let Some(wanted) = wanted else { return false };
        self.at.get().is_none_or(|current| current.is_none_or(|current| wanted < current))
    }

    /// Makes sure an alarm fires no later than `wanted`.
    pub async fn schedule(&self, wanted: Option<u64>) -> Result<()> {
        let Some(wanted) = wanted.filter(|_| self.must_move(wanted)) else { return Ok(()) };
        let storage = State::from(self.state.clone().unchecked_into::<DurableObjectState>()).storage();
        if self.at.get().is_none() {
            let stored = storage.get_alarm().await?.map(|t| t.max(0) as u64);
            // An event that ran while this one waited may have scheduled: its value is newer.
            if self.at.get().is_none() {
                self.at.set(Some(stored));
            }
        }
        if self.must_move(Some(wanted)) {
            // Recorded before the await: an event that runs while the alarm is being set (an
            // alarm handler rescheduling, a publish) must compare against this value, or a later
            // alarm set by a slower event could replace an earlier one. Storage applies the
            // set_alarm calls in the order they are issued.
            self.at.set(Some(Some(wanted)));
            let offset = wanted.saturating_sub(Date::now().as_millis()) as i64;
            storage.set_alarm(offset).await?;
        }
        Ok(())
    }

    /// The alarm fired, so none is pending: returns the time it had been set for, if known.
    pub fn fired(&self) -> Option<u64> {
        self.at.replace(Some(None)).flatten()
    }

    /// Forgets the alarm time, as a restart does (test builds only: see `Subject::forget_memory`).
    #[cfg(feature = "test-hooks")]
    pub fn forget(&self) {
        self.at.set(None);
    }
}

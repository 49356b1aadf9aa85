//! Delivery to one subscriber: where it starts, what may be sent (flow-control window), what an
//! ack changes, and when unacknowledged messages are sent again.
//!
//! The state is small and serializable: the Worker keeps it in the WebSocket's attachment, so
//! it survives the Durable Object hibernating between events. Saving it is not free (it is
//! encoded and handed to the runtime), so it is saved only when something other than `sent`
//! changes ([`Subscription::needs_saving`]): `sent` moves with every delivery, and what a saved
//! copy says about it is only a lower bound ([`Subscription::restored`]).

use crate::error::ProtocolError;
use crate::frame::StartPosition;
use crate::retention::StreamBounds;
use crate::sequence::Seq;
use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;

/// The first sequence a new subscription delivers.
///
/// Without `from`, a durable consumer resumes after its acknowledged position and anything
/// else starts at the oldest retained message. Starts below the oldest retained message are
/// moved up to it (those messages were trimmed). A start by time asks `seek_time` for the
/// first retained message stored at or after it (a storage lookup, hence fallible); when there
/// is none, the subscription starts at the next message published.
pub fn resolve_start<E>(
    from: Option<StartPosition>,
    consumer_acked: Option<Seq>,
    bounds: StreamBounds,
    seek_time: impl FnOnce(u64) -> Result<Option<Seq>, E>,
) -> Result<Seq, E> {
    let start = match from {
        Some(StartPosition::Seq(seq)) => seq,
        Some(StartPosition::First) => bounds.first,
        Some(StartPosition::Last) if !bounds.is_empty() => bounds.last,
        Some(StartPosition::Last) | Some(StartPosition::New) => bounds.last + 1,
        Some(StartPosition::Time(ms)) => seek_time(ms)?.unwrap_or(bounds.last + 1),
        None => consumer_acked.map_or(bounds.first, |acked| acked + 1),
    };
    Ok(start.max(bounds.first))
}

/// One subscriber's delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Durable consumer whose position follows this subscription's acks.
    pub consumer: Option<String>,
    /// Most unacknowledged messages in flight.
    pub window: u32,
    /// Every sequence up to and including this one is acknowledged.
    pub acked: Seq,
    /// The highest sequence sent so far.
    pub sent: Seq,
    /// When the unacknowledged messages are due to be sent again (ms since the epoch).
    pub deadline: Option<u64>,
    /// How many times the unacknowledged messages have been delivered (1 = once).
    pub deliveries: u32,
    /// Acks up to here are accepted even beyond `sent`: set when the state is restored from a
    /// saved copy whose `sent` may be behind what was really sent. Never saved.
    #[serde(skip)]
    pub ack_limit: Seq,
}

/// What to do when a subscription's ack deadline has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redelivery {
    /// Send these again, marked `redelivered`.
    Resend(RangeInclusive<Seq>),
    /// These reached the max-deliver count: tell the subscriber and move past them.
    Skip(RangeInclusive<Seq>),
}

impl Subscription {
    pub fn new(start: Seq, window: u32, consumer: Option<String>) -> Self {
        let before = start.saturating_sub(1);
        Subscription { consumer, window, acked: before, sent: before, deadline: None, deliveries: 1, ack_limit: 0 }
    }

    /// Whether this state differs from the saved copy `saved` in anything but `sent`. Every
    /// change of `acked`, the deadline, the delivery count, the window or the consumer is
    /// saved; advancing `sent` alone is not (see [`Subscription::restored`]).
    pub fn needs_saving(&self, saved: &Subscription) -> bool {
        self.consumer != saved.consumer
            || self.window != saved.window
            || self.acked != saved.acked
            || self.deadline != saved.deadline
            || self.deliveries != saved.deliveries
    }

    /// The state to continue with after the object woke up from a saved copy.
    ///
    /// The saved `acked`, deadline and delivery count are exact. The saved `sent` is only a
    /// lower bound: messages were sent after the last save without saving again. So delivery
    /// resumes after the saved `sent` (anything sent since goes again; subscribers drop what
    /// they already have), the deadline still covers `acked + 1..=sent` for redelivery, and
    /// acks are accepted up to `acked + window`, the most that can have been sent.
    pub fn restored(mut self) -> Self {
        self.sent = self.sent.max(self.acked);
        self.ack_limit = self.acked + u64::from(self.window);
        self
    }

    /// Messages that may be sent now: the next unsent ones up to the newest stored, without
    /// exceeding the window of unacknowledged messages.
    pub fn sendable(&self, bounds: StreamBounds) -> Option<RangeInclusive<Seq>> {
        let from = (self.sent + 1).max(bounds.first);
        let to = bounds.last.min(self.acked + self.window as u64);
        (from <= to).then_some(from..=to)
    }

    /// Whether the subscriber is waiting for exactly the message after `last` (live, not
    /// catching up), so a new publish can go to it straight from memory.
    pub fn is_live_at(&self, last: Seq) -> bool {
        self.sent == last
    }

    /// Notes that everything up to `upto` was sent at `now`.
    pub fn record_sent(&mut self, upto: Seq, now: u64, ack_wait_ms: u64) {
        self.sent = self.sent.max(upto);
        if self.deadline.is_none() && self.sent > self.acked {
            self.deadline = Some(now + ack_wait_ms);
        }
    }

    /// Applies a cumulative ack. Returns whether the acknowledged position moved; an ack at or
    /// below it is a harmless repeat. Acking something never sent is an error (after a
    /// restore, anything up to `ack_limit` may have been sent).
    pub fn ack(&mut self, seq: Seq, now: u64, ack_wait_ms: u64) -> Result<bool, ProtocolError> {
        if seq > self.sent.max(self.ack_limit) {
            return Err(ProtocolError::bad_request(format!(
                "cannot ack {seq}: the last message delivered is {}",
                self.sent
            )));
        }
        if seq <= self.acked {
            return Ok(false);
        }
        self.acked = seq;
        self.sent = self.sent.max(seq);
        self.deliveries = 1;
        self.deadline = (self.sent > self.acked).then_some(now + ack_wait_ms);
        Ok(true)
    }

    /// Moves past messages that were trimmed before they were acknowledged.
    ///
    /// Delivered messages that survived the trim are still unacknowledged: their redelivery
    /// deadline and delivery count stay as they were (only when nothing is left in flight is
    /// the deadline cleared), so they are still resent and eventually skipped.
    pub fn skip_trimmed(&mut self, bounds: StreamBounds) {
        let before_first = bounds.first - 1;
        if self.acked < before_first {
            self.acked = before_first;
            self.sent = self.sent.max(before_first);
            if self.sent <= self.acked {
                self.deliveries = 1;
                self.deadline = None;
            }
        }
    }

    /// Moves the subscription to a new acknowledged position (a consumer reset): what was in
    /// flight is dropped, neither redelivered nor reported skipped, and delivery continues right
    /// after `acked` (again from there after a rewind, past the skipped ones after a move ahead).
    /// Acks are checked exactly again: the old window no longer counts as delivered.
    pub fn reset_to(&mut self, acked: Seq) {
        self.acked = acked;
        self.sent = acked;
        self.deadline = None;
        self.deliveries = 1;
        self.ack_limit = 0;
    }

    pub fn is_due(&self, now: u64) -> bool {
        self.deadline.is_some_and(|deadline| deadline <= now)
    }

    /// Decides what happens when the ack deadline has passed (call only when [`is_due`]).
    ///
    /// [`is_due`]: Subscription::is_due
    pub fn redeliver(&mut self, now: u64, ack_wait_ms: u64, max_deliver: u32) -> Option<Redelivery> {
        if !self.is_due(now) {
            return None;
        }
        if self.sent <= self.acked {
            self.deadline = None;
            return None;
        }
        let range = self.acked + 1..=self.sent;
        if self.deliveries >= max_deliver {
            self.acked = self.sent;
            self.deliveries = 1;
            self.deadline = None;
            return Some(Redelivery::Skip(range));
        }
        self.deliveries += 1;
        self.deadline = Some(now + ack_wait_ms);
        Some(Redelivery::Resend(range))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(first: Seq, last: Seq) -> StreamBounds {
        StreamBounds { first, last }
    }

    /// `resolve_start` for starts that need no lookup.
    fn start(from: Option<StartPosition>, consumer_acked: Option<Seq>, bounds: StreamBounds) -> Seq {
        resolve_start(from, consumer_acked, bounds, |_| -> Result<_, ()> { panic!("no time to seek") }).unwrap()
    }

    #[test]
    fn start_positions() {
        let b = bounds(5, 10);
        assert_eq!(start(Some(StartPosition::Seq(7)), None, b), 7);
        assert_eq!(start(Some(StartPosition::Seq(2)), None, b), 5);
        assert_eq!(start(Some(StartPosition::Seq(0)), None, b), 5);
        assert_eq!(start(Some(StartPosition::Seq(50)), None, b), 50);
        assert_eq!(start(Some(StartPosition::First), None, b), 5);
        assert_eq!(start(Some(StartPosition::Last), None, b), 10);
        assert_eq!(start(Some(StartPosition::New), None, b), 11);
        assert_eq!(start(None, None, b), 5);
        assert_eq!(start(None, Some(8), b), 9);
        assert_eq!(start(None, Some(2), b), 5);
        assert_eq!(start(Some(StartPosition::First), Some(8), b), 5);
    }

    #[test]
    fn start_positions_on_an_empty_subject() {
        let empty = bounds(11, 10);
        assert_eq!(start(Some(StartPosition::Last), None, empty), 11);
        assert_eq!(start(Some(StartPosition::First), None, empty), 11);
        assert_eq!(start(None, None, bounds(1, 0)), 1);
    }

    #[test]
    fn starts_by_time_seek_and_fall_back_to_the_next_message() {
        let b = bounds(5, 10);
        let by_time = |found: Option<Seq>, consumer_acked| {
            resolve_start(Some(StartPosition::Time(1_000)), consumer_acked, b, |ms| {
                assert_eq!(ms, 1_000);
                Ok::<_, ()>(found)
            })
        };
        assert_eq!(by_time(Some(7), None), Ok(7));
        assert_eq!(by_time(Some(7), Some(9)), Ok(7), "an explicit start overrides the consumer's position");
        assert_eq!(by_time(None, None), Ok(11), "nothing that recent: the next message");
        let failed = resolve_start(Some(StartPosition::Time(1)), None, b, |_| Err("storage failed"));
        assert_eq!(failed, Err("storage failed"));
    }

    #[test]
    fn window_bounds_what_is_sent() {
        let mut sub = Subscription::new(1, 3, None);
        assert_eq!(sub.sendable(bounds(1, 0)), None);
        assert_eq!(sub.sendable(bounds(1, 10)), Some(1..=3));
        sub.record_sent(3, 100, 30);
        assert_eq!(sub.sendable(bounds(1, 10)), None);
        assert_eq!(sub.deadline, Some(130));
        assert!(sub.ack(2, 110, 30).unwrap());
        assert_eq!(sub.sendable(bounds(1, 10)), Some(4..=5));
        assert_eq!(sub.deadline, Some(140));
        sub.record_sent(5, 111, 30);
        assert_eq!(sub.deadline, Some(140), "sending more keeps the oldest deadline");
        assert!(sub.ack(5, 120, 30).unwrap());
        assert_eq!(sub.deadline, None);
        assert!(sub.is_live_at(5));
        assert!(!sub.is_live_at(6));
    }

    #[test]
    fn acks_are_cumulative_and_checked() {
        let mut sub = Subscription::new(10, 100, Some("c".into()));
        assert_eq!(sub.acked, 9);
        sub.record_sent(20, 0, 30);
        assert!(!sub.ack(5, 1, 30).unwrap(), "old acks are repeats");
        assert!(sub.ack(20, 1, 30).unwrap());
        assert!(!sub.ack(20, 1, 30).unwrap());
        let e = sub.ack(21, 1, 30).unwrap_err();
        assert!(e.message.contains("cannot ack 21"));
    }

    #[test]
    fn trimmed_messages_are_skipped() {
        let mut sub = Subscription::new(1, 10, None);
        sub.record_sent(4, 0, 30);
        sub.skip_trimmed(bounds(3, 9));
        assert_eq!(sub.acked, 2);
        assert_eq!(sub.sendable(bounds(3, 9)), Some(5..=9));
        sub.skip_trimmed(bounds(8, 9));
        assert_eq!((sub.acked, sub.sent, sub.deadline), (7, 7, None));
        assert_eq!(sub.sendable(bounds(8, 9)), Some(8..=9));
    }

    #[test]
    fn unacked_messages_that_survive_a_trim_keep_their_redelivery() {
        let mut sub = Subscription::new(1, 10, None);
        sub.record_sent(10, 0, 100);
        assert_eq!(sub.redeliver(100, 100, 3), Some(Redelivery::Resend(1..=10)));
        sub.skip_trimmed(bounds(5, 10));
        assert_eq!((sub.acked, sub.sent, sub.deadline, sub.deliveries), (4, 10, Some(200), 2));
        assert_eq!(sub.redeliver(200, 100, 3), Some(Redelivery::Resend(5..=10)));
        assert_eq!(sub.redeliver(300, 100, 3), Some(Redelivery::Skip(5..=10)));
        // Trimming everything that was in flight leaves nothing to redeliver.
        let mut sub = Subscription::new(1, 10, None);
        sub.record_sent(3, 0, 100);
        sub.skip_trimmed(bounds(4, 9));
        assert_eq!((sub.acked, sub.sent, sub.deadline, sub.deliveries), (3, 3, None, 1));
        assert_eq!(sub.redeliver(1_000, 100, 3), None);
    }

    #[test]
    fn unacked_messages_are_resent_then_skipped() {
        let mut sub = Subscription::new(1, 10, None);
        sub.record_sent(3, 0, 100);
        assert_eq!(sub.redeliver(99, 100, 3), None);
        assert_eq!(sub.redeliver(100, 100, 3), Some(Redelivery::Resend(1..=3)));
        assert_eq!((sub.deliveries, sub.deadline), (2, Some(200)));
        assert!(sub.ack(1, 150, 100).unwrap());
        assert_eq!(sub.deliveries, 1, "progress resets the delivery count");
        assert_eq!(sub.redeliver(250, 100, 3), Some(Redelivery::Resend(2..=3)));
        assert_eq!(sub.redeliver(350, 100, 3), Some(Redelivery::Resend(2..=3)));
        assert_eq!(sub.redeliver(450, 100, 3), Some(Redelivery::Skip(2..=3)));
        assert_eq!((sub.acked, sub.deadline), (3, None));
        assert_eq!(sub.redeliver(10_000, 100, 3), None);
    }

    #[test]
    fn a_reset_drops_the_window_and_continues_after_the_new_position() {
        let b = bounds(1, 30);
        // Rewind: 1..=10 in flight, acked up to 4; reset to 2.
        let mut sub = Subscription::new(1, 10, Some("c".into()));
        sub.record_sent(10, 0, 100);
        assert!(sub.ack(4, 1, 100).unwrap());
        sub.reset_to(2);
        assert_eq!((sub.acked, sub.sent, sub.deadline, sub.deliveries), (2, 2, None, 1));
        assert_eq!(sub.sendable(b), Some(3..=12), "3.. again, with a full window");
        assert_eq!(sub.redeliver(10_000, 100, 5), None, "nothing left in flight to redeliver");
        // Ahead: 1..=10 in flight; reset to 20 skips 11..=20 and nothing of the old window stays.
        let mut sub = Subscription::new(1, 10, None).restored();
        sub.record_sent(10, 0, 100);
        sub.reset_to(20);
        assert_eq!(sub.sendable(b), Some(21..=30));
        assert!(sub.ack(25, 1, 100).is_err(), "the window restored from an attachment no longer counts");
        sub.record_sent(30, 2, 100);
        assert!(sub.ack(25, 3, 100).unwrap());
    }

    #[test]
    fn serializes_for_the_socket_attachment() {
        let mut sub = Subscription::new(4, 50, Some("c".into()));
        sub.record_sent(9, 5, 10);
        let back: Subscription = serde_json::from_str(&serde_json::to_string(&sub).unwrap()).unwrap();
        assert_eq!(back, sub);
        let restored = back.restored();
        assert_eq!(restored.ack_limit, 3 + 50);
        let encoded = serde_json::to_string(&restored).unwrap();
        assert!(!encoded.contains("ack_limit"), "never saved: {encoded}");
    }

    #[test]
    fn only_changes_other_than_sent_need_saving() {
        let mut sub = Subscription::new(1, 10, None);
        let saved = sub.clone();
        sub.record_sent(3, 0, 100);
        assert!(sub.needs_saving(&saved), "the first unacked message sets the deadline");
        let saved = sub.clone();
        sub.record_sent(5, 1, 100);
        sub.record_sent(7, 2, 100);
        assert!(!sub.needs_saving(&saved), "more messages in flight: only `sent` moved");
        assert!(sub.ack(4, 3, 100).unwrap());
        assert!(sub.needs_saving(&saved), "acks are saved");
        let saved = sub.clone();
        sub.redeliver(103, 100, 5);
        assert!(sub.needs_saving(&saved), "redeliveries are saved");
        let mut other = sub.clone();
        other.window = 20;
        assert!(other.needs_saving(&sub));
        let mut other = sub.clone();
        other.consumer = Some("c".into());
        assert!(other.needs_saving(&sub));
    }

    #[test]
    fn a_restored_subscription_resends_what_the_saved_copy_does_not_know_was_sent() {
        // Saved while 1..=3 were in flight; 4..=8 were sent afterwards without saving.
        let mut live = Subscription::new(1, 10, None);
        live.record_sent(3, 0, 100);
        let saved = live.clone();
        live.record_sent(8, 1, 100);
        assert!(!live.needs_saving(&saved));

        let mut woken = saved.clone().restored();
        assert_eq!(woken.sendable(bounds(1, 8)), Some(4..=8), "sent again: the subscriber drops repeats");
        assert_eq!(woken.deadline, Some(100), "1..=3 keep their redelivery deadline");
        assert_eq!(woken.redeliver(100, 100, 5), Some(Redelivery::Resend(1..=3)));

        // Acks for what the previous incarnation sent are accepted, up to acked + window.
        let mut woken = saved.clone().restored();
        assert!(woken.ack(8, 5, 100).unwrap());
        assert_eq!((woken.acked, woken.sent, woken.deadline), (8, 8, None));
        assert_eq!(woken.sendable(bounds(1, 9)), Some(9..=9));
        let mut woken = saved.restored();
        assert!(woken.ack(10, 5, 100).unwrap());
        assert!(woken.ack(11, 5, 100).is_err(), "beyond acked + window: never sent");
        // Without a restore the check is exact.
        assert!(live.ack(9, 5, 100).is_err());
    }
}

//! When the subject's Durable Object arms its alarm again from inside the alarm handler.

/// The time to arm the alarm for, from the handler of the alarm that was set for `running` (when
/// known), at `now`, when the next deadline is `wanted`.
///
/// It must be strictly after `running`: with SQLite-backed storage, workerd records an alarm set
/// to the very time of the alarm that is running without telling its scheduler, which then
/// forgets the alarm when the handler returns — the object would never wake again. And it must
/// be after `now`: work the handler found not yet due (its clock can trail the scheduler's by a
/// millisecond) runs on the next alarm.
pub fn rearm_time(wanted: u64, now: u64, running: Option<u64>) -> u64 {
    wanted.max(now + 1).max(running.map_or(0, |running| running + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_deadline_is_kept() {
        assert_eq!(rearm_time(5_000, 1_000, Some(1_000)), 5_000);
        assert_eq!(rearm_time(5_000, 1_000, None), 5_000);
    }

    #[test]
    fn never_the_running_alarm_again() {
        // The handler ran at the alarm's own millisecond and found its work not yet due.
        assert_eq!(rearm_time(1_000, 1_000, Some(1_000)), 1_001);
        // Its clock trailed the scheduler's: still strictly after the running alarm.
        assert_eq!(rearm_time(1_000, 998, Some(1_000)), 1_001);
        assert_eq!(rearm_time(990, 998, None), 999);
    }
}

//! A webhook delivery's life: `PENDING` while the host is trying, then
//! `DELIVERED` or `FAILED` for good. The host reports every attempt
//! (`outbound.DeliveryAttempted`); each report is logged and moves the
//! delivery at most once, forward only.
use mercato_sdk::validate::Invalid;

/// A delivery's state, stored as [`DeliveryStatus::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Queued, or failed with retries left.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Given up: retries exhausted, or the request could never be sent.
    Failed,
}

impl DeliveryStatus {
    /// The stored and serialized form.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "PENDING",
            DeliveryStatus::Delivered => "DELIVERED",
            DeliveryStatus::Failed => "FAILED",
        }
    }

    /// Every status, in the order a delivery moves through them.
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
    ];

    /// The stored form back; `None` for anything else.
    pub fn parse(stored: &str) -> Option<Self> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == stored)
    }

    /// Delivered and failed deliveries never change again.
    pub fn is_final(self) -> bool {
        self != DeliveryStatus::Pending
    }
}

/// What one attempt came to, as logged in `webhook_attempts.outcome`. The
/// first three are the host's report; the last two are the host refusing to
/// queue the request at all, recorded by this plugin as attempt 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Delivered,
    /// Failed; the host will try again.
    Retrying,
    /// Failed; the host has given up.
    Dead,
    /// The operator does not allow this destination (`outbound.allowed_hosts`).
    Denied,
    /// The host found the request malformed.
    Invalid,
}

impl Outcome {
    /// The logged form; the host's three match its report's `outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retrying => "retrying",
            Outcome::Dead => "dead",
            Outcome::Denied => "denied",
            Outcome::Invalid => "invalid",
        }
    }

    /// A host report's `outcome`. Anything else is a broken contract with the
    /// host, refused so the report is retried and then dead-lettered where an
    /// operator sees it.
    pub fn from_report(raw: &str) -> Result<Self, Invalid> {
        [Outcome::Delivered, Outcome::Retrying, Outcome::Dead]
            .into_iter()
            .find(|o| o.as_str() == raw)
            .ok_or_else(|| {
                Invalid::new(
                    "unknown_outcome",
                    format!("delivery report outcome `{raw}` is not delivered, retrying or dead"),
                )
            })
    }

    /// The delivery's status after an attempt with this outcome.
    pub fn status(self) -> DeliveryStatus {
        match self {
            Outcome::Delivered => DeliveryStatus::Delivered,
            Outcome::Retrying => DeliveryStatus::Pending,
            Outcome::Dead | Outcome::Denied | Outcome::Invalid => DeliveryStatus::Failed,
        }
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Its status.
    pub status: DeliveryStatus,
    /// Attempts recorded so far (the highest attempt number seen).
    pub attempts: i64,
}

/// One attempt's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// 1 for the first attempt.
    pub attempt: i64,
    /// What it came to.
    pub outcome: Outcome,
    /// The endpoint's HTTP status, if it answered.
    pub status: Option<i64>,
    /// Why it failed (timeout, refused connection, status, denial…).
    pub error: Option<String>,
}

/// The delivery's new fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// New status.
    pub status: DeliveryStatus,
    /// New attempt count.
    pub attempts: i64,
    /// The latest answer's status.
    pub last_status: Option<i64>,
    /// The latest failure's reason (none once delivered).
    pub last_error: Option<String>,
}

/// A new delivery: queued, nothing tried yet.
pub const QUEUED: Progress = Progress {
    status: DeliveryStatus::Pending,
    attempts: 0,
};

/// How `report` moves a delivery at `progress`: `None` when it must not move
/// it, because the delivery is already final or the report is not newer than
/// what was recorded (a repeated or late report; the log keeps it anyway).
pub fn after(progress: Progress, report: &Report) -> Option<Change> {
    if progress.status.is_final() || report.attempt <= progress.attempts {
        return None;
    }
    let outcome_status = report.outcome.status();
    Some(Change {
        status: outcome_status,
        attempts: report.attempt,
        last_status: report.status,
        last_error: match outcome_status {
            DeliveryStatus::Delivered => None,
            _ => report.error.clone(),
        },
    })
}

/// The report recorded when the host refuses to queue a request (`denied` or
/// `invalid`): attempt 1, no answer, the host's message as the error. No
/// request exists, so no host report can follow it.
pub fn refused(outcome: Outcome, message: &str) -> Report {
    Report {
        attempt: 1,
        outcome,
        status: None,
        error: Some(message.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(attempt: i64, outcome: Outcome, status: Option<i64>, error: Option<&str>) -> Report {
        Report {
            attempt,
            outcome,
            status,
            error: error.map(str::to_owned),
        }
    }

    fn at(status: DeliveryStatus, attempts: i64) -> Progress {
        Progress { status, attempts }
    }

    #[test]
    fn statuses_round_trip_through_their_stored_form() {
        for status in [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ] {
            assert_eq!(DeliveryStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(DeliveryStatus::parse("pending"), None);
        assert!(!DeliveryStatus::Pending.is_final());
        assert!(DeliveryStatus::Delivered.is_final() && DeliveryStatus::Failed.is_final());
    }

    #[test]
    fn host_outcomes_parse_and_unknown_ones_are_refused() {
        assert_eq!(Outcome::from_report("delivered"), Ok(Outcome::Delivered));
        assert_eq!(Outcome::from_report("retrying"), Ok(Outcome::Retrying));
        assert_eq!(Outcome::from_report("dead"), Ok(Outcome::Dead));
        for raw in ["denied", "invalid", "DELIVERED", ""] {
            assert_eq!(
                Outcome::from_report(raw).unwrap_err().code,
                "unknown_outcome"
            );
        }
    }

    #[test]
    fn given_queued_when_delivered_first_time_then_delivered_without_error() {
        assert_eq!(
            after(QUEUED, &report(1, Outcome::Delivered, Some(204), None)),
            Some(Change {
                status: DeliveryStatus::Delivered,
                attempts: 1,
                last_status: Some(204),
                last_error: None,
            })
        );
    }

    #[test]
    fn given_retries_when_reports_arrive_then_pending_until_delivered() {
        let first = after(
            QUEUED,
            &report(1, Outcome::Retrying, Some(503), Some("status 503")),
        );
        assert_eq!(
            first,
            Some(Change {
                status: DeliveryStatus::Pending,
                attempts: 1,
                last_status: Some(503),
                last_error: Some("status 503".into()),
            })
        );
        let second = after(
            at(DeliveryStatus::Pending, 1),
            &report(2, Outcome::Retrying, None, Some("timeout")),
        )
        .unwrap();
        assert_eq!(
            (second.status, second.attempts, second.last_status),
            (DeliveryStatus::Pending, 2, None)
        );
        let third = after(
            at(DeliveryStatus::Pending, 2),
            &report(3, Outcome::Delivered, Some(200), None),
        )
        .unwrap();
        assert_eq!(
            (third.status, third.attempts, third.last_error),
            (DeliveryStatus::Delivered, 3, None)
        );
    }

    #[test]
    fn given_pending_when_dead_then_failed_with_last_answer() {
        assert_eq!(
            after(
                at(DeliveryStatus::Pending, 4),
                &report(5, Outcome::Dead, Some(500), Some("status 500"))
            ),
            Some(Change {
                status: DeliveryStatus::Failed,
                attempts: 5,
                last_status: Some(500),
                last_error: Some("status 500".into()),
            })
        );
    }

    #[test]
    fn given_final_delivery_when_any_report_arrives_then_nothing_moves() {
        for status in [DeliveryStatus::Delivered, DeliveryStatus::Failed] {
            for outcome in [Outcome::Delivered, Outcome::Retrying, Outcome::Dead] {
                assert_eq!(
                    after(at(status, 2), &report(3, outcome, Some(200), None)),
                    None
                );
            }
        }
    }

    #[test]
    fn given_a_report_not_newer_than_recorded_then_nothing_moves() {
        let progress = at(DeliveryStatus::Pending, 2);
        assert_eq!(
            after(progress, &report(2, Outcome::Delivered, Some(200), None)),
            None
        );
        assert_eq!(
            after(progress, &report(1, Outcome::Dead, None, Some("x"))),
            None
        );
    }

    #[test]
    fn a_refused_request_fails_the_delivery_at_attempt_one() {
        let denied = refused(Outcome::Denied, "host hooks.example.com is not allowed");
        assert_eq!(
            after(QUEUED, &denied),
            Some(Change {
                status: DeliveryStatus::Failed,
                attempts: 1,
                last_status: None,
                last_error: Some("host hooks.example.com is not allowed".into()),
            })
        );
        assert_eq!(
            after(QUEUED, &refused(Outcome::Invalid, "bad header")).map(|c| c.status),
            Some(DeliveryStatus::Failed)
        );
        assert_eq!(denied.outcome.as_str(), "denied");
        assert_eq!(Outcome::Invalid.as_str(), "invalid");
    }
}

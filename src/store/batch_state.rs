//! The words a conversion is recorded in: the state of a run ([`BatchState`]) and what became of
//! a manifest row ([`RowOutcome`]). Both are stored, reported and answered as text (`running`,
//! `issued`, …); this is the one place that spells them, so the store, the converter, the HTTP
//! jobs and the command line cannot drift apart. They live in the store, which records and
//! decodes them, as the converter sits above the store (`crate::batch` re-exports them).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Where a conversion run stands (SPEC §9).
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// An HTTP job recorded with its upload, waiting for a slot or for a process to take it up.
    Queued,
    /// Leased by a process that is converting it.
    Running,
    /// Every row has its outcome.
    Done,
    /// Stopped on an error, or refused whole by `--all-or-nothing`; the run's `error` says why.
    Failed,
    /// A folder run whose process died; converting the folder again carries on after it.
    Interrupted,
}

impl BatchState {
    pub const ALL: [BatchState; 5] = [
        BatchState::Queued,
        BatchState::Running,
        BatchState::Done,
        BatchState::Failed,
        BatchState::Interrupted,
    ];

    /// The text stored in `batches.state` and answered by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Queued => "queued",
            BatchState::Running => "running",
            BatchState::Done => "done",
            BatchState::Failed => "failed",
            BatchState::Interrupted => "interrupted",
        }
    }
}

/// What became of one manifest row.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowOutcome {
    /// The row became a new licence.
    Issued,
    /// Its type and number were converted already (by an earlier run, or another process).
    Skipped,
    /// A check refused it; its column and reason say why.
    Rejected,
}

impl RowOutcome {
    pub const ALL: [RowOutcome; 3] = [
        RowOutcome::Issued,
        RowOutcome::Skipped,
        RowOutcome::Rejected,
    ];

    /// The text stored in `batch_rows.outcome`, written in the report and answered by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RowOutcome::Issued => "issued",
            RowOutcome::Skipped => "skipped",
            RowOutcome::Rejected => "rejected",
        }
    }
}

/// Text that names none of a word list's values (a corrupt or foreign database row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {what} (one of {expected})")]
pub struct UnknownWord {
    what: &'static str,
    value: String,
    expected: String,
}

fn parse_word<T: Copy>(
    value: &str,
    what: &'static str,
    all: &[T],
    as_str: impl Fn(T) -> &'static str,
) -> Result<T, UnknownWord> {
    all.iter()
        .copied()
        .find(|word| as_str(*word) == value)
        .ok_or_else(|| UnknownWord {
            what,
            value: value.to_string(),
            expected: all
                .iter()
                .map(|word| as_str(*word))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl FromStr for BatchState {
    type Err = UnknownWord;

    fn from_str(s: &str) -> Result<BatchState, UnknownWord> {
        parse_word(s, "batch state", &BatchState::ALL, BatchState::as_str)
    }
}

impl FromStr for RowOutcome {
    type Err = UnknownWord;

    fn from_str(s: &str) -> Result<RowOutcome, UnknownWord> {
        parse_word(s, "row outcome", &RowOutcome::ALL, RowOutcome::as_str)
    }
}

impl fmt::Display for BatchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RowOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_and_outcome_reads_back_from_its_stored_and_json_text() {
        for state in BatchState::ALL {
            assert_eq!(state.as_str().parse::<BatchState>(), Ok(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        for outcome in RowOutcome::ALL {
            assert_eq!(outcome.as_str().parse::<RowOutcome>(), Ok(outcome));
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{}\"", outcome.as_str()));
        }
    }

    #[test]
    fn unknown_text_is_refused_naming_it_and_the_words_allowed() {
        let refused = "paused".parse::<BatchState>().unwrap_err().to_string();
        assert_eq!(
            refused,
            "\"paused\" is not a batch state (one of queued, running, done, failed, interrupted)"
        );
        let refused = "Issued".parse::<RowOutcome>().unwrap_err().to_string();
        assert!(
            refused.contains("\"Issued\" is not a row outcome"),
            "{refused}"
        );
    }
}

//! `/metrics` in the Prometheus text format: request counts by status class, verification results,
//! and a latency histogram — lock-free counters, cheap enough for the verification hot path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::verify::Outcome;

const OUTCOMES: [Outcome; 11] = [
    Outcome::Valid,
    Outcome::Expired,
    Outcome::NotYetValid,
    Outcome::Superseded,
    Outcome::Suspended,
    Outcome::Revoked,
    Outcome::BadSignature,
    Outcome::UnknownSigner,
    Outcome::SignerRevoked,
    Outcome::Malformed,
    Outcome::Stale,
];

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
];

#[derive(Default)]
pub struct Metrics {
    by_status_class: [AtomicU64; 5],
    verifications: [AtomicU64; 11],
    latency_buckets: [AtomicU64; 10],
    latency_count: AtomicU64,
    latency_micros_sum: AtomicU64,
    panics: AtomicU64,
}

impl Metrics {
    pub fn record_request(&self, status: u16, elapsed: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_status_class[class].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| seconds <= b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_micros_sum
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// A handler panicked (answered 500): always a defect to look into.
    pub fn record_panic(&self) {
        self.panics.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_verification(&self, outcome: Outcome) {
        let i = OUTCOMES
            .iter()
            .position(|&o| o == outcome)
            .expect("every outcome listed");
        self.verifications[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str(
            "# HELP elicence_http_requests_total HTTP requests answered, by status class.\n",
        );
        out.push_str("# TYPE elicence_http_requests_total counter\n");
        for (i, count) in self.by_status_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "elicence_http_requests_total{{class=\"{}xx\"}} {}",
                i + 1,
                get(count)
            );
        }
        out.push_str("# HELP elicence_verifications_total Verifications answered, by result.\n");
        out.push_str("# TYPE elicence_verifications_total counter\n");
        for (outcome, count) in OUTCOMES.iter().zip(&self.verifications) {
            let _ = writeln!(
                out,
                "elicence_verifications_total{{result=\"{}\"}} {}",
                outcome.as_str(),
                get(count)
            );
        }
        out.push_str("# HELP elicence_http_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE elicence_http_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += get(count);
            let _ = writeln!(
                out,
                "elicence_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let total = get(&self.latency_count);
        let _ = writeln!(
            out,
            "elicence_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            out,
            "elicence_http_request_duration_seconds_sum {}",
            get(&self.latency_micros_sum) as f64 / 1e6
        );
        let _ = writeln!(out, "elicence_http_request_duration_seconds_count {total}");
        out.push_str(
            "# HELP elicence_http_panics_total Requests whose handler panicked (answered 500).\n",
        );
        out.push_str("# TYPE elicence_http_panics_total counter\n");
        let _ = writeln!(out, "elicence_http_panics_total {}", get(&self.panics));
        out.push_str("# HELP elicence_conversion_panics_total Conversions (and their workers) stopped by a panic.\n");
        out.push_str("# TYPE elicence_conversion_panics_total counter\n");
        let _ = writeln!(
            out,
            "elicence_conversion_panics_total {}",
            crate::panics::caught()
        );
        out
    }
}

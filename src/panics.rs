//! Panics are bugs, but no input may turn one into a dropped connection, a batch left `running`
//! for ever (an HTTP job whose task died while its lease renewer lived on) or a command that ends
//! without a word or a report. A panic becomes an internal error: its message (which may quote
//! the input) goes to the log only, and it is counted for `/metrics`.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use crate::app::{AppError, Result};

/// Panics caught outside the HTTP handlers (conversions, their workers), since the start.
static CAUGHT: AtomicU64 = AtomicU64::new(0);

/// How many panics [`failing_on_panic`] has caught in this process.
pub fn caught() -> u64 {
    CAUGHT.load(Ordering::Relaxed)
}

/// Runs `work`; a panic inside it is logged (with its message, which may quote the input) and
/// answered with an error that names `what` stopped but not the details.
pub async fn failing_on_panic<T>(what: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
    match CatchPanic(Box::pin(work)).await {
        Ok(result) => result,
        Err(panic) => {
            CAUGHT.fetch_add(1, Ordering::Relaxed);
            tracing::error!(panic = panic_message(&*panic), "{what} stopped on a panic");
            Err(AppError::Internal(format!(
                "{what} stopped on an internal error (a bug, logged); the rows committed before it stand"
            )))
        }
    }
}

/// A future that returns a panic of the future it polls instead of unwinding through its caller.
struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchPanic<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let work = self.0.as_mut();
        // Unwind safety: after a panic the future is dropped, never polled again.
        match std::panic::catch_unwind(AssertUnwindSafe(|| work.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Waits for a worker thread's result. A panic in the worker carries on in the caller, where
/// [`failing_on_panic`] (or the HTTP layer's guard) logs and counts it: a `JoinError` would
/// otherwise put the panic's message, which may quote the input, into an error a client reads.
pub async fn joined<T>(worker: tokio::task::JoinHandle<T>) -> Result<T> {
    match worker.await {
        Ok(value) => Ok(value),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(AppError::Internal(
            "a worker was cancelled: the service is stopping".into(),
        )),
    }
}

/// The text a panic was raised with, if it has one.
pub fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_after_an_await_becomes_an_error_and_results_pass_through() {
        let panicking = failing_on_panic("the conversion", async {
            tokio::task::yield_now().await;
            let bytes = "00000000000000000ä000";
            Ok(bytes[..18].len())
        });
        let error = panicking.await.unwrap_err().to_string();
        assert!(
            error.starts_with("the conversion stopped on an internal error"),
            "{error}"
        );
        assert!(!error.contains("000ä"), "the details go to the log only");

        assert_eq!(failing_on_panic("work", async { Ok(7) }).await.unwrap(), 7);

        // A panic on a worker thread is caught the same way, and counted.
        let before = caught();
        let worker = failing_on_panic("the conversion", async {
            joined(tokio::task::spawn_blocking(|| -> usize {
                panic!("resident 11010519491231002X")
            }))
            .await
        });
        let error = worker.await.unwrap_err();
        assert!(matches!(error, AppError::Internal(_)), "{error:?}");
        assert!(!error.to_string().contains("11010519491231002X"), "{error}");
        assert!(caught() > before);
        let refused = failing_on_panic("work", async {
            Err::<(), _>(AppError::BadInput("no".into()))
        });
        assert_eq!(refused.await.unwrap_err().to_string(), "no");
    }
}

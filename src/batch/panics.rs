//! A panic inside a conversion is a bug, but it must not leave its batch `running` for ever (an
//! HTTP job whose task died while its lease renewer lived on) or end the command without a word
//! or a report: it becomes an error, and the batch fails with a reason like any other error.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::app::{AppError, Result};

/// Runs `work`; a panic inside it is logged (with its message, which may quote the input) and
/// answered with an error that names `what` stopped but not the details.
pub async fn failing_on_panic<T>(what: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
    match CatchPanic(Box::pin(work)).await {
        Ok(result) => result,
        Err(panic) => {
            tracing::error!(panic = panic_message(&*panic), "{what} stopped on a panic");
            Err(AppError::State(format!(
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

fn panic_message(panic: &(dyn Any + Send)) -> &str {
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
        let refused = failing_on_panic("work", async {
            Err::<(), _>(AppError::BadInput("no".into()))
        });
        assert_eq!(refused.await.unwrap_err().to_string(), "no");
    }
}

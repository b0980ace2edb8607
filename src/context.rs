//! Who is asking and under which request id: set by the HTTP layer for the whole handling of
//! a request (a task-local), read where records are written (change events, logs). Work done
//! outside a request (command-line tools, background tasks) has no context.

use std::borrow::Cow;
use std::future::Future;

/// The caller of the current request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The `x-request-id` of the request (the client's, or one the server made up).
    pub request_id: Option<String>,
    /// The principal; `anonymous` until authentication exists.
    pub actor: Cow<'static, str>,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Runs `future` with `context` as the current request.
pub async fn scope<F: Future>(context: RequestContext, future: F) -> F::Output {
    CURRENT.scope(context, future).await
}

/// The current request's context, if any.
pub fn current() -> Option<RequestContext> {
    CURRENT.try_with(Clone::clone).ok()
}

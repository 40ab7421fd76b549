//! One error for every HTTP face — the webhook, the admin API, subscriptions and the console:
//! what kind of failure it is decides the status, here and nowhere else; the message names
//! the thing and the fix. The API answers it as a line of text ([`ResponseError`]), the
//! console as a page with the same status.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::subscriptions::admin::AdminError;

/// What went wrong, as far as the client is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request is wrong: say what to send instead (400).
    BadRequest,
    /// No credentials, or the wrong ones (401).
    Unauthorized,
    /// Not allowed from here (403).
    Forbidden,
    /// No such thing (404).
    NotFound,
    /// Read-only, exists already, changed meanwhile (409).
    Conflict,
    /// Understood, but refused for what it holds: a draft with problems or failing tests (422).
    Unprocessable,
    /// Too many wrong credentials from this address (429).
    Throttled,
    /// Something belroute needs is not there now: the database, a rule set (503).
    Unavailable,
    /// belroute's own notification came back to it (508).
    LoopDetected,
    /// belroute failed (500).
    Internal,
}

impl Kind {
    /// The status for this kind: said once.
    pub fn status(self) -> StatusCode {
        match self {
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Throttled => StatusCode::TOO_MANY_REQUESTS,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::LoopDetected => StatusCode::LOOP_DETECTED,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Credentials were refused: the answer says nothing about why.
    fn says_nothing(self) -> bool {
        matches!(self, Kind::Unauthorized | Kind::Forbidden | Kind::Throttled)
    }
}

/// A request that is not answered as asked: its kind and the sentence that explains it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HttpError {
    pub kind: Kind,
    pub message: String,
    /// `429`: when to try again.
    pub retry_after: Option<Duration>,
    /// What a program needs besides the sentence (the problems of a draft, the version that
    /// is current now): the answer is then a JSON object, `error` and these fields.
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

impl HttpError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        HttpError {
            kind,
            message: message.into(),
            retry_after: None,
            details: None,
        }
    }

    /// The same error answered as JSON, with `details` beside `error`.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        if let serde_json::Value::Object(map) = details {
            self.details = Some(map);
        }
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        HttpError::new(Kind::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        HttpError::new(Kind::NotFound, message)
    }

    /// Too many wrong credentials from this address: wait `wait`.
    pub fn throttled(wait: Duration, message: impl Into<String>) -> Self {
        HttpError {
            retry_after: Some(wait),
            ..HttpError::new(Kind::Throttled, message)
        }
    }

    /// The call log database did not answer (logged here, once).
    pub fn database(error: &sqlx::Error) -> Self {
        tracing::warn!("call log database: {error}");
        HttpError::new(
            Kind::Unavailable,
            "the call log database is unavailable; try again",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl From<sqlx::Error> for HttpError {
    fn from(error: sqlx::Error) -> Self {
        HttpError::database(&error)
    }
}

impl From<crate::storage::StoreError> for HttpError {
    fn from(error: crate::storage::StoreError) -> Self {
        tracing::warn!("call log database: {error}");
        HttpError::new(
            Kind::Unavailable,
            "the call log database is unavailable; try again",
        )
    }
}

impl From<crate::changes::ChangeError> for HttpError {
    fn from(error: crate::changes::ChangeError) -> Self {
        use crate::changes::ChangeError as E;
        let message = error.to_string();
        match error {
            E::BadRequest(_) => HttpError::bad_request(message),
            E::NotFound(_) => HttpError::not_found(message),
            E::Conflict { current, .. } => HttpError::new(Kind::Conflict, message)
                .with_details(serde_json::json!({ "current": current })),
            E::Refused(problems) => HttpError::new(Kind::Unprocessable, message)
                .with_details(serde_json::json!({ "problems": problems })),
            E::FailedTests(tests) => HttpError::new(Kind::Unprocessable, message)
                .with_details(serde_json::json!({ "failed_tests": tests.iter().filter(|t| !t.passed).collect::<Vec<_>>() })),
            E::NotServing(_) => HttpError::new(Kind::Unprocessable, message),
            E::Busy(_) | E::Unavailable(_) => HttpError::new(Kind::Unavailable, message),
        }
    }
}

impl From<AdminError> for HttpError {
    fn from(error: AdminError) -> Self {
        let kind = match &error {
            AdminError::Invalid(_) => Kind::BadRequest,
            AdminError::NotFound(_) => Kind::NotFound,
            AdminError::Conflict(_) => Kind::Conflict,
            AdminError::Unavailable(_) => Kind::Unavailable,
            AdminError::Database(e) => return HttpError::database(e),
            AdminError::NoKey => Kind::Internal,
        };
        HttpError::new(kind, error.to_string())
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    /// The message as one line of text; nothing for refused credentials.
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        response.insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"));
        if let Some(wait) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&super::throttle::retry_after(wait))
        {
            response.insert_header((header::RETRY_AFTER, value));
        }
        if self.kind.says_nothing() {
            response.finish()
        } else if let Some(details) = &self.details {
            let mut body = details.clone();
            body.insert("error".into(), self.message.clone().into());
            response.json(body)
        } else {
            response.body(format!("{}\n", self.message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_status_and_refused_credentials_say_nothing() {
        let answer = HttpError::bad_request("`since` is wrong").error_response();
        assert_eq!(answer.status(), 400);
        let throttled =
            HttpError::throttled(Duration::from_millis(1500), "too many").error_response();
        assert_eq!(throttled.status(), 429);
        assert_eq!(
            throttled
                .headers()
                .get(header::RETRY_AFTER)
                .map(HeaderValue::as_bytes),
            Some(&b"2"[..])
        );
        assert!(Kind::Unauthorized.says_nothing() && !Kind::NotFound.says_nothing());
        let conflict = HttpError::from(AdminError::Conflict("read-only".into()));
        assert_eq!(conflict.status(), 409);
        assert_eq!(conflict.message, "read-only");
    }
}

//! The one error type every handler returns, rendered as `{"detail": "..."}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use costtrace_store::StoreError;

/// The body of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub detail: String,
}

/// Why a request failed; each variant has its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: the id does not exist (or belongs to another tenant).
    #[error("{0}")]
    NotFound(String),
    /// 400: the body is not JSON or not the expected shape.
    #[error("{0}")]
    BadRequest(String),
    /// 422: a parameter is out of range or malformed.
    #[error("{0}")]
    Invalid(String),
    /// 401: no valid API key.
    #[error("{0}")]
    Unauthorized(String),
    /// Any other status with a message (e.g. 413 from a body limit).
    #[error("{1}")]
    Status(StatusCode, String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Status(s, _) => *s,
            ApiError::Store(StoreError::Invalid(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            // Store internals (SQL, connection strings) stay in the log.
            ApiError::Store(StoreError::Invalid(m)) => m.clone(),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "store error");
                "internal storage error; see the server log".to_owned()
            }
            other => other.to_string(),
        };
        let mut resp = (status, Json(ErrorBody { detail })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Turns an axum extractor rejection into an `ApiError` keeping its status.
pub(crate) fn rejection(status: StatusCode, text: String) -> ApiError {
    ApiError::Status(status, text)
}

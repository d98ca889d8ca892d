//! The one error type of Portcullis. Every expected failure is a variant here; `crate::http`
//! is the one place that turns it into an HTTP answer. Internal detail stays in the variant
//! (for the log) and never reaches a client.

use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use std::fmt;

/// What went wrong with a storage or secrets call, kept so that callers can answer correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// A conditional write's condition did not hold.
    ConditionFailed,
    /// A transaction was cancelled (see the reasons carried by the caller).
    TransactionCanceled,
    /// The service throttled us (throughput exceeded, request limit, throttling).
    Throttled,
    /// The service could not be reached, timed out, or answered 5xx.
    Unavailable,
    /// The named resource (table, secret) does not exist.
    NotFound,
    /// Anything else: a bug or a misconfiguration.
    Other,
}

/// A failed call to DynamoDB or Secrets Manager, classified.
#[derive(Debug, Clone)]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub operation: &'static str,
    pub detail: String,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, operation: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            operation,
            detail: detail.into(),
        }
    }

    /// A stored item that does not have the shape we wrote.
    pub fn corrupt(operation: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Other, operation, detail)
    }

    /// Classify any AWS SDK error by its kind and service error code, never by its text.
    pub fn from_sdk<E, R>(
        operation: &'static str,
        err: aws_sdk_dynamodb::error::SdkError<E, R>,
    ) -> Self
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
        R: fmt::Debug,
    {
        use aws_sdk_dynamodb::error::SdkError;
        let kind = match &err {
            SdkError::DispatchFailure(_)
            | SdkError::TimeoutError(_)
            | SdkError::ResponseError(_) => StoreErrorKind::Unavailable,
            SdkError::ConstructionFailure(_) => StoreErrorKind::Other,
            SdkError::ServiceError(service) => classify_code(service.err().code()),
            _ => StoreErrorKind::Other,
        };
        let code = err.code().unwrap_or("-").to_owned();
        let detail = format!(
            "{code}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&err)
        );
        Self::new(kind, operation, detail)
    }
}

fn classify_code(code: Option<&str>) -> StoreErrorKind {
    match code.unwrap_or_default() {
        "ConditionalCheckFailedException" => StoreErrorKind::ConditionFailed,
        "TransactionCanceledException" => StoreErrorKind::TransactionCanceled,
        "ProvisionedThroughputExceededException"
        | "ThrottlingException"
        | "Throttling"
        | "RequestLimitExceeded"
        | "TransactionConflictException"
        | "LimitExceededException" => StoreErrorKind::Throttled,
        "InternalServerError"
        | "InternalServiceError"
        | "InternalFailure"
        | "ServiceUnavailable" => StoreErrorKind::Unavailable,
        "ResourceNotFoundException" => StoreErrorKind::NotFound,
        _ => StoreErrorKind::Other,
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed ({:?}): {}",
            self.operation, self.kind, self.detail
        )
    }
}

impl std::error::Error for StoreError {}

/// Every failure a Portcullis handler can answer with.
#[derive(Debug)]
pub enum Error {
    Validation(String),
    MissingRefreshToken,
    WeakPassword(String),
    InvalidCredentials,
    MissingToken,
    InvalidToken,
    TokenExpired,
    InvalidRefreshToken,
    MissingApiKey,
    InvalidApiKey,
    ApiKeyExpired,
    InsufficientScope,
    /// A cross-site request that lacks the CSRF proof cookie mode asks for.
    CsrfRejected,
    MethodNotAllowed {
        allow: &'static str,
    },
    NotFound,
    PayloadTooLarge {
        limit: usize,
    },
    UnsupportedMediaType,
    AccountLocked {
        retry_after: i64,
    },
    RateLimited {
        retry_after: i64,
    },
    /// The password was right; the account has a second factor: finish at `/auth/login/mfa`
    /// with this challenge.
    MfaRequired {
        challenge: String,
    },
    /// The login challenge is unknown, expired, used or superseded.
    InvalidMfaChallenge,
    /// A wrong, replayed or used TOTP or recovery code.
    InvalidMfaCode,
    /// The second factor is not in the state the request needs (409).
    MfaConflict {
        code: &'static str,
        message: &'static str,
    },
    /// A verification or reset link that is invalid, expired or used.
    InvalidLink,
    /// The password was right, but the address is not verified yet.
    EmailNotVerified,
    /// DynamoDB or Secrets Manager unreachable or throttling: answer 503, fail closed.
    Unavailable(String),
    /// Anything else. The text is for the log only.
    Internal(String),
}

impl Error {
    pub fn validation(msg: impl Into<String>) -> Self {
        Self::Validation(msg.into())
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::Internal(msg.into())
    }

    /// The HTTP status of the contract.
    pub fn status(&self) -> u16 {
        match self {
            Self::Validation(_)
            | Self::MissingRefreshToken
            | Self::WeakPassword(_)
            | Self::InvalidLink => 400,
            Self::InvalidCredentials
            | Self::MissingToken
            | Self::InvalidToken
            | Self::TokenExpired
            | Self::InvalidRefreshToken
            | Self::MissingApiKey
            | Self::InvalidApiKey
            | Self::ApiKeyExpired
            | Self::MfaRequired { .. }
            | Self::InvalidMfaChallenge
            | Self::InvalidMfaCode => 401,
            Self::InsufficientScope | Self::CsrfRejected | Self::EmailNotVerified => 403,
            Self::NotFound => 404,
            Self::MfaConflict { .. } => 409,
            Self::MethodNotAllowed { .. } => 405,
            Self::PayloadTooLarge { .. } => 413,
            Self::UnsupportedMediaType => 415,
            Self::AccountLocked { .. } => 423,
            Self::RateLimited { .. } => 429,
            Self::Internal(_) => 500,
            Self::Unavailable(_) => 503,
        }
    }

    /// The machine-readable code of the contract.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "VALIDATION_ERROR",
            Self::MissingRefreshToken => "MISSING_REFRESH_TOKEN",
            Self::WeakPassword(_) => "WEAK_PASSWORD",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::MissingToken => "MISSING_TOKEN",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::TokenExpired => "TOKEN_EXPIRED",
            Self::InvalidRefreshToken => "INVALID_REFRESH_TOKEN",
            Self::MissingApiKey => "MISSING_API_KEY",
            Self::InvalidApiKey => "INVALID_API_KEY",
            Self::ApiKeyExpired => "API_KEY_EXPIRED",
            Self::InsufficientScope => "INSUFFICIENT_SCOPE",
            Self::CsrfRejected => "CSRF_REJECTED",
            Self::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            Self::NotFound => "NOT_FOUND",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::AccountLocked { .. } => "ACCOUNT_LOCKED",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::MfaRequired { .. } => "MFA_REQUIRED",
            Self::InvalidMfaChallenge => "INVALID_MFA_CHALLENGE",
            Self::InvalidMfaCode => "INVALID_MFA_CODE",
            Self::MfaConflict { code, .. } => code,
            Self::InvalidLink => "INVALID_LINK",
            Self::EmailNotVerified => "EMAIL_NOT_VERIFIED",
            Self::Unavailable(_) => "SERVICE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL_ERROR",
        }
    }

    /// The message a client sees: fixed texts, plus validation detail that we wrote
    /// ourselves (never an echo of the input).
    pub fn public_message(&self) -> String {
        match self {
            Self::Validation(msg) => msg.clone(),
            Self::WeakPassword(msg) => format!("password does not meet the policy: {msg}"),
            Self::MissingRefreshToken => "a refresh token is required".into(),
            Self::InvalidCredentials => "invalid email or password".into(),
            Self::MissingToken => "a bearer token is required".into(),
            Self::InvalidToken => "the bearer token is invalid".into(),
            Self::TokenExpired => "the bearer token has expired".into(),
            Self::InvalidRefreshToken => "the refresh token is invalid, expired or revoked".into(),
            Self::MissingApiKey => "an API key is required in the x-api-key header".into(),
            Self::InvalidApiKey => "the API key is invalid".into(),
            Self::ApiKeyExpired => "the API key has expired".into(),
            Self::InsufficientScope => "the credential lacks the required scope or role".into(),
            Self::CsrfRejected => "the request lacks a valid CSRF token".into(),
            Self::MethodNotAllowed { allow } => format!("method not allowed; use {allow}"),
            Self::NotFound => "not found".into(),
            Self::PayloadTooLarge { limit } => format!("the body exceeds {limit} bytes"),
            Self::UnsupportedMediaType => {
                "the body must be JSON (Content-Type: application/json)".into()
            }
            Self::AccountLocked { .. } => {
                "the account is locked after too many failed logins".into()
            }
            Self::RateLimited { .. } => "too many requests; retry later".into(),
            Self::MfaRequired { .. } => {
                "a second factor is required: send the challenge and a code to /auth/login/mfa"
                    .into()
            }
            Self::InvalidMfaChallenge => "the MFA challenge is invalid, expired or used".into(),
            Self::InvalidMfaCode => "the code is wrong or was already used".into(),
            Self::MfaConflict { message, .. } => (*message).into(),
            Self::InvalidLink => "the link is invalid, expired or already used".into(),
            Self::EmailNotVerified => {
                "confirm your email address first (see the mail we sent)".into()
            }
            Self::Unavailable(_) => "the service is temporarily unavailable".into(),
            Self::Internal(_) => "internal error".into(),
        }
    }

    /// Seconds for `Retry-After`, where the contract asks for one.
    pub fn retry_after(&self) -> Option<i64> {
        match self {
            Self::AccountLocked { retry_after } | Self::RateLimited { retry_after } => {
                Some((*retry_after).max(1))
            }
            Self::Unavailable(_) => Some(1),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(detail) | Self::Internal(detail) => {
                write!(f, "{}: {detail}", self.code())
            }
            other => write!(f, "{}", other.code()),
        }
    }
}

impl std::error::Error for Error {}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err.kind {
            StoreErrorKind::Throttled | StoreErrorKind::Unavailable => {
                Self::Unavailable(err.to_string())
            }
            _ => Self::Internal(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_faults_answer_503_and_bugs_500() {
        for kind in [StoreErrorKind::Throttled, StoreErrorKind::Unavailable] {
            let err: Error = StoreError::new(kind, "GetItem", "x").into();
            assert_eq!((err.status(), err.code()), (503, "SERVICE_UNAVAILABLE"));
        }
        for kind in [
            StoreErrorKind::Other,
            StoreErrorKind::NotFound,
            StoreErrorKind::ConditionFailed,
        ] {
            let err: Error = StoreError::new(kind, "GetItem", "x").into();
            assert_eq!((err.status(), err.code()), (500, "INTERNAL_ERROR"));
        }
    }

    #[test]
    fn service_codes_keep_their_kind() {
        assert_eq!(
            classify_code(Some("ConditionalCheckFailedException")),
            StoreErrorKind::ConditionFailed
        );
        assert_eq!(
            classify_code(Some("ProvisionedThroughputExceededException")),
            StoreErrorKind::Throttled
        );
        assert_eq!(
            classify_code(Some("ThrottlingException")),
            StoreErrorKind::Throttled
        );
        assert_eq!(
            classify_code(Some("TransactionCanceledException")),
            StoreErrorKind::TransactionCanceled
        );
        assert_eq!(
            classify_code(Some("ResourceNotFoundException")),
            StoreErrorKind::NotFound
        );
        assert_eq!(classify_code(None), StoreErrorKind::Other);
    }

    #[test]
    fn internal_detail_never_reaches_the_public_message() {
        let err = Error::internal("secret table name users-prod and a stack");
        assert_eq!(err.public_message(), "internal error");
        let err = Error::Unavailable("dynamodb at 10.0.0.1 refused".into());
        assert!(!err.public_message().contains("10.0.0.1"));
        assert_eq!(err.retry_after(), Some(1));
    }
}

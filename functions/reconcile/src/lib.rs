//! Handler of the `reconcile` function. Not built yet: every event fails with
//! [`HandlerError::NotImplemented`] so that nothing is silently dropped.

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::LambdaEvent;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("the reconcile function is not implemented yet")]
    NotImplemented,
}

/// Lambda reports this as the invocation's error type, so alarms can tell causes apart.
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match error {
            HandlerError::NotImplemented => "NotImplemented",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

pub async fn handle(_event: LambdaEvent<S3Event>) -> Result<(), HandlerError> {
    Err(HandlerError::NotImplemented)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fails_instead_of_pretending() {
        let event = LambdaEvent::new(S3Event::default(), lambda_runtime::Context::default());
        assert!(matches!(
            handle(event).await,
            Err(HandlerError::NotImplemented)
        ));
    }
}

//! Mail through Amazon SES (API v2): the account lifecycle's messages. The client is built on
//! first use from the container's SDK configuration, so only the functions that send mail
//! pay for it (and only they link the SES client).
//!
//! Messages are plain text, rendered here from the configurable product name, sender and
//! link URLs (`MAIL_FROM`, `MAIL_PRODUCT_NAME`, `VERIFY_EMAIL_URL`, `PASSWORD_RESET_URL`);
//! SES stored templates are not used (the local emulator cannot render them).

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use crate::error::{Error, StoreError};

/// One message.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

impl std::fmt::Debug for Mail {
    /// The body carries one-time links: never in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("text", &"<redacted>")
            .finish()
    }
}

/// Sends mail from one sender.
#[derive(Debug, Clone)]
pub struct Mailer {
    client: aws_sdk_sesv2::Client,
    from: String,
}

impl Mailer {
    pub fn new(sdk: &aws_config::SdkConfig, from: &str) -> Self {
        Self {
            client: aws_sdk_sesv2::Client::new(sdk),
            from: from.to_owned(),
        }
    }

    /// Send one message (one SES SendEmail). Any failure is `Unavailable`: the caller answers
    /// 503 and must leave nothing half-done.
    pub async fn send(&self, mail: &Mail) -> Result<(), Error> {
        let content = |text: &str| Content::builder().data(text).charset("UTF-8").build();
        let subject = content(&mail.subject).map_err(|e| Error::internal(e.to_string()))?;
        let text = content(&mail.text).map_err(|e| Error::internal(e.to_string()))?;
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(
                EmailContent::builder()
                    .simple(
                        Message::builder()
                            .subject(subject)
                            .body(Body::builder().text(text).build())
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            // Whatever SES says (throttled, unreachable, a rejected sender), the caller
            // answers 503 and undoes its work: the same for every address.
            .map_err(|e| {
                Error::Unavailable(StoreError::from_sdk("ses.send_email", e).to_string())
            })?;
        Ok(())
    }
}

/// The texts of the account lifecycle's mails.
pub mod texts {
    use super::Mail;

    pub fn verify(product: &str, to: &str, link: &str, hours: i64) -> Mail {
        Mail {
            to: to.to_owned(),
            subject: format!("Confirm your email address for {product}"),
            text: format!(
                "Welcome to {product}.\n\nConfirm your email address by opening this link within {hours} hours:\n\n{link}\n\nIf you did not create an account, ignore this message: nothing happens without the link.\n"
            ),
        }
    }

    pub fn already_registered(product: &str, to: &str, reset_hint: &str) -> Mail {
        Mail {
            to: to.to_owned(),
            subject: format!("Someone tried to register with your address at {product}"),
            text: format!(
                "Someone (perhaps you) tried to create a {product} account with this email address, but it already has one.\n\nIf it was you and you forgot your password, reset it: {reset_hint}\n\nIf it was not you, no action is needed: your account is unchanged.\n"
            ),
        }
    }

    pub fn reset(product: &str, to: &str, link: &str, minutes: i64) -> Mail {
        Mail {
            to: to.to_owned(),
            subject: format!("Reset your {product} password"),
            text: format!(
                "A password reset was requested for your {product} account.\n\nChoose a new password by opening this link within {minutes} minutes (it works once):\n\n{link}\n\nIf you did not ask for this, ignore this message: your password stays as it is.\n"
            ),
        }
    }

    pub fn password_changed(product: &str, to: &str, how: &str) -> Mail {
        Mail {
            to: to.to_owned(),
            subject: format!("Your {product} password was changed"),
            text: format!(
                "The password of your {product} account was {how}, and every session was signed out.\n\nIf this was not you, reset your password now and contact support.\n"
            ),
        }
    }
}

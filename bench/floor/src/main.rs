//! floor: the bare `lambda_runtime` loop, answering each event with the event itself. No
//! logging, configuration, AWS client or network read: `make bench` measures every function's
//! cold start against this one's, in the same run (`bench/harness.py --floor`).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}

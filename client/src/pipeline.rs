//! One `Predict` stream with a bounded number of unanswered requests.
//!
//! The window keeps the server's batcher fed (many images in flight) without
//! letting a large folder pile up in memory on either side: a request is
//! sent only when fewer than `window` are unanswered.

use std::sync::Arc;

use crate::connect::ServerChannel;
use futures_util::{Stream, StreamExt};
use mnist::proto::v1::{PredictRequest, PredictResponse, classifier_client::ClassifierClient};
use tokio::sync::Semaphore;

use crate::ClientError;

/// Streams `requests` to the server and calls `on_response` for each answer,
/// in request order. Returns when every request has been answered.
pub async fn stream_predict<S>(
    client: &mut ClassifierClient<ServerChannel>,
    requests: S,
    window: usize,
    mut on_response: impl FnMut(PredictResponse),
) -> Result<(), ClientError>
where
    S: Stream<Item = PredictRequest> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(window.max(1)));
    let sender_permits = Arc::clone(&permits);
    let outbound = requests.then(move |request| {
        let permits = Arc::clone(&sender_permits);
        async move {
            // Each send takes a permit that the matching response gives back.
            if let Ok(permit) = permits.acquire_owned().await {
                permit.forget();
            }
            request
        }
    });
    let mut inbound = client.predict(outbound).await.map_err(|s| ClientError::call("Predict", s))?.into_inner();
    while let Some(response) = inbound.message().await.map_err(|s| ClientError::call("Predict", s))? {
        permits.add_permits(1);
        on_response(response);
    }
    Ok(())
}

//! The loop behind both gRPC streaming calls (`Predict`, `ModelStreamInfer`):
//! read a message only once there is a place for it, keep at most
//! `max_in_flight_per_stream` messages in the pipeline, answer them in
//! request order.
//!
//! When the window is full, or no place is free, the loop stops reading,
//! so HTTP/2 flow control slows the client instead of the server
//! buffering. A message that cannot be decoded ends the call after the
//! messages read before it are answered.

use std::{future::Future, pin::Pin, sync::Arc};

use futures_util::{
    FutureExt, Stream, StreamExt,
    future::{Fuse, FusedFuture},
    stream::FuturesOrdered,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::{
    core::{Admission, Core, StreamSlot},
    error::ServerError,
    message_limit,
};

/// A streaming call's answers.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Serves one open stream: each message is handed to `handle` with a place
/// for one image (which `handle` may grow), and `handle`'s answers are sent
/// back in order. Per-message failures are `handle`'s to put into its answer.
pub fn serve<Req, Resp, Handle, Answer>(
    core: Arc<Core>,
    slot: StreamSlot,
    mut inbound: Streaming<Req>,
    handle: Handle,
) -> ResponseStream<Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    Handle: Fn(Arc<Core>, Req, Admission) -> Answer + Send + 'static,
    Answer: Future<Output = Resp> + Send + 'static,
{
    let window = core.limits().max_in_flight_per_stream;
    let max_message_bytes = core.limits().decode.max_encoded_bytes;
    let (sender, receiver) = mpsc::channel(window);
    tokio::spawn(async move {
        let mut pending = FuturesOrdered::new();
        let mut inbound_open = true;
        // The place for the next message, taken before reading it. The wait
        // is kept across loop turns so the stream keeps its turn in the
        // admission queue.
        let mut admitted: Option<Admission> = None;
        let mut admitting = std::pin::pin!(Fuse::terminated());
        // Why the client's side ended, when it did not end cleanly.
        let mut inbound_error = None;
        let failure = loop {
            if !inbound_open && pending.is_empty() {
                break inbound_error; // every message read has been answered
            }
            let wants_more = inbound_open && pending.len() < window;
            if wants_more && admitted.is_none() && admitting.is_terminated() {
                admitting.set(Arc::clone(&core).admit_one().fuse());
            }
            tokio::select! {
                biased;
                // The client cancelled or its connection died: tonic drops
                // the response stream, which closes the channel even while
                // no answer is ready to be sent.
                () = sender.closed() => break None,
                // Answer before reading more, so a full window drains first.
                Some(response) = pending.next(), if !pending.is_empty() => {
                    if sender.send(Ok(response)).await.is_err() {
                        break None; // the client went away
                    }
                }
                permit = &mut admitting, if !admitting.is_terminated() => {
                    match permit {
                        Ok(permit) => admitted = Some(permit),
                        Err(error) => break Some(Status::from(error)),
                    }
                }
                message = inbound.message(), if wants_more && admitted.is_some() => match message {
                    Ok(Some(request)) => {
                        // The branch runs only with a place.
                        let Some(place) = admitted.take() else {
                            break Some(Status::internal("stream read a message without admitting it"));
                        };
                        pending.push_back(handle(Arc::clone(&core), request, place));
                    }
                    Ok(None) => inbound_open = false,
                    // A message that cannot be decoded (too large, garbage): answer
                    // the messages read before it, then end the call with its status.
                    // (A client that cancelled is seen by `sender.closed()`.)
                    Err(status) => {
                        inbound_open = false;
                        inbound_error = Some(message_limit::rewrite(status, max_message_bytes));
                    }
                },
            }
        };
        // Dropping `pending` cancels the work still queued; the stream's
        // place is given back before the client can see the stream end, so a
        // client that opens its next stream at once finds it free.
        drop((pending, admitted));
        admitting.set(Fuse::terminated());
        drop(slot);
        if let Some(status) = failure {
            let _ = sender.send(Err(status)).await;
        }
    });
    Box::pin(ReceiverStream::new(receiver))
}

/// Opens a stream for `method`, counting a refusal in the metrics.
pub fn open(core: &Core, protocol: &'static str, method: &'static str) -> Result<StreamSlot, ServerError> {
    core.open_stream().inspect_err(|error| {
        crate::metrics::request(protocol, method, error.code(), std::time::Duration::ZERO, 0);
    })
}

//! The loop behind the gRPC streaming calls (`Predict`, `Read`,
//! `ModelStreamInfer`): read a message, take all the places it needs in one
//! step, work on it, answer in request order; keep at most
//! `max_in_flight_per_stream` messages between reading and answer.
//!
//! Three rules keep one stream from taking the server away from others:
//! - **No waiting while holding.** A message's places (its worst case,
//!   known before any work: `plan`) are taken in one step, and the next
//!   message is not read until this one holds them. The messages in flight
//!   never ask for more, so they finish and give their places back whatever
//!   this stream waits for (the invariant of [`crate::core`]).
//! - **A client that stops reading costs only itself.** Sending an answer
//!   is a branch of the loop like the others (a reserved slot in the answer
//!   channel), never an `await` inside one: while the client does not read,
//!   the work in flight is still polled to its end and gives its places and
//!   decode slots back, its answers wait here (at most the window), and no
//!   new message is read.
//! - **Decode turns per stream.** The stream's messages share one lane of
//!   the decode queue ([`DecodeLane`]), so a lone image of another caller
//!   waits behind one of this stream's photos, not behind all of them.
//! - **A share of the places per stream.** The messages in flight of one
//!   stream hold at most [`STREAM_SHARE`] of the server's places (one
//!   message whatever its size): a `Read` stream, whose photos take a
//!   reading's worst case each, keeps two or so in flight, enough to keep
//!   the cores busy, and leaves the rest to other callers.
//!
//! When the window is full or no place is free, the loop stops reading, so
//! HTTP/2 flow control slows the client instead of the server buffering. A
//! message that cannot be decoded ends the call after the messages read
//! before it are answered. Waiting for places ends at the call's deadline.

use std::{collections::VecDeque, future::Future, pin::Pin, sync::Arc, time::Instant};

use futures_util::{Stream, StreamExt, stream::FuturesOrdered};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::{
    core::{Admission, Core, StreamSlot},
    error::ServerError,
    fair::DecodeLane,
    message_limit,
};

/// A streaming call's answers.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The share of the server's places one stream's messages in flight may
/// hold (one eighth).
pub const STREAM_SHARE: usize = 8;

/// A message read and waiting for its places, with them when it has them.
type Admitting<Plan> = Pin<Box<dyn Future<Output = (Plan, Result<Admission, ServerError>)> + Send>>;

/// Serves one open stream. Each message is first turned by `plan` into
/// what `handle` needs and the places it takes (all it can ever need);
/// `handle` gets it with those places, or with the reason they could not be
/// had (the call's deadline, a request larger than the server), and puts
/// any failure into its answer. Answers go back in order.
pub fn serve<Req, Resp, Plan, Planner, Handle, Answer>(
    core: Arc<Core>,
    slot: StreamSlot,
    mut inbound: Streaming<Req>,
    deadline: Option<Instant>,
    plan: Planner,
    handle: Handle,
) -> ResponseStream<Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
    Plan: Send + 'static,
    Planner: Fn(&Core, Req) -> (Plan, usize) + Send + 'static,
    Handle: Fn(Arc<Core>, Plan, Result<Admission, ServerError>) -> Answer + Send + 'static,
    Answer: Future<Output = Resp> + Send + 'static,
{
    let window = core.limits().max_in_flight_per_stream;
    let share = (core.limits().max_admitted / STREAM_SHARE).max(1);
    let max_message_bytes = core.limits().decode.max_encoded_bytes;
    let (sender, receiver) = mpsc::channel(window);
    let lane = DecodeLane::new();
    tokio::spawn(async move {
        // Messages with their places, being worked on, in request order,
        // and the places they were admitted with.
        let mut pending = FuturesOrdered::new();
        let mut pending_places = 0usize;
        // Answers ready, waiting for the client to take them.
        let mut ready: VecDeque<Resp> = VecDeque::new();
        // The message read last, while it waits for its places.
        let mut admitting: Option<Admitting<Plan>> = None;
        let mut inbound_open = true;
        // Why the client's side ended, when it did not end cleanly.
        let mut inbound_error = None;
        let failure = loop {
            if !inbound_open && admitting.is_none() && pending.is_empty() && ready.is_empty() {
                break inbound_error; // every message read has been answered
            }
            let in_flight = pending.len() + ready.len() + usize::from(admitting.is_some());
            let within_share = pending.is_empty() || pending_places < share;
            let wants_more = inbound_open && admitting.is_none() && in_flight < window && within_share;
            tokio::select! {
                biased;
                // The client cancelled or its connection died: tonic drops
                // the response stream, which closes the channel even while
                // no answer is ready to be sent.
                () = sender.closed() => break None,
                // Answer first, so a full window drains before more is read.
                reserved = sender.reserve(), if !ready.is_empty() => match (reserved, ready.pop_front()) {
                    (Ok(permit), Some(answer)) => permit.send(Ok(answer)),
                    _ => break None, // the client went away
                },
                Some((answer, places)) = pending.next(), if !pending.is_empty() => {
                    pending_places = pending_places.saturating_sub(places);
                    ready.push_back(answer);
                }
                (planned, admission) = next_admitted(&mut admitting), if admitting.is_some() => {
                    admitting = None;
                    let places = admission.as_ref().map_or(0, |admission| admission.num_permits());
                    pending_places = pending_places.saturating_add(places);
                    let answer = lane.scope(handle(Arc::clone(&core), planned, admission));
                    pending.push_back(async move { (answer.await, places) });
                }
                message = inbound.message(), if wants_more => match message {
                    Ok(Some(request)) => {
                        let (planned, places) = plan(&core, request);
                        let core = Arc::clone(&core);
                        admitting = Some(Box::pin(async move {
                            let admission = core.take(places, deadline).await;
                            (planned, admission)
                        }));
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
        drop((pending, admitting, ready));
        drop(slot);
        if let Some(status) = failure {
            let _ = sender.send(Err(status)).await;
        }
    });
    Box::pin(ReceiverStream::new(receiver))
}

/// The message waiting for its places, once it has them (never, when none
/// is waiting: the branch is off then).
async fn next_admitted<Plan>(admitting: &mut Option<Admitting<Plan>>) -> (Plan, Result<Admission, ServerError>) {
    match admitting.as_mut() {
        Some(waiting) => waiting.await,
        None => std::future::pending().await,
    }
}

/// Opens a stream for `method`, counting a refusal in the metrics.
pub fn open(core: &Core, protocol: &'static str, method: &'static str) -> Result<StreamSlot, ServerError> {
    core.open_stream().inspect_err(|error| {
        crate::metrics::request(protocol, method, error.code(), std::time::Duration::ZERO, 0);
    })
}

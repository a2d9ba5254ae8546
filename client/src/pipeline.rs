//! Images through `Predict` streams, spread over every replica, with
//! nothing lost and nothing twice.
//!
//! Each replica runs its own streams, one after the other, each carrying at
//! most [`CHUNK`] images, with at most `window` unanswered at a time (enough
//! to keep the server's batcher fed, without piling a large folder up in
//! memory). Every stream takes its images from one shared queue, so a
//! faster replica takes more: least-loaded by construction.
//!
//! When a replica fails (refused connection, reset, `UNAVAILABLE`, a stream
//! cut while the server drains), the images it was sent and had not
//! answered go back to the front of the queue for the other replicas, and
//! the replica is tried again after a backoff. Per-image `UNAVAILABLE` and
//! `RESOURCE_EXHAUSTED` are retried the same way, after a jittered backoff;
//! every other per-image error (`INVALID_ARGUMENT`...) is an answer. Each
//! request id gets exactly one answer. Short streams also mean that a
//! draining server is left within one chunk.
//!
//! Why not tonic's `balance_list`: it balances calls over one channel that
//! hides which replica answered, and failover must know which images the
//! failed replica held.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::{Stream, StreamExt};
use mnist::proto::v1::{PredictRequest, PredictResponse};
use tokio::sync::{Notify, mpsc};
use tonic::Code;

use mnist::proto::v1::classifier_client::ClassifierClient;

use crate::{
    ClientError,
    connect::{ServerAddress, ServerChannel},
    replicas::RESOLVE_EVERY,
};

/// Images per stream: a replica that starts draining is left within this many.
pub const CHUNK: usize = 512;

/// With no replica answering for this long, the work fails.
const GIVE_UP: Duration = Duration::from_secs(30);

/// Streams `requests` to the servers and calls `on_response` once per
/// request, as answers come (not in request order: each answer carries its
/// request's id). Returns when every request has its answer.
pub async fn stream_predict<S>(
    server: &ServerAddress,
    requests: S,
    window: usize,
    mut on_response: impl FnMut(PredictResponse),
) -> Result<(), ClientError>
where
    S: Stream<Item = PredictRequest> + Send + 'static,
{
    let target = server.target()?;
    let work = Arc::new(Work::new(Box::pin(requests)));
    let (answers, mut answered) = mpsc::unbounded_channel();
    let mut replicas = HashSet::new();
    for url in target.resolve().await? {
        work.add_replica();
        spawn_replica(server.replica(&url, &target), &work, window, &answers);
        replicas.insert(url);
    }
    let mut resolve = tokio::time::interval_at(tokio::time::Instant::now() + RESOLVE_EVERY, RESOLVE_EVERY);
    // A safety net: state changes also wake this loop through `changed`.
    let mut check = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            answer = answered.recv() => match answer {
                Some(response) => on_response(response),
                None => break,
            },
            _ = resolve.tick(), if target.is_dynamic() => {
                // New replicas join. One whose record is gone keeps its place:
                // if it is really gone it fails to connect and takes no work.
                if let Ok(urls) = target.resolve().await {
                    for url in urls {
                        if replicas.insert(url.clone()) {
                            work.add_replica();
                            spawn_replica(server.replica(&url, &target), &work, window, &answers);
                        }
                    }
                }
            }
            () = work.changed.notified() => {}
            _ = check.tick() => {}
        }
        if work.finished() {
            break;
        }
        if let Some(error) = work.failure() {
            work.stop();
            return Err(error);
        }
    }
    work.stop();
    // Answers already queued.
    while let Ok(response) = answered.try_recv() {
        on_response(response);
    }
    Ok(())
}

/// The work shared by every replica.
struct Work {
    state: Mutex<State>,
    /// Wakes the replicas and the caller when work comes back or ends.
    changed: Notify,
}

struct State {
    /// Requests not taken yet, in order (out of the state while read).
    source: Option<Pin<Box<dyn Stream<Item = PredictRequest> + Send>>>,
    /// A replica is reading the next request from `source`.
    reading: bool,
    /// `source` has ended.
    exhausted: bool,
    /// Taken and given back (a failed replica, a retryable answer): first.
    returned: VecDeque<PredictRequest>,
    /// Taken and not answered, over every replica.
    in_flight: usize,
    /// Ids answered: an id is answered once.
    answered: HashSet<String>,
    /// Replicas started, and whether any stream was ever opened.
    replicas: usize,
    connected: bool,
    /// Replicas that failed before any stream was opened anywhere.
    failed_first: usize,
    /// Last time any replica answered anything.
    progress: Instant,
    /// The last reason a replica failed.
    last_error: Option<ClientError>,
    /// That reason holds for every replica (a missing token...): give up.
    fatal: bool,
    /// The caller is done (finished or gave up): replicas stop.
    stopped: bool,
}

impl Work {
    fn new(source: Pin<Box<dyn Stream<Item = PredictRequest> + Send>>) -> Self {
        Self {
            state: Mutex::new(State {
                source: Some(source),
                reading: false,
                exhausted: false,
                returned: VecDeque::new(),
                in_flight: 0,
                answered: HashSet::new(),
                replicas: 0,
                connected: false,
                failed_first: 0,
                progress: Instant::now(),
                last_error: None,
                fatal: false,
                stopped: false,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn add_replica(&self) {
        self.lock().replicas += 1;
    }

    /// The next request to send, if one is available now (`None` also while
    /// another replica reads the source: wait for `changed`). Safe to
    /// cancel: a read cut short puts the source back.
    async fn take(&self) -> Option<PredictRequest> {
        let source = {
            let mut state = self.lock();
            if let Some(request) = state.returned.pop_front() {
                state.in_flight += 1;
                return Some(request);
            }
            if state.reading || state.stopped {
                return None;
            }
            let source = state.source.take()?;
            state.reading = true;
            source
        };
        // Read without holding the lock (reading may decode a file).
        let mut reading = Reading { work: self, source: Some(source) };
        let next = match reading.source.as_mut() {
            Some(source) => source.next().await,
            None => None,
        };
        let source = reading.source.take();
        let mut state = self.lock();
        state.reading = false;
        match (&next, source) {
            (Some(_), source) => {
                state.source = source;
                state.in_flight += 1;
            }
            (None, _) => state.exhausted = true,
        }
        drop(state);
        self.changed.notify_waiters();
        next
    }

    /// Gives taken requests back, to be sent again first.
    fn give_back(&self, requests: impl IntoIterator<Item = PredictRequest>) {
        let mut state = self.lock();
        for request in requests {
            state.in_flight -= 1;
            if !state.answered.contains(&request.id) {
                state.returned.push_back(request);
            }
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// Hands an answer to the caller, unless its id was answered already.
    /// Under the lock, so that the caller never sees the work finished
    /// before the last answer is in its channel.
    fn answer(&self, response: PredictResponse, answers: &mpsc::UnboundedSender<PredictResponse>) -> bool {
        let mut state = self.lock();
        let first = state.answered.insert(response.id.clone());
        if first {
            let _ = answers.send(response);
        }
        state.in_flight -= 1;
        state.progress = Instant::now();
        drop(state);
        self.changed.notify_waiters();
        first
    }

    fn connected(&self) {
        let mut state = self.lock();
        if !state.connected {
            state.connected = true;
            state.progress = Instant::now();
        }
    }

    fn failed(&self, error: ClientError, before_connecting: bool) {
        let mut state = self.lock();
        if before_connecting && !state.connected {
            state.failed_first += 1;
        }
        // Another replica would refuse the same way: no point retrying.
        if let ClientError::Call { code, .. } = &error {
            state.fatal |= matches!(
                code,
                Code::Unauthenticated
                    | Code::PermissionDenied
                    | Code::InvalidArgument
                    | Code::Unimplemented
                    | Code::FailedPrecondition
                    | Code::NotFound
            );
        }
        state.last_error = Some(error);
        drop(state);
        self.changed.notify_waiters();
    }

    /// Nothing left to send and nothing unanswered.
    fn finished(&self) -> bool {
        let state = self.lock();
        state.exhausted && state.returned.is_empty() && state.in_flight == 0
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_waiters();
    }

    fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// The error to give up with: every replica failed before any stream
    /// opened (a wrong address fails at once), a failure that every replica
    /// would repeat, or no replica answered anything for [`GIVE_UP`].
    fn failure(&self) -> Option<ClientError> {
        let mut state = self.lock();
        let never = !state.connected && state.replicas > 0 && state.failed_first >= state.replicas;
        if !never && !state.fatal && state.progress.elapsed() < GIVE_UP {
            return None;
        }
        Some(state.last_error.take().unwrap_or(ClientError::Unreachable {
            server: "every replica".into(),
            reason: format!("no answer for {} s", GIVE_UP.as_secs()),
        }))
    }
}

/// The source while a replica reads it; put back if the read is cancelled
/// (a replica's stream failing mid-read).
struct Reading<'a> {
    work: &'a Work,
    source: Option<Pin<Box<dyn Stream<Item = PredictRequest> + Send>>>,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        if let Some(source) = self.source.take() {
            let mut state = self.work.lock();
            state.source = Some(source);
            state.reading = false;
            drop(state);
            self.work.changed.notify_waiters();
        }
    }
}

fn spawn_replica(
    server: ServerAddress,
    work: &Arc<Work>,
    window: usize,
    answers: &mpsc::UnboundedSender<PredictResponse>,
) {
    let (work, answers) = (Arc::clone(work), answers.clone());
    tokio::spawn(async move { replica(server, work, window.max(1), answers).await });
}

/// One replica: streams, one after the other, until the work is done.
async fn replica(
    server: ServerAddress,
    work: Arc<Work>,
    window: usize,
    answers: mpsc::UnboundedSender<PredictResponse>,
) {
    let mut failures = 0u32;
    let mut client = None;
    let mut ever = false;
    while !work.is_stopped() && !work.finished() {
        if client.is_none() {
            match server.classifier().await {
                Ok(connected) => client = Some(connected),
                Err(error) => {
                    failures += 1;
                    work.failed(error, !ever);
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
            }
        }
        let Some(connected) = client.as_mut() else { continue };
        match one_stream(connected, &work, window, &answers).await {
            Ok(Some(_)) => {
                ever = true;
                failures = 0;
            }
            Ok(None) => {
                // Nothing to take now: wait until work comes back or ends.
                tokio::select! {
                    () = work.changed.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            Err(error) => {
                // The connection may be gone (a crash, a drain): a new one next time.
                client = None;
                failures += 1;
                work.failed(error, !ever);
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

/// Exponential backoff with jitter: 100 ms doubling to 3.2 s, times 0.5-1.5.
fn backoff(failures: u32) -> Duration {
    let base = 100u64 << failures.min(5);
    // Jitter from the clock's nanoseconds: enough to keep clients apart.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let jitter = u64::from(nanos) % base;
    Duration::from_millis(base / 2 + jitter)
}

/// One stream of at most [`CHUNK`] images: `Ok(None)` when there was
/// nothing to send, else how many were answered. The images sent and not
/// answered (the stream failed, or answered them with a retryable error)
/// are given back.
async fn one_stream(
    client: &mut ClassifierClient<ServerChannel>,
    work: &Arc<Work>,
    window: usize,
    answers: &mpsc::UnboundedSender<PredictResponse>,
) -> Result<Option<usize>, ClientError> {
    let Some(first) = work.take().await else { return Ok(None) };
    // Every request taken is here until answered: whatever happens to the
    // stream, what is left goes back.
    let unanswered: Arc<Mutex<HashMap<String, PredictRequest>>> = Arc::default();
    lock(&unanswered).insert(first.id.clone(), first.clone());
    let (sender, receiver) = mpsc::channel::<PredictRequest>(window);
    let permits = Arc::new(tokio::sync::Semaphore::new(window));
    let feeder = {
        let (work, unanswered, permits) = (Arc::clone(work), Arc::clone(&unanswered), Arc::clone(&permits));
        tokio::spawn(async move {
            let mut next = Some(first);
            let mut sent = 0;
            while let Some(request) = next.take() {
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
                permit.forget();
                if sender.send(request).await.is_err() {
                    break;
                }
                sent += 1;
                if sent < CHUNK {
                    next = work.take().await;
                    if let Some(request) = &next {
                        lock(&unanswered).insert(request.id.clone(), request.clone());
                    }
                }
            }
        })
    };
    let outbound = tokio_stream::wrappers::ReceiverStream::new(receiver);
    let mut answered = 0;
    let mut retry = Vec::new();
    let result = async {
        let mut inbound = client.predict(outbound).await.map_err(|s| ClientError::call("Predict", s))?.into_inner();
        work.connected();
        while let Some(response) = inbound.message().await.map_err(|s| ClientError::call("Predict", s))? {
            permits.add_permits(1);
            let Some(request) = lock(&unanswered).remove(&response.id) else { continue };
            let retryable = response
                .error
                .as_ref()
                .is_some_and(|status| matches!(Code::from(status.code), Code::Unavailable | Code::ResourceExhausted));
            if retryable {
                retry.push(request);
            } else if work.answer(response, answers) {
                answered += 1;
            }
        }
        Ok::<_, ClientError>(())
    }
    .await;
    feeder.abort();
    let _ = feeder.await;
    let left: Vec<PredictRequest> = lock(&unanswered).drain().map(|(_, request)| request).collect();
    let retried = !retry.is_empty();
    work.give_back(retry.into_iter().chain(left));
    result?;
    if retried {
        tokio::time::sleep(backoff(1)).await;
    }
    Ok(Some(answered))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

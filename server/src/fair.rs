//! Decode slots shared round-robin among callers.
//!
//! Decoding a photo takes milliseconds of a core, so only as many photos as
//! there are cores are decoded at once. With one FIFO queue for those slots
//! a stream that keeps hundreds of photos in flight puts every other
//! caller's lone image behind all of them: seconds for a PNG `PredictOne`
//! beside one busy `Read` stream. Here each caller waits in a lane of its
//! own (a stream is one lane for all its messages, a unary call is a lane
//! by itself) and a freed slot goes to the next lane in turn, so a lone
//! image waits behind at most one decode per other caller. The slots are
//! never left idle while anyone waits: a stream alone still uses them all.
//!
//! The lane of the running task is a task-local ([`DecodeLane::scope`]),
//! set by the stream loop around each message's work, so the core's
//! decoding needs no lane passed through every call in between.

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::oneshot;

tokio::task_local! {
    static LANE: DecodeLane;
}

/// A caller's lane in the decode queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecodeLane(u64);

static NEXT_LANE: AtomicU64 = AtomicU64::new(1);

impl DecodeLane {
    /// A lane no other caller has.
    pub fn new() -> Self {
        Self(NEXT_LANE.fetch_add(1, Ordering::Relaxed))
    }

    /// Runs `work` with this lane as its decode lane.
    pub fn scope<F: Future>(self, work: F) -> impl Future<Output = F::Output> {
        LANE.scope(self, work)
    }

    /// The running task's lane, or a new one (a unary call: a lane of its own).
    pub fn current() -> Self {
        LANE.try_with(|lane| *lane).unwrap_or_else(|_| Self::new())
    }
}

impl Default for DecodeLane {
    fn default() -> Self {
        Self::new()
    }
}

/// `slots` slots handed out round-robin among the lanes that wait for one.
#[derive(Clone)]
pub struct FairSlots {
    state: Arc<Mutex<State>>,
}

struct State {
    free: usize,
    /// Lanes with waiters, in turn order; each appears once.
    turns: VecDeque<DecodeLane>,
    waiting: HashMap<DecodeLane, VecDeque<oneshot::Sender<()>>>,
}

/// A slot, given back (to the next lane in turn) when dropped.
pub struct Slot {
    state: Arc<Mutex<State>>,
}

impl FairSlots {
    /// `slots` slots (at least one).
    pub fn new(slots: usize) -> Self {
        let state = State { free: slots.max(1), turns: VecDeque::new(), waiting: HashMap::new() };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    /// Waits for a slot in `lane`'s turn. Dropping the future gives up the
    /// place in line (and a slot that was handed to it meanwhile).
    pub async fn acquire(&self, lane: DecodeLane) -> Slot {
        let receiver = {
            let mut state = lock(&self.state);
            if state.free > 0 && state.turns.is_empty() {
                state.free -= 1;
                return Slot { state: Arc::clone(&self.state) };
            }
            let (sender, receiver) = oneshot::channel();
            let state = &mut *state;
            let queue = state.waiting.entry(lane).or_default();
            if queue.is_empty() {
                state.turns.push_back(lane);
            }
            queue.push_back(sender);
            receiver
        };
        let mut waiter = Waiter { receiver, state: Arc::clone(&self.state), granted: false };
        // A queued sender is only dropped after sending: the result is Ok.
        let _ = (&mut waiter.receiver).await;
        waiter.granted = true;
        Slot { state: Arc::clone(&self.state) }
    }

    /// Slots free now (for tests and metrics).
    pub fn free(&self) -> usize {
        lock(&self.state).free
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // The state stays consistent at every point a panic could leave it.
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    /// Hands a freed slot to the next lane in turn, or keeps it free.
    fn release(&mut self) {
        while let Some(lane) = self.turns.pop_front() {
            let Some(queue) = self.waiting.get_mut(&lane) else { continue };
            let next = queue.pop_front();
            if queue.is_empty() {
                self.waiting.remove(&lane);
            } else {
                self.turns.push_back(lane);
            }
            if let Some(sender) = next
                && sender.send(()).is_ok()
            {
                return;
            }
            // That waiter gave up: try the next lane.
        }
        self.free += 1;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.state).release();
    }
}

/// A waiting acquire; when dropped before its slot was taken over, gives
/// back a slot that was handed to it meanwhile.
struct Waiter {
    receiver: oneshot::Receiver<()>,
    state: Arc<Mutex<State>>,
    /// The slot was taken over by a [`Slot`].
    granted: bool,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        // Closing first means no slot can be handed over after the check.
        self.receiver.close();
        if self.receiver.try_recv().is_ok() {
            lock(&self.state).release();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_lone_caller_waits_behind_one_slot_per_other_lane_not_behind_a_whole_stream() {
        let slots = FairSlots::new(1);
        let busy = DecodeLane::new();
        let held = slots.acquire(busy).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        // A stream queues ten decodes, then a lone caller queues one.
        let mut tasks = Vec::new();
        for i in 0..10 {
            let (slots, order) = (slots.clone(), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire(busy).await;
                order.lock().unwrap().push(format!("stream {i}"));
            }));
            tokio::task::yield_now().await;
        }
        let (lone_slots, lone_order) = (slots.clone(), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let _slot = lone_slots.acquire(DecodeLane::new()).await;
            lone_order.lock().unwrap().push("lone".to_string());
        }));
        tokio::task::yield_now().await;
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        let order = order.lock().unwrap();
        let lone = order.iter().position(|who| who == "lone").unwrap();
        assert!(lone <= 1, "the lone caller came {lone}th: {order:?}");
        assert_eq!(order.len(), 11);
        assert_eq!(slots.free(), 1);
    }

    #[tokio::test]
    async fn a_caller_alone_uses_every_slot() {
        let slots = FairSlots::new(3);
        let lane = DecodeLane::new();
        let a = slots.acquire(lane).await;
        let b = slots.acquire(lane).await;
        let c = slots.acquire(lane).await;
        assert_eq!(slots.free(), 0);
        drop((a, b, c));
        assert_eq!(slots.free(), 3);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_loses_no_slot() {
        let slots = FairSlots::new(1);
        let held = slots.acquire(DecodeLane::new()).await;
        let gave_up = tokio::time::timeout(Duration::from_millis(10), slots.acquire(DecodeLane::new())).await;
        assert!(gave_up.is_err());
        drop(held);
        assert_eq!(slots.free(), 1, "the slot went back, not to the waiter that left");
        // And one handed over just as the waiter is dropped comes back too.
        let held = slots.acquire(DecodeLane::new()).await;
        let mut waiting = Box::pin(slots.acquire(DecodeLane::new()));
        assert!(futures_util::poll!(&mut waiting).is_pending());
        drop(held); // handed to `waiting`, which never runs again
        drop(waiting);
        assert_eq!(slots.free(), 1);
    }

    #[tokio::test]
    async fn the_task_local_lane_is_the_streams_and_unary_calls_get_their_own() {
        let lane = DecodeLane::new();
        assert_eq!(lane.scope(async { DecodeLane::current() }).await, lane);
        assert_ne!(DecodeLane::current(), DecodeLane::current());
    }
}

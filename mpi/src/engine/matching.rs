//! Receive matching (engine rule 5): receives waiting for a message, and
//! messages waiting for a receive.
//!
//! Every receive matches its message before MPI writes anything
//! (`MPI_Improbe`, then `MPI_Imrecv` into a buffer sized or checked
//! against it: Open MPI 4.1 writes past a buffer that is too small). Rather
//! than one probe per waiting receive per turn, which would cost
//! O(waiting receives) each turn, [`InFlight::pull`] pulls arrived
//! messages with `MPI_Improbe(ANY_SOURCE, ANY_TAG)` on each communicator a
//! receive waits on (up to [`PULL_BATCH`] a turn) and hands each to the
//! oldest waiting receive it matches; a message nobody waits for yet is
//! kept, in order, for the next receive that matches it. That is MPI's own
//! matching (first posted, first matched; messages from one sender in
//! order), done once per message. The receive is posted right there, under
//! the same lock, so a small message is complete before its task is even
//! woken.
//!
//! # A dropped receive hands its message back
//!
//! A receive is posted when it is made, so a receive dropped in a `race`
//! or `select!` loop may already have matched its message, or received
//! it. Dropped before its output was taken, it gives the message back
//! ([`InFlight::returned`]): received, its bytes (copied out of its
//! buffer) join the unclaimed messages at the place of their arrival, so
//! the next receive that matches takes them before anything that arrived
//! later; still being received by MPI, a placeholder ([`Held::Arriving`])
//! holds that place until MPI completes it. A receive whose oldest match is
//! a placeholder waits (and is given no later message, even one MPI pulls
//! meanwhile): MPI's non-overtaking order holds across the hand-back. A
//! returned message is re-delivered as MPI would deliver it: into a
//! buffer sized to it, or checked against one ([`Error::Truncated`] if it
//! does not fit, the message then consumed, as MPI does).
//!
//! # The queue keeps its own counts
//!
//! [`ReceiveQueue`] is the line of waiting receives together with how many
//! wait on each communicator (which communicators a turn must pull on)
//! and how many are peeks. Its fields are private to this module and every
//! change goes through its methods, which move the counts with the line:
//! no caller can take a receive out and leave a count behind (a count
//! left behind once made a turn probe a freed communicator).

use super::{InFlight, Outcome, Raw, Waiter};
use crate::error::{Error, check};
use crate::status::Status;
use mpi::ffi;
use std::collections::VecDeque;
use std::os::raw::c_int;
use std::sync::Arc;

/// Messages pulled with `MPI_Improbe` in one turn at most, per
/// communicator.
pub(crate) const PULL_BATCH: usize = 64;

/// A receive waiting for its message (rule 5).
pub(crate) trait Receiver: Waiter {
    /// The size in bytes of the elements the receive counts (for its
    /// status: whole elements of the message).
    fn item_size(&self) -> usize;

    /// Under the lock: `message` matched (its `held` is never
    /// [`Held::Arriving`]). Posts its receive (into the receiver's buffer,
    /// sized or checked against the message first) and tracks the request,
    /// or copies a returned message's bytes; returns the outcome if it is
    /// already complete (or failed), `None` if it is now a pending request.
    fn receive(self: Arc<Self>, mpi: &mut InFlight, message: Unclaimed) -> Option<Outcome>;

    /// Itself as a plain waiter (for delivering an outcome).
    fn into_waiter(self: Arc<Self>) -> Arc<dyn Waiter>;
}

/// A receive (or a peek, `probe`) waiting for a matching message.
pub(crate) struct WaitingReceive {
    pub(crate) source: c_int,
    pub(crate) tag: c_int,
    pub(crate) comm: Raw<ffi::MPI_Comm>,
    pub(crate) receiver: Arc<dyn Receiver>,
    /// Only look (`probe`): the message stays unclaimed for a receive, and
    /// the receiver completes with its envelope.
    pub(crate) peek: bool,
}

impl WaitingReceive {
    fn matches(&self, comm: Raw<ffi::MPI_Comm>, status: &ffi::MPI_Status) -> bool {
        matches(self.source, self.tag, self.comm, comm, status)
    }

    /// The receiver, to deliver an outcome to.
    pub(crate) fn into_waiter(self) -> Arc<dyn Waiter> {
        self.receiver.into_waiter()
    }
}

/// A message that no receive has claimed yet: matched by `MPI_Improbe`,
/// or handed back by a receive dropped before its output was taken.
pub(crate) struct Unclaimed {
    pub(crate) comm: Raw<ffi::MPI_Comm>,
    pub(crate) held: Held,
    /// Its envelope (and length, in bytes) as `MPI_Improbe` reported it.
    pub(crate) status: ffi::MPI_Status,
    /// Its place in arrival order (`InFlight::arrival`): the unclaimed
    /// messages are kept sorted by it.
    pub(crate) arrival: u64,
}

/// Where an unclaimed message is.
pub(crate) enum Held {
    /// With MPI, matched and not yet received.
    Matched(Raw<ffi::MPI_Message>),
    /// Received by a receive that was dropped: its bytes.
    Received(Vec<u8>),
    /// Being received by MPI for a receive that was dropped: a placeholder
    /// that keeps the message's place until it comes back as
    /// [`Received`](Held::Received) (or goes, if its receive failed).
    Arriving,
}

impl Unclaimed {
    fn is_arriving(&self) -> bool {
        matches!(self.held, Held::Arriving)
    }
}

/// Whether a receive for `source`, `tag` on `comm` takes a message with
/// envelope `status` on `message_comm`.
pub(crate) fn matches(
    source: c_int,
    tag: c_int,
    comm: Raw<ffi::MPI_Comm>,
    message_comm: Raw<ffi::MPI_Comm>,
    status: &ffi::MPI_Status,
) -> bool {
    // SAFETY: reading constants MPI initialised.
    let (any_source, any_tag) = unsafe { (ffi::RSMPI_ANY_SOURCE, ffi::RSMPI_ANY_TAG) };
    comm == message_comm
        && (source == any_source || source == status.MPI_SOURCE)
        && (tag == any_tag || tag == status.MPI_TAG)
}

/// The waiting receives, oldest first, with their counts (see the module
/// docs: the counts move only with the line).
pub(crate) struct ReceiveQueue {
    line: VecDeque<WaitingReceive>,
    /// Receives waiting, per communicator (a handful of entries).
    per_comm: Vec<(Raw<ffi::MPI_Comm>, usize)>,
    /// Peeks among them.
    peeks: usize,
}

impl ReceiveQueue {
    pub(crate) fn new() -> ReceiveQueue {
        ReceiveQueue {
            line: VecDeque::new(),
            per_comm: Vec::new(),
            peeks: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.line.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.line.is_empty()
    }

    fn count(&mut self, receive: &WaitingReceive, up: bool) {
        if receive.peek {
            if up {
                self.peeks += 1;
            } else {
                self.peeks -= 1;
            }
        }
        match self.per_comm.iter().position(|(c, _)| *c == receive.comm) {
            Some(i) if up => self.per_comm[i].1 += 1,
            Some(i) => {
                self.per_comm[i].1 -= 1;
                if self.per_comm[i].1 == 0 {
                    self.per_comm.swap_remove(i);
                }
            }
            None => {
                assert!(up, "weft-mpi bug: a receive left a line it was not counted in");
                self.per_comm.push((receive.comm, 1));
            }
        }
    }

    /// A receive joins the end of the line.
    pub(crate) fn push(&mut self, receive: WaitingReceive) {
        self.count(&receive, true);
        self.line.push_back(receive);
    }

    fn remove(&mut self, i: usize) -> WaitingReceive {
        let receive = self
            .line
            .remove(i)
            .expect("weft-mpi bug: no waiting receive at that index");
        self.count(&receive, false);
        receive
    }

    /// Takes the receive whose receiver is `receiver` out of line (its
    /// operation was dropped). True if it was still waiting.
    pub(crate) fn remove_receiver(&mut self, receiver: *const ()) -> bool {
        let found = self
            .line
            .iter()
            .position(|r| Arc::as_ptr(&r.receiver).cast::<()>() == receiver);
        match found {
            Some(i) => {
                drop(self.remove(i));
                true
            }
            None => false,
        }
    }

    /// Takes every waiting receive `f` selects, in order (rare paths: a
    /// probe failing, shutdown).
    pub(crate) fn take_where(&mut self, f: impl Fn(&WaitingReceive) -> bool) -> Vec<WaitingReceive> {
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(self.line.len());
        for receive in self.line.drain(..) {
            if f(&receive) {
                taken.push(receive);
            } else {
                kept.push_back(receive);
            }
        }
        self.line = kept;
        for receive in &taken {
            self.count(receive, false);
        }
        taken
    }

    /// The oldest receive (of the kind `peek` says) that takes a message
    /// with envelope `status` on `comm`, out of line.
    /// Receives `blocked` says wait for an older message are passed over.
    fn take_oldest_match(
        &mut self,
        comm: Raw<ffi::MPI_Comm>,
        status: &ffi::MPI_Status,
        peek: bool,
        blocked: impl Fn(&WaitingReceive) -> bool,
    ) -> Option<WaitingReceive> {
        if peek && self.peeks == 0 {
            return None;
        }
        let i = self
            .line
            .iter()
            .position(|r| r.peek == peek && r.matches(comm, status) && !blocked(r))?;
        Some(self.remove(i))
    }

    /// The oldest receive on `comm` that `ready` says can take a message
    /// now, out of line.
    fn take_first_ready(
        &mut self,
        comm: Raw<ffi::MPI_Comm>,
        ready: impl Fn(&WaitingReceive) -> bool,
    ) -> Option<WaitingReceive> {
        let i = self.line.iter().position(|r| r.comm == comm && ready(r))?;
        Some(self.remove(i))
    }

    /// Receives waiting on `comm`.
    pub(crate) fn waiting_on(&self, comm: Raw<ffi::MPI_Comm>) -> usize {
        self.per_comm.iter().find(|(c, _)| *c == comm).map_or(0, |(_, n)| *n)
    }

    /// The communicators some receive waits on.
    fn comms(&self) -> impl Iterator<Item = Raw<ffi::MPI_Comm>> + '_ {
        self.per_comm.iter().map(|(c, _)| *c)
    }
}

impl InFlight {
    /// Starts a receive (rule 5): with the oldest unclaimed message it
    /// matches, else one MPI matches now (only if no older receive waits,
    /// which might want it), else it waits in line. Returns the outcome if
    /// the receive is already complete, `None` if it is pending. With
    /// `probe_now` false the first probe is left to the next poll (a task
    /// about to help, engine rule 7, does the same probe in its pull).
    pub(crate) fn start_receive(&mut self, receive: WaitingReceive, probe_now: bool) -> Option<Outcome> {
        let found = self.unclaimed.iter().position(|u| receive.matches(u.comm, &u.status));
        let found = match found {
            Some(i) if receive.peek => {
                let u = &self.unclaimed[i];
                return Some(Ok(Status::from_raw(&u.status, receive.receiver.item_size())));
            }
            // Its message is coming back from a dropped receive: wait for
            // it (nothing later may overtake it).
            Some(i) if self.unclaimed[i].is_arriving() => None,
            Some(i) => {
                let u = self.unclaimed.remove(i).expect("index in range");
                return receive.receiver.receive(self, u);
            }
            // A peek looks without claiming (`MPI_Iprobe`): claiming a
            // message for a look would put it ahead of older ones from the
            // same sender that no one has pulled yet.
            None if receive.peek => match iprobe(receive.source, receive.tag, receive.comm) {
                Ok(Some(status)) => return Some(Ok(Status::from_raw(&status, receive.receiver.item_size()))),
                Ok(None) => None,
                Err(err) => return Some(Err(err)),
            },
            None if probe_now && self.receives.is_empty() => match improbe(receive.source, receive.tag, receive.comm) {
                Ok(found) => found,
                Err(err) => return Some(Err(err)),
            },
            None => None,
        };
        match found {
            Some((message, status)) => {
                let arrival = self.next_arrival();
                let message = Unclaimed {
                    comm: receive.comm,
                    held: Held::Matched(message),
                    status,
                    arrival,
                };
                receive.receiver.receive(self, message)
            }
            None => {
                self.receives.push(receive);
                None
            }
        }
    }

    /// A waiting receive's operation was dropped: takes it out of line.
    /// True if it was still waiting (no message matched it).
    pub(crate) fn abandon_receive(&mut self, receiver: *const ()) -> bool {
        self.receives.remove_receiver(receiver)
    }

    /// Takes a waiting receive out of line unless it waits for a message a
    /// dropped receive is giving back (which comes even from a dead rank).
    /// True if it left the line.
    pub(crate) fn abandon_unless_returning(&mut self, receiver: *const ()) -> bool {
        let waits_for_returned = self.arriving > 0
            && self
                .receives
                .line
                .iter()
                .find(|r| Arc::as_ptr(&r.receiver).cast::<()>() == receiver)
                .is_some_and(|r| InFlight::blocked(&self.unclaimed, self.arriving, r));
        !waits_for_returned && self.abandon_receive(receiver)
    }

    /// The next place in arrival order.
    fn next_arrival(&mut self) -> u64 {
        self.arrivals += 1;
        self.arrivals
    }

    /// A receive dropped while MPI receives its message (matched at
    /// `arrival`): a placeholder keeps the message's place until
    /// [`returned`](Self::returned).
    pub(crate) fn hold_place(&mut self, comm: Raw<ffi::MPI_Comm>, status: ffi::MPI_Status, arrival: u64) {
        self.insert_unclaimed(Unclaimed {
            comm,
            held: Held::Arriving,
            status,
            arrival,
        });
    }

    /// A receive dropped before its output was taken gives its message
    /// back (see the module docs): `bytes` is what it received, `None` if
    /// its receive failed (nothing to give). Takes the message's
    /// placeholder out, if it had one, and hands the message to the oldest
    /// waiting receive that takes it, or keeps it in its place.
    pub(crate) fn returned(
        &mut self,
        comm: Raw<ffi::MPI_Comm>,
        status: ffi::MPI_Status,
        arrival: u64,
        bytes: Option<Vec<u8>>,
    ) {
        if self.finalized {
            return;
        }
        if let Some(i) = self
            .unclaimed
            .iter()
            .position(|u| u.arrival == arrival && u.comm == comm && u.is_arriving())
        {
            self.unclaimed.remove(i);
            self.arriving -= 1;
        }
        if let Some(bytes) = bytes {
            self.insert_unclaimed(Unclaimed {
                comm,
                held: Held::Received(bytes),
                status,
                arrival,
            });
        }
        self.rematch(comm);
        if !self.dead.is_empty() {
            // Receives from a dead rank that waited only for this message
            // (nothing more will come from it).
            let (unclaimed, arriving, dead) = (&self.unclaimed, self.arriving, &self.dead);
            let gone = self
                .receives
                .take_where(|r| dead.contains(&r.source) && !InFlight::blocked(unclaimed, arriving, r));
            for receive in gone {
                let rank = receive.source;
                self.settle(receive.into_waiter(), Err(Error::PeerDied(rank)));
            }
        }
    }

    fn insert_unclaimed(&mut self, message: Unclaimed) {
        if message.is_arriving() {
            self.arriving += 1;
        }
        let at = self.unclaimed.partition_point(|u| u.arrival < message.arrival);
        self.unclaimed.insert(at, message);
    }

    /// After the unclaimed messages on `comm` changed other than by
    /// arrival: every waiting peek that sees one now completes, and every
    /// waiting receive whose oldest match is ready takes it, oldest
    /// receive first.
    fn rematch(&mut self, comm: Raw<ffi::MPI_Comm>) {
        loop {
            let unclaimed = &self.unclaimed;
            let ready = |r: &WaitingReceive| {
                let first = unclaimed.iter().find(|u| r.matches(u.comm, &u.status));
                first.is_some_and(|u| r.peek || !u.is_arriving())
            };
            let Some(receive) = self.receives.take_first_ready(comm, ready) else {
                return;
            };
            let i = self
                .unclaimed
                .iter()
                .position(|u| receive.matches(u.comm, &u.status))
                .expect("weft-mpi bug: a ready receive has no message");
            let waiter = receive.receiver.clone().into_waiter();
            if receive.peek {
                let seen = Status::from_raw(&self.unclaimed[i].status, receive.receiver.item_size());
                self.settle(waiter, Ok(seen));
                continue;
            }
            let message = self.unclaimed.remove(i).expect("index in range");
            if let Some(outcome) = receive.receiver.receive(self, message) {
                self.settle(waiter, outcome);
            }
        }
    }

    /// Whether `receive` must wait for a message a dropped receive is
    /// giving back (its oldest match is a placeholder).
    pub(super) fn blocked(unclaimed: &VecDeque<Unclaimed>, arriving: usize, receive: &WaitingReceive) -> bool {
        arriving > 0
            && unclaimed
                .iter()
                .find(|u| receive.matches(u.comm, &u.status))
                .is_some_and(Unclaimed::is_arriving)
    }

    /// Drops an unclaimed message (its communicator is going, or MPI is
    /// finalizing): one still with MPI is received into scratch.
    pub(crate) fn drop_unclaimed(&mut self, message: Unclaimed) {
        match message.held {
            Held::Matched(handle) => self.discard(handle, &message.status),
            Held::Received(_) => {}
            Held::Arriving => self.arriving -= 1,
        }
    }

    /// The oldest unclaimed message matching `source` and `tag`, without
    /// claiming it (for `try_probe`).
    pub(crate) fn peek_unclaimed(
        &self,
        source: c_int,
        tag: c_int,
        comm: Raw<ffi::MPI_Comm>,
    ) -> Option<ffi::MPI_Status> {
        self.unclaimed
            .iter()
            .find(|u| matches(source, tag, comm, u.comm, &u.status))
            .map(|u| u.status)
    }

    /// Rule 5, once a turn: pulls arrived messages on every communicator a
    /// receive waits on and starts the receive of the oldest waiting
    /// receive each matches. Returns how many receives left the line.
    pub(super) fn pull(&mut self) -> usize {
        // A handful of communicators; copied so the line may change (into
        // a list kept from turn to turn: a spinning poll allocates nothing).
        let mut comms = std::mem::take(&mut self.pulling);
        comms.clear();
        comms.extend(self.receives.comms());
        let left = comms.iter().map(|&comm| self.pull_on(comm)).sum();
        self.pulling = comms;
        left
    }

    fn pull_on(&mut self, comm: Raw<ffi::MPI_Comm>) -> usize {
        // SAFETY: reading constants MPI initialised.
        let (any_source, any_tag) = unsafe { (ffi::RSMPI_ANY_SOURCE, ffi::RSMPI_ANY_TAG) };
        let mut left = 0;
        for _ in 0..PULL_BATCH {
            if self.receives.waiting_on(comm) == 0 {
                break;
            }
            match improbe(any_source, any_tag, comm) {
                Ok(None) => break,
                Ok(Some((message, status))) => {
                    let message = Unclaimed {
                        comm,
                        held: Held::Matched(message),
                        status,
                        arrival: self.next_arrival(),
                    };
                    // Every peek it matches sees it; then the oldest
                    // receive it matches takes it (unless that receive
                    // waits for an older message a dropped receive gives
                    // back), or it waits unclaimed.
                    while let Some(peek) = self.receives.take_oldest_match(comm, &status, true, |_| false) {
                        left += 1;
                        let seen = Status::from_raw(&status, peek.receiver.item_size());
                        self.settle(peek.into_waiter(), Ok(seen));
                    }
                    let (unclaimed, arriving) = (&self.unclaimed, self.arriving);
                    let blocked = |r: &WaitingReceive| InFlight::blocked(unclaimed, arriving, r);
                    match self.receives.take_oldest_match(comm, &status, false, blocked) {
                        Some(receive) => {
                            left += 1;
                            let waiter = receive.receiver.clone().into_waiter();
                            if let Some(outcome) = receive.receiver.receive(self, message) {
                                self.settle(waiter, outcome);
                            }
                        }
                        None => self.unclaimed.push_back(message),
                    }
                }
                Err(err) => {
                    // Probing itself failed: fail the receives waiting on
                    // this communicator.
                    for receive in self.receives.take_where(|r| r.comm == comm) {
                        left += 1;
                        self.settle(receive.into_waiter(), Err(err.clone()));
                    }
                    break;
                }
            }
        }
        left
    }
}

/// One `MPI_Improbe`. Call under the lock.
fn improbe(
    source: c_int,
    tag: c_int,
    comm: Raw<ffi::MPI_Comm>,
) -> Result<Option<(Raw<ffi::MPI_Message>, ffi::MPI_Status)>, Error> {
    let mut flag: c_int = 0;
    // SAFETY: reading an immutable handle constant MPI initialised.
    let mut message = unsafe { ffi::RSMPI_MESSAGE_NULL };
    let mut status = super::empty_status();
    // SAFETY: the caller holds the lock (rule 1); `comm` is live (an
    // operation on it holds it, rule 9); the out-pointers are valid locals.
    let rc = unsafe { ffi::MPI_Improbe(source, tag, comm.0, &mut flag, &mut message, &mut status) };
    check(rc)?;
    Ok((flag != 0).then_some((Raw(message), status)))
}

/// One `MPI_Iprobe` (a look, no claim). Call under the lock.
pub(crate) fn iprobe(source: c_int, tag: c_int, comm: Raw<ffi::MPI_Comm>) -> Result<Option<ffi::MPI_Status>, Error> {
    let mut flag: c_int = 0;
    let mut status = super::empty_status();
    // SAFETY: the caller holds the lock (rule 1); `comm` is live; the
    // out-pointers are valid locals.
    check(unsafe { ffi::MPI_Iprobe(source, tag, comm.0, &mut flag, &mut status) })?;
    Ok((flag != 0).then_some(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nobody;
    impl Waiter for Nobody {
        fn request_done(self: Arc<Self>, _: &mut InFlight, o: Outcome) -> Option<Outcome> {
            Some(o)
        }
        fn complete(&self, _: Outcome) {}
    }
    impl Receiver for Nobody {
        fn item_size(&self) -> usize {
            1
        }
        fn receive(self: Arc<Self>, _: &mut InFlight, _: Unclaimed) -> Option<Outcome> {
            None
        }
        fn into_waiter(self: Arc<Self>) -> Arc<dyn Waiter> {
            self
        }
    }

    fn comm(n: usize) -> Raw<ffi::MPI_Comm> {
        Raw(ffi::MPI_Comm(n as *mut _))
    }

    fn waiting(c: usize, peek: bool) -> (WaitingReceive, *const ()) {
        let receiver: Arc<dyn Receiver> = Arc::new(Nobody);
        let ptr = Arc::as_ptr(&receiver).cast::<()>();
        let receive = WaitingReceive {
            source: 0,
            tag: 0,
            comm: comm(c),
            receiver,
            peek,
        };
        (receive, ptr)
    }

    /// A receiver that records which messages (by their first byte) it
    /// was given.
    struct Recording(std::sync::Mutex<Vec<u8>>);
    impl Waiter for Recording {
        fn request_done(self: Arc<Self>, _: &mut InFlight, o: Outcome) -> Option<Outcome> {
            Some(o)
        }
        fn complete(&self, _: Outcome) {}
    }
    impl Receiver for Recording {
        fn item_size(&self) -> usize {
            1
        }
        fn receive(self: Arc<Self>, _: &mut InFlight, message: Unclaimed) -> Option<Outcome> {
            let Held::Received(bytes) = message.held else {
                panic!("only returned messages in this test")
            };
            self.0.lock().unwrap().push(bytes[0]);
            Some(Ok(Status::empty()))
        }
        fn into_waiter(self: Arc<Self>) -> Arc<dyn Waiter> {
            self
        }
    }

    fn recording(c: usize, tag: c_int) -> (WaitingReceive, Arc<Recording>) {
        let receiver = Arc::new(Recording(std::sync::Mutex::new(Vec::new())));
        let receive = WaitingReceive {
            source: 0,
            tag,
            comm: comm(c),
            receiver: receiver.clone(),
            peek: false,
        };
        (receive, receiver)
    }

    fn envelope(tag: c_int) -> ffi::MPI_Status {
        let mut status = super::super::empty_status();
        status.MPI_SOURCE = 0;
        status.MPI_TAG = tag;
        status
    }

    fn got(receiver: &Recording) -> Vec<u8> {
        receiver.0.lock().unwrap().clone()
    }

    #[test]
    fn a_returned_message_keeps_its_place_in_arrival_order() {
        let mut mpi = InFlight::new();
        let c = comm(1);
        // Message 1 (arrival 1) is still being received by MPI for a
        // dropped receive; message 2 (arrival 2) was received by another
        // dropped receive and handed back.
        mpi.hold_place(c, envelope(0), 1);
        mpi.returned(c, envelope(0), 2, Some(vec![2]));
        // A new receive must wait for message 1, not take message 2.
        let (receive, first) = recording(1, 0);
        assert!(
            mpi.start_receive(receive, false).is_none(),
            "overtook a returning message"
        );
        assert!(got(&first).is_empty());
        // A receive for another tag is not held up by it.
        let (other, _) = recording(1, 9);
        assert!(!InFlight::blocked(&mpi.unclaimed, mpi.arriving, &other));
        // Message 1 comes back: the waiting receive takes it; the next
        // receive takes message 2 at once.
        mpi.returned(c, envelope(0), 1, Some(vec![1]));
        assert_eq!(got(&first), [1]);
        let (receive, second) = recording(1, 0);
        assert!(mpi.start_receive(receive, false).is_some());
        assert_eq!(got(&second), [2]);
        // A dropped receive whose MPI receive failed gives nothing back: the
        // receive waiting behind its placeholder takes the next message.
        mpi.hold_place(c, envelope(0), 3);
        mpi.returned(c, envelope(0), 4, Some(vec![4]));
        let (receive, third) = recording(1, 0);
        assert!(mpi.start_receive(receive, false).is_none());
        mpi.returned(c, envelope(0), 3, None);
        assert_eq!(got(&third), [4]);
        assert!(mpi.unclaimed.is_empty() && mpi.arriving == 0 && mpi.receives.is_empty());
    }

    #[test]
    fn every_way_out_of_the_line_moves_the_counts() {
        let mut queue = ReceiveQueue::new();
        let (a, a_ptr) = waiting(1, false);
        let (b, _) = waiting(2, true);
        let (c, _) = waiting(2, false);
        queue.push(a);
        queue.push(b);
        queue.push(c);
        assert_eq!(
            (queue.waiting_on(comm(1)), queue.waiting_on(comm(2)), queue.peeks),
            (1, 2, 1)
        );
        // A dropped receive (the path that once skipped the count).
        assert!(queue.remove_receiver(a_ptr));
        assert!(!queue.remove_receiver(a_ptr), "gone already");
        assert_eq!(queue.waiting_on(comm(1)), 0);
        assert_eq!(
            queue.comms().collect::<Vec<_>>(),
            [comm(2)],
            "no pull on a communicator nobody waits on"
        );
        let taken = queue.take_where(|r| r.peek);
        assert_eq!((taken.len(), queue.peeks, queue.waiting_on(comm(2))), (1, 0, 1));
        queue.take_where(|_| true);
        assert!(queue.is_empty() && queue.comms().next().is_none());
    }
}

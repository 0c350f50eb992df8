//! [`WaitList`]: a FIFO of waiters with O(1) removal from anywhere, so that a
//! cancelled waiter leaves the queue at once (no ghost waiters).
//!
//! A doubly linked list threaded through a slab: each entry knows the keys of
//! its neighbours. It is not synchronised; every primitive keeps its list
//! under its own lock.

use slab::Slab;

/// A key that names one entry while it is in the list.
pub(crate) type WaitKey = usize;

struct Node<T> {
    value: T,
    prev: Option<WaitKey>,
    next: Option<WaitKey>,
}

/// A first-in, first-out list of waiters.
pub(crate) struct WaitList<T> {
    nodes: Slab<Node<T>>,
    head: Option<WaitKey>,
    tail: Option<WaitKey>,
}

impl<T> WaitList<T> {
    pub(crate) const fn new() -> WaitList<T> {
        WaitList {
            nodes: Slab::new(),
            head: None,
            tail: None,
        }
    }

    /// Appends `value`; its key stays valid until it is removed or popped.
    pub(crate) fn push_back(&mut self, value: T) -> WaitKey {
        let key = self.nodes.insert(Node {
            value,
            prev: self.tail,
            next: None,
        });
        match self.tail {
            Some(tail) => self.nodes[tail].next = Some(key),
            None => self.head = Some(key),
        }
        self.tail = Some(key);
        key
    }

    /// True if no entry is in the list.
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Entries in the list.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The oldest entry.
    pub(crate) fn front_mut(&mut self) -> Option<&mut T> {
        let head = self.head?;
        Some(&mut self.nodes[head].value)
    }

    /// Removes and returns the oldest entry.
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let head = self.head?;
        Some(self.unlink(head))
    }

    /// The entry `key`, if it is in the list.
    pub(crate) fn get_mut(&mut self, key: WaitKey) -> Option<&mut T> {
        self.nodes.get_mut(key).map(|n| &mut n.value)
    }

    /// Removes the entry `key`.
    ///
    /// # Panics
    ///
    /// If `key` is not in the list (a bug in the primitive using it).
    pub(crate) fn remove(&mut self, key: WaitKey) -> T {
        assert!(
            self.nodes.contains(key),
            "weft-sync bug: removing a waiter that is not queued"
        );
        self.unlink(key)
    }

    fn unlink(&mut self, key: WaitKey) -> T {
        let node = self.nodes.remove(key);
        match node.prev {
            Some(prev) => self.nodes[prev].next = node.next,
            None => self.head = node.next,
        }
        match node.next {
            Some(next) => self.nodes[next].prev = node.prev,
            None => self.tail = node.prev,
        }
        node.value
    }
}

#[cfg(test)]
mod tests {
    use super::WaitList;

    #[test]
    fn fifo_with_removal_from_anywhere() {
        let mut list = WaitList::new();
        let a = list.push_back('a');
        let b = list.push_back('b');
        let c = list.push_back('c');
        assert_eq!(list.remove(b), 'b');
        let d = list.push_back('d');
        assert_eq!(list.front_mut(), Some(&mut 'a'));
        assert_eq!(list.remove(a), 'a');
        assert_eq!(list.remove(d), 'd');
        assert_eq!(list.front_mut(), Some(&mut 'c'));
        assert_eq!(list.pop_front(), Some('c'));
        assert!(list.pop_front().is_none());
        let e = list.push_back('e');
        assert_eq!(list.get_mut(e), Some(&mut 'e'));
        let _ = c;
    }
}

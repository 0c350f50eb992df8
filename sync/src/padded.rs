//! [`Padded`]: keeps a hot field off its neighbours' cache line.
//!
//! Two fields on one cache line that different threads write (a sender's
//! lock next to a counter the receivers poll, say) make every write evict
//! the line from the other core: "false sharing". The broadcast channel
//! ran three times slower for it until its tail lock and its published
//! sequence number were padded apart.

/// A value alone on its cache line (128 bytes: two 64-byte lines, since
/// x86 prefetches adjacent pairs).
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

//! [`Fields`]: read access to a message's header fields, whatever holds them.

use http::HeaderMap;

/// Header fields looked up by lowercase name, as raw bytes.
///
/// Implemented for [`http::HeaderMap`]; a proxy that keeps fields as they arrived (without
/// building a map) implements it too, so the helpers of this crate read both alike.
pub trait Fields {
    /// Every value of the field `name` (lowercase), in order.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;

    /// The first value of the field `name` (lowercase).
    fn first<'a>(&'a self, name: &'a str) -> Option<&'a [u8]> {
        self.values(name).next()
    }
}

impl Fields for HeaderMap {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name).into_iter().map(|v| v.as_bytes())
    }
}

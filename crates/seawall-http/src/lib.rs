//! Small HTTP helpers shared by the Seawall crates, so that the daemon and the flag cache read
//! the same header the same way:
//!
//! - [`retry_after`]: the pause an upstream asks for (`retry-after-ms`, `Retry-After` as
//!   seconds or an HTTP-date);
//! - [`content_length`]: a strict `Content-Length` (every value must agree);
//! - [`read_limited`]: a whole body, refused past a size limit;
//! - [`tls::client_config`] (feature `tls`): the rustls client settings every outbound
//!   connection uses.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use http::HeaderMap;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("retry-after", "7".parse().unwrap());
//! assert_eq!(seawall_http::retry_after(&headers, SystemTime::now()), Some(Duration::from_secs(7)));
//! headers.insert("content-length", "12, 12".parse().unwrap());
//! assert_eq!(seawall_http::content_length(&headers), Ok(Some(12)));
//! ```

mod fields;
mod length;
mod limited;
mod retry;
#[cfg(feature = "tls")]
pub mod tls;

pub use fields::Fields;
pub use length::{content_length, parse_content_length, InvalidContentLength};
pub use limited::{read_limited, BoxError, ReadError};
pub use retry::{parse_retry_after, parse_retry_after_ms, retry_after};

//! Reading a whole body, refused as soon as it passes a size limit.

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// An error a body failed with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why [`read_limited`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The body is longer than the limit (nothing past it was kept).
    #[error("the body exceeds {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body's stream failed.
    #[error("reading the body: {0}")]
    Body(BoxError),
}

/// The whole of `body`, at most `limit` bytes of it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use http_body_util::Full;
/// use seawall_http::{read_limited, ReadError};
/// let body = Full::new(bytes::Bytes::from_static(b"0123456789"));
/// assert_eq!(read_limited(body.clone(), 10).await.unwrap(), "0123456789");
/// assert!(matches!(read_limited(body, 4).await, Err(ReadError::TooLarge { limit: 4 })));
/// # });
/// ```
pub async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, ReadError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(ReadError::TooLarge { limit }),
        Err(error) => Err(ReadError::Body(error)),
    }
}

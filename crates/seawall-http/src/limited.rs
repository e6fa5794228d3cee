//! Reading a whole body, refused as soon as it passes a size limit.

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Why [`read_limited`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E> {
    /// The body is longer than the limit (nothing past it was kept).
    #[error("the body exceeds {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body's stream failed.
    #[error("reading the body: {0}")]
    Body(E),
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
pub async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, ReadError<B::Error>>
where
    B: Body,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => match error.downcast::<B::Error>() {
            Ok(own) => Err(ReadError::Body(*own)),
            Err(other) => {
                debug_assert!(other.is::<LengthLimitError>());
                Err(ReadError::TooLarge { limit })
            }
        },
    }
}

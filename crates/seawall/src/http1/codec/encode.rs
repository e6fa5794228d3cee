//! Writing bodies: the frames a body has ready are gathered into one buffer (chunk-encoded
//! when the length is unknown), so a small message goes out in a single write.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::body::Body;

use crate::message::BoxError;

/// The last chunk of a chunked body (no trailers).
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends `data` to `out`, as one chunk when `chunked`.
pub(crate) fn push_data(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if data.is_empty() {
        return;
    }
    if chunked {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
}

/// Appends the frames `body` has ready now, until about `limit` bytes are in `out`.
/// `Ok(true)` when the body has ended (its last chunk appended when `chunked`); `Ok(false)`
/// when it has more to come: wait with [`next_batch`] before writing more.
pub(crate) fn gather<B>(
    body: &mut B,
    out: &mut Vec<u8>,
    chunked: bool,
    limit: usize,
) -> Result<bool, BoxError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let mut cx = Context::from_waker(Waker::noop());
    match poll_gather(body, out, chunked, limit, &mut cx) {
        Poll::Ready(batch) => batch,
        Poll::Pending => Ok(false),
    }
}

/// Waits until `body` has something (a frame or its end), then appends it and whatever else
/// is ready, as [`gather`] does. `Ok(true)` when the body has ended.
pub(crate) async fn next_batch<B>(
    body: &mut B,
    out: &mut Vec<u8>,
    chunked: bool,
    limit: usize,
) -> Result<bool, BoxError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    poll_fn(|cx| poll_gather(body, out, chunked, limit, cx)).await
}

/// Appends what `body` has ready; `Pending` only when nothing was appended.
fn poll_gather<B>(
    body: &mut B,
    out: &mut Vec<u8>,
    chunked: bool,
    limit: usize,
    cx: &mut Context<'_>,
) -> Poll<Result<bool, BoxError>>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let start = out.len();
    while out.len() < limit {
        if !body.is_end_stream() {
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        push_data(out, data, chunked);
                    }
                    continue;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e.into())),
                Poll::Ready(None) => {}
                Poll::Pending if out.len() > start => return Poll::Ready(Ok(false)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if chunked {
            out.extend_from_slice(LAST_CHUNK);
        }
        return Poll::Ready(Ok(true));
    }
    Poll::Ready(Ok(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::codec::decode::{Decoded, Decoder, Framing};
    use bytes::BytesMut;
    use http_body_util::{BodyExt, Full};

    #[test]
    fn gathers_a_whole_body_in_one_buffer() {
        let mut body =
            Full::new(Bytes::from_static(b"hello")).map_err(|n| -> BoxError { match n {} });
        let mut out = b"HEAD\r\n\r\n".to_vec();
        assert!(gather(&mut body, &mut out, false, 1024).unwrap());
        assert_eq!(out, b"HEAD\r\n\r\nhello");
    }

    /// A body whose frames are all ready.
    struct Ready(std::collections::VecDeque<&'static [u8]>);

    impl Body for Ready {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
            Poll::Ready(
                self.0
                    .pop_front()
                    .map(|b| Ok(hyper::body::Frame::data(Bytes::from_static(b)))),
            )
        }
    }

    #[test]
    fn chunked_output_decodes_back() {
        let mut body = Ready([&b"data: 1\n\n"[..], b"", b"data: 2\n\n"].into());
        let mut out = Vec::new();
        assert!(gather(&mut body, &mut out, true, 1024).unwrap());
        let mut d = Decoder::new(Framing::Chunked);
        let mut buf = BytesMut::from(&out[..]);
        let mut body = Vec::new();
        while let Decoded::Data(b) = d.decode(&mut buf).unwrap() {
            body.extend_from_slice(&b);
        }
        assert!(d.is_done());
        assert_eq!(body, b"data: 1\n\ndata: 2\n\n");
    }
}

//! An HTTP/1 client for the gateway, the admin API and the mocks: build a request, send it, get
//! its status, headers and whole body (or the response with its body still streaming).

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::serve::BoxError;
use super::wait::within;

/// A request body the client can send: whole ([`body`]) or streamed (any boxed body).
pub type ClientBody = UnsyncBoxBody<Bytes, Infallible>;

/// A response read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as text; panics when it is not UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("a UTF-8 body")
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The value of header `name`, when present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A client that keeps connections open between requests (see [`send`] for one that does not).
#[derive(Clone)]
pub struct Client(hyper_util::client::legacy::Client<HttpConnector, ClientBody>);

impl Client {
    /// A client with an empty connection pool.
    pub fn new() -> Self {
        Client(hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http())
    }

    /// Sends `req` and returns the response once its head has arrived (bounded).
    pub async fn stream(&self, req: Request<ClientBody>) -> Response<Incoming> {
        let what = format!("the response to {} {}", req.method(), req.uri());
        within(&what, self.0.request(req)).await.unwrap()
    }

    /// Sends `req` and reads the whole response (bounded); `Err` when the connection fails or
    /// breaks before the response is complete.
    pub async fn try_send(&self, req: Request<ClientBody>) -> Result<Answer, BoxError> {
        let what = format!("the response to {} {}", req.method(), req.uri());
        within(&what, async {
            let (parts, body) = self.0.request(req).await?.into_parts();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body: body.collect().await?.to_bytes(),
            })
        })
        .await
    }

    /// [`Client::try_send`], panicking on a failure.
    pub async fn send(&self, req: Request<ClientBody>) -> Answer {
        self.try_send(req).await.unwrap()
    }
}

/// A request builder for `method` on `url`: add headers, then `.body(..)`.
pub fn request(method: &str, url: &str) -> http::request::Builder {
    Request::builder().method(method).uri(url)
}

/// A whole request body.
pub fn body(text: &str) -> ClientBody {
    Full::new(Bytes::copy_from_slice(text.as_bytes())).boxed_unsync()
}

/// Sends `req` on a connection of its own and reads the whole response (bounded).
pub async fn send(req: Request<ClientBody>) -> Answer {
    Client::new().send(req).await
}

/// [`send`], returning a failed or broken connection as `Err`.
pub async fn try_send(req: Request<ClientBody>) -> Result<Answer, BoxError> {
    Client::new().try_send(req).await
}

/// `GET url`.
pub async fn get(url: &str) -> Answer {
    send(request("GET", url).body(body("")).unwrap()).await
}

/// `POST url` with `text` as a `content_type` body.
pub async fn post(url: &str, content_type: &str, text: &str) -> Answer {
    let req = request("POST", url)
        .header("content-type", content_type)
        .body(body(text))
        .unwrap();
    send(req).await
}

/// `GET /v1/pipelines` on the admin listener `admin`: the first pipeline's view.
pub async fn pipeline_view(admin: std::net::SocketAddr) -> Value {
    get(&format!("http://{admin}/v1/pipelines")).await.json()[0].clone()
}

/// Output `name` of the first pipeline on the admin listener `admin` (`null` when absent).
pub async fn output_view(admin: std::net::SocketAddr, name: &str) -> Value {
    let view = pipeline_view(admin).await;
    let outputs = view["outputs"].as_array().cloned().unwrap_or_default();
    outputs
        .into_iter()
        .find(|o| o["name"] == name)
        .unwrap_or_default()
}

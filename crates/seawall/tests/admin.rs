//! The admin listener and the daemon's lifecycle, end to end over loopback sockets: the app
//! runs in-process (`App::start` on port 0) in front of a mock upstream started here.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use seawall::app::{App, AppError, RunningApp};
use seawall::config::parse;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

const TOKEN: &str = "adm1n-t0ken";
const TOKEN_ENV: &str = "SEAWALL_TEST_ADMIN_TOKEN";

/// A mock provider: `/slow` answers once the test releases it, `/fail` answers 503, every
/// other path 200.
struct Upstream {
    addr: SocketAddr,
    /// One message per `/slow` request that has arrived.
    arrived: mpsc::UnboundedReceiver<()>,
    /// One permit lets one `/slow` request answer.
    release: Arc<Semaphore>,
}

async fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrivals, arrived) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let gate = release.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (arrivals, gate) = (arrivals.clone(), gate.clone());
            let service = service_fn(move |req: Request<Incoming>| {
                let (arrivals, gate) = (arrivals.clone(), gate.clone());
                async move {
                    let status = match req.uri().path() {
                        "/slow" => {
                            let _ = arrivals.send(());
                            gate.acquire().await.unwrap().forget();
                            StatusCode::OK
                        }
                        "/fail" => StatusCode::SERVICE_UNAVAILABLE,
                        _ => StatusCode::OK,
                    };
                    let body = Full::new(Bytes::from_static(br#"{"ok":true}"#));
                    let resp = Response::builder()
                        .status(status)
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(body)
                        .unwrap();
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    Upstream {
        addr,
        arrived,
        release,
    }
}

/// Starts the daemon in front of `upstream`, with `breaker` as the provider's
/// `circuit_breaker` settings, and the admin token configured when `token` is set.
async fn start(upstream: SocketAddr, grace: &str, breaker: &str, token: bool) -> RunningApp {
    let admin_token = if token {
        format!(", token_env: {TOKEN_ENV}")
    } else {
        String::new()
    };
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0, shutdown_grace: {grace} }}
admin: {{ listen: 127.0.0.1:0{admin_token} }}
providers:
  - {{ name: mock, kind: generic, base_url: 'http://{upstream}', circuit_breaker: {{ {breaker} }} }}
"
    );
    let config = parse(&yaml).unwrap();
    let secrets = config
        .resolve_secrets(|name| (name == TOKEN_ENV).then(|| TOKEN.to_owned()))
        .unwrap();
    App::start(config, secrets).await.unwrap()
}

async fn start_default(token: bool) -> (RunningApp, Upstream) {
    let up = upstream().await;
    let app = start(up.addr, "5s", "failure_threshold: 5", token).await;
    (app, up)
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    /// Asserts a JSON error of `status` with `error.type` and `error.message` present.
    #[track_caller]
    fn assert_error(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{:?}", self.body);
        assert_eq!(self.header("content-type"), "application/json");
        let json = self.json();
        assert!(json["error"]["type"].is_string(), "{json}");
        assert!(json["error"]["message"].is_string(), "{json}");
        json
    }
}

async fn send(method: Method, addr: SocketAddr, path: &str, auth: Option<&str>) -> Reply {
    try_send(method, addr, path, auth).await.unwrap()
}

async fn try_send(
    method: Method,
    addr: SocketAddr,
    path: &str,
    auth: Option<&str>,
) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    let resp = client.request(req.body(Full::default())?).await?;
    let (parts, body) = resp.into_parts();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await?.to_bytes(),
    })
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(Method::GET, addr, path, None).await
}

/// The value of a Prometheus sample line.
fn sample_value(line: &str) -> f64 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// The view of the mock provider's breaker for `endpoint_part`, after one request created it.
async fn breaker_view(app: &RunningApp, endpoint_part: &str) -> Value {
    let list = get(app.admin_addr(), "/v1/breakers").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.header("content-type"), "application/json");
    list.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "mock" && v["endpoint"].as_str().unwrap().contains(endpoint_part))
        .cloned()
        .unwrap_or_else(|| panic!("no breaker for {endpoint_part}: {}", list.json()))
}

/// Creates the breaker of `/mock/v1/echo` with one proxied request and returns its id.
async fn echo_breaker(app: &RunningApp) -> String {
    assert_eq!(
        get(app.gateway_addr(), "/mock/v1/echo").await.status,
        StatusCode::OK
    );
    breaker_view(app, "v1/echo").await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn stop(app: RunningApp) {
    app.shutdown();
    tokio::time::timeout(Duration::from_secs(10), app.wait())
        .await
        .expect("the app stops");
}

#[tokio::test]
async fn healthz_and_readyz_answer_ok_while_running() {
    let (app, _up) = start_default(false).await;
    let health = get(app.admin_addr(), "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.header("content-type"), "application/json");
    assert_eq!(health.json(), serde_json::json!({ "status": "ok" }));
    let ready = get(app.admin_addr(), "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["status"], "ready");
    stop(app).await;
}

#[tokio::test]
async fn metrics_expose_the_state_gauge_once_a_breaker_exists() {
    let (app, _up) = start_default(false).await;
    echo_breaker(&app).await;
    let metrics = get(app.admin_addr(), "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert_eq!(metrics.header("content-type"), "text/plain; version=0.0.4");
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    let gauge = text
        .lines()
        .find(|l| {
            l.starts_with(r#"seawall_circuit_breaker_state{kind="provider",name="mock",endpoint=""#)
                && l.contains("v1/echo")
        })
        .unwrap_or_else(|| panic!("no state gauge in\n{text}"));
    assert_eq!(sample_value(gauge), 0.0, "{gauge}");
    stop(app).await;
}

/// The `seawall_gateway_worker_connections` samples, summed over the workers, and how many
/// workers report one.
async fn worker_connections(app: &RunningApp) -> (f64, usize) {
    let metrics = get(app.admin_addr(), "/metrics").await;
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    let samples: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("seawall_gateway_worker_connections{worker="))
        .map(sample_value)
        .collect();
    (samples.iter().sum(), samples.len())
}

#[tokio::test]
async fn metrics_count_the_open_client_connections_of_each_gateway_worker() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = upstream().await;
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0, workers: 3 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: mock, kind: generic, base_url: 'http://{}' }}
",
        up.addr
    );
    let config = parse(&yaml).unwrap();
    let secrets = config.resolve_secrets(|_| None).unwrap();
    let app = App::start(config, secrets).await.unwrap();
    assert_eq!(worker_connections(&app).await, (0.0, 3));
    // Two kept-alive connections, each answered once (so each has been accepted).
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut client = TcpStream::connect(app.gateway_addr()).await.unwrap();
        client
            .write_all(b"GET /mock/v1/echo HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        client.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        clients.push(client);
    }
    assert_eq!(worker_connections(&app).await, (2.0, 3));
    // Closed connections leave the count once their worker sees the close.
    drop(clients);
    let drained = async {
        while worker_connections(&app).await.0 != 0.0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), drained)
        .await
        .expect("the count returns to zero");
    stop(app).await;
}

#[tokio::test]
async fn breaker_list_shows_the_design_fields() {
    let (app, _up) = start_default(false).await;
    echo_breaker(&app).await;
    let view = breaker_view(&app, "v1/echo").await;
    assert_eq!(view["kind"], "provider");
    assert_eq!(view["name"], "mock");
    assert_eq!(view["model"], "");
    assert_eq!(view["state"], "closed");
    assert_eq!(view["mode"], "normal");
    assert!(view["open_until"].is_null());
    assert!(view["id"]
        .as_str()
        .unwrap()
        .chars()
        .all(|c| c.is_ascii_hexdigit()));
    for counter in ["consecutive_failures", "window_calls", "rejected", "trips"] {
        assert!(view["counts"][counter].is_u64(), "{counter} in {view}");
    }
    stop(app).await;
}

#[tokio::test]
async fn force_open_with_the_token_opens_the_breaker_and_the_gateway_rejects() {
    let (app, _up) = start_default(true).await;
    let id = echo_breaker(&app).await;
    let path = format!("/v1/breakers/{id}/force-open");
    let reply = send(Method::POST, app.admin_addr(), &path, Some(&bearer())).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let view = reply.json();
    assert_eq!(
        (view["id"].as_str(), view["state"].as_str()),
        (Some(&*id), Some("open"))
    );
    assert_eq!(view["mode"], "forced_open");
    assert_eq!(view["reason"], "manual");
    let listed = breaker_view(&app, "v1/echo").await;
    assert_eq!(
        (listed["state"].as_str(), listed["mode"].as_str()),
        (Some("open"), Some("forced_open"))
    );

    let rejected = get(app.gateway_addr(), "/mock/v1/echo").await;
    assert_eq!(rejected.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(rejected.header("x-seawall-circuit"), "open");
    stop(app).await;
}

#[tokio::test]
async fn wrong_or_missing_token_is_401_and_changes_nothing() {
    let (app, _up) = start_default(true).await;
    let id = echo_breaker(&app).await;
    let path = format!("/v1/breakers/{id}/force-open");
    for auth in [
        None,
        Some("Bearer wrong"),
        Some(TOKEN),
        Some("Bearer adm1n-t0ke"),
    ] {
        let reply = send(Method::POST, app.admin_addr(), &path, auth).await;
        reply.assert_error(StatusCode::UNAUTHORIZED);
    }
    assert_eq!(breaker_view(&app, "v1/echo").await["mode"], "normal");
    stop(app).await;
}

#[tokio::test]
async fn without_an_admin_token_configured_actions_are_403() {
    let (app, _up) = start_default(false).await;
    let id = echo_breaker(&app).await;
    let path = format!("/v1/breakers/{id}/force-open");
    let reply = send(Method::POST, app.admin_addr(), &path, Some(&bearer())).await;
    let json = reply.assert_error(StatusCode::FORBIDDEN);
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("admin.token_env"), "{message}");
    assert_eq!(breaker_view(&app, "v1/echo").await["mode"], "normal");
    stop(app).await;
}

#[tokio::test]
async fn unknown_breaker_id_or_action_is_404() {
    let (app, _up) = start_default(true).await;
    let id = echo_breaker(&app).await;
    let auth = Some(bearer());
    let unknown_id = send(
        Method::POST,
        app.admin_addr(),
        "/v1/breakers/0123abcd/reset",
        auth.as_deref(),
    )
    .await;
    unknown_id.assert_error(StatusCode::NOT_FOUND);
    let path = format!("/v1/breakers/{id}/explode");
    let unknown_action = send(Method::POST, app.admin_addr(), &path, auth.as_deref()).await;
    unknown_action.assert_error(StatusCode::NOT_FOUND);
    stop(app).await;
}

#[tokio::test]
async fn disable_then_reset_switch_the_mode() {
    let (app, _up) = start_default(true).await;
    let id = echo_breaker(&app).await;
    let auth = bearer();
    let admin = app.admin_addr();
    let forced = send(
        Method::POST,
        admin,
        &format!("/v1/breakers/{id}/force-open"),
        Some(&auth),
    )
    .await;
    assert_eq!(forced.json()["mode"], "forced_open");

    let disabled = send(
        Method::POST,
        admin,
        &format!("/v1/breakers/{id}/disable"),
        Some(&auth),
    )
    .await;
    assert_eq!(disabled.status, StatusCode::OK);
    assert_eq!(disabled.json()["mode"], "disabled");
    assert_eq!(
        get(app.gateway_addr(), "/mock/v1/echo").await.status,
        StatusCode::OK
    );

    let reset = send(
        Method::POST,
        admin,
        &format!("/v1/breakers/{id}/reset"),
        Some(&auth),
    )
    .await;
    assert_eq!(reset.status, StatusCode::OK);
    let view = reset.json();
    assert_eq!(
        (view["state"].as_str(), view["mode"].as_str()),
        (Some("closed"), Some("normal"))
    );
    assert_eq!(
        get(app.gateway_addr(), "/mock/v1/echo").await.status,
        StatusCode::OK
    );
    stop(app).await;
}

#[tokio::test]
async fn pipelines_are_listed_and_output_breakers_are_listed_and_actionable() {
    let (app, _up) = start_default(true).await;
    let none = get(app.admin_addr(), "/v1/pipelines").await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.json(), serde_json::json!([]));
    stop(app).await;

    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0, token_env: {TOKEN_ENV} }}
pipelines:
  - name: events
    outputs:
      - {{ name: collector, type: http, endpoint: 'http://127.0.0.1:9/a',
          alternates: ['http://127.0.0.1:9/b'] }}
      - {{ name: sink, type: blackhole }}
"
    );
    let config = parse(&yaml).unwrap();
    let secrets = config
        .resolve_secrets(|name| (name == TOKEN_ENV).then(|| TOKEN.to_owned()))
        .unwrap();
    let app = App::start(config, secrets).await.unwrap();
    let pipelines = get(app.admin_addr(), "/v1/pipelines").await;
    assert_eq!(pipelines.status, StatusCode::OK);
    assert_eq!(pipelines.header("content-type"), "application/json");
    assert_eq!(
        pipelines.json()[0]["name"],
        "events",
        "{}",
        pipelines.json()
    );

    let list = get(app.admin_addr(), "/v1/breakers").await.json();
    let outputs: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == "output" && v["name"] == "collector")
        .collect();
    let endpoints: Vec<&str> = outputs
        .iter()
        .map(|v| v["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(
        endpoints,
        ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"],
        "{list}"
    );
    let id = outputs[0]["id"].as_str().unwrap();
    let forced = send(
        Method::POST,
        app.admin_addr(),
        &format!("/v1/breakers/{id}/force-open"),
        Some(&bearer()),
    )
    .await;
    assert_eq!(forced.status, StatusCode::OK, "{:?}", forced.body);
    assert_eq!(forced.json()["kind"], "output");
    assert_eq!(forced.json()["mode"], "forced_open");
    let list = get(app.admin_addr(), "/v1/breakers").await.json();
    let view = list
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .unwrap();
    assert_eq!(view["state"], "open", "{view}");
    stop(app).await;
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405_both_json() {
    let (app, _up) = start_default(true).await;
    let admin = app.admin_addr();
    get(admin, "/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    get(admin, "/v1/breakers/extra")
        .await
        .assert_error(StatusCode::NOT_FOUND);
    let post = send(Method::POST, admin, "/metrics", None).await;
    post.assert_error(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.header("allow"), "GET, HEAD");
    let get_action = get(admin, "/v1/breakers/0123abcd/reset").await;
    get_action.assert_error(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get_action.header("allow"), "POST");
    stop(app).await;
}

#[tokio::test]
async fn open_breaker_turns_half_open_on_time_without_traffic() {
    let up = upstream().await;
    let settings = "failure_threshold: 1, open_timeout: 100ms, jitter: 0, check_interval: 20ms";
    let app = start(up.addr, "5s", settings, false).await;
    let failed = get(app.gateway_addr(), "/mock/fail").await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(breaker_view(&app, "fail").await["state"], "open");
    // Well past the open timeout, a few ticks later: the ticker alone moved it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let view = breaker_view(&app, "fail").await;
    assert_eq!(view["state"], "half_open", "{view}");
    let metrics = String::from_utf8(get(app.admin_addr(), "/metrics").await.body.to_vec()).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("seawall_circuit_breaker_state{")
                && l.contains("fail")
                && sample_value(l) == 0.5),
        "{metrics}"
    );
    stop(app).await;
}

/// Connects until the listener at `addr` refuses (the accept loop drops it asynchronously
/// after `shutdown()`); panics if it still accepts after two seconds.
async fn wait_until_refused(addr: SocketAddr) {
    for _ in 0..100 {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("{addr} still accepts connections");
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_refuses_new_connections() {
    let mut up = upstream().await;
    let app = start(up.addr, "10s", "failure_threshold: 5", false).await;
    let (gateway, admin) = (app.gateway_addr(), app.admin_addr());
    let in_flight = tokio::spawn(try_send(Method::GET, gateway, "/mock/slow", None));
    up.arrived.recv().await.unwrap();

    app.shutdown();
    wait_until_refused(gateway).await;
    // The admin listener stays up while the gateway drains, and says so.
    let ready = get(admin, "/readyz").await;
    assert_eq!(
        ready.assert_error(StatusCode::SERVICE_UNAVAILABLE)["error"]["type"],
        "draining"
    );
    assert!(!in_flight.is_finished());

    up.release.add_permits(1);
    let reply = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], br#"{"ok":true}"#);
    tokio::time::timeout(Duration::from_secs(10), app.wait())
        .await
        .expect("the app stops once the request finished");
    assert!(TcpStream::connect(gateway).await.is_err());
    assert!(TcpStream::connect(admin).await.is_err());
}

#[tokio::test]
async fn requests_outliving_the_shutdown_grace_are_cut() {
    let mut up = upstream().await;
    let app = start(up.addr, "200ms", "failure_threshold: 5", false).await;
    let stuck = tokio::spawn(try_send(
        Method::GET,
        app.gateway_addr(),
        "/mock/slow",
        None,
    ));
    up.arrived.recv().await.unwrap();
    app.shutdown();
    tokio::time::timeout(Duration::from_secs(5), app.wait())
        .await
        .expect("the app stops after the grace");
    assert!(
        stuck.await.unwrap().is_err(),
        "the cut request has no response"
    );
}

#[tokio::test]
async fn a_taken_port_is_a_bind_error_naming_the_field() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = parse(&format!(
        "server: {{ listen: 127.0.0.1:0 }}\nadmin: {{ listen: 127.0.0.1:{port} }}\n"
    ))
    .unwrap();
    let err = App::start(config, Default::default()).await.unwrap_err();
    assert!(
        matches!(
            err,
            AppError::Bind {
                field: "admin.listen",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_config_error());
    let message = err.to_string();
    assert!(
        message.contains(&format!("127.0.0.1:{port} (admin.listen at 2:18)")),
        "{message}"
    );
}

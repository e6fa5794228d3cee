//! The admin listener and the daemon's lifecycle, end to end over loopback sockets: the app
//! runs in-process (`App::start` on port 0) in front of a mock upstream started here.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::client::{self, Answer};
use common::daemon::{wait_until_refused, Daemon};
use common::exposition::Exposition;
use common::serve::BoxError;
use common::upstream::{Gate, MockUpstream, Reply};
use common::wire::Wire;
use http::{header, Method, StatusCode};
use seawall::app::AppError;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "adm1n-t0ken";
const TOKEN_ENV: &str = "SEAWALL_TEST_ADMIN_TOKEN";

/// A mock provider: `/slow` answers once the returned gate opens, `/fail` answers 503, every
/// other path 200.
async fn upstream() -> (MockUpstream, Gate) {
    let up = MockUpstream::start(Reply::ok()).await;
    let release = Gate::new();
    up.route("/slow", Reply::ok().hold(&release));
    up.route("/fail", Reply::status(503).json(r#"{"ok":true}"#));
    (up, release)
}

/// Starts the daemon in front of `upstream`, with `breaker` as the provider's
/// `circuit_breaker` settings, and the admin token configured when `token` is set.
async fn start(upstream: SocketAddr, grace: &str, breaker: &str, token: bool) -> Daemon {
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
    Daemon::start_with_env(&yaml, &[(TOKEN_ENV, TOKEN)]).await
}

async fn start_default(token: bool) -> (Daemon, MockUpstream) {
    let (up, _) = upstream().await;
    let app = start(up.addr(), "5s", "failure_threshold: 5", token).await;
    (app, up)
}

/// Asserts a JSON error of `status` with `error.type` and `error.message` present.
#[track_caller]
fn assert_error(reply: &Answer, status: StatusCode) -> Value {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let json = reply.json();
    assert!(json["error"]["type"].is_string(), "{json}");
    assert!(json["error"]["message"].is_string(), "{json}");
    json
}

async fn send(method: Method, addr: SocketAddr, path: &str, auth: Option<&str>) -> Answer {
    try_send(method, addr, path, auth).await.unwrap()
}

async fn try_send(
    method: Method,
    addr: SocketAddr,
    path: &str,
    auth: Option<&str>,
) -> Result<Answer, BoxError> {
    let mut req = client::request(method.as_str(), &format!("http://{addr}{path}"));
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    client::try_send(req.body(client::body(""))?).await
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    send(Method::GET, addr, path, None).await
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// The view of the mock provider's breaker for `endpoint_part`, after one request created it.
async fn breaker_view(app: &Daemon, endpoint_part: &str) -> Value {
    let list = get(app.admin_addr(), "/v1/breakers").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.header("content-type"), Some("application/json"));
    list.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "mock" && v["endpoint"].as_str().unwrap().contains(endpoint_part))
        .cloned()
        .unwrap_or_else(|| panic!("no breaker for {endpoint_part}: {}", list.json()))
}

/// Creates the breaker of `/mock/v1/echo` with one proxied request and returns its id.
async fn echo_breaker(app: &Daemon) -> String {
    assert_eq!(
        get(app.gateway_addr(), "/mock/v1/echo").await.status,
        StatusCode::OK
    );
    breaker_view(app, "v1/echo").await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn healthz_and_readyz_answer_ok_while_running() {
    let (app, _up) = start_default(false).await;
    let health = get(app.admin_addr(), "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.header("content-type"), Some("application/json"));
    assert_eq!(health.json(), serde_json::json!({ "status": "ok" }));
    let ready = get(app.admin_addr(), "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["status"], "ready");
    app.stop().await;
}

#[tokio::test]
async fn metrics_expose_the_state_gauge_once_a_breaker_exists() {
    let (app, _up) = start_default(false).await;
    echo_breaker(&app).await;
    let metrics = get(app.admin_addr(), "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = Exposition::new(metrics.text());
    let (gauge, value) = text
        .samples(r#"seawall_circuit_breaker_state{kind="provider",name="mock",endpoint=""#)
        .find(|(series, _)| series.contains("v1/echo"))
        .unwrap_or_else(|| panic!("no state gauge in\n{text}"));
    assert_eq!(value, 0.0, "{gauge}");
    app.stop().await;
}

/// The `seawall_gateway_worker_connections` samples, summed over the workers, and how many
/// workers report one.
async fn worker_connections(app: &Daemon) -> (f64, usize) {
    let metrics = app.metrics().await;
    let samples: Vec<f64> = metrics
        .samples("seawall_gateway_worker_connections{worker=")
        .map(|(_, value)| value)
        .collect();
    (samples.iter().sum(), samples.len())
}

#[tokio::test]
async fn metrics_count_the_open_client_connections_of_each_gateway_worker() {
    let (up, _) = upstream().await;
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0, workers: 3 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: mock, kind: generic, base_url: 'http://{}' }}
",
        up.addr()
    );
    let app = Daemon::start(&yaml).await;
    assert_eq!(worker_connections(&app).await, (0.0, 3));
    // Two kept-alive connections, each answered once (so each has been accepted).
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut client = Wire::connect(app.gateway_addr()).await;
        client
            .send(b"GET /mock/v1/echo HTTP/1.1\r\nhost: x\r\n\r\n")
            .await;
        let head = client.exact(12).await;
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
    app.stop().await;
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
    app.stop().await;
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
    assert_eq!(rejected.header("x-seawall-circuit"), Some("open"));
    app.stop().await;
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
        assert_error(&reply, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(breaker_view(&app, "v1/echo").await["mode"], "normal");
    app.stop().await;
}

#[tokio::test]
async fn without_an_admin_token_configured_actions_are_403() {
    let (app, _up) = start_default(false).await;
    let id = echo_breaker(&app).await;
    let path = format!("/v1/breakers/{id}/force-open");
    let reply = send(Method::POST, app.admin_addr(), &path, Some(&bearer())).await;
    let json = assert_error(&reply, StatusCode::FORBIDDEN);
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("admin.token_env"), "{message}");
    assert_eq!(breaker_view(&app, "v1/echo").await["mode"], "normal");
    app.stop().await;
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
    assert_error(&unknown_id, StatusCode::NOT_FOUND);
    let path = format!("/v1/breakers/{id}/explode");
    let unknown_action = send(Method::POST, app.admin_addr(), &path, auth.as_deref()).await;
    assert_error(&unknown_action, StatusCode::NOT_FOUND);
    app.stop().await;
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
    app.stop().await;
}

#[tokio::test]
async fn pipelines_are_listed_and_output_breakers_are_listed_and_actionable() {
    let (app, _up) = start_default(true).await;
    let none = get(app.admin_addr(), "/v1/pipelines").await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.json(), serde_json::json!([]));
    app.stop().await;

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
    let app = Daemon::start_with_env(&yaml, &[(TOKEN_ENV, TOKEN)]).await;
    let pipelines = get(app.admin_addr(), "/v1/pipelines").await;
    assert_eq!(pipelines.status, StatusCode::OK);
    assert_eq!(pipelines.header("content-type"), Some("application/json"));
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
    app.stop().await;
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405_both_json() {
    let (app, _up) = start_default(true).await;
    let admin = app.admin_addr();
    assert_error(&get(admin, "/nope").await, StatusCode::NOT_FOUND);
    assert_error(
        &get(admin, "/v1/breakers/extra").await,
        StatusCode::NOT_FOUND,
    );
    let post = send(Method::POST, admin, "/metrics", None).await;
    assert_error(&post, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    let get_action = get(admin, "/v1/breakers/0123abcd/reset").await;
    assert_error(&get_action, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get_action.header("allow"), Some("POST"));
    app.stop().await;
}

#[tokio::test]
async fn open_breaker_turns_half_open_on_time_without_traffic() {
    let (up, _) = upstream().await;
    let settings = "failure_threshold: 1, open_timeout: 100ms, jitter: 0, check_interval: 20ms";
    let app = start(up.addr(), "5s", settings, false).await;
    let failed = get(app.gateway_addr(), "/mock/fail").await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(breaker_view(&app, "fail").await["state"], "open");
    // Well past the open timeout, a few ticks later: the ticker alone moved it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let view = breaker_view(&app, "fail").await;
    assert_eq!(view["state"], "half_open", "{view}");
    let metrics = app.metrics().await;
    assert!(
        metrics
            .samples("seawall_circuit_breaker_state{")
            .any(|(series, value)| series.contains("fail") && value == 0.5),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_refuses_new_connections() {
    let (up, release) = upstream().await;
    let app = start(up.addr(), "10s", "failure_threshold: 5", false).await;
    let (gateway, admin) = (app.gateway_addr(), app.admin_addr());
    let in_flight = tokio::spawn(try_send(Method::GET, gateway, "/mock/slow", None));
    up.wait_for_count(1).await;

    app.shutdown();
    wait_until_refused(gateway).await;
    // The admin listener stays up while the gateway drains, and says so.
    let ready = get(admin, "/readyz").await;
    assert_eq!(
        assert_error(&ready, StatusCode::SERVICE_UNAVAILABLE)["error"]["type"],
        "draining"
    );
    assert!(!in_flight.is_finished());

    release.open();
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
    let (up, _) = upstream().await;
    let app = start(up.addr(), "200ms", "failure_threshold: 5", false).await;
    let stuck = tokio::spawn(try_send(
        Method::GET,
        app.gateway_addr(),
        "/mock/slow",
        None,
    ));
    up.wait_for_count(1).await;
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
    let yaml =
        format!("server: {{ listen: 127.0.0.1:0 }}\nadmin: {{ listen: 127.0.0.1:{port} }}\n");
    let err = Daemon::try_start(&yaml, &[], None).await.unwrap_err();
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

//! The path rules over hostile inputs: fixed cases, then every short combination of the
//! pieces attacks are made of, checked against a lenient server's reading of the result.

use super::*;

fn norm(path: &str) -> Result<String, PathError> {
    normalize(path).map(Cow::into_owned)
}

#[test]
fn normal_paths_are_borrowed_as_they_are() {
    for path in [
        "/",
        "/anthropic",
        "/anthropic/",
        "/anthropic/v1/messages",
        "/openai/v1/chat/completions/",
        "/p/v1/x:batchGet",
        "/p/v1/a;b=c/d@e",
        "/p/v1/~user/it's(1)+2,3=*!$&",
    ] {
        assert!(
            matches!(normalize(path), Ok(Cow::Borrowed(p)) if p == path),
            "{path}"
        );
    }
}

#[test]
fn percent_escapes_of_unreserved_bytes_are_decoded_and_the_rest_upper_cased() {
    for (raw, normal) in [
        ("/p/v1/%78", "/p/v1/x"),
        ("/p/%76%31/%7e%7E%2d%2D%5f%2e%41z", "/p/v1/~~--_.Az"),
        ("/p/%c3%a9/%2f/%3b%3F%23", "/p/%C3%A9/%2F/%3B%3F%23"),
        ("/p/a%20b%25c%00", "/p/a%20b%25c%00"),
        ("/%70/x", "/p/x"),
        ("/p/%252ex", "/p/%252ex"),
    ] {
        assert_eq!(norm(raw), Ok(normal.to_owned()), "{raw}");
    }
}

#[test]
fn bytes_that_may_not_stand_in_a_path_are_encoded() {
    for (raw, normal) in [
        ("/p/caf\u{e9}", "/p/caf%C3%A9"),
        ("/p/{x}", "/p/%7Bx%7D"),
        ("/p/a\\b", "/p/a%5Cb"),
        ("/p/\"|^[]`", "/p/%22%7C%5E%5B%5D%60"),
        ("/p/\u{1F600}", "/p/%F0%9F%98%80"),
    ] {
        assert_eq!(norm(raw), Ok(normal.to_owned()), "{raw}");
    }
    assert_eq!(norm("/p/{x}"), norm("/p/%7bx%7D"), "one spelling");
}

#[test]
fn malformed_escapes_are_refused() {
    for raw in [
        "/p/%",
        "/p/%4",
        "/p/%zz",
        "/p/%4g",
        "/p/%%41",
        "/p/x%",
        "/p/%-1",
        "/p/%+1",
        "/%/x",
        "/p/%\u{e9}",
    ] {
        assert_eq!(norm(raw), Err(PathError::InvalidEncoding), "{raw}");
    }
}

#[test]
fn duplicate_slashes_and_dot_segments_resolve_within_the_provider() {
    for (raw, normal) in [
        ("//p//v1///x", "/p/v1/x"),
        ("/p/v1/./x", "/p/v1/x"),
        ("/p/v1/y/../x", "/p/v1/x"),
        ("/p/v1/y/%2e%2E/x", "/p/v1/x"),
        ("/p/v1/y/.%2e/./x/.", "/p/v1/x/"),
        ("/p/v1/x/", "/p/v1/x/"),
        ("/p/v1/x//", "/p/v1/x/"),
        ("/p/v1/..", "/p/"),
        ("/p/.", "/p/"),
        ("/./p/x", "/p/x"),
        ("/p/.well-known/x", "/p/.well-known/x"),
        ("/p/.../x", "/p/.../x"),
        ("/p/..a/x", "/p/..a/x"),
        ("/p/a;../x", "/p/a;../x"),
        ("/", "/"),
        ("//", "/"),
        ("/.", "/"),
    ] {
        assert_eq!(norm(raw), Ok(normal.to_owned()), "{raw}");
    }
}

#[test]
fn a_dot_dot_that_would_pop_the_provider_is_refused() {
    for raw in [
        "/..",
        "/../p/x",
        "/p/..",
        "/p/../q/x",
        "/p/%2e%2e/q/x",
        "/p/.%2E/q/x",
        "/p/v1/../../q",
        "/p//..//q",
        "/p/./../q",
        "/x/../p/v1",
    ] {
        assert_eq!(norm(raw), Err(PathError::EscapesProvider), "{raw}");
    }
}

#[test]
fn dot_segments_hidden_from_the_resolution_are_refused() {
    for raw in [
        "/p/..%2Fq",
        "/p/..%2fq",
        "/p/..%5Cq",
        "/p/..\\q",
        "/p/a\\..\\..\\q",
        "/p/..;/q",
        "/p/..;jsessionid=1/q",
        "/p/.;x/q",
        "/p/..%3B/q",
        "/p/..%00/q",
        "/p/%252e%252e/q",
        "/p/%252E%252E%252Fq",
        "/p/.%252e/q",
        "/p/%25252e%25252e%2F..%2F",
        "/p/v1/x%2F..%2F..%2Fy",
        "/..;/p/x",
    ] {
        assert_eq!(norm(raw), Err(PathError::AmbiguousSegment), "{raw}");
    }
}

#[test]
fn refusals_name_their_reason() {
    assert_eq!(PathError::InvalidEncoding.reason(), "invalid_encoding");
    assert_eq!(PathError::EscapesProvider.reason(), "escapes_provider");
    assert_eq!(PathError::AmbiguousSegment.reason(), "ambiguous_segment");
    assert!(PathError::EscapesProvider
        .to_string()
        .contains("would leave the provider"));
}

/// What a lenient upstream makes of a path: decodes it up to three times, treats `\` as `/`,
/// cuts segments at `;` and NUL, resolves dot segments (popping at the root does nothing).
fn lenient_server_view(path: &str) -> Vec<Vec<u8>> {
    let mut bytes = path.as_bytes().to_vec();
    for _ in 0..3 {
        bytes = percent_decode(&bytes);
    }
    let mut stack: Vec<Vec<u8>> = Vec::new();
    for piece in bytes.split(|&b| b == b'/' || b == b'\\') {
        let name = piece.split(|&b| b == b';' || b == 0).next().unwrap();
        match name {
            b"" | b"." => {}
            b".." => {
                stack.pop();
            }
            _ => stack.push(piece.to_vec()),
        }
    }
    stack
}

/// Every path of up to four pieces after `/p/`: whatever is accepted is normal (a second pass
/// leaves it alone), keeps `p` first, and keeps `p` first for a lenient server too.
#[test]
fn no_combination_of_hostile_pieces_leaves_the_provider() {
    const PIECES: &[&str] = &[
        "/", "a", ".", "..", "%2e", "%2E", "%2f", "%5C", "\\", ";", "%3b", "%25", "%", "2e", "%00",
        "\u{e9}", "~", "%7e",
    ];
    let mut accepted = 0;
    let mut tried = 0;
    let mut stack = vec![(String::from("/p/"), 0)];
    while let Some((path, pieces)) = stack.pop() {
        tried += 1;
        if let Ok(normal) = normalize(&path) {
            accepted += 1;
            let again = normalize(&normal).map(Cow::into_owned);
            assert_eq!(again.as_deref(), Ok(&*normal), "{path} is not idempotent");
            assert!(
                normal == "/p" || normal.starts_with("/p/"),
                "{path} → {normal}"
            );
            for segment in normal[1..].trim_end_matches('/').split('/') {
                assert!(!matches!(segment, "" | "." | ".."), "{path} → {normal}");
                assert!(segment.bytes().all(|b| b == b'%' || stands_for_itself(b)));
            }
            let view = lenient_server_view(&normal);
            assert_eq!(
                view.first().map(Vec::as_slice),
                Some(&b"p"[..]),
                "{path} → {normal} leaves the provider for a lenient server"
            );
        }
        if pieces < 4 {
            for piece in PIECES {
                stack.push((format!("{path}{piece}"), pieces + 1));
            }
        }
    }
    assert!(
        tried > 100_000 && accepted > 10_000,
        "{tried} tried, {accepted} accepted"
    );
}

fn label(path: &str) -> String {
    endpoint(path, &[]).into_owned()
}

#[test]
fn id_like_segments_collapse_and_names_stay() {
    for (path, expected) in [
        ("/", "/"),
        ("/v1/messages", "/v1/messages"),
        ("/v1/messages/", "/v1/messages"),
        ("/v1/threads/12345/runs", "/v1/threads/{id}/runs"),
        (
            "/v1/threads/thread_Ak0Hk5cvGHaZyaLhlE4kFZ1X/runs/run_9xYz8WvU7tSr6QpO5nMl4KjI",
            "/v1/threads/{id}/runs/{id}",
        ),
        (
            "/v1/threads/thread_abc123/messages",
            "/v1/threads/{id}/messages",
        ),
        (
            "/v1/messages/msg_01XFDUDYJgAACzvnptvVoYEL",
            "/v1/messages/{id}",
        ),
        (
            "/v1/messages/batches/msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d/results",
            "/v1/messages/batches/{id}/results",
        ),
        ("/v1/files/file-BK7bzQj3FfZFXr7DbL6xJwfo", "/v1/files/{id}"),
        (
            "/v1/chat/completions/chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "/v1/chat/completions/{id}",
        ),
        (
            "/v1/items/0B4F3C1E-8a8b-4c59-9d7e-3f6b9e2a1c44",
            "/v1/items/{id}",
        ),
        (
            "/v1/items/run-0b4f3c1e-8a8b-4c59-9d7e-3f6b9e2a1c44-x",
            "/v1/items/{id}",
        ),
        (
            "/v1/responses/resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
            "/v1/responses/{id}",
        ),
        ("/v1/x/QwErTyUiOpAsDfGhJk", "/v1/x/{id}"),
        ("/v1/batches/batch_6721b5ec", "/v1/batches/{id}"),
    ] {
        assert_eq!(label(path), expected, "{path}");
    }
    for name in [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
        "gpt-3.5-turbo-0125",
        "o1-preview",
        "o3",
        "claude-3-5-sonnet-20241022",
        "claude-sonnet-4-5",
        "claude-opus-4-1-20250805",
        "text-embedding-3-small",
        "dall-e-3",
        "whisper-1",
        "babbage-002",
        "tts-1-hd",
        "omni-moderation-latest",
        "chatgpt-4o-latest",
        "gemini-1.5-pro-002:streamGenerateContent",
        "claude-3-5-sonnet-v2@20241022:streamRawPredict",
        "Meta-Llama-3.1-70B-Instruct-Turbo",
        "submit_tool_outputs",
        "count_tokens",
        "service_accounts",
        "input_items",
        "2023-06-01",
        "v1",
        "v1beta",
        ".well-known",
        "transcriptions",
        "caf%C3%A9",
    ] {
        let path = format!("/v1/models/{name}");
        assert_eq!(label(&path), path, "{name} is a name, not an id");
    }
}

#[test]
fn labels_are_capped_at_a_segment() {
    let long = format!("/{}", "a".repeat(10_000));
    assert_eq!(label(&long), "/{id}", "one long segment is an opaque token");
    let deep: String = (0..5_000).map(|i| format!("/w{}", i % 7)).collect();
    let capped = label(&deep);
    assert!(capped.len() <= MAX_ENDPOINT_LEN, "{capped}");
    assert!(capped.ends_with("/{...}"), "{capped}");
    assert!(deep.starts_with(capped.trim_end_matches("/{...}")));
    let names: String = (0..40)
        .map(|i| format!("/{}", "n".repeat(60 + i % 5)))
        .collect();
    let capped = label(&names);
    assert!(capped.len() <= MAX_ENDPOINT_LEN, "{capped}");
    assert_eq!(capped.matches('/').count(), 2, "{capped}");
    let exact = format!("/{}/{}", "a".repeat(63), "b".repeat(63));
    assert_eq!(exact.len(), MAX_ENDPOINT_LEN);
    assert_eq!(label(&exact), exact, "exactly the cap is kept whole");
}

#[test]
fn templates_win_in_order_over_the_heuristic() {
    let templates: Vec<EndpointTemplate> = [
        "/v1/threads/{id}/runs",
        "/v1/items/{item}/parts",
        "/v1/items/{item}/{part}",
        "/v1/models/{model}",
        "/",
    ]
    .iter()
    .map(|t| t.parse().unwrap())
    .collect();
    let label = |path| endpoint(path, &templates).into_owned();
    assert_eq!(label("/v1/threads/t/runs"), "/v1/threads/{id}/runs");
    assert_eq!(label("/v1/items/short/parts/"), "/v1/items/{item}/parts");
    assert_eq!(label("/v1/items/short/other"), "/v1/items/{item}/{part}");
    assert_eq!(label("/v1/models/gpt-4o"), "/v1/models/{model}");
    assert_eq!(label("/"), "/");
    assert_eq!(
        label("/v1/items/short"),
        "/v1/items/short",
        "no template matches"
    );
    assert_eq!(
        label("/v1/items/12345"),
        "/v1/items/{id}",
        "then the heuristic"
    );
    assert_eq!(label("/v1/threads/t/runs/r"), "/v1/threads/t/runs/r");
}

#[test]
fn template_literals_are_what_normalisation_leaves_as_it_is() {
    for b in 0..=u8::MAX {
        let c = char::from(b);
        if matches!(c, '/' | '{' | '}' | '.') {
            continue;
        }
        let path = format!("/v1/a{c}");
        let template_ok = path.parse::<EndpointTemplate>().is_ok();
        let unchanged = normalize(&path).is_ok_and(|n| n == path);
        assert_eq!(template_ok, unchanged, "byte {b:#04x}");
    }
}

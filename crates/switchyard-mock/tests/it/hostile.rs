//! The hostile-upstream faults as a raw client sees them: huge bodies, endless streams,
//! garbage frames, streams cut mid-frame, absurd retry hints, and faults drawn at random.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_mock::{
    AnthropicWire, Fault, FaultRule, GARBAGE_LINE_BYTES, GeminiWire, KeyScript, MockUpstream,
};

const KEY: &str = "sk-mock-hostile";

async fn start(builder: switchyard_mock::MockBuilder, fault: Fault) -> MockUpstream {
    builder
        .key(KeyScript::valid("key-a", KEY))
        .fault(FaultRule::always(fault))
        .start()
        .await
        .expect("starts")
}

async fn post_openai(mock: &MockUpstream, stream: bool) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth(KEY)
        .json(&json!({"model": "gpt-mock", "stream": stream,
                      "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .expect("the mock answers")
}

/// Reads the body chunk by chunk (real time: a bounded wait on another task, not a clock
/// under test) until it ends; `Err` carries what came before the connection broke.
async fn read_all(mut response: reqwest::Response) -> Result<Vec<u8>, Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
            .await
            .expect("the body moves within 30 s");
        match chunk {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return Ok(body),
            Err(_) => return Err(body),
        }
    }
}

#[tokio::test]
async fn a_huge_plain_body_is_one_well_formed_answer_of_that_length() {
    let bytes = 3 * 1024 * 1024 + 17;
    let mock = start(MockUpstream::openai(), Fault::HugeBody { bytes }).await;
    let response = post_openai(&mock, false).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-length").is_none(), "streamed, not buffered");
    let body = read_all(response).await.expect("the body ends cleanly");
    let answer: Value = serde_json::from_slice(&body).expect("well-formed JSON");
    let text = answer["choices"][0]["message"]["content"].as_str().expect("text");
    assert_eq!(text.len() as u64, bytes);
    assert!(text.bytes().all(|byte| byte == b'x'));
    assert_eq!(mock.totals().faulted, 1);
}

#[tokio::test]
async fn a_huge_streamed_answer_carries_one_huge_text_frame_in_anthropics_format() {
    let bytes = 2 * 1024 * 1024;
    let mock = start(MockUpstream::builder(AnthropicWire), Fault::HugeBody { bytes }).await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", mock.base_url()))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-mock", "max_tokens": 100, "stream": true,
                      "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = String::from_utf8(read_all(response).await.expect("ends cleanly")).expect("utf-8");
    let huge = body
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|event| event["delta"]["text"].as_str().map(str::len))
        .max()
        .expect("a text delta");
    assert_eq!(huge as u64, bytes);
    assert!(body.contains("event: message_stop"), "the stream ends as usual");
}

#[tokio::test]
async fn an_endless_stream_keeps_sending_text_frames_and_never_ends() {
    let mock = start(
        MockUpstream::openai().stream_interval(Duration::from_millis(1)),
        Fault::EndlessStream,
    )
    .await;
    let mut response = post_openai(&mock, true).await;
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    let mut n_frames = 0;
    while n_frames < 200 {
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
            .await
            .expect("frames keep coming")
            .expect("no error")
            .expect("the stream has not ended");
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        n_frames = text.matches("\n\n").count();
    }
    assert!(!text.contains("[DONE]"));
    let frames: Vec<Value> = text
        .split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).expect("every frame is valid JSON"))
        .collect();
    assert!(frames.len() >= 200);
    assert!(frames[1..].iter().all(|frame| frame["choices"][0]["delta"]["content"] == " endless"));
    assert!(frames.iter().all(|frame| frame["choices"][0]["finish_reason"].is_null()));
    drop(response);
    // The mock still serves after the client went away.
    mock.clear_faults();
    assert_eq!(post_openai(&mock, false).await.status(), 200);
}

#[tokio::test]
async fn an_endless_gemini_stream_repeats_an_unfinished_chunk() {
    let mock = start(
        MockUpstream::builder(GeminiWire).stream_interval(Duration::from_millis(1)),
        Fault::EndlessStream,
    )
    .await;
    let mut response = reqwest::Client::new()
        .post(format!(
            "{}/v1beta/models/gemini-mock:streamGenerateContent?alt=sse",
            mock.base_url()
        ))
        .header("x-goog-api-key", KEY)
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    while text.matches("\r\n\r\n").count() < 20 {
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
            .await
            .expect("frames keep coming")
            .expect("no error")
            .expect("not ended");
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
    for data in text.split("\r\n\r\n").filter_map(|frame| frame.strip_prefix("data: ")) {
        let chunk: Value = serde_json::from_str(data).expect("valid JSON");
        assert_eq!(chunk["candidates"][0]["content"]["parts"][0]["text"], " endless");
        assert!(chunk["candidates"][0]["finishReason"].is_null(), "{chunk}");
    }
}

#[tokio::test]
async fn a_garbage_stream_sends_broken_frames_then_an_overlong_line_without_newline() {
    let mock = start(MockUpstream::openai(), Fault::GarbageStream).await;
    let response = post_openai(&mock, true).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = read_all(response).await.expect("the body ends cleanly");
    let first_end = body.windows(2).position(|w| w == b"\n\n").expect("a first frame");
    let first: Value = serde_json::from_slice(&body[b"data: ".len()..first_end]).expect("JSON");
    assert_eq!(first["object"], "chat.completion.chunk");
    assert!(std::str::from_utf8(&body).is_err(), "bytes that are not UTF-8");
    let last_line = body.rsplit(|&byte| byte == b'\n').next().expect("a last line");
    assert!(last_line.len() as u64 > GARBAGE_LINE_BYTES, "{}", last_line.len());
    assert!(last_line.starts_with(b"data: xxxx"));
    assert_eq!(mock.counts("key-a").expect("scripted").faulted, 1);
}

#[tokio::test]
async fn cut_stream_ends_on_a_frame_boundary_and_cut_mid_frame_inside_one() {
    let mock = MockUpstream::openai()
        .key(KeyScript::valid("key-a", KEY))
        .fault(FaultRule::once(Fault::CutStream { after_frames: 2 }))
        .fault(FaultRule::once(Fault::CutMidFrame { after_frames: 2 }))
        .start()
        .await
        .expect("starts");
    let on_boundary = read_all(post_openai(&mock, true).await).await.expect_err("cut");
    let text = String::from_utf8(on_boundary).expect("utf-8");
    assert!(text.ends_with("\n\n"), "{text}");
    assert_eq!(text.matches("\n\n").count(), 2);

    let mid_frame = read_all(post_openai(&mock, true).await).await.expect_err("cut");
    let text = String::from_utf8(mid_frame).expect("utf-8");
    assert_eq!(text.matches("\n\n").count(), 2, "two whole frames: {text}");
    let partial = text.rsplit("\n\n").next().expect("a partial frame");
    assert!(partial.starts_with("data: {"), "{text}");
    let json = &partial["data: ".len()..];
    assert!(serde_json::from_str::<Value>(json).is_err(), "cut inside the JSON: {partial}");
    assert_eq!(mock.totals().faulted, 2);
}

#[tokio::test]
async fn absurd_retry_hints_reach_the_client_verbatim() {
    let fault = Fault::Raw {
        status: 429,
        content_type: "application/json".to_owned(),
        headers: vec![
            ("retry-after".to_owned(), "1e14".to_owned()),
            ("x-ratelimit-reset-requests".to_owned(), "1e15s".to_owned()),
        ],
        body: r#"{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}"#
            .to_owned(),
    };
    let mock = start(MockUpstream::openai(), fault).await;
    let response = post_openai(&mock, false).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1e14");
    assert_eq!(response.headers()["x-ratelimit-reset-requests"], "1e15s");
}

#[tokio::test]
async fn random_faults_are_counted_as_they_fire() {
    let mock = MockUpstream::openai()
        .seed(7)
        .key(KeyScript::valid("key-a", KEY))
        .fault(FaultRule::always(Fault::server_error()).with_probability(0.3))
        .start()
        .await
        .expect("starts");
    let mut n_failed = 0;
    for _ in 0..200 {
        if post_openai(&mock, false).await.status() != 200 {
            n_failed += 1;
        }
    }
    let counts = mock.totals();
    assert_eq!(counts.faulted, n_failed);
    assert_eq!(counts.served + counts.faulted, 200);
    assert!((30..=90).contains(&n_failed), "about 30 % of 200: {n_failed}");
}

//! `POST /v1/embeddings` as its users meet it: the real `switchyard` binary driven by the
//! official `openai` Python SDK's `embeddings.create` (from the virtual environment
//! `cargo xtask test` prepares, `SWITCHYARD_TEST_PYTHON`), served by a Gemini upstream.

mod support;

use serde_json::Value;
use switchyard_core::ManualClock;
use switchyard_mock::{GeminiWire, KeyScript, MockUpstream, mock_embedding};

use support::{Gateway, Mock, start_mock};

/// The OpenAI SDK's embeddings, one call per mode; prints what it saw as one JSON line.
const EMBEDDINGS: &str = r#"
import json, sys
import openai

base, token, mode, model = sys.argv[1:5]
client = openai.OpenAI(base_url=base + "/v1", api_key=token, max_retries=0)
if mode == "batch":
    # The SDK asks for base64 unless told otherwise, and decodes it itself.
    raw = client.embeddings.with_raw_response.create(model=model, input=["alpha", "beta", "gamma"])
    result = raw.parse()
    print(json.dumps({
        "object": result.object, "model": result.model,
        "indexes": [item.index for item in result.data],
        "vectors": [list(item.embedding) for item in result.data],
        "prompt_tokens": result.usage.prompt_tokens, "total_tokens": result.usage.total_tokens,
        "provider": raw.headers.get("x-switchyard-provider"),
        "attempts": raw.headers.get("x-switchyard-attempts"),
    }))
elif mode == "one":
    result = client.embeddings.create(model=model, input="just one", dimensions=16,
                                      encoding_format="float", user="someone")
    print(json.dumps({"vectors": [item.embedding for item in result.data]}))
elif mode == "tokens":
    try:
        client.embeddings.create(model=model, input=[[1, 2, 3]])
        print(json.dumps({"raised": None}))
    except openai.BadRequestError as error:
        print(json.dumps({"raised": type(error).__name__, "status": error.status_code,
                          "message": error.message}))
elif mode == "spent":
    try:
        client.embeddings.create(model=model, input="spend a request")
        print(json.dumps({"raised": None}))
    except openai.RateLimitError as error:
        print(json.dumps({
            "raised": type(error).__name__, "status": error.status_code, "code": error.code,
            "type": error.type, "retry_after": error.response.headers.get("retry-after"),
        }))
"#;

const TOKEN: &str = "app-token";
const MODEL: &str = "text-embedding-004";

async fn sdk(gateway: &Gateway, mode: &str, model: &str) -> Value {
    let args = [gateway.url(""), TOKEN.to_owned(), mode.to_owned(), model.to_owned()];
    support::python(EMBEDDINGS, args).await
}

fn secret(id: &str) -> String {
    format!("sk-mock-{id}-0123456789abcdef")
}

/// The vectors the SDK printed, back as f32 (each printed as the shortest decimal of an f32).
fn vectors(seen: &Value) -> Vec<Vec<f32>> {
    let rows = seen["vectors"].as_array().unwrap_or_else(|| panic!("vectors in {seen}"));
    rows.iter()
        .map(|row| {
            let row = row.as_array().expect("a vector");
            #[expect(clippy::cast_possible_truncation, reason = "each value was an f32")]
            row.iter().map(|x| x.as_f64().expect("a number") as f32).collect()
        })
        .collect()
}

/// The gateway with route `vectors` (a Gemini provider serving embeddings) and `tight` (an
/// OpenAI-format provider of two keys, one request a minute each).
async fn setup(gemini: &MockUpstream) -> (Gateway, Mock) {
    let tight = start_mock(&["t1", "t2"]).await;
    let config = format!(
        r#"
[server]
client_tokens = ["${{APP_TOKEN}}"]

[[providers]]
name = "google"
kind = "gemini"
base_url = "{gemini}"
keys = ["${{GEMINI_KEY}}"]
models = ["{MODEL}"]

{tight}
[[routes]]
name = "vectors"
targets = ["google/{MODEL}"]
"#,
        gemini = gemini.base_url(),
        tight = support::tight_provider(&tight.upstream.base_url()),
    );
    let env = [
        ("APP_TOKEN", TOKEN.to_owned()),
        ("GEMINI_KEY", secret("g1")),
        ("TIGHT_1", tight.secret("t1")),
        ("TIGHT_2", tight.secret("t2")),
    ];
    let gateway = Gateway::start(&config, &env).expect("the gateway starts");
    (gateway, tight)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_embeds_through_a_gemini_upstream() {
    let gemini = MockUpstream::builder(GeminiWire)
        .clock(ManualClock::default())
        .key(KeyScript::valid("g1", secret("g1")))
        .models([MODEL])
        .start()
        .await
        .expect("mock starts");
    let (gateway, tight) = setup(&gemini).await;

    let batch = sdk(&gateway, "batch", "vectors").await;
    assert_eq!(batch["object"], "list", "{batch}");
    assert_eq!(batch["indexes"], serde_json::json!([0, 1, 2]));
    let expected: Vec<Vec<f32>> =
        ["alpha", "beta", "gamma"].iter().map(|text| mock_embedding(text, 8)).collect();
    assert_eq!(vectors(&batch), expected, "base64 decoded by the SDK to the mock's vectors");
    assert_eq!(batch["model"], MODEL);
    assert_eq!(batch["provider"], "google");
    assert_eq!(batch["attempts"], "1");
    // Gemini counts no tokens: the gateway's estimate, bytes / 4 per input.
    assert_eq!(batch["prompt_tokens"], 2 + 1 + 2);
    assert_eq!(batch["total_tokens"], batch["prompt_tokens"]);
    let sent = gemini.last_request().expect("a request");
    assert!(sent.path.ends_with(&format!("models/{MODEL}:batchEmbedContents")), "{}", sent.path);

    let one = sdk(&gateway, "one", "vectors").await;
    assert_eq!(vectors(&one), vec![mock_embedding("just one", 16)], "{one}");
    let sent = gemini.last_request().expect("a request");
    assert!(sent.path.ends_with(":embedContent"), "{}", sent.path);
    assert_eq!(sent.body.expect("JSON")["outputDimensionality"], 16);

    let refused = sdk(&gateway, "tokens", "vectors").await;
    assert_eq!(refused["raised"], "BadRequestError", "{refused}");
    assert!(refused["message"].as_str().expect("message").contains("token-id"), "{refused}");
    assert_eq!(gemini.totals().served, 2, "a refused request reaches no upstream");

    // Two calls spend both keys of route `tight`; the third is a 429 with `retry-after`.
    for _ in 0..2 {
        let seen = sdk(&gateway, "spent", "tight").await;
        assert_eq!(seen["raised"], Value::Null, "{seen}");
    }
    let seen = sdk(&gateway, "spent", "tight").await;
    assert_eq!(seen["raised"], "RateLimitError", "{seen}");
    assert_eq!(seen["status"], 429);
    assert_eq!(seen["code"], "QUOTA_EXCEEDED");
    let retry_after: u64 =
        seen["retry_after"].as_str().expect("retry-after").parse().expect("seconds");
    assert!((1..=61).contains(&retry_after), "{retry_after}");
    assert_eq!(tight.upstream.totals().served, 2, "the spent keys were not called");
}

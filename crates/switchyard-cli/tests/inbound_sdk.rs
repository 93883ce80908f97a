//! The other request formats as their users meet them: the real `switchyard` binary driven by
//! the official `anthropic` Python SDK (`/v1/messages`, served by a Gemini upstream) and the
//! official `openai` SDK's Responses API (`/v1/responses`, served by an Anthropic upstream),
//! from the virtual environment `cargo xtask test` prepares (`SWITCHYARD_TEST_PYTHON`).

mod support;

use serde_json::{Value, json};
use switchyard_core::{ManualClock, ToolCall};
use switchyard_mock::{
    AnthropicWire, GeminiWire, KeyScript, MockUpstream, ReplyScript, WireFormat,
};

use support::{Gateway, Mock, start_mock};

/// The Anthropic SDK, one call (or round trip) per mode; prints what it saw as one JSON line.
const ANTHROPIC: &str = r#"
import json, sys
import anthropic

base, token, mode, model = sys.argv[1:5]
client = anthropic.Anthropic(base_url=base, api_key=token, max_retries=0)
ask = [{"role": "user", "content": "Say hello in five words"}]
tools = [{"name": "weather", "description": "Weather in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
if mode == "create":
    raw = client.messages.with_raw_response.create(model=model, max_tokens=32, system="Be terse.", messages=ask)
    message = raw.parse()
    print(json.dumps({
        "type": message.type, "role": message.role, "text": message.content[0].text,
        "stop_reason": message.stop_reason, "input_tokens": message.usage.input_tokens,
        "output_tokens": message.usage.output_tokens,
        "provider": raw.headers.get("x-switchyard-provider"),
    }))
elif mode == "stream":
    with client.messages.stream(model=model, max_tokens=32, messages=ask) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    print(json.dumps({"text": text, "final_text": final.content[0].text,
                      "stop_reason": final.stop_reason, "output_tokens": final.usage.output_tokens}))
elif mode == "tools":
    question = [{"role": "user", "content": "Weather in Oslo?"}]
    with client.messages.stream(model=model, max_tokens=64, tools=tools, messages=question) as stream:
        first = stream.get_final_message()
    use = next(block for block in first.content if block.type == "tool_use")
    second = client.messages.create(model=model, max_tokens=64, tools=tools, messages=question + [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "rain"}]},
    ])
    print(json.dumps({"stop_reason": first.stop_reason, "name": use.name, "input": use.input,
                      "second_stop_reason": second.stop_reason}))
elif mode == "spent":
    try:
        client.messages.create(model=model, max_tokens=16, messages=ask)
        print(json.dumps({"raised": None}))
    except anthropic.RateLimitError as error:
        print(json.dumps({
            "raised": type(error).__name__, "status": error.status_code,
            "type": error.body["error"]["type"], "code": error.body["error"]["code"],
            "retry_after": error.response.headers.get("retry-after"),
        }))
"#;

/// The OpenAI SDK's Responses API, one call (or round trip) per mode.
const RESPONSES: &str = r#"
import json, sys
import openai

base, token, mode, model = sys.argv[1:5]
client = openai.OpenAI(base_url=base + "/v1", api_key=token, max_retries=0)
tools = [{"type": "function", "name": "weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
if mode == "create":
    raw = client.responses.with_raw_response.create(
        model=model, instructions="Be terse.", input="Say hello in five words", max_output_tokens=32)
    response = raw.parse()
    print(json.dumps({
        "status": response.status, "text": response.output_text,
        "input_tokens": response.usage.input_tokens, "output_tokens": response.usage.output_tokens,
        "total_tokens": response.usage.total_tokens,
        "provider": raw.headers.get("x-switchyard-provider"),
    }))
elif mode == "stream":
    stream = client.responses.create(model=model, input="Say hello in five words",
                                     max_output_tokens=32, stream=True)
    text, kinds, completed = "", [], None
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
        if event.type == "response.completed":
            completed = event.response
    print(json.dumps({"text": text, "first": kinds[0], "last": kinds[-1],
                      "completed_text": completed.output_text,
                      "total_tokens": completed.usage.total_tokens}))
elif mode == "tools":
    question = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.responses.create(model=model, input=question, tools=tools)
    call = next(item for item in first.output if item.type == "function_call")
    second = client.responses.create(model=model, tools=tools, input=question + [
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
    ])
    print(json.dumps({"name": call.name, "arguments": json.loads(call.arguments),
                      "second_status": second.status}))
elif mode == "spent":
    try:
        client.responses.create(model=model, input="Say hello", max_output_tokens=16)
        print(json.dumps({"raised": None}))
    except openai.RateLimitError as error:
        print(json.dumps({
            "raised": type(error).__name__, "status": error.status_code, "code": error.code,
            "type": error.type, "retry_after": error.response.headers.get("retry-after"),
        }))
elif mode == "stateful":
    try:
        client.responses.create(model=model, input="Go on", previous_response_id="resp_earlier")
        print(json.dumps({"raised": None}))
    except openai.BadRequestError as error:
        print(json.dumps({"raised": type(error).__name__, "status": error.status_code,
                          "message": error.message}))
"#;

const TOKEN: &str = "app-token";

/// Runs `script` in `mode` against route `model` of `gateway`.
async fn sdk(script: &'static str, gateway: &Gateway, mode: &str, model: &str) -> Value {
    support::python(script, [gateway.url(""), TOKEN.to_owned(), mode.to_owned(), model.to_owned()])
        .await
}

fn secret(id: &str) -> String {
    format!("sk-mock-{id}-0123456789abcdef")
}

/// A mock of `wire` with one valid key `id`, serving `model`, answering with `reply`.
async fn upstream(
    wire: impl WireFormat,
    id: &str,
    model: &str,
    reply: ReplyScript,
) -> MockUpstream {
    MockUpstream::builder(wire)
        .clock(ManualClock::default())
        .key(KeyScript::valid(id, secret(id)))
        .models([model])
        .reply(reply)
        .start()
        .await
        .expect("mock starts")
}

fn weather_call() -> ReplyScript {
    ReplyScript::ToolCalls(vec![ToolCall {
        id: "call_w1".into(),
        name: "weather".into(),
        arguments: r#"{"city":"Oslo"}"#.into(),
    }])
}

/// The gateway with routes `default` (the `kind` provider `main`), `tools` (the same kind,
/// answering with a tool call) and `tight` (an OpenAI-format provider of two keys, one request
/// a minute each).
async fn setup(
    kind: &str,
    main: &MockUpstream,
    tools: &MockUpstream,
    model: &str,
) -> (Gateway, Mock) {
    let tight = start_mock(&["t1", "t2"]).await;
    let config = format!(
        r#"
[server]
client_tokens = ["${{APP_TOKEN}}"]

[[providers]]
name = "main"
kind = "{kind}"
base_url = "{main}"
keys = ["${{MAIN_KEY}}"]
models = ["{model}"]

[[providers]]
name = "tooling"
kind = "{kind}"
base_url = "{tools}"
keys = ["${{TOOLS_KEY}}"]
models = ["{model}"]

{tight}
[[routes]]
name = "default"
targets = ["main/{model}"]

[[routes]]
name = "tools"
targets = ["tooling/{model}"]
"#,
        main = main.base_url(),
        tools = tools.base_url(),
        tight = support::tight_provider(&tight.upstream.base_url()),
    );
    let env = [
        ("APP_TOKEN", TOKEN.to_owned()),
        ("MAIN_KEY", secret("m1")),
        ("TOOLS_KEY", secret("w1")),
        ("TIGHT_1", tight.secret("t1")),
        ("TIGHT_2", tight.secret("t2")),
    ];
    let gateway = Gateway::start(&config, &env).expect("the gateway starts");
    (gateway, tight)
}

const GEMINI_MODEL: &str = "gemini-2.0-flash";
const CLAUDE_MODEL: &str = "claude-3-5-haiku-latest";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anthropic_sdk_talks_to_a_gemini_upstream() {
    let gemini = upstream(GeminiWire, "m1", GEMINI_MODEL, ReplyScript::Echo).await;
    let tools = upstream(GeminiWire, "w1", GEMINI_MODEL, weather_call()).await;
    let (gateway, tight) = setup("gemini", &gemini, &tools, GEMINI_MODEL).await;

    let created = sdk(ANTHROPIC, &gateway, "create", "default").await;
    assert_eq!(created["type"], "message", "{created}");
    assert_eq!(created["role"], "assistant");
    assert_eq!(created["stop_reason"], "end_turn");
    assert_eq!(created["provider"], "main");
    assert!(
        created["text"].as_str().expect("text").contains("Say hello in five words"),
        "{created}"
    );
    assert!(created["input_tokens"].as_u64().expect("input") > 0);
    // The system prompt went to Gemini as its system instruction.
    let sent = gemini.last_request().expect("a request").body.expect("JSON");
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be terse.", "{sent}");

    let streamed = sdk(ANTHROPIC, &gateway, "stream", "default").await;
    assert_eq!(streamed["text"], created["text"], "{streamed}");
    assert_eq!(streamed["final_text"], created["text"]);
    assert_eq!(streamed["stop_reason"], "end_turn");
    assert_eq!(streamed["output_tokens"], created["output_tokens"]);
    assert_eq!(gemini.totals().served, 2);

    let round_trip = sdk(ANTHROPIC, &gateway, "tools", "tools").await;
    assert_eq!(round_trip["stop_reason"], "tool_use", "{round_trip}");
    assert_eq!(round_trip["name"], "weather");
    assert_eq!(round_trip["input"], json!({"city": "Oslo"}));
    // The tool's result reached Gemini as a function response to the call.
    let sent = tools.last_request().expect("a request").body.expect("JSON");
    let response = sent["contents"]
        .as_array()
        .expect("contents")
        .iter()
        .flat_map(|content| content["parts"].as_array().into_iter().flatten())
        .find_map(|part| part.get("functionResponse"))
        .unwrap_or_else(|| panic!("a functionResponse in {sent}"));
    assert_eq!(response["name"], "weather");
    assert!(response["response"].to_string().contains("rain"), "{response}");
    assert_eq!(tools.totals().served, 2);

    spent_keys_answer_in_the_format_s_shape(ANTHROPIC, &gateway, &tight, |seen| {
        assert_eq!(seen["type"], "rate_limit_error");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_s_responses_api_talks_to_an_anthropic_upstream() {
    let claude = upstream(AnthropicWire, "m1", CLAUDE_MODEL, ReplyScript::Echo).await;
    let tools = upstream(AnthropicWire, "w1", CLAUDE_MODEL, weather_call()).await;
    let (gateway, tight) = setup("anthropic", &claude, &tools, CLAUDE_MODEL).await;

    let created = sdk(RESPONSES, &gateway, "create", "default").await;
    assert_eq!(created["status"], "completed", "{created}");
    assert_eq!(created["provider"], "main");
    assert!(
        created["text"].as_str().expect("text").contains("Say hello in five words"),
        "{created}"
    );
    let total = created["total_tokens"].as_u64().expect("total");
    assert_eq!(
        total,
        created["input_tokens"].as_u64().expect("in")
            + created["output_tokens"].as_u64().expect("out")
    );
    // The instructions went to Anthropic as its system prompt, the limit as max_tokens.
    let sent = claude.last_request().expect("a request").body.expect("JSON");
    assert!(sent["system"].to_string().contains("Be terse."), "{sent}");
    assert_eq!(sent["max_tokens"], 32);

    let streamed = sdk(RESPONSES, &gateway, "stream", "default").await;
    assert_eq!(streamed["first"], "response.created", "{streamed}");
    assert_eq!(streamed["last"], "response.completed");
    assert!(streamed["text"].as_str().expect("text").contains("Say hello in five words"));
    assert_eq!(streamed["completed_text"], streamed["text"]);
    assert!(streamed["total_tokens"].as_u64().expect("usage") > 0);

    let round_trip = sdk(RESPONSES, &gateway, "tools", "tools").await;
    assert_eq!(round_trip["name"], "weather", "{round_trip}");
    assert_eq!(round_trip["arguments"], json!({"city": "Oslo"}));
    assert_eq!(round_trip["second_status"], "completed");
    // The output reached Anthropic as a tool_result answering the tool_use.
    let sent = tools.last_request().expect("a request").body.expect("JSON");
    let blocks: Vec<&Value> = sent["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .flat_map(|message| message["content"].as_array().into_iter().flatten())
        .collect();
    assert!(
        blocks.iter().any(|block| block["type"] == "tool_use" && block["id"] == "call_w1"),
        "{sent}"
    );
    assert!(
        blocks
            .iter()
            .any(|block| block["type"] == "tool_result" && block["tool_use_id"] == "call_w1"),
        "{sent}"
    );

    let refused = sdk(RESPONSES, &gateway, "stateful", "default").await;
    assert_eq!(refused["raised"], "BadRequestError", "{refused}");
    assert!(refused["message"].as_str().expect("message").contains("previous_response_id"));

    spent_keys_answer_in_the_format_s_shape(RESPONSES, &gateway, &tight, |seen| {
        assert_eq!(seen["type"], "rate_limit_error");
        assert_eq!(seen["code"], "QUOTA_EXCEEDED");
    })
    .await;
}

/// Two calls spend both keys of route `tight`; the third is a 429 the SDK raises as its
/// `RateLimitError`, with `retry-after`, and no upstream call.
async fn spent_keys_answer_in_the_format_s_shape(
    script: &'static str,
    gateway: &Gateway,
    tight: &Mock,
    check: impl Fn(&Value),
) {
    for _ in 0..2 {
        let seen = sdk(script, gateway, "spent", "tight").await;
        assert_eq!(seen["raised"], Value::Null, "{seen}");
    }
    let seen = sdk(script, gateway, "spent", "tight").await;
    assert_eq!(seen["raised"], "RateLimitError", "{seen}");
    assert_eq!(seen["status"], 429);
    let retry_after: u64 =
        seen["retry_after"].as_str().expect("retry-after").parse().expect("seconds");
    assert!((1..=61).contains(&retry_after), "{retry_after}");
    check(&seen);
    assert_eq!(tight.upstream.totals().served, 2, "the spent keys were not called");
}

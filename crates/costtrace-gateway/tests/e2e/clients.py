"""Calls the costtrace gateway with the official `openai` and `anthropic`
Python packages, as an application would. Each call names itself with the
X-Costtrace-Task header so the Rust test can find its record. Prints one JSON
line per call with what the SDK saw."""

import json
import os
import sys

import anthropic
import openai

GW = os.environ["COSTTRACE_GATEWAY_URL"]
OPENAI_KEY = "sk-proj-PYTHONTESTKEY0123456789abcdefghijklmnopqrstuv"
ANTHROPIC_KEY = "sk-ant-api03-PYTHONTESTKEY0123456789abcdefghijklmn"

oa = openai.OpenAI(
    api_key=OPENAI_KEY,
    base_url=f"{GW}/openai/v1",
    max_retries=0,
    default_headers={"X-Costtrace-Tenant": "acme", "X-Costtrace-User": "py_user"},
)
an = anthropic.Anthropic(
    api_key=ANTHROPIC_KEY,
    base_url=f"{GW}/anthropic",
    max_retries=0,
    default_headers={"baggage": "tenant_id=acme,user_id=py_user"},
)


def out(task, **kw):
    print(json.dumps({"task": task, **kw}), flush=True)


def task(name):
    return {"X-Costtrace-Task": name}


# OpenAI chat, whole
r = oa.chat.completions.create(
    model="gpt-4o",
    messages=[{"role": "user", "content": "Total of the receipt?"}],
    extra_headers=task("chat"),
)
out("chat", prompt_tokens=r.usage.prompt_tokens, completion_tokens=r.usage.completion_tokens,
    cached=r.usage.prompt_tokens_details.cached_tokens)

# OpenAI chat, streamed, without asking for usage: the gateway asks for it.
text, usage = "", None
for chunk in oa.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Say hello"}],
    stream=True,
    extra_headers=task("chat_stream"),
):
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage:
        usage = chunk.usage
out("chat_stream", text=text, prompt_tokens=usage.prompt_tokens if usage else None)

# OpenAI embeddings
e = oa.embeddings.create(model="text-embedding-3-small", input="The food was delicious",
                         extra_headers=task("embeddings"))
out("embeddings", prompt_tokens=e.usage.prompt_tokens, dims=len(e.data[0].embedding))

# OpenAI Responses, whole and streamed
r = oa.responses.create(model="o4-mini", input="Line items?", extra_headers=task("responses"))
out("responses", input_tokens=r.usage.input_tokens, reasoning=r.usage.output_tokens_details.reasoning_tokens)
final = None
with oa.responses.stream(model="o4-mini", input="Total?", extra_headers=task("responses_stream")) as s:
    for _ in s:
        pass
    final = s.get_final_response()
out("responses_stream", output_tokens=final.usage.output_tokens)

# OpenAI rate limited
try:
    oa.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "x"}],
        extra_headers={**task("chat_429"), "x-mock-fixture": "openai/error_429"},
    )
    out("chat_429", status=200)
except openai.RateLimitError as err:
    out("chat_429", status=err.status_code)

# OpenAI server error
try:
    oa.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "x"}],
        extra_headers={**task("chat_500"), "x-mock-fixture": "openai/error_500"},
    )
    out("chat_500", status=200)
except openai.InternalServerError as err:
    out("chat_500", status=err.status_code)

# Anthropic messages, whole
m = an.messages.create(
    model="claude-sonnet-4-20250514",
    max_tokens=1024,
    messages=[{"role": "user", "content": "Renewal clause?"}],
    extra_headers=task("messages"),
)
out("messages", input_tokens=m.usage.input_tokens, cache_read=m.usage.cache_read_input_tokens,
    cache_write=m.usage.cache_creation_input_tokens, output_tokens=m.usage.output_tokens)

# Anthropic messages, streamed
with an.messages.stream(
    model="claude-3-5-haiku-latest",
    max_tokens=256,
    messages=[{"role": "user", "content": "Who is the merchant?"}],
    extra_headers=task("messages_stream"),
) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
out("messages_stream", text=text, output_tokens=final.usage.output_tokens)

# Anthropic overloaded
try:
    an.messages.create(
        model="claude-sonnet-4-20250514",
        max_tokens=10,
        messages=[{"role": "user", "content": "x"}],
        extra_headers={**task("messages_529"), "x-mock-fixture": "anthropic/error_529"},
    )
    out("messages_529", status=200)
except anthropic.APIStatusError as err:
    out("messages_529", status=err.status_code)

sys.exit(0)

"""The official OpenAI Python client against a served model, as a team's users would call it.

    openai_client.py BASE_URL ALIAS [--key KEY] [--concurrent N] [--max-tokens N] [--cafile PEM]

Streams one chat completion by the model's alias, then N concurrent streaming completions; prints
JSON: the first reply's text, how many of the N completed with content, and their finish reasons.
"""

import argparse
import json
import ssl
from concurrent.futures import ThreadPoolExecutor

import httpx2
import openai

parser = argparse.ArgumentParser()
parser.add_argument("base_url")
parser.add_argument("alias")
parser.add_argument("--key", default="unused")
parser.add_argument("--concurrent", type=int, default=8)
parser.add_argument("--max-tokens", type=int, default=24)
parser.add_argument("--cafile", help="Trust this certificate (an HTTPS gateway's self-signed one).")
args = parser.parse_args()
http_client = httpx2.Client(verify=ssl.create_default_context(cafile=args.cafile)) if args.cafile else None
client = openai.OpenAI(base_url=args.base_url.rstrip("/") + "/v1", api_key=args.key, timeout=300, max_retries=0,
                       http_client=http_client)


def stream(question: str) -> dict:
    text, finish, model = "", None, None
    for chunk in client.chat.completions.create(model=args.alias, stream=True, max_tokens=args.max_tokens,
                                                temperature=0, messages=[{"role": "user", "content": question}]):
        model = chunk.model
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    return {"text": text, "finish": finish, "model": model}


try:
    first = stream("Name one planet of the solar system.")
    many = []
    if args.concurrent:
        with ThreadPoolExecutor(args.concurrent) as pool:
            many = list(pool.map(stream, [f"User {i}: write one sentence about the sea." for i in range(args.concurrent)]))
    print(json.dumps({"ok": True, "first": first, "completed": sum(1 for r in many if r["text"] and r["finish"]),
                      "finishes": [r["finish"] for r in many]}))
except openai.APIStatusError as exc:
    print(json.dumps({"ok": False, "status": exc.status_code, "error": str(exc)[:200]}))
except openai.APIConnectionError as exc:
    print(json.dumps({"ok": False, "status": None, "error": str(exc)[:200]}))

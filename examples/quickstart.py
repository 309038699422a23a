"""A tour of every SDK operation against a running gateway, each answered by a real model.

Run it against `runinfra serve` with the embedded default (scripts/demo does
all of this for you):

    export RUNINFRA_BASE_URL=http://127.0.0.1:8080/v1
    export RUNINFRA_API_KEY=...          # a workspace key: runinfra keys create --scope workspace --workspace default
    export RUNINFRA_PIPELINE_KEY=...     # a pipeline key:  runinfra keys create --scope pipeline --pipeline voice
    python examples/quickstart.py

Files it makes (an image, speech) go to RUNINFRA_DEMO_OUT, or a temporary directory.
"""

from __future__ import annotations

import base64
import math
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

from runinfra import RunInfra, RunInfraError


def _env(name: str, default: Optional[str] = None) -> str:
    value = os.environ.get(name, default or "").strip()
    if not value:
        raise SystemExit(f"Set {name} before running the quick start (see the top of {__file__}).")
    return value


def _section(title: str) -> None:
    print(f"\n== {title}")


def _pick(models: List[Dict[str, Any]], operation: str, preferred: str) -> str:
    """The preferred deployment if it serves ``operation``, else the first one that does."""
    serving = [m["id"] for m in models if operation in m.get("operations", [])]
    if not serving:
        raise SystemExit(f"No verified deployment serves {operation}; is the gateway ready (GET /readyz)?")
    return preferred if preferred in serving else serving[0]


def _cosine(a: List[float], b: List[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def main() -> int:
    base_url = _env("RUNINFRA_BASE_URL", "http://127.0.0.1:8080/v1")
    client = RunInfra(api_key=_env("RUNINFRA_API_KEY"), base_url=base_url, timeout_seconds=120)
    out = Path(os.environ.get("RUNINFRA_DEMO_OUT") or tempfile.mkdtemp(prefix="runinfra-quickstart-"))
    out.mkdir(parents=True, exist_ok=True)

    _section("models.list")
    models: List[Dict[str, Any]] = list(client.models.list()["data"])
    for model in models:
        voices = f"  voices: {', '.join(model['voices'])}" if model.get("voices") else ""
        print(f"  {model['id']:<24} {', '.join(model['operations'])}{voices}")
    llm = _pick(models, "chat.completions", "smollm2-135m-instruct")
    embedder = _pick(models, "embeddings", "minilm-l6-v2")
    painter = _pick(models, "images.generate", "digits-diffusion")
    speaker = _pick(models, "audio.speech", "piper-joe")
    listener = _pick(models, "audio.transcriptions", "whisper-tiny-en")
    voice = next(m for m in models if m["id"] == speaker).get("voices", [None])[0]

    _section(f"chat.completions.create ({llm})")
    question = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    answer = client.chat.completions.create(model=llm, messages=question, temperature=0, max_tokens=20)
    print(f"  {answer['choices'][0]['message']['content']!r}  usage={answer['usage']}")

    _section("chat.completions.create(stream=True): tokens as they are generated")
    started = time.perf_counter()
    first_token_ms: Optional[float] = None
    stream = client.chat.completions.create(
        model=llm,
        messages=[{"role": "user", "content": "Name three colours of the rainbow."}],
        max_tokens=40,
        temperature=0,
        stream=True,
    )
    print("  ", end="")
    for chunk in stream:
        for choice in chunk.get("choices", []):
            text = choice.get("delta", {}).get("content") or ""
            if text and first_token_ms is None:
                first_token_ms = (time.perf_counter() - started) * 1000
            print(text, end="", flush=True)
    print(f"\n  first token after {first_token_ms or 0:.0f} ms; request id {stream.request_id}")

    _section(f"responses.create ({llm})")
    response = client.responses.create(
        model=llm, input="Which planet do we live on?", instructions="Answer briefly.", max_output_tokens=30,
        temperature=0,
    )
    print(f"  {response['output_text']!r}  status={response['status']}")

    _section(f"embeddings.create ({embedder})")
    sentences = ["The cat sleeps on the sofa.", "A kitten naps on the couch.", "Stocks fell sharply today."]
    vectors = [item["embedding"] for item in client.embeddings.create(model=embedder, input=sentences)["data"]]
    print(f"  {len(vectors)} vectors of {len(vectors[0])} dimensions")
    print(f"  similarity(cat, kitten) = {_cosine(vectors[0], vectors[1]):.2f}")
    print(f"  similarity(cat, stocks) = {_cosine(vectors[0], vectors[2]):.2f}")

    _section(f"images.generate ({painter})")
    image = client.images.generate(model=painter, prompt="a handwritten 7", size="256x256", response_format="b64_json")
    png_path = out / "seven.png"
    png_path.write_bytes(base64.b64decode(image["data"][0]["b64_json"]))
    print(f"  wrote {png_path} ({png_path.stat().st_size} bytes)")
    linked = client.images.generate(model=painter, prompt="the digit three", size="128x128", response_format="url")
    url = linked["data"][0]["url"]
    with urllib.request.urlopen(url, timeout=30) as fetched:  # noqa: S310 - the gateway's own short-lived URL
        print(f"  {url[:60]}... -> {fetched.headers['Content-Type']}, {len(fetched.read())} bytes, no key needed")

    _section(f"audio.speech.create ({speaker}, voice {voice})")
    sentence = "Hello from your own RunInfra gateway. Every answer here comes from a real model."
    speech = client.audio.speech.create(model=speaker, input=sentence, voice=voice, response_format="wav")
    wav_path = out / "hello.wav"
    speech.write_to(str(wav_path))
    print(f"  wrote {wav_path}: {len(speech.content)} bytes of {speech.content_type}")

    _section(f"audio.transcriptions.create ({listener}) of that speech")
    heard = client.audio.transcriptions.create(
        model=listener, file=speech.content, filename="hello.wav", response_format="verbose_json"
    )
    print(f"  {heard['text']!r} ({heard['duration']:.1f} s, {len(heard['segments'])} segment(s))")

    pipeline_key = os.environ.get("RUNINFRA_PIPELINE_KEY", "").strip()
    pipeline_id = os.environ.get("RUNINFRA_PIPELINE_ID", "voice").strip()
    if not pipeline_key:
        print("\n(skipping the voice pipeline: set RUNINFRA_PIPELINE_KEY to a key scoped to the voice pipeline)")
        return 0
    _section(f"voice.pipeline.create (pipeline {pipeline_id!r}): a spoken question in, a spoken answer out")
    spoken = client.audio.speech.create(
        model=speaker, input="What is the capital of France?", voice=voice, response_format="wav"
    )
    voice_client = RunInfra(api_key=pipeline_key, base_url=base_url, pipeline_id=pipeline_id, timeout_seconds=120)
    result = voice_client.voice.pipeline.create(audio=spoken.content, mime_type="audio/wav")
    reply_path = out / "reply.wav"
    reply_path.write_bytes(base64.b64decode(result["audio_base64"]))
    print(f"  heard:   {result['transcript']!r}")
    print(f"  answer:  {result['response_text']!r}")
    print(f"  speech:  {reply_path} ({result['content_type']})")
    print(f"  latency: {result['latency_ms']}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RunInfraError as exc:
        print(f"\nquickstart: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)

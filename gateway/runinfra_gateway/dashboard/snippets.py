"""Copy-paste snippets for a deployment's (or a pipeline's) verified operations.

Three flavours per operation, each runnable as written with the key in
``RUNINFRA_API_KEY``:

* native: our ``runinfra`` SDK. For a pipeline it passes ``pipeline_id`` and
  keeps the root ``…/v1`` base URL (the SDK scopes the URL itself);
* OpenAI-compatible: the ``openai`` package, which has no pipeline option, so a
  pipeline's snippet uses the pipeline-scoped base URL ``…/v1/{pipeline_id}``;
* curl.

Only operations passed in are rendered: the caller hands over the verified
ones, never a guess. Values are embedded as JSON string literals (valid Python
too) and shell-quoted for curl.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["OPERATION_LABELS", "OperationSnippets", "Snippet", "snippets_for"]

OPERATION_LABELS: dict[str, str] = {
    "chat.completions": "Chat completions",
    "responses": "Responses",
    "embeddings": "Embeddings",
    "images.generate": "Image generation",
    "audio.speech": "Text to speech",
    "audio.transcriptions": "Speech to text",
    "voice.pipeline": "Voice pipeline",
}

_SDK_METHOD: dict[str, str] = {
    "chat.completions": "client.chat.completions.create",
    "responses": "client.responses.create",
    "embeddings": "client.embeddings.create",
    "images.generate": "client.images.generate",
    "audio.speech": "client.audio.speech.create",
    "audio.transcriptions": "client.audio.transcriptions.create",
    "voice.pipeline": "client.voice.pipeline.create",
}

_KEY_CHECK = """api_key = os.environ.get("RUNINFRA_API_KEY")
if not api_key:
    raise RuntimeError("Set RUNINFRA_API_KEY before running this snippet.")
"""

PROMPT = "Say hello in five words."


@dataclass(frozen=True)
class Snippet:
    flavour: str  # "native" | "openai" | "curl"
    label: str
    language: str  # "python" | "shell"
    code: str


@dataclass(frozen=True)
class OperationSnippets:
    operation: str
    label: str
    method: str
    model: str | None
    snippets: tuple[Snippet, ...]


def _q(value: str) -> str:
    return json.dumps(value)


def _native_client(root_base_url: str, pipeline_id: str | None) -> str:
    if pipeline_id:
        return (
            f"client = RunInfra(\n    api_key=api_key,\n    base_url={_q(root_base_url)},\n"
            f"    pipeline_id={_q(pipeline_id)},\n)\n"
        )
    return f"client = RunInfra(api_key=api_key, base_url={_q(root_base_url)})\n"


def _native_call(operation: str, model: str, voice: str | None) -> str:
    m = _q(model)
    if operation == "chat.completions":
        return (
            f"completion = client.chat.completions.create(\n    model={m},\n"
            f'    messages=[{{"role": "user", "content": {_q(PROMPT)}}}],\n    max_tokens=32,\n)\n'
            'print(completion["choices"][0]["message"]["content"])\n'
        )
    if operation == "responses":
        return (
            f"response = client.responses.create(\n    model={m},\n    input={_q(PROMPT)},\n"
            "    max_output_tokens=32,\n)\n"
            'print(response["output_text"])\n'
        )
    if operation == "embeddings":
        return (
            f'result = client.embeddings.create(model={m}, input="RunInfra turns models into endpoints.")\n'
            'print(len(result["data"][0]["embedding"]), "dimensions")\n'
        )
    if operation == "images.generate":
        return (
            f'result = client.images.generate(model={m}, prompt="a small red house", n=1)\n'
            'print(result["data"][0].get("url") or "image received")\n'
        )
    if operation == "audio.speech":
        return (
            f"audio = client.audio.speech.create(\n    model={m},\n"
            '    input="Hello from your RunInfra gateway.",\n'
            f"    voice={_q(voice or 'default')},\n"
            '    response_format="wav",\n)\n'
            'with open("speech.wav", "wb") as out:\n    out.write(audio.content)\n'
            'print("wrote speech.wav")\n'
        )
    if operation == "audio.transcriptions":
        return (
            '# speech.wav: any short recording (the Text to speech snippet writes one).\n'
            'with open("speech.wav", "rb") as audio_file:\n'
            f'    transcript = client.audio.transcriptions.create(\n        model={m},\n'
            '        file=audio_file.read(),\n        filename="speech.wav",\n    )\n'
            'print(transcript["text"])\n'
        )
    if operation == "voice.pipeline":
        return (
            '# speech.wav: any short recording of a question.\n'
            'with open("speech.wav", "rb") as audio_file:\n'
            '    reply = client.voice.pipeline.create(audio=audio_file.read(), mime_type="audio/wav")\n'
            'print(reply["transcript"], "->", reply["response_text"])\n'
        )
    raise ValueError(f"no snippet for operation {operation!r}")


def _openai_call(operation: str, model: str, voice: str | None) -> str | None:
    m = _q(model)
    if operation == "chat.completions":
        return (
            f"completion = client.chat.completions.create(\n    model={m},\n"
            f'    messages=[{{"role": "user", "content": {_q(PROMPT)}}}],\n    max_tokens=32,\n)\n'
            "print(completion.choices[0].message.content)\n"
        )
    if operation == "responses":
        return (
            f"response = client.responses.create(\n    model={m},\n    input={_q(PROMPT)},\n"
            "    max_output_tokens=32,\n)\n"
            "print(response.output_text)\n"
        )
    if operation == "embeddings":
        return (
            f'result = client.embeddings.create(model={m}, input="RunInfra turns models into endpoints.")\n'
            'print(len(result.data[0].embedding), "dimensions")\n'
        )
    if operation == "images.generate":
        return (
            f'result = client.images.generate(model={m}, prompt="a small red house", n=1)\n'
            'print(result.data[0].url or "image received")\n'
        )
    if operation == "audio.speech":
        return (
            f"speech = client.audio.speech.create(\n    model={m},\n"
            f'    voice={_q(voice or "default")},\n'
            '    input="Hello from your RunInfra gateway.",\n    response_format="wav",\n)\n'
            'with open("speech.wav", "wb") as out:\n    out.write(speech.content)\n'
            'print("wrote speech.wav")\n'
        )
    if operation == "audio.transcriptions":
        return (
            '# speech.wav: any short recording (the Text to speech snippet writes one).\n'
            'with open("speech.wav", "rb") as audio_file:\n'
            f"    transcript = client.audio.transcriptions.create(model={m}, file=audio_file)\n"
            "print(transcript.text)\n"
        )
    return None  # the voice pipeline has no OpenAI equivalent


def _curl(operation: str, model: str, base_url: str, voice: str | None) -> str:
    auth = '-H "Authorization: Bearer $RUNINFRA_API_KEY"'
    json_header = '-H "Content-Type: application/json"'

    def post_json(path: str, body: Mapping[str, object], tail: str = "") -> str:
        url = shlex.quote(f"{base_url}{path}")
        return f"curl -sS {url} \\\n  {auth} \\\n  {json_header} \\\n  -d {shlex.quote(json.dumps(body))}{tail}\n"

    if operation == "chat.completions":
        return post_json(
            "/chat/completions",
            {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 32},
        )
    if operation == "responses":
        return post_json("/responses", {"model": model, "input": PROMPT, "max_output_tokens": 32})
    if operation == "embeddings":
        return post_json("/embeddings", {"model": model, "input": "RunInfra turns models into endpoints."})
    if operation == "images.generate":
        return post_json("/images/generations", {"model": model, "prompt": "a small red house", "n": 1})
    if operation == "audio.speech":
        body = {"model": model, "input": "Hello from your RunInfra gateway.", "voice": voice or "default",
                "response_format": "wav"}
        return post_json("/audio/speech", body, " \\\n  -o speech.wav")
    if operation == "audio.transcriptions":
        url = shlex.quote(f"{base_url}/audio/transcriptions")
        return f"curl -sS {url} \\\n  {auth} \\\n  -F file=@speech.wav \\\n  -F model={shlex.quote(model)}\n"
    if operation == "voice.pipeline":
        url = shlex.quote(f"{base_url}/pipeline")
        return f'curl -sS {url} \\\n  {auth} \\\n  -H "Content-Type: audio/wav" \\\n  --data-binary @speech.wav\n'
    raise ValueError(f"no snippet for operation {operation!r}")


def snippets_for(
    *,
    root_base_url: str,
    operations: Sequence[tuple[str, str | None]],
    pipeline_id: str | None = None,
    voices: dict[str, str] | None = None,
) -> list[OperationSnippets]:
    """Snippets for each ``(operation, model id)``; ``root_base_url`` ends in ``/v1``.

    ``voice.pipeline`` (model ``None``) is only valid with a ``pipeline_id``.
    ``voices`` maps a text-to-speech model id to a voice it lists.
    """
    root = root_base_url.rstrip("/")
    scoped = f"{root}/{pipeline_id}" if pipeline_id else root
    native_head = f"import os\n\nfrom runinfra import RunInfra\n\n{_KEY_CHECK}\n{_native_client(root, pipeline_id)}\n"
    openai_head = (
        f"import os\n\nfrom openai import OpenAI\n\n{_KEY_CHECK}\n"
        f"client = OpenAI(api_key=api_key, base_url={_q(scoped)})\n\n"
    )
    result: list[OperationSnippets] = []
    for operation, model in operations:
        if operation == "voice.pipeline" and not pipeline_id:
            raise ValueError("the voice pipeline snippet needs a pipeline_id")
        voice = (voices or {}).get(model or "")
        model_id = model or ""
        flavours = [Snippet("native", "RunInfra SDK", "python", native_head + _native_call(operation, model_id, voice))]
        openai_call = _openai_call(operation, model_id, voice)
        if openai_call is not None:
            flavours.append(Snippet("openai", "OpenAI-compatible", "python", openai_head + openai_call))
        flavours.append(Snippet("curl", "curl", "shell", _curl(operation, model_id, scoped, voice)))
        result.append(
            OperationSnippets(
                operation=operation,
                label=OPERATION_LABELS.get(operation, operation),
                method=_SDK_METHOD[operation],
                model=model,
                snippets=tuple(flavours),
            )
        )
    return result

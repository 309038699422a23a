"""``runinfra serve`` with no config: the embedded default, first-run secrets printed once, every modality."""

from __future__ import annotations

import base64
import re
import urllib.request
from pathlib import Path

from runinfra import RunInfra
from runinfra_gateway.engines.png import decode_png
from runinfra_gateway.testing import GatewayProcess


def _secret(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match, text
    return match.group(1)


def test_first_run_serves_every_modality(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path).start(timeout=300)  # no config, no RUNINFRA_ADMIN_TOKEN
    try:
        out = gateway.stdout()
        assert "runinfra: ready" in out
        admin_token = _secret(r"admin token \(shown once; only its hash is stored\): (ria_\S+)", out)
        key = _secret(r"workspace key for 'default' .*: (rik_\S+)", out)
        pipeline_key = _secret(r"pipeline key for 'voice' .*: (rik_\S+)", out)
        assert admin_token not in gateway.stderr()

        client = RunInfra(api_key=key, base_url=gateway.v1, max_retries=0)
        models = {m["id"]: m["operations"] for m in client.models.list()["data"]}
        assert {op for ops in models.values() for op in ops} == {
            "chat.completions", "responses", "embeddings", "images.generate", "audio.speech",
            "audio.transcriptions"}
        chat = client.chat.completions.create(model="smollm2-135m-instruct",
                                              messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
        assert chat["choices"][0]["message"]["content"] is not None
        image = client.images.generate(model="digits-diffusion", prompt="7", n=1)
        url = image["data"][0]["url"]  # type: ignore[typeddict-item]
        assert url.startswith(gateway.base_url + "/v1/images/files/")
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.read().startswith(b"\x89PNG")
        inline = client.images.generate(model="digits-diffusion", prompt="3", n=2, size="64x64",
                                        response_format="b64_json")
        assert [decode_png(base64.b64decode(item["b64_json"])).shape  # type: ignore[typeddict-item]
                for item in inline["data"]] == [(64, 64), (64, 64)]

        # Piper's speech differs a little every time; whisper-tiny heard this question's key word in 60 of 60
        # tries through the pipeline, "What colour is the sky?" as "...this guy?" in 4 of 40.
        speech = client.audio.speech.create(model="piper-joe", input="What is the capital of France?", voice="joe",
                                            response_format="wav")
        voice = RunInfra(api_key=pipeline_key, base_url=gateway.v1, pipeline_id="voice", max_retries=0)
        answer = voice.voice.pipeline.create(audio=speech.content, mime_type="audio/wav")
        assert "france" in answer["transcript"].lower()
        assert answer["response_text"]
        assert base64.b64decode(answer["audio_base64"])
    finally:
        assert gateway.stop() == 0
    again = GatewayProcess(tmp_path).start(timeout=300)
    try:
        assert "shown once" not in again.stdout()
    finally:
        again.stop()

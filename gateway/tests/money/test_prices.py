"""Prices: exact micro-cent arithmetic, estimates that bound the charge, config errors named by key."""

from __future__ import annotations

import math
from typing import Any

import pytest
from runinfra_gateway.billing import MICROCENTS_PER_CENT, Prices, Usage, cents_to_microcents, estimate_usage

CHAT = Prices.from_mapping({"input_per_1k_tokens": 0.01, "output_per_1k_tokens": 0.02})


def test_one_token_is_charged_exactly() -> None:
    # 0.01 cent per 1k tokens = 10 micro-cents per token.
    assert CHAT.charge_microcents("chat.completions", Usage(input_tokens=1)) == 10
    assert CHAT.charge_microcents("chat.completions", Usage(output_tokens=1)) == 20
    assert CHAT.charge_microcents("chat.completions", Usage(input_tokens=1000, output_tokens=1000)) == 30_000


def test_sub_micro_cent_totals_round_up_once_per_request() -> None:
    prices = Prices.from_mapping({"input_per_1k_tokens": 0.000001})  # 1 micro-cent per 1k tokens
    assert prices.charge_microcents("embeddings", Usage(input_tokens=1)) == 1
    assert prices.charge_microcents("embeddings", Usage(input_tokens=1000)) == 1
    assert prices.charge_microcents("embeddings", Usage(input_tokens=1001)) == 2
    assert prices.charge_microcents("embeddings", Usage()) == 0


def test_every_price_kind_adds_up_exactly() -> None:
    prices = Prices.from_mapping(
        {
            "input_per_1k_tokens": 0.01,
            "output_per_1k_tokens": 0.02,
            "per_image": 0.5,
            "per_audio_second": 0.01,
            "per_1k_characters": 0.5,
        }
    )
    usage = Usage(input_tokens=7, output_tokens=3, images=2, audio_seconds=0.3, characters=11)
    # 70 + 60 + 2 * 500_000 + 300 ms * 10 micro-cents/ms-per-1000 (3_000) + 11 * 500 = 1_008_630
    assert prices.charge_microcents("images.generate", usage) == 70 + 60 + 1_000_000 + 3_000 + 5_500
    # 0.3 s must not become 301 ms through float noise (0.3 * 1000 == 300.00000000000006).
    assert prices.charge_microcents("audio.transcriptions", Usage(audio_seconds=0.3)) == 3_000
    assert prices.charge_microcents("audio.transcriptions", Usage(audio_seconds=0.0001)) == 10


def test_cents_convert_without_float_error() -> None:
    assert MICROCENTS_PER_CENT == 1_000_000
    assert cents_to_microcents(0.1) == 100_000
    assert cents_to_microcents(0.000001) == 1
    assert cents_to_microcents(-2.5) == -2_500_000
    assert cents_to_microcents(12345678.123456) == 12_345_678_123_456
    with pytest.raises(ValueError, match="finer than one micro-cent"):
        cents_to_microcents(0.0000001)
    for bad in (float("nan"), float("inf"), "ten", True, None):
        with pytest.raises(ValueError, match="cents"):
            cents_to_microcents(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"input_per_1k_token": 0.01}, "input_per_1k_token"),
        ({"per_image": -0.5}, "per_image"),
        ({"per_audio_second": "cheap"}, "per_audio_second"),
        ({"per_1k_characters": True}, "per_1k_characters"),
        ({"output_per_1k_tokens": float("nan")}, "output_per_1k_tokens"),
        ({"output_per_1k_tokens": float("inf")}, "output_per_1k_tokens"),
        ({"input_per_1k_tokens": [1]}, "input_per_1k_tokens"),
        ({"input_per_1k_tokens": 0.0000001}, "input_per_1k_tokens"),
        ({"per_image": 1e30}, "per_image"),
    ],
)
def test_bad_price_config_names_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=f"prices.{key}"):
        Prices.from_mapping(table)


def test_price_table_shape_errors() -> None:
    with pytest.raises(ValueError, match="prices"):
        Prices.from_mapping(["per_image", 1])  # type: ignore[arg-type]
    assert Prices.from_mapping(None).is_free
    assert Prices.from_mapping({}).is_free
    assert not CHAT.is_free


def test_unknown_operation_and_negative_usage_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        CHAT.charge_microcents("chat.complete", Usage())
    with pytest.raises(ValueError, match="unknown operation"):
        CHAT.estimate_microcents("voice", {})
    with pytest.raises(ValueError, match="negative"):
        CHAT.charge_microcents("chat.completions", Usage(input_tokens=-1))
    for seconds in (float("nan"), float("inf"), -0.5):
        with pytest.raises(ValueError, match="audio_seconds"):
            CHAT.charge_microcents("audio.transcriptions", Usage(audio_seconds=seconds))


def test_chat_estimate_bounds_the_real_usage() -> None:
    body = {"messages": [{"role": "user", "content": "héllo wörld"}], "max_tokens": 50, "n": 2}
    usage = estimate_usage("chat.completions", body)
    assert usage.output_tokens == 100
    # bytes of every string (role included) + template overhead
    assert usage.input_tokens == len(b"user") + len("héllo wörld".encode()) + 8 + 16
    assert CHAT.estimate_microcents("chat.completions", body) == CHAT.charge_microcents("chat.completions", usage)
    no_cap = estimate_usage("chat.completions", {"messages": []})
    assert no_cap.output_tokens == 4096
    newer = estimate_usage("chat.completions", {"messages": [], "max_completion_tokens": 7, "max_tokens": 9})
    assert newer.output_tokens == 7


def test_estimates_for_every_operation() -> None:
    assert estimate_usage("responses", {"input": "hi", "instructions": "be brief", "max_output_tokens": 5}) == Usage(
        input_tokens=2 + 8 + 8 * 2 + 16, output_tokens=5
    )
    assert estimate_usage("embeddings", {"input": ["ab", "cde"]}).input_tokens == 5 + 4
    assert estimate_usage("embeddings", {"input": [[1, 2, 3]]}).input_tokens == 3 + 2
    assert estimate_usage("images.generate", {"prompt": "cat", "n": 3}).images == 3
    assert estimate_usage("audio.speech", {"input": "héllo"}).characters == 5
    assert estimate_usage("audio.transcriptions", {"duration_seconds": 12.5}).audio_seconds == 12.5
    upload = estimate_usage("audio.transcriptions", {"file": b"\0" * 7501})
    assert upload.audio_seconds == math.ceil(7501 / 750)
    assert estimate_usage("audio.transcriptions", {"file_size_bytes": 1500}).audio_seconds == 2


@pytest.mark.parametrize(
    "body",
    [
        {"messages": "not a list", "max_tokens": -5, "n": True},
        {"messages": [{"content": None}], "max_tokens": "lots"},
        {"messages": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
        {"messages": [{"content": "\ud800"}]},  # a lone surrogate from a JSON \\ud800 escape
        {},
    ],
)
def test_hostile_bodies_still_give_a_bounded_estimate(body: dict[str, Any]) -> None:
    estimate = CHAT.estimate_microcents("chat.completions", body)
    assert estimate >= CHAT.charge_microcents("chat.completions", Usage(output_tokens=4096))


def test_hostile_transcription_fields_fall_back_to_zero_length() -> None:
    for body in ({"duration_seconds": float("nan")}, {"file_size_bytes": -1}, {"file_size_bytes": "9"}, {"file": 3}):
        assert estimate_usage("audio.transcriptions", body).audio_seconds == 0

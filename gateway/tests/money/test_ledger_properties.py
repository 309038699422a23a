"""Property tests: charges equal exact rational arithmetic rounded up once; any sequence of ledger
operations matches a simple model and leaves the SQL ledger summing to the balance."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runinfra_gateway.billing import Ledger, Prices, Usage
from runinfra_gateway.errors import GatewayError
from runinfra_gateway.store import Database

from .helpers import charges_by_request, ledger_state, migrated_database

# Prices in cents with at most six decimals per 1k units (nine for per-unit prices).
per_1k = st.integers(min_value=0, max_value=10**9).map(lambda micro: Fraction(micro, 10**6))
per_unit = st.integers(min_value=0, max_value=10**12).map(lambda nano: Fraction(nano, 10**9))


@given(
    input_price=per_1k,
    output_price=per_1k,
    image_price=per_unit,
    audio_price=per_unit,
    char_price=per_1k,
    tokens_in=st.integers(0, 10**7),
    tokens_out=st.integers(0, 10**7),
    images=st.integers(0, 100),
    milliseconds=st.integers(0, 10**7),
    characters=st.integers(0, 10**7),
)
def test_charge_is_the_exact_price_rounded_up_once(
    input_price: Fraction,
    output_price: Fraction,
    image_price: Fraction,
    audio_price: Fraction,
    char_price: Fraction,
    tokens_in: int,
    tokens_out: int,
    images: int,
    milliseconds: int,
    characters: int,
) -> None:
    table = {
        "input_per_1k_tokens": _decimal(input_price),
        "output_per_1k_tokens": _decimal(output_price),
        "per_image": _decimal(image_price),
        "per_audio_second": _decimal(audio_price),
        "per_1k_characters": _decimal(char_price),
    }
    prices = Prices.from_mapping(table)
    usage = Usage(tokens_in, tokens_out, images, milliseconds / 1000, characters)
    exact_cents = (
        input_price * tokens_in / 1000
        + output_price * tokens_out / 1000
        + image_price * images
        + audio_price * Fraction(milliseconds, 1000)
        + char_price * characters / 1000
    )
    assert prices.charge_microcents("chat.completions", usage) == math.ceil(exact_cents * 1_000_000)


def _decimal(value: Fraction) -> float:
    # The TOML parser hands floats; a float with <= 9 decimals round-trips through str() exactly.
    return float(value)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("hold"), st.integers(0, 3000)),
        st.tuples(st.just("settle"), st.integers(0, 5000)),
        st.tuples(st.just("release"), st.just(0)),
        st.tuples(st.just("adjust"), st.integers(-5000, 5000)),
    ),
    max_size=40,
)
workspaces = itertools.count(1)


@pytest.fixture(scope="module")
def shared_ledger_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Database]]:
    """One database and journal directory for every example (each example uses its own workspace)."""
    directory = tmp_path_factory.mktemp("ledger-properties")
    db = migrated_database(directory / "gateway.sqlite3")
    yield directory, db
    db.close()


@settings(max_examples=30, deadline=None)
@given(steps=operations)
def test_any_sequence_matches_the_model_and_the_ledger_sums_to_the_balance(
    shared_ledger_files: tuple[Path, Database], steps: list[tuple[str, int]]
) -> None:
    directory, db = shared_ledger_files
    workspace = f"ws_{next(workspaces)}"

    async def run() -> tuple[int, dict[str, int]]:
        ledger = Ledger(db, journal_path=directory / "credits", topup_url="https://x.example/topup")
        await ledger.start()
        await ledger.open_account(workspace, 0.005)  # 5_000 micro-cents
        available, open_holds, charged = 5_000, [], {}
        for number, (kind, amount) in enumerate(steps):
            if kind == "hold":
                try:
                    hold = await ledger.hold(workspace, amount, request_id=f"{workspace}-{number}")
                except GatewayError:
                    assert amount > available
                    continue
                assert amount <= available
                available -= amount
                open_holds.append(hold)
            elif kind == "settle" and open_holds:
                hold = open_holds.pop(0)
                expected = min(amount, hold.microcents + available)
                charge = await ledger.settle(
                    hold, amount, request_id=hold.request_id, key_id="k", deployment_id="d",
                    operation="embeddings", usage=Usage(), status=200,
                )  # fmt: skip
                assert charge == expected
                available += hold.microcents - charge
                charged[hold.request_id] = charge
            elif kind == "release" and open_holds:
                hold = open_holds.pop()
                await ledger.release(hold)
                available += hold.microcents
            elif kind == "adjust":
                balance = await ledger.adjust(workspace, amount / 1_000_000)
                available = max(0, available + amount)
                assert balance.balance_microcents == available
            assert ledger.balance(workspace).balance_microcents == available
            assert ledger.balance(workspace).held_microcents == sum(hold.microcents for hold in open_holds)
        await ledger.flush()
        state = ledger_state(db)[workspace]
        assert state[0] == state[1] == available, "ledger rows sum to the balance while holds are open"
        await ledger.close()  # a clean close with holds open: they stay held and are released on the next start
        return available + sum(hold.microcents for hold in open_holds), charged

    expected_after_restart, charged = asyncio.run(run())

    async def restart() -> int:
        ledger = Ledger(db, journal_path=directory / "credits", topup_url="https://x.example/topup")
        await ledger.start()
        balance = ledger.balance(workspace).balance_microcents
        await ledger.close()
        return balance

    assert asyncio.run(restart()) == expected_after_restart
    row_sum, balance, held, open_hold_sum = ledger_state(db)[workspace]
    assert (row_sum, balance, held, open_hold_sum) == (expected_after_restart, expected_after_restart, 0, 0)
    recorded = {
        request_id: amounts
        for request_id, amounts in charges_by_request(db).items()
        if request_id.startswith(f"{workspace}-")
    }
    assert recorded == {request_id: [charge] for request_id, charge in charged.items()}


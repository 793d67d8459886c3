"""Action ids are the UUIDv5 of their business fact: spelt out for speed, they must stay exactly that."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from shared.domain.decisions import ACTION_NAMESPACE, action_id


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_an_action_id_is_the_uuid5_of_its_parts_joined(parts: list[str]) -> None:
    assert action_id(*parts) == str(uuid.uuid5(ACTION_NAMESPACE, "|".join(parts)))


def test_an_action_id_keeps_the_value_it_has_always_had() -> None:
    # Ids of actions already published: a change here would send every replayed action again.
    assert action_id("shop-1", "m-1", "first_purchase_gift", "o-1") == str(
        uuid.uuid5(uuid.UUID("6f1c7f0e-3f43-4d7b-9a55-0b8f6c2b1e10"), "shop-1|m-1|first_purchase_gift|o-1")
    )

"""Push monitors keep only their token's SHA-256 in config, and say so when given something else."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fao.schemas import PushCheck
from fao.schemas.checks import new_push_token, push_token_sha256


def test_the_hash_of_a_new_token_is_accepted() -> None:
    token, digest = new_push_token()
    assert digest == push_token_sha256(token)
    assert PushCheck(token_sha256=digest).token_sha256 == digest


@pytest.mark.parametrize("given", ["the-token-itself-pasted-by-mistake", "ABCDEF" * 10 + "ABCD", "0" * 63])
def test_anything_but_the_hash_is_refused_naming_fao_push_token(given: str) -> None:
    with pytest.raises(ValidationError) as refused:
        PushCheck(token_sha256=given)
    [error] = refused.value.errors()
    assert error["msg"] == (
        "Value error, token_sha256 is the token's SHA-256 as `fao push-token` prints it (64 lower-case"
        " hex digits), never the token itself"
    )

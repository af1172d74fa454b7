"""The basic refusals: a request without a valid token for this server gets 401."""

import time

import pytest

from fastmcp_auth import client
from fastmcp_auth.__main__ import write_keys

INVALID = 'Bearer error="invalid_token"'


def test_a_request_without_a_token_is_refused(live_server):
    response = live_server.post()
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer", response.text


@pytest.fixture(scope="module")
def foreign_key(tmp_path_factory):
    """A private key the server has never seen."""
    folder = tmp_path_factory.mktemp("foreign")
    write_keys(folder / "private.pem", folder / "public.pem")
    return client.load_private_key(folder / "private.pem")


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda mint, key: "not-a-jwt", id="garbage"),
        pytest.param(lambda mint, key: mint(exp=int(time.time()) - 60), id="expired"),
        pytest.param(lambda mint, key: mint(iss="http://evil.example"), id="wrong issuer"),
        pytest.param(lambda mint, key: mint(aud="http://localhost:1/mcp"), id="wrong audience"),
        pytest.param(lambda mint, key: mint(key=key), id="foreign key"),
    ],
)
def test_a_bad_token_is_refused_with_invalid_token(live_server, mint, foreign_key, make_token):
    response = live_server.post(make_token(mint, foreign_key))
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith(INVALID), response.text

"""`souk token`: signed bearer tokens with the roles asked for."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from souk.cli import app
from souk.settings import get_settings
from transactional.shared.auth import ADMIN, SERVICE, JwtTokens


@pytest.mark.parametrize(
    ("flags", "roles"),
    [([], set()), (["--admin"], {ADMIN}), (["--service"], {SERVICE})],
)
def test_token_carries_the_roles_asked_for(flags: list[str], roles: set[str]) -> None:
    result = CliRunner().invoke(app, ["token", "--subject", "svc-fraud", *flags])
    assert result.exit_code == 0, result.output
    settings = get_settings()
    principal = JwtTokens(settings.jwt_secret, ttl_s=60).verify(result.output.strip())
    assert principal.customer_id == "svc-fraud"
    assert set(principal.roles) == roles

"""Read protection and the Host check on the real HTTP server: `server.read_token`,
`server.protect_reads` and `server.allowed_hosts` (see `relay.http.access`)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from relay.errors import ConfigError
from relay.http.access import host_allowed
from relay.scrub import SecretScrubber
from relay.settings.loader import parse_settings
from tests.http_rig import ADMIN_TOKEN, READ_TOKEN, http_rig

READS = ("/", "/api/v1/alerts", "/api/v1/silences", "/api/v1/deliveries")
SILENCE = {"matchers": {"rule": "execution-failed"}, "duration": "2h", "comment": "deploy"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_reads_need_no_token_and_any_host_by_default(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        for path in READS:
            response = await rig.client.get(path, headers={"Host": "rebound.example"})
            assert response.status_code == 200, (path, response.text)


async def test_the_read_token_guards_the_status_page_and_the_api(tmp_path: Path) -> None:
    async with http_rig(tmp_path, server={"read_token": READ_TOKEN}) as rig:
        for path in READS:
            refused = await rig.client.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["WWW-Authenticate"].startswith('Basic realm="zaia-relay"')
            assert refused.json()["error"] == "unauthorized"
            wrong = await rig.client.get(path, headers=bearer(READ_TOKEN + "x"))
            assert wrong.status_code == 401, path
            for token in (READ_TOKEN, ADMIN_TOKEN):
                assert (await rig.client.get(path, headers=bearer(token))).status_code == 200
                # What a browser sends once the operator typed the token at its prompt.
                page = await rig.client.get(path, auth=httpx.BasicAuth("ops", token))
                assert page.status_code == 200, path
            assert READ_TOKEN not in (await rig.client.get(path, headers=bearer(READ_TOKEN))).text
        # Probes and metrics stay open: kubelet and Prometheus send no token.
        assert (await rig.client.get("/healthz")).status_code == 200
        assert (await rig.client.get("/metrics")).status_code == 200
        assert (await rig.client.get("/readyz")).status_code == 503  # unpolled, not 401


async def test_only_a_bearer_admin_token_changes_anything(tmp_path: Path) -> None:
    async with http_rig(tmp_path, server={"read_token": READ_TOKEN}) as rig:
        basic = httpx.BasicAuth("ops", ADMIN_TOKEN)  # a browser resends it unasked
        refused = await rig.client.post("/api/v1/silences", json=SILENCE, auth=basic)
        assert refused.status_code == 401
        reader = await rig.client.post("/api/v1/silences", json=SILENCE, headers=bearer(READ_TOKEN))
        assert reader.status_code == 401
        assert await rig.store.list_silences(now=rig.clock()) == []
        done = await rig.client.post("/api/v1/silences", json=SILENCE, headers=rig.admin)
        assert done.status_code == 201, done.text


async def test_protect_reads_asks_for_the_admin_token(tmp_path: Path) -> None:
    async with http_rig(tmp_path, server={"protect_reads": True}) as rig:
        assert (await rig.client.get("/api/v1/alerts")).status_code == 401
        assert (await rig.client.get("/", headers=bearer(READ_TOKEN))).status_code == 401
        assert (await rig.client.get("/", headers=rig.admin)).status_code == 200


async def test_allowed_hosts_refuse_any_other_host(tmp_path: Path) -> None:
    allowed = ["Relay.Internal", "localhost:8080"]
    async with http_rig(tmp_path, server={"allowed_hosts": allowed}) as rig:
        for host in ("relay.internal", "RELAY.internal:31337", "localhost:8080"):
            response = await rig.client.get("/api/v1/alerts", headers={"Host": host})
            assert response.status_code == 200, host
        for host in ("rebound.example", "localhost:9999", "relay.internal.rebound.example"):
            response = await rig.client.get("/", headers={"Host": host})
            assert response.status_code == 421, host
            assert response.json()["error"] == "misdirected_request"
            assert host not in response.text
        change = await rig.client.post(
            "/api/v1/silences", json=SILENCE, headers={**rig.admin, "Host": "rebound.example"}
        )
        assert change.status_code == 421
        for path in ("/healthz", "/metrics"):  # probes address the pod by its IP
            response = await rig.client.get(path, headers={"Host": "10.1.2.3:8080"})
            assert response.status_code == 200, path


def test_host_matching_takes_ports_and_ipv6_literals() -> None:
    allowed = ["[::1]", "10.0.0.7:8080", "relay"]
    assert host_allowed("[::1]:8080", allowed)
    assert host_allowed("10.0.0.7:8080", allowed)
    assert not host_allowed("10.0.0.7:8081", allowed)
    assert not host_allowed("[::2]", allowed)
    assert not host_allowed("", allowed)
    assert not host_allowed("relay:", allowed)


def _config(server: str) -> str:
    return f"sources:\n  - {{name: prod, api_key: zk_live_abcdefgh}}\nserver:\n{server}"


def test_read_settings_name_their_field(tmp_path: Path) -> None:
    cases = {
        "  read_token: short-token\n": "server.read_token",
        "  protect_reads: true\n": "server.protect_reads",
        "  allowed_hosts: ['http://relay/']\n": "server.allowed_hosts",
    }
    for text, field in cases.items():
        with pytest.raises(ConfigError) as failure:
            parse_settings(_config(text), environ={})
        assert [p.path for p in failure.value.problems] == [field]
        assert "short-token" not in str(failure.value)


def test_the_read_token_can_come_from_a_file_and_is_a_secret(tmp_path: Path) -> None:
    (tmp_path / "read-token").write_text(READ_TOKEN + "\n", encoding="utf-8")
    settings = parse_settings(
        _config("  read_token_file: read-token\n"), environ={}, base_dir=tmp_path
    )
    assert settings.server.read_token is not None
    assert settings.server.read_token.get_secret_value() == READ_TOKEN
    assert settings.server.reads_protected
    scrubbed = SecretScrubber.from_settings(settings).scrub_text(f"token={READ_TOKEN}")
    assert READ_TOKEN not in scrubbed

"""ZenohSettings -> Zenoh configuration (pure validation, JSON5 rendering, zenoh.Config)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rtrun._errors import TransportError
from rtrun._zenoh_config import ZenohConfigError, ZenohSettings, to_json5, to_zenoh_config


def test_defaults_are_peer_without_multicast_with_shared_memory() -> None:
    doc = json.loads(to_json5(ZenohSettings()))
    assert doc == {
        "mode": "peer",
        "scouting": {"multicast": {"enabled": False}},
        "transport": {"shared_memory": {"enabled": True}},
    }


def test_full_settings_render_to_zenoh_paths() -> None:
    settings = ZenohSettings(
        mode="peer",
        listen=("tcp/127.0.0.1:7447",),
        connect=("tcp/gpu-box.local:7447", "tls/gpu.local:7448"),
        tls_root_ca="/ca.pem",
        tls_connect_certificate="/c.pem",
        tls_connect_private_key="/c.key",
        tls_mtls=True,
        lease_ms=300,
        keep_alive=3,
        shared_memory=False,
    )
    doc = json.loads(to_json5(settings))
    assert doc["listen"] == {"endpoints": ["tcp/127.0.0.1:7447"]}
    assert doc["connect"]["endpoints"] == ["tcp/gpu-box.local:7447", "tls/gpu.local:7448"]
    assert doc["transport"]["link"]["tx"] == {"lease": 300, "keep_alive": 3}
    assert doc["transport"]["link"]["tls"] == {
        "root_ca_certificate": "/ca.pem",
        "connect_certificate": "/c.pem",
        "connect_private_key": "/c.key",
        "enable_mtls": True,
    }
    assert doc["transport"]["shared_memory"] == {"enabled": False}


@pytest.mark.oracle
def test_zenoh_accepts_the_document() -> None:
    pytest.importorskip("zenoh")
    settings = ZenohSettings(
        mode="client",
        connect=("tcp/127.0.0.1:7447",),
        lease_ms=500,
        keep_alive=2,
        tls_root_ca="/ca.pem",
        extra=(("transport/link/tx/queue/congestion_control/drop/wait_before_drop", "500"),),
    )
    config = to_zenoh_config(settings)
    assert json.loads(config.get_json("mode")) == "client"
    assert json.loads(config.get_json("connect/endpoints")) == ["tcp/127.0.0.1:7447"]
    assert json.loads(config.get_json("scouting/multicast/enabled")) is False
    assert json.loads(config.get_json("transport/link/tx/lease")) == 500
    assert json.loads(config.get_json("transport/link/tx/keep_alive")) == 2
    assert json.loads(config.get_json("transport/shared_memory/enabled")) is True
    assert json.loads(config.get_json("transport/link/tls/root_ca_certificate")) == "/ca.pem"
    drop = json.loads(config.get_json("transport/link/tx/queue/congestion_control/drop"))
    assert drop["wait_before_drop"] == 500


@pytest.mark.oracle
def test_zenoh_rejection_is_a_transport_error() -> None:
    pytest.importorskip("zenoh")
    settings = ZenohSettings(extra=(("no/such/path", "1"),))
    with pytest.raises(ZenohConfigError, match="zenoh rejected"):
        to_zenoh_config(settings)


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({"mode": "server"}, "mode"),
        ({"listen": ("127.0.0.1:7447",)}, "<protocol>/<address>"),
        ({"connect": ("tcp/ spaced",)}, "<protocol>/<address>"),
        ({"mode": "client", "listen": ("tcp/127.0.0.1:1",), "connect": ("tcp/a:1",)}, "cannot listen"),
        ({"mode": "client"}, "needs 'connect'"),
        ({"tls_listen_certificate": "/a.pem"}, "given together"),
        ({"tls_connect_private_key": "/a.key"}, "given together"),
        ({"tls_mtls": True}, "tls_root_ca"),
        ({"listen": ("tls/0.0.0.0:7447",)}, "tls_listen_certificate"),
        ({"lease_ms": 0}, "positive"),
        ({"keep_alive": True}, "integer"),
        ({"extra": (("/abs", "1"),)}, "relative"),
    ],
)
def test_invalid_settings_name_the_rule(kwargs: dict[str, Any], rule: str) -> None:
    with pytest.raises(ZenohConfigError, match=rule) as info:
        ZenohSettings(**kwargs)
    assert isinstance(info.value, TransportError) and isinstance(info.value, ValueError)


def test_from_mapping_parses_a_toml_table() -> None:
    settings = ZenohSettings.from_mapping(
        {
            "mode": "peer",
            "listen": ["tcp/0.0.0.0:7447"],
            "lease_ms": 1000,
            "extra": {"transport/link/tx/batch_size": 8192},
        }
    )
    assert settings.listen == ("tcp/0.0.0.0:7447",)
    assert settings.extra == (("transport/link/tx/batch_size", "8192"),)
    with pytest.raises(ZenohConfigError, match="unknown zenoh setting"):
        ZenohSettings.from_mapping({"modes": "peer"})
    with pytest.raises(ZenohConfigError, match="list of endpoint"):
        ZenohSettings.from_mapping({"listen": "tcp/0.0.0.0:7447"})
    with pytest.raises(ZenohConfigError, match="table"):
        ZenohSettings.from_mapping({"extra": ["x"]})


def test_settings_are_frozen() -> None:
    settings = ZenohSettings()
    with pytest.raises(AttributeError):
        settings.mode = "router"  # type: ignore[misc]

"""Zenoh session settings: the ``[zenoh]`` / ``[hosts.<name>]`` tables turned into a Zenoh config.

:class:`ZenohSettings` is a plain frozen dataclass (validated on construction, no I/O);
:func:`to_json5` renders it as a Zenoh JSON5 configuration document and :func:`to_zenoh_config`
loads that document into a ``zenoh.Config`` (importing zenoh lazily, so ``import rtrun`` stays
light and graph validation never needs Zenoh).

Decisions (the brief is silent on these):

* Only settings that are *set* are written; everything else keeps Zenoh's own default, so a
  Zenoh upgrade's better defaults are inherited. The exceptions are deliberate: multicast
  scouting is written ``false`` unless enabled (Zenoh's default is on, which multicasts to
  Zenoh's scouting group on every NIC), and shared memory is written explicitly (default on).
* TLS file paths are passed through untouched (not checked for existence: that is I/O, and Zenoh
  reports a missing file when the session opens, wrapped into :class:`TransportError`).
* ``lease_ms`` is the token holder's ``transport/link/tx/lease``: measured on this machine, a
  killed peer's liveliness token drops within 1-2 ms (socket closes), a *hung* peer only at lease
  expiry (10 s by default; 300 ms gave ~300 ms detection). Tune it down on hosts whose failure
  must be noticed quickly.
* Never the low-latency transport mode: it silently lost 32-60 KB messages here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from ._errors import TransportError

if TYPE_CHECKING:
    import zenoh

__all__ = ["ZenohConfigError", "ZenohSettings", "to_json5", "to_zenoh_config"]

Mode = Literal["peer", "client", "router"]
_MODES = ("peer", "client", "router")
_ENDPOINT_RE = re.compile(r"[a-z][a-z0-9-]*/\S+")
_TLS_PROTOCOLS = ("tls", "quic")


class ZenohConfigError(TransportError, ValueError):
    """Zenoh settings break a rule (unknown mode, malformed endpoint, half a TLS key pair...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ZenohSettings:
    """How one rtrun process opens its Zenoh session (one session per process)."""

    mode: Mode = "peer"
    """``peer`` (talk directly to other peers), ``client`` (through a router; needs ``connect``)
    or ``router`` (what ``rtrun router`` runs)."""
    listen: tuple[str, ...] = ()
    """Endpoints to listen on, e.g. ``("tcp/0.0.0.0:7447",)``. Empty: Zenoh's default."""
    connect: tuple[str, ...] = ()
    """Endpoints to connect to, e.g. ``("tcp/robot.local:7447",)``."""
    multicast_scouting: bool = False
    """Discover peers by UDP multicast. Off by default: explicit endpoints only."""
    tls_root_ca: str | None = None
    """PEM file of the CA that signs the other side's certificate (TLS/mTLS)."""
    tls_listen_certificate: str | None = None
    """PEM certificate presented by this process's TLS listeners."""
    tls_listen_private_key: str | None = None
    """PEM private key of ``tls_listen_certificate``."""
    tls_connect_certificate: str | None = None
    """PEM certificate presented when connecting (mTLS client side)."""
    tls_connect_private_key: str | None = None
    """PEM private key of ``tls_connect_certificate``."""
    tls_mtls: bool = False
    """Require and verify client certificates (mutual TLS). Needs ``tls_root_ca``."""
    lease_ms: int | None = None
    """``transport/link/tx/lease``: how long a silent peer is kept (Zenoh default 10000 ms)."""
    keep_alive: int | None = None
    """``transport/link/tx/keep_alive``: keep-alives sent per lease period (Zenoh default 4)."""
    shared_memory: bool = True
    """Shared memory for large payloads between processes of one machine (Zenoh uses it above
    ~3 KB). Keep it on: it is what makes a same-machine 1.2 MB hop cost ~0.4 ms."""
    extra: tuple[tuple[str, str], ...] = ()
    """Raw overrides ``(config path, JSON5 value)`` applied last, e.g.
    ``(("transport/link/tx/queue/congestion_control/drop/wait_before_drop", "500"),)``."""

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> ZenohSettings:
        """Build settings from a parsed TOML table; unknown keys raise :class:`ZenohConfigError`.

        Lists become tuples; ``extra`` is a table ``{path = value}`` whose values are
        JSON-encoded.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ZenohConfigError(f"unknown zenoh setting(s) {unknown}; known: {sorted(known)}")
        values = dict(table)
        for name in ("listen", "connect"):
            if name in values:
                values[name] = _as_str_tuple(name, values[name])
        if "extra" in values:
            if not isinstance(values["extra"], Mapping):
                raise ZenohConfigError("zenoh setting 'extra' must be a table {path = value}")
            values["extra"] = tuple((str(k), json.dumps(v)) for k, v in values["extra"].items())
        return cls(**values)


def _as_str_tuple(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ZenohConfigError(f"zenoh setting {name!r} must be a list of endpoint strings")
    return tuple(value)


def _validate(s: ZenohSettings) -> None:
    if s.mode not in _MODES:
        raise ZenohConfigError(f"zenoh mode {s.mode!r} is not one of {_MODES}")
    for name in ("listen", "connect"):
        for endpoint in getattr(s, name):
            if not isinstance(endpoint, str) or _ENDPOINT_RE.fullmatch(endpoint) is None:
                raise ZenohConfigError(
                    f"zenoh {name} endpoint {endpoint!r}: endpoints look like "
                    "'<protocol>/<address>', e.g. 'tcp/127.0.0.1:7447'"
                )
    if s.mode == "client" and s.listen:
        raise ZenohConfigError("zenoh mode 'client' cannot listen; use 'peer' or 'router'")
    if s.mode == "client" and not s.connect and not s.multicast_scouting:
        raise ZenohConfigError("zenoh mode 'client' needs 'connect' endpoints (scouting is off)")
    _validate_tls(s)
    for name, value in (("lease_ms", s.lease_ms), ("keep_alive", s.keep_alive)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ZenohConfigError(f"zenoh setting {name!r} must be an integer")
        if value is not None and value <= 0:
            raise ZenohConfigError(f"zenoh setting {name!r} must be positive, got {value}")
    for path, _ in s.extra:
        if not path or path.startswith("/"):
            raise ZenohConfigError(f"zenoh extra path {path!r} must be a relative config path")


def _validate_tls(s: ZenohSettings) -> None:
    pairs = (
        ("tls_listen_certificate", "tls_listen_private_key"),
        ("tls_connect_certificate", "tls_connect_private_key"),
    )
    for cert, key in pairs:
        if (getattr(s, cert) is None) != (getattr(s, key) is None):
            raise ZenohConfigError(f"zenoh TLS: {cert!r} and {key!r} must be given together")
    if s.tls_mtls and s.tls_root_ca is None:
        raise ZenohConfigError("zenoh TLS: 'tls_mtls' needs 'tls_root_ca' to verify peers")
    tls_listen = any(e.split("/", 1)[0] in _TLS_PROTOCOLS for e in s.listen)
    if tls_listen and s.tls_listen_certificate is None:
        raise ZenohConfigError("zenoh TLS: a tls/quic listen endpoint needs 'tls_listen_certificate' and key")


def _tls_section(s: ZenohSettings) -> dict[str, Any]:
    tls: dict[str, Any] = {}
    names = {
        "root_ca_certificate": s.tls_root_ca,
        "listen_certificate": s.tls_listen_certificate,
        "listen_private_key": s.tls_listen_private_key,
        "connect_certificate": s.tls_connect_certificate,
        "connect_private_key": s.tls_connect_private_key,
    }
    tls.update({k: v for k, v in names.items() if v is not None})
    if s.tls_mtls:
        tls["enable_mtls"] = True
    return tls


def _document(s: ZenohSettings) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "mode": s.mode,
        "scouting": {"multicast": {"enabled": s.multicast_scouting}},
        "transport": {"shared_memory": {"enabled": s.shared_memory}},
    }
    if s.listen:
        doc["listen"] = {"endpoints": list(s.listen)}
    if s.connect:
        doc["connect"] = {"endpoints": list(s.connect)}
    link: dict[str, Any] = {}
    tx = {k: v for k, v in (("lease", s.lease_ms), ("keep_alive", s.keep_alive)) if v is not None}
    if tx:
        link["tx"] = tx
    tls = _tls_section(s)
    if tls:
        link["tls"] = tls
    if link:
        doc["transport"]["link"] = link
    return doc


def to_json5(settings: ZenohSettings) -> str:
    """Render ``settings`` as a Zenoh JSON5 config document (without ``extra`` overrides,
    which :func:`to_zenoh_config` inserts afterwards, path by path)."""
    return json.dumps(_document(settings), indent=2, sort_keys=True)


def to_zenoh_config(settings: ZenohSettings) -> zenoh.Config:
    """Build a ``zenoh.Config`` from ``settings``. Raises :class:`ZenohConfigError` if Zenoh
    rejects the document or an ``extra`` override."""
    import zenoh  # lazy: only processes that open a session pay for it

    try:
        config = zenoh.Config.from_json5(to_json5(settings))
        for path, value in settings.extra:
            config.insert_json5(path, value)
    except zenoh.ZError as exc:
        raise ZenohConfigError(f"zenoh rejected the configuration: {exc}") from exc
    return config

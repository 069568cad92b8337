"""The exporter's web settings: --listen, --web-config and the flags, and the basic auth check."""

from __future__ import annotations

import base64
from pathlib import Path

import bcrypt
import pytest

from patroni_citus.errors import ConfigurationError
from patroni_citus.metrics_http import BasicAuth, flag_web_config, load_web_config, parse_listen

HASH = bcrypt.hashpw(b"s3cret-pw", bcrypt.gensalt(rounds=4)).decode()


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("listen", ["", "9645", "host:", "host:port", ":9645", "127.0.0.1:70000"])
def test_bad_listen_names_the_setting(listen: str) -> None:
    with pytest.raises(ConfigurationError, match="--listen"):
        parse_listen(listen)


def test_web_config_like_the_exporter_toolkit(tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text(
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: /abs/tls.key\n"
        f"basic_auth_users:\n  prom: '{HASH}'\n"
    )
    web = load_web_config(config)
    assert web.cert_file == tmp_path / "tls.crt" and web.key_file == Path("/abs/tls.key")
    assert web.scheme == "https" and set(web.users) == {"prom"}
    assert HASH not in repr(web)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("tls_server_config:\n  cert_file: a.crt\n", "both cert_file and key_file"),
        ("basic_auth_users: [a, b]\n", "must be a mapping"),
        ("listen: 1\n", "unknown keys"),
        ("basic_auth_users:\n  prom: plain-text-password\n", "bcrypt hash"),
        ("tls_server_config: [unclosed\n", "YAML"),
    ],
)
def test_bad_web_config_is_one_error_that_never_shows_a_password(
    tmp_path: Path, content: str, reason: str
) -> None:
    config = tmp_path / "web.yml"
    config.write_text(content)
    with pytest.raises(ConfigurationError, match="--web-config") as caught:
        load_web_config(config)
    assert reason in str(caught.value)
    assert "plain-text-password" not in str(caught.value)


def test_flags_need_their_pairs_and_read_the_password_from_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="--tls-key-file"):
        flag_web_config(Path("a.crt"), None, None, None)
    with pytest.raises(ConfigurationError, match="--basic-auth-password-file"):
        flag_web_config(None, None, "prom", None)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigurationError, match="empty"):
        flag_web_config(None, None, "prom", tmp_path / "empty")
    (tmp_path / "pw").write_text("s3cret-pw\n")
    web = flag_web_config(None, None, "prom", tmp_path / "pw")
    assert web.scheme == "http" and BasicAuth(web.users).allows(header("prom", "s3cret-pw"))


def test_basic_auth() -> None:
    auth = BasicAuth({"prom": HASH.encode()})
    assert auth.required and not BasicAuth({}).required and BasicAuth({}).allows(None)
    assert auth.allows(header("prom", "s3cret-pw"))
    assert auth.allows(header("prom", "s3cret-pw"))  # the remembered check answers the same
    for bad in (None, "", "Bearer x", "Basic !!!", header("prom", "wrong"), header("other", "s3cret-pw")):
        assert not auth.allows(bad), bad

"""Configuration: file < environment < flags; every mistake named in one line."""

from __future__ import annotations

import pytest

from backend.common.settings import Mode, SettingsError, load_settings


def test_defaults_are_the_embedded_mode(tmp_path):
    s = load_settings(environ={})
    assert s.mode is Mode.EMBEDDED
    assert s.listen_port("all") == 8080 and s.listen_port("auth") == 8081
    assert s.auth.argon2_memory_kib >= 19456 and s.auth.argon2_time_cost >= 2


def test_file_then_env_then_overrides(tmp_path):
    cfg = tmp_path / "sealchat.toml"
    cfg.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[auth]\naccess_ttl_seconds = 600\n')
    s = load_settings(
        cfg, environ={"SEALCHAT_SERVER__PORT": "9100", "SEALCHAT_AUTH__ADMINS": '["root1"]'}
    )
    assert (s.server.port, s.server.host, s.auth.access_ttl_seconds) == (9100, "0.0.0.0", 600)
    assert s.auth.admins == ["root1"]
    s = load_settings(cfg, {"server": {"port": 9200}}, environ={"SEALCHAT_SERVER__PORT": "9100"})
    assert s.server.port == 9200


def test_client_and_test_variables_are_ignored():
    s = load_settings(environ={"SEALCHAT_PASSPHRASE": "x", "SEALCHAT_TEST_REDIS_URL": "redis://"})
    assert s.mode is Mode.EMBEDDED


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"SEALCHAT_MODE": "cluster"},
            "setting database.url (SEALCHAT_DATABASE__URL): required in cluster mode",
        ),
        (
            {"SEALCHAT_SERVER__PORT": "eighty"},
            "setting server.port (SEALCHAT_SERVER__PORT): Input should be a valid integer",
        ),
        (
            {"SEALCHAT_AUTH__TYPO": "1"},
            "setting auth.typo (SEALCHAT_AUTH__TYPO): Extra inputs are not permitted",
        ),
        ({"SEALCHAT_AUTH__ARGON2_MEMORY_KIB": "4096"}, "setting auth.argon2_memory_kib"),
        ({"SEALCHAT_AUTH__ADMINS": "[broken"}, "SEALCHAT_AUTH__ADMINS: not valid JSON"),
        (
            {
                "SEALCHAT_MODE": "cluster",
                "SEALCHAT_DATABASE__URL": "sqlite+aiosqlite:///x",
                "SEALCHAT_REDIS__URL": "redis://h",
                "SEALCHAT_RABBITMQ__URL": "amqp://h",
            },
            "setting database.url (SEALCHAT_DATABASE__URL): cluster mode needs mysql+aiomysql://",
        ),
    ],
)
def test_bad_settings_name_the_setting_in_one_line(environ, message):
    with pytest.raises(SettingsError) as err:
        load_settings(environ=environ)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_bad_config_file(tmp_path):
    with pytest.raises(SettingsError, match="not valid TOML"):
        (tmp_path / "bad.toml").write_text("[server\n")
        load_settings(tmp_path / "bad.toml", environ={})
    with pytest.raises(SettingsError, match=r"config file .*missing\.toml"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_secret_urls_are_not_printed(tmp_path):
    s = load_settings(
        None,
        {
            "mode": "cluster",
            "database": {"url": "mysql+aiomysql://u:hunter2@db/x"},
            "redis": {"url": "redis://h"},
            "rabbitmq": {"url": "amqp://u:pw@h/"},
            # the weak passwords below are the point of the test, not a deployment
            "server": {"allow_insecure_dev_credentials": True},
        },
        environ={},
    )
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())

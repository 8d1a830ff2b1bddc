"""Production (cluster) mode refuses default credentials, weak passwords and lax key files.

The rule (``backend/common/settings.py``, ``insecure_credentials``): off loopback every store
URL needs a password that is not a well-known default, not the user name and at least 12
characters. Loopback hosts are exempt (the test suite runs cluster mode against guest/guest
and a password-less root on 127.0.0.1), and ``server.allow_insecure_dev_credentials`` lifts
the rule for a lab.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from backend.auth.app import signing_keys
from backend.common.settings import Settings, SettingsError, load_settings
from backend.common.tokens import SigningKey, write_secret_file
from tests.security.helpers import report

pytestmark = pytest.mark.security

STRONG = "Zx9-long-enough-secret"
GOOD = {
    "database": f"mysql+aiomysql://sealchat:{STRONG}@db.internal/sealchat",
    "redis": f"redis://:{STRONG}@redis.internal:6379/0",
    "rabbitmq": f"amqp://sealchat:{STRONG}@mq.internal:5672/sealchat",
    "mongo": f"mongodb://sealchat:{STRONG}@m1.internal:27017,m2.internal:27017/?replicaSet=rs0",
}

BAD = {
    "rabbitmq guest/guest": ("rabbitmq", "amqp://guest:guest@mq.internal:5672/"),
    "rabbitmq with no credentials (pika logs in as guest)": ("rabbitmq", "amqp://mq.internal/"),
    "mariadb root without password": ("database", "mysql+aiomysql://root@db.internal/sealchat"),
    "mariadb root with an empty password": ("database", "mysql+aiomysql://root:@10.0.0.5/s"),
    "mariadb password = user": ("database", "mysql+aiomysql://sealchat:sealchat@db.internal/s"),
    "mariadb password 'password'": ("database", "mysql+aiomysql://app:password@db.internal/s"),
    "mariadb short password": ("database", "mysql+aiomysql://app:Xy7%21short@db.internal/s"),
    "redis without a password": ("redis", "redis://redis.internal:6379/0"),
    "redis 'changeme'": ("redis", "redis://:changeme@redis.internal:6379/0"),
    "mongo without credentials": ("mongo", "mongodb://m1.internal:27017,127.0.0.1:27017/"),
    "mongo admin/admin": ("mongo", "mongodb://admin:admin@[2001:db8::5]:27017/"),
}


def cluster(overrides: dict[str, str], **server: Any) -> Settings:
    urls = {**GOOD, **overrides}
    data: dict[str, Any] = {
        "mode": "cluster",
        "server": server,
        **{section: {"url": url} for section, url in urls.items()},
    }
    return load_settings(None, data, environ={})


def test_strong_credentials_off_loopback_are_accepted():
    assert cluster({}).mode == "cluster"


@pytest.mark.parametrize("case", sorted(BAD))
def test_default_or_weak_credentials_off_loopback_are_refused(case):
    section, url = BAD[case]
    with pytest.raises(SettingsError) as err:
        cluster({section: url})
    message = str(err.value)
    assert message.startswith(f"setting {section}.url (SEALCHAT_{section.upper()}__URL)")
    assert "allow_insecure_dev_credentials" in message, "it says what to do"
    password = url.split("://", 1)[1].partition("@")[0].partition(":")[2]
    if password and password not in ("password", "sealchat"):  # words the message uses
        assert password not in message, "the message never shows the password"


def test_loopback_and_the_lab_flag_are_exempt():
    loopback = {
        "database": "mysql+aiomysql://root@127.0.0.1/sealchat",
        "redis": "redis://localhost:6379/0",
        "rabbitmq": "amqp://guest:guest@[::1]:5672/",
        "mongo": "mongodb://127.0.0.2:27017/",
    }
    assert cluster(loopback).mode == "cluster"
    remote_defaults = {section: url for section, url in BAD.values()}
    with pytest.raises(SettingsError):
        cluster(remote_defaults)
    assert cluster(remote_defaults, allow_insecure_dev_credentials=True).mode == "cluster"
    refused = 0
    for section, url in BAD.values():
        try:
            cluster({section: url})
        except SettingsError:
            refused += 1
    report("startup credentials", bad_configs=len(BAD), refused=refused, loopback_exempt=True)
    assert refused == len(BAD)


def test_the_environment_cannot_smuggle_a_default_credential(tmp_path: Path):
    env = {f"SEALCHAT_{s.upper()}__URL": url for s, url in GOOD.items()}
    env |= {"SEALCHAT_MODE": "cluster", "SEALCHAT_RABBITMQ__URL": "amqp://guest:guest@mq:5672/"}
    with pytest.raises(SettingsError, match=r"rabbitmq\.url"):
        load_settings(None, None, environ=env)


def test_a_signing_key_others_can_read_is_refused(tmp_path: Path):
    key = tmp_path / "jwt.pem"
    write_secret_file(key, SigningKey.generate().pem())
    settings = cluster({}).model_copy(
        update={"auth": cluster({}).auth.model_copy(update={"signing_keys": [key]})}
    )
    assert len(signing_keys(settings)) == 1  # mode 0600: fine
    for mode in (0o640, 0o604, 0o644):
        os.chmod(key, mode)
        with pytest.raises(SettingsError, match="chmod 600"):
            signing_keys(settings)

"""Database servers a fault test owns outright: a SecantusDB and a MariaDB of its own.

A test that takes a database down must not take down the one every other test (and other
sessions on the machine) uses, so these start a private server on a free loopback port with
its data in the test's directory. ``Child.kill9`` then ``Child.start`` restarts it on the
same port and the same data.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from backend.stores.relational import migrate
from backend.stores.relational.engine import open_engine
from tests.fault.cluster import child_env
from tests.fault.procs import Child, Supervisor
from tests.services import free_port

INSTALL_TIMEOUT = 120.0


def own_secantus(sup: Supervisor) -> tuple[Child, str]:
    """A SecantusDB server (the test suite's MongoDB-wire server) with its own storage."""
    exe = Path(sys.executable).with_name("secantusd-py")
    if not exe.exists():
        raise AssertionError(f"secantusd-py not found next to {sys.executable}")
    port = free_port()
    storage = sup.log_dir / "secantus"
    child = Child(
        name="secantus",
        argv=[
            *(str(exe), "--host", "127.0.0.1", "--port", str(port)),
            *("--storage-path", str(storage)),
        ],
        env=child_env(),
        log_path=sup.log_dir / "secantus.log",
        port=port,
    )
    sup.add(child)
    return child, f"mongodb://127.0.0.1:{port}"


def _mariadb_binaries() -> tuple[str, str]:
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
    install = shutil.which("mariadb-install-db")
    if server is None or install is None:
        raise AssertionError("mariadbd is not installed: apt-get install -y mariadb-server")
    return server, install


def own_mariadb(sup: Supervisor) -> tuple[Child, str]:
    """A MariaDB server of this test alone: a fresh data directory (``mariadb-install-db``,
    root without a password), loopback only, its own socket; ``--no-defaults`` so the
    machine's my.cnf (which names the shared server's port, socket and data) is not read."""
    server, install = _mariadb_binaries()
    home = sup.log_dir / "mariadb"
    data = home / "data"
    home.mkdir(parents=True, exist_ok=True)
    with (home / "install.log").open("wb") as log:
        subprocess.run(
            [
                install,
                "--no-defaults",
                f"--datadir={data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=INSTALL_TIMEOUT,
        )
    port = free_port()
    child = Child(
        name="mariadb",
        argv=[
            server,
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            "--bind-address=127.0.0.1",
            f"--port={port}",
            f"--socket={home / 'mariadb.sock'}",
            f"--pid-file={home / 'mariadb.pid'}",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=64M",
        ],
        env=child_env(),
        log_path=sup.log_dir / "mariadb.log",
        port=port,
    )
    sup.add(child)
    return child, f"mysql+aiomysql://root@127.0.0.1:{port}"


async def migrated_database(server_url: str, name: str = "sealchat") -> str:
    """Make database ``name`` on the server and bring it to the current schema; its URL."""
    import pymysql
    from sqlalchemy.engine import make_url

    base = make_url(server_url)

    def create() -> None:
        conn = pymysql.connect(
            host=base.host or "127.0.0.1", port=base.port or 3306, user="root", password=""
        )
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        finally:
            conn.close()

    await asyncio.to_thread(create)
    url = base.set(database=name).render_as_string(hide_password=False)
    engine = open_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    return url

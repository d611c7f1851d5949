"""Start and stop a real PgBouncer in transaction pooling mode for ``make test-pgbouncer``.

``python -m tests.pgbouncer start`` writes a configuration under ``--dir``, starts Debian's
``pgbouncer`` in front of the PostgreSQL server at ``--server`` and waits until it answers;
``stop`` ends it. Run as root it drops to the ``postgres`` user, as PgBouncer insists.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CONFIG = """\
[databases]
* = host={host} port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 40
ignore_startup_parameters = extra_float_digits,options
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""


def start(directory: Path, port: int, host: str, server_port: int) -> int:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        print("pgbouncer is not installed (Debian: apt-get install pgbouncer)", file=sys.stderr)
        return 1
    stop(directory)  # a PgBouncer left running from an earlier session
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pgbouncer.ini").write_text(
        CONFIG.format(directory=directory, port=port, host=host, server_port=server_port)
    )
    (directory / "userlist.txt").write_text('"postgres" ""\n"root" ""\n')
    (directory / "pgbouncer.log").write_text("")
    command = [binary, "-d", str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        user = pwd.getpwnam("postgres")
        for path in (directory, *directory.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
        command[1:1] = ["-u", "postgres"]
    subprocess.run(command, check=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return 0
        except OSError:
            time.sleep(0.05)
    print(f"pgbouncer did not answer on port {port}", file=sys.stderr)
    return 1


def stop(directory: Path) -> int:
    pidfile = directory / "pgbouncer.pid"
    if not pidfile.exists():
        return 0
    pid = int(pidfile.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)  # raises once it is gone
            time.sleep(0.05)
    except ProcessLookupError:
        pass
    pidfile.unlink(missing_ok=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.pgbouncer")
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/retrytasks-pgbouncer"))
    parser.add_argument("--port", type=int, default=6432)
    parser.add_argument("--server-host", default="127.0.0.1")
    parser.add_argument("--server-port", type=int, default=5432)
    options = parser.parse_args()
    if options.action == "start":
        return start(options.dir, options.port, options.server_host, options.server_port)
    return stop(options.dir)


if __name__ == "__main__":
    sys.exit(main())

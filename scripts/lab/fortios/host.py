"""Drive dynamic providers the way a deployment does: through Pulumi's provider host over gRPC.

`ProviderHost` starts `python -m pulumi.dynamic` (the process the engine runs for Python dynamic
resources), reads the port it prints, and calls its `ResourceProvider` gRPC service with
properties serialized by Pulumi's own `rpc` module and the provider pickled by Pulumi's own
`serialize_provider`. Nothing here calls the provider's methods directly.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from components.fortigate.provider import CmdbProvider
from scripts import REPOSITORY

PROJECT = "hardened-code-server"
TOKEN_KEY = f"{PROJECT}:fortigateApiToken"
SECRET_SIG = rpc._special_sig_key  # the marker Pulumi uses for secret values on the wire


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    # A private loop: asyncio.run() would unset the thread's loop, which Pulumi's mocks need.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(props, {}))
    finally:
        loop.close()


def _dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return dict(rpc.deserialize_properties(struct, keep_unknowns=True))


@dataclass
class Check:
    inputs: dict[str, Any]
    failures: list[tuple[str, str]]


@dataclass
class Diff:
    changes: int
    replaces: list[str]
    delete_before_replace: bool

    @property
    def some(self) -> bool:
        return self.changes == provider_pb2.DiffResponse.DIFF_SOME


class ProviderHost:
    """One `python -m pulumi.dynamic` process and a gRPC client to it."""

    def __init__(self, env: dict[str, str] | None = None, token_key: str = TOKEN_KEY) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("FORTIOS_")}
        environment.update({"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPOSITORY), "PULUMI_PROJECT": PROJECT})
        environment.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pulumi.dynamic"],
            cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()
        if not line.isdigit():
            self.close()
            raise RuntimeError(f"provider host did not print its port: {line!r} {self.stderr()!r}")
        self.port = int(line)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        self.provider = serialize_provider(CmdbProvider(token_key))

    def stderr(self) -> str:
        self.process.kill()
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if hasattr(self, "channel"):
            self.channel.close()

    def _with_provider(self, props: dict[str, Any]) -> dict[str, Any]:
        return {**props, "__provider": self.provider}

    @staticmethod
    def _strip(props: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in props.items() if k != "__provider"}

    # -- the gRPC calls the engine makes --------------------------------------------------------

    def configure(self, config: dict[str, Any], secret_keys: tuple[str, ...] = ()) -> None:
        """Configure as the engine does: the stack config, secrets marked on the wire."""
        wire = {
            k: {SECRET_SIG: rpc._special_secret_sig, "value": v} if k in secret_keys else v for k, v in config.items()
        }
        args = struct_pb2.Struct()
        args.update(wire)
        self.stub.Configure(provider_pb2.ConfigureRequest(args=args, acceptSecrets=True))

    def check(self, news: dict[str, Any], olds: dict[str, Any] | None = None) -> Check:
        response = self.stub.Check(provider_pb2.CheckRequest(
            urn="urn:pulumi:test::hcs::x::y", olds=_struct(self._with_provider(olds or {})) if olds else None,
            news=_struct(self._with_provider(news))))
        return Check(self._strip(_dict(response.inputs)), [(f.property, f.reason) for f in response.failures])

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> Diff:
        response = self.stub.Diff(provider_pb2.DiffRequest(
            id=id_, urn="urn:pulumi:test::hcs::x::y",
            olds=_struct(self._with_provider(olds)), news=_struct(self._with_provider(news))))
        return Diff(response.changes, list(response.replaces), response.deleteBeforeReplace)

    def create(self, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        response = self.stub.Create(provider_pb2.CreateRequest(
            urn="urn:pulumi:test::hcs::x::y", properties=_struct(self._with_provider(props))))
        return response.id, self._strip(_dict(response.properties))

    def read(self, id_: str, props: dict[str, Any] | None, inputs: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        request = provider_pb2.ReadRequest(id=id_, urn="urn:pulumi:test::hcs::x::y")
        if props:
            request.properties.CopyFrom(_struct(self._with_provider(props)))
        if inputs:
            request.inputs.CopyFrom(_struct(self._with_provider(inputs)))
        response = self.stub.Read(request)
        return response.id, self._strip(_dict(response.properties))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        response = self.stub.Update(provider_pb2.UpdateRequest(
            id=id_, urn="urn:pulumi:test::hcs::x::y",
            olds=_struct(self._with_provider(olds)), news=_struct(self._with_provider(news))))
        return self._strip(_dict(response.properties))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self.stub.Delete(provider_pb2.DeleteRequest(
            id=id_, urn="urn:pulumi:test::hcs::x::y", properties=_struct(self._with_provider(props))))

    def __enter__(self) -> ProviderHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The policy pack served by pulumi-policy's real analyzer, spoken to over its gRPC protocol,
exactly as the Pulumi engine does during `pulumi preview --policy-pack scripts/policy`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from scripts import REPOSITORY
from scripts.policy.rules import RULES
from scripts.tools.offline import PlanResult

PACK = REPOSITORY / "scripts" / "policy"


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(PACK)}
    process = subprocess.Popen([sys.executable, str(PACK / "__main__.py")], cwd=PACK, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.strip().isdigit():
            raise AssertionError(f"policy pack did not start: {line!r} {process.stderr.read() if process.stderr else ''}")
        channel = grpc.insecure_channel(f"127.0.0.1:{line.strip()}")
        grpc.channel_ready_future(channel).result(timeout=20)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(props, struct_pb2.Struct())


def _analyze(stub: analyzer_pb2_grpc.AnalyzerStub, type_: str, name: str, props: dict[str, Any]) -> list[str]:
    request = analyzer_pb2.AnalyzeRequest(type=type_, properties=_struct(props), urn=f"urn:pulumi:t::p::{type_}::{name}", name=name)
    return [f"{d.policyName}: {d.message}" for d in stub.Analyze(request).diagnostics]


def test_the_pack_describes_every_policy_as_mandatory(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    from google.protobuf import empty_pb2

    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "hardened-code-server"
    assert {p.name for p in info.policies} == {rule.name for rule in RULES}
    assert {p.enforcementLevel for p in info.policies} == {analyzer_pb2.MANDATORY}


def test_a_good_service_principal_passes_and_a_bad_one_is_refused(analyzer: analyzer_pb2_grpc.AnalyzerStub, dev_plan: PlanResult) -> None:
    sp = dev_plan.one("azuread:index/servicePrincipal:ServicePrincipal")
    assert _analyze(analyzer, sp.type, sp.name, sp.inputs) == []
    refused = _analyze(analyzer, sp.type, sp.name, {**sp.inputs, "appRoleAssignmentRequired": False})
    assert len(refused) == 1 and refused[0].startswith("sp-requires-assignment: ")


def test_stack_policies_see_the_whole_plan(analyzer: analyzer_pb2_grpc.AnalyzerStub, dev_plan: PlanResult) -> None:
    def stack(resources: list[Any]) -> list[str]:
        request = analyzer_pb2.AnalyzeStackRequest(resources=[
            analyzer_pb2.AnalyzerResource(type=r.type, name=r.name, urn=r.urn, properties=_struct(r.inputs)) for r in resources
        ])
        return [d.policyName for d in analyzer.AnalyzeStack(request).diagnostics]

    assert stack(dev_plan.resources) == []
    deny = next(r for r in dev_plan.resources if r.name == "fortigate-hcs-out-deny")
    bad = [r if r is not deny else type(r)(**{**r.__dict__, "inputs": {**r.inputs, "payload": {**r.inputs["payload"], "logtraffic": "disable"}}})
           for r in dev_plan.resources]
    assert stack(bad) == ["fortigate-vm-egress"]

"""The API's method list comes from every generated module of niemphong.v1."""

from __future__ import annotations

import importlib
from pathlib import Path

import niemphong.v1
from niemphong.clients.audit_render import API_FILES as CLIENT_API_FILES
from niemphong.daemon.api import API_FILES, api_methods, operation_name


def generated_modules() -> set[str]:
    folder = Path(niemphong.v1.__file__).parent
    return {path.stem for path in folder.glob("*_pb2.py")}


def test_api_files_cover_every_generated_module() -> None:
    listed = {file.name for file in API_FILES}

    for module in generated_modules():
        descriptor = importlib.import_module(f"niemphong.v1.{module}").DESCRIPTOR
        assert descriptor.name in listed, f"{module} is missing from niemphong.daemon.api.API_FILES"


def test_client_api_files_match_daemon() -> None:
    assert [file.name for file in CLIENT_API_FILES] == [file.name for file in API_FILES]


def test_api_methods_include_audit_service() -> None:
    methods = api_methods()

    assert "/niemphong.v1.AuditService/Verify" in methods
    assert operation_name(methods["/niemphong.v1.EnvelopeService/Seal"]) == "EnvelopeService/Seal"

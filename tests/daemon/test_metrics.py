"""Prometheus metrics of a real niemphongd: counted under the documented
names, and no label that could carry an artefact, a user or free text."""

from __future__ import annotations

import os
import re
import ssl
import urllib.error
import urllib.request

import grpc
import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, DaemonProcess, DevEnvironment, grant_access, open_bytes, seal_bytes
from niemphong.daemon import metrics
from niemphong.daemon.config import MetricsConfig
from niemphong.daemon.levels import Level
from niemphong.daemon.metrics import KeyVersionState, LevelAccessState, MetricsListener, StateCollector
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

OPERATIONS_DOC = REPO / "docs" / "operations.md"

# Label names a metric may carry, and nothing else ("le" is a histogram bucket bound).
ALLOWED_LABELS = {"rpc", "level", "outcome", "reason", "function", "mechanism", "error", "check", "version", "le"}
LEVEL_VALUES = {"toi-mat", "mat", "tuyet-mat", "none"}


def scrape(env: DevEnvironment) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return every sample of the daemon's /metrics by name and sorted labels."""
    with urllib.request.urlopen(f"http://{env.config['metrics']['listen']}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def documented_metric_names() -> set[str]:
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(niemphong_[a-z_]+)`", text, flags=re.MULTILINE))


def test_metrics_count_seal_open_and_tuyet_mat_refusal(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    data = os.urandom(300_000)
    before = scrape(dev_env)

    sealed, summary = seal_bytes(dev_env, data)
    grant_access(dev_env, summary.artefact_id, ["approver-1"])
    open_bytes(dev_env, sealed)
    with pytest.raises(grpc.RpcError):
        seal_bytes(dev_env, b"secret", level=pb.LEVEL_TUYET_MAT)
    after = scrape(dev_env)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("niemphong_rpc_requests_total", rpc="EnvelopeService/Seal", level="mat", outcome="OK") == 1
    assert delta("niemphong_rpc_requests_total", rpc="EnvelopeService/Open", level="mat", outcome="OK") == 1
    assert delta(
        "niemphong_rpc_requests_total", rpc="EnvelopeService/Seal", level="tuyet-mat", outcome="FAILED_PRECONDITION",
    ) == 1
    assert delta(
        "niemphong_refusals_total", rpc="EnvelopeService/Seal", level="tuyet-mat", reason="LEVEL_NEVER_DIGITIZED",
    ) == 1
    assert delta("niemphong_sealed_bytes_total", level="mat") == len(data)
    assert delta("niemphong_envelope_bytes_total", level="mat") == len(sealed)
    assert delta("niemphong_opened_bytes_total", level="mat") == len(data)
    assert delta("niemphong_rpc_duration_seconds_count", rpc="EnvelopeService/Seal", level="mat") == 1
    assert delta("niemphong_token_calls_total", function="C_WrapKey", mechanism="CKM_AES_KEY_WRAP_PAD") == 1
    assert delta("niemphong_token_calls_total", function="C_UnwrapKey", mechanism="CKM_AES_KEY_WRAP_PAD") == 1
    assert delta("niemphong_token_session_wait_seconds_count") >= 2


def test_metrics_count_denied_open(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    sealed, _ = seal_bytes(dev_env, b"x" * 1000, level=pb.LEVEL_TOI_MAT)
    before = scrape(dev_env)

    with pytest.raises(grpc.RpcError):
        open_bytes(dev_env, sealed)
    after = scrape(dev_env)

    labels = {"rpc": "EnvelopeService/Open", "level": "toi-mat", "reason": "NOT_APPROVED"}
    assert value(after, "niemphong_refusals_total", **labels) - value(before, "niemphong_refusals_total", **labels) == 1


def test_metrics_count_role_refusal_before_handler(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    before = scrape(dev_env)

    with pytest.raises(grpc.RpcError):
        seal_bytes(dev_env, b"x", identity="viewer")
    after = scrape(dev_env)

    labels = {"rpc": "EnvelopeService/Seal", "level": "none", "reason": "ROLE_REQUIRED"}
    assert value(after, "niemphong_refusals_total", **labels) - value(before, "niemphong_refusals_total", **labels) == 1


def test_metrics_state_gauges(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    _, summary = seal_bytes(dev_env, b"y" * 100, level=pb.LEVEL_TOI_MAT)
    with dev_env.channel("viewer") as channel:
        pb_grpc.AccessServiceStub(channel).RequestAccess(
            pb.RequestAccessRequest(artefact_id=summary.artefact_id, purpose="kiểm tra"), timeout=10)
    samples = scrape(dev_env)

    assert value(samples, "niemphong_token_present") == 1
    assert value(samples, "niemphong_serving") == 1
    assert value(samples, "niemphong_health_check_ok", check="token") == 1
    assert value(samples, "niemphong_health_check_ok", check="state_store") == 1
    assert value(samples, "niemphong_token_sessions") == 4
    assert value(samples, "niemphong_access_requests_pending", level="toi-mat") >= 1
    assert value(samples, "niemphong_access_request_oldest_pending_seconds", level="toi-mat") >= 0
    assert ("niemphong_grants_active", (("level", "mat"),)) in samples
    # SoftHSM2 cannot return CKA_START_DATE, so the age comes from the first seal.
    assert ("niemphong_key_version_age_seconds", (("level", "toi-mat"), ("version", "1"))) in samples
    assert value(samples, "niemphong_audit_write_failures_total") == 0


def test_metrics_labels_bounded(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    _, summary = seal_bytes(dev_env, b"z" * 100, doc_number="4242/UBND-VP")
    samples = scrape(dev_env)

    for name, labels in samples:
        if not name.startswith("niemphong_"):
            continue
        for label, label_value in labels:
            assert label in ALLOWED_LABELS, (name, label)
            assert summary.artefact_id not in label_value
            assert "4242" not in label_value
            assert "scanner" not in label_value
            if label == "level":
                assert label_value in LEVEL_VALUES, (name, label_value)


def test_metrics_every_exported_name_documented(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    with urllib.request.urlopen(f"http://{dev_env.config['metrics']['listen']}/metrics", timeout=10) as response:
        families = text_string_to_metric_families(response.read().decode())
    exported = {exposition_name(family.name, family.type) for family in families if family.name.startswith("niemphong_")}

    assert exported - documented_metric_names() == set()


def test_metrics_documented_names_defined() -> None:
    defined = set(metrics.STATE_METRIC_NAMES)
    for attribute in vars(metrics).values():
        if isinstance(attribute, MetricWrapperBase):
            defined.update(exposition_name(family.name, family.type) for family in attribute.describe())

    assert documented_metric_names() - defined == set()


def exposition_name(name: str, kind: str) -> str:
    """Return the name a metric family's main series has on /metrics."""
    if kind == "counter":
        return f"{name}_total"
    if kind == "info":
        return f"{name}_info"
    return name


def test_state_collector_rotation_due_after_period() -> None:
    day = 86400.0
    now = 1_800_000_000.0
    collector = StateCollector(
        access_state=lambda: [LevelAccessState(Level.MAT, 2, int(now - 600), 1)],
        key_state=lambda: [
            KeyVersionState(Level.TOI_MAT, 1, now - 400 * day),
            KeyVersionState(Level.TOI_MAT, 2, now - 10 * day),
            KeyVersionState(Level.MAT, 1, now - 800 * day),
        ],
        rotation_seconds={Level.TOI_MAT: int(365 * day), Level.MAT: int(730 * day)},
        clock=lambda: now,
    )

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in collector.collect() for sample in family.samples
    }

    assert samples[("niemphong_key_rotation_due", (("level", "toi-mat"),))] == 0
    assert samples[("niemphong_key_rotation_due", (("level", "mat"),))] == 1
    assert samples[("niemphong_key_version_age_seconds", (("level", "toi-mat"), ("version", "1")))] == 400 * day
    assert samples[("niemphong_access_request_oldest_pending_seconds", (("level", "mat"),))] == 600
    assert samples[("niemphong_access_requests_pending", (("level", "mat"),))] == 2


def test_state_collector_rotation_judged_on_active_version() -> None:
    # Version 2 was created and then retired for sealing without sealing; version 1 still seals.
    day = 86400.0
    now = 1_800_000_000.0
    collector = StateCollector(
        access_state=lambda: [],
        key_state=lambda: [
            KeyVersionState(Level.MAT, 1, now - 800 * day, active=True),
            KeyVersionState(Level.MAT, 2, now - day, active=False),
        ],
        rotation_seconds={Level.MAT: int(730 * day)},
        clock=lambda: now,
    )

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in collector.collect() for sample in family.samples
    }

    assert samples[("niemphong_key_rotation_due", (("level", "mat"),))] == 1
    assert samples[("niemphong_key_version_age_seconds", (("level", "mat"), ("version", "2")))] == day


def test_state_collector_rotation_due_at_exact_period() -> None:
    now = 1_800_000_000.0
    collector = StateCollector(
        access_state=lambda: [],
        key_state=lambda: [KeyVersionState(Level.MAT, 1, now - 86400)],
        rotation_seconds={Level.MAT: 86400},
        clock=lambda: now,
    )

    samples = {sample.name: sample.value for family in collector.collect() for sample in family.samples}

    assert samples["niemphong_key_rotation_due"] == 1


def test_state_collector_unknown_age_no_rotation_value() -> None:
    collector = StateCollector(
        access_state=lambda: [],
        key_state=lambda: [KeyVersionState(Level.MAT, 1, None)],
        rotation_seconds={Level.MAT: 86400},
    )

    names = {sample.name for family in collector.collect() for sample in family.samples}

    assert "niemphong_key_rotation_due" not in names
    assert "niemphong_key_version_age_seconds" not in names


def test_state_collector_store_failure_scrape_survives() -> None:
    def broken() -> list[LevelAccessState]:
        raise RuntimeError("database is locked")

    collector = StateCollector(access_state=broken, key_state=lambda: [], rotation_seconds={})

    families = list(collector.collect())

    assert all(not family.name.startswith("niemphong_access") for family in families)


def test_metrics_listener_tls_requires_client_certificate(dev_env: DevEnvironment) -> None:
    pki = dev_env.root / "pki"
    identity = dev_env.identity("auditor")
    listener = MetricsListener(MetricsConfig(
        host="127.0.0.1", port=0, tls_cert=pki / "server.pem", tls_key=pki / "server.key", tls_ca=pki / "ca.pem",
    ))
    listener.start()
    try:
        url = f"https://127.0.0.1:{listener.port}/metrics"
        with_certificate = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        with_certificate.load_cert_chain(identity / "cert.pem", identity / "key.pem")
        without_certificate = ssl.create_default_context(cafile=str(pki / "ca.pem"))

        with urllib.request.urlopen(url, context=with_certificate, timeout=10) as response:
            body = response.read().decode()
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            with urllib.request.urlopen(url, context=without_certificate, timeout=10) as response:
                response.read()
        # Plain HTTP on the TLS port gets no metrics either.
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            with urllib.request.urlopen(f"http://127.0.0.1:{listener.port}/metrics", timeout=10) as response:
                response.read()
    finally:
        listener.stop()

    assert "niemphong_rpc_requests" in body

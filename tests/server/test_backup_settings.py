"""The backup keys of conf-mms.properties: the codec of new blocks and the backup alert thresholds, with
their defaults, their conversion into the daemon's and the alerts' types, and bad values named by key."""

from __future__ import annotations

import pytest

from opsmgr.backup.alerts import AlertPolicy
from opsmgr.backup.blockstore import Codec, Compression
from opsmgr.server.settings import SettingsError, parse_settings
from tests.server.settings_cases import BASE, MINIMAL


def test_defaults_are_zstd_level_1_and_the_documented_thresholds() -> None:
    settings = parse_settings(MINIMAL, base_dir=BASE)
    assert settings.block_compression == Compression(Codec.ZSTD, 1)
    assert settings.backup_alert_policy() == AlertPolicy()
    minute = 60_000
    assert AlertPolicy() == AlertPolicy(
        grace_ms=60 * minute,
        lag_ms=minute,
        stall_ms=15 * minute,
        silent_ms=5 * minute,
        secondary_unreachable_ms=minute,
    )


def test_thresholds_and_codec_are_read_from_the_properties() -> None:
    settings = parse_settings(
        MINIMAL
        | {
            "mms.blockstore.compression": "zlib:6",
            "mms.backup.alerts.snapshotGraceMinutes": "30",
            "mms.backup.alerts.oplogLagSeconds": "2.5",
            "mms.backup.alerts.windowStallMinutes": "0.5",
            "mms.backup.alerts.agentSilenceMinutes": "1",
            "mms.backup.alerts.secondaryUnreachableSeconds": "2",
        },
        base_dir=BASE,
    )
    assert settings.block_compression == Compression(Codec.ZLIB, 6)
    assert settings.backup_alert_policy() == AlertPolicy(
        grace_ms=1_800_000, lag_ms=2_500, stall_ms=30_000, silent_ms=60_000, secondary_unreachable_ms=2_000
    )


def test_bad_values_are_named_by_key_all_at_once() -> None:
    with pytest.raises(SettingsError) as info:
        parse_settings(
            MINIMAL
            | {
                "mms.blockstore.compression": "brotli",
                "mms.backup.alerts.oplogLagSeconds": "-1",
                "mms.backup.alerts.secondaryUnreachableSeconds": "soon",
            },
            base_dir=BASE,
        )
    problems = dict(info.value.problems)
    assert set(problems) == {
        "mms.blockstore.compression",
        "mms.backup.alerts.oplogLagSeconds",
        "mms.backup.alerts.secondaryUnreachableSeconds",
    }
    assert "zstd[:1-19], zlib[:1-9] or none" in problems["mms.blockstore.compression"]

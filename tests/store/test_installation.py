import pytest

from opsmgr.errors import Conflict, InvalidInput, PreflightFailure
from opsmgr.store.crypto import GenKey
from opsmgr.store.engine import Store
from opsmgr.store.installation import (
    DOWNGRADE,
    INSTALLATION,
    INSTALLATION_ID,
    KEY_MISMATCH,
    Version,
    preflight,
    read_fence,
    read_installation,
    remove_fence,
    write_fence,
)


@pytest.fixture
def stores(tmp_path):
    opened = [
        Store(f"sqlite:///{tmp_path / name}.sqlite", name=name) for name in ("appdb", "snapshotdb", "oplogdb")
    ]
    try:
        yield opened
    finally:
        for s in opened:
            s.close()


@pytest.fixture
def key():
    return GenKey.generate()


def test_first_start_records_check_value_and_version(stores, key):
    assert read_installation(stores[0]) is None
    preflight(*stores, key, "0.1.0")
    record = read_installation(stores[0])
    assert record is not None
    assert record.key_check_value == key.check_value()
    assert record.highest_version == "0.1.0"
    assert record.last_started_version == "0.1.0"
    assert record.created_at


def test_same_key_and_version_start_again(stores, key):
    preflight(*stores, key, "0.1.0")
    created = read_installation(stores[0]).created_at
    preflight(*stores, key, "0.1.0")
    assert read_installation(stores[0]).created_at == created


def test_mismatched_key_refuses_with_the_seed_wording(stores, key):
    preflight(*stores, key, "0.1.0")
    with pytest.raises(PreflightFailure) as info:
        preflight(*stores, GenKey.generate(), "0.1.0")
    assert "gen.key doesn't match the key already used for this Ops Manager installation" in info.value.detail
    assert KEY_MISMATCH in info.value.detail
    assert read_installation(stores[0]).key_check_value == key.check_value(), (
        "a refused start changes nothing"
    )


def test_mismatch_message_names_the_key_file(stores, tmp_path):
    preflight(*stores, GenKey.create(tmp_path / "a.key"), "0.1.0")
    with pytest.raises(PreflightFailure, match=r"b\.key"):
        preflight(*stores, GenKey.create(tmp_path / "b.key"), "0.1.0")


def test_upgrade_raises_the_recorded_version(stores, key):
    preflight(*stores, key, "0.9.1")
    preflight(*stores, key, "0.10.0")
    record = read_installation(stores[0])
    assert (record.highest_version, record.last_started_version) == ("0.10.0", "0.10.0")


def test_downgrade_refuses_naming_both_versions(stores, key):
    preflight(*stores, key, "0.10.0")
    with pytest.raises(PreflightFailure) as info:
        preflight(*stores, key, "0.9.1")
    assert DOWNGRADE in info.value.detail
    assert "Downgrades are not permitted" in info.value.detail
    assert "0.10.0" in info.value.detail and "0.9.1" in info.value.detail
    assert read_installation(stores[0]).last_started_version == "0.10.0"


def test_same_version_spelled_differently_is_not_a_downgrade(stores, key):
    preflight(*stores, key, "1.0.0")
    preflight(*stores, key, "1.0")
    assert read_installation(stores[0]).highest_version == "1.0.0"


def test_key_is_checked_before_version(stores, key):
    preflight(*stores, key, "2.0.0")
    with pytest.raises(PreflightFailure, match=KEY_MISMATCH):
        preflight(*stores, GenKey.generate(), "1.0.0")


def test_record_without_check_value_adopts_the_key(stores, key):
    stores[0].put(INSTALLATION, {"_id": INSTALLATION_ID, "highestVersion": "0.1.0"})
    preflight(*stores, key, "0.1.0")
    assert read_installation(stores[0]).key_check_value == key.check_value()


def test_corrupt_recorded_version_refuses(stores, key):
    stores[0].put(INSTALLATION, {"_id": INSTALLATION_ID, "highestVersion": "banana"})
    with pytest.raises(PreflightFailure, match="unreadable version 'banana'"):
        preflight(*stores, key, "0.1.0")


def test_the_record_is_in_the_oplog(stores, key):
    preflight(*stores, key, "0.1.0")
    entries = stores[0].oplog_after(0)
    assert [(e.ns, e.id) for e in entries] == [(INSTALLATION, INSTALLATION_ID)]


@pytest.mark.parametrize("which", [0, 1, 2])
def test_fence_on_any_store_refuses_naming_it(stores, key, which):
    labels = ["application database", "snapshot metadata store", "oplog metadata store"]
    write_fence(
        stores[which], restore_job_id="job-42", store_label="appdb of primary", written_by="agent@host1"
    )
    with pytest.raises(PreflightFailure) as info:
        preflight(*stores, key, "0.1.0")
    detail = info.value.detail
    assert labels[which] in detail
    assert "job-42" in detail and "agent@host1" in detail
    assert read_fence(stores[which]).written_at in detail
    assert "Wait for the restore job to finish" in detail
    assert [f["restoreJobId"] for f in info.value.parameters["fences"]] == ["job-42"]
    assert read_installation(stores[0]) is None, "nothing is recorded while fenced"


def test_fence_is_checked_before_the_key(stores, key):
    preflight(*stores, key, "0.1.0")
    write_fence(stores[0], restore_job_id="r1", store_label="appdb", written_by="me")
    with pytest.raises(PreflightFailure, match="restore fence"):
        preflight(*stores, GenKey.generate(), "0.0.1")


def test_all_fences_are_named(stores, key):
    for s in stores[1:]:
        write_fence(s, restore_job_id="r7", store_label=s.name, written_by="me")
    with pytest.raises(PreflightFailure) as info:
        preflight(*stores, key, "0.1.0")
    assert "snapshot metadata store" in info.value.detail
    assert "oplog metadata store" in info.value.detail
    assert len(info.value.parameters["fences"]) == 2


def test_removing_the_fence_lets_the_server_start(stores, key):
    write_fence(stores[0], restore_job_id="r1", store_label="appdb", written_by="me")
    assert remove_fence(stores[0], restore_job_id="r1") is True
    assert read_fence(stores[0]) is None
    assert remove_fence(stores[0]) is False
    preflight(*stores, key, "0.1.0")


def test_fence_write_is_idempotent_per_job_and_exclusive_across_jobs(stores):
    first = write_fence(stores[0], restore_job_id="r1", store_label="appdb", written_by="me")
    assert write_fence(stores[0], restore_job_id="r1", store_label="appdb", written_by="me") == first
    with pytest.raises(Conflict, match="r1"):
        write_fence(stores[0], restore_job_id="r2", store_label="appdb", written_by="other")
    with pytest.raises(Conflict):
        remove_fence(stores[0], restore_job_id="r2")
    assert read_fence(stores[0]).restore_job_id == "r1"


def test_fence_document_shape(stores):
    write_fence(stores[1], restore_job_id="r1", store_label="snapshots", written_by="agent@h")
    doc = stores[1].get("restore_fence", "fence")
    assert doc["_id"] == "fence"
    assert {k: doc[k] for k in ("restoreJobId", "store", "writtenBy")} == {
        "restoreJobId": "r1",
        "store": "snapshots",
        "writtenBy": "agent@h",
    }
    assert doc["writtenAt"].endswith("Z")


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("0.9.1", "0.10.0"),
        ("0.1.0", "0.1.1"),
        ("1.0.0-rc1", "1.0.0"),
        ("1.0.0.dev1", "1.0.0rc1"),
        ("7.9", "8.0.24"),
        ("8.0.24", "8.0.100"),
    ],
)
def test_versions_compare_numerically(low, high):
    assert Version.parse(low) < Version.parse(high)
    assert Version.parse(high) > Version.parse(low)


def test_version_equality_ignores_trailing_zeros_and_build_metadata():
    assert Version.parse("1.0") == Version.parse("1.0.0") == Version.parse("v1.0.0+abc")
    assert str(Version.parse(" 1.2.3 ")) == "1.2.3"


@pytest.mark.parametrize("bad", ["", "abc", "1..2", ".1"])
def test_bad_versions(bad):
    with pytest.raises(InvalidInput):
        Version.parse(bad)

import base64
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmgr.errors import InvalidInput, PreflightFailure
from opsmgr.store.crypto import KEY_SIZE, TOKEN_PREFIX, DecryptionError, GenKey, is_token, transform_fields


@pytest.fixture(scope="module")
def key() -> GenKey:
    return GenKey.generate()


def test_create_writes_24_bytes_with_mode_0600(tmp_path):
    path = tmp_path / "sub" / "gen.key"
    old = os.umask(0)  # a permissive umask must not widen the mode
    try:
        created = GenKey.create(path)
    finally:
        os.umask(old)
    assert path.stat().st_size == KEY_SIZE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert GenKey.load(path).check_value() == created.check_value()
    assert GenKey.load(path).path == path


def test_create_refuses_to_overwrite(tmp_path):
    path = tmp_path / "gen.key"
    first = GenKey.create(path)
    with pytest.raises(PreflightFailure, match="refusing to overwrite"):
        GenKey.create(path)
    assert GenKey.load(path).check_value() == first.check_value()


def test_load_or_create_reuses_an_existing_key(tmp_path):
    path = tmp_path / "gen.key"
    made, created = GenKey.load_or_create(path)
    again, created_again = GenKey.load_or_create(path)
    assert (created, created_again) == (True, False)
    assert made.check_value() == again.check_value()


def test_load_missing_file_is_a_clear_preflight_failure(tmp_path):
    with pytest.raises(PreflightFailure, match=r"gen.key not found at .*nope"):
        GenKey.load(tmp_path / "nope")


@pytest.mark.parametrize("size", [0, 23, 25, 32])
def test_load_wrong_size(tmp_path, size):
    path = tmp_path / "gen.key"
    path.write_bytes(b"x" * size)
    with pytest.raises(PreflightFailure, match=f"is {size} bytes; a gen.key is exactly 24 bytes"):
        GenKey.load(path)


def test_load_unreadable(tmp_path):
    with pytest.raises(PreflightFailure, match=r"cannot read gen\.key"):
        GenKey.load(tmp_path)  # a directory: read_bytes fails with an OSError other than "not found"


def test_constructor_rejects_wrong_size():
    with pytest.raises(InvalidInput):
        GenKey(b"short")


def test_repr_does_not_reveal_the_key():
    raw = bytes(range(24))
    k = GenKey(raw)
    assert raw.hex() not in repr(k)
    assert raw.hex()[:12] not in repr(k)


@settings(max_examples=50, deadline=None)
@given(st.text())
def test_round_trip(key, text):
    token = key.encrypt(text)
    assert token.startswith(TOKEN_PREFIX)
    assert key.decrypt(token) == text


def test_same_plaintext_encrypts_differently(key):
    assert key.encrypt("secret") != key.encrypt("secret")


def test_wrong_key_raises_a_clear_error(key):
    token = key.encrypt("agent api key")
    with pytest.raises(DecryptionError, match=r"different gen\.key"):
        GenKey.generate().decrypt(token)


def test_tampered_token_is_rejected(key):
    token = key.encrypt("hello")
    raw = bytearray(base64.b64decode(token[len(TOKEN_PREFIX) :]))
    raw[-1] ^= 1
    with pytest.raises(DecryptionError, match="altered"):
        key.decrypt(TOKEN_PREFIX + base64.b64encode(bytes(raw)).decode())


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("plain text", "not an encrypted value"),
        ("enc:v1:!!!", "not base64"),
        ("enc:v1:" + base64.b64encode(b"short").decode(), "too short"),
        ("enc:v2:" + base64.b64encode(b"x" * 40).decode(), "not an encrypted value"),
    ],
)
def test_malformed_tokens(key, token, message):
    with pytest.raises(DecryptionError, match=message):
        key.decrypt(token)


def test_check_value_identifies_the_key_without_revealing_it():
    raw = os.urandom(24)
    a, b = GenKey(raw), GenKey(raw)
    assert a.check_value() == b.check_value()
    assert a.check_value() != GenKey.generate().check_value()
    assert raw.hex() not in a.check_value()
    assert len(a.check_value()) == 64


def test_derived_secrets_differ_per_label(key):
    assert key.derive("digest nonces") == key.derive("digest nonces")
    assert key.derive("digest nonces") != key.derive("other")
    assert key.derive("digest nonces").hex() != key.check_value()


def test_field_paths_cross_arrays_and_skip_absent(key):
    config = {
        "auth": {
            "autoPwd": "pw",
            "usersWanted": [{"user": "a", "initPwd": "x"}, {"user": "b"}, {"user": "c", "initPwd": None}],
        },
        "backup": {"keys": ["k1", "k2"]},
        "other": "kept",
    }
    paths = ["auth.autoPwd", "auth.usersWanted.initPwd", "backup.keys", "missing.field", "other.deeper"]
    enc = key.encrypt_fields(config, paths)
    assert config["auth"]["autoPwd"] == "pw", "the input is not modified"
    assert is_token(enc["auth"]["autoPwd"])
    assert is_token(enc["auth"]["usersWanted"][0]["initPwd"])
    assert "initPwd" not in enc["auth"]["usersWanted"][1]
    assert enc["auth"]["usersWanted"][2]["initPwd"] is None
    assert all(is_token(v) for v in enc["backup"]["keys"])
    assert enc["other"] == "kept"
    assert key.decrypt_fields(enc, paths) == config


def test_non_string_field_is_named(key):
    with pytest.raises(InvalidInput) as info:
        transform_fields({"auth": {"autoPwd": 5}}, ["auth.autoPwd"], key.encrypt)
    assert info.value.field == "auth.autoPwd"


def test_decrypting_fields_with_the_wrong_key_fails(key):
    enc = key.encrypt_fields({"apiKey": "abc"}, ["apiKey"])
    with pytest.raises(DecryptionError):
        GenKey.generate().decrypt_fields(enc, ["apiKey"])

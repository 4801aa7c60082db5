"""The passwords `wordcrawl up` keeps in its state folder: made once, private, reused."""

from __future__ import annotations

import json
import stat

import pytest

from wordcrawl.local.probes import ServiceError
from wordcrawl.local.state_secrets import NAMES, SECRETS_FILE, load_or_make


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_makes_every_password_in_a_file_only_its_owner_reads(tmp_path):
    state = tmp_path / "state"

    kept = load_or_make(state)

    assert set(kept) == set(NAMES)
    assert len(set(kept.values())) == len(NAMES)  # one of its own for each
    assert all(
        len(value) >= 32 and value.replace("-", "").replace("_", "").isalnum()
        for value in kept.values()
    )  # fits in a URL as it is
    assert json.loads((state / SECRETS_FILE).read_text()) == kept
    assert mode(state / SECRETS_FILE) == 0o600
    assert mode(state) == 0o700


def test_next_start_reuses_them_and_tightens_an_old_state_folder(tmp_path):
    state = tmp_path / "state"
    first = load_or_make(state)
    state.chmod(0o755)  # as an older wordcrawl made it
    (state / SECRETS_FILE).chmod(0o644)

    assert load_or_make(state) == first
    assert mode(state) == 0o700
    assert mode(state / SECRETS_FILE) == 0o600


def test_a_password_missing_from_the_file_is_added_and_the_others_kept(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / SECRETS_FILE).write_text(json.dumps({"postgres_password": "kept-one"}))

    kept = load_or_make(state)

    assert kept["postgres_password"] == "kept-one"
    assert kept["redis_password"] and kept["admin_password"]
    assert json.loads((state / SECRETS_FILE).read_text()) == kept


def test_a_damaged_file_is_an_error_naming_it(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / SECRETS_FILE).write_text("{not json")

    with pytest.raises(ServiceError, match=SECRETS_FILE):
        load_or_make(state)

"""The key format: a checksum refuses typos and guesses before any lookup; the hash needs the server secret."""

from __future__ import annotations

from linkmeter.web.accounts import keys


def test_a_generated_key_parses_back_to_its_id_and_secret() -> None:
    full, parts = keys.generate()
    assert full.startswith(parts.key_id + "_")
    assert keys.parse(full) == parts
    assert keys.public_id(full) == parts.key_id


def test_any_changed_character_fails_the_checksum() -> None:
    full, _ = keys.generate()
    for position in range(len(keys.PREFIX), len(full)):
        if full[position] == "_":
            continue
        changed = full[:position] + ("a" if full[position] != "a" else "b") + full[position + 1:]
        assert keys.parse(changed) is None, position


def test_wrong_shapes_are_refused() -> None:
    full, _ = keys.generate()
    for text in ("", "lmk_", full[:-1], full + "x", full.replace("lmk_", "lmx_"), " " + full, "x" * 10_000):
        assert keys.parse(text) is None


def test_the_hash_depends_on_the_server_secret_and_the_key() -> None:
    _, a = keys.generate()
    _, b = keys.generate()
    assert keys.hash_secret(b"one", a) != keys.hash_secret(b"two", a)
    assert keys.hash_secret(b"one", a) != keys.hash_secret(b"one", b)
    assert len(keys.hash_secret(b"one", a)) == 64

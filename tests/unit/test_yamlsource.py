"""Located YAML parsing."""

from __future__ import annotations

import pytest
import yaml

from mig_conformance.common.errors import InputError
from mig_conformance.common.yaml_source import load_yaml_file, parse_yaml


def test_lines_are_recorded_for_values_and_keys() -> None:
    doc = parse_yaml("a: 1\nb:\n  - x: 2\n    y: [1, 2]\n", "f.yaml")
    assert doc.data == {"a": 1, "b": [{"x": 2, "y": [1, 2]}]}
    assert doc.line("b", 0, "y") == 4
    assert doc.key_line("b", 0, "x") == 3
    assert doc.line("b", 0, "missing") == 3  # falls back to the nearest ancestor


def test_syntax_error_names_file_and_line() -> None:
    with pytest.raises(InputError) as e:
        parse_yaml("a: 1\nb: [1,\n", "bad.yaml")
    assert "bad.yaml:" in str(e.value) and "not valid YAML" in str(e.value)


def test_duplicate_key_is_an_error() -> None:
    with pytest.raises(InputError, match=r"dup.yaml:2.*duplicate key 'a' \(first defined on line 1\)"):
        parse_yaml("a: 1\na: 2\n", "dup.yaml")


def test_missing_and_directory_files(tmp_path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_yaml_file(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="is a directory"):
        load_yaml_file(tmp_path)


def test_binary_file_is_an_input_error(tmp_path) -> None:
    f = tmp_path / "bin.yaml"
    f.write_bytes(b"a: \x80\x81\x00bad")
    with pytest.raises(InputError, match=r"bin.yaml: not UTF-8 text \(byte 0x80 at offset 3\); a binary file\?"):
        load_yaml_file(f)


def test_utf16_and_utf8_with_a_byte_order_mark_are_read(tmp_path) -> None:
    for codec, bom in (("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"), ("utf-8", b"\xef\xbb\xbf")):
        f = tmp_path / f"{codec}.yaml"
        f.write_bytes(bom + "a: [1, 2]\nb: x\n".encode(codec))
        assert load_yaml_file(f).data == {"a": [1, 2], "b": "x"}, codec


BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8))


@pytest.mark.parametrize(("text", "message"), [
    (BILLION_LAUGHS, "more than 100,000 values once aliases are expanded"),
    ("a: &a [*a]\n", "recursive alias"),
    ("a: &a {b: *a}\n", "recursive alias"),
    ("a: &a\n  <<: *a\n  x: 1\n", "a merge key (<<) merges a mapping that contains it"),
    ("[" * 990 + "]" * 990, "nested more than 64 levels deep"),
    ("a:\n" + "".join("  " * i + "- \n" for i in range(1, 600)), "nested more than 64 levels deep"),
    ("a: " + "9" * 100_000, "not a usable YAML value"),
    ("[" + "1," * 200_000 + "1]", "more than 100,000 values"),
    ("a: " + "x" * (5 * 2**20), "larger than 4 MiB"),
])
def test_hostile_yaml_is_a_located_input_error_at_once(text: str, message: str) -> None:
    with pytest.raises(InputError, match=r"hostile\.yaml") as e:
        parse_yaml(text, "hostile.yaml")
    assert message in str(e.value)


def test_a_file_larger_than_the_limit_is_not_read_whole(tmp_path) -> None:
    f = tmp_path / "big.yaml"
    with f.open("wb") as out:
        out.truncate(50 * 2**20)  # 50 MB of zeros, sparse
    with pytest.raises(InputError, match=r"big\.yaml: larger than 4 MiB"):
        load_yaml_file(f)


def test_duplicates_can_keep_the_last_value_with_a_located_warning() -> None:
    doc = parse_yaml("a: 1\nb: 2\na: 3\n", "dup.yaml", duplicates="last")
    assert doc.data == {"a": 3, "b": 2} and doc.key_line("a") == 3
    (w,) = doc.warnings
    assert (w.location.file, w.location.line, w.location.key) == ("dup.yaml", 3, "a")
    assert "duplicate key 'a' (first defined on line 1)" in w.message


def test_merge_keys_are_not_duplicates() -> None:
    doc = parse_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 5\n", "m.yaml")
    assert doc.data["c"] == {"x": 5, "y": 2} and doc.warnings == []


def test_first_document_only() -> None:
    with pytest.raises(InputError, match="not valid YAML"):
        parse_yaml("a: 1\n---\nb: 2\n", "multi.yaml")
    doc = parse_yaml("a: 1\n---\nb: [\n", "multi.yaml", first_document_only=True)
    assert doc.data == {"a": 1}
    assert doc.warnings[0].location.line == 2 and "only the first YAML document" in doc.warnings[0].message


@pytest.mark.parametrize("scalar", [
    "1", "0", "7", "012", "089", "0x1F", "1_000", "+1", "-1", "123456789012345678901234567890", "١٢", "1.5", "1e3",
    ".inf", ".NaN", "yes", "No", "on", "OFF", "y", "n", "true", "FALSE", "~", "null", "Null", "", "a", "foo bar",
    "2001-12-14", "2001-12-14t21:59:43.10-05:00", "=", "-", "1g.10gb", "all-balanced", "0o17", "0b101", "190:20:30",
])
@pytest.mark.parametrize("shape", ["{}", "k: {}", "[{}]", "- {}\n", "{{}: 1}", "'{}'", '"{}"'])
def test_scalars_resolve_as_pyyaml_resolves_them(scalar: str, shape: str) -> None:
    """The resolver's shortcuts (plain strings, plain decimals) give exactly PyYAML's values and types."""
    text = shape.replace("{}", scalar) if shape != "{}" else scalar
    try:
        expected: object = yaml.safe_load(text)
    except yaml.YAMLError:
        with pytest.raises(InputError):
            parse_yaml(text, "s.yaml")
        return
    got = parse_yaml(text, "s.yaml").data
    assert repr(got) == repr(expected) and _types(got) == _types(expected)  # repr: .nan equals itself


def _types(value: object) -> object:
    """The value's type, and the types of every key and item inside it."""
    if isinstance(value, dict):
        return {(type(k), k): _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value)

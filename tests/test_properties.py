import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmgr.errors import InvalidInput
from opsmgr.properties import dump_properties, load_properties, parse_properties


def test_separators_and_whitespace():
    text = "a=1\nb : 2\nc 3\n  d\t=\t4\ne\nf=\ng= spaced value  \n"
    assert parse_properties(text) == {
        "a": "1",
        "b": "2",
        "c": "3",
        "d": "4",
        "e": "",
        "f": "",
        "g": "spaced value  ",
    }


def test_comments_and_blank_lines():
    text = "# comment\n! also a comment\n\n   # indented comment\nkey=value # not a comment\n"
    assert parse_properties(text) == {"key": "value # not a comment"}


def test_later_keys_override_earlier_ones():
    assert parse_properties("k=1\nk=2\n") == {"k": "2"}


def test_continuation_lines_drop_leading_whitespace():
    text = "list=a,\\\n    b,\\\n\tc\nnext=1\n"
    assert parse_properties(text) == {"list": "a,b,c", "next": "1"}


def test_continuation_line_starting_with_hash_is_content():
    assert parse_properties("k=a\\\n#b\n") == {"k": "a#b"}


def test_comment_ending_with_backslash_does_not_continue():
    assert parse_properties("# comment \\\nk=v\n") == {"k": "v"}


def test_even_number_of_trailing_backslashes_is_not_a_continuation():
    assert parse_properties("k=a\\\\\nj=b\n") == {"k": "a\\", "j": "b"}


def test_continuation_at_end_of_file():
    assert parse_properties("k=a\\") == {"k": "a"}


def test_escapes():
    text = r"k\ ey\:x\=y=t\tn\nr\rf\f\\ \u00e9\u4e2d\q" + "\n"
    assert parse_properties(text) == {"k ey:x=y": "t\tn\nr\rf\f\\ é中q"}


def test_surrogate_pair_escape_is_one_character():
    assert parse_properties(r"k=\ud83d\ude00") == {"k": "😀"}


@pytest.mark.parametrize("text", [r"k=\u12", r"k=\uZZZZ", r"k=\ud83d"])
def test_malformed_escapes_name_the_line(text):
    with pytest.raises(InvalidInput) as info:
        parse_properties("ok=1\n" + text, source="conf-mms.properties")
    assert info.value.field == "conf-mms.properties:2"


def test_line_terminators_are_only_cr_lf():
    # Form feed, vertical tab and Unicode separators are characters of a value, as in java.util.Properties.
    assert parse_properties("k=a\x0bb\u2028c\x85d\r\nj=1\rl=2") == {
        "k": "a\x0bb\u2028c\x85d",
        "j": "1",
        "l": "2",
    }


def test_only_java_whitespace_is_stripped():
    assert parse_properties("k=\u00a0v") == {"k": "\u00a0v"}
    assert parse_properties("\u00a0k=v") == {"\u00a0k": "v"}


def test_unicode_utf8_file(tmp_path):
    path = tmp_path / "conf-mms.properties"
    path.write_text("name=Zürich 東京 😀\n", encoding="utf-8")
    assert load_properties(path) == {"name": "Zürich 東京 😀"}


def test_dump_is_ascii_and_has_header():
    text = dump_properties({"k": "é😀"}, header="line one\nline two")
    assert text.isascii()
    assert text.startswith("# line one\n# line two\n")
    assert parse_properties(text) == {"k": "é😀"}


def test_dump_escapes_what_would_otherwise_be_syntax():
    values = {"#k": "v", "!x": "y", "a b": " lead", "c=d": "e:f", "t": "tab\there", "bs": "\\"}
    text = dump_properties(values)
    assert parse_properties(text) == values


_text = st.text(st.characters(codec="utf-8"), max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_text, _text, max_size=8))
def test_round_trip(values):
    assert parse_properties(dump_properties(values)) == values


def test_dump_keeps_uris_readable():
    values = {"mongo.mongoUri": "postgresql://u:p@h:5432/db?x=1", "lead": "=:v", "hash": "#not a comment"}
    text = dump_properties(values)
    assert "mongo.mongoUri=postgresql://u:p@h:5432/db?x=1\n" in text
    assert parse_properties(text) == values

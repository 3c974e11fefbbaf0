from cachectl.keytext import reply_text


def test_a_server_word_reads_as_text_whatever_shape_the_client_gave_it():
    assert reply_text(b"string") == "string"
    assert reply_text("embstr") == "embstr"
    assert reply_text(1.5) == "1.5"


def test_a_byte_that_is_not_utf8_becomes_a_replacement_character_not_an_error():
    assert reply_text(b"zset\xff") == "zset\ufffd"

from cachectl.redact import mask_headers, mask_url, scrub


def test_mask_url_hides_password_keeps_user_and_host():
    assert (
        mask_url("redis://alice:s3cret@db.internal:6380/2")
        == "redis://alice:****@db.internal:6380/2"
    )
    assert mask_url("rediss://:s3cret@h:1/0") == "rediss://:****@h:1/0"


def test_mask_url_lone_userinfo_is_a_password_for_redis():
    assert mask_url("redis://s3cret@h:1/0") == "redis://****@h:1/0"


def test_mask_url_query_password():
    assert (
        mask_url("unix:///tmp/r.sock?db=0&password=s3cret")
        == "unix:///tmp/r.sock?db=0&password=****"
    )


def test_mask_url_without_credentials_is_unchanged():
    assert mask_url("redis://localhost:6379/0") == "redis://localhost:6379/0"


def test_mask_headers_masks_credentials_only():
    masked = mask_headers(
        {"Authorization": "Bearer abc", "X-Api-Key": "k", "Accept": "application/json"}
    )
    assert masked == {"Authorization": "****", "X-Api-Key": "****", "Accept": "application/json"}


def test_scrub_removes_known_secrets_and_url_passwords():
    text = "failed with token tok-123456 at redis://u:pw@h:1"
    assert scrub(text, ["tok-123456"]) == "failed with token **** at redis://u:****@h:1"


def test_a_password_holding_a_slash_is_masked_with_all_of_the_user_part_it_breaks():
    assert mask_url("redis://user:pa/ss@host:6379/0") == "redis://user:****@host:6379/0"


def test_a_url_inside_a_url_has_its_password_masked_too():
    shown = mask_url("https://api.example.com/login?next=https://bob:hunter22@other/x")
    assert "hunter22" not in shown


def test_urls_in_text_are_masked_after_long_words_and_digits_with_the_bounded_pattern():
    from cachectl.redact import mask_urls_in_text

    text = "x" * 40 + "redis://u:pw1@h and 1redis://:pw2@h, a://" + "k" * 5000
    out = mask_urls_in_text(text)
    assert "pw1" not in out and "pw2" not in out and out.endswith("k" * 5000)

"""Warm manifests: loading, every problem at once, and streaming expansion into requests."""

from __future__ import annotations

import itertools
import textwrap
import tracemalloc
from pathlib import Path

import pytest

from cachectl.errors import ManifestError, UsageError
from cachectl.layout import Layout, LayoutConfig
from cachectl.manifest import Plan, load_manifest, load_manifests

SAMPLES = Path(__file__).resolve().parents[2] / "sample_configs"


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def plan_of(tmp_path: Path, text: str, env=None, layout: Layout | None = None, **kw) -> Plan:
    path = write(tmp_path, text)
    return Plan([load_manifest(path, env=env or {})], layout or Layout(), **kw)


def problems_of(tmp_path: Path, text: str, env=None) -> list[str]:
    with pytest.raises(ManifestError) as err:
        load_manifest(write(tmp_path, text), env=env or {})
    return err.value.problems


def test_the_sample_manifest_is_valid_and_expands():
    plan = Plan(
        load_manifests([SAMPLES / "manifest.yaml"], env={"API_TOKEN": "t0ken-abc"}), Layout()
    )
    assert plan.total == 27
    requests = list(plan.requests())
    assert len(requests) == 27
    first = requests[0]
    assert first.key == 'api_cache:products:category:"electronics"|limit:10|page:1'
    assert first.url == "https://api.example.com/v2/products?limit=10&category=electronics&page=1"
    detail = next(r for r in requests if r.endpoint.name == "product_detail")
    assert detail.key == "api_cache:product_detail:id:1001"  # ids.txt holds numbers
    assert detail.depends_on == ("product_1001",)


def test_param_types_decide_the_key(tmp_path):
    plan = plan_of(
        tmp_path,
        """\
        version: 1
        defaults: {base_url: "http://h", ttl: 60}
        endpoints:
          - {name: a, url: /a, params: {id: 10}}
          - {name: a, url: /a, params: {id: "10"}}
          - {name: s, url: /s, params: {q: café, fields: [name, email], price: 2.5, exact: true}}
          - {name: status, url: /status}
        """,
    )
    keys = [r.key for r in plan.requests()]
    assert keys == [
        "api_cache:a:id:10",
        'api_cache:a:id:"10"',
        'api_cache:s:exact:true|fields:["name","email"]|price:2.5|q:"café"',
        "api_cache:status:no_params",
    ]


def test_keys_follow_the_configured_layout(tmp_path):
    text = """\
        version: 1
        defaults: {base_url: "http://h", ttl: 60, headers: {Accept-Language: fr, Authorization: Bearer s3cr3t-token}}
        endpoints:
          - {name: products, url: /p, params: {category: electronics, limit: 10}}
        """
    plain = plan_of(tmp_path, text, layout=Layout(LayoutConfig(param_encoding="plain")))
    assert next(plain.requests()).key == "api_cache:products:category:electronics|limit:10"
    versioned = plan_of(
        tmp_path, text,
        layout=Layout(LayoutConfig(scheme="versioned", version="v2", header_allowlist=("Accept-Language",))),
    )  # fmt: skip
    # Allow-listed headers enter a versioned key; credentials never do.
    assert next(versioned.requests()).key == (
        'api:v2:products?category="electronics"&limit=10#Accept-Language=fr'
    )


def test_matrix_is_the_cartesian_product_in_manifest_order(tmp_path):
    (tmp_path / "ids.txt").write_text('# ids\n7\n\n"8"\nnine\n')
    plan = plan_of(
        tmp_path,
        """\
        version: 1
        defaults: {base_url: "http://h", ttl: 60}
        endpoints:
          - name: e
            url: /e/{id}
            matrix:
              page: {range: [1, 2]}
              id: {file: ids.txt}
          - name: raw
            url: /raw/{id}
            matrix:
              id: {file: ids.txt, as: string}
        """,
    )
    assert plan.total == 6 + 3
    got = [(r.params["page"], r.params["id"]) for r in plan.requests() if r.endpoint.name == "e"]
    assert got == [(1, 7), (1, "8"), (1, "nine"), (2, 7), (2, "8"), (2, "nine")]
    raw = [r.params["id"] for r in plan.requests() if r.endpoint.name == "raw"]
    assert raw == ["7", '"8"', "nine"]


def test_urls_templates_query_and_body(tmp_path):
    plan = plan_of(
        tmp_path,
        """\
        version: 1
        defaults: {base_url: "https://api.example.com/v2/", ttl: 10m}
        endpoints:
          - name: user
            url: users/{id}/posts?sort=new&x={{literal}}
            params: {id: "a b/c", page: 2, filter: {kind: x}}
            tags: ["user_{id}", all]
            depends_on: ["post_{page}"]
          - name: abs
            url: http://other.example.com/x
            method: post
            body: {q: "*", n: 1.0}
        """,
    )
    user, absolute = plan.requests()
    assert user.url == (
        "https://api.example.com/v2/users/a%20b%2Fc/posts?sort=new&x={literal}"
        "&page=2&filter=%7B%22kind%22%3A%22x%22%7D"
    )
    assert user.tags == ("user_a b/c", "all")
    assert user.depends_on == ("post_2",)
    assert absolute.url == "http://other.example.com/x"
    assert absolute.endpoint.method == "POST"
    assert absolute.endpoint.body == b'{"q":"*","n":1}'
    assert absolute.endpoint.headers["Content-Type"] == "application/json"


def test_every_problem_is_reported_at_once_with_file_line_column_and_field(tmp_path):
    problems = problems_of(
        tmp_path,
        """\
        version: 1
        defaults:
          base_url: https://api.example.com
          ttl: 0
          headres: {}
        endpoints:
          - name: products
            url: /products/{categry}
            matrix:
              category: [a, b]
              page: {range: [1, x]}
              n: {range: [5, 1]}
            ttl: -5m
            tags: ["t_{pge}"]
            cache_if: non-empty
            metod: GET
          - name: users
            url: /users
            headers: {Authorization: "Bearer ${MISSING_TOKEN}"}
            cache_if: [200, 404]
          - url: x
            method: PUT
            body: {a: 1}
        """,
    )
    f = str(tmp_path / "m.yaml")
    expected = [
        f"{f}:4:8: defaults.ttl: the ttl must be greater than 0",
        f"{f}:5:3: defaults.headres: unknown field 'headres' (did you mean 'headers'?)",
        f"{f}:8:10: endpoints[0].url: the template names an unknown param 'categry' (did you mean 'category'?)",
        f"{f}:11:21: endpoints[0].matrix.page.range: expected two whole numbers [first, last]",
        f"{f}:12:18: endpoints[0].matrix.n.range: the range is empty",
        f"{f}:13:10: endpoints[0].ttl: the ttl must be greater than 0, got '-5m'",
        f"{f}:14:12: endpoints[0].tags[0]: the template names an unknown param 'pge' (did you mean 'page'?)",
        f"{f}:15:15: endpoints[0].cache_if: expected always, non_empty or a list of 2xx statuses, got 'non-empty' (did you mean 'non_empty'?)",
        f"{f}:16:5: endpoints[0].metod: unknown field 'metod' (did you mean 'method'?)",
        f"{f}:19:30: endpoints[1].headers.Authorization: environment variable MISSING_TOKEN is not set",
        f"{f}:20:21: endpoints[1].cache_if[1]: expected a success status (200 to 299)",
        f"{f}:21:5: endpoints[2]: missing field 'name'",
        f"{f}:22:13: endpoints[2].method: expected one of GET, POST, got 'PUT'",
        f"{f}:23:11: endpoints[2].body: a body is sent only with method: POST",
    ]
    assert len(problems) == len(expected), "\n".join(problems)
    for problem, start in zip(problems, expected):
        assert problem.startswith(start), (problem, start)


@pytest.mark.parametrize(
    "endpoint, message",
    [
        ("{name: a, url: /a, ttl: 0}", "the ttl must be greater than 0"),
        ("{name: a, url: /a, ttl: -1}", "the ttl must be greater than 0"),
        ("{name: a, url: /a, ttl: 0.0001}", "the ttl must be at least 1 ms"),
        ("{name: a, url: /a, ttl: soon}", "expected a duration such as"),
        ("{name: a, url: /a, ttl: 60, matrix: {p: {range: [1]}}}", "expected two whole numbers"),
        (
            "{name: a, url: /a, ttl: 60, matrix: {p: {range: [1, 2.5]}}}",
            "expected two whole numbers",
        ),
        (
            "{name: a, url: /a, ttl: 60, matrix: {p: {range: [true, 2]}}}",
            "expected two whole numbers",
        ),
        ("{name: a, url: /a, ttl: 60, matrix: {p: []}}", "the list of values is empty"),
        ("{name: a, url: /a, ttl: 60, matrix: {p: {range: [1, 2], file: x}}}", "exactly one of"),
        ("{name: a, url: /a, ttl: 60, matrix: {p: {file: missing.txt}}}", "cannot read"),
        (
            "{name: a, url: /a, ttl: 60, matrix: {p: {rnage: [1, 2]}}}",
            "unknown field 'rnage' (did you mean 'range'?)",
        ),
        ('{name: a, url: "/a/{id}", ttl: 60}', "unknown param 'id' (this endpoint has no params)"),
        ('{name: a, url: "/a/{", ttl: 60}', "an unmatched brace"),
        ('{name: a, url: "/a/{}", ttl: 60}', "an empty placeholder"),
        (
            "{name: a, url: /a, ttl: 60, params: {d: 2024-01-01}}",
            "reads as a date: put it in quotes",
        ),
        ("{name: a, url: /a, ttl: 60, params: {x: .nan}}", "is not a JSON number"),
        (
            "{name: a, url: /a, ttl: 60, params: {p: 1}, matrix: {p: [1, 2]}}",
            "given both in params and in matrix",
        ),
        ("{name: a, url: /a, ttl: 60, retries: -1}", "expected a whole number from 0 to 20"),
        ("{name: a, url: /a, ttl: 60, concurrency: 0}", "expected a whole number from 1 to 1000"),
        ("{name: a, url: /a, ttl: 60, rate: 0}", "expected requests per second from 0.001"),
        ("{name: a, url: ftp://x/a, ttl: 60}", "expected an http:// or https:// URL"),
        ("{name: a, url: /a}", "missing field 'ttl' (set ttl here or in defaults)"),
        ("{name: '', url: /a, ttl: 60}", "expected text, got an empty value"),
        (
            "{name: a, url: 'http://u:p@h/a', ttl: 60, headers: {Authorization: x}}",
            "keep one of them",
        ),
    ],
)
def test_one_bad_field_is_named_with_what_is_expected(tmp_path, endpoint, message):
    problems = problems_of(
        tmp_path,
        f"""\
        version: 1
        defaults: {{base_url: "http://h"}}
        endpoints:
          - {endpoint}
        """,
    )
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the manifest is empty"),
        (
            "version: 2\nendpoints: [{name: a, url: http://h/a, ttl: 1}]\n",
            "unsupported version the number 2",
        ),
        ("endpoints: [{name: a, url: http://h/a, ttl: 1}]\n", "missing field 'version'"),
        ("version: 1\n", "missing field 'endpoints'"),
        ("version: 1\nendpoints: []\n", "the list of endpoints is empty"),
        ("version: 1\nendpoint: []\n", "unknown field 'endpoint' (did you mean 'endpoints'?)"),
        (
            "version: 1\nendpoints: [{name: a, url: /a, ttl: 1}]\n",
            "is a path and defaults.base_url is not set",
        ),
    ],
)
def test_top_level_problems(tmp_path, text, message):
    assert any(message in p for p in problems_of(tmp_path, text))


def test_malformed_yaml_is_one_line_with_its_place(tmp_path):
    with pytest.raises(ManifestError) as err:
        load_manifest(write(tmp_path, "version: 1\nendpoints: [\n  {name: a\n"), env={})
    assert str(err.value).startswith(f"{tmp_path / 'm.yaml'}:")


def test_problems_of_several_files_come_together(tmp_path):
    good = write(
        tmp_path, "version: 1\nendpoints: [{name: a, url: http://h/a, ttl: 1}]\n", "good.yaml"
    )
    bad1 = write(
        tmp_path, "version: 1\nendpoints: [{name: a, url: http://h/a, ttl: 0}]\n", "bad1.yaml"
    )
    bad2 = write(
        tmp_path, "version: 1\nendpoints: [{name: a, url: http://h/{x}, ttl: 1}]\n", "bad2.yaml"
    )
    with pytest.raises(ManifestError) as err:
        load_manifests([good, bad1, bad2], env={})
    assert [p.split(":")[0] for p in err.value.problems] == [str(bad1), str(bad2)]
    assert err.value.message.startswith("the manifests: 2 problems")


def test_secrets_never_appear_in_problems_or_shown_urls(tmp_path):
    env = {"TOKEN": "s3cret-token-value", "KEY": "k3y-value-123"}
    problems = problems_of(
        tmp_path,
        """\
        version: 1
        defaults:
          base_url: "https://user:${KEY}@api.example.com"
          headers: {Authorization: "Bearer ${TOKEN}", X-Api-Key: [1]}
        endpoints:
          - {name: a, url: "/a?api_key=${KEY}&page=1", ttl: 0}
        """,
        env=env,
    )
    text = "\n".join(problems)
    assert "X-Api-Key: expected text, got a value" in text
    for secret in env.values():
        assert secret not in text

    plan = plan_of(
        tmp_path,
        """\
        version: 1
        defaults:
          base_url: "https://user:${KEY}@api.example.com"
          headers: {X-Auth-Token: "Bearer ${TOKEN}"}
        endpoints:
          - {name: a, url: "/a?api_key=${KEY}&page=1", ttl: 60}
        """,
        env=env,
    )
    request = next(plan.requests())
    assert request.shown_url == "https://user:****@api.example.com/a?api_key=****&page=1"
    assert set(env.values()) <= set(plan.secrets)
    assert "s3cret" not in request.key and "s3cret" not in str(request.to_dict())
    assert (
        plan.scrub("failed: Bearer s3cret-token-value / s3cret-token-value")
        == "failed: **** / ****"
    )


def test_unknown_endpoint_filter_is_a_usage_error_with_a_suggestion(tmp_path):
    text = "version: 1\nendpoints: [{name: products, url: http://h/a, ttl: 1}, {name: users, url: http://h/u, ttl: 1}]\n"
    assert [e.name for e in plan_of(tmp_path, text, only=["users"]).endpoints] == ["users"]
    with pytest.raises(
        UsageError,
        match="no endpoint named 'product' in the manifests \\(did you mean 'products'\\?\\)",
    ):
        plan_of(tmp_path, text, only=["product"])


def test_a_million_entry_matrix_streams_in_flat_memory(tmp_path):
    (tmp_path / "ids.txt").write_text("".join(f"sku-{i:08}\n" for i in range(50_000)))
    plan = plan_of(
        tmp_path,
        """\
        version: 1
        endpoints:
          - name: e
            url: http://h/e/{id}
            ttl: 60
            matrix:
              page: {range: [1, 20]}
              id: {file: ids.txt, as: string}
        """,
    )
    assert plan.total == 1_000_000
    tracemalloc.start()
    try:
        # Into the second pass over the file: nothing of the first pass may be kept.
        for request in itertools.islice(plan.requests(), 60_000):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert request.params == {"page": 2, "id": "sku-00009999"}
    # The file's 50,000 values alone take about 3 MB; the stream holds a few at a time.
    assert peak < 1_000_000, peak


def test_an_entry_read_back_from_its_key_gives_the_same_request(tmp_path):
    plan = plan_of(
        tmp_path,
        """\
        version: 1
        defaults: {base_url: "http://h", ttl: 60}
        endpoints:
          - {name: user, url: "/users/{id}", params: {id: 1}, tags: ["u_{id}"]}
          - {name: products, url: /p}
        """,
    )
    layout = plan.layout
    key = layout.entry("user", {"id": 42, "full": True})
    parsed = layout.parse_entry(key, plan.endpoint_names)
    request, why = plan.request_for_entry(key, parsed.endpoint, parsed.params)
    assert why is None
    assert request.key == key
    assert request.url == "http://h/users/42?full=true"
    assert request.tags == ("u_42",)
    # The params cannot fill the URL template: left alone, and said why.
    key = layout.entry("user", {"name": "x"})
    parsed = layout.parse_entry(key, plan.endpoint_names)
    assert plan.request_for_entry(key, parsed.endpoint, parsed.params) == (
        None,
        "params_do_not_fit",
    )
    assert plan.request_for_entry(key, "other", {}) == (None, "not_in_manifest")


@pytest.mark.parametrize(
    "value", [0, -1, 123, 2**53 - 1, 2**53, -(2**53), 10**21, True, 2.5, "x", [1, "a"]]
)
def test_template_values_are_written_as_javascript_string_writes_them(value):
    from cachectl.layout import js_string
    from cachectl.manifest import _text_of

    assert _text_of(value) == js_string(value)


# ---- secrets never enter a key ------------------------------------------------------------------


def test_a_param_named_like_a_credential_is_refused_at_its_name(tmp_path):
    """Every param is part of the entry key (docs/keyspace.md): `api_key: ${KEY}` as a param wrote
    the key `api_cache:items:api_key:"myapikey999"|...` to Redis, the tag sets and the write log."""
    env = {"KEY": "myapikey999", "TOK": "supersecrettoken123"}
    problems = problems_of(
        tmp_path,
        """\
        version: 1
        defaults: {base_url: "http://h", ttl: 60}
        endpoints:
          - name: items
            url: /items/{id}
            params:
              api_key: ${KEY}
              id: 1
            matrix:
              accessToken: ["${TOK}"]
          - {name: b, url: /b, params: {apiKey: 1, password: x, client_secret: y, auth: z, keyword: shoes, author: smith}}
        """,
        env=env,
    )
    f = str(tmp_path / "m.yaml")
    assert [p.split(": param")[0] for p in problems] == [
        f"{f}:7:7: endpoints[0].params.api_key",
        f"{f}:10:7: endpoints[0].matrix.accessToken",
        f"{f}:11:33: endpoints[1].params.apiKey",
        f"{f}:11:44: endpoints[1].params.password",
        f"{f}:11:57: endpoints[1].params.client_secret",
        f"{f}:11:75: endpoints[1].params.auth",
    ]
    assert problems[0].endswith(
        "param 'api_key' looks like a credential, and every param is part of the entry key: send "
        "it as a header (headers never enter a key), or, if the API reads it only from the query "
        "string, write it into the url (?api_key=${VAR}): the url's own text never enters a key"
    )
    for secret in env.values():
        assert secret not in "\n".join(problems)


@pytest.mark.parametrize("name", ["keyword", "author", "monkey", "tokenizer_mode", "sort", "page"])
def test_a_param_whose_name_only_contains_a_secret_word_is_kept(tmp_path, name):
    plan = plan_of(
        tmp_path,
        f"""\
        version: 1
        endpoints: [{{name: a, url: "http://h/a", ttl: 60, params: {{{name}: x}}}}]
        """,
    )
    assert next(plan.requests()).key == f'api_cache:a:{name}:"x"'


def test_a_param_that_holds_a_header_credential_is_refused(tmp_path):
    """`access: ${TOK}` is no credential by its name, but TOK is the X-Api-Key header's."""
    env = {"TOK": "supersecrettoken123", "PW": "hunter2hunter2"}
    problems = problems_of(
        tmp_path,
        """\
        version: 1
        defaults:
          base_url: "http://user:${PW}@h"
          ttl: 60
          headers: {X-Api-Key: "${TOK}"}
        endpoints:
          - name: a
            url: /a
            params: {access: "${TOK}", q: {deep: ["x-${PW}"]}, fine: ok}
            matrix: {id: [1, "${TOK}"]}
            tags: ["t_${TOK}"]
            depends_on: ["${PW}"]
        """,
        env=env,
    )
    f = str(tmp_path / "m.yaml")
    assert problems == [
        (
            f"{f}:9:22: endpoints[0].params.access: param 'access' holds a credential (the value "
            "of the X-Api-Key header), and every param is part of the entry key: send it as a "
            "header only (headers never enter a key)"
        ),
        (
            f"{f}:9:35: endpoints[0].params.q: param 'q' holds a credential (the value of the "
            "password in defaults.base_url), and every param is part of the entry key: send it as "
            "a header only (headers never enter a key)"
        ),
        (
            f"{f}:10:22: endpoints[0].matrix.id[1]: param 'id' holds a credential (the value of "
            "the X-Api-Key header), and every param is part of the entry key: send it as a header "
            "only (headers never enter a key)"
        ),
        (
            f"{f}:11:12: endpoints[0].tags[0]: a tag name holds a credential (the value of the "
            "X-Api-Key header): it would be part of a Redis key name, stored and shown; keep "
            "credentials to headers"
        ),
        (
            f"{f}:12:18: endpoints[0].depends_on[0]: a dependency name holds a credential (the "
            "value of the password in defaults.base_url): it would be part of a Redis key name, "
            "stored and shown; keep credentials to headers"
        ),
    ]


def test_a_known_secret_in_a_harmlessly_named_query_value_is_masked_in_the_shown_url(tmp_path):
    plan = plan_of(
        tmp_path,
        """\
        version: 1
        defaults: {ttl: 60, headers: {Authorization: "Bearer ${TOK}"}}
        endpoints:
          - {name: a, url: "http://h/a/{id}?access=${TOK}", params: {id: 1}}
        """,
        env={"TOK": "supersecrettoken123"},
    )
    request = next(plan.requests())
    assert request.url == "http://h/a/1?access=supersecrettoken123"  # sent as it is
    assert request.key == "api_cache:a:id:1"
    assert request.shown_url == "http://h/a/1?access=****"
    assert request.to_dict()["url"] == "http://h/a/1?access=****"


# ---- URLs that can be sent --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, message",
    [
        (
            "/items/café",
            "the URL holds 'é', which cannot be sent as it is: percent-encode it (café -> caf%C3%A9)",
        ),
        (
            "/items/a b",
            "the URL holds a space, which cannot be sent as it is: percent-encode it (a b -> a%20b)",
        ),
        (
            "/items/x?q=a b",
            "the URL holds a space, which cannot be sent as it is: percent-encode it (a b -> a%20b)",
        ),
        (
            "/items/{id}?q=é",
            "the URL holds 'é', which cannot be sent as it is: percent-encode it (é -> %C3%A9)",
        ),
        (
            "/items/a\tb",
            "the URL holds a tab, which cannot be sent as it is: percent-encode it (a\tb -> a%09b)",
        ),
        (
            "/items/100%",
            "a '%' in the URL does not start an escape like %2F: write %25 for a literal %",
        ),
        (
            "/items/%zz",
            "a '%' in the URL does not start an escape like %2F: write %25 for a literal %",
        ),
        ("http://127.0.0.1:99999/x", "the port '99999' is not a port number (1 to 65535)"),
        ("http://127.0.0.1:0/x", "the port '0' is not a port number (1 to 65535)"),
        ("http://h:x/x", "the port 'x' is not a port number (1 to 65535)"),
        ("http://a b/x", "the host cannot hold a space"),
        (
            "http://café.example/x",
            "the host holds 'é': a host is sent in ASCII, write it as xn--caf-dma.example",
        ),
        ("http://:80/x", "the URL has no host"),
        ("http://[::1/x", "the host's '[' is not closed (write an IPv6 address as [::1])"),
        ("http://[nope]/x", "the host in brackets is not an IPv6 address (write it as [::1])"),
    ],
)
def test_a_url_that_cannot_be_sent_is_refused_with_how_to_write_it(tmp_path, url, message):
    problems = problems_of(
        tmp_path,
        f"""\
        version: 1
        defaults: {{base_url: "http://h", ttl: 60}}
        endpoints:
          - name: a
            url: "{url}"
            params: {{id: 1}}
            fallback_url: "{url}"
        """,
    )
    f = str(tmp_path / "m.yaml")
    assert problems == [
        f"{f}:5:10: endpoints[0].url: {message}",
        f"{f}:7:19: endpoints[0].fallback_url: {message}",
    ]


def test_a_base_url_that_cannot_be_sent_is_one_problem_not_one_per_endpoint(tmp_path):
    problems = problems_of(
        tmp_path,
        """\
        version: 1
        defaults: {base_url: "http://h:70000/v 2", ttl: 60}
        endpoints:
          - {name: a, url: /a}
          - {name: b, url: "/b c"}
        """,
    )
    f = str(tmp_path / "m.yaml")
    assert problems == [
        f"{f}:2:22: defaults.base_url: the port '70000' is not a port number (1 to 65535)",
        (
            f"{f}:5:20: endpoints[1].url: the URL holds a space, which cannot be sent as it is: "
            "percent-encode it (b c -> b%20c)"
        ),
    ]


def test_what_is_filled_in_from_params_is_encoded_and_never_refused(tmp_path):
    plan = plan_of(
        tmp_path,
        """\
        version: 1
        defaults: {ttl: 60}
        endpoints:
          - name: a
            url: "http://{host}:{port}/caf%C3%A9/{id}?lit={{x}}"
            params: {host: api.example.com, port: 8080, q: "a b é%"}
            matrix: {id: ["x y", "é", "100%"]}
          - {name: v6, url: "http://[::1]:8080/x"}
          - {name: all_in_url, url: "http://h/{id}#not sent é", params: {id: 1}}
        """,
    )
    assert [r.url for r in plan.requests()] == [
        "http://api.example.com:8080/caf%C3%A9/x%20y?lit={x}&q=a%20b%20%C3%A9%25",
        "http://api.example.com:8080/caf%C3%A9/%C3%A9?lit={x}&q=a%20b%20%C3%A9%25",
        "http://api.example.com:8080/caf%C3%A9/100%25?lit={x}&q=a%20b%20%C3%A9%25",
        "http://[::1]:8080/x",
        "http://h/1#not sent é",
    ]


def test_a_fragment_that_would_swallow_the_query_params_is_refused(tmp_path):
    problems = problems_of(
        tmp_path,
        """\
        version: 1
        endpoints:
          - {name: a, url: "http://h/{id}#top", ttl: 60, params: {id: 1, q: x}, matrix: {page: [1]}}
        """,
    )
    assert problems == [
        (
            f"{tmp_path / 'm.yaml'}:3:20: endpoints[0].url: the URL ends in a #fragment, which is "
            "never sent, and the params not in it (page, q) would be added after it: remove it, or "
            "write %23 for a literal #"
        )
    ]


def test_a_secret_in_a_url_that_cannot_be_sent_is_not_shown_in_the_problem(tmp_path):
    problems = problems_of(
        tmp_path,
        """\
        version: 1
        endpoints:
          - {name: a, url: "http://h/a?token=${TOK}", ttl: 60}
        """,
        env={"TOK": "my secret"},
    )
    assert problems[0].endswith("percent-encode it (a space is %20)")
    assert "my" not in problems[0].split("endpoints[0].url:")[1]

"""A manifest's secrets and configs: the top-level definitions, each
service's grants (short and long form), what they resolve to, the errors,
and the round trip through dump_manifest."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model import secrets as rules
from model.manifest import ManifestError, SecretDef, check_specs, dump_manifest, parse_manifest, parse_stack
from model.objects import SecretRef, ServiceSpec

BASE = """\
name: shop
services:
  web:
    image: busybox
{grants}
secrets:
  db_password: {{file: ./db.txt}}
  api_key: {{environment: API_KEY, labels: [tier=front]}}
  shared: {{external: true, name: shared_key}}
configs:
  app: {{content: "level=info\\n"}}
  nginx: {{file: conf/nginx.conf, name: nginx_v1}}
"""


def _stack(grants: str) -> object:
    return parse_stack(BASE.format(grants=textwrap.indent(textwrap.dedent(grants), "    ")), "m.yaml")


def _refs(grants: str) -> tuple[list[SecretRef], list[SecretRef]]:
    stack = _stack(grants)
    (spec,) = stack.services  # type: ignore[attr-defined]
    return spec.secrets, spec.configs


@pytest.mark.parametrize(("grants", "secrets", "configs"), [
    ("secrets: [db_password]",
     [SecretRef("shop_db_password", "/run/secrets/db_password")], []),
    ("secrets: [{source: db_password, target: db, uid: '103', gid: 104, mode: 0440}]",
     [SecretRef("shop_db_password", "/run/secrets/db", 103, 104, 0o440)], []),
    ("secrets: [{source: shared, target: /etc/ssl/key.pem, mode: '0o400'}]",
     [SecretRef("shared_key", "/etc/ssl/key.pem", 0, 0, 0o400)], []),
    ("secrets: [api_key, {source: api_key, target: again}]",
     [SecretRef("shop_api_key", "/run/secrets/api_key"),
      SecretRef("shop_api_key", "/run/secrets/again")], []),
    ("configs: [app]", [], [SecretRef("shop_app", "/app")]),
    ("configs: [{source: nginx, target: /etc/nginx/nginx.conf, mode: 0444}]",
     [], [SecretRef("nginx_v1", "/etc/nginx/nginx.conf", 0, 0, 0o444)]),
    ("configs: [{source: app, target: etc/app.conf}]", [], [SecretRef("shop_app", "/etc/app.conf")]),
])
def test_grants_resolve_to_names_and_targets(grants: str, secrets: list[SecretRef],
                                             configs: list[SecretRef]) -> None:
    assert _refs(grants) == (secrets, configs)


def test_the_stack_lists_what_its_services_use_in_order_of_first_use() -> None:
    stack = _stack("secrets: [shared, db_password]\nconfigs: [app]")
    assert stack.secrets == [  # type: ignore[attr-defined]
        SecretDef("secret", "shared", "shared_key", "external", "", {}, 10, "secrets.shared"),
        SecretDef("secret", "db_password", "shop_db_password", "file", "./db.txt", {}, 8,
                  "secrets.db_password"),
        SecretDef("config", "app", "shop_app", "content", "level=info\n", {}, 12, "configs.app"),
    ]


def test_unused_definitions_are_left_out() -> None:
    assert _stack("").secrets == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(("grants", "top", "error"), [
    ("secrets: [nope]", "", "m.yaml:5: services.web.secrets[0]: undefined secret 'nope': define it under "
                            "the top-level 'secrets:'"),
    ("configs: [db_password]", "", "undefined config 'db_password'"),
    ("secrets: [{target: x}]", "", "services.web.secrets[0]: missing required key 'source'"),
    ("secrets: [{source: db_password, owner: 1}]", "", "services.web.secrets[0].owner: unknown key 'owner'"),
    ("secrets: [{source: db_password, mode: 01777}]", "", "mode 0o1777: expected permission bits"),
    ("secrets: [{source: db_password, mode: rw}]", "", "invalid mode 'rw'"),
    ("secrets: [{source: db_password, uid: root}]", "", "invalid uid 'root': expected a number"),
    ("secrets: [{source: db_password, uid: -1}]", "", "invalid uid -1"),
    ("secrets: [{source: db_password, target: ../x}]", "", "invalid target '../x'"),
    ("configs: [{source: app, target: /proc/x}]", "", "/proc/x is the node's to make"),
    ("configs: [{source: app, target: /etc/hosts}]", "", "/etc/hosts is the node's to make"),
    ("configs: [{source: app, target: /}]", "", "invalid target '/'"),
    ("secrets: [db_password, {source: api_key, target: db_password}]", "",
     "services.web.secrets[1]: target /run/secrets/db_password is also services.web.secrets[0]'s"),
    ("secrets: db_password", "", "services.web.secrets: expected a list"),
    ("secrets: [db_password]", "secrets: {db_password: {}}", "secrets.db_password: the secret needs a value"),
    ("secrets: [db_password]", "secrets: {db_password: {file: a, environment: B}}",
     "secrets.db_password.environment: give one of file, environment or external: true, not file and "
     "environment"),
    ("secrets: [db_password]", "secrets: {db_password: {content: x}}",
     "unknown key 'content'"),
    ("secrets: [db_password]", "secrets: {db_password: {external: true, labels: [a=b]}}",
     "an external secret takes no 'labels'"),
    ("secrets: [db_password]", "secrets: {db_password: {file: a, driver: vault}}",
     "'driver' is not supported"),
    ("secrets: [db_password]", "secrets: {db_password: {file: a, name: 'bad name'}}", "invalid secret name"),
    ("secrets: [db_password]", "secrets: [db_password]", "secrets: expected a mapping"),
    ("secrets: [x]", "secrets: {'-x': {file: a}}", "invalid secret name '-x'"),
])
def test_mistakes_are_named_with_line_and_field(grants: str, top: str, error: str) -> None:
    text = f"name: shop\nservices:\n  web:\n    image: busybox\n    {grants}\n{top}\n"
    if not top:
        text += "secrets: {db_password: {file: a}, api_key: {file: b}}\nconfigs: {app: {content: c}}\n"
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "m.yaml")
    assert error in str(caught.value)


def test_a_stack_name_too_long_for_a_secret_says_what_to_do() -> None:
    text = ("name: " + "s" * 60 + "\nservices:\n  web:\n    image: busybox\n    secrets: [password]\n"
            "secrets: {password: {file: a}}\n")
    with pytest.raises(ManifestError, match=r"m.yaml:6: secrets.password: invalid secret name .*give it a "
                                            r"shorter 'name:'"):
        parse_manifest(text, "m.yaml")


@pytest.mark.parametrize(("kind", "target", "path"), [
    ("secret", "db", "/run/secrets/db"), ("secret", "a/b", "/run/secrets/a/b"), ("secret", "/x/y", "/x/y"),
    ("config", "app.conf", "/app.conf"), ("config", "/etc/app.conf", "/etc/app.conf"),
])
def test_targets_resolve_as_docker_places_them(kind: str, target: str, path: str) -> None:
    assert rules.resolve_target(kind, target) == path


@pytest.mark.parametrize("target", ["", "/", "a//b", "a/./b", "/x/", "/dev/null", "/sys", "a\nb",
                                    "/" + "x" * 1100])
def test_bad_targets_are_refused(target: str) -> None:
    with pytest.raises(ValueError):
        rules.resolve_target("config", target)


_NAME = st.from_regex(rules.SECRET_NAME_PATTERN, fullmatch=True)
_TARGET = st.lists(st.from_regex(r"[a-z0-9_.-]{1,8}", fullmatch=True).filter(lambda p: p not in (".", "..")),
                   min_size=1, max_size=3).map(lambda parts: "/srv/" + "/".join(parts))
_REFS = st.lists(st.builds(SecretRef, source=_NAME, target=_TARGET, uid=st.integers(0, rules.MAX_ID),
                           gid=st.integers(0, rules.MAX_ID), mode=st.integers(0, 0o777)),
                 max_size=3, unique_by=lambda r: r.target)


@given(secrets=_REFS, configs=_REFS)
def test_specs_with_grants_survive_the_manifests_round_trip(secrets: list[SecretRef],
                                                            configs: list[SecretRef]) -> None:
    """dump_manifest writes them as external definitions and long-form grants;
    check_specs takes them back unchanged (targets apart across both kinds)."""
    configs = [c for c in configs if c.target not in {s.target for s in secrets}]
    spec = ServiceSpec(name="web", image="busybox", secrets=secrets, configs=configs)
    assert parse_manifest(dump_manifest([spec])) == [spec]
    assert check_specs([spec], "services") == [spec]


def test_the_version_a_grant_pins_is_not_a_manifests() -> None:
    spec = ServiceSpec(name="web", image="busybox",
                       secrets=[SecretRef("db", "/run/secrets/db", secret_id="v1")])
    (back,) = parse_manifest(dump_manifest([spec]))
    assert back.secrets == [SecretRef("db", "/run/secrets/db")]

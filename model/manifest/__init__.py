"""Manifests: YAML files in Compose's service syntax, parsed into ``ServiceSpec`` objects.

A manifest holds a ``services:`` mapping and, as Compose's, top-level
``networks:`` and ``name:`` (the stack's name, which its networks' names
begin with; by default the manifest's directory's name); ``version:`` is
accepted and ignored, and top-level ``x-*`` keys are ignored so they can hold
YAML anchors. Each service takes ``image``, ``command``, ``entrypoint``,
``environment``, ``ports`` (``mode: ingress``, the default, or ``host``),
``networks`` (names, or a mapping with ``aliases``; left out, the stack's
``default`` network), ``network_mode: bridge`` (no cluster network),
``labels``, ``stop_grace_period``, ``pids_limit``, ``storage_opt``
(``size``), ``healthcheck``, ``deploy`` (``mode``, ``replicas``,
``resources``, ``placement``, ``restart_policy``, ``update_config``,
``rollback_config``, ``endpoint_mode``) and orch's extension ``x-orch``
(``binpack: true``: fill nodes one by one instead of spreading;
``rebalance: false``: leave the tasks where they are when a node joins or
comes back, where by default orch moves some to it to even the spread;
``healthcheck``: an ``http`` or ``tcp`` probe the node runs). The full list,
with the accepted spellings, is the JSON Schema ``json_schema()``.

``parse_stack`` gives the services and the networks they use
(``NetworkDef``: made by a deploy before its services, unless external),
and the secrets and configs they use (``SecretDef``, from the top-level
``secrets:`` and ``configs:``: a file or a variable of the deploying
machine, which the CLI reads and sends beside the manifest, a config's
inline ``content``, or external); each service's ``secrets:`` and
``configs:`` grant them (short and long form: ``source``, ``target``,
``uid``, ``gid``, ``mode``), see ``_secrets``.

``update_config`` and ``rollback_config`` take Compose's keys with swarmkit's
effective defaults, which are the model's (``UpdateConfig``): ``parallelism``
1 (0 = all at once), ``delay`` 0s, ``failure_action`` pause, ``monitor`` 5s,
``max_failure_ratio`` 0, ``order`` stop-first. Where the Compose spec's text
names a default it agrees (``failure_action`` pause, ``order`` stop-first),
but for ``monitor``, which it says is 0s; orch, as swarmkit and Docker,
watches each new task for 5s. A rollback's ``failure_action`` is ``pause`` or
``continue`` only, as in Compose and Docker.

Errors: one exception, ``ManifestError`` (a ``ValueError``), whose ``str``
is one line naming file, line and field path::

    web.yaml:12: services.web.deploy.replicas: expected a non-negative integer, got 'three'

Modules: ``_yaml`` (positioned YAML nodes), ``_values`` (value converters),
``_table`` (the known keys; the single source for parser and schema),
``_walk`` (nodes along the table), ``_networks`` (the stack's networks and
each service's), ``_secrets`` (the stack's secrets and configs and each
service's grants), ``_parse`` (specs and checks across keys), ``_schema``
(JSON Schema), ``_dump`` (specs back to YAML), ``_check`` (specs from
elsewhere held to the manifest's rules).

Limits (replicas, memory, CPUs, pids, durations) are ``model.units``'; the
schema publishes them.
"""

from typing import TYPE_CHECKING

from common.lazy import lazy_exports
from model.manifest._errors import ManifestError
from model.manifest._networks import NetworkDef
from model.manifest._parse import Stack, load_manifest, load_stack, parse_manifest, parse_stack
from model.manifest._secrets import SecretDef

if TYPE_CHECKING:
    from model.manifest._check import check_specs
    from model.manifest._dump import dump_manifest
    from model.manifest._schema import json_schema

# `orch deploy` only parses: the dumper (decimal, YAML's emitter) and the
# schema load when used.
__getattr__ = lazy_exports(__name__, {"check_specs": "_check", "dump_manifest": "_dump",
                                      "json_schema": "_schema"})

__all__ = ["ManifestError", "NetworkDef", "SecretDef", "Stack", "check_specs", "dump_manifest", "json_schema",
           "load_manifest", "load_stack", "parse_manifest", "parse_stack"]

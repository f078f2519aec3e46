"""Manifests: YAML files in Compose's service syntax, parsed into ``ServiceSpec`` objects.

A manifest holds a ``services:`` mapping and, as Compose's, top-level
``networks:``, ``volumes:`` and ``name:`` (the stack's name, which its
networks' and volumes' names begin with; by default the manifest's
directory's name); ``version:`` is accepted and ignored (the only key that
is), and ``x-*`` keys, at the top level and in a service, are extensions
that can hold YAML anchors.

Compose's service keys that mean something on a Linux node are taken and
take effect (``_container``, ``_compose``): the container's own settings
(``volumes`` and ``tmpfs``, ``user``, ``working_dir``, ``hostname``,
``container_name`` for a single task, ``cap_add``/``cap_drop``,
``ulimits``, ``sysctls``, ``dns``, ``extra_hosts``, ``init``, ``tty``,
``stdin_open``, ``read_only``, ``privileged``, ``devices``, ``shm_size``,
``stop_signal``, ``logging`` to the node's rotated files, ``network_mode``
host or none), and Compose's shorthands of cluster settings: ``restart``
(the restart policy, unless ``deploy.restart_policy``), ``mem_limit``,
``mem_reservation`` and ``cpus`` (``deploy.resources``), ``platform`` (a
constraint on the nodes' ``platform.arch`` label), ``depends_on`` (the
start order of a deploy), ``profiles`` (a service is deployed only with one
of them active), ``extends`` (within the file). ``build``, ``runtime``
(the node's own) and ``expose`` are checked. What a node cannot honour is
refused with the reason: a relative bind source, ``env_file``, another
runtime or logging driver, ``network_mode: service:...``.

Each service takes ``image``, ``command``, ``entrypoint``,
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
service's grants), ``_container`` (converters of the container's keys),
``_compose`` (extends, profiles, depends_on, named volumes), ``_parse``
(specs and checks across keys), ``_schema``
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

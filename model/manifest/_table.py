"""The manifest's known keys: one table that both the parser and the JSON Schema read.

A manifest is Compose's service syntax with its ``deploy`` keys, and its
top-level ``networks``::

    name: shop
    services:
      web:
        image: busybox:1.36
        command: httpd -f -p 80 -h /www
        ports: ["8080:80"]
        networks: [front]
        deploy:
          replicas: 3
          resources: {limits: {cpus: "0.25", memory: 32M}}
          update_config: {parallelism: 2, order: start-first, failure_action: rollback}
        x-orch: {binpack: true}
    networks:
      front: {ipam: {config: [{subnet: 10.96.200.0/24}]}}

The table is a tree of ``Section`` (a mapping with a fixed set of keys),
``MapOf`` (a mapping from user-chosen names, e.g. service names) and ``Leaf``
(a value with its converter, its JSON Schema fragment and an example).

Invariants:
- a key is accepted by the parser if and only if it is in this table (plus
  ``x-*`` keys at the top level and in a service, Compose's extensions, so
  that anchors such as ``x-defaults: &defaults`` work); Compose keys orch
  cannot honour are listed with the reason (``Section.unsupported``);
- every ``Leaf.example`` is accepted by its converter and by its schema
  fragment (checked by the tests);
- ``x-orch`` is orch's extension inside a service: ``binpack: true`` makes
  the scheduler fill nodes one after another instead of spreading replicas;
  ``rebalance: false`` keeps the service's tasks where they are when a node
  joins or comes back; ``healthcheck`` holds probes the node runs itself;
- ``deploy.update_config`` and ``deploy.rollback_config`` are Compose's, with
  swarmkit's effective defaults (the model's ``UpdateConfig``): parallelism 1
  (0 = all at once), delay 0s, failure_action pause, monitor 5s (the Compose
  spec's text says 0s), max_failure_ratio 0, order stop-first; a rollback's
  failure_action cannot be ``rollback``, as in Compose and Docker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from model import secrets as secret_rules
from model import settings, units
from model.manifest import _container as c
from model.manifest import _secrets as grants
from model.manifest import _values as v
from model.manifest._yaml import Node

__all__ = ["TOP", "Leaf", "MapOf", "Section", "Shape"]


@dataclass(frozen=True)
class Leaf:
    convert: Callable[[Node], Any]
    schema: dict[str, Any]
    description: str
    example: Any  # a value as YAML would load it


@dataclass(frozen=True)
class Section:
    keys: Mapping[str, Shape]
    description: str
    required: tuple[str, ...] = ()
    # Compose keys orch does not take, with what to do instead.
    unsupported: Mapping[str, str] = field(default_factory=dict)
    extensions: bool = False  # "x-*" keys allowed and ignored


@dataclass(frozen=True)
class MapOf:
    value: Section
    name_pattern: str
    check_name: Callable[[str], None]
    description: str
    nullable: bool = False  # a name may map to nothing (Compose's "networks: {back:}")


Shape = Leaf | Section | MapOf

_STRING_OR_LIST = {
    "oneOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
    ]
}
_LIST_OR_MAP = {
    "oneOf": [
        {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
        {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}},
    ]
}


def _duration(maximum: float) -> dict[str, Any]:
    """A duration's schema; the string form's maximum is the parser's to check."""
    return {
        "oneOf": [
            {"type": "string", "pattern": v.DURATION_PATTERN},
            {"type": "number", "minimum": 0, "maximum": maximum},
        ]
    }


def _count(maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": 0, "maximum": maximum}


# Counts without a meaningful bound still get one that every int32 field holds.
_MAX_COUNT = 2**31 - 1
_PIDS = {"type": "integer", "minimum": -1, "maximum": units.MAX_PIDS, "not": {"const": 0}}
_MEMORY = {"oneOf": [{"type": "string", "pattern": v.MEMORY_PATTERN},
                     {"type": "integer", "minimum": 1, "maximum": units.MAX_MEMORY_BYTES}]}
_PORT_NUMBER = {
    "oneOf": [
        {"type": "integer", "minimum": 1, "maximum": 65535},
        {"type": "string", "pattern": r"^[0-9]{1,5}$"},
    ]
}
_PORT_ITEM = {
    "oneOf": [
        {"type": "string", "pattern": v.PORT_PATTERN, "description": 'short form "PUBLISHED:TARGET[/udp]"'},
        {
            "type": "object",
            "properties": {
                "published": _PORT_NUMBER,
                "target": _PORT_NUMBER,
                "protocol": {"enum": ["tcp", "udp"]},
                "mode": {"enum": ["ingress", "host"],
                         "description": "ingress (default): every node answers, the routing mesh "
                                        "reaches a replica anywhere; host: only the nodes running a task"},
            },
            "required": ["published", "target"],
            "additionalProperties": False,
        },
    ]
}
_ALIASES = {"type": "array", "items": {"type": "string", "pattern": v.ALIAS_PATTERN}}
_SERVICE_NETWORKS = {
    "oneOf": [
        {"type": "array", "items": {"type": "string", "pattern": v.NETWORK_KEY_PATTERN}},
        {
            "type": "object",
            "propertyNames": {"pattern": v.NETWORK_KEY_PATTERN},
            "additionalProperties": {
                "oneOf": [
                    {"type": "null"},
                    {"type": "object", "properties": {"aliases": _ALIASES}, "additionalProperties": False},
                ]
            },
        },
    ]
}
_IPAM_CONFIG = {
    "type": "array",
    "minItems": 1,
    "maxItems": 1,
    "items": {
        "type": "object",
        "properties": {"subnet": {"type": "string", "pattern": v.SUBNET_PATTERN}},
        "required": ["subnet"],
        "additionalProperties": False,
    },
}
_OWNER_ID = {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 2**32 - 2},
                      {"type": "string", "pattern": r"^[0-9]+$"}]}


def _grant_schema(kind: str) -> dict[str, Any]:
    """A service's ``secrets``/``configs``: names, or mappings with a source."""
    return {"type": "array", "items": {"oneOf": [
        {"type": "string", "pattern": secret_rules.SECRET_KEY_PATTERN},
        {"type": "object",
         "properties": {
             "source": {"type": "string", "pattern": secret_rules.SECRET_KEY_PATTERN,
                        "description": f"The {kind}'s name under the top-level '{kind}s:'."},
             "target": {"type": "string", "minLength": 1,
                        "description": "The file in the container: " + (
                            "a name under /run/secrets, or an absolute path (default: the source)."
                            if kind == "secret" else "an absolute path (default: /SOURCE).")},
             "uid": _OWNER_ID, "gid": _OWNER_ID,
             "mode": {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 0o777},
                                {"type": "string", "pattern": r"^0[oO]?[0-7]{1,3}$"}],
                      "description": "Permission bits, octal (default 0444)."},
         },
         "required": ["source"], "additionalProperties": False},
    ]}}


def _definition_schema(kind: str) -> dict[str, Any]:
    """The top-level ``secrets``/``configs``: each one value's source."""
    sources: dict[str, Any] = {
        "file": {"type": "string", "minLength": 1,
                 "description": "A file on the deploying machine, relative to the manifest."},
        "environment": {"type": "string", "minLength": 1,
                        "description": "A variable of the deploying shell."},
    }
    if kind == "config":
        sources["content"] = {"type": "string", "description": "The value itself."}
    return {"type": "object", "propertyNames": {"pattern": secret_rules.SECRET_KEY_PATTERN},
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "properties": {**sources,
                               "external": {"type": "boolean", "description": f"Made already (orch {kind} "
                                                                             "create); takes only name."},
                               "name": {"type": "string", "pattern": secret_rules.SECRET_NAME_PATTERN,
                                        "description": f"The {kind}'s name in the cluster (default: "
                                                       "STACK_KEY)."},
                               "labels": _LIST_OR_MAP},
                "additionalProperties": False}}


_PREFERENCE_ITEM = {
    "type": "object",
    "properties": {"spread": {"type": "string", "pattern": v.SPREAD_PATTERN}},
    "required": ["spread"],
    "additionalProperties": False,
}


_PIDS_HELP = (f"Processes a task may have at once: 1 to {units.MAX_PIDS}, or -1 for unlimited; "
              f"left out, the node's default ({units.DEFAULT_PIDS_LIMIT} unless the node sets another).")


def _quantities(description: str, pids: bool) -> Section:
    keys: dict[str, Shape] = {
        "cpus": Leaf(v.cpus, {"oneOf": [{"type": "string", "pattern": v.CPUS_PATTERN},
                                        {"type": "number", "minimum": units.MIN_CPUS,
                                         "maximum": units.MAX_CPUS}]},
                     f'CPUs from {units.MIN_CPUS:g} to {units.MAX_CPUS:g}: Compose style ("0.5", 2) '
                     'or Kubernetes millicores ("500m").', "500m"),
        "memory": Leaf(v.memory, _MEMORY,
                       'Bytes, or with a binary unit: Compose ("64M", "1g") or Kubernetes ("256Mi"); '
                       "at most 4096Pi (2^62 bytes).", "64Mi"),
    }
    if pids:  # Compose has pids under limits only
        keys["pids"] = Leaf(v.pids_limit, _PIDS, _PIDS_HELP + " Same as the service's pids_limit.", 100)
    return Section(keys, description)


_RESTART = Section(
    {
        "condition": Leaf(v.choice(("none", "on-failure", "any")), {"enum": ["none", "on-failure", "any"]},
                          "When a finished task is replaced (default any).", "on-failure"),
        "delay": Leaf(v.duration(units.MAX_RESTART_POLICY_DELAY), _duration(units.MAX_RESTART_POLICY_DELAY),
                      "Wait before a replacement starts (default 5s; at most "
                      f"{units.format_seconds(units.MAX_RESTART_POLICY_DELAY)}).", "5s"),
        "max_attempts": Leaf(v.count(_MAX_COUNT), _count(_MAX_COUNT),
                             "Replacements per slot; 0 = unlimited.", 3),
        "window": Leaf(v.duration(units.MAX_RESTART_POLICY_WINDOW),
                       _duration(units.MAX_RESTART_POLICY_WINDOW),
                       "How long a task must run to count as started (at most "
                       f"{units.format_seconds(units.MAX_RESTART_POLICY_WINDOW)}).", "1m30s"),
    },
    "What happens when a task exits.",
)

# Docker bounds neither delay nor monitor; a day is beyond any sensible wait,
# and a bound keeps a stray value (milliseconds written as seconds) from
# parking a rollout for weeks.
_MAX_UPDATE_DURATION = 24 * 3600.0


def _update(rollback: bool) -> Section:
    """``update_config``, or ``rollback_config`` (whose failure cannot roll back again)."""
    what = "rollback" if rollback else "update"
    actions = ("pause", "continue") if rollback else ("pause", "continue", "rollback")
    action_help = ("What a failed task does to the rollback: pause (default) or continue (as in Compose "
                   "and Docker, a rollback cannot roll back)." if rollback else
                   "What a failed task does to the update: pause (default), continue, or rollback (to the "
                   "previous spec, with rollback_config).")
    return Section(
        {
            "parallelism": Leaf(v.count(_MAX_COUNT), _count(_MAX_COUNT),
                                "Tasks replaced at once; 0 = all at once (default 1).", 2),
            "delay": Leaf(v.duration(_MAX_UPDATE_DURATION), _duration(_MAX_UPDATE_DURATION),
                          "Wait after tasks count as updated before the next ones are replaced (default "
                          f"0s; at most {units.format_seconds(_MAX_UPDATE_DURATION)}).", "10s"),
            "failure_action": Leaf(v.rollback_failure_action if rollback else v.choice(actions),
                                   {"enum": list(actions)}, action_help, "pause" if rollback else "rollback"),
            "monitor": Leaf(v.duration(_MAX_UPDATE_DURATION), _duration(_MAX_UPDATE_DURATION),
                            "How long a new task must run, and pass its health check, to count as "
                            "updated; a failure within it counts against max_failure_ratio (default 5s, "
                            "as swarmkit and Docker have it; the Compose spec's text says 0s; at most "
                            f"{units.format_seconds(_MAX_UPDATE_DURATION)}).", "30s"),
            "max_failure_ratio": Leaf(v.ratio, {"type": "number", "minimum": 0, "maximum": 1},
                                      "Failed tasks tolerated, as a fraction (0 to 1) of the tasks the "
                                      f"{what} replaces, before failure_action applies (default 0).", 0.1),
            "order": Leaf(v.choice(("stop-first", "start-first")), {"enum": ["stop-first", "start-first"]},
                          "stop-first (default): an old task stops before its replacement starts; "
                          "start-first: the replacement starts first and both run for a while.",
                          "start-first"),
        },
        f"How a {'rollback to the previous spec' if rollback else 'changed spec'} rolls out over the "
        "service's tasks (Compose's keys, with swarmkit's defaults: one task at a time, monitored 5s, "
        "stop-first, pause on failure).",
    )


_PLACEMENT = Section(
    {
        "constraints": Leaf(v.constraints, {"type": "array", "items": {"type": "string",
                                                                       "pattern": v.CONSTRAINT_PATTERN}},
                            "Hard rules: node.labels.KEY==V, node.labels.KEY!=V, node.name==N, node.id==I, "
                            "node.hostname==N.", ["node.labels.zone==a"]),
        "preferences": Leaf(v.preferences, {"type": "array", "items": _PREFERENCE_ITEM},
                            "Spread replicas evenly over the values of a node label.",
                            [{"spread": "node.labels.zone"}]),
        "max_replicas_per_node": Leaf(v.count(units.MAX_REPLICAS), _count(units.MAX_REPLICAS),
                                      "At most this many tasks of the service per node; 0 = no limit.", 1),
    },
    "Which nodes may run the tasks.",
)

_DEPLOY = Section(
    {
        "mode": Leaf(v.choice(("replicated", "global")), {"enum": ["replicated", "global"]},
                     "replicated (a number of tasks) or global (one task per node).", "replicated"),
        "replicas": Leaf(v.count(units.MAX_REPLICAS, " replicas per service (orch's limit)"),
                         _count(units.MAX_REPLICAS),
                         f"Number of tasks (replicated mode; default 1; at most {units.MAX_REPLICAS}).", 2),
        "resources": Section(
            {
                "limits": _quantities("Most a task may use (cgroup limits).", pids=True),
                "reservations": _quantities("What the scheduler sets aside on a node for each task.",
                                            pids=False),
            },
            "CPU, memory and process limits, and CPU and memory reservations.",
        ),
        "placement": _PLACEMENT,
        "restart_policy": _RESTART,
        "update_config": _update(rollback=False),
        "rollback_config": _update(rollback=True),
        "endpoint_mode": Leaf(v.choice(("vip", "dnsrr")), {"enum": ["vip", "dnsrr"]},
                              "vip (default): one virtual IP per network, spread over the tasks; dnsrr: "
                              "no VIP, DNS answers the tasks' addresses.", "vip"),
    },
    "How the service runs on the cluster.",
    unsupported={
        "labels": "put labels under the service's 'labels'",
    },
)

_MAX_HEALTH_DURATION = 24 * 3600.0

_HEALTHCHECK = Section(
    {
        "test": Leaf(v.health_test, _STRING_OR_LIST,
                     "The check: a string (run by the container's shell), or [CMD, arg...], "
                     "[CMD-SHELL, line] or [NONE]; exit 0 is healthy. Left out: the image's HEALTHCHECK.",
                     ["CMD", "wget", "-qO-", "http://127.0.0.1/"]),
        "interval": Leaf(v.duration(_MAX_HEALTH_DURATION), _duration(_MAX_HEALTH_DURATION),
                         "Time between checks (default 30s).", "10s"),
        "timeout": Leaf(v.duration(_MAX_HEALTH_DURATION), _duration(_MAX_HEALTH_DURATION),
                        "A check running longer fails (default 30s).", "3s"),
        "retries": Leaf(v.count(1000), _count(1000),
                        "Consecutive failures that make the task unhealthy (default 3).", 3),
        "start_period": Leaf(v.duration(_MAX_HEALTH_DURATION), _duration(_MAX_HEALTH_DURATION),
                             "Time after the start during which failures do not count (default 0s).",
                             "30s"),
        "start_interval": Leaf(v.duration(_MAX_HEALTH_DURATION), _duration(_MAX_HEALTH_DURATION),
                               "Time between checks during the start period (default 5s).", "1s"),
        "disable": Leaf(v.boolean, {"type": "boolean"}, "No check, not even the image's.", True),
    },
    "The task's health check (Compose's healthcheck; Docker's defaults). Unhealthy tasks are "
    "replaced, and VIPs and DNS send only to healthy ones.",
)

_X_ORCH_HEALTH = Section(
    {
        "http": Section(
            {
                "port": Leaf(v.port_number, {"type": "integer", "minimum": 1, "maximum": 65535},
                             "The container's port.", 8080),
                "path": Leaf(v.http_path, {"type": "string", "pattern": "^/"}, "Path to GET (default /).",
                             "/healthz"),
                "status": Leaf(v.http_status, {"type": "integer", "minimum": 100, "maximum": 599},
                               "The status that means healthy (default: any of 200-399).", 200),
            },
            "An HTTP GET from the node to the task's address, as Kubernetes' httpGet probe.",
            required=("port",),
        ),
        "tcp": Section(
            {"port": Leaf(v.port_number, {"type": "integer", "minimum": 1, "maximum": 65535},
                          "The container's port.", 6379)},
            "A TCP connection from the node to the task's address, as Kubernetes' tcpSocket probe.",
            required=("port",),
        ),
    },
    "A probe the node runs itself (nothing is exec'd in the container), in place of healthcheck.test; "
    "healthcheck's interval, timeout, retries and periods apply.",
)

_X_ORCH = Section(
    {
        "binpack": Leaf(v.boolean, {"type": "boolean"},
                        "Fill nodes one after another instead of spreading replicas (default false).", True),
        "healthcheck": _X_ORCH_HEALTH,
        "devices": Leaf(v.boolean, {"type": "boolean"},
                        "true: the service's devices: are allowed (refused by default: a task may run on "
                        "any node, and a node's devices are its own; constrain it to the nodes that have "
                        "them).", True),
        "rebalance": Leaf(v.boolean, {"type": "boolean"},
                          "Move tasks to a node that joins or comes back when the service's spread is "
                          "uneven, through the rolling update's machinery (default true; false opts out).",
                          False),
    },
    "orch's own settings.",
)

_STRINGS = {"type": "array", "items": {"type": "string"}}
_STRING_OR_STRINGS = {"oneOf": [{"type": "string"}, _STRINGS]}
_ABS_PATH = {"type": "string", "pattern": "^/"}
_MOUNT_ITEM = {
    "oneOf": [
        {"type": "string", "description": "[SOURCE:]TARGET[:ro|rw|nocopy]: a volume of the manifest, an "
                                          "absolute path on the node, or (TARGET alone) an anonymous volume"},
        {"type": "object",
         "properties": {
             "type": {"enum": ["volume", "bind", "tmpfs"]},
             "source": {"type": "string"},
             "target": _ABS_PATH,
             "read_only": {"type": "boolean"},
             "volume": {"type": "object", "properties": {"nocopy": {"type": "boolean"}},
                        "additionalProperties": False},
             "tmpfs": {"type": "object", "properties": {"size": _MEMORY,
                                                        "mode": {"type": ["integer", "string"]}},
                       "additionalProperties": False},
         },
         "required": ["type", "target"], "additionalProperties": False},
    ]
}
_ULIMIT = {"oneOf": [{"type": "integer", "minimum": -1},
                     {"type": "object", "properties": {"soft": {"type": "integer", "minimum": -1},
                                                       "hard": {"type": "integer", "minimum": -1}},
                      "required": ["soft", "hard"], "additionalProperties": False}]}
_DEPENDS_ON = {
    "oneOf": [
        {"type": "array", "items": {"type": "string", "pattern": v.SERVICE_NAME_PATTERN}},
        {"type": "object", "propertyNames": {"pattern": v.SERVICE_NAME_PATTERN},
         "additionalProperties": {
             "type": "object",
             "properties": {"condition": {"enum": ["service_started", "service_healthy",
                                                   "service_completed_successfully"]},
                            "required": {"type": "boolean"}, "restart": {"const": False}},
             "additionalProperties": False}},
    ]
}

_LOGGING = Section(
    {
        "driver": Leaf(c.logging_driver, {"enum": list(c.LOG_DRIVERS)},
                       "json-file or local: the node keeps the task's output in rotated files (orch logs).",
                       "json-file"),
        "options": Leaf(c.log_options, {"type": "object", "properties": {
            "max-size": _MEMORY, "max-file": {"type": ["integer", "string"], "pattern": "^[0-9]+$"}},
            "additionalProperties": False},
            "max-size: bytes per file before it rotates; max-file: files kept (default: the node's).",
            {"max-size": "10m", "max-file": "3"}),
    },
    "Where the task's output goes: the node's log files, rotated.",
)

# Compose's keys for the container itself, as `orch run` takes them.
_CONTAINER_KEYS: dict[str, Shape] = {
    "container_name": Leaf(c.container_name,
                           {"type": "string", "pattern": settings.CONTAINER_NAME_PATTERN},
                           "The container's name on its node, in place of the task's (a single task only: "
                           "replicas 1, not global).", "db"),
    "hostname": Leaf(c.hostname, {"type": "string"}, "The container's hostname (default: the task's name).",
                     "db"),
    "user": Leaf(c.user, {"type": ["string", "integer"]}, "USER[:GROUP] the command runs as (default: the "
                                                          "image's).", "1000:1000"),
    "working_dir": Leaf(c.abs_path("the command's directory"), _ABS_PATH,
                        "The command's directory (default: the image's).", "/app"),
    "stop_signal": Leaf(c.stop_signal, {"type": ["string", "integer"]},
                        "The signal that stops the task (default: the image's, else SIGTERM).", "SIGQUIT"),
    "read_only": Leaf(v.boolean, {"type": "boolean"}, "A read-only root filesystem.", True),
    "init": Leaf(v.boolean, {"type": "boolean"}, "A small init as PID 1: reaps zombies, forwards signals.",
                 True),
    "tty": Leaf(v.boolean, {"type": "boolean"}, "A terminal as the command's stdio.", True),
    "stdin_open": Leaf(v.boolean, {"type": "boolean"}, "Keep the command's stdin open.", True),
    "privileged": Leaf(v.boolean, {"type": "boolean"}, "Every capability and device of the node.", True),
    "cap_add": Leaf(c.capabilities, _STRINGS, "Capabilities added to the default set.", ["NET_ADMIN"]),
    "cap_drop": Leaf(c.capabilities, _STRINGS, "Capabilities taken away (ALL: every one).", ["ALL"]),
    "devices": Leaf(c.devices, _STRINGS, "Devices of the node: HOST[:CONTAINER][:rwm].", ["/dev/fuse"]),
    "sysctls": Leaf(c.sysctls, _LIST_OR_MAP, "Namespaced kernel settings (net.*, kernel.shm*, ...).",
                    {"net.core.somaxconn": 1024}),
    "ulimits": Leaf(c.ulimits, {"type": "object", "additionalProperties": _ULIMIT},
                    "Resource limits: a number (soft = hard) or {soft, hard}; -1 = unlimited.",
                    {"nofile": {"soft": 20000, "hard": 40000}, "nproc": 65535}),
    "dns": Leaf(c.dns, _STRING_OR_STRINGS, "Nameservers of the container (default: the node's, and "
                                           "orch's for service names).", ["1.1.1.1"]),
    "extra_hosts": Leaf(c.extra_hosts, _LIST_OR_MAP,
                        "More lines of /etc/hosts: NAME:ADDRESS or NAME=ADDRESS.", ["db.local:10.0.0.5"]),
    "shm_size": Leaf(v.memory, _MEMORY, "Size of /dev/shm (default 64 MiB).", "256m"),
    "volumes": Leaf(c.volumes, {"type": "array", "items": _MOUNT_ITEM},
                    "Mounts: named volumes of the manifest (the node's own, STACK_KEY), absolute paths on "
                    "the "
                    "node, anonymous volumes, tmpfs.", ["data:/var/lib/data", "/srv/www:/www:ro"]),
    "tmpfs": Leaf(c.tmpfs, _STRING_OR_STRINGS, "tmpfs mounts: PATH[:size=N,mode=M].", ["/run:size=64m"]),
    "logging": _LOGGING,
}

# Compose's shorthands for settings that have a place elsewhere.
_COMPOSE_KEYS: dict[str, Shape] = {
    "restart": Leaf(c.restart, {"oneOf": [{"type": "string",
                                           "pattern": "^(no|always|unless-stopped|on-failure(:[0-9]+)?)$"},
                                          {"const": False}]},
                    "The restart policy (unless deploy.restart_policy is given): no, always, unless-stopped "
                    "(any exit) or on-failure[:N].", "unless-stopped"),
    "depends_on": Leaf(c.dependencies, _DEPENDS_ON,
                       "Services whose tasks must have started (or be healthy, or have completed) before "
                       "this one's start, on its first deploy.", {"db": {"condition": "service_healthy"}}),
    "platform": Leaf(c.platform, {"type": "string", "pattern": "^linux(/[a-z0-9_-]+(/v[0-9]+)?)?$"},
                     "The nodes' platform: linux/ARCH[/VARIANT], a constraint node.platform.arch==ARCH.",
                     "linux/amd64"),
    "runtime": Leaf(c.runtime, {"enum": list(c.RUNTIMES)}, "The node's own runtime (the only one).", "runc"),
    "mem_limit": Leaf(v.memory, _MEMORY, "Same as deploy.resources.limits.memory.", "512m"),
    "mem_reservation": Leaf(v.memory, _MEMORY, "Same as deploy.resources.reservations.memory.", "128m"),
    "cpus": Leaf(v.cpus, {"oneOf": [{"type": "string", "pattern": v.CPUS_PATTERN}, {"type": "number"}]},
                 "Same as deploy.resources.limits.cpus.", 0.5),
    "expose": Leaf(c.expose, {"type": "array", "items": {"type": ["string", "integer"]}},
                   "Ports the service answers on for its neighbours (checked; every port of a task is "
                   "reachable on its networks).", ["3000"]),
    "profiles": Leaf(c.profiles, {"type": "array", "items": {"type": "string", "pattern": c.PROFILE_PATTERN}},
                     "Deploy the service only with one of these profiles active (--profile).", ["debug"]),
    "build": Leaf(c.build, {"oneOf": [{"type": "string"}, {"type": "object"}]},
                  "How to build the image (orch deploy --build); without --build, image is used.",
                  {"context": "."}),
    "extends": Leaf(c.extends, {"oneOf": [{"type": "string"}, {"type": "object", "properties": {
        "service": {"type": "string"}}, "required": ["service"], "additionalProperties": False}]},
                    "Take the keys of another service of this file that this one does not set.",
                    {"service": "base"}),
}

_SERVICE = Section(
    {
        "image": Leaf(v.image, {"type": "string", "minLength": 1, "pattern": r"^\S+$"},
                      "Image reference: a local image (busybox:1.36) or a registry's "
                      "(127.0.0.1:5000/site:1).", "busybox:1.36"),
        "command": Leaf(v.command, _STRING_OR_LIST,
                        "Arguments replacing the image's CMD: a list, or a string split like a shell would; "
                        "not empty.", "sleep 3600"),
        "entrypoint": Leaf(v.argv, _STRING_OR_LIST,
                           "Replaces the image's ENTRYPOINT; [] clears it.", ["/bin/sh", "-c"]),
        "env_file": Leaf(v.env_files, {"oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "items": {"oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "object", "required": ["path"], "additionalProperties": False,
                 "properties": {"path": {"type": "string", "minLength": 1},
                                "required": {"type": "boolean"}}}]}}]},
            "Files of NAME=value lines next to the manifest, read by `orch deploy` on the deploying "
            "machine (Compose's format); 'environment' wins over them.",
            [{"path": "app.env", "required": False}]),
        "environment": Leaf(v.environment, _LIST_OR_MAP,
                            "Variables: a list of NAME=value or a mapping.", {"MODE": "production"}),
        "ports": Leaf(v.ports, {"type": "array", "items": _PORT_ITEM},
                      'Published ports: "8080:80", "5353:53/udp" or {published, target, protocol, mode}; '
                      "ingress (the default) answers on every node.",
                      ["8080:80", {"published": 5353, "target": 53, "protocol": "udp", "mode": "host"}]),
        "networks": Leaf(v.service_networks, _SERVICE_NETWORKS,
                         "Networks of the manifest the service joins, in order: a list of names or a "
                         "mapping with aliases; left out, the stack's default network.",
                         {"svc": {"aliases": ["api"]}}),
        "network_mode": Leaf(c.network_mode, {"enum": ["bridge", "host", "none"]},
                             "bridge: no cluster network, only the node's bridge; host: the node's network; "
                             "none: no network (not with networks).", "bridge"),
        "labels": Leaf(v.labels, _LIST_OR_MAP,
                       f"Labels: a list of key=value or a mapping; keys under {v.RESERVED_LABEL_PREFIX!r} "
                       "are orch's.", ["com.example.tier=front"]),
        "stop_grace_period": Leaf(v.duration(units.MAX_STOP_GRACE_PERIOD),
                                  _duration(units.MAX_STOP_GRACE_PERIOD),
                                  "Time between the stop signal and SIGKILL (default 10s; at most "
                                  f"{units.format_seconds(units.MAX_STOP_GRACE_PERIOD)}).", "30s"),
        "pids_limit": Leaf(v.pids_limit, _PIDS, _PIDS_HELP + " Same as deploy.resources.limits.pids.", 100),
        "storage_opt": Section(
            {"size": Leaf(v.memory, _MEMORY, "Most the task's writable layer may hold, e.g. 1G.", "1G")},
            "Options of the task's writable layer (Compose's storage_opt).",
        ),
        "healthcheck": _HEALTHCHECK,
        "secrets": Leaf(grants.grants("secret"), _grant_schema("secret"),
                        "Secrets of the manifest in each task's container, read-only on a tmpfs: names "
                        "(/run/secrets/NAME) or {source, target, uid, gid, mode}; a changed value rolls "
                        "the tasks.", ["db_password", {"source": "api_key", "target": "api.key",
                                                       "uid": "103", "gid": "103", "mode": 0o440}]),
        "configs": Leaf(grants.grants("config"), _grant_schema("config"),
                        "Configs of the manifest in each task's container, read-only: names (/NAME) or "
                        "{source, target, uid, gid, mode}; a changed value rolls the tasks.",
                        [{"source": "app_config", "target": "/etc/app.conf", "mode": 0o444}]),
        "deploy": _DEPLOY,
        "x-orch": _X_ORCH,
        **_CONTAINER_KEYS,
        **_COMPOSE_KEYS,
    },
    "One service: a container image run as a number of tasks.",
    unsupported={
        "links": "services reach each other by name on their networks",
        "external_links": "services reach each other by name on their networks",
        "pid": "a task cannot share the node's or another container's process namespace",
        "ipc": "a task cannot share the node's or another container's IPC namespace",
        "userns_mode": "tasks run in the node's user namespace",
        "security_opt": "tasks run with the node's seccomp profile; use cap_add/cap_drop",
        "cgroup_parent": "the node places each task's cgroup",
        "mac_address": "the control plane gives every task its address",
        "domainname": "set a full hostname instead",
        "volumes_from": "tasks of two services may run on different nodes; share a named volume instead",
        "scale": "use deploy.replicas",
        "pull_policy": "nodes pull a registry image on demand, pinned to its digest at deploy",
        "isolation": "it has no meaning on a Linux node",
    },
    extensions=True,
)

_NETWORK = Section(
    {
        "driver": Leaf(v.choice(("overlay",)), {"enum": ["overlay"]},
                       "overlay (the only driver of a cluster network; the default).", "overlay"),
        "ipam": Section(
            {
                "driver": Leaf(v.choice(("default",)), {"enum": ["default"]}, "default (the only one).",
                               "default"),
                "config": Leaf(v.ipam_config, _IPAM_CONFIG,
                               "The network's subnet; left out, the next free /24 of the cluster's pool.",
                               [{"subnet": "10.96.200.0/24"}]),
            },
            "The network's addresses.",
        ),
        "external": Leaf(v.boolean, {"type": "boolean"},
                         "true: a network that exists in the cluster already (orch network create); the "
                         "manifest neither creates nor configures it.", True),
        "name": Leaf(v.network_name, {"type": "string", "pattern": v.NETWORK_NAME_PATTERN},
                     "The network's name in the cluster (default: STACK_KEY).", "shared"),
        "labels": Leaf(v.labels, _LIST_OR_MAP, "Labels of the network.", ["com.example.tier=back"]),
    },
    "One overlay network of the stack (nothing: the defaults).",
    unsupported={
        "driver_opts": "the overlay has no options",
        "attachable": "only services' tasks join a cluster network",
        "enable_ipv6": "networks are IPv4",
        "internal": "networks never route out of the cluster already",
    },
)

_VOLUME = Section(
    {
        "driver": Leaf(v.choice(("local",)), {"enum": ["local"]}, "local (the only driver; the default).",
                       "local"),
        "external": Leaf(v.boolean, {"type": "boolean"},
                         "true: a volume that exists on the nodes already (orch volume create); by its name, "
                         "else the key.", True),
        "name": Leaf(c.volume_name, {"type": "string", "pattern": settings.VOLUME_NAME_PATTERN},
                     "The volume's name on the nodes (default: STACK_KEY).", "pgdata"),
        "x-orch": Section(
            {"shareable": Leaf(v.boolean, {"type": "boolean"},
                               "true: the volume's directory is on storage every node reaches (NFS, a "
                               "cluster filesystem), so its tasks may run anywhere. Default false: a task "
                               "stays with the node that holds its data, and waits for it while it is "
                               "down (orch node drain --allow-data-loss NODE lets it move).", True)},
            "orch's own settings of the volume."),
    },
    "One named volume of the stack (nothing: the defaults): made on a node by its first task there; "
    "node-local, so its task stays with the node that holds the data.",
    unsupported={
        "driver_opts": "a node's volume is a directory of its own, without options",
        "labels": "a task's volume is made on its node when first used, without labels",
    },
)

TOP = Section(
    {
        "version": Leaf(v.ignored, {"type": ["string", "number"]}, "Ignored (Compose file version).", "3.8"),
        "name": Leaf(v.stack_name, {"type": "string", "pattern": v.STACK_NAME_PATTERN},
                     "The stack's name (Compose's project name), which its networks' names begin with; "
                     "default: the manifest's directory's name.", "demo"),
        "services": MapOf(_SERVICE, v.SERVICE_NAME_PATTERN, v.check_service_name,
                          "Services by name; a name is a DNS label (lower-case letters, digits, '-')."),
        "networks": MapOf(_NETWORK, v.NETWORK_KEY_PATTERN, v.check_network_key,
                          "The stack's overlay networks by name ('default': the network of the services "
                          "that name none).", nullable=True),
        "secrets": Leaf(grants.definitions("secret"), _definition_schema("secret"),
                        "The stack's secrets by name (STACK_NAME in the cluster), each from a file or a "
                        "variable of the deploying machine, or external; sealed in the cluster's store.",
                        {"db_password": {"file": "./db_password.txt"},
                         "api_key": {"external": True, "name": "shared_api_key"}}),
        "volumes": MapOf(_VOLUME, v.NETWORK_KEY_PATTERN, v.check_network_key,
                         "The stack's named volumes ('data:' with nothing: the defaults); each is the own of "
                         "the node a task runs on.", nullable=True),
        "configs": Leaf(grants.definitions("config"), _definition_schema("config"),
                        "The stack's configs by name (STACK_NAME in the cluster), each from a file, a "
                        "variable, inline content, or external.",
                        {"app_config": {"content": "level=info\n", "labels": ["tier=front"]}}),
    },
    "An orch manifest: one or more services in Compose syntax.",
    required=("services",),
    extensions=True,
)

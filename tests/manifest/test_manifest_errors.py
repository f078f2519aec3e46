"""Bad manifests: each error names the file, the line and the field path, on one line."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from model.manifest import ManifestError, load_manifest, parse_manifest

# (case id, manifest text, exact str(error)).
CASES: list[tuple[str, str, str]] = [
    (
        'unknown_key',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      replica: 3\n',
        "m.yaml:5: services.web.deploy.replica: unknown key 'replica' (did you mean 'replicas'?)",
    ),
    (
        'replicas_word',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      replicas: three\n',
        "m.yaml:5: services.web.deploy.replicas: expected a non-negative integer, got 'three'",
    ),
    (
        'replicas_negative',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      replicas: -1\n',
        'm.yaml:5: services.web.deploy.replicas: expected a non-negative integer, got -1',
    ),
    (
        'replicas_bool',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      replicas: true\n',
        'm.yaml:5: services.web.deploy.replicas: expected a non-negative integer, got true',
    ),
    (
        'global_replicas',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      mode: global\n'
        '      replicas: 2\n',
        "m.yaml:6: services.web.deploy.replicas: replicas cannot be set with mode 'global', which "
        'runs one task per node',
    ),
    (
        'cpu_res',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      resources:\n'
        "        limits: {cpus: '0.5'}\n"
        '        reservations:\n'
        '          cpus: 750m\n',
        'm.yaml:8: services.web.deploy.resources.reservations.cpus: reservation 0.75 CPUs is above '
        'the limit 0.5 CPUs (services.web.deploy.resources.limits.cpus, line 6); lower the '
        'reservation or raise the limit',
    ),
    (
        'mem_res',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      resources:\n'
        '        limits: {memory: 64M}\n'
        '        reservations: {memory: 128Mi}\n',
        'm.yaml:7: services.web.deploy.resources.reservations.memory: reservation 128MiB is above '
        'the limit 64MiB (services.web.deploy.resources.limits.memory, line 6); lower the '
        'reservation or raise the limit',
    ),
    (
        'port_range',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    ports:\n'
        "      - '8080:80'\n"
        "      - '8081:70000'\n",
        "m.yaml:6: services.web.ports[1]: port '70000' is out of range: expected 1 to 65535",
    ),
    (
        'port_dup',
        'services:\n'
        '  a:\n'
        '    image: busybox\n'
        "    ports: ['8080:80']\n"
        '  b:\n'
        '    image: busybox\n'
        '    ports:\n'
        '      - published: 8080\n'
        '        target: 81\n',
        'm.yaml:8: services.b.ports[0]: published port 8080/tcp is already used by '
        'services.a.ports[0] (line 4); each published port belongs to one service',
    ),
    (
        'constraint_op',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      placement:\n'
        '        constraints:\n'
        '          - node.labels.zone==a\n'
        '          - node.labels.zone=b\n',
        "m.yaml:8: services.web.deploy.placement.constraints[1]: constraint 'node.labels.zone=b' "
        'has no operator: expected ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE',
    ),
    (
        'constraint_role',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      placement:\n'
        '        constraints: [node.role==manager]\n',
        "m.yaml:6: services.web.deploy.placement.constraints[0]: constraint 'node.role==manager': "
        'orch nodes have no manager/worker role; label the nodes and use node.labels.KEY==VALUE',
    ),
    (
        'constraint_attr',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      placement:\n'
        '        constraints: [engine.labels.x==y]\n',
        'm.yaml:6: services.web.deploy.placement.constraints[0]: invalid constraint '
        "'engine.labels.x==y': expected node.labels.KEY, node.name, node.id, node.hostname or "
        'node.platform.os|arch, then == or !=, then a value',
    ),
    (
        'name',
        'services:\n'
        '  Web_1:\n'
        '    image: busybox\n',
        "m.yaml:2: services.Web_1: invalid service name 'Web_1': use at most 63 lower-case "
        "letters, digits and '-', starting and ending with a letter or digit (a DNS label)",
    ),
    (
        'missing_image',
        'services:\n'
        '  web:\n'
        '    command: sleep 1\n',
        "m.yaml:2: services.web: missing required key 'image'",
    ),
    (
        'syntax',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '   command: [a\n',
        "m.yaml:4: invalid YAML: expected <block end>, but found '<block mapping start>' (while "
        'parsing a block mapping at line 2)',
    ),
    (
        'syntax2',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    command: [a, b\n',
        "m.yaml:5: invalid YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow "
        'sequence at line 4)',
    ),
    (
        'tab',
        'services:\n'
        '  web:\n'
        '\timage: busybox\n',
        "m.yaml:3: invalid YAML: found character '\\t' that cannot start any token (while scanning "
        'for the next token)',
    ),
    (
        'dupkey',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    image: alpine\n',
        "m.yaml:4: services.web.image: duplicate key 'image' (first at line 3)",
    ),
    (
        'top_unknown',
        'service:\n'
        '  web:\n'
        '    image: busybox\n',
        "m.yaml:1: service: unknown key 'service' (did you mean 'services'?)",
    ),
    (
        'top_unknown2',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        'foo: 1\n',
        "m.yaml:4: foo: unknown key 'foo'; expected one of: configs, name, networks, secrets, services, "
        "version, volumes",
    ),
    (
        'volumes',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    volumes: [./data:/data]\n',
        "m.yaml:4: services.web.volumes[0]: bind source './data' is a relative path: a cluster node has no "
        "project directory; give an absolute path on the node, or use a named volume",
    ),
    (
        'memory',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      resources:\n'
        '        limits:\n'
        '          memory: 64X\n',
        "m.yaml:7: services.web.deploy.resources.limits.memory: invalid memory quantity '64X': "
        "unknown unit 'X'; expected a positive number with an optional unit (b, k, m, g, t, p, Ki, "
        'Mi, Gi, Ti, Pi), e.g. 64Mi',
    ),
    (
        'cpus',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      resources:\n'
        '        limits:\n'
        '          cpus: two\n',
        "m.yaml:7: services.web.deploy.resources.limits.cpus: invalid cpu quantity 'two': expected "
        'a number of CPUs from 0.01 to 1024, e.g. 0.5, 2 or 500m',
    ),
    (
        'duration',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      restart_policy:\n'
        '        delay: 5 sec\n',
        'm.yaml:6: services.web.deploy.restart_policy.delay: expected a duration such as 5s, '
        "1m30s, 500ms or a number of seconds, got '5 sec'",
    ),
    (
        'env_novalue',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    environment:\n'
        '      - A=1\n'
        '      - HOME\n',
        "m.yaml:6: services.web.environment[1]: no value for 'HOME': orch does not copy variables "
        'from the deploying shell; write HOME=value',
    ),
    (
        'env_null',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    environment:\n'
        '      A: 1\n'
        '      B:\n',
        "m.yaml:6: services.web.environment.B: no value for 'B': orch does not copy variables from "
        'the deploying shell; write B=value',
    ),
    (
        'command_map',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    command: {a: 1}\n',
        'm.yaml:4: services.web.command: expected a string or a list of strings, got a mapping',
    ),
    (
        'command_quote',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    command: echo "unterminated\n',
        'm.yaml:4: services.web.command: cannot split \'echo "unterminated\' into arguments: No '
        'closing quotation',
    ),
    (
        'port_key',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    ports:\n'
        '      - published: 53\n'
        '        target: 53\n'
        '        protokol: udp\n',
        "m.yaml:7: services.web.ports[0].protokol: unknown key 'protokol' (did you mean 'protocol'?)",
    ),
    (
        'port_proto',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        "    ports: ['5353:53/sctp']\n",
        "m.yaml:4: services.web.ports[0]: unknown protocol 'sctp': expected tcp or udp",
    ),
    (
        'port_nopub',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        "    ports: ['80']\n",
        'm.yaml:4: services.web.ports[0]: port \'80\' has no published port; write "PUBLISHED:80"',
    ),
    (
        'port_ip',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        "    ports: ['127.0.0.1:80:80']\n",
        "m.yaml:4: services.web.ports[0]: port '127.0.0.1:80:80': host addresses and port ranges "
        'are not supported; write "PUBLISHED:TARGET[/tcp|udp]"',
    ),
    (
        'empty',
        '# nothing\n',
        "m.yaml:1: the manifest is empty: expected a 'services:' mapping",
    ),
    (
        'no_services',
        'services: {}\n',
        'm.yaml:1: services: no services defined',
    ),
    (
        'condition',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      restart_policy:\n'
        '        condition: always\n',
        'm.yaml:6: services.web.deploy.restart_policy.condition: expected one of none, on-failure, '
        "any, got 'always'",
    ),
    (
        'binpack',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    x-orch:\n'
        '      binpack: yes please\n',
        "m.yaml:5: services.web.x-orch.binpack: expected true or false, got 'yes please'",
    ),
    (
        'x_other',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    x-orhc:\n'
        '      binpack: true\n',
        "m.yaml:4: services.web.x-orhc: unknown key 'x-orhc' (did you mean 'x-orch'?)",
    ),
    (
        'label_dup',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    labels:\n'
        '      - a=1\n'
        '      - a=2\n',
        "m.yaml:6: services.web.labels[1]: duplicate label 'a' (first at line 5)",
    ),
    (
        'multi_doc',
        'services:\n'
        '  a:\n'
        '    image: busybox\n'
        '---\n'
        'services:\n'
        '  b:\n'
        '    image: busybox\n',
        "m.yaml:4: a manifest is one YAML document; remove the '---' separator and put all "
        "services under one 'services:'",
    ),
    (
        'spread',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      placement:\n'
        '        preferences:\n'
        '          - spread: node.name\n',
        'm.yaml:7: services.web.deploy.placement.preferences[0].spread: cannot spread over '
        "'node.name': expected node.labels.KEY",
    ),
    (
        'deploy_null',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n',
        'm.yaml:4: services.web.deploy: expected a mapping, got null',
    ),
    (
        'recursive',
        'services: &s\n'
        '  web: *s\n',
        'm.yaml:1: services.web: recursive alias: an anchor refers to itself',
    ),
    (
        'image_list',
        'services:\n'
        '  web:\n'
        '    image: [busybox]\n',
        'm.yaml:3: services.web.image: expected an image reference such as busybox:1.36, got a list',
    ),
    (
        'top_list',
        '- a\n'
        '- b\n',
        'm.yaml:1: expected a mapping, got a list',
    ),
    (
        'max_rpn',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      placement:\n'
        '        max_replicas_per_node: 1.5\n',
        'm.yaml:6: services.web.deploy.placement.max_replicas_per_node: expected a non-negative '
        'integer, got 1.5',
    ),
    (
        'restart',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    restart: sometimes\n',
        "m.yaml:4: services.web.restart: expected no, always, on-failure[:N] or unless-stopped, "
        "got 'sometimes'",
    ),
    (
        'deploy_labels',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      labels: {a: b}\n',
        "m.yaml:5: services.web.deploy.labels: 'labels' is not supported by orch: put labels under "
        "the service's 'labels'",
    ),
    (
        'neg_duration',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    stop_grace_period: -5\n',
        'm.yaml:4: services.web.stop_grace_period: expected a duration such as 5s, 1m30s, 500ms or '
        'a number of seconds, got -5',
    ),
    (
        'nonkey',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    ? [a, b]\n'
        '    : c\n',
        'm.yaml:4: services.web: a mapping key must be a plain string, not a list or mapping',
    ),
    (
        'label_map_val',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    labels:\n'
        '      com.example.x: [1]\n',
        'm.yaml:5: services.web.labels["com.example.x"]: expected a string value, got a list',
    ),
    (
        'reader',
        'services:\n'
        '  web:\n'
        '    image: busy\x07box\n',
        'm.yaml:3: invalid YAML: control character #x07 is not allowed; write it as an escape in a '
        'double-quoted string',
    ),
    # ---- values that break things: each limit, with file:line ----
    (
        'replicas_beyond_the_limit',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      replicas: 1000000000000\n',
        "m.yaml:5: services.web.deploy.replicas: 1000000000000 is too large: at most 100000 replicas "
        "per service (orch's limit)",
    ),
    (
        'grace_period_overflow',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    stop_grace_period: 99999999999999h\n',
        "m.yaml:4: services.web.stop_grace_period: '99999999999999h' is too long: at most 24h",
    ),
    (
        'restart_delay_beyond_the_limit',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      restart_policy:\n'
        '        delay: 2h\n',
        "m.yaml:6: services.web.deploy.restart_policy.delay: '2h' is too long: at most 1h",
    ),
    (
        'restart_window_beyond_the_limit',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      restart_policy: {window: 86401}\n',
        'm.yaml:5: services.web.deploy.restart_policy.window: 86401 is too long: at most 24h',
    ),
    (
        'memory_beyond_the_limit',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      resources:\n'
        '        limits:\n'
        '          memory: 99999999999999999999999Ti\n',
        "m.yaml:7: services.web.deploy.resources.limits.memory: invalid memory quantity "
        "'99999999999999999999999Ti': at most 4096Pi (2^62 bytes)",
    ),
    (
        'memory_arabic_indic_digits',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      resources:\n'
        '        limits:\n'
        '          memory: \u0666\u0664Mi\n',
        "m.yaml:7: services.web.deploy.resources.limits.memory: invalid memory quantity '\u0666\u0664Mi': "
        "expected a positive number with an optional unit (b, k, m, g, t, p, Ki, Mi, Gi, Ti, Pi), e.g. 64Mi",
    ),
    (
        'memory_trailing_space',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      resources:\n'
        '        limits:\n'
        '          memory: "64Mi "\n',
        "m.yaml:7: services.web.deploy.resources.limits.memory: invalid memory quantity '64Mi ': "
        "expected a positive number with an optional unit (b, k, m, g, t, p, Ki, Mi, Gi, Ti, Pi), e.g. 64Mi",
    ),
    (
        'cpus_below_the_kernels_minimum',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      resources:\n'
        '        limits:\n'
        '          cpus: 0.0000001\n',
        "m.yaml:7: services.web.deploy.resources.limits.cpus: invalid cpu quantity '0.0000001': "
        "expected a number of CPUs from 0.01 to 1024, e.g. 0.5, 2 or 500m",
    ),
    (
        'port_empty_protocol',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    ports: ["80:80/"]\n',
        "m.yaml:4: services.web.ports[0]: port '80:80/' has an empty protocol: write tcp or udp after "
        "'/', or drop the '/'",
    ),
    (
        'port_arabic_indic_digits',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    ports: ["\u0668\u0660:80"]\n',
        "m.yaml:4: services.web.ports[0]: port '\u0668\u0660' is not a number: expected 1 to 65535",
    ),
    (
        'service_name_with_a_newline',
        'services:\n'
        '  "web\\n":\n'
        '    image: busybox\n',
        'm.yaml:2: services["web\\n"]: invalid service name \'web\\n\': use at most 63 lower-case letters, '
        "digits and '-', starting and ending with a letter or digit (a DNS label)",
    ),
    # ---- manifest checks made at deploy time, not at task start ----
    (
        'empty',
        '',
        "m.yaml:1: the manifest is empty: expected a 'services:' mapping",
    ),
    (
        'comments_and_whitespace_only',
        '# nothing here\n\n   \n',
        "m.yaml:1: the manifest is empty: expected a 'services:' mapping",
    ),
    (
        'nested_too_deep',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    labels: ' + '[' * 1000 + ']' * 1000 + '\n',
        'm.yaml:4: the manifest nests deeper than 64 levels; a manifest needs a handful',
    ),
    (
        'nested_too_deep_in_block_style',
        'x-deep:\n' + ''.join('  ' * (i + 1) + 'a:\n' for i in range(1000)),
        'm.yaml:64: the manifest nests deeper than 64 levels; a manifest needs a handful',
    ),
    (
        'number_too_long_to_convert',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      replicas: ' + '9' * 5000 + '\n',
        'm.yaml:5: services.web.deploy.replicas: the number 9999999999999999999999999999999999999999... '
        'is too long (5000 characters)',
    ),
    (
        'image_invalid_reference',
        'services:\n'
        '  web:\n'
        '    image: Busybox:latest\n',
        "m.yaml:3: services.web.image: invalid image reference 'Busybox:latest': repository name "
        "'Busybox' must be lowercase",
    ),
    (
        'image_invalid_tag',
        'services:\n'
        '  web:\n'
        '    image: busybox:-x\n',
        "m.yaml:3: services.web.image: invalid image reference 'busybox:-x': tag '-x' must be 1-128 "
        "characters of [A-Za-z0-9_.-], not starting with '.' or '-'",
    ),
    (
        'image_invalid_digest',
        'services:\n'
        '  web:\n'
        '    image: 127.0.0.1:5000/site@sha256:abc\n',
        "m.yaml:3: services.web.image: invalid image reference '127.0.0.1:5000/site@sha256:abc': digest "
        "'sha256:abc' must be sha256: and 64 lowercase hex digits",
    ),
    (
        'env_nul_in_value',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    environment:\n'
        '      - "A=b\\0c"\n',
        "m.yaml:5: services.web.environment[0]: the value of 'A' holds a NUL character, which the "
        "environment cannot carry",
    ),
    (
        'env_nul_in_name',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    environment:\n'
        '      "A\\0": b\n',
        'm.yaml:5: services.web.environment["A\\u0000"]: invalid variable name \'A\\x00\'',
    ),
    (
        'command_empty_list',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    command: []\n',
        "m.yaml:4: services.web.command: the command is empty: give the program and its arguments, or "
        "leave the key out for the image's CMD",
    ),
    (
        'command_empty_string',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    command: ""\n',
        "m.yaml:4: services.web.command: the command is empty: give the program and its arguments, or "
        "leave the key out for the image's CMD",
    ),
    (
        'command_nul',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    command: [sh, "a\\0b"]\n',
        'm.yaml:4: services.web.command[1]: an argument holds a NUL character, which no program can receive',
    ),
    (
        'label_reserved_in_a_mapping',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    labels:\n'
        '      orch.task: x\n',
        'm.yaml:5: services.web.labels["orch.task"]: label \'orch.task\' is reserved: orch sets the labels '
        "under 'orch.' on every task; choose another prefix",
    ),
    (
        'label_reserved_in_a_list',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    labels: [orch.service=y]\n',
        "m.yaml:4: services.web.labels[0]: label 'orch.service' is reserved: orch sets the labels under "
        "'orch.' on every task; choose another prefix",
    ),
    # ---- pids and storage_opt ----
    (
        'pids_limit_zero',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    pids_limit: 0\n',
        "m.yaml:4: services.web.pids_limit: invalid pids limit 0: expected a number of processes from 1 to "
        "4194304 (the kernel's maximum), -1 for unlimited; leave the key out for the node's default",
    ),
    (
        'pids_beyond_the_kernels_maximum',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      resources:\n'
        '        limits: {pids: 4194305}\n',
        "m.yaml:6: services.web.deploy.resources.limits.pids: invalid pids limit 4194305: expected a number "
        "of processes from 1 to 4194304 (the kernel's maximum), -1 for unlimited",
    ),
    (
        'pids_both_spellings_disagree',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    pids_limit: 100\n'
        '    deploy:\n'
        '      resources:\n'
        '        limits:\n'
        '          pids: 200\n',
        'm.yaml:8: services.web.deploy.resources.limits.pids: pids 200 disagrees with pids_limit 100 '
        '(line 4); set one of them',
    ),
    (
        'pids_not_a_reservation',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    deploy:\n'
        '      resources:\n'
        '        reservations: {pids: 5}\n',
        "m.yaml:6: services.web.deploy.resources.reservations.pids: unknown key 'pids'; expected one of: "
        "cpus, memory",
    ),
    (
        'storage_opt_unknown_key',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    storage_opt: {sise: 1G}\n',
        "m.yaml:4: services.web.storage_opt.sise: unknown key 'sise' (did you mean 'size'?)",
    ),
    (
        'storage_opt_beyond_the_limit',
        'services:\n'
        '  web:\n'
        '    image: busybox\n'
        '    storage_opt: {size: 5000Pi}\n',
        "m.yaml:4: services.web.storage_opt.size: invalid memory quantity '5000Pi': at most 4096Pi "
        "(2^62 bytes)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_manifest_message(text: str, expected: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "m.yaml")
    err = caught.value
    assert str(err) == expected
    assert "\n" not in str(err)
    assert err.path == "m.yaml"
    assert expected.startswith(f"m.yaml:{err.line}: ")
    if err.field:
        assert expected.startswith(f"m.yaml:{err.line}: {err.field}: {err.message}")


def test_error_attributes_and_pickling() -> None:
    text = "services:\n  web:\n    image: busybox\n    deploy:\n      replicas: three\n"
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "web.yaml")
    err = caught.value
    assert isinstance(err, ValueError)
    assert (err.path, err.line, err.field) == ("web.yaml", 5, "services.web.deploy.replicas")
    assert err.message == "expected a non-negative integer, got 'three'"
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err)


def test_load_manifest_names_the_path_as_given(tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text("services:\n  web:\n    image: busybox\n    deploy:\n      replica: 3\n")
    with pytest.raises(ManifestError, match=r"web\.yaml:5: services\.web\.deploy\.replica: unknown key"):
        load_manifest(str(manifest))


def test_load_manifest_missing_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ManifestError) as caught:
        load_manifest(missing)
    assert str(caught.value).startswith(f"{missing}: cannot read the manifest:")


def test_load_manifest_not_utf8(tmp_path: Path) -> None:
    manifest = tmp_path / "latin1.yaml"
    manifest.write_bytes(b"services:\n  web:\n    image: caf\xe9\n")
    with pytest.raises(ManifestError, match="not UTF-8"):
        load_manifest(str(manifest))


def test_first_error_in_document_order_wins() -> None:
    text = (
        "services:\n"
        "  a:\n"
        "    image: busybox\n"
        "    deploy: {replicas: -1}\n"
        "  b:\n"
        "    imag: busybox\n"
    )
    with pytest.raises(ManifestError, match=r"^m\.yaml:4: services\.a\.deploy\.replicas:"):
        parse_manifest(text, "m.yaml")

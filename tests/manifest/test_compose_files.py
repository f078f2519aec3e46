"""Compose files as projects publish them: each parses and plans on a small
cluster, or fails with the one documented reason (and parses once that is
mended the orch way)."""

from __future__ import annotations

import pytest

from controlplane.plan import plan
from model.manifest import ManifestError, parse_stack
from model.objects import Node, NodeResources, ServiceSpec
from model.wire import spec_from_pb, spec_to_pb

WORDPRESS = """\
services:
  db:
    # We use a mariadb image which supports both amd64 & arm64 architecture
    image: mariadb:10.6.4-focal
    command: '--default-authentication-plugin=mysql_native_password'
    volumes:
      - db_data:/var/lib/mysql
    restart: always
    environment:
      - MYSQL_ROOT_PASSWORD=somewordpress
      - MYSQL_DATABASE=wordpress
      - MYSQL_USER=wordpress
      - MYSQL_PASSWORD=wordpress
    expose:
      - 3306
      - 33060
  wordpress:
    image: wordpress:latest
    volumes:
      - wp_data:/var/www/html
    ports:
      - 80:80
    restart: always
    depends_on:
      - db
    environment:
      - WORDPRESS_DB_HOST=db
      - WORDPRESS_DB_USER=wordpress
      - WORDPRESS_DB_PASSWORD=wordpress
      - WORDPRESS_DB_NAME=wordpress
volumes:
  db_data:
  wp_data:
"""

NODE_REDIS = """\
version: "3.9"

x-logging: &default-logging
  driver: json-file
  options:
    max-size: "10m"
    max-file: "3"

services:
  web:
    build: .
    image: example/node-web:1.0
    init: true
    user: node
    working_dir: /home/node/app
    command: npm start
    ports:
      - "3000:3000"
    environment:
      NODE_ENV: production
      REDIS_URL: redis://redis:6379
    depends_on:
      redis:
        condition: service_healthy
    logging: *default-logging
  redis:
    image: redis:7-alpine
    command: redis-server --appendonly yes
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 5s
      timeout: 3s
      retries: 5
    volumes:
      - redis-data:/data
    logging: *default-logging
  debug:
    image: busybox:1.36
    command: sleep infinity
    profiles: [debug]

volumes:
  redis-data: {}
"""

PROMETHEUS_GRAFANA = """\
services:
  prometheus:
    image: prom/prometheus:v2.51.0
    container_name: prometheus
    command:
      - '--config.file=/etc/prometheus/prometheus.yml'
      - '--storage.tsdb.path=/prometheus'
    ports:
      - 9090:9090
    restart: unless-stopped
    volumes:
      - ./prometheus:/etc/prometheus
      - prom_data:/prometheus
  grafana:
    image: grafana/grafana:10.4.1
    container_name: grafana
    ports:
      - 3000:3000
    restart: unless-stopped
    environment:
      - GF_SECURITY_ADMIN_USER=admin
      - GF_SECURITY_ADMIN_PASSWORD=grafana
    volumes:
      - ./grafana:/etc/grafana/provisioning/datasources
volumes:
  prom_data:
"""

NEXTCLOUD = """\
services:
  db:
    image: postgres:16-alpine
    restart: always
    volumes:
      - db:/var/lib/postgresql/data:Z
    env_file:
      - db.env

  redis:
    image: redis:alpine
    restart: always

  app:
    image: nextcloud:apache
    restart: always
    ports:
      - 127.0.0.1:8080:80
    volumes:
      - nextcloud:/var/www/html:z
    environment:
      - POSTGRES_HOST=db
      - REDIS_HOST=redis
    env_file:
      - db.env
    depends_on:
      - db
      - redis

  cron:
    image: nextcloud:apache
    restart: always
    volumes:
      - nextcloud:/var/www/html:z
    entrypoint: /cron.sh
    depends_on:
      - db
      - redis

volumes:
  db:
  nextcloud:
"""

# The same, mended: the variables inline, no relabelling, the port on every node.
NEXTCLOUD_FOR_ORCH = """\
services:
  db:
    image: postgres:16-alpine
    restart: always
    volumes:
      - db:/var/lib/postgresql/data
    environment: &db-env
      POSTGRES_DB: nextcloud
      POSTGRES_USER: nextcloud
      POSTGRES_PASSWORD: nextcloud
  redis:
    image: redis:alpine
    restart: always
  app:
    image: nextcloud:apache
    restart: always
    ports:
      - 8080:80
    volumes:
      - nextcloud:/var/www/html
    environment:
      <<: *db-env
      POSTGRES_HOST: db
      REDIS_HOST: redis
    depends_on: [db, redis]
  cron:
    image: nextcloud:apache
    restart: always
    volumes:
      - nextcloud:/var/www/html
    entrypoint: /cron.sh
    depends_on: [db, redis]
volumes:
  db:
  nextcloud:
"""

TRAEFIK = """\
services:
  reverse-proxy:
    # The official v3 Traefik docker image
    image: traefik:v3.0
    # Enables the web UI and tells Traefik to listen to docker
    command: --api.insecure=true --providers.docker
    ports:
      # The HTTP port
      - "80:80"
      # The Web UI (enabled by --api.insecure=true)
      - "8080:8080"
    volumes:
      # So that Traefik can listen to the Docker events
      - /var/run/docker.sock:/var/run/docker.sock:ro
    platform: linux/amd64
  whoami:
    # A container that exposes an API to show its IP address
    image: traefik/whoami
    labels:
      - "traefik.http.routers.whoami.rule=Host(`whoami.docker.localhost`)"
    deploy:
      replicas: 2
"""

NODES = {f"n{i}": Node(id=f"n{i}", name=f"node{i}", state="ready", availability="active",
                       resources=NodeResources(cpus=4.0, memory_bytes=8 << 30),
                       labels={"platform.arch": "amd64"})
         for i in (1, 2)}


def _planned(specs: list[ServiceSpec]) -> dict[str, list[str]]:
    """Service -> the nodes its new tasks would go to ("" where none fits)."""
    return {p.name: [t.node_id for t in p.tasks] for p in plan({}, [], NODES, specs, 0.0)}


def _parse(text: str, profiles: tuple[str, ...] = ()) -> list[ServiceSpec]:
    return parse_stack(text, "compose.yaml", "site", profiles).services


def test_wordpress_and_mysql() -> None:
    db, wordpress = _parse(WORDPRESS)
    assert db.mounts[0].source == "site_db_data" and wordpress.mounts[0].source == "site_wp_data"
    assert db.restart_policy.condition == "any" and [d.service for d in wordpress.depends_on] == ["db"]
    assert all(nodes and all(nodes) for nodes in _planned([db, wordpress]).values())
    # Everything travels with the tasks: the spec reads back whole from the wire.
    assert spec_from_pb(spec_to_pb(db)) == db and spec_from_pb(spec_to_pb(wordpress)) == wordpress


def test_node_app_with_redis_and_a_debug_profile() -> None:
    web, redis = _parse(NODE_REDIS)
    assert web.image == "example/node-web:1.0" and web.init and web.user == "node"
    assert (web.log_max_size, web.log_max_files) == (10 << 20, 3)
    assert web.depends_on[0].condition == "service_healthy" and redis.healthcheck is not None
    assert [s.name for s in _parse(NODE_REDIS, ("debug",))] == ["web", "redis", "debug"]
    assert all(all(nodes) for nodes in _planned([web, redis]).values())
    without_image = NODE_REDIS.replace("    image: example/node-web:1.0\n", "")
    with pytest.raises(ManifestError, match=r"^compose\.yaml:11: services\.web\.build: the service "
        "has a build but "
                                            r"no image: deploy it with 'orch deploy --build'"):
        _parse(without_image)


def test_prometheus_and_grafana_need_absolute_paths() -> None:
    with pytest.raises(ManifestError) as caught:
        _parse(PROMETHEUS_GRAFANA)
    assert str(caught.value) == (
        "compose.yaml:12: services.prometheus.volumes[0]: bind source './prometheus' is a relative path: a "
        "cluster node has no project directory; give an absolute path on the node, or use a named volume")
    mended = PROMETHEUS_GRAFANA.replace("./", "/srv/")
    prometheus, grafana = _parse(mended)
    assert prometheus.container_name == "prometheus" and prometheus.mounts[0].source == "/srv/prometheus"
    assert all(all(nodes) for nodes in _planned([prometheus, grafana]).values())


def test_nextcloud_needs_its_variables_and_no_relabelling() -> None:
    with pytest.raises(ManifestError) as caught:
        _parse(NEXTCLOUD)
    assert str(caught.value) == (
        "compose.yaml:6: services.db.volumes[0]: volume option 'Z' is not supported by orch: its "
        "nodes do not "
        "relabel files for SELinux")
    no_labels = NEXTCLOUD.replace(":Z\n", "\n").replace(":z\n", "\n")
    without = no_labels.replace("    env_file:\n      - db.env\n", "")
    with pytest.raises(ManifestError, match=r"^compose\.yaml:\d+: services\.app\.ports\[0\]: port "
        r"'127\.0\.0\.1:8080:80': "
                                            "host addresses and port ranges are not supported"):
        _parse(without)
    db, redis, app, cron = _parse(NEXTCLOUD_FOR_ORCH)
    assert app.mounts[0].source == cron.mounts[0].source == "site_nextcloud"
    assert cron.entrypoint == ["/cron.sh"] and {d.service for d in app.depends_on} == {"db", "redis"}
    assert all(all(nodes) for nodes in _planned([db, redis, app, cron]).values())


def test_traefik_with_whoami() -> None:
    proxy, whoami = _parse(TRAEFIK)
    assert proxy.mounts[0].source == "/var/run/docker.sock" and proxy.mounts[0].read_only
    assert proxy.placement.constraints == ["node.labels.platform.arch==amd64"]
    planned = _planned([proxy, whoami])
    assert len(planned["whoami"]) == 2 and all(planned["whoami"]) and all(planned["reverse-proxy"])
    # A platform no node has: the plan says why.
    arm = _parse(TRAEFIK.replace("linux/amd64", "linux/arm64"))[0]
    (task,) = _planned([arm])["reverse-proxy"]
    assert task == ""
    reasons = [t.reason for p in plan({}, [], NODES, [arm], 0.0) for t in p.tasks]
    assert reasons == ["no suitable node (constraint node.labels.platform.arch==arm64 not met on 2 nodes; "
                       "label the nodes of that platform: orch node label NODE platform.arch=arm64)"]

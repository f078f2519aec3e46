"""A new image from a container, as `docker commit`.

The image is the container's image plus one layer: the container's writable
(overlay upper) dir as an OCI layer, written as a build's RUN layer is
(``build.layers``: its tar writer and its rules). Overlay's own records of
a change become the OCI ones: a deleted file (a 0:0 character device) is a
``.wh.NAME`` member, a directory that replaced a lower one
(``trusted.overlay.opaque=y``) is followed by its ``.wh..wh..opq``. Not
part of the layer: what the runtime puts there for its own mounts (the
generated ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf``, each
mount's target with whatever is below it, and bare mountpoint or copy-up
directories of unchanged lower ones). A read-only container, or one that
changed nothing, adds no layer, only the history entry.

The config is the image's with the container's own settings where Docker's
commit keeps them (its command and entrypoint, environment, working
directory, user, labels, published ports, stop signal), then the
``--change`` lines (Dockerfile instructions: CMD, ENTRYPOINT, ENV, EXPOSE,
LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK), plus one history
entry. A running container is not paused: its layer is read as it is while
the walk goes by.

Errors are ``common.errors`` kinds: ``InvalidArgument`` for a bad change
line or reference, ``NotFound`` for a container whose image is gone,
``FailedPrecondition`` for a stopped container whose size-limited layer
is not mounted.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import os
import posixpath
from typing import Any

from common.errors import FailedPrecondition, InvalidArgument, NotFound
from nodeagent.images.build import config as cfgmod
from nodeagent.images.build.layers import GENERATED_FILES, LowerStat, upper_to_layer
from nodeagent.images.build.rootview import merged_lowers
from nodeagent.images.layerbuild import LayerBlob
from nodeagent.images.model import LAYER_MEDIA_TYPE, UNCOMPRESSED_SIZE_ANNOTATION, Image, descriptor
from nodeagent.images.store import ImageStore, tag_ref

__all__ = ["CHANGE_INSTRUCTIONS", "apply_changes", "commit", "container_config"]

# What `--change` takes (Docker's list, with STOPSIGNAL and HEALTHCHECK).
CHANGE_INSTRUCTIONS = frozenset({"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "VOLUME",
                                 "WORKDIR", "STOPSIGNAL", "HEALTHCHECK"})


def commit(store: ImageStore, rec: dict[str, Any], state_dir: str, *, ref: str = "", message: str = "",
           author: str = "", changes: list[str] | tuple[str, ...] = ()) -> Image:
    """Store the image of container ``rec`` (the supervisor's full record),
    tagged ``ref`` if given; the stored image."""
    from nodeagent.runtime import bundle
    from nodeagent.runtime.spec import ContainerSpec

    if ref:
        tag_ref(ref)  # a bad reference fails before the layer is written
    try:
        image = store.get(rec["image_id"])
    except NotFound:
        raise NotFound(f"the image of container {rec['name']} ({rec['image']}) is gone: "
                       "it cannot be committed") from None
    doc = store.layout.read_json(image.id)
    config = apply_changes(container_config(dict(doc.get("config") or {}), rec), changes)
    spec = ContainerSpec.from_dict(rec["spec"])
    upper = "" if spec.rootfs.readonly else bundle.writable_dirs(spec)[0]
    if upper and spec.rootfs.size_bytes and not os.path.isdir(upper) and rec.get("started_at"):
        # A limited layer on a filesystem of its own is mounted only while it runs.
        raise FailedPrecondition(f"the writable layer of container {rec['name']} is not mounted while it "
                                 "is stopped: start it to commit it")
    blob = None
    if upper and os.path.isdir(upper):
        excluded = {*GENERATED_FILES, *(posixpath.normpath(str(m["target"])).strip("/")
                                        for m in rec["spec"].get("mounts") or ())}
        with merged_lowers(spec.rootfs.lower_dirs, os.path.join(state_dir, "tmp")) as lower_root:
            blob = upper_to_layer(upper, store.layout, _lower_stat(lower_root), excluded)
    layers = [dict(layer) for layer in store.manifest(image).get("layers") or ()]
    return store.add_image(ref or None, *_image(doc, config, image, layers, blob, rec, message, author))


def _image(doc: dict[str, Any], config: dict[str, Any], image: Image, layers: list[dict[str, Any]],
           blob: LayerBlob | None, rec: dict[str, Any], message: str,
           author: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The new image's config document and its layers' descriptors."""
    store_layers = list(layers)
    created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    history: dict[str, Any] = {"created": created,
                               "created_by": " ".join(rec["spec"]["process"]["args"])[:200]}
    if author:
        history["author"] = author
    if message:
        history["comment"] = message
    diff_ids = list(image.diff_ids)
    if blob is None:
        history["empty_layer"] = True
    else:
        diff_ids.append(blob.diff_id)
        store_layers.append(descriptor(LAYER_MEDIA_TYPE, blob.digest, blob.size,
                                       **{UNCOMPRESSED_SIZE_ANNOTATION: str(blob.uncompressed_size)}))
    new = {
        "created": created,
        **({"author": author} if author else {}),
        "architecture": doc.get("architecture") or "amd64",
        "os": doc.get("os") or "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [*(doc.get("history") or []), history],
    }
    return new, store_layers


# -- the config ----------------------------------------------------------------------------


def container_config(image_config: dict[str, Any], rec: dict[str, Any]) -> dict[str, Any]:
    """The image's config with what the container was run with (the request
    as sent, ``rec["config"]``, and its runtime spec)."""
    cfg = copy.deepcopy(image_config)
    request = rec.get("config") or {}
    spec = rec["spec"]
    if "entrypoint" in request:
        cfg = cfgmod.set_field(cfg, "Entrypoint", list(request["entrypoint"].get("values") or []))
        if "command" not in request:
            cfg.pop("Cmd", None)  # as at run: a new entrypoint drops the image's Cmd
    if "command" in request:
        cfg = cfgmod.set_field(cfg, "Cmd", list(request["command"].get("values") or []))
    cfg["Env"] = list(spec["process"]["env"])
    if "workdir" in request:
        cfg = cfgmod.set_field(cfg, "WorkingDir", spec["process"]["cwd"])
    if "user" in request:
        cfg = cfgmod.set_field(cfg, "User", spec["process"]["user"])
    if spec.get("labels"):
        cfg = cfgmod.merge_dict(cfg, "Labels", dict(spec["labels"]))
    ports: dict[str, Any] = {f"{p['container_port']}/{p.get('protocol') or 'tcp'}": {}
                             for p in (spec.get("network") or {}).get("ports") or ()}
    if ports:
        cfg = cfgmod.merge_dict(cfg, "ExposedPorts", ports)
    if request.get("stopSignal"):
        cfg = cfgmod.set_field(cfg, "StopSignal", request["stopSignal"])
    return cfg


def apply_changes(config: dict[str, Any], changes: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``config`` with each ``--change`` line applied in order, as the same
    instruction in a Containerfile would (variables from the config's Env)."""
    from nodeagent.images.build.errors import BuildError
    from nodeagent.images.build.parser import parse
    from nodeagent.images.build.shellwords import WordError

    cmd_set = False
    for line in changes:
        try:
            stages = parse(f"FROM scratch\n{line}", "--change")
        except BuildError as err:
            raise InvalidArgument(f"invalid --change {line!r}: {err.message[len(err.where) + 2:]}") from None
        for ins in stages[0].instructions:
            if ins.cmd not in CHANGE_INSTRUCTIONS:
                raise InvalidArgument(f"invalid --change {line!r}: {ins.cmd} cannot be changed by a commit "
                                      f"(only {', '.join(sorted(CHANGE_INSTRUCTIONS))})")
            try:
                config = _change(config, ins.cmd, ins.args, ins.json_form, ins.flags, cmd_set)
            except (WordError, ValueError) as err:
                raise InvalidArgument(f"invalid --change {line!r}: {err}") from None
            cmd_set = cmd_set or ins.cmd == "CMD"
    return config


def _change(c: dict[str, Any], cmd: str, args: list[str], json_form: bool, flags: dict[str, str],
            cmd_set: bool) -> dict[str, Any]:
    from nodeagent.images.build.shellwords import word, words

    env = cfgmod.env_map(c)
    text = args[0]
    if cmd == "CMD":
        return cfgmod.set_field(c, "Cmd", cfgmod.command(c, args, json_form))
    if cmd == "ENTRYPOINT":
        new = cfgmod.set_field(c, "Entrypoint", cfgmod.command(c, args, json_form))
        return new if cmd_set else cfgmod.set_field(new, "Cmd", None)
    if cmd == "ENV":
        return cfgmod.set_env(c, _pairs(text, env, "ENV"))
    if cmd == "LABEL":
        return cfgmod.merge_dict(c, "Labels", dict(_pairs(text, env, "LABEL")))
    if cmd == "USER":
        return cfgmod.set_field(c, "User", word(text, env))
    if cmd == "WORKDIR":
        return cfgmod.set_workdir(c, word(text, env))
    if cmd == "STOPSIGNAL":
        return cfgmod.set_field(c, "StopSignal", word(text, env))
    if cmd == "EXPOSE":
        return cfgmod.merge_dict(c, "ExposedPorts", cfgmod.exposed(words(text, env)))
    if cmd == "VOLUME":
        return cfgmod.merge_dict(c, "Volumes", {v: {} for v in (args if json_form else words(text, env))})
    import json

    _kind, _, rest = text.partition(" ")  # HEALTHCHECK
    json_args = None
    if rest.strip().startswith("["):
        with contextlib.suppress(json.JSONDecodeError):
            json_args = json.loads(rest)
    return cfgmod.healthcheck(c, text, json_args, flags)


def _pairs(text: str, env: dict[str, str], what: str) -> list[tuple[str, str]]:
    """KEY=value pairs, or the legacy "KEY value with spaces" form."""
    from nodeagent.images.build.shellwords import word, words

    items = words(text, env)
    if items and "=" not in items[0]:
        name, _, rest = text.strip().partition(" ")
        if not rest.strip():
            raise ValueError(f"{what} {name} needs a value")
        return [(word(name, env), word(rest.strip(), env))]
    pairs = []
    for item in items:
        key, eq, value = item.partition("=")
        if not key or not eq:
            raise ValueError(f"{what} expects KEY=value, got {item!r}")
        pairs.append((key, value))
    return pairs


# -- the layer -----------------------------------------------------------------------------


def _lower_stat(root: str) -> LowerStat:
    from nodeagent.images.build.rootview import lstat_in_root

    return lambda rel: lstat_in_root(root, rel)



"""The build: run a parsed Containerfile's stages step by step, with the cache.

Each stage is a :class:`_State` (config, history, layers, the chain key) that
every instruction advances by one step. A step is looked up in the cache by
``step_key(previous key, instruction after substitution, inputs digest)``;
on a miss it is executed (RUN in a container, COPY/ADD/WORKDIR write a layer,
the rest only change the config) and recorded. Stages are built one after
the other (sequentially, in file order), and only the ones the target needs.
Only the target stage's layers go into the image.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.errors import AgentError, NotFound
from nodeagent.images.build import config as cfgmod
from nodeagent.images.build.cache import BuildCache, CacheEntry, step_key
from nodeagent.images.build.copyplan import Owner, resolve_dest, write_copy_layer
from nodeagent.images.build.errors import BuildError
from nodeagent.images.build.ignore import IgnoreRules
from nodeagent.images.build.layers import upper_to_layer
from nodeagent.images.build.parser import Instruction, Stage, parse
from nodeagent.images.build.rootview import RootView, lstat_in_root, read_regular_file, resolve_in_root
from nodeagent.images.build.runner import CGROUP_PARENT, run_step
from nodeagent.images.build.shellwords import WordError, word, words
from nodeagent.images.build.sources import Source, SourceError, digest, select
from nodeagent.images.layerbuild import LayerBlob
from nodeagent.images.model import LAYER_MEDIA_TYPE, UNCOMPRESSED_SIZE_ANNOTATION, Image, descriptor
from nodeagent.images.store import ImageStore
from nodeagent.runtime.linux import LinuxRuntime

Out = Callable[[str], None]


@dataclass
class _State:
    key: str
    config: dict[str, Any]
    history: list[dict[str, Any]]
    layers: list[dict[str, Any]]
    diff_ids: list[str]
    created: str
    args: dict[str, str] = field(default_factory=dict)
    cmd_set: bool = False

    def layer_pairs(self) -> list[tuple[str, str]]:
        return [(d, layer["digest"]) for d, layer in zip(self.diff_ids, self.layers, strict=True)]

    def subst_env(self) -> dict[str, str]:
        """Variables for substitution: ARG values, overridden by ENV (Docker's rule)."""
        return {**self.args, **cfgmod.env_map(self.config)}


def build(store: ImageStore, context: str, containerfile: str, tag: str | None,
          build_args: dict[str, str], target: str | None, no_cache: bool,
          runtime: LinuxRuntime, out: Out, *, cgroup_parent: str = CGROUP_PARENT,
          parallel: bool = True) -> Image:
    """Build ``containerfile`` (a path) with ``context``; tag the result ``tag``.

    RUN containers live in cgroups under ``cgroup_parent`` (removed with each container).
    """
    if not os.path.isdir(context):
        raise BuildError("", f"build context {context!r} is not a directory")
    text = read_containerfile(containerfile, context)
    stages = parse(text, os.path.basename(containerfile))
    builder = _Builder(store, os.path.realpath(context), stages, build_args, no_cache, runtime, out)
    builder.cgroup_parent = cgroup_parent
    if parallel and not no_cache:
        builder.prebuild_concurrently(target, containerfile)
    final = builder.run(target)
    for name in sorted(set(build_args) - builder.used_args):
        out(f"warning: build arg {name!r} was not consumed by any ARG")
    image = store.add_image(tag, _image_doc(final), final.layers)
    out(f"built {image.id}" + (f" as {tag}" if tag else ""))
    return image


MAX_CONTAINERFILE = 1 << 20  # bytes


def read_containerfile(path: str, context: str) -> str:
    """The text of the Containerfile at ``path``.

    One inside the context (the default CONTEXT/Containerfile comes with the
    context, and is as hostile) is read as the context's files are: a
    symlink leading out of it is refused, as it could show a host file's
    lines in the build's errors. One named elsewhere (``-f``) is the
    caller's choice. Either way only a regular file of at most
    ``MAX_CONTAINERFILE`` bytes of UTF-8 is read: a FIFO would block, a device
    never end."""
    host = os.path.abspath(path)
    for root in (os.path.abspath(context), os.path.realpath(context)):
        rel = os.path.relpath(host, root)
        if rel != ".." and not rel.startswith("../"):
            inside = resolve_in_root(os.path.realpath(context), rel, confine=True)
            if inside is None:
                raise BuildError(path, "the Containerfile is a symlink leading outside the build context; "
                                       "name the file it points to with -f")
            host = inside
            break
    else:
        host = os.path.realpath(host)
    try:
        data = read_regular_file(host, MAX_CONTAINERFILE)
    except OSError as e:
        raise BuildError(path, f"cannot read the Containerfile: {e.strerror or e}")
    except ValueError as e:
        raise BuildError(path, f"cannot read the Containerfile: {e}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BuildError(path, f"the Containerfile is not UTF-8 text (byte {e.start})")


def _image_doc(state: _State) -> dict[str, Any]:
    return {
        "created": state.created,
        "architecture": "amd64",
        "os": "linux",
        "config": state.config,
        "rootfs": {"type": "layers", "diff_ids": list(state.diff_ids)},
        "history": state.history,
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Builder:
    def __init__(self, store: ImageStore, context: str, stages: list[Stage], build_args: dict[str, str],
                 no_cache: bool, runtime: LinuxRuntime, out: Out) -> None:
        self.store = store
        self.context = context
        self.stages = stages
        self.build_args = build_args
        self.no_cache = no_cache
        self.runtime = runtime
        self.out = out
        self.cache_root = os.path.join(store.root, "build-cache")
        self.cache = BuildCache(self.cache_root)
        self.ignore = IgnoreRules.load(context)
        self.done: dict[int, _State] = {}
        self.used_args: set[str] = set()
        self.global_args = self._global_args()
        self.step = 0
        self.total = 0
        self.cgroup_parent = CGROUP_PARENT

    # -- stages --------------------------------------------------------------------

    def run(self, target: str | None) -> _State:
        last = self._stage_ref(target) if target is not None else self.stages[-1]
        if last is None:
            raise BuildError("", f"target stage {target!r} not found in the Containerfile")
        needed = self._needed(last)
        self.total = sum(1 + len(s.instructions) for s in needed)
        for stage in needed:
            self.done[stage.index] = self._build_stage(stage)
        return self.done[last.index]

    def prebuild_concurrently(self, target: str | None, containerfile: str) -> None:
        """Build independent stages at the same time, one process each.

        A stage that uses no other stage can build alongside its siblings.
        Each runs in its own process (this one forks RUN containers, so no
        threads here); their steps land in the shared layer cache, and the
        sequential pass that follows finds them CACHED."""
        last = self._stage_ref(target) if target is not None else self.stages[-1]
        if last is None:
            return
        leaves = [s for s in self._needed(last)[:-1] if len(self._needed(s)) == 1]
        if len(leaves) < 2:
            return
        self.out(f"building stages {', '.join(s.label for s in leaves)} concurrently")
        procs = []
        for stage in leaves:
            cmd = [sys.executable, "-m", "nodeagent.images.build", "--state-dir", self.store.root,
                   "-f", containerfile, "--target", stage.name or str(stage.index), "--sequential"]
            for key, value in self.build_args.items():
                cmd += ["--build-arg", f"{key}={value}"]
            procs.append((stage, subprocess.Popen([*cmd, self.context], stdout=subprocess.PIPE,
                                                  stderr=subprocess.STDOUT, text=True)))
        for stage, proc in procs:
            output, _ = proc.communicate()
            if proc.returncode != 0:
                lines = [ln for ln in output.splitlines() if ln.strip()]
                raise BuildError("", f"stage {stage.label}: " + (lines[-1] if lines else "failed"))

    def _global_args(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for ins in self.stages[0].global_args:
            for name, default in self._arg_pairs(ins, values):
                if name in self.build_args:
                    self.used_args.add(name)
                values[name] = self.build_args.get(name, default if default is not None else "")
        return values

    def _stage_ref(self, name: str) -> Stage | None:
        for stage in self.stages:
            if stage.name == name.lower() or str(stage.index) == name:
                return stage
        return None

    def _needed(self, stage: Stage) -> list[Stage]:
        """The target and the stages it uses (FROM or COPY --from), in file order."""
        seen: dict[int, Stage] = {}
        todo = [stage]
        while todo:
            s = todo.pop()
            if s.index in seen:
                continue
            seen[s.index] = s
            refs = [self._sub(s.base, self.global_args, s.line, s.path)]
            refs += [self._sub(i.flags["from"], self.global_args, i.line, i.path)
                     for i in s.instructions if "from" in i.flags]
            for ref in refs:
                dep = self._stage_ref(ref)
                if dep is not None and dep.index < s.index:
                    todo.append(dep)
        return [st for st in self.stages if st.index in seen]

    def _sub(self, text: str, env: dict[str, str], line: int, path: str) -> str:
        try:
            return word(text, env)
        except WordError as e:
            raise BuildError(f"{path}:{line}", str(e))

    def _build_stage(self, stage: Stage) -> _State:
        t0 = time.monotonic()
        base = self._sub(stage.base, self.global_args, stage.line, stage.path)
        self._announce(stage, f"FROM {base}" + (f" AS {stage.name}" if stage.name else ""))
        state = self._from(base, stage)
        self.out(f" ---> {time.monotonic() - t0:.3f}s {state.key[:19]}")
        for ins in stage.instructions:
            self._announce(stage, ins.original)
            t0 = time.monotonic()
            cached = self._step(state, ins)
            verdict = "CACHED" if cached else "done"
            self.out(f" ---> {verdict} {time.monotonic() - t0:.3f}s")
        return state

    def _run_output(self, text: str) -> None:
        """A RUN step's lines (many a call), each as ``  | line``."""
        self.out("  | " + text.replace("\n", "\n  | "))

    def _announce(self, stage: Stage, text: str) -> None:
        self.step += 1
        self.out(f"STEP {self.step}/{self.total} [{stage.label}] {text}")

    def _from(self, base: str, stage: Stage) -> _State:
        where = f"{stage.path}:{stage.line}"
        if base.lower() == "scratch":
            return _State(step_key("FROM", "scratch"), {}, [], [], [], "1970-01-01T00:00:00Z")
        ref = self._stage_ref(base)
        if ref is not None and ref.index < stage.index:
            prev = self.done[ref.index]
            return _State(prev.key, copy.deepcopy(prev.config), copy.deepcopy(prev.history),
                          list(prev.layers), list(prev.diff_ids), prev.created)
        try:
            image = self.store.get(base)
        except (NotFound, AgentError) as e:
            raise BuildError(where, f"base image: {e.message} (pulling is not part of build)")
        doc = self.store.layout.read_json(image.id)
        manifest = self.store.layout.read_json(image.manifest_digest)
        return _State(step_key("FROM", image.id), dict(doc.get("config") or {}),
                      list(doc.get("history") or []), list(manifest.get("layers") or []),
                      list(image.diff_ids), str(doc.get("created") or ""))

    # -- one step ------------------------------------------------------------------

    def _step(self, state: _State, ins: Instruction) -> bool:
        """Advance ``state`` by ``ins``; returns whether the cache answered."""
        try:
            return self._dispatch(state, ins)
        except BuildError:
            raise
        except (WordError, SourceError, ValueError) as e:
            raise BuildError(ins.where, str(e))
        except AgentError as e:
            raise BuildError(ins.where, e.message)
        except OSError as e:  # a file vanished or could not be read while copying: the step fails
            raise BuildError(ins.where, f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))

    def _dispatch(self, state: _State, ins: Instruction) -> bool:
        env = state.subst_env()
        if ins.cmd == "ARG":
            for name, default in self._arg_pairs(ins, env):
                if name in self.build_args:
                    self.used_args.add(name)
                    state.args[name] = self.build_args[name]
                elif default is not None:
                    state.args[name] = default
                elif name in self.global_args:
                    state.args[name] = self.global_args[name]
            key_text = "ARG " + json.dumps(sorted(state.args.items()))
            return self._cached_meta(state, key_text, state.config, history=False)
        if ins.cmd in ("RUN",):
            return self._run(state, ins)
        if ins.cmd in ("COPY", "ADD"):
            return self._copy(state, ins, env)
        if ins.cmd == "WORKDIR":
            return self._workdir(state, ins, env)
        new_config = self._metadata(state, ins, env)
        return self._cached_meta(state, f"{ins.cmd} {json.dumps(new_config, sort_keys=True)}", new_config)

    def _arg_pairs(self, ins: Instruction, env: dict[str, str]) -> list[tuple[str, str | None]]:
        pairs: list[tuple[str, str | None]] = []
        for item in words(ins.args[0], env):
            name, eq, default = item.partition("=")
            if not name:
                raise BuildError(ins.where, f"ARG {item!r}: missing name")
            pairs.append((name, default if eq else None))
        return pairs

    def _metadata(self, state: _State, ins: Instruction, env: dict[str, str]) -> dict[str, Any]:
        c = state.config
        text = ins.args[0]
        if ins.cmd == "ENV":
            return cfgmod.set_env(c, self._pairs(ins, env, "ENV"))
        if ins.cmd == "LABEL":
            return cfgmod.merge_dict(c, "Labels", dict(self._pairs(ins, env, "LABEL")))
        if ins.cmd == "USER":
            return cfgmod.set_field(c, "User", word(text, env))
        if ins.cmd == "STOPSIGNAL":
            return cfgmod.set_field(c, "StopSignal", word(text, env))
        if ins.cmd == "EXPOSE":
            return cfgmod.merge_dict(c, "ExposedPorts", cfgmod.exposed(words(text, env)))
        if ins.cmd == "VOLUME":
            vols = ins.args if ins.json_form else words(text, env)
            return cfgmod.merge_dict(c, "Volumes", {v: {} for v in vols})
        if ins.cmd == "MAINTAINER":
            return cfgmod.merge_dict(c, "Labels", {"maintainer": text})
        if ins.cmd == "SHELL":
            return cfgmod.set_field(c, "Shell", list(ins.args))
        if ins.cmd == "CMD":
            state.cmd_set = True
            return cfgmod.set_field(c, "Cmd", cfgmod.command(c, ins.args, ins.json_form))
        if ins.cmd == "ENTRYPOINT":
            new = cfgmod.set_field(c, "Entrypoint", cfgmod.command(c, ins.args, ins.json_form))
            return new if state.cmd_set else cfgmod.set_field(new, "Cmd", None)
        if ins.cmd == "HEALTHCHECK":
            _kind, _, rest = text.partition(" ")
            json_args = None
            if rest.strip().startswith("["):
                try:
                    json_args = json.loads(rest)
                except json.JSONDecodeError:
                    json_args = None
            return cfgmod.healthcheck(c, text, json_args, ins.flags)
        raise BuildError(ins.where, f"{ins.cmd} is not supported")

    def _pairs(self, ins: Instruction, env: dict[str, str], what: str) -> list[tuple[str, str]]:
        """KEY=value pairs, or the legacy "KEY value with spaces" form."""
        items = words(ins.args[0], env)
        if items and "=" not in items[0]:
            name, _, rest = ins.args[0].strip().partition(" ")
            if not rest.strip():
                raise BuildError(ins.where, f"{what} {name} needs a value")
            return [(word(name, env), word(rest.strip(), env))]
        pairs = []
        for item in items:
            key, eq, value = item.partition("=")
            if not key or not eq:
                raise BuildError(ins.where, f"{what} expects KEY=value, got {item!r}")
            pairs.append((key, value))
        return pairs

    def _cached_meta(self, state: _State, key_text: str, new_config: dict[str, Any],
                     history: bool = True) -> bool:
        key = step_key(state.key, key_text)
        entry = None if self.no_cache else self.cache.get(key, self._blob_exists)
        cached = entry is not None
        if entry is None:
            hist = {"created": _now(), "created_by": key_text[:200], "empty_layer": True} if history else {}
            entry = CacheEntry(new_config, hist, None, None)
            self.cache.put(key, entry)
        self._apply(state, key, entry)
        return cached

    def _apply(self, state: _State, key: str, entry: CacheEntry) -> None:
        state.key = key
        state.config = entry.config
        if entry.history:
            state.history.append(entry.history)
            state.created = entry.history.get("created", state.created)
        if entry.layer is not None and entry.diff_id is not None:
            state.layers.append(entry.layer)
            state.diff_ids.append(entry.diff_id)

    def _blob_exists(self, digest: str) -> bool:
        return os.path.exists(self.store.layout.blob_path(digest))

    def _layer_step(self, state: _State, key: str, created_by: str,
                    make: Callable[[], LayerBlob | None]) -> bool:
        entry = None if self.no_cache else self.cache.get(key, self._blob_exists)
        if entry is not None:
            self._apply(state, key, entry)
            return True
        blob = make()
        hist: dict[str, Any] = {"created": _now(), "created_by": created_by[:200]}
        layer_desc = None
        if blob is None:
            hist["empty_layer"] = True
        else:
            layer_desc = descriptor(LAYER_MEDIA_TYPE, blob.digest, blob.size,
                                    **{UNCOMPRESSED_SIZE_ANNOTATION: str(blob.uncompressed_size)})
        entry = CacheEntry(state.config, hist, layer_desc, blob.diff_id if blob else None)
        self.cache.put(key, entry)
        self._apply(state, key, entry)
        return False

    # -- RUN -------------------------------------------------------------------------

    def _run(self, state: _State, ins: Instruction) -> bool:
        argv = cfgmod.command(state.config, ins.args, ins.json_form)
        env = cfgmod.env_map(state.config)
        run_env = {**state.args, **env}
        key_text = f"RUN {json.dumps(argv)} args={json.dumps(sorted(state.args.items()))}"
        key = step_key(state.key, key_text)

        def make() -> LayerBlob | None:
            view = RootView(self.store, self.cache_root, state.layer_pairs())
            lowers = view.lower_dirs()
            with run_step(self.runtime, self.cache_root, lowers, argv,
                          [f"{k}={v}" for k, v in run_env.items()],
                          state.config.get("WorkingDir") or "/", state.config.get("User") or "",
                          self._run_output, self.cgroup_parent) as result:
                if result.exit_code != 0:
                    raise BuildError(ins.where, f"RUN {ins.text!r} failed with exit code {result.exit_code}")
                with view.merged() as root:
                    return upper_to_layer(result.upper, self.store.layout,
                                          lambda rel: lstat_in_root(root, rel))

        return self._layer_step(state, key, f"RUN {ins.text}", make)

    # -- COPY / ADD / WORKDIR -----------------------------------------------------------

    def _copy(self, state: _State, ins: Instruction, env: dict[str, str]) -> bool:
        items = [word(a, env) for a in ins.args] if ins.json_form else words(ins.args[0], env)
        *patterns, dest_text = items
        if ins.cmd == "ADD" and any("://" in p for p in patterns):
            raise BuildError(ins.where, "ADD from a URL is not supported; download it in a RUN step")
        from_ref = word(ins.flags["from"], env) if "from" in ins.flags else None
        root_view, inputs_id = self._source_root(ins, from_ref)
        chown = word(ins.flags["chown"], env) if "chown" in ins.flags else ""
        chmod = word(ins.flags["chmod"], env) if "chmod" in ins.flags else ""
        mode = _parse_chmod(chmod, ins) if chmod else None
        if root_view is None:
            sources = select(self.context, patterns, self.ignore, confine=True)
            inputs = digest(sources)
            return self._copy_step(state, ins, sources, dest_text, chown, mode, inputs)
        with root_view.merged() as src_root:
            sources = select(src_root, patterns, None, confine=False)
            return self._copy_step(state, ins, sources, dest_text, chown, mode, inputs_id)

    def _copy_step(self, state: _State, ins: Instruction, sources: list[Source], dest_text: str,
                   chown: str, mode: int | None, inputs: str) -> bool:
        text = f"{ins.cmd} from={ins.flags.get('from', '')} chown={chown} chmod={mode} " \
               f"{json.dumps([s.name for s in sources])} {dest_text}"
        key = step_key(state.key, text, inputs)
        workdir = state.config.get("WorkingDir") or "/"

        def make() -> LayerBlob | None:
            view = RootView(self.store, self.cache_root, state.layer_pairs())
            with view.merged() as root:
                owner = _resolve_owner(root, chown, mode, ins)
                dest = resolve_dest(root, dest_text, workdir)
                return write_copy_layer(self.store.layout, root, sources, dest, owner,
                                        extract_tars=ins.cmd == "ADD")

        return self._layer_step(state, key, f"{ins.cmd} {' '.join(s.name for s in sources)} {dest_text}",
                                make)

    def _source_root(self, ins: Instruction, from_ref: str | None) -> tuple[RootView | None, str]:
        if from_ref is None:
            return None, ""
        stage = self._stage_ref(from_ref)
        if stage is not None:
            if stage.index not in self.done:
                raise BuildError(ins.where, f"COPY --from={from_ref}: stage is not built before this one")
            src = self.done[stage.index]
            return RootView(self.store, self.cache_root, src.layer_pairs()), src.key
        try:
            image = self.store.get(from_ref)
        except AgentError as e:
            raise BuildError(ins.where, f"COPY --from={from_ref}: {e.message}")
        pairs = list(zip(image.diff_ids, image.layer_digests, strict=True))
        return RootView(self.store, self.cache_root, pairs), image.id

    def _workdir(self, state: _State, ins: Instruction, env: dict[str, str]) -> bool:
        state.config = cfgmod.set_workdir(state.config, word(ins.args[0], env))
        path = state.config["WorkingDir"]
        key = step_key(state.key, f"WORKDIR {path}")

        def make() -> LayerBlob | None:
            view = RootView(self.store, self.cache_root, state.layer_pairs())
            with view.merged() as root:
                if path == "/" or lstat_in_root(root, path) is not None:
                    return None
                return write_copy_layer(self.store.layout, root, [], path + "/", Owner())

        return self._layer_step(state, key, f"WORKDIR {path}", make)


def _parse_chmod(text: str, ins: Instruction) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise BuildError(ins.where, f"--chmod={text!r} is not an octal mode")
    if not 0 <= mode <= 0o7777:
        raise BuildError(ins.where, f"--chmod={text!r} is out of range")
    return mode


def _resolve_owner(root: str, chown: str, mode: int | None, ins: Instruction) -> Owner:
    if not chown:
        return Owner(None, None, mode)
    user, _, group = chown.partition(":")
    uid = _lookup_id(root, "etc/passwd", user, ins)
    gid = _lookup_id(root, "etc/group", group, ins) if group else uid
    return Owner(uid, gid, mode)


MAX_ID_TABLE = 16 << 20  # bytes of an image's /etc/passwd or /etc/group


def _lookup_id(root: str, table: str, name: str, ins: Instruction) -> int:
    """``name``'s id in the image's ``table``, its links resolved inside the image;
    one that is not a regular file (a FIFO a RUN made) counts as missing."""
    if name.isdigit():
        return int(name)
    host = resolve_in_root(root, table, confine=False)
    try:
        data = read_regular_file(host, MAX_ID_TABLE) if host else b""
    except (OSError, ValueError):
        data = b""
    for line in data.decode("utf-8", errors="replace").splitlines():
        fields = line.strip().split(":")
        if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    raise BuildError(ins.where, f"--chown: {name!r} not found in the image's /{table}")



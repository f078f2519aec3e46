"""Writable-layer size limits: project quotas (nodeagent.runtime.quota) and
the loop-mounted filesystem per container where they are not enforced
(nodeagent.runtime.loopfs). The pure parts (mountinfo, options, project
ids, how a node describes its choice), project ids on a real XFS, layers on
real loop devices, containers held to their size by the real runtime, and
limits enforced by a real project quota where the kernel can do it."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import SetupError
from nodeagent.runtime import bundle, loopfs, quota
from nodeagent.runtime.spec import ContainerSpec, ProcessSpec, RootfsSpec
from tests.loopfs import MountFailed, is_root, loop_filesystem, project_quota_filesystem

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
45 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw,discard
48 27 7:0 / /srv/orch rw,relatime - xfs /dev/loop0 rw,inode64,logbufs=8,logbsize=32k,prjquota
49 48 7:1 / /srv/orch/containers rw,relatime master:3 - ext4 /dev/loop1 rw,prjquota
50 27 7:2 / /mnt/with\\040space rw - xfs /dev/loop2 rw,noquota
51 48 7:3 / /srv/orch/containers rw - xfs /dev/loop3 rw,pqnoenforce
not a mountinfo line
52 27 0:30 / /tmp/broken rw - tmpfs
"""


# ---- mountinfo ---------------------------------------------------------------------------

def test_mountinfo_lines_are_parsed_with_optional_fields_and_escapes() -> None:
    mounts = quota.parse_mountinfo(MOUNTINFO)
    assert [m.mount_point for m in mounts] == [
        "/proc", "/", "/run/netns", "/srv/orch", "/srv/orch/containers", "/mnt/with space",
        "/srv/orch/containers"]
    netns = mounts[2]
    assert (netns.dev, netns.root, netns.fstype, netns.source) == (
        (254, 0), "/run/netns", "ext4", "/dev/vda")
    assert mounts[4].options >= {"rw", "relatime", "prjquota"}
    assert "logbsize" in mounts[3].options  # option names, without their values


def test_the_mount_holding_a_path_is_the_deepest_one_of_its_device() -> None:
    mounts = quota.parse_mountinfo(MOUNTINFO)
    cases = [
        ("/srv/orch/images", (7, 0), "/srv/orch"),
        ("/srv/orch", (7, 0), "/srv/orch"),
        ("/srv/orchestra", (254, 0), "/"),  # a prefix of the name is not a parent
        ("/run/netns/n1", (254, 0), "/run/netns"),
        ("/var/lib/orch", (254, 0), "/"),
        ("/mnt/with space/x", (7, 2), "/mnt/with space"),
        ("/elsewhere", (7, 1), "/srv/orch/containers"),  # not in view: any mount of the device
    ]
    for path, dev, expected in cases:
        found = quota.find_mount(path, dev, mounts)
        assert found is not None and found.mount_point == expected, path
    assert quota.find_mount("/srv/orch/containers/x", (7, 3), mounts) is mounts[6]
    assert quota.find_mount("/x", (9, 9), mounts) is None


def test_mount_options_say_whether_project_quotas_can_be_enforced() -> None:
    def mount(fstype: str, super_options: str, mount_options: str = "rw") -> quota.Mount:
        return quota.Mount((7, 0), "/", "/m", mount_options, fstype, "/dev/loop0", super_options)

    cases: list[tuple[quota.Mount, str | None]] = [
        (mount("xfs", "rw,inode64,prjquota"), None),
        (mount("xfs", "rw,pquota"), None),
        (mount("xfs", "rw,usrquota,pqnoenforce"), "pqnoenforce"),
        (mount("xfs", "rw,inode64,noquota"), "without pquota"),
        (mount("xfs", "rw,usrquota,grpquota"), "without pquota"),
        (mount("ext4", "rw,prjquota"), None),
        (mount("ext4", "rw,usrquota"), "without prjquota"),
        (mount("ext4", "rw,errors=remount-ro"), "without prjquota"),
        (mount("tmpfs", "rw,size=4k"), "no project quotas"),
        (mount("btrfs", "rw,space_cache=v2"), "no project quotas"),
        (mount("overlay", "rw,lowerdir=/a,upperdir=/b"), "no project quotas"),
    ]
    for m, expected in cases:
        problem = quota.option_problem(m)
        if expected is None:
            assert problem is None, (m.fstype, m.super_options)
        else:
            assert problem is not None and expected in problem, (m.fstype, m.super_options)


def test_support_says_how_it_enforces_or_why_it_cannot() -> None:
    m = quota.Mount((7, 0), "/", "/srv", "rw", "xfs", "/dev/loop0", "rw,noquota")
    no = quota.Support("/srv/containers", m, ("mounted without pquota",))
    assert not no.enforced
    assert no.describe() == ("not enforced: /srv/containers is on xfs (/dev/loop0 at /srv), "
                             "mounted without pquota")
    refusal = no.refusal(8 << 20)
    assert "8388608 bytes" in refusal and no.reason() in refusal and quota.FIX in refusal
    yes = quota.Support("/srv/containers", m, ())
    assert yes.enforced and yes.describe() == "xfs project quota on /dev/loop0 at /srv"


def test_a_node_names_the_mechanism_it_uses_or_why_it_has_none() -> None:
    root = quota.Mount((254, 0), "/", "/", "rw", "ext4", "/dev/vda", "rw")
    srv = quota.Mount((7, 0), "/", "/srv", "rw", "xfs", "/dev/loop0", "rw,prjquota")
    no_quota = quota.Support("/var/lib/orch/containers", root, ("mounted without prjquota",))
    with_quota = quota.Support("/srv/containers", srv, ())
    no_loop = "there is no /dev/loop-control (load the loop module: modprobe loop)"
    loop_text = ("loop-mounted ext4 per container (project quotas are not available: "
                 "/var/lib/orch/containers is on ext4 (/dev/vda at /), mounted without prjquota)")
    cases = [
        (loopfs.Support(with_quota, None), "quota", "xfs project quota on /dev/loop0 at /srv"),
        (loopfs.Support(with_quota, no_loop), "quota", "xfs project quota on /dev/loop0 at /srv"),
        (loopfs.Support(no_quota, None), "loop", loop_text),
        (loopfs.Support(no_quota, no_loop), "", (
            "not enforced: /var/lib/orch/containers is on ext4 (/dev/vda at /), mounted without "
            f"prjquota; and no loop filesystem: {no_loop}")),
    ]
    for support, mechanism, text in cases:
        assert (support.mechanism, support.enforced, support.describe()) == (
            mechanism, bool(mechanism), text)
    refusal = cases[-1][0].refusal(8 << 20)
    assert refusal.startswith("storage size limit (8388608 bytes) cannot be enforced on this node: ")
    assert no_loop in refusal and quota.FIX in refusal and "\n" not in refusal


def _spec(bundle_dir: str, size: int) -> ContainerSpec:
    return ContainerSpec(id="ab" * 32, name="c", hostname="c", bundle_dir=bundle_dir,
                         rootfs=RootfsSpec(["/lower"], size_bytes=size), process=ProcessSpec(["true"]))


def test_the_writable_dirs_are_on_the_layers_own_filesystem_once_it_has_one(tmp_path: Path) -> None:
    limited, unlimited = _spec(str(tmp_path), 8 << 20), _spec(str(tmp_path), 0)
    assert bundle.writable_dirs(limited) == (f"{tmp_path}/upper", f"{tmp_path}/work")
    (tmp_path / loopfs.IMAGE).write_bytes(b"")  # the record that it has one
    assert bundle.writable_dirs(limited) == (f"{tmp_path}/layer/upper", f"{tmp_path}/layer/work")
    assert bundle.writable_dirs(unlimited) == (f"{tmp_path}/upper", f"{tmp_path}/work")
    assert (bundle.LAYER_IMAGE, bundle.LAYER_MOUNT) == (loopfs.IMAGE, loopfs.MOUNT)


# ---- project ids ---------------------------------------------------------------------------

@given(st.text("0123456789abcdef", min_size=8, max_size=64), st.integers(1, 200))
def test_candidate_ids_are_distinct_and_in_range(seed: str, count: int) -> None:
    ids = quota.candidate_ids(seed, count)
    assert len(set(ids)) == count
    assert all(quota.ID_BASE <= i < 1 << 31 for i in ids)
    assert ids == quota.candidate_ids(seed, count)  # the same container, the same ids


def test_kernel_structs_have_their_header_sizes() -> None:
    assert ctypes.sizeof(quota.IfDqblk) == 72  # struct if_dqblk
    assert quota.FSXATTR.size == 28  # struct fsxattr
    assert quota.QCMD(quota.Q_GETQUOTA, quota.PRJQUOTA) == 0x80000702
    assert loopfs.LOOP_INFO64.size == 232  # struct loop_info64
    assert loopfs.LOOP_CONFIG.size == 304  # struct loop_config


# ---- real filesystems ----------------------------------------------------------------------

@pytest.fixture
def xfs(tmp_path: Path) -> Iterator[Path]:
    """A plain XFS (no quota options): it takes project ids on any kernel."""
    if not is_root():
        pytest.skip("mounting a filesystem needs root")
    try:
        with loop_filesystem(tmp_path, "xfs") as mnt:
            yield mnt
    except MountFailed as err:
        pytest.skip(str(err))


@pytest.fixture
def enforcing(tmp_path: Path) -> Iterator[Path]:
    """A filesystem that enforces project quotas; skipped, with the kernel's
    reasons, where the kernel can do none."""
    if not is_root():
        pytest.skip("mounting a filesystem needs root")
    with contextlib.ExitStack() as stack:
        try:
            mnt = stack.enter_context(project_quota_filesystem(tmp_path))
        except MountFailed as err:
            pytest.skip(str(err))
        yield mnt


def test_a_project_id_is_inherited_by_everything_created_under_the_dir(xfs: Path) -> None:
    top = xfs / "upper"
    top.mkdir()
    quota.set_project(str(top), 1234567)
    quota.set_project(str(top), 1234567)  # again: nothing changes
    (top / "dir").mkdir()
    (top / "dir" / "file").write_text("x")
    for path in (top, top / "dir", top / "dir" / "file"):
        assert quota.get_project(str(path)) == 1234567, path
    assert quota.get_project(str(xfs)) == 0


def test_where_project_quotas_are_not_enforced_detect_says_why(xfs: Path) -> None:
    support = quota.detect(str(xfs / "state" / "containers"))  # need not exist yet
    assert not support.enforced
    assert support.mount is not None and support.mount.mount_point == str(xfs)
    assert support.describe().startswith(f"not enforced: {xfs}/state/containers is on xfs (")
    assert "mounted without pquota" in support.reason()


def test_a_limit_is_refused_where_it_cannot_be_enforced(xfs: Path) -> None:
    upper, work = xfs / "upper", xfs / "work"
    upper.mkdir()
    work.mkdir()
    with pytest.raises(quota.QuotaError, match=r"not enforced: .* mounted without pquota"):
        quota.apply_limit([str(upper), str(work)], 8 << 20, "ab" * 32)


def _write(path: Path, size: int) -> int:
    """Write ``size`` bytes, synced; the errno that stopped it (0: none)."""
    chunk = b"x" * (1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        written = 0
        while written < size:
            written += os.write(fd, chunk[: size - written])
        os.fsync(fd)
    except OSError as err:
        return err.errno or -1
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return 0


def test_a_limited_layer_cannot_grow_past_its_limit(enforcing: Path) -> None:
    layer, other = enforcing / "layer", enforcing / "other"
    dirs = [str(layer / "upper"), str(layer / "work")]
    for d in dirs:
        os.makedirs(d)
    os.makedirs(other)
    assert quota.detect(dirs[0]).enforced
    projid = quota.apply_limit(dirs, 8 << 20, "cd" * 32)
    assert quota.get_project(dirs[1]) == projid
    assert quota.apply_limit(dirs, 8 << 20, "ef" * 32) == projid  # a restart keeps its id
    # The id is in use now: another layer gets the next one.
    for sub in (other / "upper", other / "work"):
        sub.mkdir()
    assert quota.apply_limit([str(other / "upper"), str(other / "work")], 4 << 20,
                             "cd" * 32) != projid

    assert _write(layer / "upper" / "big", 16 << 20) in (errno.EDQUOT, errno.ENOSPC)
    used, limit = quota.usage(dirs[0])
    assert limit == 8 << 20 and used <= limit
    (layer / "upper" / "big").unlink()
    assert _write(layer / "upper" / "small", 4 << 20) == 0
    # A file made in work and renamed into upper (as overlayfs copies up).
    assert _write(layer / "work" / "tmp", 1 << 20) == 0
    os.rename(layer / "work" / "tmp", layer / "upper" / "moved")

    assert quota.clear_limit(dirs[0]) == projid
    assert quota.usage(dirs[0])[1] == 0
    assert _write(layer / "upper" / "big", 16 << 20) == 0  # unlimited again


def test_a_bundle_with_a_limit_gets_it_before_its_first_write(
        enforcing: Path, make_spec: Callable[..., ContainerSpec]) -> None:
    spec = make_spec(["true"])
    spec.bundle_dir = str(enforcing / "bundle")
    spec.rootfs.size_bytes = 4 << 20
    bundle.prepare(spec)
    upper, work = bundle.writable_dirs(spec)
    assert quota.get_project(upper) == quota.get_project(work) != 0
    assert quota.usage(upper)[1] == 4 << 20
    assert quota.get_project(spec.bundle_dir) == 0  # the record and log are not counted
    bundle.cleanup(spec)
    assert not os.path.exists(upper)


# ---- a filesystem of its own, where project quotas are not enforced -------------------------

@pytest.fixture
def loop_devices() -> None:
    if not is_root():
        pytest.skip("loop devices need root")
    problem = loopfs.problem()
    if problem:
        pytest.skip(problem)


def devices_of(path: Path | str) -> list[str]:
    """Loop devices whose file is ``path`` or lies under it (deleted or not)."""
    return [dev for dev, backing in loopfs.backing_files().items()
            if backing == str(path) or backing.startswith(f"{path}/")]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def mounts_under(path: Path | str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if f" {path}/" in line]


def test_a_layer_filesystem_holds_its_size_and_leaves_nothing(tmp_path: Path, loop_devices: None) -> None:
    b = tmp_path / "bundle"
    b.mkdir()
    image, layer = Path(loopfs.image_path(str(b))), Path(loopfs.mount_dir(str(b)))
    loopfs.make(str(b), 8 << 20)
    assert image.stat().st_size == 8 << 20 and image.stat().st_blocks * 512 < 1 << 20  # sparse
    try:
        loopfs.mount(str(b))
        loopfs.mount(str(b))  # again: nothing changes
        [device] = devices_of(image)
        name = device.removeprefix("/dev/")
        assert Path(f"/sys/block/{name}/loop/autoclear").read_text().strip() == "1"
        assert len(mounts_under(b)) == 1

        assert _write(layer / "big", 16 << 20) == errno.ENOSPC
        assert image.stat().st_size == 8 << 20 and image.stat().st_blocks * 512 <= 8 << 20
        (layer / "big").unlink()
        (layer / "kept").write_text("kept")

        assert loopfs.unmount(str(b)) and not loopfs.unmount(str(b))
        assert mounts_under(b) == []
        wait_until(lambda: devices_of(image) == [])  # autoclear: the mount was its only user
        loopfs.make(str(b), 8 << 20)  # kept: not made again
        loopfs.mount(str(b))
        assert (layer / "kept").read_text() == "kept"
    finally:
        loopfs.remove(str(b))
    assert os.listdir(b) == [] and mounts_under(b) == []
    wait_until(lambda: devices_of(b) == [])


def test_an_image_still_attached_elsewhere_is_mounted_again_not_attached_twice(
        tmp_path: Path, loop_devices: None) -> None:
    """A copy of the mount that outlives its unmount here (as one in another
    mount namespace would) keeps the device and its filesystem: mounting the
    image again must use that device, or two ext4 instances would share one
    file and corrupt it."""
    from nodeagent.runtime import _libc

    b, elsewhere = tmp_path / "bundle", tmp_path / "elsewhere"
    b.mkdir()
    elsewhere.mkdir()
    image, layer = loopfs.image_path(str(b)), Path(loopfs.mount_dir(str(b)))
    loopfs.make(str(b), 4 << 20)
    loopfs.mount(str(b))
    _libc.mount(str(layer), str(elsewhere), None, 4096)  # MS_BIND
    try:
        [device] = devices_of(image)
        loopfs.unmount(str(b))
        assert devices_of(image) == [device]  # held by the copy
        loopfs.mount(str(b))
        assert devices_of(image) == [device]
        (elsewhere / "seen").write_text("x")
        assert (layer / "seen").read_text() == "x"  # one filesystem
    finally:
        _libc.umount2(str(elsewhere), loopfs.MNT_DETACH)
        loopfs.remove(str(b))
    wait_until(lambda: devices_of(b) == [])


def test_a_layer_that_cannot_be_made_or_mounted_leaves_nothing(tmp_path: Path, loop_devices: None) -> None:
    b = tmp_path / "bundle"
    b.mkdir()
    with pytest.raises(loopfs.LoopError, match="below the minimum of 1048576 bytes"):
        loopfs.make(str(b), 64 << 10)
    with pytest.raises(loopfs.LoopError, match=r"mkfs\.ext4 .*: .*no_such_feature"):
        loopfs.make(str(b), 8 << 20, ("-q", "-O", "no_such_feature"))
    assert os.listdir(b) == []
    # Not a filesystem: the mount fails, and the device attached for it goes.
    image = Path(loopfs.image_path(str(b)))
    image.write_bytes(bytes(1 << 20))
    with pytest.raises(loopfs.LoopError, match=r"mount\(/dev/loop\d+, .*: Invalid argument"):
        loopfs.mount(str(b))
    assert mounts_under(b) == []
    wait_until(lambda: devices_of(b) == [])
    loopfs.remove(str(b))
    assert os.listdir(b) == []


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def _run(runtime: object, spec: ContainerSpec, keep_rootfs: bool = False) -> str:
    from nodeagent.runtime import LinuxRuntime, Stdio

    assert isinstance(runtime, LinuxRuntime)
    r, w = os.pipe()
    try:
        c = runtime.create(spec, Stdio(stdout=w, stderr=w))
    finally:
        os.close(w)
    try:
        assert loopfs.mounted(spec.bundle_dir)
        runtime.start(c)
        status = runtime.wait(c, timeout=30)
        assert status is not None
        return _read_all(r)
    finally:
        os.close(r)
        runtime.remove(c, keep_rootfs=keep_rootfs)


def test_where_quotas_are_not_enforced_a_container_gets_a_layer_filesystem_of_its_size(
        xfs: Path, loop_devices: None, runtime: object,
        make_spec: Callable[..., ContainerSpec]) -> None:
    """On a filesystem without project quotas (XFS without pquota) the
    runtime puts the writable layer on an ext4 of the size: writes past it
    fail with ENOSPC. A stop keeps the layer (unmounted, its device
    detached), a restart mounts it again, a removal leaves nothing."""
    spec = make_spec(["/bin/sh", "-c", "echo kept > /kept; dd if=/dev/zero of=/big bs=1M count=16"])
    spec.bundle_dir = str(xfs / "bundle")
    spec.rootfs.size_bytes = 8 << 20
    image = Path(loopfs.image_path(spec.bundle_dir))
    out = _run(runtime, spec, keep_rootfs=True)
    assert "No space left on device" in out, out
    assert image.stat().st_size == 8 << 20 and image.stat().st_blocks * 512 <= 8 << 20
    assert mounts_under(spec.bundle_dir) == []
    wait_until(lambda: devices_of(spec.bundle_dir) == [])

    spec.process.args = ["/bin/sh", "-c", "cat /kept; df -k / | tail -n 1"]
    out = _run(runtime, spec)
    assert out.startswith("kept\n"), out
    assert int(out.split()[2]) <= 8 << 10  # the root's size in KiB: the layer's
    assert os.listdir(spec.bundle_dir) == [] and mounts_under(spec.bundle_dir) == []
    wait_until(lambda: devices_of(spec.bundle_dir) == [])


def test_a_container_whose_setup_fails_leaves_no_layer_filesystem(
        xfs: Path, loop_devices: None, runtime: object,
        make_spec: Callable[..., ContainerSpec]) -> None:
    from nodeagent.runtime import LinuxRuntime, Stdio

    assert isinstance(runtime, LinuxRuntime)
    cases: list[tuple[dict[str, object], str]] = [  # (what is wrong, the step that fails)
        ({"size_bytes": 64 << 10}, "storage_loop"),  # too small to make
        ({"size_bytes": 8 << 20, "lower_dirs": [str(xfs / "missing")]}, "mount_rootfs"),  # after it
    ]
    for i, (rootfs, step) in enumerate(cases):
        spec = make_spec(["true"])
        spec.bundle_dir = str(xfs / f"bundle{i}")
        for key, value in rootfs.items():
            setattr(spec.rootfs, key, value)
        with pytest.raises(SetupError) as caught:
            runtime.create(spec, Stdio())
        assert caught.value.step == step, caught.value
        assert os.listdir(spec.bundle_dir) == [], step
        assert mounts_under(spec.bundle_dir) == [], step
        wait_until(lambda: devices_of(spec.bundle_dir) == [])  # noqa: B023

from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("version", "state_dir", "cgroup_version", "containers", "running", "images", "agent_pid", "supervisor_pid", "bridge", "subnet", "storage_limit", "default_pids_limit")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_DIR_FIELD_NUMBER: _ClassVar[int]
    CGROUP_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    AGENT_PID_FIELD_NUMBER: _ClassVar[int]
    SUPERVISOR_PID_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_FIELD_NUMBER: _ClassVar[int]
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    STORAGE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PIDS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    version: str
    state_dir: str
    cgroup_version: int
    containers: int
    running: int
    images: int
    agent_pid: int
    supervisor_pid: int
    bridge: str
    subnet: str
    storage_limit: str
    default_pids_limit: int
    def __init__(self, version: _Optional[str] = ..., state_dir: _Optional[str] = ..., cgroup_version: _Optional[int] = ..., containers: _Optional[int] = ..., running: _Optional[int] = ..., images: _Optional[int] = ..., agent_pid: _Optional[int] = ..., supervisor_pid: _Optional[int] = ..., bridge: _Optional[str] = ..., subnet: _Optional[str] = ..., storage_limit: _Optional[str] = ..., default_pids_limit: _Optional[int] = ...) -> None: ...

class StringList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class PortMapping(_message.Message):
    __slots__ = ("host_port", "container_port", "protocol", "host_ip")
    HOST_PORT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_PORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    HOST_IP_FIELD_NUMBER: _ClassVar[int]
    host_port: int
    container_port: int
    protocol: str
    host_ip: str
    def __init__(self, host_port: _Optional[int] = ..., container_port: _Optional[int] = ..., protocol: _Optional[str] = ..., host_ip: _Optional[str] = ...) -> None: ...

class ContainerConfig(_message.Message):
    __slots__ = ("image", "name", "command", "entrypoint", "env", "workdir", "user", "hostname", "ports", "memory_bytes", "cpus", "pids_limit", "restart_policy", "network", "auto_remove", "stop_timeout", "stop_signal", "labels", "read_only", "volatile_rootfs", "storage_size_bytes", "networks", "network_aliases", "healthcheck", "mounts", "cap_add", "cap_drop", "ulimits", "dns", "extra_hosts", "init", "devices", "privileged", "tty", "stdin_open", "sysctls", "shm_size", "log_max_size", "log_max_files")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class SysctlsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    WORKDIR_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    PIDS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    RESTART_POLICY_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    AUTO_REMOVE_FIELD_NUMBER: _ClassVar[int]
    STOP_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    STOP_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    VOLATILE_ROOTFS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ALIASES_FIELD_NUMBER: _ClassVar[int]
    HEALTHCHECK_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    CAP_ADD_FIELD_NUMBER: _ClassVar[int]
    CAP_DROP_FIELD_NUMBER: _ClassVar[int]
    ULIMITS_FIELD_NUMBER: _ClassVar[int]
    DNS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_HOSTS_FIELD_NUMBER: _ClassVar[int]
    INIT_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGED_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    STDIN_OPEN_FIELD_NUMBER: _ClassVar[int]
    SYSCTLS_FIELD_NUMBER: _ClassVar[int]
    SHM_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOG_MAX_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOG_MAX_FILES_FIELD_NUMBER: _ClassVar[int]
    image: str
    name: str
    command: StringList
    entrypoint: StringList
    env: _containers.RepeatedScalarFieldContainer[str]
    workdir: str
    user: str
    hostname: str
    ports: _containers.RepeatedCompositeFieldContainer[PortMapping]
    memory_bytes: int
    cpus: float
    pids_limit: int
    restart_policy: str
    network: str
    auto_remove: bool
    stop_timeout: float
    stop_signal: str
    labels: _containers.ScalarMap[str, str]
    read_only: bool
    volatile_rootfs: bool
    storage_size_bytes: int
    networks: _containers.RepeatedCompositeFieldContainer[NetworkAttachmentConfig]
    network_aliases: _containers.RepeatedScalarFieldContainer[str]
    healthcheck: HealthCheck
    mounts: _containers.RepeatedCompositeFieldContainer[MountConfig]
    cap_add: _containers.RepeatedScalarFieldContainer[str]
    cap_drop: _containers.RepeatedScalarFieldContainer[str]
    ulimits: _containers.RepeatedCompositeFieldContainer[Ulimit]
    dns: _containers.RepeatedScalarFieldContainer[str]
    extra_hosts: _containers.RepeatedScalarFieldContainer[str]
    init: bool
    devices: _containers.RepeatedScalarFieldContainer[str]
    privileged: bool
    tty: bool
    stdin_open: bool
    sysctls: _containers.ScalarMap[str, str]
    shm_size: int
    log_max_size: int
    log_max_files: int
    def __init__(self, image: _Optional[str] = ..., name: _Optional[str] = ..., command: _Optional[_Union[StringList, _Mapping]] = ..., entrypoint: _Optional[_Union[StringList, _Mapping]] = ..., env: _Optional[_Iterable[str]] = ..., workdir: _Optional[str] = ..., user: _Optional[str] = ..., hostname: _Optional[str] = ..., ports: _Optional[_Iterable[_Union[PortMapping, _Mapping]]] = ..., memory_bytes: _Optional[int] = ..., cpus: _Optional[float] = ..., pids_limit: _Optional[int] = ..., restart_policy: _Optional[str] = ..., network: _Optional[str] = ..., auto_remove: _Optional[bool] = ..., stop_timeout: _Optional[float] = ..., stop_signal: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., read_only: _Optional[bool] = ..., volatile_rootfs: _Optional[bool] = ..., storage_size_bytes: _Optional[int] = ..., networks: _Optional[_Iterable[_Union[NetworkAttachmentConfig, _Mapping]]] = ..., network_aliases: _Optional[_Iterable[str]] = ..., healthcheck: _Optional[_Union[HealthCheck, _Mapping]] = ..., mounts: _Optional[_Iterable[_Union[MountConfig, _Mapping]]] = ..., cap_add: _Optional[_Iterable[str]] = ..., cap_drop: _Optional[_Iterable[str]] = ..., ulimits: _Optional[_Iterable[_Union[Ulimit, _Mapping]]] = ..., dns: _Optional[_Iterable[str]] = ..., extra_hosts: _Optional[_Iterable[str]] = ..., init: _Optional[bool] = ..., devices: _Optional[_Iterable[str]] = ..., privileged: _Optional[bool] = ..., tty: _Optional[bool] = ..., stdin_open: _Optional[bool] = ..., sysctls: _Optional[_Mapping[str, str]] = ..., shm_size: _Optional[int] = ..., log_max_size: _Optional[int] = ..., log_max_files: _Optional[int] = ...) -> None: ...

class MountConfig(_message.Message):
    __slots__ = ("type", "source", "target", "readonly", "tmpfs_size", "tmpfs_mode", "volume_nocopy", "force", "shareable")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    READONLY_FIELD_NUMBER: _ClassVar[int]
    TMPFS_SIZE_FIELD_NUMBER: _ClassVar[int]
    TMPFS_MODE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_NOCOPY_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    SHAREABLE_FIELD_NUMBER: _ClassVar[int]
    type: str
    source: str
    target: str
    readonly: bool
    tmpfs_size: int
    tmpfs_mode: int
    volume_nocopy: bool
    force: bool
    shareable: bool
    def __init__(self, type: _Optional[str] = ..., source: _Optional[str] = ..., target: _Optional[str] = ..., readonly: _Optional[bool] = ..., tmpfs_size: _Optional[int] = ..., tmpfs_mode: _Optional[int] = ..., volume_nocopy: _Optional[bool] = ..., force: _Optional[bool] = ..., shareable: _Optional[bool] = ...) -> None: ...

class Ulimit(_message.Message):
    __slots__ = ("name", "soft", "hard")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOFT_FIELD_NUMBER: _ClassVar[int]
    HARD_FIELD_NUMBER: _ClassVar[int]
    name: str
    soft: int
    hard: int
    def __init__(self, name: _Optional[str] = ..., soft: _Optional[int] = ..., hard: _Optional[int] = ...) -> None: ...

class HealthCheck(_message.Message):
    __slots__ = ("test", "interval", "timeout", "retries", "start_period", "start_interval", "http", "tcp", "disable")
    TEST_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    START_PERIOD_FIELD_NUMBER: _ClassVar[int]
    START_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    HTTP_FIELD_NUMBER: _ClassVar[int]
    TCP_FIELD_NUMBER: _ClassVar[int]
    DISABLE_FIELD_NUMBER: _ClassVar[int]
    test: _containers.RepeatedScalarFieldContainer[str]
    interval: float
    timeout: float
    retries: int
    start_period: float
    start_interval: float
    http: HttpProbe
    tcp: TcpProbe
    disable: bool
    def __init__(self, test: _Optional[_Iterable[str]] = ..., interval: _Optional[float] = ..., timeout: _Optional[float] = ..., retries: _Optional[int] = ..., start_period: _Optional[float] = ..., start_interval: _Optional[float] = ..., http: _Optional[_Union[HttpProbe, _Mapping]] = ..., tcp: _Optional[_Union[TcpProbe, _Mapping]] = ..., disable: _Optional[bool] = ...) -> None: ...

class HttpProbe(_message.Message):
    __slots__ = ("port", "path", "status")
    PORT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    port: int
    path: str
    status: int
    def __init__(self, port: _Optional[int] = ..., path: _Optional[str] = ..., status: _Optional[int] = ...) -> None: ...

class TcpProbe(_message.Message):
    __slots__ = ("port",)
    PORT_FIELD_NUMBER: _ClassVar[int]
    port: int
    def __init__(self, port: _Optional[int] = ...) -> None: ...

class HealthResult(_message.Message):
    __slots__ = ("start", "end", "exit_code", "output")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    start: float
    end: float
    exit_code: int
    output: str
    def __init__(self, start: _Optional[float] = ..., end: _Optional[float] = ..., exit_code: _Optional[int] = ..., output: _Optional[str] = ...) -> None: ...

class Health(_message.Message):
    __slots__ = ("status", "failing_streak", "log")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FAILING_STREAK_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    status: str
    failing_streak: int
    log: _containers.RepeatedCompositeFieldContainer[HealthResult]
    def __init__(self, status: _Optional[str] = ..., failing_streak: _Optional[int] = ..., log: _Optional[_Iterable[_Union[HealthResult, _Mapping]]] = ...) -> None: ...

class NetworkAttachmentConfig(_message.Message):
    __slots__ = ("network_id", "network_name", "address", "aliases")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    network_name: str
    address: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, network_id: _Optional[str] = ..., network_name: _Optional[str] = ..., address: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class RunRequest(_message.Message):
    __slots__ = ("config", "attach")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    ATTACH_FIELD_NUMBER: _ClassVar[int]
    config: ContainerConfig
    attach: bool
    def __init__(self, config: _Optional[_Union[ContainerConfig, _Mapping]] = ..., attach: _Optional[bool] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("started", "log", "exited")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    started: Container
    log: LogLine
    exited: Container
    def __init__(self, started: _Optional[_Union[Container, _Mapping]] = ..., log: _Optional[_Union[LogLine, _Mapping]] = ..., exited: _Optional[_Union[Container, _Mapping]] = ...) -> None: ...

class ContainerRef(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class StopRequest(_message.Message):
    __slots__ = ("id", "timeout")
    ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    id: str
    timeout: float
    def __init__(self, id: _Optional[str] = ..., timeout: _Optional[float] = ...) -> None: ...

class KillRequest(_message.Message):
    __slots__ = ("id", "signal")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    signal: str
    def __init__(self, id: _Optional[str] = ..., signal: _Optional[str] = ...) -> None: ...

class RemoveRequest(_message.Message):
    __slots__ = ("id", "force", "volumes")
    ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    id: str
    force: bool
    volumes: bool
    def __init__(self, id: _Optional[str] = ..., force: _Optional[bool] = ..., volumes: _Optional[bool] = ...) -> None: ...

class RemoveResponse(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("all",)
    ALL_FIELD_NUMBER: _ClassVar[int]
    all: bool
    def __init__(self, all: _Optional[bool] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("containers",)
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    containers: _containers.RepeatedCompositeFieldContainer[Container]
    def __init__(self, containers: _Optional[_Iterable[_Union[Container, _Mapping]]] = ...) -> None: ...

class ContainerDetails(_message.Message):
    __slots__ = ("container", "config", "spec", "labels", "log_path", "stopped_by_user", "pid_start_time", "healthcheck")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LOG_PATH_FIELD_NUMBER: _ClassVar[int]
    STOPPED_BY_USER_FIELD_NUMBER: _ClassVar[int]
    PID_START_TIME_FIELD_NUMBER: _ClassVar[int]
    HEALTHCHECK_FIELD_NUMBER: _ClassVar[int]
    container: Container
    config: ContainerConfig
    spec: RuntimeSpec
    labels: _containers.ScalarMap[str, str]
    log_path: str
    stopped_by_user: bool
    pid_start_time: int
    healthcheck: HealthCheck
    def __init__(self, container: _Optional[_Union[Container, _Mapping]] = ..., config: _Optional[_Union[ContainerConfig, _Mapping]] = ..., spec: _Optional[_Union[RuntimeSpec, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., log_path: _Optional[str] = ..., stopped_by_user: _Optional[bool] = ..., pid_start_time: _Optional[int] = ..., healthcheck: _Optional[_Union[HealthCheck, _Mapping]] = ...) -> None: ...

class RuntimeSpec(_message.Message):
    __slots__ = ("id", "name", "hostname", "bundle_dir", "rootfs", "process", "resources", "network", "cgroup_name", "masked_paths", "readonly_paths", "stop_signal", "stop_timeout", "labels", "mounts", "devices", "sysctls", "shm_size", "init", "privileged")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class SysctlsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_DIR_FIELD_NUMBER: _ClassVar[int]
    ROOTFS_FIELD_NUMBER: _ClassVar[int]
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    CGROUP_NAME_FIELD_NUMBER: _ClassVar[int]
    MASKED_PATHS_FIELD_NUMBER: _ClassVar[int]
    READONLY_PATHS_FIELD_NUMBER: _ClassVar[int]
    STOP_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    STOP_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    SYSCTLS_FIELD_NUMBER: _ClassVar[int]
    SHM_SIZE_FIELD_NUMBER: _ClassVar[int]
    INIT_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGED_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    hostname: str
    bundle_dir: str
    rootfs: RootfsSpec
    process: ProcessSpec
    resources: RuntimeResources
    network: NetworkSpec
    cgroup_name: str
    masked_paths: _containers.RepeatedScalarFieldContainer[str]
    readonly_paths: _containers.RepeatedScalarFieldContainer[str]
    stop_signal: int
    stop_timeout: float
    labels: _containers.ScalarMap[str, str]
    mounts: _containers.RepeatedCompositeFieldContainer[BindMount]
    devices: _containers.RepeatedCompositeFieldContainer[DeviceNode]
    sysctls: _containers.ScalarMap[str, str]
    shm_size: int
    init: bool
    privileged: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., hostname: _Optional[str] = ..., bundle_dir: _Optional[str] = ..., rootfs: _Optional[_Union[RootfsSpec, _Mapping]] = ..., process: _Optional[_Union[ProcessSpec, _Mapping]] = ..., resources: _Optional[_Union[RuntimeResources, _Mapping]] = ..., network: _Optional[_Union[NetworkSpec, _Mapping]] = ..., cgroup_name: _Optional[str] = ..., masked_paths: _Optional[_Iterable[str]] = ..., readonly_paths: _Optional[_Iterable[str]] = ..., stop_signal: _Optional[int] = ..., stop_timeout: _Optional[float] = ..., labels: _Optional[_Mapping[str, str]] = ..., mounts: _Optional[_Iterable[_Union[BindMount, _Mapping]]] = ..., devices: _Optional[_Iterable[_Union[DeviceNode, _Mapping]]] = ..., sysctls: _Optional[_Mapping[str, str]] = ..., shm_size: _Optional[int] = ..., init: _Optional[bool] = ..., privileged: _Optional[bool] = ...) -> None: ...

class DeviceNode(_message.Message):
    __slots__ = ("path", "kind", "major", "minor", "permissions", "file_mode", "uid", "gid")
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MAJOR_FIELD_NUMBER: _ClassVar[int]
    MINOR_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    FILE_MODE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    path: str
    kind: str
    major: int
    minor: int
    permissions: str
    file_mode: int
    uid: int
    gid: int
    def __init__(self, path: _Optional[str] = ..., kind: _Optional[str] = ..., major: _Optional[int] = ..., minor: _Optional[int] = ..., permissions: _Optional[str] = ..., file_mode: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ...) -> None: ...

class BindMount(_message.Message):
    __slots__ = ("source", "target", "readonly", "type", "volume", "options")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    READONLY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    source: str
    target: str
    readonly: bool
    type: str
    volume: str
    options: str
    def __init__(self, source: _Optional[str] = ..., target: _Optional[str] = ..., readonly: _Optional[bool] = ..., type: _Optional[str] = ..., volume: _Optional[str] = ..., options: _Optional[str] = ...) -> None: ...

class RootfsSpec(_message.Message):
    __slots__ = ("lower_dirs", "readonly", "volatile", "size_bytes")
    LOWER_DIRS_FIELD_NUMBER: _ClassVar[int]
    READONLY_FIELD_NUMBER: _ClassVar[int]
    VOLATILE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    lower_dirs: _containers.RepeatedScalarFieldContainer[str]
    readonly: bool
    volatile: bool
    size_bytes: int
    def __init__(self, lower_dirs: _Optional[_Iterable[str]] = ..., readonly: _Optional[bool] = ..., volatile: _Optional[bool] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class Rlimit(_message.Message):
    __slots__ = ("name", "soft", "hard")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOFT_FIELD_NUMBER: _ClassVar[int]
    HARD_FIELD_NUMBER: _ClassVar[int]
    name: str
    soft: int
    hard: int
    def __init__(self, name: _Optional[str] = ..., soft: _Optional[int] = ..., hard: _Optional[int] = ...) -> None: ...

class ProcessSpec(_message.Message):
    __slots__ = ("args", "env", "cwd", "user", "capabilities", "no_new_privileges", "seccomp", "rlimits", "tty", "console_size")
    ARGS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    NO_NEW_PRIVILEGES_FIELD_NUMBER: _ClassVar[int]
    SECCOMP_FIELD_NUMBER: _ClassVar[int]
    RLIMITS_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    args: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.RepeatedScalarFieldContainer[str]
    cwd: str
    user: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    no_new_privileges: bool
    seccomp: bool
    rlimits: _containers.RepeatedCompositeFieldContainer[Rlimit]
    tty: bool
    console_size: WindowSize
    def __init__(self, args: _Optional[_Iterable[str]] = ..., env: _Optional[_Iterable[str]] = ..., cwd: _Optional[str] = ..., user: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., no_new_privileges: _Optional[bool] = ..., seccomp: _Optional[bool] = ..., rlimits: _Optional[_Iterable[_Union[Rlimit, _Mapping]]] = ..., tty: _Optional[bool] = ..., console_size: _Optional[_Union[WindowSize, _Mapping]] = ...) -> None: ...

class RuntimeResources(_message.Message):
    __slots__ = ("memory_bytes", "cpus", "pids_limit")
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    PIDS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    memory_bytes: int
    cpus: float
    pids_limit: int
    def __init__(self, memory_bytes: _Optional[int] = ..., cpus: _Optional[float] = ..., pids_limit: _Optional[int] = ...) -> None: ...

class HostEntry(_message.Message):
    __slots__ = ("name", "ip")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    name: str
    ip: str
    def __init__(self, name: _Optional[str] = ..., ip: _Optional[str] = ...) -> None: ...

class NetworkSpec(_message.Message):
    __slots__ = ("mode", "bridge", "address", "prefixlen", "gateway", "host_veth", "ports", "dns", "extra_hosts", "attachments")
    MODE_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PREFIXLEN_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    HOST_VETH_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    DNS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_HOSTS_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    mode: str
    bridge: str
    address: str
    prefixlen: int
    gateway: str
    host_veth: str
    ports: _containers.RepeatedCompositeFieldContainer[PortMapping]
    dns: _containers.RepeatedScalarFieldContainer[str]
    extra_hosts: _containers.RepeatedCompositeFieldContainer[HostEntry]
    attachments: _containers.RepeatedCompositeFieldContainer[OverlayAttachment]
    def __init__(self, mode: _Optional[str] = ..., bridge: _Optional[str] = ..., address: _Optional[str] = ..., prefixlen: _Optional[int] = ..., gateway: _Optional[str] = ..., host_veth: _Optional[str] = ..., ports: _Optional[_Iterable[_Union[PortMapping, _Mapping]]] = ..., dns: _Optional[_Iterable[str]] = ..., extra_hosts: _Optional[_Iterable[_Union[HostEntry, _Mapping]]] = ..., attachments: _Optional[_Iterable[_Union[OverlayAttachment, _Mapping]]] = ...) -> None: ...

class OverlayAttachment(_message.Message):
    __slots__ = ("network_id", "network_name", "address", "prefixlen", "ifname", "host_veth", "aliases")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PREFIXLEN_FIELD_NUMBER: _ClassVar[int]
    IFNAME_FIELD_NUMBER: _ClassVar[int]
    HOST_VETH_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    network_name: str
    address: str
    prefixlen: int
    ifname: str
    host_veth: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, network_id: _Optional[str] = ..., network_name: _Optional[str] = ..., address: _Optional[str] = ..., prefixlen: _Optional[int] = ..., ifname: _Optional[str] = ..., host_veth: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class Container(_message.Message):
    __slots__ = ("id", "name", "image", "image_id", "command", "state", "created_at", "started_at", "finished_at", "exit_code", "signal", "oom_killed", "restart_count", "pid", "ip_address", "ports", "restart_policy", "network", "error", "auto_remove", "health")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    OOM_KILLED_FIELD_NUMBER: _ClassVar[int]
    RESTART_COUNT_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    RESTART_POLICY_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    AUTO_REMOVE_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    image: str
    image_id: str
    command: _containers.RepeatedScalarFieldContainer[str]
    state: str
    created_at: float
    started_at: float
    finished_at: float
    exit_code: int
    signal: int
    oom_killed: bool
    restart_count: int
    pid: int
    ip_address: str
    ports: _containers.RepeatedCompositeFieldContainer[PortMapping]
    restart_policy: str
    network: str
    error: str
    auto_remove: bool
    health: Health
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., image: _Optional[str] = ..., image_id: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., state: _Optional[str] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., oom_killed: _Optional[bool] = ..., restart_count: _Optional[int] = ..., pid: _Optional[int] = ..., ip_address: _Optional[str] = ..., ports: _Optional[_Iterable[_Union[PortMapping, _Mapping]]] = ..., restart_policy: _Optional[str] = ..., network: _Optional[str] = ..., error: _Optional[str] = ..., auto_remove: _Optional[bool] = ..., health: _Optional[_Union[Health, _Mapping]] = ...) -> None: ...

class LogsRequest(_message.Message):
    __slots__ = ("id", "follow", "tail", "since", "until")
    ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    id: str
    follow: bool
    tail: int
    since: str
    until: str
    def __init__(self, id: _Optional[str] = ..., follow: _Optional[bool] = ..., tail: _Optional[int] = ..., since: _Optional[str] = ..., until: _Optional[str] = ...) -> None: ...

class LogBatch(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[LogLine]
    def __init__(self, lines: _Optional[_Iterable[_Union[LogLine, _Mapping]]] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("time", "stream", "line")
    TIME_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    time: str
    stream: str
    line: str
    def __init__(self, time: _Optional[str] = ..., stream: _Optional[str] = ..., line: _Optional[str] = ...) -> None: ...

class ExecRequest(_message.Message):
    __slots__ = ("id", "command", "env", "user", "workdir", "tty", "stdin", "size")
    ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    WORKDIR_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    id: str
    command: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.RepeatedScalarFieldContainer[str]
    user: str
    workdir: str
    tty: bool
    stdin: bool
    size: WindowSize
    def __init__(self, id: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., env: _Optional[_Iterable[str]] = ..., user: _Optional[str] = ..., workdir: _Optional[str] = ..., tty: _Optional[bool] = ..., stdin: _Optional[bool] = ..., size: _Optional[_Union[WindowSize, _Mapping]] = ...) -> None: ...

class WindowSize(_message.Message):
    __slots__ = ("rows", "cols")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    cols: int
    def __init__(self, rows: _Optional[int] = ..., cols: _Optional[int] = ...) -> None: ...

class AttachRequest(_message.Message):
    __slots__ = ("id", "stdin", "size")
    ID_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    id: str
    stdin: bool
    size: WindowSize
    def __init__(self, id: _Optional[str] = ..., stdin: _Optional[bool] = ..., size: _Optional[_Union[WindowSize, _Mapping]] = ...) -> None: ...

class AttachInput(_message.Message):
    __slots__ = ("attach", "exec", "stdin", "resize", "stdin_close")
    ATTACH_FIELD_NUMBER: _ClassVar[int]
    EXEC_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    RESIZE_FIELD_NUMBER: _ClassVar[int]
    STDIN_CLOSE_FIELD_NUMBER: _ClassVar[int]
    attach: AttachRequest
    exec: ExecRequest
    stdin: bytes
    resize: WindowSize
    stdin_close: bool
    def __init__(self, attach: _Optional[_Union[AttachRequest, _Mapping]] = ..., exec: _Optional[_Union[ExecRequest, _Mapping]] = ..., stdin: _Optional[bytes] = ..., resize: _Optional[_Union[WindowSize, _Mapping]] = ..., stdin_close: _Optional[bool] = ...) -> None: ...

class ExecOutput(_message.Message):
    __slots__ = ("stdout", "stderr", "exit_code")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    stdout: bytes
    stderr: bytes
    exit_code: int
    def __init__(self, stdout: _Optional[bytes] = ..., stderr: _Optional[bytes] = ..., exit_code: _Optional[int] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("id", "memory_usage_bytes", "memory_limit_bytes", "cpu_usage_ns", "cpu_nr_periods", "cpu_nr_throttled", "cpu_throttled_ns", "pids_current", "pids_limit", "oom_kills", "network_rx_bytes", "network_tx_bytes", "block_read_bytes", "block_write_bytes", "time")
    ID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPU_USAGE_NS_FIELD_NUMBER: _ClassVar[int]
    CPU_NR_PERIODS_FIELD_NUMBER: _ClassVar[int]
    CPU_NR_THROTTLED_FIELD_NUMBER: _ClassVar[int]
    CPU_THROTTLED_NS_FIELD_NUMBER: _ClassVar[int]
    PIDS_CURRENT_FIELD_NUMBER: _ClassVar[int]
    PIDS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    OOM_KILLS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_RX_BYTES_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TX_BYTES_FIELD_NUMBER: _ClassVar[int]
    BLOCK_READ_BYTES_FIELD_NUMBER: _ClassVar[int]
    BLOCK_WRITE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    memory_usage_bytes: int
    memory_limit_bytes: int
    cpu_usage_ns: int
    cpu_nr_periods: int
    cpu_nr_throttled: int
    cpu_throttled_ns: int
    pids_current: int
    pids_limit: int
    oom_kills: int
    network_rx_bytes: int
    network_tx_bytes: int
    block_read_bytes: int
    block_write_bytes: int
    time: float
    def __init__(self, id: _Optional[str] = ..., memory_usage_bytes: _Optional[int] = ..., memory_limit_bytes: _Optional[int] = ..., cpu_usage_ns: _Optional[int] = ..., cpu_nr_periods: _Optional[int] = ..., cpu_nr_throttled: _Optional[int] = ..., cpu_throttled_ns: _Optional[int] = ..., pids_current: _Optional[int] = ..., pids_limit: _Optional[int] = ..., oom_kills: _Optional[int] = ..., network_rx_bytes: _Optional[int] = ..., network_tx_bytes: _Optional[int] = ..., block_read_bytes: _Optional[int] = ..., block_write_bytes: _Optional[int] = ..., time: _Optional[float] = ...) -> None: ...

class StatsAllRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StatsAllResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: _containers.RepeatedCompositeFieldContainer[StatsResponse]
    def __init__(self, stats: _Optional[_Iterable[_Union[StatsResponse, _Mapping]]] = ...) -> None: ...

class ImportImageRequest(_message.Message):
    __slots__ = ("source", "ref")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    source: str
    ref: str
    def __init__(self, source: _Optional[str] = ..., ref: _Optional[str] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("id", "repo_tags", "manifest_digest", "created", "size", "repo_digests")
    ID_FIELD_NUMBER: _ClassVar[int]
    REPO_TAGS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    REPO_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    repo_tags: _containers.RepeatedScalarFieldContainer[str]
    manifest_digest: str
    created: str
    size: int
    repo_digests: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., repo_tags: _Optional[_Iterable[str]] = ..., manifest_digest: _Optional[str] = ..., created: _Optional[str] = ..., size: _Optional[int] = ..., repo_digests: _Optional[_Iterable[str]] = ...) -> None: ...

class ImageDetails(_message.Message):
    __slots__ = ("id", "repo_tags", "manifest_digest", "created", "size", "config", "diff_ids", "layer_digests", "unpacked_size", "repo_digests")
    ID_FIELD_NUMBER: _ClassVar[int]
    REPO_TAGS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    DIFF_IDS_FIELD_NUMBER: _ClassVar[int]
    LAYER_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    UNPACKED_SIZE_FIELD_NUMBER: _ClassVar[int]
    REPO_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    repo_tags: _containers.RepeatedScalarFieldContainer[str]
    manifest_digest: str
    created: str
    size: int
    config: ImageConfig
    diff_ids: _containers.RepeatedScalarFieldContainer[str]
    layer_digests: _containers.RepeatedScalarFieldContainer[str]
    unpacked_size: int
    repo_digests: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., repo_tags: _Optional[_Iterable[str]] = ..., manifest_digest: _Optional[str] = ..., created: _Optional[str] = ..., size: _Optional[int] = ..., config: _Optional[_Union[ImageConfig, _Mapping]] = ..., diff_ids: _Optional[_Iterable[str]] = ..., layer_digests: _Optional[_Iterable[str]] = ..., unpacked_size: _Optional[int] = ..., repo_digests: _Optional[_Iterable[str]] = ...) -> None: ...

class ImageConfig(_message.Message):
    __slots__ = ("cmd", "entrypoint", "env", "working_dir", "user", "stop_signal", "exposed_ports", "labels", "healthcheck")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CMD_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIR_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    STOP_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    EXPOSED_PORTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    HEALTHCHECK_FIELD_NUMBER: _ClassVar[int]
    cmd: _containers.RepeatedScalarFieldContainer[str]
    entrypoint: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.RepeatedScalarFieldContainer[str]
    working_dir: str
    user: str
    stop_signal: str
    exposed_ports: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    healthcheck: HealthCheck
    def __init__(self, cmd: _Optional[_Iterable[str]] = ..., entrypoint: _Optional[_Iterable[str]] = ..., env: _Optional[_Iterable[str]] = ..., working_dir: _Optional[str] = ..., user: _Optional[str] = ..., stop_signal: _Optional[str] = ..., exposed_ports: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., healthcheck: _Optional[_Union[HealthCheck, _Mapping]] = ...) -> None: ...

class ListImagesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListImagesResponse(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[Image]
    def __init__(self, images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ...) -> None: ...

class ImageRef(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class RemoveImageRequest(_message.Message):
    __slots__ = ("ref", "force")
    REF_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    force: bool
    def __init__(self, ref: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RemoveImageResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, removed: _Optional[_Iterable[str]] = ...) -> None: ...

class PruneImagesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DiskUsageRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ImageUsage(_message.Message):
    __slots__ = ("ref", "refs", "id", "logical_size", "shared", "unique")
    REF_FIELD_NUMBER: _ClassVar[int]
    REFS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    refs: _containers.RepeatedScalarFieldContainer[str]
    id: str
    logical_size: int
    shared: int
    unique: int
    def __init__(self, ref: _Optional[str] = ..., refs: _Optional[_Iterable[str]] = ..., id: _Optional[str] = ..., logical_size: _Optional[int] = ..., shared: _Optional[int] = ..., unique: _Optional[int] = ...) -> None: ...

class DiskUsageResponse(_message.Message):
    __slots__ = ("images", "total", "disk")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DISK_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[ImageUsage]
    total: ImageUsage
    disk: int
    def __init__(self, images: _Optional[_Iterable[_Union[ImageUsage, _Mapping]]] = ..., total: _Optional[_Union[ImageUsage, _Mapping]] = ..., disk: _Optional[int] = ...) -> None: ...

class BuildRequest(_message.Message):
    __slots__ = ("context", "containerfile", "tag", "build_args", "target", "no_cache")
    class BuildArgsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTAINERFILE_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    BUILD_ARGS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    context: str
    containerfile: str
    tag: str
    build_args: _containers.ScalarMap[str, str]
    target: str
    no_cache: bool
    def __init__(self, context: _Optional[str] = ..., containerfile: _Optional[str] = ..., tag: _Optional[str] = ..., build_args: _Optional[_Mapping[str, str]] = ..., target: _Optional[str] = ..., no_cache: _Optional[bool] = ...) -> None: ...

class BuildEvent(_message.Message):
    __slots__ = ("line", "image", "lines")
    LINE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    line: str
    image: Image
    lines: str
    def __init__(self, line: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., lines: _Optional[str] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("ref", "remote", "registry_ca")
    REF_FIELD_NUMBER: _ClassVar[int]
    REMOTE_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_CA_FIELD_NUMBER: _ClassVar[int]
    ref: str
    remote: str
    registry_ca: str
    def __init__(self, ref: _Optional[str] = ..., remote: _Optional[str] = ..., registry_ca: _Optional[str] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("remote", "registry_ca")
    REMOTE_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_CA_FIELD_NUMBER: _ClassVar[int]
    remote: str
    registry_ca: str
    def __init__(self, remote: _Optional[str] = ..., registry_ca: _Optional[str] = ...) -> None: ...

class TransferEvent(_message.Message):
    __slots__ = ("kind", "digest", "done", "total", "result")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    digest: str
    done: int
    total: int
    result: str
    def __init__(self, kind: _Optional[str] = ..., digest: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., result: _Optional[str] = ...) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("registry", "username", "password", "registry_ca")
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_CA_FIELD_NUMBER: _ClassVar[int]
    registry: str
    username: str
    password: str
    registry_ca: str
    def __init__(self, registry: _Optional[str] = ..., username: _Optional[str] = ..., password: _Optional[str] = ..., registry_ca: _Optional[str] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateNetworkRequest(_message.Message):
    __slots__ = ("name", "subnet", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    subnet: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., subnet: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class EngineNetwork(_message.Message):
    __slots__ = ("id", "name", "driver", "subnet", "gateway", "bridge", "created_at", "labels", "builtin")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    BUILTIN_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    driver: str
    subnet: str
    gateway: str
    bridge: str
    created_at: float
    labels: _containers.ScalarMap[str, str]
    builtin: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., driver: _Optional[str] = ..., subnet: _Optional[str] = ..., gateway: _Optional[str] = ..., bridge: _Optional[str] = ..., created_at: _Optional[float] = ..., labels: _Optional[_Mapping[str, str]] = ..., builtin: _Optional[bool] = ...) -> None: ...

class ListNetworksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListNetworksResponse(_message.Message):
    __slots__ = ("networks",)
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    networks: _containers.RepeatedCompositeFieldContainer[EngineNetwork]
    def __init__(self, networks: _Optional[_Iterable[_Union[EngineNetwork, _Mapping]]] = ...) -> None: ...

class NetworkRef(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class NetworkEndpoint(_message.Message):
    __slots__ = ("container_id", "name", "address", "aliases", "state")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    name: str
    address: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    state: str
    def __init__(self, container_id: _Optional[str] = ..., name: _Optional[str] = ..., address: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., state: _Optional[str] = ...) -> None: ...

class EngineNetworkDetails(_message.Message):
    __slots__ = ("network", "containers")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    network: EngineNetwork
    containers: _containers.RepeatedCompositeFieldContainer[NetworkEndpoint]
    def __init__(self, network: _Optional[_Union[EngineNetwork, _Mapping]] = ..., containers: _Optional[_Iterable[_Union[NetworkEndpoint, _Mapping]]] = ...) -> None: ...

class RemoveNetworkResponse(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ("stop_containers",)
    STOP_CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    stop_containers: bool
    def __init__(self, stop_containers: _Optional[bool] = ...) -> None: ...

class ShutdownResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateVolumeRequest(_message.Message):
    __slots__ = ("name", "labels", "driver")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    driver: str
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., driver: _Optional[str] = ...) -> None: ...

class Volume(_message.Message):
    __slots__ = ("name", "driver", "mountpoint", "created_at", "labels", "anonymous", "containers")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    MOUNTPOINT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    driver: str
    mountpoint: str
    created_at: float
    labels: _containers.ScalarMap[str, str]
    anonymous: bool
    containers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., driver: _Optional[str] = ..., mountpoint: _Optional[str] = ..., created_at: _Optional[float] = ..., labels: _Optional[_Mapping[str, str]] = ..., anonymous: _Optional[bool] = ..., containers: _Optional[_Iterable[str]] = ...) -> None: ...

class ListVolumesRequest(_message.Message):
    __slots__ = ("dangling",)
    DANGLING_FIELD_NUMBER: _ClassVar[int]
    dangling: bool
    def __init__(self, dangling: _Optional[bool] = ...) -> None: ...

class ListVolumesResponse(_message.Message):
    __slots__ = ("volumes",)
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    volumes: _containers.RepeatedCompositeFieldContainer[Volume]
    def __init__(self, volumes: _Optional[_Iterable[_Union[Volume, _Mapping]]] = ...) -> None: ...

class VolumeRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoveVolumeRequest(_message.Message):
    __slots__ = ("name", "force")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    force: bool
    def __init__(self, name: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RemoveVolumeResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, removed: _Optional[_Iterable[str]] = ...) -> None: ...

class PruneVolumesRequest(_message.Message):
    __slots__ = ("all",)
    ALL_FIELD_NUMBER: _ClassVar[int]
    all: bool
    def __init__(self, all: _Optional[bool] = ...) -> None: ...

class CommitRequest(_message.Message):
    __slots__ = ("container", "ref", "message", "author", "changes", "pause")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    container: str
    ref: str
    message: str
    author: str
    changes: _containers.RepeatedScalarFieldContainer[str]
    pause: bool
    def __init__(self, container: _Optional[str] = ..., ref: _Optional[str] = ..., message: _Optional[str] = ..., author: _Optional[str] = ..., changes: _Optional[_Iterable[str]] = ..., pause: _Optional[bool] = ...) -> None: ...

class CopyFromRequest(_message.Message):
    __slots__ = ("container", "path")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    container: str
    path: str
    def __init__(self, container: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class TarChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class CopyToChunk(_message.Message):
    __slots__ = ("container", "path", "data")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    container: str
    path: str
    data: bytes
    def __init__(self, container: _Optional[str] = ..., path: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class CopyToResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

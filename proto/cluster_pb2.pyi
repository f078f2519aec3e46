from proto import agent_pb2 as _agent_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_NEW: _ClassVar[TaskState]
    TASK_STATE_PENDING: _ClassVar[TaskState]
    TASK_STATE_ASSIGNED: _ClassVar[TaskState]
    TASK_STATE_PREPARING: _ClassVar[TaskState]
    TASK_STATE_STARTING: _ClassVar[TaskState]
    TASK_STATE_RUNNING: _ClassVar[TaskState]
    TASK_STATE_COMPLETE: _ClassVar[TaskState]
    TASK_STATE_FAILED: _ClassVar[TaskState]
    TASK_STATE_SHUTDOWN: _ClassVar[TaskState]
    TASK_STATE_REJECTED: _ClassVar[TaskState]
    TASK_STATE_ORPHANED: _ClassVar[TaskState]

class ServiceMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVICE_MODE_REPLICATED: _ClassVar[ServiceMode]
    SERVICE_MODE_GLOBAL: _ClassVar[ServiceMode]

class PortProtocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PORT_PROTOCOL_TCP: _ClassVar[PortProtocol]
    PORT_PROTOCOL_UDP: _ClassVar[PortProtocol]

class PortMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PORT_MODE_INGRESS: _ClassVar[PortMode]
    PORT_MODE_HOST: _ClassVar[PortMode]

class EndpointMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENDPOINT_MODE_VIP: _ClassVar[EndpointMode]
    ENDPOINT_MODE_DNSRR: _ClassVar[EndpointMode]

class RestartCondition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESTART_CONDITION_ANY: _ClassVar[RestartCondition]
    RESTART_CONDITION_ON_FAILURE: _ClassVar[RestartCondition]
    RESTART_CONDITION_NONE: _ClassVar[RestartCondition]

class NodeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_STATE_UNKNOWN: _ClassVar[NodeState]
    NODE_STATE_READY: _ClassVar[NodeState]
    NODE_STATE_DOWN: _ClassVar[NodeState]

class NodeAvailability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_AVAILABILITY_ACTIVE: _ClassVar[NodeAvailability]
    NODE_AVAILABILITY_DRAIN: _ClassVar[NodeAvailability]
    NODE_AVAILABILITY_PAUSE: _ClassVar[NodeAvailability]

class FailureAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_ACTION_PAUSE: _ClassVar[FailureAction]
    FAILURE_ACTION_CONTINUE: _ClassVar[FailureAction]
    FAILURE_ACTION_ROLLBACK: _ClassVar[FailureAction]

class UpdateOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPDATE_ORDER_STOP_FIRST: _ClassVar[UpdateOrder]
    UPDATE_ORDER_START_FIRST: _ClassVar[UpdateOrder]

class SecretKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SECRET_KIND_SECRET: _ClassVar[SecretKind]
    SECRET_KIND_CONFIG: _ClassVar[SecretKind]

class EventAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_ACTION_UNSPECIFIED: _ClassVar[EventAction]
    EVENT_ACTION_PUT: _ClassVar[EventAction]
    EVENT_ACTION_DELETE: _ClassVar[EventAction]
    EVENT_ACTION_SYNCED: _ClassVar[EventAction]
    EVENT_ACTION_KEEPALIVE: _ClassVar[EventAction]
TASK_STATE_NEW: TaskState
TASK_STATE_PENDING: TaskState
TASK_STATE_ASSIGNED: TaskState
TASK_STATE_PREPARING: TaskState
TASK_STATE_STARTING: TaskState
TASK_STATE_RUNNING: TaskState
TASK_STATE_COMPLETE: TaskState
TASK_STATE_FAILED: TaskState
TASK_STATE_SHUTDOWN: TaskState
TASK_STATE_REJECTED: TaskState
TASK_STATE_ORPHANED: TaskState
SERVICE_MODE_REPLICATED: ServiceMode
SERVICE_MODE_GLOBAL: ServiceMode
PORT_PROTOCOL_TCP: PortProtocol
PORT_PROTOCOL_UDP: PortProtocol
PORT_MODE_INGRESS: PortMode
PORT_MODE_HOST: PortMode
ENDPOINT_MODE_VIP: EndpointMode
ENDPOINT_MODE_DNSRR: EndpointMode
RESTART_CONDITION_ANY: RestartCondition
RESTART_CONDITION_ON_FAILURE: RestartCondition
RESTART_CONDITION_NONE: RestartCondition
NODE_STATE_UNKNOWN: NodeState
NODE_STATE_READY: NodeState
NODE_STATE_DOWN: NodeState
NODE_AVAILABILITY_ACTIVE: NodeAvailability
NODE_AVAILABILITY_DRAIN: NodeAvailability
NODE_AVAILABILITY_PAUSE: NodeAvailability
FAILURE_ACTION_PAUSE: FailureAction
FAILURE_ACTION_CONTINUE: FailureAction
FAILURE_ACTION_ROLLBACK: FailureAction
UPDATE_ORDER_STOP_FIRST: UpdateOrder
UPDATE_ORDER_START_FIRST: UpdateOrder
SECRET_KIND_SECRET: SecretKind
SECRET_KIND_CONFIG: SecretKind
EVENT_ACTION_UNSPECIFIED: EventAction
EVENT_ACTION_PUT: EventAction
EVENT_ACTION_DELETE: EventAction
EVENT_ACTION_SYNCED: EventAction
EVENT_ACTION_KEEPALIVE: EventAction

class PortConfig(_message.Message):
    __slots__ = ("published", "target", "protocol", "mode")
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    published: int
    target: int
    protocol: PortProtocol
    mode: PortMode
    def __init__(self, published: _Optional[int] = ..., target: _Optional[int] = ..., protocol: _Optional[_Union[PortProtocol, str]] = ..., mode: _Optional[_Union[PortMode, str]] = ...) -> None: ...

class NetworkAttachment(_message.Message):
    __slots__ = ("name", "aliases")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    name: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("cpus", "memory_bytes", "pids")
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    cpus: float
    memory_bytes: int
    pids: int
    def __init__(self, cpus: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., pids: _Optional[int] = ...) -> None: ...

class Placement(_message.Message):
    __slots__ = ("constraints", "preferences", "max_replicas_per_node")
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    PREFERENCES_FIELD_NUMBER: _ClassVar[int]
    MAX_REPLICAS_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    constraints: _containers.RepeatedScalarFieldContainer[str]
    preferences: _containers.RepeatedScalarFieldContainer[str]
    max_replicas_per_node: int
    def __init__(self, constraints: _Optional[_Iterable[str]] = ..., preferences: _Optional[_Iterable[str]] = ..., max_replicas_per_node: _Optional[int] = ...) -> None: ...

class RestartPolicy(_message.Message):
    __slots__ = ("condition", "delay", "max_attempts", "window")
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    condition: RestartCondition
    delay: float
    max_attempts: int
    window: float
    def __init__(self, condition: _Optional[_Union[RestartCondition, str]] = ..., delay: _Optional[float] = ..., max_attempts: _Optional[int] = ..., window: _Optional[float] = ...) -> None: ...

class UpdateConfig(_message.Message):
    __slots__ = ("parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order")
    PARALLELISM_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    FAILURE_ACTION_FIELD_NUMBER: _ClassVar[int]
    MONITOR_FIELD_NUMBER: _ClassVar[int]
    MAX_FAILURE_RATIO_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    parallelism: int
    delay: float
    failure_action: FailureAction
    monitor: float
    max_failure_ratio: float
    order: UpdateOrder
    def __init__(self, parallelism: _Optional[int] = ..., delay: _Optional[float] = ..., failure_action: _Optional[_Union[FailureAction, str]] = ..., monitor: _Optional[float] = ..., max_failure_ratio: _Optional[float] = ..., order: _Optional[_Union[UpdateOrder, str]] = ...) -> None: ...

class SecretReference(_message.Message):
    __slots__ = ("source", "target", "uid", "gid", "mode", "secret_id")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SECRET_ID_FIELD_NUMBER: _ClassVar[int]
    source: str
    target: str
    uid: int
    gid: int
    mode: int
    secret_id: str
    def __init__(self, source: _Optional[str] = ..., target: _Optional[str] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., mode: _Optional[int] = ..., secret_id: _Optional[str] = ...) -> None: ...

class ServiceSpec(_message.Message):
    __slots__ = ("name", "image", "command", "entrypoint", "env", "ports", "labels", "mode", "replicas", "limits", "reservations", "placement", "restart_policy", "binpack", "stop_grace_period", "storage_size", "networks", "endpoint_mode", "healthcheck", "update_config", "rollback_config", "rebalance", "secrets", "configs", "container_name", "hostname", "user", "working_dir", "stop_signal", "network_mode", "read_only", "init", "tty", "stdin_open", "privileged", "cap_add", "cap_drop", "devices", "sysctls", "ulimits", "dns", "extra_hosts", "shm_size", "mounts", "log_max_size", "log_max_files", "depends_on")
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
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    RESERVATIONS_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    RESTART_POLICY_FIELD_NUMBER: _ClassVar[int]
    BINPACK_FIELD_NUMBER: _ClassVar[int]
    STOP_GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    STORAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_MODE_FIELD_NUMBER: _ClassVar[int]
    HEALTHCHECK_FIELD_NUMBER: _ClassVar[int]
    UPDATE_CONFIG_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_CONFIG_FIELD_NUMBER: _ClassVar[int]
    REBALANCE_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_NAME_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIR_FIELD_NUMBER: _ClassVar[int]
    STOP_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    NETWORK_MODE_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    INIT_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    STDIN_OPEN_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGED_FIELD_NUMBER: _ClassVar[int]
    CAP_ADD_FIELD_NUMBER: _ClassVar[int]
    CAP_DROP_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    SYSCTLS_FIELD_NUMBER: _ClassVar[int]
    ULIMITS_FIELD_NUMBER: _ClassVar[int]
    DNS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_HOSTS_FIELD_NUMBER: _ClassVar[int]
    SHM_SIZE_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    LOG_MAX_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOG_MAX_FILES_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    name: str
    image: str
    command: _agent_pb2.StringList
    entrypoint: _agent_pb2.StringList
    env: _containers.RepeatedScalarFieldContainer[str]
    ports: _containers.RepeatedCompositeFieldContainer[PortConfig]
    labels: _containers.ScalarMap[str, str]
    mode: ServiceMode
    replicas: int
    limits: Resources
    reservations: Resources
    placement: Placement
    restart_policy: RestartPolicy
    binpack: bool
    stop_grace_period: float
    storage_size: int
    networks: _containers.RepeatedCompositeFieldContainer[NetworkAttachment]
    endpoint_mode: EndpointMode
    healthcheck: _agent_pb2.HealthCheck
    update_config: UpdateConfig
    rollback_config: UpdateConfig
    rebalance: bool
    secrets: _containers.RepeatedCompositeFieldContainer[SecretReference]
    configs: _containers.RepeatedCompositeFieldContainer[SecretReference]
    container_name: str
    hostname: str
    user: str
    working_dir: str
    stop_signal: str
    network_mode: str
    read_only: bool
    init: bool
    tty: bool
    stdin_open: bool
    privileged: bool
    cap_add: _containers.RepeatedScalarFieldContainer[str]
    cap_drop: _containers.RepeatedScalarFieldContainer[str]
    devices: _containers.RepeatedScalarFieldContainer[str]
    sysctls: _containers.ScalarMap[str, str]
    ulimits: _containers.RepeatedCompositeFieldContainer[_agent_pb2.Ulimit]
    dns: _containers.RepeatedScalarFieldContainer[str]
    extra_hosts: _containers.RepeatedScalarFieldContainer[str]
    shm_size: int
    mounts: _containers.RepeatedCompositeFieldContainer[_agent_pb2.MountConfig]
    log_max_size: int
    log_max_files: int
    depends_on: _containers.RepeatedCompositeFieldContainer[Dependency]
    def __init__(self, name: _Optional[str] = ..., image: _Optional[str] = ..., command: _Optional[_Union[_agent_pb2.StringList, _Mapping]] = ..., entrypoint: _Optional[_Union[_agent_pb2.StringList, _Mapping]] = ..., env: _Optional[_Iterable[str]] = ..., ports: _Optional[_Iterable[_Union[PortConfig, _Mapping]]] = ..., labels: _Optional[_Mapping[str, str]] = ..., mode: _Optional[_Union[ServiceMode, str]] = ..., replicas: _Optional[int] = ..., limits: _Optional[_Union[Resources, _Mapping]] = ..., reservations: _Optional[_Union[Resources, _Mapping]] = ..., placement: _Optional[_Union[Placement, _Mapping]] = ..., restart_policy: _Optional[_Union[RestartPolicy, _Mapping]] = ..., binpack: _Optional[bool] = ..., stop_grace_period: _Optional[float] = ..., storage_size: _Optional[int] = ..., networks: _Optional[_Iterable[_Union[NetworkAttachment, _Mapping]]] = ..., endpoint_mode: _Optional[_Union[EndpointMode, str]] = ..., healthcheck: _Optional[_Union[_agent_pb2.HealthCheck, _Mapping]] = ..., update_config: _Optional[_Union[UpdateConfig, _Mapping]] = ..., rollback_config: _Optional[_Union[UpdateConfig, _Mapping]] = ..., rebalance: _Optional[bool] = ..., secrets: _Optional[_Iterable[_Union[SecretReference, _Mapping]]] = ..., configs: _Optional[_Iterable[_Union[SecretReference, _Mapping]]] = ..., container_name: _Optional[str] = ..., hostname: _Optional[str] = ..., user: _Optional[str] = ..., working_dir: _Optional[str] = ..., stop_signal: _Optional[str] = ..., network_mode: _Optional[str] = ..., read_only: _Optional[bool] = ..., init: _Optional[bool] = ..., tty: _Optional[bool] = ..., stdin_open: _Optional[bool] = ..., privileged: _Optional[bool] = ..., cap_add: _Optional[_Iterable[str]] = ..., cap_drop: _Optional[_Iterable[str]] = ..., devices: _Optional[_Iterable[str]] = ..., sysctls: _Optional[_Mapping[str, str]] = ..., ulimits: _Optional[_Iterable[_Union[_agent_pb2.Ulimit, _Mapping]]] = ..., dns: _Optional[_Iterable[str]] = ..., extra_hosts: _Optional[_Iterable[str]] = ..., shm_size: _Optional[int] = ..., mounts: _Optional[_Iterable[_Union[_agent_pb2.MountConfig, _Mapping]]] = ..., log_max_size: _Optional[int] = ..., log_max_files: _Optional[int] = ..., depends_on: _Optional[_Iterable[_Union[Dependency, _Mapping]]] = ...) -> None: ...

class Dependency(_message.Message):
    __slots__ = ("service", "condition")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    service: str
    condition: str
    def __init__(self, service: _Optional[str] = ..., condition: _Optional[str] = ...) -> None: ...

class UpdateStatus(_message.Message):
    __slots__ = ("state", "started_at", "completed_at", "message", "total", "updated", "failed")
    STATE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    state: str
    started_at: float
    completed_at: float
    message: str
    total: int
    updated: int
    failed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, state: _Optional[str] = ..., started_at: _Optional[float] = ..., completed_at: _Optional[float] = ..., message: _Optional[str] = ..., total: _Optional[int] = ..., updated: _Optional[int] = ..., failed: _Optional[_Iterable[str]] = ...) -> None: ...

class Revision(_message.Message):
    __slots__ = ("revision", "spec", "created_at", "note")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    revision: int
    spec: ServiceSpec
    created_at: float
    note: str
    def __init__(self, revision: _Optional[int] = ..., spec: _Optional[_Union[ServiceSpec, _Mapping]] = ..., created_at: _Optional[float] = ..., note: _Optional[str] = ...) -> None: ...

class VirtualIP(_message.Message):
    __slots__ = ("network_id", "address")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    address: str
    def __init__(self, network_id: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class Service(_message.Message):
    __slots__ = ("id", "spec", "created_at", "updated_at", "version", "vips", "revision", "note", "history", "update_status")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VIPS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: ServiceSpec
    created_at: float
    updated_at: float
    version: int
    vips: _containers.RepeatedCompositeFieldContainer[VirtualIP]
    revision: int
    note: str
    history: _containers.RepeatedCompositeFieldContainer[Revision]
    update_status: UpdateStatus
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[ServiceSpec, _Mapping]] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., version: _Optional[int] = ..., vips: _Optional[_Iterable[_Union[VirtualIP, _Mapping]]] = ..., revision: _Optional[int] = ..., note: _Optional[str] = ..., history: _Optional[_Iterable[_Union[Revision, _Mapping]]] = ..., update_status: _Optional[_Union[UpdateStatus, _Mapping]] = ...) -> None: ...

class TaskStatus(_message.Message):
    __slots__ = ("state", "message", "error", "timestamp", "container_id", "exit_code", "health")
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    state: TaskState
    message: str
    error: str
    timestamp: float
    container_id: str
    exit_code: int
    health: str
    def __init__(self, state: _Optional[_Union[TaskState, str]] = ..., message: _Optional[str] = ..., error: _Optional[str] = ..., timestamp: _Optional[float] = ..., container_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., health: _Optional[str] = ...) -> None: ...

class TaskNetwork(_message.Message):
    __slots__ = ("network_id", "name", "address", "aliases")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    name: str
    address: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, network_id: _Optional[str] = ..., name: _Optional[str] = ..., address: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "service_id", "service_name", "slot", "spec", "node_id", "desired_state", "status", "created_at", "attempt", "version", "networks", "data_node")
    ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    DESIRED_STATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    DATA_NODE_FIELD_NUMBER: _ClassVar[int]
    id: str
    service_id: str
    service_name: str
    slot: int
    spec: ServiceSpec
    node_id: str
    desired_state: TaskState
    status: TaskStatus
    created_at: float
    attempt: int
    version: int
    networks: _containers.RepeatedCompositeFieldContainer[TaskNetwork]
    data_node: str
    def __init__(self, id: _Optional[str] = ..., service_id: _Optional[str] = ..., service_name: _Optional[str] = ..., slot: _Optional[int] = ..., spec: _Optional[_Union[ServiceSpec, _Mapping]] = ..., node_id: _Optional[str] = ..., desired_state: _Optional[_Union[TaskState, str]] = ..., status: _Optional[_Union[TaskStatus, _Mapping]] = ..., created_at: _Optional[float] = ..., attempt: _Optional[int] = ..., version: _Optional[int] = ..., networks: _Optional[_Iterable[_Union[TaskNetwork, _Mapping]]] = ..., data_node: _Optional[str] = ...) -> None: ...

class NodeResources(_message.Message):
    __slots__ = ("cpus", "memory_bytes")
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    cpus: float
    memory_bytes: int
    def __init__(self, cpus: _Optional[float] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("id", "name", "address", "labels", "resources", "state", "availability", "last_heartbeat", "version", "index", "metrics_address", "ready_since", "data_released")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    METRICS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    READY_SINCE_FIELD_NUMBER: _ClassVar[int]
    DATA_RELEASED_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    address: str
    labels: _containers.ScalarMap[str, str]
    resources: NodeResources
    state: NodeState
    availability: NodeAvailability
    last_heartbeat: float
    version: int
    index: int
    metrics_address: str
    ready_since: float
    data_released: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., address: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., resources: _Optional[_Union[NodeResources, _Mapping]] = ..., state: _Optional[_Union[NodeState, str]] = ..., availability: _Optional[_Union[NodeAvailability, str]] = ..., last_heartbeat: _Optional[float] = ..., version: _Optional[int] = ..., index: _Optional[int] = ..., metrics_address: _Optional[str] = ..., ready_since: _Optional[float] = ..., data_released: _Optional[bool] = ...) -> None: ...

class Network(_message.Message):
    __slots__ = ("id", "name", "subnet", "vni", "stack", "labels", "created_at", "version")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    VNI_FIELD_NUMBER: _ClassVar[int]
    STACK_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    subnet: str
    vni: int
    stack: str
    labels: _containers.ScalarMap[str, str]
    created_at: float
    version: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., subnet: _Optional[str] = ..., vni: _Optional[int] = ..., stack: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[float] = ..., version: _Optional[int] = ...) -> None: ...

class Secret(_message.Message):
    __slots__ = ("id", "name", "kind", "number", "size", "labels", "stack", "created_at", "updated_at", "versions", "services", "data")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STACK_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    kind: SecretKind
    number: int
    size: int
    labels: _containers.ScalarMap[str, str]
    stack: str
    created_at: float
    updated_at: float
    versions: _containers.RepeatedCompositeFieldContainer[SecretVersion]
    services: _containers.RepeatedScalarFieldContainer[str]
    data: bytes
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[SecretKind, str]] = ..., number: _Optional[int] = ..., size: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., stack: _Optional[str] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., versions: _Optional[_Iterable[_Union[SecretVersion, _Mapping]]] = ..., services: _Optional[_Iterable[str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class SecretVersion(_message.Message):
    __slots__ = ("id", "number", "size", "created_at", "tasks")
    ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    id: str
    number: int
    size: int
    created_at: float
    tasks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., number: _Optional[int] = ..., size: _Optional[int] = ..., created_at: _Optional[float] = ..., tasks: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateSecretRequest(_message.Message):
    __slots__ = ("kind", "name", "data", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    kind: SecretKind
    name: str
    data: bytes
    labels: _containers.ScalarMap[str, str]
    def __init__(self, kind: _Optional[_Union[SecretKind, str]] = ..., name: _Optional[str] = ..., data: _Optional[bytes] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SecretListRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: SecretKind
    def __init__(self, kind: _Optional[_Union[SecretKind, str]] = ...) -> None: ...

class ListSecretsResponse(_message.Message):
    __slots__ = ("secrets",)
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    secrets: _containers.RepeatedCompositeFieldContainer[Secret]
    def __init__(self, secrets: _Optional[_Iterable[_Union[Secret, _Mapping]]] = ...) -> None: ...

class SecretRef(_message.Message):
    __slots__ = ("kind", "name")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    kind: SecretKind
    name: str
    def __init__(self, kind: _Optional[_Union[SecretKind, str]] = ..., name: _Optional[str] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("service", "to")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    service: str
    to: int
    def __init__(self, service: _Optional[str] = ..., to: _Optional[int] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("revision", "created_at", "note", "changes", "current")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    revision: int
    created_at: float
    note: str
    changes: _containers.RepeatedCompositeFieldContainer[FieldChange]
    current: bool
    def __init__(self, revision: _Optional[int] = ..., created_at: _Optional[float] = ..., note: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[FieldChange, _Mapping]]] = ..., current: _Optional[bool] = ...) -> None: ...

class HistoryResponse(_message.Message):
    __slots__ = ("revisions",)
    REVISIONS_FIELD_NUMBER: _ClassVar[int]
    revisions: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    def __init__(self, revisions: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ...) -> None: ...

class UpdateServiceRequest(_message.Message):
    __slots__ = ("service", "pause", "resume")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    service: str
    pause: bool
    resume: bool
    def __init__(self, service: _Optional[str] = ..., pause: _Optional[bool] = ..., resume: _Optional[bool] = ...) -> None: ...

class DeployRequest(_message.Message):
    __slots__ = ("services", "manifest", "manifest_path", "stack", "files", "profiles", "built_images")
    class BuiltImagesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_PATH_FIELD_NUMBER: _ClassVar[int]
    STACK_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    BUILT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[ServiceSpec]
    manifest: str
    manifest_path: str
    stack: str
    files: _containers.RepeatedCompositeFieldContainer[ManifestFile]
    profiles: _containers.RepeatedScalarFieldContainer[str]
    built_images: _containers.ScalarMap[str, str]
    def __init__(self, services: _Optional[_Iterable[_Union[ServiceSpec, _Mapping]]] = ..., manifest: _Optional[str] = ..., manifest_path: _Optional[str] = ..., stack: _Optional[str] = ..., files: _Optional[_Iterable[_Union[ManifestFile, _Mapping]]] = ..., profiles: _Optional[_Iterable[str]] = ..., built_images: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ManifestFile(_message.Message):
    __slots__ = ("kind", "key", "data", "env_file")
    KIND_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENV_FILE_FIELD_NUMBER: _ClassVar[int]
    kind: SecretKind
    key: str
    data: bytes
    env_file: str
    def __init__(self, kind: _Optional[_Union[SecretKind, str]] = ..., key: _Optional[str] = ..., data: _Optional[bytes] = ..., env_file: _Optional[str] = ...) -> None: ...

class DeployResponse(_message.Message):
    __slots__ = ("services",)
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[Service]
    def __init__(self, services: _Optional[_Iterable[_Union[Service, _Mapping]]] = ...) -> None: ...

class PlanRequest(_message.Message):
    __slots__ = ("deploy", "without")
    DEPLOY_FIELD_NUMBER: _ClassVar[int]
    WITHOUT_FIELD_NUMBER: _ClassVar[int]
    deploy: DeployRequest
    without: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deploy: _Optional[_Union[DeployRequest, _Mapping]] = ..., without: _Optional[_Iterable[str]] = ...) -> None: ...

class FieldChange(_message.Message):
    __slots__ = ("field", "old", "new")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OLD_FIELD_NUMBER: _ClassVar[int]
    NEW_FIELD_NUMBER: _ClassVar[int]
    field: str
    old: str
    new: str
    def __init__(self, field: _Optional[str] = ..., old: _Optional[str] = ..., new: _Optional[str] = ...) -> None: ...

class PlannedTask(_message.Message):
    __slots__ = ("slot", "node", "reason")
    SLOT_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    slot: int
    node: str
    reason: str
    def __init__(self, slot: _Optional[int] = ..., node: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ServicePlan(_message.Message):
    __slots__ = ("name", "action", "changes", "tasks")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    name: str
    action: str
    changes: _containers.RepeatedCompositeFieldContainer[FieldChange]
    tasks: _containers.RepeatedCompositeFieldContainer[PlannedTask]
    def __init__(self, name: _Optional[str] = ..., action: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[FieldChange, _Mapping]]] = ..., tasks: _Optional[_Iterable[_Union[PlannedTask, _Mapping]]] = ...) -> None: ...

class PlanResponse(_message.Message):
    __slots__ = ("services",)
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[ServicePlan]
    def __init__(self, services: _Optional[_Iterable[_Union[ServicePlan, _Mapping]]] = ...) -> None: ...

class ScaleRequest(_message.Message):
    __slots__ = ("service", "replicas")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    service: str
    replicas: int
    def __init__(self, service: _Optional[str] = ..., replicas: _Optional[int] = ...) -> None: ...

class ServiceRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoveResponse(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListServicesResponse(_message.Message):
    __slots__ = ("services",)
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[Service]
    def __init__(self, services: _Optional[_Iterable[_Union[Service, _Mapping]]] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("service", "all")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    service: str
    all: bool
    def __init__(self, service: _Optional[str] = ..., all: _Optional[bool] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ...) -> None: ...

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

class NetworkRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListNetworksResponse(_message.Message):
    __slots__ = ("networks",)
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    networks: _containers.RepeatedCompositeFieldContainer[Network]
    def __init__(self, networks: _Optional[_Iterable[_Union[Network, _Mapping]]] = ...) -> None: ...

class RemoveNodeRequest(_message.Message):
    __slots__ = ("node", "force")
    NODE_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    node: str
    force: bool
    def __init__(self, node: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class IssueCertificateRequest(_message.Message):
    __slots__ = ("name", "csr", "days")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    name: str
    csr: bytes
    days: float
    def __init__(self, name: _Optional[str] = ..., csr: _Optional[bytes] = ..., days: _Optional[float] = ...) -> None: ...

class IssueCertificateReply(_message.Message):
    __slots__ = ("cert", "ca")
    CERT_FIELD_NUMBER: _ClassVar[int]
    CA_FIELD_NUMBER: _ClassVar[int]
    cert: bytes
    ca: bytes
    def __init__(self, cert: _Optional[bytes] = ..., ca: _Optional[bytes] = ...) -> None: ...

class JoinTokensRequest(_message.Message):
    __slots__ = ("rotate",)
    ROTATE_FIELD_NUMBER: _ClassVar[int]
    rotate: str
    def __init__(self, rotate: _Optional[str] = ...) -> None: ...

class JoinTokensReply(_message.Message):
    __slots__ = ("node", "controlplane")
    NODE_FIELD_NUMBER: _ClassVar[int]
    CONTROLPLANE_FIELD_NUMBER: _ClassVar[int]
    node: str
    controlplane: str
    def __init__(self, node: _Optional[str] = ..., controlplane: _Optional[str] = ...) -> None: ...

class UpdateNodeRequest(_message.Message):
    __slots__ = ("node", "availability", "add_labels", "remove_labels", "allow_data_loss")
    class AddLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    ADD_LABELS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_LABELS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_DATA_LOSS_FIELD_NUMBER: _ClassVar[int]
    node: str
    availability: NodeAvailability
    add_labels: _containers.ScalarMap[str, str]
    remove_labels: _containers.RepeatedScalarFieldContainer[str]
    allow_data_loss: bool
    def __init__(self, node: _Optional[str] = ..., availability: _Optional[_Union[NodeAvailability, str]] = ..., add_labels: _Optional[_Mapping[str, str]] = ..., remove_labels: _Optional[_Iterable[str]] = ..., allow_data_loss: _Optional[bool] = ...) -> None: ...

class ServiceLogsRequest(_message.Message):
    __slots__ = ("service", "follow", "tail", "since", "until")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    service: str
    follow: bool
    tail: int
    since: str
    until: str
    def __init__(self, service: _Optional[str] = ..., follow: _Optional[bool] = ..., tail: _Optional[int] = ..., since: _Optional[str] = ..., until: _Optional[str] = ...) -> None: ...

class TaskLogBatch(_message.Message):
    __slots__ = ("task", "node", "lines", "notice")
    TASK_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    task: str
    node: str
    lines: _containers.RepeatedCompositeFieldContainer[_agent_pb2.LogLine]
    notice: str
    def __init__(self, task: _Optional[str] = ..., node: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[_agent_pb2.LogLine, _Mapping]]] = ..., notice: _Optional[str] = ...) -> None: ...

class TaskLogLine(_message.Message):
    __slots__ = ("task", "node", "line")
    TASK_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    task: str
    node: str
    line: _agent_pb2.LogLine
    def __init__(self, task: _Optional[str] = ..., node: _Optional[str] = ..., line: _Optional[_Union[_agent_pb2.LogLine, _Mapping]] = ...) -> None: ...

class TaskStatsRequest(_message.Message):
    __slots__ = ("services",)
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, services: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskStat(_message.Message):
    __slots__ = ("task", "node", "service", "stats")
    TASK_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    task: str
    node: str
    service: str
    stats: _agent_pb2.StatsResponse
    def __init__(self, task: _Optional[str] = ..., node: _Optional[str] = ..., service: _Optional[str] = ..., stats: _Optional[_Union[_agent_pb2.StatsResponse, _Mapping]] = ...) -> None: ...

class TaskStatsResponse(_message.Message):
    __slots__ = ("tasks", "unreachable")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskStat]
    unreachable: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskStat, _Mapping]]] = ..., unreachable: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskExecRequest(_message.Message):
    __slots__ = ("task", "command", "tty", "stdin", "size")
    TASK_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    task: str
    command: _containers.RepeatedScalarFieldContainer[str]
    tty: bool
    stdin: bool
    size: _agent_pb2.WindowSize
    def __init__(self, task: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., tty: _Optional[bool] = ..., stdin: _Optional[bool] = ..., size: _Optional[_Union[_agent_pb2.WindowSize, _Mapping]] = ...) -> None: ...

class TaskAttachInput(_message.Message):
    __slots__ = ("exec", "stdin", "resize", "stdin_close")
    EXEC_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    RESIZE_FIELD_NUMBER: _ClassVar[int]
    STDIN_CLOSE_FIELD_NUMBER: _ClassVar[int]
    exec: TaskExecRequest
    stdin: bytes
    resize: _agent_pb2.WindowSize
    stdin_close: bool
    def __init__(self, exec: _Optional[_Union[TaskExecRequest, _Mapping]] = ..., stdin: _Optional[bytes] = ..., resize: _Optional[_Union[_agent_pb2.WindowSize, _Mapping]] = ..., stdin_close: _Optional[bool] = ...) -> None: ...

class EventsRequest(_message.Message):
    __slots__ = ("services", "initial", "keepalive", "since")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    INITIAL_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedScalarFieldContainer[str]
    initial: bool
    keepalive: float
    since: float
    def __init__(self, services: _Optional[_Iterable[str]] = ..., initial: _Optional[bool] = ..., keepalive: _Optional[float] = ..., since: _Optional[float] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("action", "service", "task", "node", "network", "time", "base")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    action: EventAction
    service: Service
    task: Task
    node: Node
    network: Network
    time: float
    base: bool
    def __init__(self, action: _Optional[_Union[EventAction, str]] = ..., service: _Optional[_Union[Service, _Mapping]] = ..., task: _Optional[_Union[Task, _Mapping]] = ..., node: _Optional[_Union[Node, _Mapping]] = ..., network: _Optional[_Union[Network, _Mapping]] = ..., time: _Optional[float] = ..., base: _Optional[bool] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("version", "controlplane_id", "leader", "leader_id", "nodes", "services", "tasks")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTROLPLANE_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    version: str
    controlplane_id: str
    leader: bool
    leader_id: str
    nodes: int
    services: int
    tasks: int
    def __init__(self, version: _Optional[str] = ..., controlplane_id: _Optional[str] = ..., leader: _Optional[bool] = ..., leader_id: _Optional[str] = ..., nodes: _Optional[int] = ..., services: _Optional[int] = ..., tasks: _Optional[int] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("csr",)
    CSR_FIELD_NUMBER: _ClassVar[int]
    csr: bytes
    def __init__(self, csr: _Optional[bytes] = ...) -> None: ...

class RenewReply(_message.Message):
    __slots__ = ("cert",)
    CERT_FIELD_NUMBER: _ClassVar[int]
    cert: bytes
    def __init__(self, cert: _Optional[bytes] = ...) -> None: ...

class CARequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CAReply(_message.Message):
    __slots__ = ("ca",)
    CA_FIELD_NUMBER: _ClassVar[int]
    ca: bytes
    def __init__(self, ca: _Optional[bytes] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("role", "csr", "name", "node_id", "time", "proof")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    role: str
    csr: bytes
    name: str
    node_id: str
    time: float
    proof: bytes
    def __init__(self, role: _Optional[str] = ..., csr: _Optional[bytes] = ..., name: _Optional[str] = ..., node_id: _Optional[str] = ..., time: _Optional[float] = ..., proof: _Optional[bytes] = ...) -> None: ...

class JoinReply(_message.Message):
    __slots__ = ("cert", "node_id", "api_addresses", "sealed")
    CERT_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    API_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    cert: bytes
    node_id: str
    api_addresses: _containers.RepeatedScalarFieldContainer[str]
    sealed: bytes
    def __init__(self, cert: _Optional[bytes] = ..., node_id: _Optional[str] = ..., api_addresses: _Optional[_Iterable[str]] = ..., sealed: _Optional[bytes] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("node_id", "name", "address", "labels", "cpus", "memory_bytes", "token", "metrics_address")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    METRICS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    name: str
    address: str
    labels: _containers.ScalarMap[str, str]
    cpus: float
    memory_bytes: int
    token: str
    metrics_address: str
    def __init__(self, node_id: _Optional[str] = ..., name: _Optional[str] = ..., address: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., cpus: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., token: _Optional[str] = ..., metrics_address: _Optional[str] = ...) -> None: ...

class TaskStatusUpdate(_message.Message):
    __slots__ = ("task_id", "status")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    status: TaskStatus
    def __init__(self, task_id: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, _Mapping]] = ...) -> None: ...

class AgentMessage(_message.Message):
    __slots__ = ("register", "heartbeat", "status")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    register: Register
    heartbeat: bool
    status: StatusBatch
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., heartbeat: _Optional[bool] = ..., status: _Optional[_Union[StatusBatch, _Mapping]] = ...) -> None: ...

class StatusBatch(_message.Message):
    __slots__ = ("updates",)
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[TaskStatusUpdate]
    def __init__(self, updates: _Optional[_Iterable[_Union[TaskStatusUpdate, _Mapping]]] = ...) -> None: ...

class Assignments(_message.Message):
    __slots__ = ("full", "tasks", "removed", "secrets")
    FULL_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    full: bool
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    removed: _containers.RepeatedScalarFieldContainer[str]
    secrets: _containers.RepeatedCompositeFieldContainer[SecretPayload]
    def __init__(self, full: _Optional[bool] = ..., tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., removed: _Optional[_Iterable[str]] = ..., secrets: _Optional[_Iterable[_Union[SecretPayload, _Mapping]]] = ...) -> None: ...

class SecretPayload(_message.Message):
    __slots__ = ("id", "data")
    ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    data: bytes
    def __init__(self, id: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class Registered(_message.Message):
    __slots__ = ("node_id", "heartbeat_interval", "protected_ports", "beacon_port", "beacon_key", "beacon_interval")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    PROTECTED_PORTS_FIELD_NUMBER: _ClassVar[int]
    BEACON_PORT_FIELD_NUMBER: _ClassVar[int]
    BEACON_KEY_FIELD_NUMBER: _ClassVar[int]
    BEACON_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    heartbeat_interval: float
    protected_ports: _containers.RepeatedScalarFieldContainer[int]
    beacon_port: int
    beacon_key: bytes
    beacon_interval: float
    def __init__(self, node_id: _Optional[str] = ..., heartbeat_interval: _Optional[float] = ..., protected_ports: _Optional[_Iterable[int]] = ..., beacon_port: _Optional[int] = ..., beacon_key: _Optional[bytes] = ..., beacon_interval: _Optional[float] = ...) -> None: ...

class NetworkState(_message.Message):
    __slots__ = ("full", "networks", "removed_networks", "peers", "removed_peers", "services", "removed_services", "endpoints", "removed_endpoints")
    FULL_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_NETWORKS_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_PEERS_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_SERVICES_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    full: bool
    networks: _containers.RepeatedCompositeFieldContainer[OverlayNetwork]
    removed_networks: _containers.RepeatedScalarFieldContainer[str]
    peers: _containers.RepeatedCompositeFieldContainer[Peer]
    removed_peers: _containers.RepeatedScalarFieldContainer[str]
    services: _containers.RepeatedCompositeFieldContainer[ServiceRoute]
    removed_services: _containers.RepeatedScalarFieldContainer[str]
    endpoints: _containers.RepeatedCompositeFieldContainer[Endpoint]
    removed_endpoints: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, full: _Optional[bool] = ..., networks: _Optional[_Iterable[_Union[OverlayNetwork, _Mapping]]] = ..., removed_networks: _Optional[_Iterable[str]] = ..., peers: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ..., removed_peers: _Optional[_Iterable[str]] = ..., services: _Optional[_Iterable[_Union[ServiceRoute, _Mapping]]] = ..., removed_services: _Optional[_Iterable[str]] = ..., endpoints: _Optional[_Iterable[_Union[Endpoint, _Mapping]]] = ..., removed_endpoints: _Optional[_Iterable[str]] = ...) -> None: ...

class OverlayNetwork(_message.Message):
    __slots__ = ("id", "name", "subnet", "vni")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    VNI_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    subnet: str
    vni: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., subnet: _Optional[str] = ..., vni: _Optional[int] = ...) -> None: ...

class Peer(_message.Message):
    __slots__ = ("node_id", "index", "address")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    index: int
    address: str
    def __init__(self, node_id: _Optional[str] = ..., index: _Optional[int] = ..., address: _Optional[str] = ...) -> None: ...

class ServiceRoute(_message.Message):
    __slots__ = ("id", "name", "endpoint_mode", "networks", "ports")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_MODE_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    endpoint_mode: EndpointMode
    networks: _containers.RepeatedCompositeFieldContainer[ServiceRouteNetwork]
    ports: _containers.RepeatedCompositeFieldContainer[PortConfig]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., endpoint_mode: _Optional[_Union[EndpointMode, str]] = ..., networks: _Optional[_Iterable[_Union[ServiceRouteNetwork, _Mapping]]] = ..., ports: _Optional[_Iterable[_Union[PortConfig, _Mapping]]] = ...) -> None: ...

class ServiceRouteNetwork(_message.Message):
    __slots__ = ("network_id", "vip", "aliases")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    VIP_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    vip: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, network_id: _Optional[str] = ..., vip: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("task_id", "service_id", "network_id", "address", "node_id", "name", "slot", "draining")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    service_id: str
    network_id: str
    address: str
    node_id: str
    name: str
    slot: int
    draining: bool
    def __init__(self, task_id: _Optional[str] = ..., service_id: _Optional[str] = ..., network_id: _Optional[str] = ..., address: _Optional[str] = ..., node_id: _Optional[str] = ..., name: _Optional[str] = ..., slot: _Optional[int] = ..., draining: _Optional[bool] = ...) -> None: ...

class DispatcherMessage(_message.Message):
    __slots__ = ("registered", "assignments", "network_state", "protected_ports")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_STATE_FIELD_NUMBER: _ClassVar[int]
    PROTECTED_PORTS_FIELD_NUMBER: _ClassVar[int]
    registered: Registered
    assignments: Assignments
    network_state: NetworkState
    protected_ports: ProtectedPorts
    def __init__(self, registered: _Optional[_Union[Registered, _Mapping]] = ..., assignments: _Optional[_Union[Assignments, _Mapping]] = ..., network_state: _Optional[_Union[NetworkState, _Mapping]] = ..., protected_ports: _Optional[_Union[ProtectedPorts, _Mapping]] = ...) -> None: ...

class ProtectedPorts(_message.Message):
    __slots__ = ("ports",)
    PORTS_FIELD_NUMBER: _ClassVar[int]
    ports: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ports: _Optional[_Iterable[int]] = ...) -> None: ...

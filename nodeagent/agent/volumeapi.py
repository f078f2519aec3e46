"""The volume half of the node-local API (engine mode): local named volumes,
as ``docker volume create|ls|inspect|rm|prune``.

The volumes are ``nodeagent.volumes``' (under the agent's state dir); the
engine makes the ones a container names on first use and its anonymous
ones, and tells the store which containers use which. Who uses a volume is
asked of the supervisor here (every container, in any state, plus those
being created: ``Engine.volume_users``), so a volume is never removed from
under a container, ``force`` or not: ``force`` only makes a missing volume
no error, as Docker's. Part of :class:`nodeagent.agent.service.AgentService`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import grpc

from common.errors import InvalidArgument
from nodeagent.agent.edge import handle_errors
from proto import agent_pb2 as pb

if TYPE_CHECKING:
    from nodeagent.agent.engine import Engine
    from nodeagent.volumes import Volume

__all__ = ["VolumeAPI"]

DRIVER = "local"  # the only one


def _to_pb(vol: Volume, live: Mapping[str, str]) -> pb.Volume:
    return pb.Volume(name=vol.name, driver=DRIVER, mountpoint=vol.mountpoint,
                     created_at=vol.created_at, labels=vol.labels, anonymous=vol.anonymous,
                     containers=[c for c in vol.containers if c in live])


class VolumeAPI:
    engine: Engine

    @handle_errors
    def CreateVolume(self, request: pb.CreateVolumeRequest, context: grpc.ServicerContext) -> pb.Volume:
        if request.driver not in ("", DRIVER):
            raise InvalidArgument(f"invalid volume driver {request.driver!r}: only {DRIVER!r} is known")
        vol = self.engine.volumes.create(request.name, dict(request.labels))
        return _to_pb(vol, self.engine.volume_users())

    @handle_errors
    def ListVolumes(self, request: pb.ListVolumesRequest,
                    context: grpc.ServicerContext) -> pb.ListVolumesResponse:
        live = self.engine.volume_users()
        vols = [_to_pb(v, live) for v in self.engine.volumes.all()]
        if request.dangling:
            vols = [v for v in vols if not v.containers]
        return pb.ListVolumesResponse(volumes=vols)

    @handle_errors
    def InspectVolume(self, request: pb.VolumeRef, context: grpc.ServicerContext) -> pb.Volume:
        return _to_pb(self.engine.volumes.get(request.name), self.engine.volume_users())

    @handle_errors
    def RemoveVolume(self, request: pb.RemoveVolumeRequest,
                     context: grpc.ServicerContext) -> pb.RemoveVolumeResponse:
        removed = self.engine.volumes.remove(request.name, self.engine.volume_users(), request.force)
        return pb.RemoveVolumeResponse(removed=[request.name] if removed else [])

    @handle_errors
    def PruneVolumes(self, request: pb.PruneVolumesRequest,
                     context: grpc.ServicerContext) -> pb.RemoveVolumeResponse:
        return pb.RemoveVolumeResponse(removed=self.engine.volumes.prune(self.engine.volume_users(),
                                                                         all=request.all))

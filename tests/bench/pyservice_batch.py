"""A no-op Flame service in Python (Debian's python3-grpcio, stubs from our
proto/), for the benchmark: it answers OnTaskInvoke and the batched
OnTaskInvokeBatch, through the host shim like any other service."""
import os
from concurrent import futures

import grpc
import shim_pb2
import shim_pb2_grpc
import types_pb2


class Service(shim_pb2_grpc.InstanceServicer):
    def OnSessionEnter(self, request, context):
        return types_pb2.Result(return_code=0)

    def OnTaskInvoke(self, request, context):
        return types_pb2.TaskResult(return_code=0, output=request.input)

    def OnTaskInvokeBatch(self, request, context):
        return shim_pb2.TaskResultBatch(
            results=[types_pb2.TaskResult(return_code=0, output=t.input) for t in request.tasks])

    def OnSessionLeave(self, request, context):
        return types_pb2.Result(return_code=0)


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    shim_pb2_grpc.add_InstanceServicer_to_server(Service(), server)
    server.add_insecure_port("unix:" + os.environ["FLAME_INSTANCE_ENDPOINT"])
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
